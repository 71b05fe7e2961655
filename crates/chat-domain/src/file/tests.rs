//! In-memory file ports for the domain's harness, and the file service's tests.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};

use crate::audit::AuditAction;
use crate::cipher::{SealContext, Sealed};
use crate::conversation::ConversationRole::{Admin, Member as Plain};
use crate::conversation::ConversationType;
use crate::error::{DomainError, RepoError};
use crate::file::{
    BlobStore, BlobStream, FileBody, FileCipher, FileContext, FileOpener, FileRepository, FileSeals, SealedFile,
    SealedFileRow, StoredFile, UploadFile,
};
use crate::ids::{FileId, MessageId, UserId, WorkspaceId};
use crate::realtime::RateKind;
use crate::tests::{Scene, fake_open, fake_seal};

/// File rows in memory.
#[derive(Debug, Default)]
pub(crate) struct MemoryFiles {
    rows: Mutex<Vec<StoredFile>>,
}

impl MemoryFiles {
    /// Every stored row.
    pub(crate) fn all(&self) -> Vec<StoredFile> {
        self.rows.lock().expect("files lock").clone()
    }
}

#[async_trait]
impl FileRepository for MemoryFiles {
    async fn insert_file(&self, file: &StoredFile) -> Result<(), RepoError> {
        self.rows.lock().expect("files lock").push(file.clone());
        Ok(())
    }

    async fn find_file(&self, id: FileId) -> Result<Option<StoredFile>, RepoError> {
        Ok(self.rows.lock().expect("files lock").iter().find(|f| f.id == id).cloned())
    }

    async fn find_files(&self, ids: &[FileId]) -> Result<Vec<StoredFile>, RepoError> {
        Ok(self.rows.lock().expect("files lock").iter().filter(|f| ids.contains(&f.id)).cloned().collect())
    }

    async fn sealed_files_in_workspace(
        &self,
        workspace: WorkspaceId,
        below_version: i32,
        after: Option<FileId>,
        limit: u32,
    ) -> Result<Vec<SealedFileRow>, RepoError> {
        let mut rows: Vec<SealedFileRow> = self
            .all()
            .into_iter()
            .filter(|f| f.workspace_id == workspace && after.is_none_or(|a| f.id.as_uuid() > a.as_uuid()))
            .filter(|f| f.key_version < below_version || f.name.key_version < below_version)
            .map(|f| SealedFileRow { id: f.id, conversation_id: f.conversation_id, seals: f.seals() })
            .collect();
        rows.sort_by_key(|r| r.id.as_uuid());
        rows.truncate(limit as usize);
        Ok(rows)
    }

    async fn replace_file_seals(&self, id: FileId, expected: &FileSeals, new: &FileSeals) -> Result<bool, RepoError> {
        let mut rows = self.rows.lock().expect("files lock");
        let Some(row) = rows.iter_mut().find(|f| f.id == id && f.seals() == *expected) else { return Ok(false) };
        row.name = new.name.clone();
        row.wrapped_file_key = new.file_key.bytes.clone();
        row.key_version = new.file_key.key_version;
        Ok(true)
    }
}

impl MemoryFiles {
    /// Changes a stored row in place (to test what the service does with odd rows).
    pub(crate) fn update(&self, id: FileId, change: impl FnOnce(&mut StoredFile)) {
        let mut rows = self.rows.lock().expect("files lock");
        change(rows.iter_mut().find(|f| f.id == id).expect("the row exists"));
    }
}

/// Blobs in memory, read back in pieces of [`MemoryBlobs::PIECE`] bytes; the read stream can
/// be made to fail after some pieces, as a store that drops the connection would.
#[derive(Debug, Default)]
pub(crate) struct MemoryBlobs {
    objects: Mutex<HashMap<String, Vec<u8>>>,
    fail_after: Mutex<Option<usize>>,
}

impl MemoryBlobs {
    /// Bytes per piece of a read stream.
    pub(crate) const PIECE: usize = 7;

    /// Every stored object.
    pub(crate) fn all(&self) -> Vec<(String, Vec<u8>)> {
        self.objects.lock().expect("blobs lock").iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Changes a stored object in place.
    pub(crate) fn update(&self, key: &str, change: impl FnOnce(&mut Vec<u8>)) {
        change(self.objects.lock().expect("blobs lock").get_mut(key).expect("the object exists"));
    }

    /// Makes later read streams yield an error after `pieces` pieces.
    pub(crate) fn fail_reads_after(&self, pieces: usize) {
        *self.fail_after.lock().expect("blobs lock") = Some(pieces);
    }
}

#[async_trait]
impl BlobStore for MemoryBlobs {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), RepoError> {
        self.objects.lock().expect("blobs lock").insert(key.to_owned(), bytes);
        Ok(())
    }

