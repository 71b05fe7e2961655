//! REST bodies (SPEC.md §2 and §6).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

#[cfg(feature = "openapi")]
use utoipa::{IntoParams, ToSchema};

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn double_option<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

// ---------------------------------------------------------------- errors

/// `{"error": {...}}`, the body of every non-2xx answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// One of `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `payload_too_large`, `validation_failed`, `rate_limited`, `internal`.
    pub code: String,
    /// A human-readable explanation (never internal detail).
    pub message: String,
    /// The request's id, also in the `x-request-id` response header.
    pub request_id: String,
}

/// A list: `{"items": [...], "nextCursor": "…" | null}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass back to get the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

// ---------------------------------------------------------------- audit log

/// Query of `GET /workspaces/:id/audit`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditQuery {
    /// Page size, default 50, capped at 100.
    pub limit: Option<u32>,
    /// A `nextCursor` from the previous page: only older entries.
    pub before: Option<String>,
}

/// An entry of a workspace's audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Id (time-ordered).
    pub id: Uuid,
    /// The workspace.
    pub workspace_id: Option<Uuid>,
    /// Who acted (`null` when unknown).
    pub actor_id: Option<Uuid>,
    /// `workspace_member_added`, `workspace_member_removed`, `conversation_member_added`,
    /// `conversation_member_removed`, `conversation_role_changed`,
    /// `message_deleted_by_moderator`, `conversation_archived`, `key_rotated`,
    /// `workspace_shredded`, `file_access_denied` (and, for account-level entries, `login_succeeded`,
    /// `login_failed`, `refresh_token_reused`).
    pub action: String,
    /// What it happened to: space-separated `kind:id` pairs (`user:…`, `conversation:…`,
    /// `message:…`, `role:…`).
    pub target: Option<String>,
    /// The client's IP address, when known.
    pub ip: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

// ---------------------------------------------------------------- auth

/// `POST /auth/register`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    /// E-mail (unique, case-insensitive).
    pub email: String,
    /// At least 8 characters.
    pub password: String,
    /// 1 to 100 characters.
    pub display_name: String,
}

/// `POST /auth/login`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    /// E-mail.
    pub email: String,
    /// Password.
    pub password: String,
}

/// `POST /auth/refresh`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshRequest {
    /// The current refresh token (single use).
    pub refresh_token: String,
}

/// A user's public profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Id.
    pub id: Uuid,
    /// E-mail, lower-cased.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Picture.
    pub avatar_url: Option<String>,
    /// Registration time.
    pub created_at: DateTime<Utc>,
}

/// Register, login and refresh answer `{user, accessToken, refreshToken}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AuthResponse {
    /// The account.
    pub user: User,
    /// Bearer token, valid for at most 15 minutes.
    pub access_token: String,
    /// When the access token expires.
    pub access_token_expires_at: DateTime<Utc>,
    /// Single-use refresh token.
    pub refresh_token: String,
}

// ---------------------------------------------------------------- workspaces

/// `POST /workspaces`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWorkspaceRequest {
    /// 1 to 100 characters.
    pub name: String,
}

/// A workspace, with the caller's role in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Unique URL handle.
    pub slug: String,
    /// Creator.
    pub created_by_id: Uuid,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// The caller's role: `owner|admin|member|guest`.
    pub role: String,
}

/// `POST /workspaces/:id/members`: `userId` or `email`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddWorkspaceMemberRequest {
    /// The user, by id.
    pub user_id: Option<Uuid>,
    /// The user, by e-mail.
    pub email: Option<String>,
    /// `admin|member|guest` (default `member`).
    pub role: Option<String>,
}

/// A workspace member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceMember {
    /// The workspace.
    pub workspace_id: Uuid,
    /// The member's id.
    pub user_id: Uuid,
    /// Their role.
    pub role: String,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
    /// Their profile.
    pub user: User,
}

// ---------------------------------------------------------------- conversations

/// `POST /chat/conversations`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateConversationRequest {
    /// `DM|GROUP|CHANNEL|DOCUMENT` or `direct|group|channel|document`, any case.
    #[serde(rename = "type")]
    pub kind: String,
    /// The workspace.
    pub workspace_id: Uuid,
    /// Name (channels need one).
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Icon.
    pub icon: Option<String>,
    /// Initial members; for a DM the one other user.
    #[serde(default)]
    pub member_ids: Vec<Uuid>,
    /// The external document (DOCUMENT only).
    pub document_id: Option<String>,
    /// End-to-end encrypted DM.
    #[serde(default)]
    pub is_encrypted: bool,
    /// Member cap (default 100).
    pub max_participants: Option<u32>,
}

/// `PUT /chat/conversations/:id`: absent fields stay, `null` clears.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateConversationRequest {
    /// New name.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    pub name: Option<Option<String>>,
    /// New description.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    pub description: Option<Option<String>>,
    /// New icon.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    pub icon: Option<Option<String>>,
    /// New member cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_participants: Option<u32>,
}

