use std::sync::Arc;

use super::codec::MessageCodec;
use super::model::{Message, MessageBody, MessagePage, MessageType, MessageWindow, NewMessage};
use super::ports::{InsertOutcome, MessageRepository};
use crate::Limits;
use crate::access::{Access, View};
use crate::audit::{AuditAction, Auditor};
use crate::cipher::ContentSanitizer;
use crate::clock::Clock;
use crate::conversation::{ConversationRole, ConversationService};
use crate::error::{DomainError, DomainResult};
use crate::event::{DomainEvent, EventPublisher};
use crate::ids::{ConversationId, MessageId, UserId};
use crate::reaction::Emoji;
use crate::realtime::{RateKind, RateLimiter, take_token};
use crate::search::Indexer;

/// Longest accepted `clientMsgId`.
pub const MAX_CLIENT_MSG_ID_LEN: usize = 128;

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

/// Messages: send, history, threads, edit, delete, reactions.
#[derive(Clone)]
pub struct MessageService {
    access: Access,
    messages: Arc<dyn MessageRepository>,
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
        conversations: ConversationService,
        codec: MessageCodec,
        sanitizer: Arc<dyn ContentSanitizer>,
        limiter: Arc<dyn RateLimiter>,
        events: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
        limits: Limits,
        audit: Auditor,
    ) -> Self {
        Self { access, messages, conversations, codec, sanitizer, limiter, events, clock, limits, search: None, audit }
    }

    /// Indexes plain-text messages for search after each committed send and edit, and drops
    /// their tags on delete (never for end-to-end conversations).
    #[must_use]
    pub fn with_search(mut self, indexer: Indexer) -> Self {
        self.search = Some(indexer);
        self
    }

    /// Validates content for `view`'s conversation: an opaque envelope in E2E conversations,
    /// sanitised plain text elsewhere.
    fn body(&self, view: &View, raw: String) -> DomainResult<MessageBody> {
        if view.conversation.is_encrypted {
            return MessageBody::envelope(raw);
        }
        // Refuse oversize input before spending time sanitising it.
        if raw.chars().count() > self.limits.max_message_chars {
            return Err(DomainError::TooLarge { field: "content", max: self.limits.max_message_chars });
        }
        MessageBody::plain(self.sanitizer.sanitize(&raw), self.limits.max_message_chars)
    }

    /// Sends a message. Assigns the next `seq`, moves the sender's watermark to it, and
    /// publishes `message:new`. A repeated `clientMsgId` returns the original unchanged.
    ///
    /// # Errors
    /// `NotFound`; `Forbidden` for non-members (except DOCUMENT chats, which the sender joins);
    /// `Conflict` when archived; `TooLarge`/`Validation` for bad content; `NotFound` for a
    /// `replyToId` outside the conversation.
    #[tracing::instrument(skip(self, req), fields(actor = %actor, conversation = %id))]
    pub async fn send(&self, actor: UserId, id: ConversationId, req: SendMessage) -> DomainResult<Sent> {
        let view = self.access.view(actor, id).await?;
        view.ensure_may_post()?;
        if let Some(key) = &req.client_msg_id {
            if key.is_empty() || key.len() > MAX_CLIENT_MSG_ID_LEN || key.chars().any(char::is_control) {
                return Err(DomainError::invalid("clientMsgId", "must be 1 to 128 printable characters"));
            }
            if view.member.is_some()
                && let Some(original) = self.messages.find_by_client_msg_id(id, actor, key).await?
            {
                return Ok(Sent::Replayed(self.codec.open(&view.conversation, original).await?));
            }
        }
        view.ensure_writable()?;
        let kind = req.kind.unwrap_or(MessageType::Text);
        if kind == MessageType::System {
            return Err(DomainError::invalid("type", "system messages are made by the server"));
        }
        if view.conversation.is_encrypted && !matches!(kind, MessageType::Text | MessageType::File) {
            return Err(DomainError::invalid("type", "must be text or file in an encrypted conversation"));
        }
        let body = self.body(&view, req.content)?;
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
        if view.joins_by_posting() {
            match self.conversations.join(&view.conversation, actor, ConversationRole::Member).await {
                Ok(_) | Err(DomainError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let message_id = MessageId::generate();
        let content = self.codec.seal(&view.conversation, message_id, body.as_str()).await?;
        let new = NewMessage {
            id: message_id,
            conversation_id: id,
            sender_id: actor,
            client_msg_id: req.client_msg_id,
            kind,
            content,
            reply_to_id,
            created_at: self.clock.now(),
        };
        match self.messages.insert_message(&new).await? {
            InsertOutcome::Inserted(stored) => {
                let message = self.codec.open(&view.conversation, stored).await?;
                self.events
                    .publish(DomainEvent::MessageCreated {
                        workspace_id: view.conversation.workspace_id,
                        message: message.clone(),
                    })
                    .await;
                // After the fan-out, so that indexing never delays delivery.
                if let Some(search) = &self.search {
                    search.index(&view.conversation, &message).await;
                }
                Ok(Sent::New(message))
            }
            InsertOutcome::Duplicate(original) => {
                Ok(Sent::Replayed(self.codec.open(&view.conversation, original).await?))
            }
            InsertOutcome::Archived => Err(DomainError::Conflict("conversation is archived")),
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
        let body = self.body(&view, content)?;
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
    /// Deleting a deleted message is a no-op.
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
