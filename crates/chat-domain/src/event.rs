//! Domain events and the [`EventPublisher`] port. Services publish after the state change has
//! committed; the delivery layer turns each event into one serialised push and fans it out to
//! the sockets allowed to see it. REST and WebSocket actions share these services, so both
//! produce the same pushes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::conversation::{Conversation, ConversationPatch};
use crate::ids::{ConversationId, MessageId, UserId, WorkspaceId};
use crate::message::Message;
use crate::presence::Presence;

/// Something that happened, addressed by workspace and conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainEvent {
    /// `message:new`.
    MessageCreated {
        /// Its workspace.
        workspace_id: WorkspaceId,
        /// The message.
        message: Message,
    },
    /// `message:edit`.
    MessageEdited {
        /// Its workspace.
        workspace_id: WorkspaceId,
        /// The message after the edit.
        message: Message,
    },
    /// `message:delete`.
    MessageDeleted {
        /// Its workspace.
        workspace_id: WorkspaceId,
        /// Its conversation.
        conversation_id: ConversationId,
        /// The message.
        message_id: MessageId,
        /// Its seq.
        seq: i64,
    },
    /// `message:reaction`.
    ReactionToggled {
        /// Its workspace.
        workspace_id: WorkspaceId,
        /// The message after the toggle.
        message: Message,
    },
    /// `message:read`.
    ReadMoved {
        /// Its workspace.
        workspace_id: WorkspaceId,
        /// The conversation.
        conversation_id: ConversationId,
        /// Whose watermark.
        user_id: UserId,
        /// The message marked, when one was named.
        message_id: Option<MessageId>,
        /// The new watermark.
        seq: i64,
        /// When.
        read_at: DateTime<Utc>,
    },
    /// `conversation:new` to `member_ids`.
    ConversationCreated {
        /// The conversation.
        conversation: Conversation,
        /// Who receives it (the members at creation, or the one member just added).
        member_ids: Vec<UserId>,
    },
    /// `conversation:updated`.
    ConversationUpdated {
        /// The conversation after the change.
        conversation: Conversation,
        /// What changed.
        updates: ConversationUpdate,
    },
    /// `member:joined`.
    MemberJoined {
        /// Its workspace.
        workspace_id: WorkspaceId,
        /// The conversation.
        conversation_id: ConversationId,
        /// Who.
        user_id: UserId,
    },
    /// `member:left`.
    MemberLeft {
        /// Its workspace.
        workspace_id: WorkspaceId,
        /// The conversation.
        conversation_id: ConversationId,
        /// Who.
        user_id: UserId,
    },
    /// `typing:start`.
    TypingStarted {
        /// Its workspace.
        workspace_id: WorkspaceId,
        /// The conversation.
        conversation_id: ConversationId,
        /// Who.
        user_id: UserId,
    },
    /// `typing:stop` (also on expiry).
    TypingStopped {
        /// Its workspace.
        workspace_id: WorkspaceId,
        /// The conversation.
        conversation_id: ConversationId,
        /// Who.
        user_id: UserId,
    },
    /// `presence_update`.
    PresenceChanged {
        /// The new record.
        presence: Presence,
    },
}

/// The changed attributes in a `conversation:updated`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConversationUpdate {
    /// Name, description, icon or cap changed.
    Attributes(ConversationPatch),
    /// Archived at this time.
    Archived(DateTime<Utc>),
    /// A member's role changed.
    MemberRole {
        /// Whose.
        user_id: UserId,
        /// The new role.
        role: crate::conversation::ConversationRole,
    },
}

/// Hands committed events to whoever delivers them. Publishing never fails the use case:
/// what a live socket misses, it recovers with `resume`.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes one event.
    async fn publish(&self, event: DomainEvent);
}
