//! The operator commands (`chat-server rotate-keys | reencrypt | shred-workspace`,
//! `chat_server::admin`) against a running server's store: rotation, re-encryption and
//! crypto-shredding, in-process through `Admin` and through the built binary, for message
//! content and for files (wrapped file keys and sealed names; bodies untouched).

use std::sync::Arc;

use chat_crypto::{EnvelopeCipher, MasterKey};
use chat_domain::cipher::{ContentCipher, KeyRepository, SealContext, Sealed};
use chat_domain::file::{FileRepository, StoredFile};
use chat_domain::ids::{ConversationId, FileId, MessageId, WorkspaceId};
use chat_domain::message::{MessageRepository, StoredMessage};
use chat_protocol::{AuditEntry, Message, Page};
use chat_server::Settings;
use chat_server::admin::{Admin, AdminError};
use uuid::Uuid;

use crate::files::{download, header, uploaded};
use crate::helpers::{Backend, Storage, TestApp, TestUser};

/// The master key every scenario's server runs with, so the test can open rows itself.
const MASTER_HEX: &str = "5e1d8f0c2b3a4e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7";

/// Runs each scenario once on SQLite and once on PostgreSQL (skipped when PostgreSQL is
/// unavailable and not required), with a server whose key cache re-checks the store at once.
macro_rules! on_both_stores_with_keys {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let setup = super::Setup::spawn(super::Backend::Sqlite).await.expect("sqlite");
                    super::$name(setup).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some(setup) = super::Setup::spawn(super::Backend::Postgres).await else { return };
                    super::$name(setup).await;
                }
            }
        )*
    };
}

on_both_stores_with_keys!(
    rotation_seals_new_messages_under_the_next_version_and_old_ones_still_read,
    reencryption_reseals_every_old_message_identically_and_a_second_run_does_nothing,
    shredding_leaves_rows_nobody_can_open_and_spares_other_workspaces,
    reencryption_rewraps_file_keys_and_names_and_files_download_identically_until_shredded,
);

struct Setup {
    app: TestApp,
    database_url: String,
    admin: Admin,
    /// The store, read directly (as the server's own rows).
    messages: Arc<dyn MessageRepository>,
    keys: Arc<dyn KeyRepository>,
    files: Arc<dyn FileRepository>,
}

fn admin_settings(database_url: &str) -> Settings {
    let vars = [("DATABASE_URL", database_url), ("ENCRYPTION_KEY", MASTER_HEX), ("DATABASE_POOL_SIZE", "2")];
    Settings::from_vars(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))).expect("settings")
}

impl Setup {
    async fn spawn(backend: Backend) -> Option<Self> {
        let app = TestApp::spawn_with(backend, &[("ENCRYPTION_KEY", MASTER_HEX), ("KEY_REFRESH_SECONDS", "0")]).await?;
        let database_url = match &app.storage {
            Storage::Sqlite { path } => format!("sqlite://{}", path.display()),
            Storage::Postgres { url } => url.clone(),
            Storage::Remote => unreachable!("spawned locally"),
        };
        let (messages, keys, files): (Arc<dyn MessageRepository>, Arc<dyn KeyRepository>, Arc<dyn FileRepository>) =
            match backend {
                Backend::Sqlite => {
                    let store = Arc::new(chat_sqlite::SqliteStore::open(&database_url, 2).await.expect("open sqlite"));
                    (store.clone(), store.clone(), store)
                }
                Backend::Postgres => {
                    let store = Arc::new(chat_postgres::PgStore::connect(&database_url, 2).await.expect("connect"));
                    (store.clone(), store.clone(), store)
                }
            };
        let admin = Admin::open(&admin_settings(&database_url)).await.expect("admin opens the store");
        Some(Self { app, database_url, admin, messages, keys, files })
    }

    async fn stored(&self, message: &Message) -> StoredMessage {
        self.messages.find_message(MessageId::from_uuid(message.id)).await.expect("find").expect("stored")
    }

    async fn version(&self, message: &Message) -> i32 {
        self.stored(message).await.content.expect("sealed").key_version
    }

    /// Opens a stored row with a fresh cipher holding the server's master key.
    async fn open(&self, workspace: Uuid, message: &Message) -> Result<String, chat_domain::error::RepoError> {
        let stored = self.stored(message).await;
        let cipher = EnvelopeCipher::new(MasterKey::from_hex(MASTER_HEX).expect("key"), self.keys.clone());
        let ctx = SealContext {
            workspace: WorkspaceId::from_uuid(workspace),
            conversation: ConversationId::from_uuid(message.conversation_id),
            message: MessageId::from_uuid(message.id),
            field: "content",
        };
        let sealed: Sealed = stored.content.expect("sealed");
        cipher.open(&ctx, &sealed).await.map(|bytes| String::from_utf8(bytes).expect("utf-8"))
    }

