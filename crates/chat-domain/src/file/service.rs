//! The files use cases: upload and download.

use std::sync::Arc;

use futures_util::stream::{self, BoxStream, StreamExt};
use uuid::Uuid;

use crate::access::Access;
use crate::audit::{AuditAction, Auditor};
use crate::cipher::{ContentCipher, SealContext, Sealed};
use crate::clock::Clock;
use crate::error::{DomainError, DomainResult, RepoError};
use crate::file::{
    BlobStore, BlobStream, FileCipher, FileContext, FileName, FileOpener, FileRecord, FileRepository, StoredFile,
};
use crate::ids::{ConversationId, FileId, UserId, WorkspaceId};
use crate::realtime::{RateKind, RateLimiter, take_token};

/// An upload, as the delivery layer hands it over.
#[derive(Clone, PartialEq, Eq)]
pub struct UploadFile {
    /// The workspace the client named (must be the conversation's).
    pub workspace_id: WorkspaceId,
    /// The conversation to share it in.
    pub conversation_id: ConversationId,
    /// The client's file name (sanitised here).
    pub name: String,
    /// The type detected from the content's magic bytes by the delivery layer.
    pub content_type: String,
    /// The plaintext.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for UploadFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadFile")
            .field("workspace_id", &self.workspace_id)
            .field("conversation_id", &self.conversation_id)
            .field("size", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// A downloaded file's plaintext, in pieces, each released only once the chunks it comes from
/// have authenticated. A failure (a chunk that does not authenticate, a cut or overlong body,
/// the blob store failing) is an error item, after which the stream ends: whoever relays the
/// body must then abort rather than end it normally, so the reader sees it incomplete.
pub type FileBody = BoxStream<'static, DomainResult<Vec<u8>>>;

/// Upload and download of encrypted files.
#[derive(Clone)]
pub struct FileService {
    access: Access,
    files: Arc<dyn FileRepository>,
    blobs: Arc<dyn BlobStore>,
    cipher: Arc<dyn FileCipher>,
    names: Arc<dyn ContentCipher>,
    limiter: Arc<dyn RateLimiter>,
    clock: Arc<dyn Clock>,
    audit: Auditor,
    uploads_per_minute: u32,
    max_bytes: usize,
}

impl std::fmt::Debug for FileService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileService")
            .field("uploads_per_minute", &self.uploads_per_minute)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl FileService {
    /// Wires the service. `uploads_per_minute` 0 disables the upload limit; `max_bytes` is the
    /// largest plaintext accepted.
    #[must_use]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        access: Access,
        files: Arc<dyn FileRepository>,
        blobs: Arc<dyn BlobStore>,
        cipher: Arc<dyn FileCipher>,
        names: Arc<dyn ContentCipher>,
        limiter: Arc<dyn RateLimiter>,
        clock: Arc<dyn Clock>,
        audit: Auditor,
        uploads_per_minute: u32,
        max_bytes: usize,
    ) -> Self {
        Self { access, files, blobs, cipher, names, limiter, clock, audit, uploads_per_minute, max_bytes }
    }

    /// The largest plaintext accepted, in bytes.
    #[must_use]
    pub const fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Stores a file in a conversation the caller may post in: sealed under a fresh file key,
    /// written to the blob store under a random key, then recorded.
    ///
    /// # Errors
    /// `NotFound` when the caller cannot see the conversation or it is not in `workspace_id`;
    /// `Forbidden` when they may not post there; `Conflict` when it is archived;
    /// `RateLimited` over the per-user upload budget; `TooLarge` above the size cap;
    /// `Internal` on storage or crypto failure.
    #[tracing::instrument(skip(self, upload), fields(%actor, conversation = %upload.conversation_id, size = upload.bytes.len()))]
    pub async fn upload(&self, actor: UserId, upload: UploadFile) -> DomainResult<FileRecord> {
        let view = self.access.view(actor, upload.conversation_id).await?;
        if view.conversation.workspace_id != upload.workspace_id {
            return Err(DomainError::NotFound);
        }
        view.ensure_may_post()?;
        view.ensure_writable()?;
        if upload.bytes.len() > self.max_bytes {
            return Err(DomainError::TooLarge { field: "file", max: self.max_bytes });
        }
        self.take_upload_token(actor).await?;

        let id = FileId::generate();
        let ctx = FileContext { workspace: upload.workspace_id, conversation: upload.conversation_id, file: id };
        let sealed = self.cipher.seal(&ctx, &upload.bytes).await?;
        // 128 random bits (v4 has 122), hex: the only name the blob store ever sees.
        let storage_key = Uuid::new_v4().simple().to_string();
        let record = FileRecord {
            id,
            workspace_id: upload.workspace_id,
            conversation_id: upload.conversation_id,
            uploader: actor,
            name: FileName::sanitize(&upload.name),
            content_type: upload.content_type,
            size: upload.bytes.len() as u64,
            storage_key,
            wrapped_file_key: sealed.wrapped_key,
            key_version: sealed.key_version,
            created_at: self.clock.now(),
        };
        let name = self.names.seal(&name_ctx(&record), record.name.as_str().as_bytes()).await?;
        let stored = StoredFile {
            id,
            workspace_id: record.workspace_id,
            conversation_id: record.conversation_id,
            uploader: actor,
            name,
            content_type: record.content_type.clone(),
            size: record.size,
            storage_key: record.storage_key.clone(),
            wrapped_file_key: record.wrapped_file_key.clone(),
            key_version: record.key_version,
            created_at: record.created_at,
        };
        self.blobs.put(&record.storage_key, sealed.body).await?;
        if let Err(e) = self.files.insert_file(&stored).await {
            if let Err(cleanup) = self.blobs.delete(&record.storage_key).await {
                tracing::warn!(error = %cleanup, "orphan blob left after a failed file insert");
            }
            return Err(e.into());
        }
        Ok(record)
    }

    /// A file and its plaintext as a stream, for a member of its conversation. The body is
    /// never held whole: it is read from the blob store and opened chunk by chunk. The file key
    /// is unwrapped, the blob found and the first piece opened before this returns, so that
    /// an unreadable file fails here, before anything is sent; a later chunk that fails ends
    /// the stream with an error item (see [`FileBody`]).
    ///
    /// # Errors
    /// `NotFound` for an unknown id and for anyone who is not a member of the file's
    /// conversation (that refusal is audited as `file_access_denied`); `Internal` when the
    /// name or the key does not open (e.g. a shredded workspace), the blob is missing, or the
    /// first chunk fails authentication.
    #[tracing::instrument(skip(self), fields(%actor, %id))]
    pub async fn download(&self, actor: UserId, id: FileId) -> DomainResult<(FileRecord, FileBody)> {
        let stored = self.files.find_file(id).await?.ok_or(DomainError::NotFound)?;
        let member = match self.access.view(actor, stored.conversation_id).await {
            Ok(view) => view.member.is_some(),
            Err(DomainError::NotFound) => false,
            Err(e) => return Err(e),
        };
        if !member {
            self.audit
                .record(
                    Some(stored.workspace_id),
                    Some(actor),
                    AuditAction::FileAccessDenied,
                    Some(format!("file:{} conversation:{}", stored.id, stored.conversation_id)),
                )
                .await;
            return Err(DomainError::NotFound);
        }
        let record = self.open_record(stored).await?;
        let ctx = FileContext { workspace: record.workspace_id, conversation: record.conversation_id, file: id };
        let wrapped = Sealed { key_version: record.key_version, bytes: record.wrapped_file_key.clone() };
        let opener = self.cipher.opener(&ctx, &wrapped).await?;
        let blob = self.blobs.read(&record.storage_key).await?.ok_or(RepoError::msg("file blob is missing"))?;
        let mut body = Opening { blob, opener: Some(opener), size: record.size, produced: 0 }.into_body();
        let first = body.next().await.transpose()?;
        Ok((record, stream::iter(first.map(Ok)).chain(body).boxed()))
    }

    /// Opens a stored row's sealed name.
    async fn open_record(&self, stored: StoredFile) -> DomainResult<FileRecord> {
        let mut record = FileRecord {
            id: stored.id,
            workspace_id: stored.workspace_id,
            conversation_id: stored.conversation_id,
            uploader: stored.uploader,
            name: FileName::from_stored(String::new()),
            content_type: stored.content_type,
            size: stored.size,
            storage_key: stored.storage_key,
            wrapped_file_key: stored.wrapped_file_key,
            key_version: stored.key_version,
            created_at: stored.created_at,
        };
        let name = self.names.open(&name_ctx(&record), &stored.name).await?;
        let name = String::from_utf8(name).map_err(|e| crate::error::RepoError::new("file name is not UTF-8", e))?;
        record.name = FileName::from_stored(name);
        Ok(record)
    }

    /// Takes one token of the uploader's budget.
    async fn take_upload_token(&self, actor: UserId) -> DomainResult<()> {
        take_token(&*self.limiter, RateKind::Uploads, &actor.to_string(), self.uploads_per_minute).await
    }
}

/// A sealed body being opened: the blob's pieces go through the opener; the plaintext must add
/// up to the recorded size exactly (the size is what `Content-Length` announces).
struct Opening {
    blob: BlobStream,
    /// `None` once the body has ended (or failed).
    opener: Option<Box<dyn FileOpener>>,
    size: u64,
    produced: u64,
}

impl Opening {
    /// The plaintext, as a stream that ends after its first error.
    fn into_body(self) -> FileBody {
        stream::unfold(Some(self), |state| async move {
            let mut state = state?;
            match state.next_piece().await {
                Ok(Some(piece)) => Some((Ok(piece), Some(state))),
                Ok(None) => None,
                Err(e) => Some((Err(e.into()), None)),
            }
        })
        .boxed()
    }