    async fn read(&self, key: &str) -> Result<Option<BlobStream>, RepoError> {
        let Some(bytes) = self.objects.lock().expect("blobs lock").get(key).cloned() else { return Ok(None) };
        let mut pieces: Vec<Result<Vec<u8>, RepoError>> = bytes.chunks(Self::PIECE).map(|c| Ok(c.to_vec())).collect();
        if let Some(after) = *self.fail_after.lock().expect("blobs lock") {
            pieces.truncate(after);
            pieces.push(Err(RepoError::msg("connection reset")));
        }
        Ok(Some(stream::iter(pieces).boxed()))
    }

    async fn delete(&self, key: &str) -> Result<(), RepoError> {
        self.objects.lock().expect("blobs lock").remove(key);
        Ok(())
    }
}

/// A stand-in for the chunked cipher: the body is [`fake_seal`]'s header for the file, then
/// the plaintext with every byte flipped; the file key is "wrapped" by the fake content
/// cipher. Its opener checks the header as it arrives and releases plaintext piece by piece.
#[derive(Debug)]
pub(crate) struct FakeFileCipher;

fn file_ctx(ctx: &FileContext) -> SealContext {
    SealContext {
        workspace: ctx.workspace,
        conversation: ctx.conversation,
        message: MessageId::from_uuid(ctx.file.as_uuid()),
        field: "file",
    }
}

fn key_ctx(ctx: &FileContext) -> SealContext {
    SealContext { field: "file-key", ..file_ctx(ctx) }
}

#[async_trait]
impl FileCipher for FakeFileCipher {
    async fn seal(&self, ctx: &FileContext, plaintext: &[u8]) -> Result<SealedFile, RepoError> {
        let body = fake_seal(&file_ctx(ctx), plaintext);
        let key = fake_seal(&key_ctx(ctx), b"file key");
        Ok(SealedFile { key_version: key.key_version, wrapped_key: key.bytes, body: body.bytes })
    }

    async fn opener(&self, ctx: &FileContext, wrapped: &Sealed) -> Result<Box<dyn FileOpener>, RepoError> {
        fake_open(&key_ctx(ctx), wrapped).ok_or(RepoError::msg("file key does not unwrap"))?;
        Ok(Box::new(FakeOpener { header: fake_seal(&file_ctx(ctx), b"").bytes, seen: 0, failed: false }))
    }
}

/// Opens [`FakeFileCipher`]'s bodies incrementally.
struct FakeOpener {
    header: Vec<u8>,
    /// Header bytes checked so far.
    seen: usize,
    failed: bool,
}

impl FileOpener for FakeOpener {
    fn push(&mut self, sealed: &[u8], plaintext: &mut Vec<u8>) -> Result<(), RepoError> {
        if self.failed {
            return Err(RepoError::msg("opener already failed"));
        }
        let take = (self.header.len() - self.seen).min(sealed.len());
        if sealed[..take] != self.header[self.seen..self.seen + take] {
            self.failed = true;
            return Err(RepoError::msg("file header does not match"));
        }
        self.seen += take;
        plaintext.extend(sealed[take..].iter().map(|b| b ^ 0xA5));
        Ok(())
    }

    fn finish(self: Box<Self>, _plaintext: &mut Vec<u8>) -> Result<(), RepoError> {
        if self.failed || self.seen < self.header.len() {
            return Err(RepoError::msg("file body is cut short"));
        }
        Ok(())
    }
}

/// The whole plaintext of a download, or the first error.
async fn collect(body: FileBody) -> Result<Vec<u8>, DomainError> {
    let mut out = Vec::new();
    let mut body = body;
    while let Some(piece) = body.next().await {
        let piece = piece?;
        assert!(!piece.is_empty(), "no empty pieces");
        out.extend_from_slice(&piece);
    }
    Ok(out)
}

fn upload(scene: &Scene, conversation: &crate::conversation::Conversation, name: &str, bytes: &[u8]) -> UploadFile {
    UploadFile {
        workspace_id: scene.workspace.id,
        conversation_id: conversation.id,
        name: name.to_owned(),
        content_type: "text/plain".to_owned(),
        bytes: bytes.to_vec(),
    }
}

