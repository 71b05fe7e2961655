//! The files use cases: upload and download.

use std::sync::Arc;

use uuid::Uuid;

use crate::access::Access;
use crate::audit::{AuditAction, Auditor};
use crate::cipher::{ContentCipher, SealContext};
use crate::clock::Clock;
use crate::error::{DomainError, DomainResult};
use crate::file::{BlobStore, FileCipher, FileContext, FileName, FileRecord, FileRepository, SealedFile, StoredFile};
use crate::ids::MessageId;
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

    /// A file and its plaintext, for a member of its conversation.
    ///
    /// # Errors
    /// `NotFound` for an unknown id and for anyone who is not a member of the file's
    /// conversation (that refusal is audited as `file_access_denied`); `Internal` when the
    /// blob is missing or fails authentication.
    #[tracing::instrument(skip(self), fields(%actor, %id))]
    pub async fn download(&self, actor: UserId, id: FileId) -> DomainResult<(FileRecord, Vec<u8>)> {
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
        let body =
            self.blobs.get(&record.storage_key).await?.ok_or(crate::error::RepoError::msg("file blob is missing"))?;
        let ctx = FileContext { workspace: record.workspace_id, conversation: record.conversation_id, file: id };
        let sealed = SealedFile { key_version: record.key_version, wrapped_key: record.wrapped_file_key.clone(), body };
        let plaintext = self.cipher.open(&ctx, &sealed).await?;
        Ok((record, plaintext))
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

/// The seal context of a file's name: bound to its workspace, conversation and id.
fn name_ctx(record: &FileRecord) -> SealContext {
    SealContext {
        workspace: record.workspace_id,
        conversation: record.conversation_id,
        message: MessageId::from_uuid(record.id.as_uuid()),
        field: "file-name",
    }
}
