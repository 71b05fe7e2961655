//! # chat-domain
//!
//! The pure core of SecureRealTime Chat: users, workspaces, conversations of four kinds,
//! members and roles, messages with a gap-free per-conversation `seq`, threads, reactions, read
//! watermarks, unread counts and presence — and the permission policy that guards them.
//!
//! **Layer.** Innermost. It depends on no database, web, Redis or crypto crate (CI proves it
//! with `cargo tree`). Everything outside is reached through *ports*: traits named for their
//! role ([`message::MessageRepository`], [`cipher::ContentCipher`], [`event::EventPublisher`],
//! [`clock::Clock`] …), implemented by adapter crates (`chat-postgres`, `chat-sqlite`,
//! `chat-crypto`) and by delivery (`chat-http`).
//!
//! **Where to start reading.** [`Chat::new`] wires every service from a [`Ports`] bundle.
//! A message goes [`message::MessageService::send`] → [`access::Access::view`] (policy) →
//! [`message::MessageCodec::seal`] (encryption at rest) → [`message::MessageRepository::insert_message`]
//! (atomic `seq`) → [`event::EventPublisher::publish`] (fan-out).
//!
//! **Embedding.** Another Rust service can use the domain without our HTTP layer by supplying
//! its own adapters (or `chat-sqlite` / `chat-postgres` / `chat-crypto`):
//!
//! ```
//! use std::sync::Arc;
//! use chat_domain::{Chat, Limits, Ports};
//! use chat_domain::conversation::{ConversationType, CreateConversation};
//! use chat_domain::message::SendMessage;
//!
//! async fn post_hello(ports: Ports, alice: chat_domain::ids::UserId, workspace: chat_domain::ids::WorkspaceId)
//!     -> Result<(), chat_domain::error::DomainError>
//! {
//!     let chat = Chat::new(ports, Limits::default());
//!     let channel = chat
//!         .conversations
//!         .create(alice, CreateConversation {
//!             kind: ConversationType::Channel,
//!             workspace_id: workspace,
//!             name: Some("general".into()),
//!             description: None,
//!             icon: None,
//!             member_ids: vec![],
//!             document_id: None,
//!             is_encrypted: false,
//!             max_participants: None,
//!         })
//!         .await?
//!         .into_inner();
//!     let sent = chat
//!         .messages
//!         .send(alice, channel.id, SendMessage {
//!             content: "hello".into(),
//!             kind: None,
//!             reply_to_id: None,
//!             client_msg_id: Some("c-1".into()),
//!             attachments: vec![],
//!         })
//!         .await?;
//!     assert_eq!(sent.message().seq, 1);
//!     Ok(())
//! }
//! # let _ = post_hello;
//! ```

#![forbid(unsafe_code)]

use std::sync::Arc;

pub mod access;
pub mod audit;
pub mod cipher;
pub mod clock;
pub mod conversation;
pub mod error;
pub mod event;
pub mod file;
pub mod ids;
pub mod keys;
pub mod message;
pub mod presence;
pub mod reaction;
pub mod realtime;
pub mod search;
pub mod text;
pub mod typing;
pub mod user;
pub mod workspace;

/// Limits the services enforce (from `MAX_MESSAGE_LENGTH` and `MAX_PARTICIPANTS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest plain-text message, in characters (default 4000).
    pub max_message_chars: usize,
    /// Largest `maxParticipants` a conversation may have (default 10,000).
    pub max_participants: u32,
    /// Refresh-token lifetime (default 30 days).
    pub refresh_token_ttl: chrono::Duration,
    /// Messages a user may send per minute, with bursts up to that many (default 60; 0
    /// disables).
    pub messages_per_minute: u32,
    /// E2E prekey claims a user may make per minute, with bursts up to that many (default 30;
    /// 0 disables).
    pub key_claims_per_minute: u32,
    /// Files a user may upload per minute, with bursts up to that many (default 3; 0
    /// disables).
    pub uploads_per_minute: u32,
    /// Largest file accepted, in bytes (default 25 MiB).
    pub max_upload_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_chars: 4000,
            max_participants: 10_000,
            refresh_token_ttl: chrono::Duration::days(30),
            messages_per_minute: 60,
            key_claims_per_minute: 30,
            uploads_per_minute: 3,
            max_upload_bytes: 25 * 1024 * 1024,
        }
    }
}