#[tokio::test]
async fn a_member_uploads_and_downloads_a_file_sealed_under_a_random_storage_key() {
    let mut scene = Scene::new();
    let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
    let group = scene.conversation(ConversationType::Group, &[(&alice, Admin), (&bob, Plain)]);
    let up = upload(&scene, &group, "../notes.txt", b"the secret plan");
    let h = scene.build();

    let record = h.chat.files.upload(alice.id, up).await.expect("upload");
    assert_eq!(record.name.as_str(), "notes.txt");
    assert_eq!(record.size, 15);
    assert_eq!(record.uploader, alice.id);
    assert_eq!(record.storage_key.len(), 32);
    assert!(!record.storage_key.contains("notes"));
    let blobs = h.blobs.all();
    assert_eq!(blobs.len(), 1);
    assert_eq!(blobs[0].0, record.storage_key);
    assert!(!blobs[0].1.windows(6).any(|w| w == b"secret"), "the blob holds no plaintext");
    let rows = h.file_rows.all();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].name.bytes.windows(5).any(|w| w == b"notes"), "the stored name is sealed");
    assert_eq!((rows[0].id, rows[0].size, rows[0].key_version), (record.id, 15, record.key_version));

    let (found, body) = h.chat.files.download(bob.id, record.id).await.expect("download");
    assert_eq!(found, record);
    assert_eq!(collect(body).await.expect("plaintext"), b"the secret plan");
}

#[tokio::test]
async fn a_download_streams_the_plaintext_piece_by_piece_as_the_blob_arrives() {
    let mut scene = Scene::new();
    let alice = scene.alice.clone();
    let group = scene.conversation(ConversationType::Group, &[(&alice, Admin)]);
    let content: Vec<u8> = (0..1000_u32).map(|i| b"streamed"[i as usize % 8]).collect();
    let up = upload(&scene, &group, "big.txt", &content);
    let h = scene.build();
    let record = h.chat.files.upload(alice.id, up).await.expect("upload");

    let (_, mut body) = h.chat.files.download(alice.id, record.id).await.expect("download");
    let mut pieces = Vec::new();
    while let Some(piece) = body.next().await {
        pieces.push(piece.expect("piece"));
    }
    // 7-byte blob pieces: many pieces, none larger than what arrived, together the file.
    assert!(pieces.len() > 100, "{} pieces", pieces.len());
    assert!(pieces.iter().all(|p| !p.is_empty() && p.len() <= MemoryBlobs::PIECE));
    assert_eq!(pieces.concat(), content);
}

#[tokio::test]
async fn a_file_that_fails_before_its_first_piece_is_refused_before_anything_is_sent() {
    let mut scene = Scene::new();
    let alice = scene.alice.clone();
    let group = scene.conversation(ConversationType::Group, &[(&alice, Admin)]);
    let (a, b, c) = (
        upload(&scene, &group, "a", b"first file"),
        upload(&scene, &group, "b", b"second file"),
        upload(&scene, &group, "c", b"third file"),
    );
    let h = scene.build();
    let tampered = h.chat.files.upload(alice.id, a).await.expect("upload");
    let missing = h.chat.files.upload(alice.id, b).await.expect("upload");
    let foreign_key = h.chat.files.upload(alice.id, c).await.expect("upload");

    h.blobs.update(&tampered.storage_key, |bytes| bytes[0] ^= 1);
    h.blobs.delete(&missing.storage_key).await.expect("delete");
    // The wrapped key of another file does not unwrap for this one.
    let other_key = tampered.wrapped_file_key.clone();
    h.file_rows.update(foreign_key.id, |row| row.wrapped_file_key = other_key);
    for id in [tampered.id, missing.id, foreign_key.id] {
        assert!(matches!(h.chat.files.download(alice.id, id).await, Err(DomainError::Internal(_))));
    }
}

