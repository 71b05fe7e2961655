//! WebSocket frames (SPEC.md §3). Every frame is a JSON text message.
//!
//! Client → server: `{"event": NAME, "data": {...}, "ref": "opaque"}`. A frame with a `ref` is
//! answered by `{"event": "ack", "ref", "data"}` or `{"event": "error", "ref", "data": {code,
//! message}}`; pushes are `{"event": NAME, "data": {...}}`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::rest::{AttachmentRef, Conversation, Message};

/// A client frame, before its `data` is decoded for its event.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFrame {
    /// The event name.
    pub event: String,
    /// The event's payload.
    #[serde(default)]
    pub data: serde_json::Value,
    /// Opaque correlation id (string or number), echoed in the ack or error.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<serde_json::Value>,
}

/// A server frame: an ack, an error, or a push.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerFrame {
    /// `ack`, `error`, or a push name.
    pub event: String,
    /// The payload.
    #[serde(default)]
    pub data: serde_json::Value,
    /// The `ref` of the frame this answers.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<serde_json::Value>,
}

/// Client event names.
pub mod client {
    /// `join_workspace {workspaceId}`.
    pub const JOIN_WORKSPACE: &str = "join_workspace";
    /// `join_conversation {conversationId}`.
    pub const JOIN_CONVERSATION: &str = "join_conversation";
    /// `leave_conversation {conversationId}`.
    pub const LEAVE_CONVERSATION: &str = "leave_conversation";
    /// `send_message {conversationId, content, replyToId?, clientMsgId?, type?, attachments?}`.
    pub const SEND_MESSAGE: &str = "send_message";
    /// `edit_message {messageId, content}`.
    pub const EDIT_MESSAGE: &str = "edit_message";
    /// `delete_message {messageId, conversationId}`.
    pub const DELETE_MESSAGE: &str = "delete_message";
    /// `add_reaction {messageId, emoji, conversationId}` (toggles).
    pub const ADD_REACTION: &str = "add_reaction";
    /// `typing_start {conversationId}`.
    pub const TYPING_START: &str = "typing_start";
    /// `typing_stop {conversationId}`.
    pub const TYPING_STOP: &str = "typing_stop";
    /// `mark_as_read {conversationId, messageId?}`.
    pub const MARK_AS_READ: &str = "mark_as_read";
    /// `update_presence {status, workspaceId}`.
    pub const UPDATE_PRESENCE: &str = "update_presence";
    /// `resume {conversations: {conversationId: lastSeq}}`.
    pub const RESUME: &str = "resume";
    /// `ping` (acked).
    pub const PING: &str = "ping";

    /// Every client event, for tests that must cover them all (the authorization matrix).
    pub const ALL: &[&str] = &[
        JOIN_WORKSPACE,
        JOIN_CONVERSATION,
        LEAVE_CONVERSATION,
        SEND_MESSAGE,
        EDIT_MESSAGE,
        DELETE_MESSAGE,
        ADD_REACTION,
        TYPING_START,
        TYPING_STOP,
        MARK_AS_READ,
        UPDATE_PRESENCE,
        RESUME,
        PING,
    ];
}

/// Server event names.
pub mod server {
    /// Answer to a frame with a `ref`.
    pub const ACK: &str = "ack";
    /// Error answer, or an unsolicited error.
    pub const ERROR: &str = "error";
    /// `message:new {message, conversationId}`.
    pub const MESSAGE_NEW: &str = "message:new";
    /// `message:edit {message}`.
    pub const MESSAGE_EDIT: &str = "message:edit";
    /// `message:delete {messageId, conversationId}`.
    pub const MESSAGE_DELETE: &str = "message:delete";
    /// `message:reaction {message}`.
    pub const MESSAGE_REACTION: &str = "message:reaction";
    /// `message:read {userId, conversationId, messageId?, seq, readAt}`.
    pub const MESSAGE_READ: &str = "message:read";
    /// `typing:start {userId, conversationId}`.
    pub const TYPING_START: &str = "typing:start";
    /// `typing:stop {userId, conversationId}`.
    pub const TYPING_STOP: &str = "typing:stop";
    /// `conversation:new {conversation}`.
    pub const CONVERSATION_NEW: &str = "conversation:new";
    /// `conversation:updated {conversationId, updates}`.
    pub const CONVERSATION_UPDATED: &str = "conversation:updated";
    /// `member:joined {userId, conversationId}`.
    pub const MEMBER_JOINED: &str = "member:joined";
    /// `member:left {userId, conversationId}`.
    pub const MEMBER_LEFT: &str = "member:left";
    /// `presence_update {userId, status, workspaceId, lastSeen}`.
    pub const PRESENCE_UPDATE: &str = "presence_update";
}

