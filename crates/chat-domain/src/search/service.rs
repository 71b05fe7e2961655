use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::ports::{BlindIndexer, IndexEntry, SearchCursor, SearchIndex, TagQuery};
use super::tokens::{SearchQuery, index_tokens};
use crate::access::Access;
use crate::conversation::{Conversation, ConversationRepository};
use crate::error::{DomainError, DomainResult};
use crate::ids::{ConversationId, MessageId, UserId, WorkspaceId};
use crate::message::{Message, MessageCodec};

/// Results per page when the caller names no `limit`.
pub const DEFAULT_SEARCH_LIMIT: u32 = 20;

/// Most results per page.
pub const MAX_SEARCH_LIMIT: u32 = 100;

/// Keeps the blind index in step with messages. [`crate::message::MessageService`] calls it
/// after a send or an edit has committed, and after a delete. Index writes are best effort:
/// a failure is logged (`search index` warnings) and the message operation still succeeds.
/// What a failure costs is bounded: a message whose tags were not written is not found; tags
/// left behind by a failed replace or delete find nothing either, because search skips
/// deleted messages and re-checks every candidate's decrypted text.
#[derive(Clone)]
pub struct Indexer {
    indexer: Arc<dyn BlindIndexer>,
    index: Arc<dyn SearchIndex>,
}

impl std::fmt::Debug for Indexer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexer").finish_non_exhaustive()
    }
}

impl Indexer {
    /// Wires the keyed tagger and the tag store.
    #[must_use]
    pub fn new(indexer: Arc<dyn BlindIndexer>, index: Arc<dyn SearchIndex>) -> Self {
        Self { indexer, index }
    }

    /// The index entry of a new message of `conversation`, for its insert to write: none in
    /// end-to-end conversations, and none (after a warning) when tagging fails — a send never
    /// fails for its index.
    #[must_use]
    pub fn entry_for(
        &self,
        conversation: &Conversation,
        message: MessageId,
        created_at: DateTime<Utc>,
        plaintext: &str,
    ) -> Option<IndexEntry> {
        if conversation.is_encrypted {
            return None;
        }
        match self.indexer.tags(conversation.workspace_id, &index_tokens(plaintext)) {
            Ok(tags) => Some(IndexEntry {
                message_id: message,
                workspace_id: conversation.workspace_id,
                conversation_id: conversation.id,
                created_at,
                tags,
            }),
            Err(e) => {
                tracing::warn!(error = %e, %message, "search index: tagging failed; message not indexed");
                None
            }
        }
    }

    /// (Re)indexes a committed message of `conversation` by its plain text. End-to-end
    /// conversations are never indexed: their content is an envelope the server cannot read.
    pub async fn index(&self, conversation: &Conversation, message: &Message) {
        if conversation.is_encrypted || message.deleted_at.is_some() {
            return;
        }
        let tokens = index_tokens(&message.content);
        let tags = match self.indexer.tags(conversation.workspace_id, &tokens) {
            Ok(tags) => tags,
            Err(e) => {
                tracing::warn!(error = %e, message = %message.id, "search index: tagging failed; message not indexed");
                return;
            }
        };
        let entry = IndexEntry {
            message_id: message.id,
            workspace_id: conversation.workspace_id,
            conversation_id: conversation.id,
            created_at: message.created_at,
            tags,
        };
        if let Err(e) = self.index.replace_message_tags(&entry).await {
            tracing::warn!(error = %e, message = %message.id, "search index: writing tags failed; message not indexed");
        }
    }

    /// Drops a deleted message's tags.
    pub async fn forget(&self, message: MessageId) {
        if let Err(e) = self.index.delete_message_tags(message).await {
            tracing::warn!(error = %e, message = %message, "search index: dropping tags failed");
        }
    }
}

