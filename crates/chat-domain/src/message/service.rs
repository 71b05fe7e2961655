use std::sync::Arc;

use super::codec::MessageCodec;
use super::model::{AttachmentKind, Message, MessageBody, MessagePage, MessageType, MessageWindow, NewMessage};
use super::ports::{InsertOutcome, MessageRepository};
use crate::Limits;
use crate::access::{Access, View};
use crate::audit::{AuditAction, Auditor};
use crate::cipher::ContentSanitizer;
use crate::clock::Clock;
use crate::conversation::{ConversationRole, ConversationService};
use crate::error::{DomainError, DomainResult};
use crate::event::{DomainEvent, EventPublisher};
use crate::file::{BlobStore, FileRepository, StoredFile};
use crate::ids::{ConversationId, FileId, MessageId, UserId};
use crate::reaction::Emoji;
use crate::realtime::{RateKind, RateLimiter, take_token};
use crate::search::Indexer;

/// Longest accepted `clientMsgId`.
pub const MAX_CLIENT_MSG_ID_LEN: usize = 128;

/// Most files one message may carry.
pub const MAX_ATTACHMENTS: usize = 10;

/// A message to send.
#[derive(Clone, Debug)]
pub struct SendMessage {
    /// Raw content as the client sent it.
    pub content: String,
    /// Kind (`text` when absent); `system` is refused.
    pub kind: Option<MessageType>,
    /// The message this replies to (any message of the thread).
    pub reply_to_id: Option<MessageId>,
    /// Idempotency key: the same key from the same sender in the same conversation yields the
    /// original message.
    pub client_msg_id: Option<String>,
    /// Files to attach, in order: each uploaded to this conversation, each once, at most
    /// [`MAX_ATTACHMENTS`], none in an end-to-end conversation.
    pub attachments: Vec<FileId>,
}

/// Whether a send stored something new.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Stored now (201).
    New(Message),
    /// A retry of an earlier send (200).
    Replayed(Message),
}

impl Sent {
    /// The message either way.
    #[must_use]
    pub fn message(&self) -> &Message {
        match self {
            Self::New(m) | Self::Replayed(m) => m,
        }
    }
}

/// A send that passed every check and is sealed, waiting to be inserted
/// ([`MessageService::prepare_send`], then [`MessageService::commit_send`]).
#[derive(Debug)]
pub struct PreparedSend(Prepared);

#[derive(Debug)]
enum Prepared {
    /// A retry of an earlier send: nothing to insert.
    Replayed(Message),
    /// The sealed row, with the plaintext it was sealed from (the push needs no decryption).
    Insert { view: Box<View>, message: NewMessage, plaintext: String },
}

/// Messages: send, history, threads, edit, delete, reactions.
#[derive(Clone)]
pub struct MessageService {
    access: Access,
    messages: Arc<dyn MessageRepository>,
    /// Looks up the files a message attaches.
    files: Arc<dyn FileRepository>,
    /// Removes the bodies of files that go with a deleted message.
    blobs: Arc<dyn BlobStore>,
    conversations: ConversationService,
    codec: MessageCodec,
    sanitizer: Arc<dyn ContentSanitizer>,
    limiter: Arc<dyn RateLimiter>,
    events: Arc<dyn EventPublisher>,
    clock: Arc<dyn Clock>,
    limits: Limits,
    /// Keeps the blind index in step (`None`: messages are not indexed).
    search: Option<Indexer>,
    audit: Auditor,
}