/// A conversation. In lists it carries the caller's `unreadCount` and `lastMessage`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    /// Id.
    pub id: Uuid,
    /// Workspace.
    pub workspace_id: Uuid,
    /// `DM|GROUP|CHANNEL|DOCUMENT`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Icon.
    pub icon: Option<String>,
    /// External document.
    pub document_id: Option<String>,
    /// End-to-end encrypted.
    pub is_encrypted: bool,
    /// Member cap.
    pub max_participants: u32,
    /// Creator.
    pub created_by_id: Uuid,
    /// Highest seq so far.
    pub last_seq: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last attribute change.
    pub updated_at: DateTime<Utc>,
    /// Archive time.
    pub archived_at: Option<DateTime<Utc>>,
    /// The caller's role, when a member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The caller's read watermark, when a member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_read_seq: Option<i64>,
    /// Unread messages (lists only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread_count: Option<i64>,
    /// The newest message (lists only; `null` when there is none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<Option<Message>>,
}

/// Query of `GET /chat/conversations`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams))]
#[serde(rename_all = "camelCase")]
pub struct ListConversationsQuery {
    /// The workspace.
    pub workspace_id: Uuid,
}

/// `POST /chat/conversations/:id/members`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddMemberRequest {
    /// Who.
    pub user_id: Uuid,
    /// `admin|moderator|member` (default `member`).
    pub role: Option<String>,
}

/// `PUT /chat/conversations/:id/members/:uid/role`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetRoleRequest {
    /// `admin|moderator|member`.
    pub role: String,
}

/// A conversation member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The member.
    pub user_id: Uuid,
    /// `admin|moderator|member`.
    pub role: String,
    /// Join time.
    pub joined_at: DateTime<Utc>,
    /// Read watermark.
    pub last_read_seq: i64,
    /// When it last moved.
    pub last_read_at: Option<DateTime<Utc>>,
    /// Muted.
    pub is_muted: bool,
}

/// `POST /chat/conversations/:id/read`: `messageId` or `seq`; neither marks everything.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadRequest {
    /// Read up to this message.
    pub message_id: Option<Uuid>,
    /// Read up to this seq.
    pub seq: Option<i64>,
}

/// Answer of `POST /chat/conversations/:id/read`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ReadResponse {
    /// The watermark after the call.
    pub last_read_seq: i64,
}

/// `GET /chat/workspaces/:id/unread-count`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UnreadCountResponse {
    /// Sum over conversations.
    pub total: i64,
    /// Per conversation id.
    pub conversations: BTreeMap<Uuid, i64>,
}

// ---------------------------------------------------------------- files

/// A stored file, as `POST /files` returns it (201).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FileInfo {
    /// Id, for `GET /files/:id`.
    pub id: Uuid,
    /// The sanitised file name (last path component, no control characters, ≤ 255 bytes).
    pub name: String,
    /// The type detected from the content's magic bytes (`application/octet-stream` when
    /// unknown); never the client's claim.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// The conversation it was shared in.
    pub conversation_id: Uuid,
    /// When it was uploaded.
    pub created_at: DateTime<Utc>,
}

// ---------------------------------------------------------------- messages

/// A file to attach to a message: one uploaded to the same conversation with `POST /files`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttachmentRef {
    /// The file's id.
    pub id: Uuid,
}

/// A file attached to a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// The file's id.
    pub id: Uuid,
    /// `image` when `mimeType` is `image/*`, else `file`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The sanitised file name.
    pub name: String,
    /// The type detected from the file's magic bytes.
    pub mime_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Where members of the conversation download it: `/files/<id>`.
    pub url: String,
}

/// `POST /chat/conversations/:id/messages`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendMessageRequest {
    /// Plain text (sanitised), or an E2E envelope serialised as JSON in encrypted DMs.
    pub content: String,
    /// `text|image|file` (default `text`).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Reply to this message (threads attach to the root).
    pub reply_to_id: Option<Uuid>,
    /// Idempotency key: a retry with the same key returns the original message (200).
    pub client_msg_id: Option<String>,
    /// Files of this conversation to attach, in order (at most 10, each once; not in
    /// end-to-end conversations). With attachments, `content` is an optional caption.
    #[serde(default)]
    pub attachments: Vec<AttachmentRef>,
}

/// `PUT|PATCH /chat/messages/:id`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EditMessageRequest {
    /// New content.
    pub content: String,
}

/// `POST /chat/messages/:id/reactions`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReactionRequest {
    /// 1 to 10 characters.
    pub emoji: String,
}

/// Query of `GET /chat/conversations/:id/messages`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams))]
#[serde(rename_all = "camelCase")]
pub struct ListMessagesQuery {
    /// Page size, default 50, capped at 100.
    pub limit: Option<u32>,
    /// Only seq below this (newest first).
    pub before: Option<i64>,
    /// Only seq above this (oldest first).
    pub after: Option<i64>,
    /// Skip this many (newest-first listing).
    pub offset: Option<u32>,
    /// List this thread: its root, then replies in seq order.
    pub thread_of: Option<Uuid>,
}