/// A search request.
#[derive(Clone, Debug)]
pub struct Search {
    /// The workspace searched.
    pub workspace_id: WorkspaceId,
    /// Raw query text.
    pub query: String,
    /// Only this conversation (one the caller is a member of).
    pub conversation_id: Option<ConversationId>,
    /// Page size ([`DEFAULT_SEARCH_LIMIT`] when absent, capped at [`MAX_SEARCH_LIMIT`]).
    pub limit: Option<u32>,
    /// Where to continue, as returned by the previous page.
    pub cursor: Option<String>,
}

/// A page of search results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchResults {
    /// Matching messages, decrypted, newest first. May hold fewer than the limit (even none)
    /// while `next_cursor` is set: follow it until it is `None`.
    pub items: Vec<Message>,
    /// The cursor of the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

/// Full-text search over encrypted messages through the blind index.
#[derive(Clone)]
pub struct SearchService {
    access: Access,
    conversations: Arc<dyn ConversationRepository>,
    indexer: Arc<dyn BlindIndexer>,
    index: Arc<dyn SearchIndex>,
    codec: MessageCodec,
}

impl std::fmt::Debug for SearchService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchService").finish_non_exhaustive()
    }
}

impl SearchService {
    /// Wires the service.
    #[must_use]
    pub fn new(
        access: Access,
        conversations: Arc<dyn ConversationRepository>,
        indexer: Arc<dyn BlindIndexer>,
        index: Arc<dyn SearchIndex>,
        codec: MessageCodec,
    ) -> Self {
        Self { access, conversations, indexer, index, codec }
    }

    /// Messages of the caller's conversations in a workspace that contain every word of the
    /// query (short words whole, longer ones as prefixes; see [`super::tokens`]), newest
    /// first. Only conversations the caller is a member of are searched, never end-to-end
    /// ones; deleted messages are never found.
    ///
    /// # Errors
    /// `NotFound` when the caller is not in the workspace, or `conversation_id` is not one of
    /// their searchable conversations; `Validation` for a query with no word, too long a
    /// query, or a bad cursor.
    #[tracing::instrument(skip(self, req), fields(actor = %actor, workspace = %req.workspace_id))]
    pub async fn search(&self, actor: UserId, req: Search) -> DomainResult<SearchResults> {
        self.access.workspace_role(actor, req.workspace_id).await?;
        let query = SearchQuery::parse(&req.query)?;
        let before = req.cursor.as_deref().map(SearchCursor::parse).transpose()?;
        let limit = req.limit.unwrap_or(DEFAULT_SEARCH_LIMIT).clamp(1, MAX_SEARCH_LIMIT);

        let listings = self.conversations.list_conversations_of(req.workspace_id, actor).await?;
        let mut searchable: HashMap<ConversationId, Conversation> = listings
            .into_iter()
            .map(|listing| listing.conversation)
            .filter(|c| !c.is_encrypted)
            .map(|c| (c.id, c))
            .collect();
        if let Some(only) = req.conversation_id {
            let conversation = searchable.remove(&only).ok_or(DomainError::NotFound)?;
            searchable = HashMap::from([(only, conversation)]);
        }
        if searchable.is_empty() {
            return Ok(SearchResults { items: Vec::new(), next_cursor: None });
        }

        let tags = self.indexer.tags(req.workspace_id, &query.tokens())?;
        let mut conversations: Vec<ConversationId> = searchable.keys().copied().collect();
        conversations.sort_unstable_by_key(|id| id.as_uuid());
        let found = self
            .index
            .search_messages(&TagQuery { workspace_id: req.workspace_id, conversations, tags, before, limit })
            .await?;

        let mut items = Vec::with_capacity(found.messages.len());
        for stored in found.messages {
            // The store was told which conversations to search; anything else is ignored.
            let Some(conversation) = searchable.get(&stored.conversation_id) else { continue };
            if stored.deleted_at.is_some() {
                continue;
            }
            let message = self.codec.open(conversation, stored).await?;
            // Tags are a candidate filter (prefixes are capped; a failed re-index may leave
            // stale tags): the decrypted text decides.
            if query.matches(&message.content) {
                items.push(message);
            }
        }
        Ok(SearchResults { items, next_cursor: found.next.map(|c| c.encode()) })
    }
}