/// `join_workspace`, `update_presence` target.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkspaceRef {
    /// The workspace.
    pub workspace_id: Uuid,
}

/// `join_conversation`, `leave_conversation`, `typing_*` target.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConversationRef {
    /// The conversation.
    pub conversation_id: Uuid,
}

/// `send_message`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendMessage {
    /// The conversation.
    pub conversation_id: Uuid,
    /// Content (as in REST).
    pub content: String,
    /// Thread parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_id: Option<Uuid>,
    /// Idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    /// `text|image|file`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Files to attach (as in REST).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentRef>,
}

/// `edit_message`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EditMessage {
    /// The message.
    pub message_id: Uuid,
    /// New content.
    pub content: String,
}

/// `delete_message`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteMessage {
    /// The message.
    pub message_id: Uuid,
    /// Its conversation (checked).
    pub conversation_id: Uuid,
}

/// `add_reaction` (toggles).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddReaction {
    /// The message.
    pub message_id: Uuid,
    /// The emoji.
    pub emoji: String,
    /// Its conversation (checked).
    pub conversation_id: Uuid,
}

/// `mark_as_read`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MarkAsRead {
    /// The conversation.
    pub conversation_id: Uuid,
    /// Up to this message; everything when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Uuid>,
}

/// `update_presence`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdatePresence {
    /// `online|away|busy|offline`.
    pub status: String,
    /// The workspace.
    pub workspace_id: Uuid,
}

/// `resume`: the last seq the client holds per conversation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resume {
    /// `{conversationId: lastSeq}`.
    pub conversations: BTreeMap<Uuid, i64>,
}

/// Ack of `resume`: how many messages were replayed per conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumeAck {
    /// `{conversationId: replayed}`.
    pub replayed: BTreeMap<Uuid, u64>,
}

/// Data of an `error` frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorData {
    /// The same codes as REST (`forbidden`, `not_found`, `rate_limited` …).
    pub code: String,
    /// Explanation.
    pub message: String,
}

/// `message:new`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageNew {
    /// The message.
    pub message: Message,
    /// Its conversation.
    pub conversation_id: Uuid,
}

/// `message:edit` and `message:reaction`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageChanged {
    /// The message after the change.
    pub message: Message,
}

/// `message:delete`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageDeleted {
    /// The message.
    pub message_id: Uuid,
    /// Its conversation.
    pub conversation_id: Uuid,
}

/// `message:read`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRead {
    /// Whose watermark moved.
    pub user_id: Uuid,
    /// Where.
    pub conversation_id: Uuid,
    /// The message named, if one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Uuid>,
    /// The new watermark.
    pub seq: i64,
    /// When.
    pub read_at: DateTime<Utc>,
}

/// `typing:start`, `typing:stop`, `member:joined`, `member:left`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInConversation {
    /// Who.
    pub user_id: Uuid,
    /// Where.
    pub conversation_id: Uuid,
}

/// `conversation:new`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationNew {
    /// The conversation.
    pub conversation: Conversation,
}

/// `conversation:updated`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationUpdated {
    /// Which.
    pub conversation_id: Uuid,
    /// The changed fields (`name`, `description`, `icon`, `maxParticipants`, `archivedAt`, or
    /// `memberRole: {userId, role}`).
    pub updates: serde_json::Map<String, serde_json::Value>,
}

/// `presence_update`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceUpdate {
    /// Who.
    pub user_id: Uuid,
    /// `online|away|busy|offline`.
    pub status: String,
    /// Where.
    pub workspace_id: Uuid,
    /// Last activity.
    pub last_seen: DateTime<Utc>,
}
