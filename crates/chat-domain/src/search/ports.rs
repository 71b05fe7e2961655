use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::{DomainError, RepoError};
use crate::ids::{ConversationId, MessageId, WorkspaceId};
use crate::message::StoredMessage;

/// Length of a blind-index tag, in bytes.
pub const TAG_LEN: usize = 16;

/// An opaque, keyed tag of one normalised token in one workspace (a truncated HMAC): equal
/// tokens of one workspace give equal tags; nothing else can be learnt from it without the
/// workspace's search key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SearchTag(pub [u8; TAG_LEN]);

impl fmt::Debug for SearchTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SearchTag(")?;
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        write!(f, ")")
    }
}

/// Turns normalised tokens into tags under a workspace's search key (the keyed half of the
/// blind index; the key never leaves the adapter).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait BlindIndexer: Send + Sync {
    /// One tag per token, in order.
    ///
    /// # Errors
    /// Opaque failure when the workspace's search key cannot be had.
    fn tags(&self, workspace: WorkspaceId, tokens: &[String]) -> Result<Vec<SearchTag>, RepoError>;
}

/// The tags of one message, as indexed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The message.
    pub message_id: MessageId,
    /// Its workspace (whose search key made the tags).
    pub workspace_id: WorkspaceId,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// Its creation time, as stored (the search order and cursor).
    pub created_at: DateTime<Utc>,
    /// Its distinct tags.
    pub tags: Vec<SearchTag>,
}

/// A position in search results: results come newest first by `(created_at, message_id)`,
/// and the next page starts strictly after (older than) the cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchCursor {
    /// Creation time of the last result of the previous page.
    pub created_at: DateTime<Utc>,
    /// Its id.
    pub message_id: MessageId,
}

impl SearchCursor {
    /// The cursor as an opaque string for the wire: microseconds since the epoch, `_`, the
    /// message id's 32 hex digits.
    #[must_use]
    pub fn encode(&self) -> String {
        format!("{}_{}", self.created_at.timestamp_micros(), self.message_id.as_uuid().simple())
    }

    /// Parses what [`Self::encode`] made.
    ///
    /// # Errors
    /// `Validation` on `cursor` for anything else.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let bad = || DomainError::invalid("cursor", "is not a cursor this search returned");
        let (micros, id) = raw.split_once('_').ok_or_else(bad)?;
        let micros: i64 = micros.parse().map_err(|_| bad())?;
        let created_at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
        if id.len() != 32 {
            return Err(bad());
        }
        let id = uuid::Uuid::try_parse(id).map_err(|_| bad())?;
        Ok(Self { created_at, message_id: MessageId::from_uuid(id) })
    }
}

/// A lookup in the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagQuery {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Only messages of these conversations (never empty when the service asks).
    pub conversations: Vec<ConversationId>,
    /// Every one of these tags must be on a message (AND); distinct, never empty.
    pub tags: Vec<SearchTag>,
    /// Only messages strictly older than this position.
    pub before: Option<SearchCursor>,
    /// At most this many messages (1..=100).
    pub limit: u32,
}

/// What a lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagMatches {
    /// Matching messages that are not deleted, newest first by `(created_at, id)`, with their
    /// reactions; content still sealed.
    pub messages: Vec<StoredMessage>,
    /// Where the next page starts, when more tagged messages exist past this page.
    pub next: Option<SearchCursor>,
}

/// Storage of the blind index: per message, its tags.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SearchIndex: Send + Sync {
    /// Replaces the message's tags with `entry.tags` (none left when empty), in one
    /// transaction.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn replace_message_tags(&self, entry: &IndexEntry) -> Result<(), RepoError>;

    /// Drops every tag of a message.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn delete_message_tags(&self, message: MessageId) -> Result<(), RepoError>;

    /// Drops every tag of a workspace (crypto-shredding: the tags are derived from the master
    /// key, not from the destroyed data keys). Returns how many were dropped.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn delete_workspace_tags(&self, workspace: WorkspaceId) -> Result<u64, RepoError>;

    /// Messages of `query.conversations` in `query.workspace_id` carrying all of `query.tags`,
    /// not deleted, newest first by `(created_at, id)`, strictly after `query.before`, at most
    /// `query.limit`; `next` is the position of the last tagged message of the page when more
    /// follow. In a fixed number of queries.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn search_messages(&self, query: &TagQuery) -> Result<TagMatches, RepoError>;
}
