//! [`PresenceRepository`]: the last known status of each (user, workspace).

use async_trait::async_trait;
use chat_domain::error::RepoError;
use chat_domain::ids::{UserId, WorkspaceId};
use chat_domain::presence::{Presence, PresenceRepository};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::upsert::excluded;

use crate::rows::{PresenceRow, key};
use crate::schema::{presence, workspace_members};
use crate::store::SqliteStore;

#[async_trait]
impl PresenceRepository for SqliteStore {
    #[tracing::instrument(skip_all, fields(user = %record.user_id, workspace = %record.workspace_id, status = record.status.as_str()))]
    async fn upsert_presence(&self, record: &Presence) -> Result<(), RepoError> {
        let row = PresenceRow::from_domain(record);
        self.run("storing presence", move |c| {
            diesel::insert_into(presence::table)
                .values(&row)
                .on_conflict((presence::user_id, presence::workspace_id))
                .do_update()
                .set((
                    presence::status.eq(excluded(presence::status)),
                    presence::last_seen.eq(excluded(presence::last_seen)),
                ))
                .execute(c)
                .map(drop)
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(user = %user, workspace = %workspace))]
    async fn find_presence(&self, user: UserId, workspace: WorkspaceId) -> Result<Option<Presence>, RepoError> {
        let id = (key(user.as_uuid()), key(workspace.as_uuid()));
        self.run("finding presence", move |c| {
            presence::table
                .find(id)
                .select(PresenceRow::as_select())
                .get_result(c)
                .optional()?
                .map(PresenceRow::into_presence)
                .transpose()
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace))]
    async fn list_presence(&self, workspace: WorkspaceId) -> Result<Vec<Presence>, RepoError> {
        self.run("listing presence", move |c| {
            // Only current members: a record left behind by someone who left is not listed.
            presence::table
                .inner_join(
                    workspace_members::table.on(workspace_members::workspace_id
                        .eq(presence::workspace_id)
                        .and(workspace_members::user_id.eq(presence::user_id))),
                )
                .filter(presence::workspace_id.eq(key(workspace.as_uuid())))
                .order_by(workspace_members::joined_at.asc())
                .then_order_by(sql::<BigInt>("workspace_members.rowid"))
                .select(PresenceRow::as_select())
                .load(c)?
                .into_iter()
                .map(PresenceRow::into_presence)
                .collect()
        })
        .await
    }
}
