//! `GET /workspaces/:id/audit`: a workspace's audit log, for its owners and admins.

use actix_web::{HttpResponse, get, web};
use chat_domain::audit::{AuditCursor, AuditEntry};
use chat_domain::ids::WorkspaceId;
use chat_protocol::{self as wire, AuditQuery, Page};
use uuid::Uuid;

use super::ok;
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;

fn entry(e: &AuditEntry) -> wire::AuditEntry {
    wire::AuditEntry {
        id: e.id,
        workspace_id: e.workspace_id.map(|w| w.as_uuid()),
        actor_id: e.actor.map(|a| a.as_uuid()),
        action: e.action.as_str().to_owned(),
        target: e.target.clone(),
        ip: e.ip.clone(),
        at: e.at,
    }
}

/// The workspace's audit log, newest first (owners and admins; members 403, others 404).
#[utoipa::path(tag = "workspaces", params(AuditQuery),
    responses((status = 200, body = Page<wire::AuditEntry>), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = [])))]
#[get("/workspaces/{id}/audit")]
pub(crate) async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    query: web::Query<AuditQuery>,
) -> ApiResult<HttpResponse> {
    let q = query.into_inner();
    let before = q.before.as_deref().map(AuditCursor::parse).transpose()?;
    let page = state.chat.audit.list(caller.0, WorkspaceId::from_uuid(*id), before, q.limit).await?;
    Ok(ok(&Page { items: page.items.iter().map(entry).collect(), next_cursor: page.next_cursor.map(|c| c.encode()) }))
}