impl std::fmt::Debug for MessageService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageService").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl MessageService {
    /// Wires the service.
    #[must_use]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        access: Access,
        messages: Arc<dyn MessageRepository>,
        files: Arc<dyn FileRepository>,
        blobs: Arc<dyn BlobStore>,
        conversations: ConversationService,
        codec: MessageCodec,
        sanitizer: Arc<dyn ContentSanitizer>,
        limiter: Arc<dyn RateLimiter>,
        events: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
        limits: Limits,
        audit: Auditor,
    ) -> Self {
        Self {
            access,
            messages,
            files,
            blobs,
            conversations,
            codec,
            sanitizer,
            limiter,
            events,
            clock,
            limits,
            search: None,
            audit,
        }
    }

    /// Indexes plain-text messages for search — a send's tags are written with the message
    /// in its insert's transaction, an edit re-indexes after its commit — and drops their tags
    /// on delete (never for end-to-end conversations).
    #[must_use]
    pub fn with_search(mut self, indexer: Indexer) -> Self {
        self.search = Some(indexer);
        self
    }

    /// Validates content for `view`'s conversation: an opaque envelope in E2E conversations,
    /// sanitised plain text elsewhere — which may be blank when the message has attachments
    /// (`captioned`: the text is their optional caption).
    fn body(&self, view: &View, raw: String, captioned: bool) -> DomainResult<MessageBody> {
        if view.conversation.is_encrypted {
            return MessageBody::envelope(raw);
        }
        // Refuse oversize input before spending time sanitising it.
        if raw.chars().count() > self.limits.max_message_chars {
            return Err(DomainError::TooLarge { field: "content", max: self.limits.max_message_chars });
        }
        let sanitized = self.sanitizer.sanitize(&raw);
        if captioned {
            MessageBody::caption(sanitized, self.limits.max_message_chars)
        } else {
            MessageBody::plain(sanitized, self.limits.max_message_chars)
        }
    }

    /// The rows of the files a message in `view`'s conversation attaches, in the request's
    /// order. A file of another conversation or workspace is answered exactly like an unknown
    /// id, so that the answer tells nothing about files the sender cannot see.
    ///
    /// # Errors
    /// `Validation` on `attachments` when any id is not a file of this conversation.
    async fn attached_files(&self, view: &View, ids: &[FileId]) -> DomainResult<Vec<StoredFile>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let found = self.files.find_files(ids).await?;
        let conversation = &view.conversation;
        ids.iter()
            .map(|id| {
                found
                    .iter()
                    .find(|f| f.id == *id && f.conversation_id == conversation.id)
                    .filter(|f| f.workspace_id == conversation.workspace_id)
                    .cloned()
                    .ok_or_else(|| DomainError::invalid("attachments", "unknown file"))
            })
            .collect()
    }

    /// After a delete committed: removes the bodies of the attached files that the store
    /// dropped with the message (those of its sender attached to no other message). Best
    /// effort: a failure leaves an unreferenced sealed blob behind and is only logged.
    async fn remove_dropped_blobs(&self, attached: &[StoredFile]) {
        let ids: Vec<FileId> = attached.iter().map(|f| f.id).collect();
        let kept = match self.files.find_files(&ids).await {
            Ok(kept) => kept,
            Err(e) => {
                tracing::warn!(error = %e, "could not tell which attachments went with a deleted message");
                return;
            }
        };
        for file in attached.iter().filter(|f| !kept.iter().any(|k| k.id == f.id)) {
            if let Err(e) = self.blobs.delete(&file.storage_key).await {
                tracing::warn!(error = %e, file = %file.id, "the blob of a deleted attachment was left behind");
            }
        }
    }

    /// Sends a message, with its attachments. Assigns the next `seq`, moves the sender's
    /// watermark to it, and publishes `message:new`. A repeated `clientMsgId` returns the
    /// original unchanged.
    ///
    /// # Errors
    /// `NotFound`; `Forbidden` for non-members (except DOCUMENT chats, which the sender joins);
    /// `Conflict` when archived; `TooLarge`/`Validation` for bad content, type or attachments
    /// (more than [`MAX_ATTACHMENTS`], a file twice, any in an end-to-end conversation, an id
    /// that is not a file of this conversation; `image`/`file` without attachments);
    /// `NotFound` for a `replyToId` outside the conversation.
    #[tracing::instrument(skip(self, req), fields(actor = %actor, conversation = %id))]
    pub async fn send(&self, actor: UserId, id: ConversationId, req: SendMessage) -> DomainResult<Sent> {
        let prepared = self.prepare_send(actor, id, req).await?;
        self.commit_send(prepared).await
    }

    /// The first half of [`Self::send`]: every check (access, content, attachments, rate
    /// limit, reply target), the DOCUMENT join, and the sealing — everything but the insert.
    /// A socket prepares its sends one after the other, in the order its client sent them,
    /// and may then wait for several commits at once ([`Self::commit_send`]).
    ///
    /// # Errors
    /// As [`Self::send`].
    pub async fn prepare_send(
        &self,
        actor: UserId,
        id: ConversationId,
        req: SendMessage,
    ) -> DomainResult<PreparedSend> {
        // A member's view may come from memory: the insert checks membership again.
        let view = self.access.view_to_post(actor, id).await?;
        view.ensure_may_post()?;
        let Some(key) = req.client_msg_id.clone() else {
            return self.prepare_new(actor, view, req).await;
        };
        if key.is_empty() || key.len() > MAX_CLIENT_MSG_ID_LEN || key.chars().any(char::is_control) {
            return Err(DomainError::invalid("clientMsgId", "must be 1 to 128 printable characters"));
        }
        // A retry is answered with the original. Looked up only when the send cannot go on
        // (archived since, over the rate limit, …): otherwise the insert finds the original by
        // the unique index, in its batch, and no read is spent on the common first attempt.
        let conversation = view.conversation.clone();
        let member = view.member.is_some();
        match self.prepare_new(actor, view, req).await {
            // The original is handed only to a sender who is a member now: the view the
            // send began with may have come from memory.
            Err(refused) if member => match self.messages.find_by_client_msg_id(id, actor, &key).await? {
                Some(original) if self.access.view(actor, id).await.is_ok_and(|v| v.member.is_some()) => {
                    Ok(PreparedSend(Prepared::Replayed(self.codec.open(&conversation, original).await?)))
                }
                _ => Err(refused),
            },
            prepared => prepared,
        }
    }

    /// [`Self::prepare_send`] of a message not known to be a retry.
    async fn prepare_new(&self, actor: UserId, view: View, req: SendMessage) -> DomainResult<PreparedSend> {
        let id = view.conversation.id;
        view.ensure_writable()?;
        check_attachments(&req.attachments, view.conversation.is_encrypted)?;
        requested_kind(req.kind, !req.attachments.is_empty(), view.conversation.is_encrypted)?;
        let body = self.body(&view, req.content, !req.attachments.is_empty())?;
        self.take_send_token(actor).await?;
        let reply_to_id = match req.reply_to_id {
            Some(parent) => {
                let parent = self.messages.find_message(parent).await?.filter(|m| m.conversation_id == id);
                let parent = parent.ok_or(DomainError::NotFound)?;
                // Replies to replies attach to the same root.
                Some(parent.reply_to_id.unwrap_or(parent.id))
            }
            None => None,
        };
        let files = self.attached_files(&view, &req.attachments).await?;
        let kind = message_kind(req.kind, &files)?;
        if view.joins_by_posting() {
            match self.conversations.join(&view.conversation, actor, ConversationRole::Member).await {
                Ok(_) | Err(DomainError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let message_id = MessageId::generate();
        let content = self.codec.seal(&view.conversation, message_id, body.as_str()).await?;
        let plaintext = body.into_string();
        let created_at = self.clock.now();
        let search =
            self.search.as_ref().and_then(|s| s.entry_for(&view.conversation, message_id, created_at, &plaintext));
        let message = NewMessage {
            id: message_id,
            conversation_id: id,
            sender_id: actor,
            client_msg_id: req.client_msg_id,
            kind,
            content,
            reply_to_id,
            attachments: req.attachments,
            search,
            created_at,
        };
        Ok(PreparedSend(Prepared::Insert { view: Box::new(view), message, plaintext }))
    }

    /// The second half of [`Self::send`]: inserts a prepared message with its search tags
    /// (waiting for the commit of its batch), then publishes `message:new`. Nothing is answered before
    /// the commit. A store's `insert_message` queues the message for its batch before its
    /// first wait, so commits started in turn join the batches in that order.
    ///
    /// # Errors
    /// `Conflict` when the conversation was archived meanwhile; store errors.
    pub async fn commit_send(&self, prepared: PreparedSend) -> DomainResult<Sent> {
        let (view, new, plaintext) = match prepared.0 {
            Prepared::Replayed(original) => return Ok(Sent::Replayed(original)),
            Prepared::Insert { view, message, plaintext } => (view, message, plaintext),
        };
        match self.messages.insert_message(&new).await? {
            InsertOutcome::Inserted(stored) => {
                // The row holds what was sealed above: no need to decrypt it again.
                let message = self.codec.with_plaintext(&view.conversation, stored, plaintext).await?;
                self.events
                    .publish(DomainEvent::MessageCreated {
                        workspace_id: view.conversation.workspace_id,
                        message: message.clone(),
                    })
                    .await;
                Ok(Sent::New(message))
            }
            InsertOutcome::Duplicate(original) => {
                Ok(Sent::Replayed(self.codec.open(&view.conversation, original).await?))
            }
            InsertOutcome::Archived => {
                self.access.forget_poster(new.sender_id, new.conversation_id);
                Err(DomainError::Conflict("conversation is archived"))
            }
            InsertOutcome::NotMember => {
                // The sender's view was stale (left or removed since it was read): answer as
                // a fresh view does — `NotFound` outside the workspace or a private
                // conversation, `Forbidden` otherwise.
                self.access.forget_poster(new.sender_id, new.conversation_id);
                self.access.view(new.sender_id, new.conversation_id).await?;
                Err(DomainError::Forbidden("not a member of this conversation"))
            }
        }
    }

    /// Takes one token of the sender's message budget.
    async fn take_send_token(&self, actor: UserId) -> DomainResult<()> {
        take_token(&*self.limiter, RateKind::Messages, &actor.to_string(), self.limits.messages_per_minute).await
    }

    /// A page of history. Limits are clamped to 1..=100.
    ///
    /// # Errors
    /// `NotFound` when the caller may not read the conversation.
    pub async fn list(
        &self,
        actor: UserId,
        id: ConversationId,
        window: MessageWindow,
        limit: u32,
    ) -> DomainResult<Vec<Message>> {
        let view = self.access.view(actor, id).await?;
        let page = MessagePage { window, limit: limit.clamp(1, 100) };
        let stored = self.messages.list_messages(id, &page).await?;
        self.codec.open_all(&view.conversation, stored).await
    }

    /// A thread: its root, then its replies in seq order (after `after`, at most `limit`).
    ///
    /// # Errors
    /// `NotFound` when the root is not in this conversation or is itself a reply.
    pub async fn thread(
        &self,
        actor: UserId,
        id: ConversationId,
        root: MessageId,
        after: i64,
        limit: u32,
    ) -> DomainResult<Vec<Message>> {
        let view = self.access.view(actor, id).await?;
        let stored =
            self.messages.find_message(root).await?.filter(|m| m.conversation_id == id && m.reply_to_id.is_none());
        stored.ok_or(DomainError::NotFound)?;
        let thread = self.messages.list_thread(root, after, limit.clamp(1, 100)).await?;
        self.codec.open_all(&view.conversation, thread).await
    }

    /// Loads a message and the caller's view of its conversation; with `expected`, a message
    /// of another conversation is `NotFound`.
    async fn locate(
        &self,
        actor: UserId,
        id: MessageId,
        expected: Option<ConversationId>,
    ) -> DomainResult<(View, super::model::StoredMessage)> {
        let stored = self.messages.find_message(id).await?.ok_or(DomainError::NotFound)?;
        if expected.is_some_and(|c| c != stored.conversation_id) {
            return Err(DomainError::NotFound);
        }
        let view = self.access.view(actor, stored.conversation_id).await?;
        Ok((view, stored))
    }

    /// Edits the caller's own message.
    ///
    /// # Errors
    /// `NotFound`; `Forbidden` for someone else's message; `Conflict` when deleted or
    /// archived; content errors as for send.
    #[tracing::instrument(skip(self, content), fields(actor = %actor, message = %id))]
    pub async fn edit(&self, actor: UserId, id: MessageId, content: String) -> DomainResult<Message> {
        let (view, stored) = self.locate(actor, id, None).await?;
        if stored.sender_id != actor || view.member.is_none() {
            return Err(DomainError::Forbidden("only the author edits a message"));
        }
        view.ensure_writable()?;
        if stored.deleted_at.is_some() {
            return Err(DomainError::Conflict("message is deleted"));
        }
        // Attachments never change; with some, the caption may be edited to nothing.
        let body = self.body(&view, content, !stored.attachments.is_empty())?;
        let sealed = self.codec.seal(&view.conversation, id, body.as_str()).await?;
        let edited = self.messages.edit_message(id, &sealed, self.clock.now()).await?;
        let edited = edited.ok_or(DomainError::Conflict("message is deleted"))?;
        let message = self.codec.open(&view.conversation, edited).await?;
        self.events
            .publish(DomainEvent::MessageEdited {
                workspace_id: view.conversation.workspace_id,
                message: message.clone(),
            })
            .await;
        if let Some(search) = &self.search {
            search.index(&view.conversation, &message).await;
        }
        Ok(message)
    }

    /// Deletes a message (soft): its author, or a moderator or admin of the conversation.
    /// Deleting a deleted message is a no-op. Its attachments go with it; the files among them
    /// that its sender uploaded and no other message attaches are deleted too (row with the
    /// message, blob after the commit).
    ///
    /// # Errors
    /// `NotFound`; `Forbidden` otherwise; `Conflict` when archived.
    #[tracing::instrument(skip(self), fields(actor = %actor, message = %id))]
    pub async fn delete(&self, actor: UserId, id: MessageId) -> DomainResult<()> {
        self.delete_checked(actor, id, None).await
    }

    /// [`Self::delete`], naming the conversation the message must be in (the WebSocket
    /// `delete_message` carries it).
    ///
    /// # Errors
    /// As [`Self::delete`]; `NotFound` when the message is in another conversation.
    pub async fn delete_in(&self, actor: UserId, conversation: ConversationId, id: MessageId) -> DomainResult<()> {
        self.delete_checked(actor, id, Some(conversation)).await
    }

    async fn delete_checked(&self, actor: UserId, id: MessageId, expected: Option<ConversationId>) -> DomainResult<()> {
        let (view, stored) = self.locate(actor, id, expected).await?;
        let own = stored.sender_id == actor && view.member.is_some();
        if !own && !view.moderates() {
            return Err(DomainError::Forbidden("only the author or a moderator deletes a message"));
        }
        view.ensure_writable()?;
        if stored.deleted_at.is_some() {
            return Ok(());
        }
        self.messages.delete_message(id, self.clock.now()).await?.ok_or(DomainError::NotFound)?;
        if !stored.attachments.is_empty() {
            self.remove_dropped_blobs(&stored.attachments).await;
        }
        if let Some(search) = &self.search {
            search.forget(id).await;
        }
        if !own {
            self.audit
                .record(
                    Some(view.conversation.workspace_id),
                    Some(actor),
                    AuditAction::MessageDeletedByModerator,
                    Some(format!("conversation:{} message:{id} user:{}", view.conversation.id, stored.sender_id)),
                )
                .await;
        }
        self.events
            .publish(DomainEvent::MessageDeleted {
                workspace_id: view.conversation.workspace_id,
                conversation_id: stored.conversation_id,
                message_id: id,
                seq: stored.seq,
            })
            .await;
        Ok(())
    }

    /// Toggles the caller's reaction; returns the message after.
    ///
    /// # Errors
    /// `NotFound`; `Forbidden` when the caller may not post; `Conflict` when deleted or
    /// archived; `Validation` for a bad emoji.
    #[tracing::instrument(skip(self), fields(actor = %actor, message = %id))]
    pub async fn react(&self, actor: UserId, id: MessageId, emoji: &str) -> DomainResult<Message> {
        self.react_checked(actor, id, emoji, None).await
    }

    /// [`Self::react`], naming the conversation the message must be in (the WebSocket
    /// `add_reaction` carries it).
    ///
    /// # Errors
    /// As [`Self::react`]; `NotFound` when the message is in another conversation.
    pub async fn react_in(
        &self,
        actor: UserId,
        conversation: ConversationId,
        id: MessageId,
        emoji: &str,
    ) -> DomainResult<Message> {
        self.react_checked(actor, id, emoji, Some(conversation)).await
    }

    async fn react_checked(
        &self,
        actor: UserId,
        id: MessageId,
        emoji: &str,
        expected: Option<ConversationId>,
    ) -> DomainResult<Message> {
        let emoji = Emoji::parse(emoji)?;
        let (view, stored) = self.locate(actor, id, expected).await?;
        view.ensure_may_post()?;
        view.ensure_writable()?;
        if stored.deleted_at.is_some() {
            return Err(DomainError::Conflict("message is deleted"));
        }
        if view.joins_by_posting() {
            match self.conversations.join(&view.conversation, actor, ConversationRole::Member).await {
                Ok(_) | Err(DomainError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let after = self.messages.toggle_reaction(id, actor, emoji.as_str(), self.clock.now()).await?;
        let message = self.codec.open(&view.conversation, after.ok_or(DomainError::NotFound)?).await?;
        self.events
            .publish(DomainEvent::ReactionToggled {
                workspace_id: view.conversation.workspace_id,
                message: message.clone(),
            })
            .await;
        Ok(message)
    }
}

/// The shape of a request's attachment list: at most [`MAX_ATTACHMENTS`], each file once, and
/// none in an end-to-end conversation (whose clients would have to encrypt them themselves;
/// see docs/e2e.md).
///
/// # Errors
/// `Validation` on `attachments`.
fn check_attachments(ids: &[FileId], encrypted: bool) -> DomainResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    if encrypted {
        return Err(DomainError::invalid("attachments", "are not available in end-to-end encrypted conversations"));
    }
    if ids.len() > MAX_ATTACHMENTS {
        return Err(DomainError::invalid("attachments", format!("at most {MAX_ATTACHMENTS} files per message")));
    }
    if ids.iter().enumerate().any(|(i, id)| ids[..i].contains(id)) {
        return Err(DomainError::invalid("attachments", "a file is attached twice"));
    }
    Ok(())
}

/// Checks a requested `type` against what the request carries: `system` is the server's
/// alone; an end-to-end conversation takes `text` or `file` (the envelope says what it is);
/// elsewhere `image` and `file` need attachments and `text` has none.
///
/// # Errors
/// `Validation` on `type`.
fn requested_kind(requested: Option<MessageType>, with_attachments: bool, encrypted: bool) -> DomainResult<()> {
    let Some(kind) = requested else { return Ok(()) };
    match kind {
        MessageType::System => Err(DomainError::invalid("type", "system messages are made by the server")),
        MessageType::Text | MessageType::File if encrypted => Ok(()),
        _ if encrypted => Err(DomainError::invalid("type", "must be text or file in an encrypted conversation")),
        MessageType::Text if with_attachments => {
            Err(DomainError::invalid("type", "a message with attachments is an image or file message"))
        }
        MessageType::Image | MessageType::File if !with_attachments => {
            Err(DomainError::invalid("type", "image and file messages need attachments"))
        }
        _ => Ok(()),
    }
}

/// The type of a message with `files` attached (already checked by [`requested_kind`]): the
/// requested one, else `image` when every attachment is an image, `file` when some is not,
/// `text` without attachments.
///
/// # Errors
/// `Validation` on `type` when `image` is requested for files that are not all images.
fn message_kind(requested: Option<MessageType>, files: &[StoredFile]) -> DomainResult<MessageType> {
    let all_images = files.iter().all(|f| AttachmentKind::of(&f.content_type) == AttachmentKind::Image);
    match requested {
        Some(MessageType::Image) if !all_images => {
            Err(DomainError::invalid("type", "image messages attach images only"))
        }
        Some(kind) => Ok(kind),
        None if files.is_empty() => Ok(MessageType::Text),
        None if all_images => Ok(MessageType::Image),
        None => Ok(MessageType::File),
    }
}
