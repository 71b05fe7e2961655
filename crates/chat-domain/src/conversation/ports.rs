use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::model::{Conversation, ConversationPatch, ConversationRole, Created, Member, NewConversation, Standing};
use crate::error::RepoError;
use crate::ids::{ConversationId, UserId, WorkspaceId};
use crate::message::StoredMessage;

/// Why adding a conversation member failed.
#[derive(Debug, thiserror::Error)]
pub enum AddMemberError {
    /// Already a member.
    #[error("already a member")]
    Duplicate,
    /// `maxParticipants` reached.
    #[error("conversation is full")]
    Full,
    /// Storage failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// One row of a user's conversation list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationListing {
    /// The conversation.
    pub conversation: Conversation,
    /// The caller's membership.
    pub member: Member,
    /// Messages from others, not deleted, after the caller's watermark.
    pub unread_count: i64,
    /// The newest message, if any.
    pub last_message: Option<StoredMessage>,
}

/// Conversations, their members and read watermarks.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ConversationRepository: Send + Sync {
    /// Inserts a conversation with its initial members in one transaction. When
    /// `unique_key` is set and taken, nothing is inserted and the existing conversation is
    /// returned as [`Created::Existing`] (decided by a unique index, so concurrent creators
    /// agree on one conversation).
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn create_conversation(&self, new: &NewConversation) -> Result<Created<Conversation>, RepoError>;

    /// A conversation by id.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn find_conversation(&self, id: ConversationId) -> Result<Option<Conversation>, RepoError>;

    /// `user`'s [`Standing`] towards conversation `id` — the conversation, `user`'s role in its
    /// workspace and `user`'s membership — read together (one statement: it runs before every
    /// operation on a conversation); `None` when there is no such conversation.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn find_standing(&self, id: ConversationId, user: UserId) -> Result<Option<Standing>, RepoError>;

    /// `user`'s membership of `conversation`.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn find_member(&self, conversation: ConversationId, user: UserId) -> Result<Option<Member>, RepoError>;

    /// All members, in join order.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn list_members(&self, conversation: ConversationId) -> Result<Vec<Member>, RepoError>;

    /// The conversations of `workspace` that `user` is a member of, with unread counts and last
    /// messages, most recently active first. A fixed number of queries, whatever the count.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn list_conversations_of(
        &self,
        workspace: WorkspaceId,
        user: UserId,
    ) -> Result<Vec<ConversationListing>, RepoError>;

    /// Applies a patch; `None` when there is no such conversation.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn update_conversation(
        &self,
        id: ConversationId,
        patch: &ConversationPatch,
        at: DateTime<Utc>,
    ) -> Result<Option<Conversation>, RepoError>;

    /// Sets `archived_at` (keeping an earlier one); `None` when there is no such conversation.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn archive_conversation(
        &self,
        id: ConversationId,
        at: DateTime<Utc>,
    ) -> Result<Option<Conversation>, RepoError>;

    /// Adds a member unless the conversation already has `max_participants` members, checked
    /// atomically with the insert.
    ///
    /// # Errors
    /// `Duplicate`, `Full`, or `Repo` on storage failure.
    async fn add_member(&self, member: &Member, max_participants: u32) -> Result<Member, AddMemberError>;

    /// Removes a member; whether they were one.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn remove_member(&self, conversation: ConversationId, user: UserId) -> Result<bool, RepoError>;

    /// Changes a member's role; `None` when not a member.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn set_member_role(
        &self,
        conversation: ConversationId,
        user: UserId,
        role: ConversationRole,
    ) -> Result<Option<Member>, RepoError>;

    /// Moves `user`'s watermark to `seq` if that is forward (never back); returns the
    /// membership afterwards, `None` when not a member.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn mark_read(
        &self,
        conversation: ConversationId,
        user: UserId,
        seq: i64,
        at: DateTime<Utc>,
    ) -> Result<Option<Member>, RepoError>;

    /// The conversations of `workspace` that `user` is a member of, each with its current
    /// `last_seq`, in one query (the real-time hub's routing table and sequencer start).
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn conversation_heads(
        &self,
        workspace: WorkspaceId,
        user: UserId,
    ) -> Result<Vec<(ConversationId, i64)>, RepoError>;

    /// Unread counts of every conversation of `workspace` that `user` is in (zeros included),
    /// in one query.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn unread_counts(
        &self,
        workspace: WorkspaceId,
        user: UserId,
    ) -> Result<Vec<(ConversationId, i64)>, RepoError>;
}
