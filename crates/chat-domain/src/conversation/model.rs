use chrono::{DateTime, Utc};

use crate::error::DomainError;
use crate::ids::{ConversationId, UserId, WorkspaceId};

/// The four kinds of conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConversationType {
    /// Exactly two users; one per pair (and per `isEncrypted`) in a workspace.
    Dm,
    /// Private, invite-only.
    Group,
    /// Public to workspace members, who may join by adding themselves.
    Channel,
    /// Attached to an external document; every workspace member may read and post.
    Document,
}

impl ConversationType {
    /// Parses `DM|GROUP|CHANNEL|DOCUMENT` or the aliases `direct|group|channel|document`, in any
    /// case.
    ///
    /// # Errors
    /// [`DomainError::Validation`] for anything else.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw.to_ascii_lowercase().as_str() {
            "dm" | "direct" => Ok(Self::Dm),
            "group" => Ok(Self::Group),
            "channel" => Ok(Self::Channel),
            "document" => Ok(Self::Document),
            _ => Err(DomainError::invalid("type", "must be one of DM, GROUP, CHANNEL, DOCUMENT")),
        }
    }

    /// The canonical spelling (wire and storage).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Dm => "DM",
            Self::Group => "GROUP",
            Self::Channel => "CHANNEL",
            Self::Document => "DOCUMENT",
        }
    }

    /// Channels and document chats are readable by every (non-guest) workspace member.
    #[must_use]
    pub const fn is_open(self) -> bool {
        matches!(self, Self::Channel | Self::Document)
    }
}

/// A member's role within one conversation, strongest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConversationRole {
    /// Updates, archives, manages members and roles.
    Admin,
    /// Adds members, removes non-admins, deletes any message.
    Moderator,
    /// Posts, edits and deletes own messages, reacts, reads, leaves.
    Member,
}

impl ConversationRole {
    /// The wire and storage spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Moderator => "moderator",
            Self::Member => "member",
        }
    }

    /// Parses the wire spelling (case-insensitive).
    ///
    /// # Errors
    /// [`DomainError::Validation`] for anything else.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw.to_ascii_lowercase().as_str() {
            "admin" => Ok(Self::Admin),
            "moderator" => Ok(Self::Moderator),
            "member" => Ok(Self::Member),
            _ => Err(DomainError::invalid("role", "must be one of admin, moderator, member")),
        }
    }
}

/// A conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversation {
    /// Its id.
    pub id: ConversationId,
    /// The workspace it lives in.
    pub workspace_id: WorkspaceId,
    /// Its kind.
    pub kind: ConversationType,
    /// Name (groups, channels, documents).
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// An emoji or URL.
    pub icon: Option<String>,
    /// The external document (DOCUMENT only).
    pub document_id: Option<String>,
    /// End-to-end encrypted: the server stores opaque envelopes only.
    pub is_encrypted: bool,
    /// Member cap.
    pub max_participants: u32,
    /// Creator.
    pub created_by: UserId,
    /// Highest `seq` assigned so far (0 before the first message).
    pub last_seq: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change of its attributes.
    pub updated_at: DateTime<Utc>,
    /// Set when archived (read-only from then on).
    pub archived_at: Option<DateTime<Utc>>,
}

/// A user's membership of a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The member.
    pub user_id: UserId,
    /// Their role.
    pub role: ConversationRole,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
    /// Read watermark: every message with `seq <= last_read_seq` is read.
    pub last_read_seq: i64,
    /// When the watermark last moved.
    pub last_read_at: Option<DateTime<Utc>>,
    /// Notifications muted.
    pub is_muted: bool,
}

/// What one read tells of a user and a conversation: the conversation, the user's role in its
/// workspace (`None` outside it) and their membership (`None` when not a member). The
/// permission check of every operation ([`crate::access::Access::view`]) starts from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standing {
    /// The conversation.
    pub conversation: Conversation,
    /// The user's workspace role, if they belong to the conversation's workspace.
    pub workspace_role: Option<crate::workspace::WorkspaceRole>,
    /// The user's membership, if any.
    pub member: Option<Member>,
}

/// A conversation to insert. `unique_key` makes DMs and document chats get-or-create under
/// races: the store holds a unique index on `(workspace_id, unique_key)`.
#[derive(Clone, Debug)]
pub struct NewConversation {
    /// The conversation row.
    pub conversation: Conversation,
    /// `dm:<smaller id>:<larger id>:<e2e flag>` or `doc:<documentId>`; `None` for groups and
    /// channels.
    pub unique_key: Option<String>,
    /// Initial members (the creator first, as admin).
    pub members: Vec<Member>,
}

/// Whether a get-or-create made something new.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created<T> {
    /// Inserted now.
    New(T),
    /// Already existed; this is the existing one.
    Existing(T),
}

impl<T> Created<T> {
    /// The value, new or existing.
    pub fn into_inner(self) -> T {
        match self {
            Self::New(t) | Self::Existing(t) => t,
        }
    }
}

/// Changes to a conversation's attributes; `None` leaves a field alone, `Some(None)` clears it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConversationPatch {
    /// New name.
    pub name: Option<Option<String>>,
    /// New description.
    pub description: Option<Option<String>>,
    /// New icon.
    pub icon: Option<Option<String>>,
    /// New member cap.
    pub max_participants: Option<u32>,
}

impl ConversationPatch {
    /// Whether nothing would change.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}
