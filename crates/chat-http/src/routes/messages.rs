use std::time::Instant;

use actix_web::{HttpResponse, delete, get, patch, post, put, web};
use chat_domain::ids::{ConversationId, FileId, MessageId};
use chat_domain::message::{Message as DomainMessage, MessageType, MessageWindow, SendMessage, Sent};
use chat_protocol::{EditMessageRequest, ListMessagesQuery, Message, Page, ReactionRequest, SendMessageRequest};
use uuid::Uuid;

use super::{created, ok};
use crate::AppState;
use crate::auth::Caller;
use crate::convert;
use crate::error::{ApiError, ApiResult};
use crate::metrics::Transport;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 100;

/// Send a message. A repeated `clientMsgId` returns the original with 200.
#[utoipa::path(tag = "messages", request_body = SendMessageRequest,
    responses((status = 201, body = Message), (status = 200, body = Message), (status = 403), (status = 404),
        (status = 409), (status = 413), (status = 422)), security(("bearer" = [])))]
#[post("/chat/conversations/{id}/messages")]
pub(crate) async fn send(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: web::Json<SendMessageRequest>,
) -> ApiResult<HttpResponse> {
    let started = Instant::now();
    let body = body.into_inner();
    let req = SendMessage {
        content: body.content,
        kind: body.kind.as_deref().map(MessageType::parse).transpose()?,
        reply_to_id: body.reply_to_id.map(MessageId::from_uuid),
        client_msg_id: body.client_msg_id,
        attachments: body.attachments.iter().map(|a| FileId::from_uuid(a.id)).collect(),
    };
    let sent = state.chat.messages.send(caller.0, ConversationId::from_uuid(*id), req).await;
    state.metrics.message_sent(Transport::Rest, started, &sent);
    Ok(match sent? {
        Sent::New(m) => created(&convert::message(&m)),
        Sent::Replayed(m) => ok(&convert::message(&m)),
    })
}

fn page(items: &[DomainMessage], limit: u32) -> Page<Message> {
    let next_cursor = (items.len() == limit as usize).then(|| items.last().map(|m| m.seq.to_string())).flatten();
    Page { items: items.iter().map(convert::message).collect(), next_cursor }
}

/// History, newest first (`before`, `offset`), or oldest first after `after`; or a thread with
/// `threadOf`. `nextCursor` is the seq to pass as `before` (or `after`) for the next page.
#[utoipa::path(tag = "messages", params(ListMessagesQuery),
    responses((status = 200, body = Page<Message>), (status = 404), (status = 422)), security(("bearer" = [])))]
#[get("/chat/conversations/{id}/messages")]
pub(crate) async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    query: web::Query<ListMessagesQuery>,
) -> ApiResult<HttpResponse> {
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let id = ConversationId::from_uuid(*id);
    if let Some(root) = q.thread_of {
        if q.before.is_some() || q.offset.is_some() {
            return Err(ApiError::invalid("threadOf pages with after only"));
        }
        let items =
            state.chat.messages.thread(caller.0, id, MessageId::from_uuid(root), q.after.unwrap_or(0), limit).await?;
        // The root comes first and does not count towards the replies' limit.
        let replies = items.len().saturating_sub(1);
        let next_cursor = (replies == limit as usize).then(|| items.last().map(|m| m.seq.to_string())).flatten();
        return Ok(ok(&Page { items: items.iter().map(convert::message).collect(), next_cursor }));
    }
    let window = match (q.after, q.before, q.offset) {
        (Some(after), None, None) => MessageWindow::After { after },
        (None, before, offset) => MessageWindow::Latest { before, offset: offset.unwrap_or(0) },
        _ => return Err(ApiError::invalid("after cannot be combined with before or offset")),
    };
    let items = state.chat.messages.list(caller.0, id, window, limit).await?;
    Ok(ok(&page(&items, limit)))
}

async fn edit_impl(
    state: web::Data<AppState>,
    caller: Caller,
    id: Uuid,
    body: EditMessageRequest,
) -> ApiResult<HttpResponse> {
    let message = state.chat.messages.edit(caller.0, MessageId::from_uuid(id), body.content).await?;
    Ok(ok(&convert::message(&message)))
}

/// Edit your own message.
#[utoipa::path(tag = "messages", request_body = EditMessageRequest,
    responses((status = 200, body = Message), (status = 403), (status = 404), (status = 409)), security(("bearer" = [])))]
#[put("/chat/messages/{id}")]
pub(crate) async fn edit_put(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: web::Json<EditMessageRequest>,
) -> ApiResult<HttpResponse> {
    edit_impl(state, caller, *id, body.into_inner()).await
}

/// Edit your own message (same as `PUT`).
#[utoipa::path(tag = "messages", request_body = EditMessageRequest,
    responses((status = 200, body = Message), (status = 403), (status = 404), (status = 409)), security(("bearer" = [])))]
#[patch("/chat/messages/{id}")]
pub(crate) async fn edit_patch(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: web::Json<EditMessageRequest>,
) -> ApiResult<HttpResponse> {
    edit_impl(state, caller, *id, body.into_inner()).await
}

/// Delete a message (soft): yours, or any as a moderator or admin.
#[utoipa::path(tag = "messages", responses((status = 204), (status = 403), (status = 404)), security(("bearer" = [])))]
#[delete("/chat/messages/{id}")]
pub(crate) async fn remove(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    state.chat.messages.delete(caller.0, MessageId::from_uuid(*id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Toggle your reaction; returns the message.
#[utoipa::path(tag = "messages", request_body = ReactionRequest,
    responses((status = 200, body = Message), (status = 403), (status = 404), (status = 422)), security(("bearer" = [])))]
#[post("/chat/messages/{id}/reactions")]
pub(crate) async fn react(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: web::Json<ReactionRequest>,
) -> ApiResult<HttpResponse> {
    let message = state.chat.messages.react(caller.0, MessageId::from_uuid(*id), &body.emoji).await?;
    Ok(ok(&convert::message(&message)))
}
