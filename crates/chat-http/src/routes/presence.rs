use actix_web::{HttpResponse, get, put, web};
use chat_domain::ids::WorkspaceId;
use chat_domain::presence::PresenceStatus;
use chat_protocol::{Page, Presence, PresenceRequest};
use uuid::Uuid;

use super::ok;
use crate::AppState;
use crate::auth::Caller;
use crate::convert;
use crate::error::ApiResult;

/// Set your presence in a workspace.
#[utoipa::path(tag = "presence", request_body = PresenceRequest,
    responses((status = 200, body = Presence), (status = 404), (status = 422)), security(("bearer" = [])))]
#[put("/chat/presence")]
pub(crate) async fn set(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<PresenceRequest>,
) -> ApiResult<HttpResponse> {
    let status = PresenceStatus::parse(&body.status)?;
    let presence = state.chat.presence.set(caller.0, WorkspaceId::from_uuid(body.workspace_id), status).await?;
    Ok(ok(&convert::presence(&presence)))
}

/// Every member's presence in a workspace.
#[utoipa::path(tag = "presence", responses((status = 200, body = Page<Presence>), (status = 404)), security(("bearer" = [])))]
#[get("/chat/presence/{workspace_id}")]
pub(crate) async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    workspace_id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let items = state.chat.presence.list(caller.0, WorkspaceId::from_uuid(*workspace_id)).await?;
    Ok(ok(&Page { items: items.iter().map(convert::presence).collect(), next_cursor: None }))
}
