//! `GET /chat/search`: search over encrypted messages through the blind index.

use actix_web::{HttpResponse, get, web};
use chat_domain::ids::{ConversationId, WorkspaceId};
use chat_domain::search::Search;
use chat_protocol::{Message, Page, SearchQuery};

use super::ok;
use crate::AppState;
use crate::auth::Caller;
use crate::convert;
use crate::error::ApiResult;

/// Messages of the caller's conversations in a workspace containing every word of `q`
/// (never end-to-end conversations), newest first. `nextCursor` is passed back as `cursor`; a
/// page may hold fewer than `limit` items while `nextCursor` is set.
#[utoipa::path(tag = "search", params(SearchQuery),
    responses((status = 200, body = Page<Message>), (status = 404), (status = 422)), security(("bearer" = [])))]
#[get("/chat/search")]
pub(crate) async fn search(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<SearchQuery>,
) -> ApiResult<HttpResponse> {
    let q = query.into_inner();
    let req = Search {
        workspace_id: WorkspaceId::from_uuid(q.workspace_id),
        query: q.q,
        conversation_id: q.conversation_id.map(ConversationId::from_uuid),
        limit: q.limit,
        cursor: q.cursor,
    };
    let found = state.chat.search.search(caller.0, req).await?;
    Ok(ok(&Page { items: found.items.iter().map(convert::message).collect(), next_cursor: found.next_cursor }))
}