    async fn file_row(&self, id: Uuid) -> StoredFile {
        self.files.find_file(FileId::from_uuid(id)).await.expect("find").expect("stored")
    }

    /// The sealed body of a file, as its blob sits in the server's directory.
    fn blob(&self, row: &StoredFile) -> Vec<u8> {
        let dir = self.app.data_dir.as_deref().expect("data dir");
        std::fs::read(dir.join("files").join(&row.storage_key)).expect("blob")
    }

    /// Runs the built binary on this store, as an operator would; its stdout, trimmed.
    async fn run(&self, args: &[&str]) -> String {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args(args)
            .env_clear()
            .env("DATABASE_URL", &self.database_url)
            .env("ENCRYPTION_KEY", MASTER_HEX)
            .env("RUST_LOG", "warn")
            .output()
            .await
            .expect("run chat-server");
        let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert!(output.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&output.stderr));
        stdout
    }

    async fn audit(&self, owner: &TestUser, workspace: Uuid) -> Vec<AuditEntry> {
        let reply = self.app.get(&format!("/workspaces/{workspace}/audit"), owner).await;
        reply.assert_status(200);
        reply.json::<Page<AuditEntry>>().items
    }
}

fn contents(page: &Page<Message>) -> Vec<&str> {
    page.items.iter().map(|m| m.content.as_str()).collect()
}

async fn rotation_seals_new_messages_under_the_next_version_and_old_ones_still_read(setup: Setup) {
    let app = &setup.app;
    let cast = app.cast().await;
    let team = app.group(&cast.alice, cast.workspace, "team", &[&cast.bob]).await;
    let before = app.send(&cast.alice, team.id, "before the rotation").await;
    assert_eq!(setup.version(&before).await, 1);

    let workspace = WorkspaceId::from_uuid(cast.workspace);
    assert_eq!(setup.admin.rotate(workspace).await.expect("rotate"), 2);
    let after = app.send(&cast.bob, team.id, "after the rotation").await;
    assert_eq!(setup.version(&after).await, 2);
    assert_eq!(setup.version(&before).await, 1, "nothing is re-encrypted by a rotation");
    // Newest first.
    assert_eq!(contents(&app.messages(&cast.alice, team.id, "").await), ["after the rotation", "before the rotation"]);

    let rotated: Vec<_> =
        setup.audit(&cast.alice, cast.workspace).await.into_iter().filter(|e| e.action == "key_rotated").collect();
    assert_eq!(rotated.len(), 1);
    assert_eq!((rotated[0].actor_id, rotated[0].target.as_deref()), (None, Some("version:2")));

    // `--all` rotates every workspace holding keys (the other one has none yet), once each.
    let all = setup.admin.rotate_all().await.expect("rotate all");
    assert_eq!(all, [(workspace, 3)]);
    assert!(matches!(setup.admin.rotate(WorkspaceId::generate()).await, Err(AdminError::UnknownWorkspace(_))));
}

async fn reencryption_reseals_every_old_message_identically_and_a_second_run_does_nothing(setup: Setup) {
    let app = &setup.app;
    let cast = app.cast().await;
    let team = app.group(&cast.alice, cast.workspace, "team", &[&cast.bob]).await;
    let general = app.channel(&cast.alice, cast.workspace, "general", &[]).await;
    let mut sent = Vec::new();
    for i in 0..7 {
        let conversation = if i % 2 == 0 { team.id } else { general.id };
        sent.push(app.send(&cast.alice, conversation, &format!("message {i} ✓")).await);
    }
    // An edited and a deleted message, both before the rotation.
    app.call(
        reqwest::Method::PATCH,
        &format!("/chat/messages/{}", sent[1].id),
        Some(&cast.alice.token),
        Some(serde_json::json!({"content": "message 1 edited"})),
    )
    .await
    .assert_status(200);
    app.delete(&format!("/chat/messages/{}", sent[3].id), &cast.alice).await.assert_status(204);
    let elsewhere = app.group(&cast.mallory, cast.elsewhere, "far", &[]).await;
    let foreign = app.send(&cast.mallory, elsewhere.id, "another workspace").await;
    let listed_before = (app.messages(&cast.alice, team.id, "").await, app.messages(&cast.alice, general.id, "").await);

    let workspace = WorkspaceId::from_uuid(cast.workspace);
    setup.admin.rotate(workspace).await.expect("rotate");
    let newer = app.send(&cast.bob, team.id, "already under version 2").await;
    let done = setup.admin.reencrypt(workspace, 2).await.expect("reencrypt");
    assert_eq!((done.version, done.resealed, done.changed), (2, 6, 0), "7 sent, 1 deleted, the newer one skipped");

    for message in sent.iter().filter(|m| m.id != sent[3].id).chain([&newer]) {
        assert_eq!(setup.version(message).await, 2, "{}", message.content);
    }
    assert_eq!(setup.stored(&sent[3]).await.content, None);
    assert_eq!(setup.version(&foreign).await, 1, "other workspaces are not touched");
    let listed_after = (app.messages(&cast.alice, team.id, "").await, app.messages(&cast.alice, general.id, "").await);
    assert_eq!(listed_after.0.items[0].id, newer.id);
    assert_eq!(listed_after.0.items[1..], listed_before.0.items[..], "contents, edits and deletions read identically");
    assert_eq!(listed_after.1.items, listed_before.1.items);

    let bytes_before: Vec<_> = {
        let mut out = Vec::new();
        for message in &sent {
            out.push(setup.stored(message).await.content);
        }
        out
    };
    let again = setup.admin.reencrypt(workspace, 100).await.expect("reencrypt again");
    assert_eq!((again.version, again.resealed, again.changed), (2, 0, 0));
    for (message, before) in sent.iter().zip(bytes_before) {
        assert_eq!(setup.stored(message).await.content, before, "a second run rewrites nothing");
    }
}

