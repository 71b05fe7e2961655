//! Encryption at rest and content sanitising, as ports. The domain seals message content
//! before it reaches a repository and opens it on the way out, so no store ever holds
//! plaintext; the AEAD adapter lives in `chat-crypto`, the HTML sanitiser in `chat-http`.

use async_trait::async_trait;

use crate::error::RepoError;
use crate::ids::{ConversationId, MessageId, WorkspaceId};

/// What a sealed value is bound to: decrypting it under any other context fails, so a
/// ciphertext copied into another row, conversation or workspace is useless.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealContext {
    /// Whose key encrypts it.
    pub workspace: WorkspaceId,
    /// Its conversation.
    pub conversation: ConversationId,
    /// Its message.
    pub message: MessageId,
    /// Which field of the message (`"content"`, `"attachments"`).
    pub field: &'static str,
}

/// An encrypted value as stored: the key version that sealed it and the opaque bytes
/// (nonce, ciphertext and tag, in the adapter's layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// Version of the workspace data key used.
    pub key_version: i32,
    /// Nonce ‖ ciphertext ‖ tag.
    pub bytes: Vec<u8>,
}

/// Authenticated encryption of content under per-workspace keys.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ContentCipher: Send + Sync {
    /// Encrypts `plaintext` under the workspace's current key, bound to `ctx`.
    ///
    /// # Errors
    /// Opaque failure when the key cannot be loaded or created.
    async fn seal(&self, ctx: &SealContext, plaintext: &[u8]) -> Result<Sealed, RepoError>;

    /// Decrypts and authenticates `sealed` under `ctx`.
    ///
    /// # Errors
    /// Failure when the key version is unknown or authentication fails (tampered bytes,
    /// wrong context).
    async fn open(&self, ctx: &SealContext, sealed: &Sealed) -> Result<Vec<u8>, RepoError>;
}

/// A wrapped (master-key-encrypted) workspace data key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedKey {
    /// Version, from 1 up.
    pub version: i32,
    /// The key encrypted under the master key.
    pub wrapped: Vec<u8>,
}

/// Storage of wrapped workspace keys (the master key never reaches a store).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait KeyRepository: Send + Sync {
    /// All key versions of a workspace, oldest first.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn workspace_keys(&self, workspace: WorkspaceId) -> Result<Vec<WrappedKey>, RepoError>;

    /// Stores a key version; `false` when that version already exists (a concurrent writer
    /// won, and the caller should reload).
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn insert_workspace_key(&self, workspace: WorkspaceId, key: &WrappedKey) -> Result<bool, RepoError>;

    /// The workspaces holding at least one key version, in id order.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn keyed_workspaces(&self) -> Result<Vec<WorkspaceId>, RepoError>;

    /// Crypto-shredding: deletes every key version of the workspace, so nothing sealed under
    /// them can be opened again. Returns how many versions were deleted.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn destroy_workspace_keys(&self, workspace: WorkspaceId) -> Result<u64, RepoError>;
}

/// Turns untrusted user text into safe plain text (no markup, no bidi overrides).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait ContentSanitizer: Send + Sync {
    /// The sanitised text. Must be idempotent.
    fn sanitize(&self, raw: &str) -> String;
}
