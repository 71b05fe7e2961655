//! Builders shared by the behaviours: users, workspaces, conversations and messages with
//! deterministic timestamps (whole seconds after a fixed instant, exact in every store).

use std::collections::HashMap;
use std::hash::Hash;

use chat_domain::cipher::Sealed;
use chat_domain::conversation::{Conversation, ConversationRole, ConversationType, Created, Member, NewConversation};
use chat_domain::ids::{ConversationId, MessageId, UserId, WorkspaceId};
use chat_domain::message::{InsertOutcome, MessageType, NewMessage, StoredMessage};
use chat_domain::user::{DisplayName, Email, NewUser, PasswordHash, User};
use chat_domain::workspace::{Name, Workspace};
use chrono::{DateTime, TimeZone, Utc};

use crate::Stores;

/// Every page of a listing keyed by `key` (each page strictly after the previous page's last
/// key), asserting no page exceeds `limit`; stops at the first empty page.
pub(crate) async fn all_pages<T, K, F, Fut>(limit: u32, key: impl Fn(&T) -> K, mut page: F) -> Vec<T>
where
    F: FnMut(Option<K>) -> Fut,
    Fut: std::future::Future<Output = Vec<T>>,
{
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let items = page(after.take()).await;
        assert!(items.len() <= limit as usize);
        let Some(last) = items.last() else { break };
        after = Some(key(last));
        out.extend(items);
    }
    out
}

/// `secs` seconds after 2025-01-01T00:00:00Z.
pub(crate) fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single().expect("a valid instant") + chrono::Duration::seconds(secs)
}

/// An account to insert for `name` (e-mail `<name>@example.com`, already lower-case as the
/// domain hands it over).
pub(crate) fn new_user(name: &str) -> NewUser {
    NewUser {
        id: UserId::generate(),
        email: Email::parse(&format!("{name}@example.com")).expect("a valid e-mail"),
        display_name: DisplayName::parse(name).expect("a valid display name"),
        password_hash: PasswordHash(format!("$argon2id$v=19$m=19456,t=2,p=1$salt-of-{name}$hash")),
        created_at: at(0),
    }
}

/// A stored account.
pub(crate) async fn user(stores: &Stores, name: &str) -> User {
    stores.users.create_user(&new_user(name)).await.expect("create a user")
}

/// A workspace row (not stored) created by `owner` at `created_at`.
pub(crate) fn new_workspace(owner: &User, slug: &str, created_at: DateTime<Utc>) -> Workspace {
    Workspace {
        id: WorkspaceId::generate(),
        name: Name::parse("name", slug).expect("a valid name"),
        slug: slug.to_owned(),
        created_by: owner.id,
        created_at,
    }
}

/// A stored workspace owned by `owner`, with `members` added as members at `at(1)`.
pub(crate) async fn workspace(stores: &Stores, owner: &User, slug: &str, members: &[&User]) -> Workspace {
    let workspace = new_workspace(owner, slug, at(0));
    stores.workspaces.create_workspace(&workspace).await.expect("create a workspace");
    for member in members {
        stores
            .workspaces
            .add_workspace_member(workspace.id, member.id, chat_domain::workspace::WorkspaceRole::Member, at(1))
            .await
            .expect("add a workspace member");
    }
    workspace
}

/// A membership of `conversation` joined at `joined_at`, nothing read yet.
pub(crate) fn member(
    conversation: ConversationId,
    user: UserId,
    role: ConversationRole,
    joined_at: DateTime<Utc>,
) -> Member {
    Member {
        conversation_id: conversation,
        user_id: user,
        role,
        joined_at,
        last_read_seq: 0,
        last_read_at: None,
        is_muted: false,
    }
}

