use chrono::{DateTime, Utc};

use crate::cipher::Sealed;
use crate::error::DomainError;
use crate::file::{FileName, StoredFile};
use crate::ids::{ConversationId, FileId, MessageId, UserId};
use crate::search::IndexEntry;
use crate::text::char_len;

/// What kind of message it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Plain text.
    Text,
    /// An image attachment with optional caption.
    Image,
    /// A file attachment with optional caption.
    File,
    /// Produced by the system (never by a client).
    System,
}

impl MessageType {
    /// The wire and storage spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Image => "image",
            Self::File => "file",
            Self::System => "system",
        }
    }

    /// Parses a stored or wire value.
    ///
    /// # Errors
    /// [`DomainError::Validation`] for an unknown type.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw.to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "image" => Ok(Self::Image),
            "file" => Ok(Self::File),
            "system" => Ok(Self::System),
            _ => Err(DomainError::invalid("type", "must be one of text, image, file")),
        }
    }
}

/// Message content that passed validation: sanitised plain text within the length limit, or an
/// opaque end-to-end envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    /// Largest serialised end-to-end envelope accepted, in bytes.
    pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;

    /// Validates already-sanitised plain text: not blank, at most `max_chars` characters.
    ///
    /// # Errors
    /// `TooLarge` past the limit; `Validation` when blank.
    pub fn plain(sanitized: String, max_chars: usize) -> Result<Self, DomainError> {
        if char_len(&sanitized) > max_chars {
            return Err(DomainError::TooLarge { field: "content", max: max_chars });
        }
        if sanitized.trim().is_empty() {
            return Err(DomainError::invalid("content", "must not be empty"));
        }
        Ok(Self(sanitized))
    }

    /// Validates the already-sanitised caption of a message with attachments: as
    /// [`Self::plain`], except that a blank caption is allowed (and kept as `""`).
    ///
    /// # Errors
    /// `TooLarge` past the limit.
    pub fn caption(sanitized: String, max_chars: usize) -> Result<Self, DomainError> {
        if char_len(&sanitized) > max_chars {
            return Err(DomainError::TooLarge { field: "content", max: max_chars });
        }
        if sanitized.trim().is_empty() { Ok(Self(String::new())) } else { Ok(Self(sanitized)) }
    }

    /// Validates an end-to-end envelope `{v, senderDevice, recipients: {deviceId: {header,
    /// ciphertext}}}` serialised as JSON, kept byte for byte.
    ///
    /// # Errors
    /// `TooLarge` past 64 KiB; `Validation` when it is not such an envelope.
    pub fn envelope(raw: String) -> Result<Self, DomainError> {
        if raw.len() > Self::MAX_ENVELOPE_BYTES {
            return Err(DomainError::TooLarge { field: "content", max: Self::MAX_ENVELOPE_BYTES });
        }
        let bad = || DomainError::invalid("content", "must be an end-to-end envelope {v, senderDevice, recipients}");
        let value: serde_json::Value = serde_json::from_str(&raw).map_err(|_| bad())?;
        let obj = value.as_object().ok_or_else(bad)?;
        let well_formed = obj.len() == 3
            && obj.get("v").is_some_and(serde_json::Value::is_u64)
            && obj
                .get("senderDevice")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|d| !d.is_empty() && d.len() <= 128)
            && obj.get("recipients").and_then(serde_json::Value::as_object).is_some_and(|r| {
                !r.is_empty()
                    && r.iter().all(|(device, entry)| {
                        !device.is_empty()
                            && device.len() <= 128
                            && entry.as_object().is_some_and(|e| {
                                e.len() == 2
                                    && e.get("header").is_some_and(serde_json::Value::is_string)
                                    && e.get("ciphertext").is_some_and(serde_json::Value::is_string)
                            })
                    })
            });
        if well_formed { Ok(Self(raw)) } else { Err(bad()) }
    }

    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Consumes it.
    #[must_use]
    pub fn into_string(self) -> String {
        self.0
    }
}

/// The users who reacted with one emoji, in reaction order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reaction {
    /// The emoji.
    pub emoji: String,
    /// Who reacted with it (never empty).
    pub user_ids: Vec<UserId>,
}

