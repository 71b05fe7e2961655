use std::collections::BTreeMap;

use actix_web::{HttpResponse, delete, get, post, put, web};
use chat_domain::conversation::{ConversationRole, ConversationType, CreateConversation, Created, ReadTarget};
use chat_domain::ids::{ConversationId, MessageId, UserId, WorkspaceId};
use chat_protocol::{
    AddMemberRequest, Conversation, CreateConversationRequest, ListConversationsQuery, Member, Page, ReadRequest,
    ReadResponse, SetRoleRequest, UnreadCountResponse, UpdateConversationRequest,
};
use uuid::Uuid;

use super::{created, ok};
use crate::AppState;
use crate::auth::Caller;
use crate::convert;
use crate::error::{ApiError, ApiResult};

/// Create a conversation. DM and DOCUMENT are get-or-create: 200 when it already exists.
#[utoipa::path(tag = "conversations", request_body = CreateConversationRequest,
    responses((status = 201, body = Conversation), (status = 200, body = Conversation), (status = 404), (status = 422)),
    security(("bearer" = [])))]
#[post("/chat/conversations")]
pub(crate) async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<CreateConversationRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let req = CreateConversation {
        kind: ConversationType::parse(&body.kind)?,
        workspace_id: WorkspaceId::from_uuid(body.workspace_id),
        name: body.name,
        description: body.description,
        icon: body.icon,
        member_ids: body.member_ids.into_iter().map(UserId::from_uuid).collect(),
        document_id: body.document_id,
        is_encrypted: body.is_encrypted,
        max_participants: body.max_participants,
    };
    let result = state.chat.conversations.create(caller.0, req).await?;
    let (is_new, conversation) = match result {
        Created::New(c) => (true, c),
        Created::Existing(c) => (false, c),
    };
    // The caller is a member of what they created or were handed back.
    let view = state.chat.conversations.get(caller.0, conversation.id).await?;
    let body = convert::conversation(&view.conversation, view.member.as_ref());
    Ok(if is_new { created(&body) } else { ok(&body) })
}

/// The caller's conversations in a workspace, with `unreadCount` and `lastMessage`.
#[utoipa::path(tag = "conversations", params(ListConversationsQuery),
    responses((status = 200, body = Page<Conversation>), (status = 404)), security(("bearer" = [])))]
#[get("/chat/conversations")]
pub(crate) async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ListConversationsQuery>,
) -> ApiResult<HttpResponse> {
    let items = state.chat.conversations.list(caller.0, WorkspaceId::from_uuid(query.workspace_id)).await?;
    Ok(ok(&Page { items: items.iter().map(convert::summary).collect(), next_cursor: None }))
}

/// One conversation the caller can see.
#[utoipa::path(tag = "conversations", responses((status = 200, body = Conversation), (status = 404)), security(("bearer" = [])))]
#[get("/chat/conversations/{id}")]
pub(crate) async fn get(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let view = state.chat.conversations.get(caller.0, ConversationId::from_uuid(*id)).await?;
    Ok(ok(&convert::conversation(&view.conversation, view.member.as_ref())))
}

/// Update name, description, icon or cap (conversation admins). `null` clears a field.
#[utoipa::path(tag = "conversations", request_body = UpdateConversationRequest,
    responses((status = 200, body = Conversation), (status = 403), (status = 404), (status = 409)), security(("bearer" = [])))]
#[put("/chat/conversations/{id}")]
pub(crate) async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: web::Json<UpdateConversationRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let id = ConversationId::from_uuid(*id);
    let conversation = state
        .chat
        .conversations
        .update(caller.0, id, body.name, body.description, body.icon, body.max_participants)
        .await?;
    let view = state.chat.conversations.get(caller.0, conversation.id).await?;
    Ok(ok(&convert::conversation(&conversation, view.member.as_ref())))
}