/// A conversation (not stored) of `kind` created by `creator` at `created_at`, with the
/// creator as admin followed by `others` as members, all joined at `created_at`.
pub(crate) fn new_conversation(
    workspace: &Workspace,
    kind: ConversationType,
    creator: &User,
    others: &[&User],
    created_at: DateTime<Utc>,
) -> NewConversation {
    let conversation = Conversation {
        id: ConversationId::generate(),
        workspace_id: workspace.id,
        kind,
        name: (kind != ConversationType::Dm).then(|| "general".to_owned()),
        description: None,
        icon: None,
        document_id: None,
        is_encrypted: false,
        max_participants: 100,
        created_by: creator.id,
        last_seq: 0,
        created_at,
        updated_at: created_at,
        archived_at: None,
    };
    let mut members = vec![member(conversation.id, creator.id, ConversationRole::Admin, created_at)];
    members.extend(others.iter().map(|u| member(conversation.id, u.id, ConversationRole::Member, created_at)));
    NewConversation { conversation, unique_key: None, members }
}

/// A stored group created at `at(0)` by `creator` with `others`.
pub(crate) async fn group(stores: &Stores, workspace: &Workspace, creator: &User, others: &[&User]) -> Conversation {
    create(stores, &new_conversation(workspace, ConversationType::Group, creator, others, at(0))).await
}

/// Stores `new`, which must be new.
pub(crate) async fn create(stores: &Stores, new: &NewConversation) -> Conversation {
    match stores.conversations.create_conversation(new).await.expect("create a conversation") {
        Created::New(conversation) => conversation,
        Created::Existing(existing) => panic!("expected a new conversation, got the existing {}", existing.id),
    }
}

/// Opaque sealed bytes derived from `tag`, including bytes that are not valid UTF-8.
pub(crate) fn sealed(tag: &str) -> Sealed {
    let mut bytes = vec![0x00, 0xff, 0xfe];
    bytes.extend_from_slice(tag.as_bytes());
    bytes.push(0x80);
    Sealed { key_version: 1, bytes }
}

/// A text message (not stored) from `sender` at `created_at`.
pub(crate) fn new_message(conversation: &Conversation, sender: &User, created_at: DateTime<Utc>) -> NewMessage {
    NewMessage {
        id: MessageId::generate(),
        conversation_id: conversation.id,
        sender_id: sender.id,
        client_msg_id: None,
        kind: MessageType::Text,
        content: sealed(&format!("from {} at {created_at}", sender.display_name.as_str())),
        reply_to_id: None,
        attachments: vec![],
        search: None,
        created_at,
    }
}

/// Inserts `new`, which must be inserted.
pub(crate) async fn insert(stores: &Stores, new: &NewMessage) -> StoredMessage {
    match stores.messages.insert_message(new).await.expect("insert a message") {
        InsertOutcome::Inserted(message) => message,
        other => panic!("expected an insert, got {other:?}"),
    }
}

/// Sends a text message from `sender` at `created_at`.
pub(crate) async fn send(
    stores: &Stores,
    conversation: &Conversation,
    sender: &User,
    created_at: DateTime<Utc>,
) -> StoredMessage {
    insert(stores, &new_message(conversation, sender, created_at)).await
}

/// Sends a reply to `root` from `sender` at `created_at`.
pub(crate) async fn reply(
    stores: &Stores,
    conversation: &Conversation,
    root: &StoredMessage,
    sender: &User,
    created_at: DateTime<Utc>,
) -> StoredMessage {
    let mut new = new_message(conversation, sender, created_at);
    new.reply_to_id = Some(root.id);
    insert(stores, &new).await
}

/// The seqs of `messages`, in their order.
pub(crate) fn seqs(messages: &[StoredMessage]) -> Vec<i64> {
    messages.iter().map(|m| m.seq).collect()
}

/// Pairs as a map, failing on a repeated key.
pub(crate) fn to_map<K: Hash + Eq + std::fmt::Debug, V>(pairs: Vec<(K, V)>) -> HashMap<K, V> {
    let n = pairs.len();
    let map: HashMap<K, V> = pairs.into_iter().collect();
    assert_eq!(map.len(), n, "a key is listed twice");
    map
}
