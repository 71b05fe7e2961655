//! In-memory file ports for the domain's harness, and the file service's tests.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::audit::AuditAction;
use crate::cipher::SealContext;
use crate::conversation::ConversationRole::{Admin, Member as Plain};
use crate::conversation::ConversationType;
use crate::error::{DomainError, RepoError};
use crate::file::{BlobStore, FileCipher, FileContext, FileRepository, SealedFile, StoredFile, UploadFile};
use crate::ids::{FileId, MessageId, UserId};
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
}

/// Blobs in memory.
#[derive(Debug, Default)]
pub(crate) struct MemoryBlobs {
    objects: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemoryBlobs {
    /// Every stored object.
    pub(crate) fn all(&self) -> Vec<(String, Vec<u8>)> {
        self.objects.lock().expect("blobs lock").iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

#[async_trait]
impl BlobStore for MemoryBlobs {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), RepoError> {
        self.objects.lock().expect("blobs lock").insert(key.to_owned(), bytes);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RepoError> {
        Ok(self.objects.lock().expect("blobs lock").get(key).cloned())
    }

    async fn delete(&self, key: &str) -> Result<(), RepoError> {
        self.objects.lock().expect("blobs lock").remove(key);
        Ok(())
    }
}

/// The fake content cipher applied to a whole file, bound to (workspace, conversation, file).
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

#[async_trait]
impl FileCipher for FakeFileCipher {
    async fn seal(&self, ctx: &FileContext, plaintext: &[u8]) -> Result<SealedFile, RepoError> {
        let sealed = fake_seal(&file_ctx(ctx), plaintext);
        Ok(SealedFile { key_version: sealed.key_version, wrapped_key: b"wrapped".to_vec(), body: sealed.bytes })
    }

    async fn open(&self, ctx: &FileContext, sealed: &SealedFile) -> Result<Vec<u8>, RepoError> {
        let as_sealed = crate::cipher::Sealed { key_version: sealed.key_version, bytes: sealed.body.clone() };
        fake_open(&file_ctx(ctx), &as_sealed).ok_or(RepoError::msg("file does not open"))
    }
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

    let (found, plaintext) = h.chat.files.download(bob.id, record.id).await.expect("download");
    assert_eq!(found, record);
    assert_eq!(plaintext, b"the secret plan");
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