    /// The next non-empty piece of plaintext, `None` after the last.
    async fn next_piece(&mut self) -> Result<Option<Vec<u8>>, RepoError> {
        loop {
            if self.opener.is_none() {
                return Ok(None);
            }
            let mut plaintext = Vec::new();
            match self.blob.next().await {
                Some(sealed) => {
                    let sealed = sealed?;
                    if let Some(opener) = self.opener.as_mut() {
                        opener.push(&sealed, &mut plaintext)?;
                    }
                }
                None => {
                    if let Some(opener) = self.opener.take() {
                        opener.finish(&mut plaintext)?;
                    }
                }
            }
            self.produced += plaintext.len() as u64;
            if self.produced > self.size {
                return Err(RepoError::msg("file body is longer than its recorded size"));
            }
            if self.opener.is_none() && self.produced != self.size {
                return Err(RepoError::msg("file body is shorter than its recorded size"));
            }
            if !plaintext.is_empty() {
                return Ok(Some(plaintext));
            }
        }
    }
}

/// The seal context of a file's name: bound to its workspace, conversation and id.
fn name_ctx(record: &FileRecord) -> SealContext {
    stored_name_ctx(record.workspace_id, record.conversation_id, record.id)
}

/// [`name_ctx`] from a row's ids (what opens the names of a message's attachments).
pub(crate) fn stored_name_ctx(workspace: WorkspaceId, conversation: ConversationId, file: FileId) -> SealContext {
    FileContext { workspace, conversation, file }.name_seal_context()
}