async fn shredding_leaves_rows_nobody_can_open_and_spares_other_workspaces(setup: Setup) {
    let app = &setup.app;
    let cast = app.cast().await;
    let team = app.group(&cast.alice, cast.workspace, "team", &[&cast.bob]).await;
    let first = app.send(&cast.alice, team.id, "first secret").await;
    setup.admin.rotate(WorkspaceId::from_uuid(cast.workspace)).await.expect("rotate");
    let second = app.send(&cast.bob, team.id, "second secret").await;
    let far = app.group(&cast.mallory, cast.elsewhere, "far", &[]).await;
    let spared = app.send(&cast.mallory, far.id, "still readable").await;
    assert_eq!(setup.open(cast.workspace, &first).await.expect("opens before"), "first secret");
    let found = app.get(&format!("/chat/search?workspaceId={}&q=secret", cast.workspace), &cast.alice).await;
    found.assert_status(200);
    assert_eq!(found.body["items"].as_array().map(Vec::len), Some(2));

    // Through the built binary, as an operator would.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["shred-workspace", "--workspace", &cast.workspace.to_string(), "--yes"])
        .env_clear()
        .env("DATABASE_URL", &setup.database_url)
        .env("ENCRYPTION_KEY", MASTER_HEX)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run chat-server");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&output.stderr));
    let line = stdout.trim();
    let prefix = format!("workspace {}: 2 key version(s) destroyed, ", cast.workspace);
    let tags = line.strip_prefix(&prefix).and_then(|rest| rest.strip_suffix(" search tag(s) dropped"));
    assert!(tags.and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n > 0), "{line}");

    // The rows are still there, as ciphertext the master key can no longer open.
    for message in [&first, &second] {
        let stored = setup.stored(message).await;
        assert!(stored.content.is_some_and(|c| !c.bytes.is_empty()));
        assert!(setup.open(cast.workspace, message).await.is_err(), "{} opened after shredding", message.content);
    }
    assert_eq!(setup.keys.workspace_keys(WorkspaceId::from_uuid(cast.workspace)).await.expect("keys"), []);
    // The server answers `internal` for them (its cache re-checks at once in this setup).
    app.get(&format!("/chat/conversations/{}/messages", team.id), &cast.alice).await.assert_error(500, "internal");
    let found = app.get(&format!("/chat/search?workspaceId={}&q=secret", cast.workspace), &cast.alice).await;
    found.assert_status(200);
    assert_eq!(found.body["items"].as_array().map(Vec::len), Some(0), "the blind index is gone too");

    // Another workspace is unaffected.
    assert_eq!(setup.open(cast.elsewhere, &spared).await.expect("opens"), "still readable");
    assert_eq!(contents(&app.messages(&cast.mallory, far.id, "").await), ["still readable"]);

    let shredded: Vec<_> = setup
        .audit(&cast.alice, cast.workspace)
        .await
        .into_iter()
        .filter(|e| e.action == "workspace_shredded")
        .collect();
    assert_eq!(shredded.len(), 1);
    assert_eq!((shredded[0].actor_id, shredded[0].target.as_deref()), (None, Some("versions:2")));
}

