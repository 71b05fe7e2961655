//! [`AuditLog`]: the append-only `audit_log` table.

use async_trait::async_trait;
use chat_domain::audit::{AuditAction, AuditCursor, AuditEntry, AuditLog};
use chat_domain::error::RepoError;
use chat_domain::ids::{UserId, WorkspaceId};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::schema::{audit_log, workspace_members};
use crate::{PgStore, corrupt, repo};

/// An `audit_log` row.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log, check_for_backend(diesel::pg::Pg))]
struct AuditRow {
    id: Uuid,
    workspace_id: Option<Uuid>,
    actor_id: Option<Uuid>,
    action: String,
    target: Option<String>,
    ip: Option<String>,
    at: DateTime<Utc>,
}

impl AuditRow {
    fn from_domain(e: AuditEntry) -> Self {
        Self {
            id: e.id,
            workspace_id: e.workspace_id.map(|w| w.as_uuid()),
            actor_id: e.actor.map(|a| a.as_uuid()),
            action: e.action.as_str().to_owned(),
            target: e.target,
            ip: e.ip,
            at: e.at,
        }
    }

    fn into_domain(self) -> Result<AuditEntry, RepoError> {
        Ok(AuditEntry {
            id: self.id,
            workspace_id: self.workspace_id.map(WorkspaceId::from_uuid),
            actor: self.actor_id.map(UserId::from_uuid),
            action: AuditAction::parse(&self.action).ok_or_else(|| corrupt("stored audit action is unknown"))?,
            target: self.target,
            ip: self.ip,
            at: self.at,
        })
    }
}

#[async_trait]
impl AuditLog for PgStore {
    #[tracing::instrument(skip_all, fields(action = %entry.action))]
    async fn record(&self, entry: AuditEntry) -> Result<(), RepoError> {
        let mut conn = self.conn().await?;
        diesel::insert_into(audit_log::table)
            .values(AuditRow::from_domain(entry))
            .execute(&mut conn)
            .await
            .map_err(repo("recording an audit entry"))?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace, limit))]
    async fn list_audit(
        &self,
        workspace: WorkspaceId,
        before: Option<AuditCursor>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, RepoError> {
        let mut conn = self.conn().await?;
        let members = workspace_members::table
            .filter(workspace_members::workspace_id.eq(workspace.as_uuid()))
            .select(workspace_members::user_id.nullable())
            .into_boxed();
        let mut query = audit_log::table
            .filter(
                audit_log::workspace_id
                    .eq(workspace.as_uuid())
                    .or(audit_log::workspace_id.is_null().and(audit_log::actor_id.eq_any(members))),
            )
            .order_by((audit_log::at.desc(), audit_log::id.desc()))
            .limit(i64::from(limit))
            .select(AuditRow::as_select())
            .into_boxed();
        if let Some(cursor) = before {
            query = query
                .filter(audit_log::at.lt(cursor.at).or(audit_log::at.eq(cursor.at).and(audit_log::id.lt(cursor.id))));
        }
        let rows = query.load(&mut conn).await.map_err(repo("listing the audit log"))?;
        rows.into_iter().map(AuditRow::into_domain).collect()
    }
}
