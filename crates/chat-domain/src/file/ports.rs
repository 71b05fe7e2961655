//! Ports of the files aggregate.

use async_trait::async_trait;

use crate::error::RepoError;
use crate::file::StoredFile;
use crate::ids::{ConversationId, FileId, WorkspaceId};

/// Metadata rows of files.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait FileRepository: Send + Sync {
    /// Stores a new file's row.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure (including a duplicate id).
    async fn insert_file(&self, file: &StoredFile) -> Result<(), RepoError>;

    /// The file's row, if it exists.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn find_file(&self, id: FileId) -> Result<Option<StoredFile>, RepoError>;
}

/// Storage of sealed file bodies under opaque keys chosen by the domain (random; never a
/// client-supplied path). Whole objects: uploads are capped (25 MiB by default), so a body
/// fits in memory.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores `bytes` under `key`, replacing nothing: keys are fresh.
    ///
    /// # Errors
    /// [`RepoError`] when the object cannot be written.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), RepoError>;

    /// The object under `key`, `None` when there is none.
    ///
    /// # Errors
    /// [`RepoError`] when the store cannot be read.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RepoError>;

    /// Removes the object under `key` (absent is fine).
    ///
    /// # Errors
    /// [`RepoError`] when the store cannot be written.
    async fn delete(&self, key: &str) -> Result<(), RepoError>;
}

/// What a sealed file is bound to: its wrapped key and every chunk open only under the same
/// workspace, conversation and file id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileContext {
    /// Whose data key wraps the file key.
    pub workspace: WorkspaceId,
    /// The conversation it belongs to.
    pub conversation: ConversationId,
    /// The file.
    pub file: FileId,
}

/// A file's content sealed under a fresh file key, and that key wrapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedFile {
    /// Version of the workspace data key that wraps the file key.
    pub key_version: i32,
    /// The file key, wrapped by the workspace data key.
    pub wrapped_key: Vec<u8>,
    /// The sealed body (the adapter's chunked layout).
    pub body: Vec<u8>,
}

/// Authenticated encryption of file bodies, in chunks, with a fresh key per file.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait FileCipher: Send + Sync {
    /// Draws a fresh file key, seals `plaintext` with it in chunks bound to `ctx`, and wraps
    /// the key under the workspace's current data key.
    ///
    /// # Errors
    /// Opaque failure when the workspace key cannot be loaded or created.
    async fn seal(&self, ctx: &FileContext, plaintext: &[u8]) -> Result<SealedFile, RepoError>;

    /// Unwraps the file key and opens every chunk, checking order, completeness and binding.
    ///
    /// # Errors
    /// Failure when the key version is unknown or any authentication fails (tampering,
    /// truncation, reordering, a chunk or key from another file).
    async fn open(&self, ctx: &FileContext, sealed: &SealedFile) -> Result<Vec<u8>, RepoError>;
}
