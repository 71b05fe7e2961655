//! Presence per (user, workspace).

use async_trait::async_trait;
use chat_domain::error::RepoError;
use chat_domain::ids::{UserId, WorkspaceId};
use chat_domain::presence::{Presence, PresenceRepository, PresenceStatus};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::schema::{presence, workspace_members};
use crate::{PgStore, corrupt, repo};

/// A `presence` row.
#[derive(Queryable, Selectable)]
#[diesel(table_name = presence, check_for_backend(diesel::pg::Pg))]
struct PresenceRow {
    user_id: Uuid,
    workspace_id: Uuid,
    status: String,
    last_seen: DateTime<Utc>,
}

impl PresenceRow {
    fn into_domain(self) -> Result<Presence, RepoError> {
        Ok(Presence {
            user_id: UserId::from_uuid(self.user_id),
            workspace_id: WorkspaceId::from_uuid(self.workspace_id),
            status: PresenceStatus::parse(&self.status).map_err(|_| corrupt("stored presence status is unknown"))?,
            last_seen: self.last_seen,
        })
    }
}

#[async_trait]
impl PresenceRepository for PgStore {
    #[tracing::instrument(skip_all, fields(user = %p.user_id, workspace = %p.workspace_id))]
    async fn upsert_presence(&self, p: &Presence) -> Result<(), RepoError> {
        let mut conn = self.conn().await?;
        diesel::insert_into(presence::table)
            .values((
                presence::user_id.eq(p.user_id.as_uuid()),
                presence::workspace_id.eq(p.workspace_id.as_uuid()),
                presence::status.eq(p.status.as_str()),
                presence::last_seen.eq(p.last_seen),
            ))
            .on_conflict((presence::user_id, presence::workspace_id))
            .do_update()
            .set((
                presence::status.eq(excluded(presence::status)),
                presence::last_seen.eq(excluded(presence::last_seen)),
            ))
            .execute(&mut conn)
            .await
            .map_err(repo("storing presence"))?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace))]
    #[tracing::instrument(skip_all, fields(user = %user, workspace = %workspace))]
    async fn find_presence(&self, user: UserId, workspace: WorkspaceId) -> Result<Option<Presence>, RepoError> {
        let mut conn = self.conn().await?;
        let row = presence::table
            .find((user.as_uuid(), workspace.as_uuid()))
            .select(PresenceRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(repo("finding presence"))?;
        row.map(PresenceRow::into_domain).transpose()
    }

    async fn list_presence(&self, workspace: WorkspaceId) -> Result<Vec<Presence>, RepoError> {
        let mut conn = self.conn().await?;
        // Only current members: a removed member's last record stays behind but is not shown.
        let rows = presence::table
            .inner_join(
                workspace_members::table.on(workspace_members::workspace_id
                    .eq(presence::workspace_id)
                    .and(workspace_members::user_id.eq(presence::user_id))),
            )
            .filter(presence::workspace_id.eq(workspace.as_uuid()))
            .order((workspace_members::joined_at.asc(), workspace_members::ordinal.asc()))
            .select(PresenceRow::as_select())
            .load(&mut conn)
            .await
            .map_err(repo("listing presence"))?;
        rows.into_iter().map(PresenceRow::into_domain).collect()
    }
}
