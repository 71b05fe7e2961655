use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::model::{MessagePage, NewMessage, StoredMessage};
use crate::cipher::Sealed;
use crate::error::RepoError;
use crate::ids::{ConversationId, MessageId, UserId, WorkspaceId};

/// What inserting a message did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Stored with the next `seq`.
    Inserted(StoredMessage),
    /// The sender already sent this `clientMsgId` here: the original message.
    Duplicate(StoredMessage),
    /// The conversation was archived before the insert committed.
    Archived,
    /// The sender is not a member of the conversation, or no longer of its workspace (or the
    /// conversation does not exist): the store's own check, in the insert's transaction, of
    /// what the sender's view was read for. Nothing was written.
    NotMember,
}

/// A message's sealed content with what it is bound to: what re-encryption reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedContent {
    /// The message.
    pub id: MessageId,
    /// Its conversation (part of the content's binding).
    pub conversation_id: ConversationId,
    /// The content as stored.
    pub content: Sealed,
}

/// Messages, threads and reactions.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait MessageRepository: Send + Sync {
    /// In one transaction: checks that the sender is a member of the conversation and of its
    /// workspace (`NotMember` otherwise), takes the conversation's next `seq` (no gaps, no
    /// duplicates under any concurrency, because the counter row is locked until commit),
    /// inserts the message, bumps the thread root's `reply_count`, and moves the sender's
    /// watermark to the new `seq`. A `(conversation, sender, clientMsgId)` that exists yields
    /// `Duplicate` with the original and consumes no `seq`; an archived conversation yields
    /// `Archived`. The checks go in that order: membership, repeat, archived.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn insert_message(&self, message: &NewMessage) -> Result<InsertOutcome, RepoError>;

    /// A message by id.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn find_message(&self, id: MessageId) -> Result<Option<StoredMessage>, RepoError>;

    /// The message a sender sent with `client_msg_id` in a conversation.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn find_by_client_msg_id(
        &self,
        conversation: ConversationId,
        sender: UserId,
        client_msg_id: &str,
    ) -> Result<Option<StoredMessage>, RepoError>;

    /// A page of history with reactions (a fixed number of queries).
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn list_messages(
        &self,
        conversation: ConversationId,
        page: &MessagePage,
    ) -> Result<Vec<StoredMessage>, RepoError>;

    /// A thread: the root, then replies with `seq > after` in seq order, at most `limit` replies.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn list_thread(&self, root: MessageId, after: i64, limit: u32) -> Result<Vec<StoredMessage>, RepoError>;

    /// Replaces the content of a message that is not deleted; `None` otherwise.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn edit_message(
        &self,
        id: MessageId,
        content: &Sealed,
        at: DateTime<Utc>,
    ) -> Result<Option<StoredMessage>, RepoError>;

    /// Soft-deletes: drops the content, sets `deleted_at` (keeping an earlier one), keeps the
    /// row and its `seq`. `None` when there is no such message.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn delete_message(&self, id: MessageId, at: DateTime<Utc>) -> Result<Option<StoredMessage>, RepoError>;

    /// Adds `user`'s `emoji` reaction, or removes it when present; returns the message after.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn toggle_reaction(
        &self,
        message: MessageId,
        user: UserId,
        emoji: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<StoredMessage>, RepoError>;

    /// Re-encryption's reader: the sealed content of the workspace's messages (not deleted)
    /// sealed under a key version below `below_version`, ordered by message id, strictly after
    /// `after` when given, at most `limit`.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn sealed_in_workspace(
        &self,
        workspace: WorkspaceId,
        below_version: i32,
        after: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<SealedContent>, RepoError>;

    /// Re-encryption's writer: replaces a message's content with `new` only if it still is
    /// exactly `expected` (same key version and bytes), so an edit or delete that happened
    /// in between wins. Leaves `edited_at` alone. `false` when nothing was replaced.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn replace_sealed(&self, id: MessageId, expected: &Sealed, new: &Sealed) -> Result<bool, RepoError>;
}

/// Group-commit figures of a store (see [`MessageRepository::insert_message`]): how well
/// concurrent sends are being batched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Transactions committed (or attempted) by the store's batchers.
    pub batches: u64,
    /// Messages those transactions carried.
    pub messages: u64,
    /// The largest batch so far.
    pub largest: u64,
}

/// The counters behind [`GroupCommitStats`], shared by a store's batchers.
#[derive(Debug, Default)]
pub struct GroupCommitCounters {
    batches: std::sync::atomic::AtomicU64,
    messages: std::sync::atomic::AtomicU64,
    largest: std::sync::atomic::AtomicU64,
}

impl GroupCommitCounters {
    /// Counts one batch of `size` messages.
    pub fn record(&self, size: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.batches.fetch_add(1, Relaxed);
        self.messages.fetch_add(size, Relaxed);
        self.largest.fetch_max(size, Relaxed);
    }

    /// The figures so far.
    #[must_use]
    pub fn stats(&self) -> GroupCommitStats {
        use std::sync::atomic::Ordering::Relaxed;
        GroupCommitStats {
            batches: self.batches.load(Relaxed),
            messages: self.messages.load(Relaxed),
            largest: self.largest.load(Relaxed),
        }
    }
}