/// Archive (conversation admins). Members still read it; posting answers 409.
#[utoipa::path(tag = "conversations", responses((status = 204), (status = 403), (status = 404)), security(("bearer" = [])))]
#[delete("/chat/conversations/{id}")]
pub(crate) async fn archive(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    state.chat.conversations.archive(caller.0, ConversationId::from_uuid(*id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Members of a conversation the caller can see.
#[utoipa::path(tag = "conversations", responses((status = 200, body = Page<Member>), (status = 404)), security(("bearer" = [])))]
#[get("/chat/conversations/{id}/members")]
pub(crate) async fn members(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let items = state.chat.conversations.members(caller.0, ConversationId::from_uuid(*id)).await?;
    Ok(ok(&Page { items: items.iter().map(convert::member).collect(), next_cursor: None }))
}

async fn add_member_impl(
    state: web::Data<AppState>,
    caller: Caller,
    id: Uuid,
    body: AddMemberRequest,
) -> ApiResult<HttpResponse> {
    let role = body.role.as_deref().map(ConversationRole::parse).transpose()?;
    let member = state
        .chat
        .conversations
        .add_member(caller.0, ConversationId::from_uuid(id), UserId::from_uuid(body.user_id), role)
        .await?;
    Ok(created(&convert::member(&member)))
}

/// Add a member (admins, moderators), or join a CHANNEL/DOCUMENT by adding yourself.
#[utoipa::path(tag = "conversations", request_body = AddMemberRequest,
    responses((status = 201, body = Member), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = [])))]
#[post("/chat/conversations/{id}/members")]
pub(crate) async fn add_member(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: web::Json<AddMemberRequest>,
) -> ApiResult<HttpResponse> {
    add_member_impl(state, caller, *id, body.into_inner()).await
}

/// Alias of `POST /chat/conversations/{id}/members`.
#[utoipa::path(tag = "conversations", request_body = AddMemberRequest,
    responses((status = 201, body = Member), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = [])))]
#[post("/chat/conversations/{id}/participants")]
pub(crate) async fn add_participant(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: web::Json<AddMemberRequest>,
) -> ApiResult<HttpResponse> {
    add_member_impl(state, caller, *id, body.into_inner()).await
}

/// Remove a member, or leave (yourself).
#[utoipa::path(tag = "conversations", responses((status = 204), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
#[delete("/chat/conversations/{id}/members/{uid}")]
pub(crate) async fn remove_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (id, uid) = path.into_inner();
    state.chat.conversations.remove_member(caller.0, ConversationId::from_uuid(id), UserId::from_uuid(uid)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Change a member's role (conversation admins).
#[utoipa::path(tag = "conversations", request_body = SetRoleRequest,
    responses((status = 200, body = Member), (status = 403), (status = 404), (status = 409)), security(("bearer" = [])))]
#[put("/chat/conversations/{id}/members/{uid}/role")]
pub(crate) async fn set_role(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<SetRoleRequest>,
) -> ApiResult<HttpResponse> {
    let (id, uid) = path.into_inner();
    let role = ConversationRole::parse(&body.role)?;
    let member = state
        .chat
        .conversations
        .set_role(caller.0, ConversationId::from_uuid(id), UserId::from_uuid(uid), role)
        .await?;
    Ok(ok(&convert::member(&member)))
}

/// Move the caller's read watermark forward to `messageId` or `seq` (everything when neither).
#[utoipa::path(tag = "conversations", request_body = ReadRequest,
    responses((status = 200, body = ReadResponse), (status = 403), (status = 404)), security(("bearer" = [])))]
#[post("/chat/conversations/{id}/read")]
pub(crate) async fn mark_read(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: Option<web::Json<ReadRequest>>,
) -> ApiResult<HttpResponse> {
    let body = body.map(web::Json::into_inner).unwrap_or_default();
    let target = match (body.message_id, body.seq) {
        (Some(m), None) => ReadTarget::Message(MessageId::from_uuid(m)),
        (None, Some(seq)) => ReadTarget::Seq(seq),
        (None, None) => ReadTarget::Latest,
        (Some(_), Some(_)) => return Err(ApiError::invalid("give messageId or seq, not both")),
    };
    let last_read_seq = state.chat.conversations.mark_read(caller.0, ConversationId::from_uuid(*id), target).await?;
    Ok(ok(&ReadResponse { last_read_seq }))
}

/// Unread counts of the caller's conversations in a workspace.
#[utoipa::path(tag = "conversations", responses((status = 200, body = UnreadCountResponse), (status = 404)),
    security(("bearer" = [])))]
#[get("/chat/workspaces/{id}/unread-count")]
pub(crate) async fn unread_count(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let counts = state.chat.conversations.unread_counts(caller.0, WorkspaceId::from_uuid(*id)).await?;
    let conversations: BTreeMap<Uuid, i64> = counts.conversations.iter().map(|(c, n)| (c.as_uuid(), *n)).collect();
    Ok(ok(&UnreadCountResponse { total: counts.total, conversations }))
}
