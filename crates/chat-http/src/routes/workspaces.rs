use actix_web::{HttpResponse, delete, get, post, web};
use chat_domain::ids::{UserId, WorkspaceId};
use chat_domain::workspace::{MemberRef, WorkspaceRole};
use chat_protocol::{AddWorkspaceMemberRequest, CreateWorkspaceRequest, Page, Workspace, WorkspaceMember};
use uuid::Uuid;

use super::{created, ok};
use crate::AppState;
use crate::auth::Caller;
use crate::convert;
use crate::error::{ApiError, ApiResult};

/// Create a workspace; the caller becomes its owner.
#[utoipa::path(tag = "workspaces", request_body = CreateWorkspaceRequest,
    responses((status = 201, body = Workspace), (status = 422)), security(("bearer" = [])))]
#[post("/workspaces")]
pub(crate) async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<CreateWorkspaceRequest>,
) -> ApiResult<HttpResponse> {
    let view = state.chat.workspaces.create(caller.0, &body.name).await?;
    Ok(created(&convert::workspace(&view)))
}

/// The caller's workspaces.
#[utoipa::path(tag = "workspaces", responses((status = 200, body = Page<Workspace>)), security(("bearer" = [])))]
#[get("/workspaces")]
pub(crate) async fn list(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let items = state.chat.workspaces.list(caller.0).await?;
    Ok(ok(&Page { items: items.iter().map(convert::workspace).collect(), next_cursor: None }))
}

/// One workspace the caller belongs to.
#[utoipa::path(tag = "workspaces", responses((status = 200, body = Workspace), (status = 404)), security(("bearer" = [])))]
#[get("/workspaces/{id}")]
pub(crate) async fn get(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let view = state.chat.workspaces.get(caller.0, WorkspaceId::from_uuid(*id)).await?;
    Ok(ok(&convert::workspace(&view)))
}

/// Add a member by `userId` or `email` (owners and admins).
#[utoipa::path(tag = "workspaces", request_body = AddWorkspaceMemberRequest,
    responses((status = 201, body = WorkspaceMember), (status = 403), (status = 404), (status = 409)), security(("bearer" = [])))]
#[post("/workspaces/{id}/members")]
pub(crate) async fn add_member(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: web::Json<AddWorkspaceMemberRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let who = match (body.user_id, body.email) {
        (Some(id), None) => MemberRef::Id(UserId::from_uuid(id)),
        (None, Some(email)) => MemberRef::Email(email),
        _ => return Err(ApiError::invalid("give exactly one of userId and email")),
    };
    let role = body.role.as_deref().map(WorkspaceRole::parse).transpose()?;
    let member = state.chat.workspaces.add_member(caller.0, WorkspaceId::from_uuid(*id), who, role).await?;
    Ok(created(&convert::workspace_member(&member)))
}

/// The workspace's members.
#[utoipa::path(tag = "workspaces", responses((status = 200, body = Page<WorkspaceMember>), (status = 404)), security(("bearer" = [])))]
#[get("/workspaces/{id}/members")]
pub(crate) async fn members(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let items = state.chat.workspaces.members(caller.0, WorkspaceId::from_uuid(*id)).await?;
    Ok(ok(&Page { items: items.iter().map(convert::workspace_member).collect(), next_cursor: None }))
}

/// Remove a member (owners and admins), or leave (yourself).
#[utoipa::path(tag = "workspaces", responses((status = 204), (status = 403), (status = 404)), security(("bearer" = [])))]
#[delete("/workspaces/{id}/members/{uid}")]
pub(crate) async fn remove_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (id, uid) = path.into_inner();
    state.chat.workspaces.remove_member(caller.0, WorkspaceId::from_uuid(id), UserId::from_uuid(uid)).await?;
    Ok(HttpResponse::NoContent().finish())
}
