//! What only the embedded store has: a database file on disk. Opening creates it (and its
//! directories) and keeps it across restarts; and its bytes hold message content only as the
//! sealed bytes the domain handed over — no index, full-text table or other copy beside them.

use std::path::Path;

use chat_domain::cipher::Sealed;
use chat_domain::conversation::{
    Conversation, ConversationRepository, ConversationRole, ConversationType, Member, NewConversation,
};
use chat_domain::ids::{ConversationId, MessageId, UserId, WorkspaceId};
use chat_domain::message::{InsertOutcome, MessagePage, MessageRepository, MessageType, MessageWindow, NewMessage};
use chat_domain::user::{DisplayName, Email, NewUser, PasswordHash, User, UserRepository};
use chat_domain::workspace::{Name, Workspace, WorkspaceRepository};
use chat_sqlite::SqliteStore;
use chrono::{DateTime, TimeZone, Utc};

fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single().expect("a valid instant") + chrono::Duration::seconds(secs)
}

fn url_of(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

async fn user(store: &SqliteStore, name: &str) -> User {
    let new = NewUser {
        id: UserId::generate(),
        email: Email::parse(&format!("{name}@example.com")).expect("e-mail"),
        display_name: DisplayName::parse(name).expect("name"),
        password_hash: PasswordHash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
        created_at: at(0),
    };
    store.create_user(&new).await.expect("create a user")
}

async fn group(store: &SqliteStore, owner: &User) -> Conversation {
    let workspace = Workspace {
        id: WorkspaceId::generate(),
        name: Name::parse("name", "Acme").expect("name"),
        slug: "acme".to_owned(),
        created_by: owner.id,
        created_at: at(0),
    };
    store.create_workspace(&workspace).await.expect("create a workspace");
    let conversation = Conversation {
        id: ConversationId::generate(),
        workspace_id: workspace.id,
        kind: ConversationType::Group,
        name: Some("general".to_owned()),
        description: None,
        icon: None,
        document_id: None,
        is_encrypted: false,
        max_participants: 100,
        created_by: owner.id,
        last_seq: 0,
        created_at: at(0),
        updated_at: at(0),
        archived_at: None,
    };
    let admin = Member {
        conversation_id: conversation.id,
        user_id: owner.id,
        role: ConversationRole::Admin,
        joined_at: at(0),
        last_read_seq: 0,
        last_read_at: None,
        is_muted: false,
    };
    let new = NewConversation { conversation, unique_key: None, members: vec![admin] };
    store.create_conversation(&new).await.expect("create a conversation").into_inner()
}

fn message(conversation: &Conversation, sender: &User, content: Sealed, secs: i64) -> NewMessage {
    NewMessage {
        id: MessageId::generate(),
        conversation_id: conversation.id,
        sender_id: sender.id,
        client_msg_id: Some(format!("client-{secs}")),
        kind: MessageType::Text,
        content,
        reply_to_id: None,
        attachments: vec![],
        search: None,
        created_at: at(secs),
    }
}

/// Every offset at which `needle` occurs in `haystack`.
fn occurrences(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| i).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_creates_the_directories_and_the_file_and_reopening_keeps_the_data() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("data").join("nested").join("chat.db");

    let store = SqliteStore::open(&url_of(&path), 2).await.expect("open a new database");
    store.ping().await.expect("ping");
    let ada = user(&store, "ada").await;
    drop(store);
    assert!(path.is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o077, 0, "the database file is readable by its owner only, got {mode:o}");
    }

    // A bare path names the same file; migrations that already ran are not run again.
    let reopened = SqliteStore::open(path.to_str().expect("a UTF-8 path"), 2).await.expect("reopen");
    assert_eq!(reopened.find_user(ada.id).await.expect("find"), Some(ada));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_files_hold_message_content_only_as_the_sealed_bytes() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("chat.db");
    let store = SqliteStore::open(&url_of(&path), 2).await.expect("open");
    let ada = user(&store, "ada").await;
    let conversation = group(&store, &ada).await;

    // Sealed bytes as chat-crypto lays them out (nonce ‖ ciphertext ‖ tag), with words in
    // the middle that any word index or full-text table beside them would copy out.
    let marker: &[u8] = b"canary words only the sealed bytes may hold";
    let mut bytes = vec![0x9c, 0x01, 0xe7, 0x44, 0x00, 0xff, 0x10, 0x3a, 0x5b, 0x7d, 0x02, 0xc8];
    bytes.extend_from_slice(marker);
    bytes.extend_from_slice(&[
        0xa1, 0x00, 0x4f, 0xee, 0x19, 0x73, 0x08, 0xd2, 0x6e, 0x90, 0x31, 0xbb, 0x05, 0xfa, 0x27, 0x88,
    ]);
    let sealed = Sealed { key_version: 1, bytes };
    let sent = match store.insert_message(&message(&conversation, &ada, sealed.clone(), 1)).await.expect("insert") {
        InsertOutcome::Inserted(sent) => sent,
        other => panic!("expected an insert, got {other:?}"),
    };
    assert_eq!(sent.content.as_ref(), Some(&sealed));
    // Exercise the other paths that touch a message: a reaction, listings, a second message.
    store.toggle_reaction(sent.id, ada.id, "👍", at(2)).await.expect("react").expect("the message exists");
    let other = Sealed { key_version: 1, bytes: vec![0x42; 40] };
    store.insert_message(&message(&conversation, &ada, other, 3)).await.expect("insert");
    let page = MessagePage { window: MessageWindow::Latest { before: None, offset: 0 }, limit: 50 };
    assert_eq!(store.list_messages(conversation.id, &page).await.expect("list").len(), 2);
    store.list_conversations_of(conversation.workspace_id, ada.id).await.expect("list conversations");

    // Scan the files as they are on disk right now (committed pages live in the WAL until a
    // checkpoint moves them into the main file), then again after a checkpoint on reopen.
    let files = || {
        let mut all = std::fs::read(&path).expect("read the database file");
        if let Ok(wal) = std::fs::read(path.with_file_name("chat.db-wal")) {
            all.extend_from_slice(&wal);
        }
        all
    };
    let check = |all: &[u8]| {
        let words = occurrences(all, b"canary");
        assert!(!words.is_empty(), "the scan must see the stored message");
        let prefix = 12;
        for offset in words {
            let start = offset.checked_sub(prefix).expect("a copy starts with the sealed prefix");
            assert_eq!(
                all.get(start..start + sealed.bytes.len()),
                Some(sealed.bytes.as_slice()),
                "the bytes at {offset} are a fragment, not the sealed value the store was given"
            );
        }
    };
    check(&files());
    drop(store);
    // Closing the last connection checkpoints the WAL into the main file.
    let reopened = SqliteStore::open(&url_of(&path), 1).await.expect("reopen");
    reopened.ping().await.expect("ping");
    check(&files());
}