/// Every port the services need, as shared trait objects.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct Ports {
    /// Accounts.
    pub users: Arc<dyn user::UserRepository>,
    /// Refresh tokens.
    pub sessions: Arc<dyn user::SessionRepository>,
    /// Workspaces.
    pub workspaces: Arc<dyn workspace::WorkspaceRepository>,
    /// Conversations.
    pub conversations: Arc<dyn conversation::ConversationRepository>,
    /// Messages.
    pub messages: Arc<dyn message::MessageRepository>,
    /// Presence.
    pub presence: Arc<dyn presence::PresenceRepository>,
    /// The E2E public key directory.
    pub key_directory: Arc<dyn keys::KeyDirectory>,
    /// Ed25519 verification of signed prekeys.
    pub signatures: Arc<dyn keys::SignatureVerifier>,
    /// Encryption at rest.
    pub cipher: Arc<dyn cipher::ContentCipher>,
    /// Keyed tags of search tokens (the blind index's key).
    pub blind_indexer: Arc<dyn search::BlindIndexer>,
    /// Storage of the blind index.
    pub search_index: Arc<dyn search::SearchIndex>,
    /// Plain-text sanitiser.
    pub sanitizer: Arc<dyn cipher::ContentSanitizer>,
    /// Password hashing.
    pub hasher: Arc<dyn user::PasswordHasher>,
    /// Tokens.
    pub tokens: Arc<dyn user::TokenIssuer>,
    /// Event fan-out.
    pub events: Arc<dyn event::EventPublisher>,
    /// Live connections, for presence.
    pub tracker: Arc<dyn realtime::ConnectionTracker>,
    /// Rate limits.
    pub limiter: Arc<dyn realtime::RateLimiter>,
    /// The audit log of security-relevant actions.
    pub audit: Arc<dyn audit::AuditLog>,
    /// Time.
    pub clock: Arc<dyn clock::Clock>,
    /// File metadata rows.
    pub files: Arc<dyn file::FileRepository>,
    /// Sealed file bodies.
    pub blobs: Arc<dyn file::BlobStore>,
    /// Chunked encryption of file bodies.
    pub file_cipher: Arc<dyn file::FileCipher>,
}

/// All use cases, wired.
#[derive(Clone, Debug)]
pub struct Chat {
    /// Register, login, refresh, authenticate.
    pub auth: user::AuthService,
    /// Workspaces and their members.
    pub workspaces: workspace::WorkspaceService,
    /// Conversations, members, read state.
    pub conversations: conversation::ConversationService,
    /// Messages, threads, reactions.
    pub messages: message::MessageService,
    /// Presence.
    pub presence: presence::PresenceService,
    /// Typing indicators.
    pub typing: typing::TypingService,
    /// The audit log, for workspace owners and admins.
    pub audit: audit::AuditService,
    /// The E2E public key directory.
    pub keys: keys::KeyService,
    /// Search over encrypted messages.
    pub search: search::SearchService,
    /// Encrypted file sharing.
    pub files: file::FileService,
}

impl Chat {
    /// Builds every service on the given ports.
    #[must_use]
    pub fn new(ports: Ports, limits: Limits) -> Self {
        let access = access::Access::new(ports.workspaces.clone(), ports.conversations.clone());
        let codec = message::MessageCodec::new(ports.cipher.clone());
        let auditor = audit::Auditor::new(ports.audit.clone(), ports.clock.clone());
        let search = search::SearchService::new(
            access.clone(),
            ports.conversations.clone(),
            ports.blind_indexer.clone(),
            ports.search_index.clone(),
            codec.clone(),
        );
        let indexer = search::Indexer::new(ports.blind_indexer, ports.search_index);
        let conversations = conversation::ConversationService::new(
            access.clone(),
            ports.conversations.clone(),
            ports.messages.clone(),
            ports.workspaces.clone(),
            codec.clone(),
            ports.events.clone(),
            ports.clock.clone(),
            limits,
            auditor.clone(),
        );
        let keys = keys::KeyService::new(
            ports.key_directory.clone(),
            ports.signatures.clone(),
            ports.workspaces.clone(),
            ports.limiter.clone(),
            ports.clock.clone(),
            limits.key_claims_per_minute,
        );
        let files = file::FileService::new(
            access.clone(),
            ports.files.clone(),
            ports.blobs.clone(),
            ports.file_cipher.clone(),
            ports.cipher.clone(),
            ports.limiter.clone(),
            ports.clock.clone(),
            auditor.clone(),
            limits.uploads_per_minute,
            limits.max_upload_bytes,
        );
        Self {
            files,
            keys,
            audit: audit::AuditService::new(access.clone(), ports.audit.clone()),
            auth: user::AuthService::new(
                ports.users.clone(),
                ports.sessions,
                ports.hasher,
                ports.tokens,
                ports.clock.clone(),
                limits.refresh_token_ttl,
                auditor.clone(),
            ),
            workspaces: workspace::WorkspaceService::new(
                ports.workspaces.clone(),
                ports.users,
                ports.clock.clone(),
                auditor.clone(),
            ),
            typing: typing::TypingService::new(access.clone(), ports.events.clone(), ports.clock.clone()),
            messages: message::MessageService::new(
                access,
                ports.messages,
                ports.files,
                ports.blobs,
                conversations.clone(),
                codec,
                ports.sanitizer,
                ports.limiter,
                ports.events.clone(),
                ports.clock.clone(),
                limits,
                auditor,
            )
            .with_search(indexer),
            search,
            conversations,
            presence: presence::PresenceService::new(
                ports.presence,
                ports.workspaces,
                ports.tracker,
                ports.events,
                ports.clock,
            ),
        }
    }
}

#[cfg(test)]
mod tests;