async fn reencryption_rewraps_file_keys_and_names_and_files_download_identically_until_shredded(setup: Setup) {
    let app = &setup.app;
    let cast = app.cast().await;
    let ws = cast.workspace.to_string();
    let team = app.group(&cast.alice, cast.workspace, "team", &[&cast.bob]).await.id;
    let large: Vec<u8> = b"rotating file body, ".iter().copied().cycle().take(150_000).collect();
    let big = uploaded(app, &cast.alice, cast.workspace, team, "plan été.txt", &large).await;
    let small = uploaded(app, &cast.bob, cast.workspace, team, "note.txt", b"small file").await;
    let far = app.group(&cast.mallory, cast.elsewhere, "far", &[]).await.id;
    let foreign = uploaded(app, &cast.mallory, cast.elsewhere, far, "other.txt", b"elsewhere").await;
    let mut before = Vec::new();
    for id in [big, small] {
        let (status, headers, bytes) = download(app, &cast.bob, id).await;
        assert_eq!(status, 200);
        let row = setup.file_row(id).await;
        assert_eq!((row.key_version, row.name.key_version), (1, 1));
        let blob = setup.blob(&row);
        before.push((id, header(&headers, "content-disposition").to_owned(), bytes, row, blob));
    }
    let foreign_row = setup.file_row(foreign).await;

    assert_eq!(setup.admin.rotate(WorkspaceId::from_uuid(cast.workspace)).await.expect("rotate"), 2);
    let newer = uploaded(app, &cast.alice, cast.workspace, team, "newer.txt", b"after the rotation").await;
    let newer_row = setup.file_row(newer).await;
    assert_eq!((newer_row.key_version, newer_row.name.key_version), (2, 2));

    let line = setup.run(&["reencrypt", "--workspace", &ws]).await;
    assert!(line.starts_with(&format!("workspace {ws}: key version 2, ")), "{line}");
    assert!(line.ends_with(", 2 file(s) re-sealed, 0 file(s) changed meanwhile"), "{line}");

    for (id, disposition, bytes, row, blob) in &before {
        let after = setup.file_row(*id).await;
        assert_eq!((after.key_version, after.name.key_version), (2, 2), "the row carries the new version");
        assert_ne!(after.wrapped_file_key, row.wrapped_file_key, "the file key is wrapped anew");
        assert_ne!(after.name.bytes, row.name.bytes, "the name is sealed anew");
        let rest = StoredFile {
            name: row.name.clone(),
            wrapped_file_key: row.wrapped_file_key.clone(),
            key_version: row.key_version,
            ..after.clone()
        };
        assert_eq!(rest, *row, "nothing else of the row changes");
        assert_eq!(setup.blob(&after), *blob, "the body is not re-encrypted: the file key is the same");
        let (status, headers, downloaded) = download(app, &cast.bob, *id).await;
        assert_eq!(status, 200);
        assert_eq!(downloaded, *bytes, "byte-identical after re-encryption");
        assert_eq!(header(&headers, "content-disposition"), disposition, "same name");
    }
    assert_eq!(setup.file_row(newer).await, newer_row, "already current: untouched");
    assert_eq!(setup.file_row(foreign).await, foreign_row, "other workspaces are not touched");

    let again = setup.run(&["reencrypt", "--workspace", &ws]).await;
    assert!(again.ends_with(", 0 file(s) re-sealed, 0 file(s) changed meanwhile"), "{again}");

    setup.run(&["shred-workspace", "--workspace", &ws, "--yes"]).await;
    for id in [big, small, newer] {
        let (status, _, bytes) = download(app, &cast.bob, id).await;
        assert_eq!(status, 500, "a shredded workspace's file does not open");
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("an error body");
        assert_eq!(body["error"]["code"], "internal");
    }
    let (status, _, bytes) = download(app, &cast.mallory, foreign).await;
    assert_eq!((status, bytes.as_slice()), (200, &b"elsewhere"[..]), "another workspace's file still opens");
}

#[tokio::test]
async fn the_binary_refuses_incomplete_admin_commands_with_its_usage() {
    for args in [
        &["shred-workspace", "--workspace", "0190f0f0-f0f0-7000-8000-000000000001"][..],
        &["rotate-keys"],
        &["reencrypt", "--workspace", "nope"],
        &["frobnicate"],
    ] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args(args)
            .env_clear()
            .output()
            .await
            .expect("run chat-server");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("usage: chat-server"), "{args:?}");
        assert!(output.stdout.is_empty());
    }
}

#[tokio::test]
async fn an_admin_command_never_generates_a_master_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["rotate-keys", "--all"])
        .env_clear()
        .env("DATA_DIR", dir.path())
        .output()
        .await
        .expect("run chat-server");
    assert!(!output.status.success());
    assert!(!dir.path().join("master.key").exists());
}
