//! [`AuditLog`]: the append-only `audit_log` table.

use async_trait::async_trait;
use chat_domain::audit::{AuditAction, AuditCursor, AuditEntry, AuditLog};
use chat_domain::error::RepoError;
use chat_domain::ids::{UserId, WorkspaceId};
use diesel::prelude::*;

use crate::rows::{corrupt, instant, key, micros, uuid};
use crate::schema::{audit_log, workspace_members};
use crate::store::SqliteStore;

/// An `audit_log` row.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log, check_for_backend(diesel::sqlite::Sqlite))]
struct AuditRow {
    id: Vec<u8>,
    workspace_id: Option<Vec<u8>>,
    actor_id: Option<Vec<u8>>,
    action: String,
    target: Option<String>,
    ip: Option<String>,
    at: i64,
}

impl AuditRow {
    fn from_domain(e: AuditEntry) -> Self {
        Self {
            id: key(e.id),
            workspace_id: e.workspace_id.map(|w| key(w.as_uuid())),
            actor_id: e.actor.map(|a| key(a.as_uuid())),
            action: e.action.as_str().to_owned(),
            target: e.target,
            ip: e.ip,
            at: micros(e.at),
        }
    }

    fn into_domain(self) -> QueryResult<AuditEntry> {
        Ok(AuditEntry {
            id: uuid(&self.id)?,
            workspace_id: self.workspace_id.as_deref().map(uuid).transpose()?.map(WorkspaceId::from_uuid),
            actor: self.actor_id.as_deref().map(uuid).transpose()?.map(UserId::from_uuid),
            action: AuditAction::parse(&self.action).ok_or_else(|| corrupt("unknown audit action"))?,
            target: self.target,
            ip: self.ip,
            at: instant(self.at)?,
        })
    }
}

#[async_trait]
impl AuditLog for SqliteStore {
    #[tracing::instrument(skip_all, fields(action = %entry.action))]
    async fn record(&self, entry: AuditEntry) -> Result<(), RepoError> {
        let row = AuditRow::from_domain(entry);
        self.run("recording an audit entry", move |c| {
            diesel::insert_into(audit_log::table).values(&row).execute(c).map(drop)
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace, limit))]
    async fn list_audit(
        &self,
        workspace: WorkspaceId,
        before: Option<AuditCursor>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, RepoError> {
        let workspace = key(workspace.as_uuid());
        self.run("listing the audit log", move |c| {
            let members = workspace_members::table
                .filter(workspace_members::workspace_id.eq(workspace.clone()))
                .select(workspace_members::user_id.nullable())
                .into_boxed();
            let mut query = audit_log::table
                .filter(
                    audit_log::workspace_id
                        .eq(workspace)
                        .or(audit_log::workspace_id.is_null().and(audit_log::actor_id.eq_any(members))),
                )
                .order_by((audit_log::at.desc(), audit_log::id.desc()))
                .limit(i64::from(limit))
                .select(AuditRow::as_select())
                .into_boxed();
            if let Some(cursor) = before {
                let (at, id) = (micros(cursor.at), key(cursor.id));
                query = query.filter(audit_log::at.lt(at).or(audit_log::at.eq(at).and(audit_log::id.lt(id))));
            }
            query.load(c)?.into_iter().map(AuditRow::into_domain).collect()
        })
        .await
    }
}
