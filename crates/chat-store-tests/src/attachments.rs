//! Message attachments: [`NewMessage::attachments`](chat_domain::message::NewMessage) are
//! linked in the insert's transaction and every read of a message carries the linked files'
//! rows in the sender's order; a delete unlinks them and drops the sender's files that no
//! other message attaches; [`FileRepository::find_files`](chat_domain::file::FileRepository)
//! finds rows in bulk.

use chat_domain::conversation::Conversation;
use chat_domain::file::StoredFile;
use chat_domain::ids::FileId;
use chat_domain::message::{InsertOutcome, MessagePage, MessageWindow, StoredMessage};
use chat_domain::user::User;
use uuid::Uuid;

use crate::Stores;
use crate::fixtures::{at, group, insert, new_message, sealed, user, workspace};

/// Stores a file row of `conversation` uploaded by `uploader`; `tag` makes its name and size.
async fn file(stores: &Stores, conversation: &Conversation, uploader: &User, tag: &str) -> StoredFile {
    let file = StoredFile {
        id: FileId::generate(),
        workspace_id: conversation.workspace_id,
        conversation_id: conversation.id,
        uploader: uploader.id,
        name: sealed(tag),
        content_type: if tag.ends_with(".png") { "image/png" } else { "application/pdf" }.to_owned(),
        size: tag.len() as u64,
        storage_key: Uuid::new_v4().simple().to_string(),
        wrapped_file_key: vec![0xff, 0x00, 0x80],
        key_version: 1,
        created_at: at(1),
    };
    stores.files.insert_file(&file).await.expect("insert a file row");
    file
}

fn ids(files: &[&StoredFile]) -> Vec<FileId> {
    files.iter().map(|f| f.id).collect()
}

fn owned(files: &[&StoredFile]) -> Vec<StoredFile> {
    files.iter().map(|f| (*f).clone()).collect()
}

async fn all_messages(stores: &Stores, conversation: &Conversation) -> Vec<StoredMessage> {
    let page = MessagePage { window: MessageWindow::After { after: 0 }, limit: 100 };
    stores.messages.list_messages(conversation.id, &page).await.expect("list messages")
}

/// The linked files come back whole and in the sender's order (not id order) from the insert,
/// `find_message`, `find_by_client_msg_id`, a page and a thread; a message without attachments
/// has none, and edits and reactions keep them.
pub async fn attachments_round_trip_in_order_through_every_read(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let acme = workspace(&stores, &ada, "acme", &[&bob]).await;
    let team = group(&stores, &acme, &ada, &[&bob]).await;
    let first = file(&stores, &team, &ada, "first.pdf").await;
    let second = file(&stores, &team, &bob, "second.png").await;
    let third = file(&stores, &team, &ada, "third.pdf").await;

    let mut new = new_message(&team, &ada, at(2));
    new.client_msg_id = Some("with-files".to_owned());
    new.attachments = ids(&[&second, &first]);
    let root = insert(&stores, &new).await;
    assert_eq!(root.attachments, owned(&[&second, &first]));
    let plain = insert(&stores, &new_message(&team, &bob, at(3))).await;
    assert_eq!(plain.attachments, []);
    let mut answer = new_message(&team, &bob, at(4));
    answer.reply_to_id = Some(root.id);
    answer.attachments = ids(&[&third, &first]);
    let reply = insert(&stores, &answer).await;
    assert_eq!(reply.attachments, owned(&[&third, &first]), "a file may be attached to several messages");

    let found = stores.messages.find_message(root.id).await.expect("find").expect("exists");
    assert_eq!(found.attachments, root.attachments);
    let by_key = stores.messages.find_by_client_msg_id(team.id, ada.id, "with-files").await.expect("find");
    assert_eq!(by_key.expect("exists").attachments, root.attachments);
    let listed: Vec<Vec<StoredFile>> = all_messages(&stores, &team).await.into_iter().map(|m| m.attachments).collect();
    assert_eq!(listed, [owned(&[&second, &first]), vec![], owned(&[&third, &first])]);
    let thread = stores.messages.list_thread(root.id, 0, 10).await.expect("thread");
    let threaded: Vec<Vec<StoredFile>> = thread.into_iter().map(|m| m.attachments).collect();
    assert_eq!(threaded, [owned(&[&second, &first]), owned(&[&third, &first])]);

    let edited = stores.messages.edit_message(root.id, &sealed("new caption"), at(5)).await.expect("edit");
    assert_eq!(edited.expect("edited").attachments, root.attachments);
    let reacted = stores.messages.toggle_reaction(root.id, bob.id, "👍", at(6)).await.expect("react");
    assert_eq!(reacted.expect("reacted").attachments, root.attachments);
}