/// A message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Id.
    pub id: Uuid,
    /// Conversation.
    pub conversation_id: Uuid,
    /// Position: 1, 2, 3… without gaps.
    pub seq: i64,
    /// Author.
    pub sender_id: Uuid,
    /// The sender's idempotency key.
    pub client_msg_id: Option<String>,
    /// `text|image|file|system`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Sanitised text (HTML-escaped), an E2E envelope, or `""` once deleted.
    pub content: String,
    /// Attached files, in the sender's order (empty once deleted).
    pub attachments: Vec<Attachment>,
    /// Server-set metadata.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Thread root.
    pub reply_to_id: Option<Uuid>,
    /// Replies (roots).
    pub reply_count: i64,
    /// `{emoji: [userId]}`; emojis with no users are absent.
    pub reactions: BTreeMap<String, Vec<Uuid>>,
    /// E2E envelope.
    pub is_encrypted: bool,
    /// Edit time.
    pub edited_at: Option<DateTime<Utc>>,
    /// Deletion time.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

// ---------------------------------------------------------------- search

/// Query of `GET /chat/search`. The answer is a [`Page`] of [`Message`]s (each carries its
/// `conversationId`), newest first; pass `nextCursor` back as `cursor` for the next page.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams))]
#[serde(rename_all = "camelCase")]
pub struct SearchQuery {
    /// The workspace to search.
    pub workspace_id: Uuid,
    /// Words to find (all of them): words under 3 characters match whole words, longer ones
    /// match word prefixes; case-insensitive. At most 256 characters and 8 words.
    pub q: String,
    /// Only this conversation (one the caller is a member of).
    pub conversation_id: Option<Uuid>,
    /// Page size, default 20, capped at 100.
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

// ---------------------------------------------------------------- presence

/// `PUT /chat/presence`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PresenceRequest {
    /// `online|away|busy|offline`.
    pub status: String,
    /// The workspace.
    pub workspace_id: Uuid,
}

/// A presence record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Presence {
    /// Who.
    pub user_id: Uuid,
    /// Where.
    pub workspace_id: Uuid,
    /// `online|away|busy|offline`.
    pub status: String,
    /// Last activity.
    pub last_seen: DateTime<Utc>,
}

// ---------------------------------------------------------------- health

/// `GET /healthz` and `GET /readyz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Health {
    /// `ok`, or `unavailable` when a dependency is down.
    pub status: String,
}

// ---------------------------------------------------------------- E2E key directory

/// A signed prekey on the wire. Key bytes are base64url without padding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedPrekeyBody {
    /// The client's id for it.
    pub key_id: u32,
    /// X25519 public key (32 bytes, base64url, no padding).
    pub public_key: String,
    /// Ed25519 signature (64 bytes, base64url, no padding) by the device's `signingKey` over
    /// `"srtc-e2e/signed-prekey/v1" ‖ identityKey ‖ keyId (u32 BE) ‖ publicKey`.
    pub signature: String,
}

/// A one-time prekey on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OneTimePrekeyBody {
    /// The client's id for it (unique per device).
    pub key_id: u32,
    /// X25519 public key (32 bytes, base64url, no padding).
    pub public_key: String,
}

/// `PUT /keys/devices/:deviceId`: publish (create or replace) the caller's device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishDeviceKeysRequest {
    /// Long-term X25519 identity key (32 bytes, base64url, no padding).
    pub identity_key: String,
    /// Long-term Ed25519 signing key (32 bytes, base64url, no padding).
    pub signing_key: String,
    /// The current signed prekey (replaces the previous one).
    pub signed_prekey: SignedPrekeyBody,
    /// One-time prekeys to append (at most 100).
    #[serde(default)]
    pub one_time_prekeys: Vec<OneTimePrekeyBody>,
}

/// A device's public keys: the answer to a publish, and an item of `GET /keys/users/:userId`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeviceKeysBody {
    /// The owner.
    pub user_id: Uuid,
    /// The device.
    pub device_id: String,
    /// X25519 identity key.
    pub identity_key: String,
    /// Ed25519 signing key.
    pub signing_key: String,
    /// The current signed prekey.
    pub signed_prekey: SignedPrekeyBody,
    /// Unclaimed one-time prekeys left.
    pub one_time_prekey_count: u64,
    /// First published.
    pub created_at: DateTime<Utc>,
    /// Last published.
    pub updated_at: DateTime<Utc>,
}

/// An item of `POST /keys/users/:userId/claim`: a device's public keys and one one-time
/// prekey handed out to this caller only (`null` when the device has none left).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClaimedDeviceKeys {
    /// The owner.
    pub user_id: Uuid,
    /// The device.
    pub device_id: String,
    /// X25519 identity key.
    pub identity_key: String,
    /// Ed25519 signing key.
    pub signing_key: String,
    /// The current signed prekey.
    pub signed_prekey: SignedPrekeyBody,
    /// A one-time prekey, or `null` when the device has none left.
    pub one_time_prekey: Option<OneTimePrekeyBody>,
}