/// How an attachment is shown: an image when the type detected from its bytes is `image/*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttachmentKind {
    /// An `image/*` file.
    Image,
    /// Any other file.
    File,
}

impl AttachmentKind {
    /// The kind of a file whose detected MIME type is `content_type`.
    #[must_use]
    pub fn of(content_type: &str) -> Self {
        if content_type.starts_with("image/") { Self::Image } else { Self::File }
    }

    /// The wire spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::File => "file",
        }
    }
}

/// A file attached to a message, its name opened: what a message shows of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// The file (downloadable at `GET /files/:id` by the conversation's members).
    pub id: FileId,
    /// Image or file, from the detected type.
    pub kind: AttachmentKind,
    /// The sanitised file name.
    pub name: FileName,
    /// The MIME type detected from the file's magic bytes.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
}

/// A message as a store keeps it: content sealed, `None` once deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its id.
    pub id: MessageId,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// Position in the conversation: 1, 2, 3… without gaps.
    pub seq: i64,
    /// Author.
    pub sender_id: UserId,
    /// The sender's idempotency key.
    pub client_msg_id: Option<String>,
    /// Kind.
    pub kind: MessageType,
    /// Sealed content; `None` after deletion.
    pub content: Option<Sealed>,
    /// Thread root this replies to.
    pub reply_to_id: Option<MessageId>,
    /// Number of replies (roots only).
    pub reply_count: i64,
    /// Reactions, grouped by emoji in order of first use.
    pub reactions: Vec<Reaction>,
    /// The attached files' rows (names sealed), in the order the sender listed them; none
    /// once deleted.
    pub attachments: Vec<StoredFile>,
    /// Set when edited.
    pub edited_at: Option<DateTime<Utc>>,
    /// Set when deleted.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A message as services hand it out: content opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Its id.
    pub id: MessageId,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// Position in the conversation.
    pub seq: i64,
    /// Author.
    pub sender_id: UserId,
    /// The sender's idempotency key.
    pub client_msg_id: Option<String>,
    /// Kind.
    pub kind: MessageType,
    /// Plain text, an E2E envelope, or `""` once deleted.
    pub content: String,
    /// Thread root this replies to.
    pub reply_to_id: Option<MessageId>,
    /// Number of replies.
    pub reply_count: i64,
    /// Reactions.
    pub reactions: Vec<Reaction>,
    /// Attached files, in the sender's order; none once deleted.
    pub attachments: Vec<Attachment>,
    /// Whether `content` is an end-to-end envelope.
    pub is_encrypted: bool,
    /// Set when edited.
    pub edited_at: Option<DateTime<Utc>>,
    /// Set when deleted.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A message to insert; the store assigns `seq`.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// Pre-minted id (the seal context needs it).
    pub id: MessageId,
    /// Target conversation.
    pub conversation_id: ConversationId,
    /// Author.
    pub sender_id: UserId,
    /// Idempotency key.
    pub client_msg_id: Option<String>,
    /// Kind.
    pub kind: MessageType,
    /// Sealed content.
    pub content: Sealed,
    /// Thread root.
    pub reply_to_id: Option<MessageId>,
    /// Files to attach, in order (validated by the service: distinct files of this
    /// conversation); the store links them in the insert's transaction.
    pub attachments: Vec<FileId>,
    /// Its search index entry (blind tags of its plain text; `None` in end-to-end
    /// conversations or without search): the store writes it in the insert's transaction, so
    /// a committed message is searchable at once and indexing costs no transaction of its own.
    pub search: Option<IndexEntry>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// Which slice of a conversation's history to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageWindow {
    /// Newest first, `seq < before` when given, skipping `offset`.
    Latest {
        /// Upper bound (exclusive).
        before: Option<i64>,
        /// Messages to skip.
        offset: u32,
    },
    /// Oldest first, `seq > after`.
    After {
        /// Lower bound (exclusive).
        after: i64,
    },
}

/// A page request: a window and a limit (1..=100).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessagePage {
    /// Which slice.
    pub window: MessageWindow,
    /// How many at most.
    pub limit: u32,
}