#[tokio::test]
async fn a_failure_mid_stream_ends_the_body_with_an_error() {
    let mut scene = Scene::new();
    let alice = scene.alice.clone();
    let group = scene.conversation(ConversationType::Group, &[(&alice, Admin)]);
    let content = vec![b'x'; 500];
    let (first, second, third) = (
        upload(&scene, &group, "a", &content),
        upload(&scene, &group, "b", &content),
        upload(&scene, &group, "c", &content),
    );
    let h = scene.build();
    let cut = h.chat.files.upload(alice.id, first).await.expect("upload");
    let longer = h.chat.files.upload(alice.id, second).await.expect("upload");
    let shorter = h.chat.files.upload(alice.id, third).await.expect("upload");

    // The recorded size is what the response announces: a body that does not add up to it fails.
    h.file_rows.update(longer.id, |row| row.size = 499);
    h.file_rows.update(shorter.id, |row| row.size = 501);
    for id in [longer.id, shorter.id] {
        let (_, body) = h.chat.files.download(alice.id, id).await.expect("the first piece opens");
        assert!(matches!(collect(body).await, Err(DomainError::Internal(_))));
    }

    // The store drops the connection after 20 pieces: some plaintext, then an error, then nothing.
    h.blobs.fail_reads_after(20);
    let (_, mut body) = h.chat.files.download(alice.id, cut.id).await.expect("the first piece opens");
    let mut received = 0;
    let mut failed = false;
    while let Some(piece) = body.next().await {
        assert!(!failed, "nothing follows the error");
        match piece {
            Ok(piece) => received += piece.len(),
            Err(DomainError::Internal(_)) => failed = true,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(failed);
    assert!(received > 0 && received < content.len(), "{received}");
}

#[tokio::test]
async fn a_non_member_or_an_outsider_gets_not_found_and_the_refusal_is_audited() {
    let mut scene = Scene::new();
    let (alice, carol, outsider) = (scene.alice.clone(), scene.carol.clone(), scene.outsider.clone());
    let channel = scene.conversation(ConversationType::Channel, &[(&alice, Admin)]);
    let up = upload(&scene, &channel, "a.txt", b"x");
    let h = scene.build();
    let record = h.chat.files.upload(alice.id, up).await.expect("upload");

    // carol can read the channel but is not a member; the outsider is in another workspace.
    for who in [carol.id, outsider.id, UserId::generate()] {
        assert!(matches!(h.chat.files.download(who, record.id).await, Err(DomainError::NotFound)));
    }
    let audit = h.audit();
    assert_eq!(audit.len(), 3);
    assert!(audit.iter().all(|e| e.action == AuditAction::FileAccessDenied));
    assert_eq!(audit[0].actor, Some(carol.id));
    assert_eq!(audit[0].target, Some(format!("file:{} conversation:{}", record.id, channel.id)));
    // An unknown id is plain not found, not an audited refusal.
    assert!(matches!(h.chat.files.download(alice.id, FileId::generate()).await, Err(DomainError::NotFound)));
    assert!(h.audit().is_empty());
}

#[tokio::test]
async fn uploads_need_posting_rights_the_right_workspace_and_a_live_conversation() {
    let mut scene = Scene::new();
    let (alice, carol, outsider) = (scene.alice.clone(), scene.carol.clone(), scene.outsider.clone());
    let group = scene.conversation(ConversationType::Group, &[(&alice, Admin)]);
    let channel = scene.conversation(ConversationType::Channel, &[(&alice, Admin)]);
    let mut archived = crate::tests::conversation(ConversationType::Group, scene.workspace.id, alice.id);
    archived.archived_at = Some(crate::tests::now());
    scene.put(&archived, &[(&alice, Admin)]);
    let mut wrong_workspace = upload(&scene, &group, "a", b"x");
    wrong_workspace.workspace_id = crate::ids::WorkspaceId::generate();
    let (in_group, in_channel, in_archived) =
        (upload(&scene, &group, "a", b"x"), upload(&scene, &channel, "a", b"x"), upload(&scene, &archived, "a", b"x"));
    let h = scene.build();

    assert!(matches!(h.chat.files.upload(carol.id, in_group.clone()).await, Err(DomainError::NotFound)));
    assert!(matches!(h.chat.files.upload(outsider.id, in_group).await, Err(DomainError::NotFound)));
    assert!(matches!(h.chat.files.upload(alice.id, wrong_workspace).await, Err(DomainError::NotFound)));
    assert!(matches!(h.chat.files.upload(carol.id, in_channel).await, Err(DomainError::Forbidden(_))));
    assert!(matches!(h.chat.files.upload(alice.id, in_archived).await, Err(DomainError::Conflict(_))));
    assert!(h.blobs.all().is_empty());
}

#[tokio::test]
async fn uploads_are_capped_and_rate_limited_per_user() {
    let mut scene = Scene::new();
    let alice = scene.alice.clone();
    let group = scene.conversation(ConversationType::Group, &[(&alice, Admin)]);
    scene.mocks.limits.max_upload_bytes = 4;
    let subject = alice.id.to_string();
    scene
        .mocks
        .limiter
        .expect_acquire()
        .withf(move |kind, s, per_minute| *kind == RateKind::Uploads && s == subject && *per_minute == 3)
        .times(1)
        .returning(|_, _, _| Ok(Err(std::time::Duration::from_secs(20))));
    let (big, small) = (upload(&scene, &group, "a", b"12345"), upload(&scene, &group, "a", b"1234"));
    let h = scene.build();

    assert!(matches!(h.chat.files.upload(alice.id, big).await, Err(DomainError::TooLarge { field: "file", max: 4 })));
    match h.chat.files.upload(alice.id, small).await {
        Err(DomainError::RateLimited { retry_after }) => assert_eq!(retry_after.as_secs(), 20),
        other => panic!("expected rate limited, got {other:?}"),
    }
    assert!(h.blobs.all().is_empty());
}
