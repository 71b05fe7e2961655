//! Ports of the files aggregate.

use async_trait::async_trait;
use futures_util::stream::BoxStream;

use crate::cipher::Sealed;
use crate::error::RepoError;
use crate::file::{FileSeals, SealedFileRow, StoredFile};
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

    /// The rows of those of `ids` that exist, in one query, in no particular order (what a
    /// message's attachments are checked against).
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn find_files(&self, ids: &[FileId]) -> Result<Vec<StoredFile>, RepoError>;

    /// Re-encryption's reader: the sealed name and wrapped key of the workspace's files of
    /// which either is under a key version below `below_version`, ordered by file id,
    /// strictly after `after` when given, at most `limit`.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn sealed_files_in_workspace(
        &self,
        workspace: WorkspaceId,
        below_version: i32,
        after: Option<FileId>,
        limit: u32,
    ) -> Result<Vec<SealedFileRow>, RepoError>;

    /// Re-encryption's writer: replaces a file's sealed name and wrapped key with `new` only
    /// if both still are exactly `expected` (same versions and bytes), so a concurrent run
    /// that got there first wins. `false` when nothing was replaced.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn replace_file_seals(&self, id: FileId, expected: &FileSeals, new: &FileSeals) -> Result<bool, RepoError>;
}

/// Bytes read from the blob store, in pieces of any size, as they arrive.
pub type BlobStream = BoxStream<'static, Result<Vec<u8>, RepoError>>;

/// Storage of sealed file bodies under opaque keys chosen by the domain (random; never a
/// client-supplied path). Objects are written whole (uploads are capped, 25 MiB by default)
/// and read as a stream, so a download never holds a whole body.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores `bytes` under `key`. Keys are fresh (128 random bits), so this never replaces
    /// an object; adapters refuse to when the store lets them tell.
    ///
    /// # Errors
    /// [`RepoError`] when the key is malformed or the object cannot be written.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), RepoError>;

    /// The object under `key` as a stream of its bytes, `None` when there is none. Whether
    /// the object exists is known when this returns; a failure while streaming is an error
    /// item (after which the stream ends).
    ///
    /// # Errors
    /// [`RepoError`] when the key is malformed or the store cannot be read.
    async fn read(&self, key: &str) -> Result<Option<BlobStream>, RepoError>;

    /// Removes the object under `key` (absent is fine).
    ///
    /// # Errors
    /// [`RepoError`] when the key is malformed or the store cannot be written.
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

    /// Unwraps the file key (`wrapped`, under the workspace data key of its version) and
    /// returns an opener of the body's chunks as they arrive.
    ///
    /// # Errors
    /// Failure when the key version is unknown (shredded) or the wrapped key does not open
    /// under `ctx` (another file, conversation or workspace).
    async fn opener(&self, ctx: &FileContext, wrapped: &Sealed) -> Result<Box<dyn FileOpener>, RepoError>;
}

/// Opens one sealed body incrementally: bytes go in as the blob store hands them over, in
/// pieces of any size, and each chunk's plaintext comes out once it is authenticated, so at
/// most about two chunks are held. Order, completeness and binding are checked as
/// [`FileCipher`]'s adapter lays them out (reordered, missing, truncated, appended or
/// foreign chunks fail).
pub trait FileOpener: Send {
    /// Takes the next sealed bytes and appends to `plaintext` the plaintext of every chunk
    /// they complete (a chunk is opened once the bytes after it show it is not the last).
    ///
    /// # Errors
    /// Failure when the layout is malformed or a chunk fails authentication; nothing of that
    /// chunk is appended, and every later call fails too.
    fn push(&mut self, sealed: &[u8], plaintext: &mut Vec<u8>) -> Result<(), RepoError>;

    /// Ends the body: opens what remains as its final chunk and appends its plaintext.
    ///
    /// # Errors
    /// Failure when the body was empty, cut short, or its final chunk fails authentication
    /// (or was not sealed as the final one).
    fn finish(self: Box<Self>, plaintext: &mut Vec<u8>) -> Result<(), RepoError>;
}