/// Deleting a message unlinks its files in the same transaction and deletes the rows of those
/// its sender uploaded that no other message attaches; another uploader's file, a file still
/// attached elsewhere and an unattached file stay.
pub async fn deleting_a_message_drops_its_attachments_and_the_senders_unshared_files(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let acme = workspace(&stores, &ada, "acme", &[&bob]).await;
    let team = group(&stores, &acme, &ada, &[&bob]).await;
    let only_here = file(&stores, &team, &ada, "only-here.pdf").await;
    let bobs = file(&stores, &team, &bob, "bobs.png").await;
    let shared = file(&stores, &team, &ada, "shared.pdf").await;
    let unattached = file(&stores, &team, &ada, "draft.pdf").await;
    let mut new = new_message(&team, &ada, at(2));
    new.attachments = ids(&[&only_here, &bobs, &shared]);
    let doomed = insert(&stores, &new).await;
    let mut new = new_message(&team, &ada, at(3));
    new.attachments = ids(&[&shared]);
    let keeper = insert(&stores, &new).await;

    let deleted = stores.messages.delete_message(doomed.id, at(10)).await.expect("delete").expect("exists");
    assert_eq!(deleted.attachments, []);
    assert_eq!(deleted.deleted_at, Some(at(10)));
    let found = stores.messages.find_message(doomed.id).await.expect("find").expect("kept");
    assert_eq!((found.content, found.attachments), (None, vec![]));
    assert_eq!(stores.files.find_file(only_here.id).await.expect("find"), None, "the sender's unshared file goes");
    assert_eq!(stores.files.find_file(bobs.id).await.expect("find"), Some(bobs.clone()), "another uploader's stays");
    assert_eq!(stores.files.find_file(shared.id).await.expect("find"), Some(shared.clone()), "still attached");
    assert_eq!(stores.files.find_file(unattached.id).await.expect("find"), Some(unattached.clone()));
    let listed: Vec<Vec<StoredFile>> = all_messages(&stores, &team).await.into_iter().map(|m| m.attachments).collect();
    assert_eq!(listed, [vec![], owned(&[&shared])]);

    // Deleting twice changes nothing more; deleting the last message attaching a file drops it.
    let again = stores.messages.delete_message(doomed.id, at(20)).await.expect("delete").expect("exists");
    assert_eq!((again.attachments, again.deleted_at), (vec![], Some(at(10))));
    stores.messages.delete_message(keeper.id, at(30)).await.expect("delete");
    assert_eq!(stores.files.find_file(shared.id).await.expect("find"), None);
    assert_eq!(stores.files.find_file(bobs.id).await.expect("find"), Some(bobs));
    assert_eq!(stores.files.find_file(unattached.id).await.expect("find"), Some(unattached));
}

/// A repeated `clientMsgId` links nothing new: the duplicate is the original with its own
/// attachments, and no seq is consumed.
pub async fn a_duplicate_client_msg_id_returns_the_originals_attachments(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let acme = workspace(&stores, &ada, "acme", &[]).await;
    let team = group(&stores, &acme, &ada, &[]).await;
    let kept = file(&stores, &team, &ada, "kept.pdf").await;
    let other = file(&stores, &team, &ada, "other.png").await;
    let mut new = new_message(&team, &ada, at(1));
    new.client_msg_id = Some("c-1".to_owned());
    new.attachments = ids(&[&kept]);
    let original = insert(&stores, &new).await;

    let mut retry = new_message(&team, &ada, at(2));
    retry.client_msg_id = Some("c-1".to_owned());
    retry.attachments = ids(&[&other, &kept]);
    match stores.messages.insert_message(&retry).await.expect("insert") {
        InsertOutcome::Duplicate(found) => {
            assert_eq!(found, original);
            assert_eq!(found.attachments, owned(&[&kept]));
        }
        other => panic!("expected the original, got {other:?}"),
    }
    let listed = all_messages(&stores, &team).await;
    assert_eq!(listed, [original]);
    let conversation = stores.conversations.find_conversation(team.id).await.expect("find").expect("exists");
    assert_eq!(conversation.last_seq, 1);
}

/// `find_files` returns the rows of the ids that exist, whatever the order or repeats asked,
/// and nothing for none.
pub async fn file_rows_are_found_in_bulk(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let acme = workspace(&stores, &ada, "acme", &[]).await;
    let team = group(&stores, &acme, &ada, &[]).await;
    let a = file(&stores, &team, &ada, "a.pdf").await;
    let b = file(&stores, &team, &ada, "b.png").await;
    file(&stores, &team, &ada, "not-asked.pdf").await;

    let mut found = stores.files.find_files(&[b.id, FileId::generate(), a.id, b.id]).await.expect("find");
    found.sort_by_key(|f| f.id);
    let mut expected = vec![a, b];
    expected.sort_by_key(|f| f.id);
    assert_eq!(found, expected);
    assert_eq!(stores.files.find_files(&[]).await.expect("find"), []);
    assert_eq!(stores.files.find_files(&[FileId::generate()]).await.expect("find"), []);
}
