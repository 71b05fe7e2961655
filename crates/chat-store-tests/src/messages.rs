//! [`MessageRepository`](chat_domain::message::MessageRepository): gap-free seqs, idempotent
//! sends, threads, windows, edits, soft deletes and reactions.

use chat_domain::cipher::Sealed;
use chat_domain::ids::{ConversationId, MessageId, UserId};
use chat_domain::message::{InsertOutcome, MessagePage, MessageType, MessageWindow, Reaction, StoredMessage};
use futures_util::future::join_all;

use crate::Stores;
use crate::fixtures::{at, group, insert, new_message, reply, sealed, send, seqs, user, workspace};

fn reaction(emoji: &str, users: &[UserId]) -> Reaction {
    Reaction { emoji: emoji.to_owned(), user_ids: users.to_vec() }
}

async fn page(stores: &Stores, conversation: ConversationId, window: MessageWindow, limit: u32) -> Vec<StoredMessage> {
    stores.messages.list_messages(conversation, &MessagePage { window, limit }).await.expect("list messages")
}

fn latest(before: Option<i64>, offset: u32) -> MessageWindow {
    MessageWindow::Latest { before, offset }
}

/// Fifty concurrent inserts into one conversation get exactly the seqs 1 to 50.
pub async fn concurrent_senders_get_gapless_seqs(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let acme = workspace(&stores, &ada, "acme", &[&bob]).await;
    let team = group(&stores, &acme, &ada, &[&bob]).await;

    let sends = (0..50).map(|i| {
        let new = new_message(&team, if i % 2 == 0 { &ada } else { &bob }, at(i));
        let messages = stores.messages.clone();
        tokio::spawn(async move { messages.insert_message(&new).await })
    });
    let mut got: Vec<i64> = join_all(sends)
        .await
        .into_iter()
        .map(|r| match r.expect("task").expect("insert") {
            InsertOutcome::Inserted(m) => m.seq,
            other => panic!("expected an insert, got {other:?}"),
        })
        .collect();
    got.sort_unstable();
    assert_eq!(got, (1..=50).collect::<Vec<i64>>());
    let conversation = stores.conversations.find_conversation(team.id).await.expect("find").expect("exists");
    assert_eq!(conversation.last_seq, 50);
    assert_eq!(
        seqs(&page(&stores, team.id, MessageWindow::After { after: 0 }, 100).await),
        (1..=50).collect::<Vec<_>>()
    );
}

/// Twenty concurrent sends with one `(conversation, sender, clientMsgId)`: one is inserted, the
/// others get that original, and only one seq is used. The key is per sender.
pub async fn a_repeated_client_msg_id_yields_the_original_and_consumes_no_seq(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let acme = workspace(&stores, &ada, "acme", &[&bob]).await;
    let team = group(&stores, &acme, &ada, &[&bob]).await;

    let sends = (0..20).map(|i| {
        let mut new = new_message(&team, &ada, at(i));
        new.client_msg_id = Some("c-1".to_owned());
        new.content = sealed(&format!("attempt {i}"));
        let messages = stores.messages.clone();
        tokio::spawn(async move { messages.insert_message(&new).await })
    });
    let outcomes: Vec<InsertOutcome> =
        join_all(sends).await.into_iter().map(|r| r.expect("task").expect("insert")).collect();
    let inserted: Vec<&StoredMessage> =
        outcomes.iter().filter_map(|o| if let InsertOutcome::Inserted(m) = o { Some(m) } else { None }).collect();
    let [original] = inserted.as_slice() else { panic!("expected exactly one insert, got {outcomes:?}") };
    assert_eq!(original.seq, 1);
    assert_eq!(original.client_msg_id.as_deref(), Some("c-1"));
    for outcome in &outcomes {
        match outcome {
            InsertOutcome::Inserted(_) => {}
            InsertOutcome::Duplicate(m) => assert_eq!(m, *original),
            other @ (InsertOutcome::Archived | InsertOutcome::NotMember) => panic!("expected a repeat, got {other:?}"),
        }
    }
    let conversation = stores.conversations.find_conversation(team.id).await.expect("find").expect("exists");
    assert_eq!(conversation.last_seq, 1);
    let found = stores.messages.find_by_client_msg_id(team.id, ada.id, "c-1").await.expect("find");
    assert_eq!(found.as_ref(), Some(*original));

    assert_eq!(send(&stores, &team, &ada, at(30)).await.seq, 2);
    let mut bobs = new_message(&team, &bob, at(40));
    bobs.client_msg_id = Some("c-1".to_owned());
    assert_eq!(insert(&stores, &bobs).await.seq, 3);
    assert_eq!(
        stores.messages.find_by_client_msg_id(team.id, bob.id, "c-1").await.expect("find").map(|m| m.id),
        Some(bobs.id)
    );
    assert_eq!(stores.messages.find_by_client_msg_id(team.id, bob.id, "c-2").await.expect("find"), None);
}

/// An insert into an archived conversation is `Archived`, one into a conversation that does
/// not exist `NotMember`; neither stores anything.
pub async fn a_message_to_an_archived_or_missing_conversation_is_refused(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let acme = workspace(&stores, &ada, "acme", &[]).await;
    let team = group(&stores, &acme, &ada, &[]).await;
    send(&stores, &team, &ada, at(1)).await;
    stores.conversations.archive_conversation(team.id, at(2)).await.expect("archive");

    let refused = new_message(&team, &ada, at(3));
    assert_eq!(stores.messages.insert_message(&refused).await.expect("insert"), InsertOutcome::Archived);
    assert_eq!(stores.messages.find_message(refused.id).await.expect("find"), None);
    let conversation = stores.conversations.find_conversation(team.id).await.expect("find").expect("exists");
    assert_eq!(conversation.last_seq, 1);
    assert_eq!(seqs(&page(&stores, team.id, latest(None, 0), 10).await), [1]);

    let mut nowhere = new_message(&team, &ada, at(4));
    nowhere.conversation_id = ConversationId::generate();
    assert_eq!(stores.messages.insert_message(&nowhere).await.expect("insert"), InsertOutcome::NotMember);
    assert_eq!(stores.messages.find_message(nowhere.id).await.expect("find"), None);
}

/// The store checks the sender itself, in the insert's transaction (the domain may send on a
/// view it remembers): only a member of the conversation who is a member of its workspace
/// gets a seq. A member who left, a workspace member outside the conversation and a
/// conversation member outside the workspace are `NotMember` — before any repeat is looked
/// for: a `clientMsgId` sent while a member is not answered after leaving — and nothing of
/// theirs is stored or takes a seq.
pub async fn only_a_member_of_the_conversation_and_its_workspace_may_insert(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let carol = user(&stores, "carol").await;
    let eve = user(&stores, "eve").await;
    let acme = workspace(&stores, &ada, "acme", &[&bob, &carol]).await;
    // Eve holds a membership row of a workspace she is not in (as one left behind would be).
    let team = group(&stores, &acme, &ada, &[&bob, &eve]).await;
    let mut first = new_message(&team, &bob, at(1));
    first.client_msg_id = Some("k".to_owned());
    assert_eq!(insert(&stores, &first).await.seq, 1);
    assert!(stores.conversations.remove_member(team.id, bob.id).await.expect("remove"));

    let mut retry = new_message(&team, &bob, at(2));
    retry.client_msg_id = Some("k".to_owned());
    let refused = [
        ("a repeat after leaving", retry),
        ("a member who left", new_message(&team, &bob, at(3))),
        ("outside the conversation", new_message(&team, &carol, at(4))),
        ("outside the workspace", new_message(&team, &eve, at(5))),
    ];
    for (who, new) in &refused {
        assert_eq!(stores.messages.insert_message(new).await.expect("insert"), InsertOutcome::NotMember, "{who}");
        assert_eq!(stores.messages.find_message(new.id).await.expect("find"), None, "{who}");
    }
    let conversation = stores.conversations.find_conversation(team.id).await.expect("find").expect("exists");
    assert_eq!(conversation.last_seq, 1);
    assert_eq!(send(&stores, &team, &ada, at(6)).await.seq, 2, "a member still sends, gap-free");
}

/// Sending moves the sender's own watermark (and its time) to the new seq, and nobody else's.
pub async fn sending_moves_the_senders_watermark(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let acme = workspace(&stores, &ada, "acme", &[&bob]).await;
    let team = group(&stores, &acme, &ada, &[&bob]).await;

    send(&stores, &team, &ada, at(10)).await;
    send(&stores, &team, &bob, at(20)).await;
    let third = send(&stores, &team, &ada, at(30)).await;
    let adas = stores.conversations.find_member(team.id, ada.id).await.expect("member").expect("a member");
    assert_eq!((adas.last_read_seq, adas.last_read_at), (third.seq, Some(at(30))));
    let bobs = stores.conversations.find_member(team.id, bob.id).await.expect("member").expect("a member");
    assert_eq!((bobs.last_read_seq, bobs.last_read_at), (2, Some(at(20))));
}

/// Each reply bumps its root's reply count; replies point at the root and have none.
pub async fn a_reply_bumps_its_roots_reply_count(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let acme = workspace(&stores, &ada, "acme", &[&bob]).await;
    let team = group(&stores, &acme, &ada, &[&bob]).await;
    let root = send(&stores, &team, &ada, at(1)).await;
    assert_eq!(root.reply_count, 0);
    let other = send(&stores, &team, &ada, at(2)).await;

    let first = reply(&stores, &team, &root, &bob, at(3)).await;
    reply(&stores, &team, &root, &ada, at(4)).await;
    assert_eq!(first.reply_to_id, Some(root.id));
    assert_eq!(first.reply_count, 0);
    let root_now = stores.messages.find_message(root.id).await.expect("find").expect("exists");
    assert_eq!(root_now.reply_count, 2);
    assert_eq!(StoredMessage { reply_count: 0, ..root_now }, root);
    let other_now = stores.messages.find_message(other.id).await.expect("find").expect("exists");
    assert_eq!(other_now.reply_count, 0);
}

/// Sealed content comes back byte for byte, with its key version, whatever the bytes: the
/// stores never decrypt.
pub async fn sealed_content_round_trips_byte_for_byte(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let acme = workspace(&stores, &ada, "acme", &[]).await;
    let team = group(&stores, &acme, &ada, &[]).await;
    let every_byte: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let mut new = new_message(&team, &ada, at(1));
    new.kind = MessageType::File;
    new.client_msg_id = Some("ünïcødé 🚀".to_owned());
    new.content = Sealed { key_version: 7, bytes: every_byte.clone() };

    let stored = insert(&stores, &new).await;
    let expected = StoredMessage {
        id: new.id,
        conversation_id: team.id,
        seq: 1,
        sender_id: ada.id,
        client_msg_id: new.client_msg_id.clone(),
        kind: MessageType::File,
        content: Some(new.content.clone()),
        reply_to_id: None,
        reply_count: 0,
        reactions: vec![],
        attachments: vec![],
        edited_at: None,
        deleted_at: None,
        created_at: at(1),
    };
    assert_eq!(stored, expected);
    assert_eq!(stores.messages.find_message(new.id).await.expect("find"), Some(expected.clone()));
    assert_eq!(page(&stores, team.id, latest(None, 0), 10).await, std::slice::from_ref(&expected));
    let by_key = stores.messages.find_by_client_msg_id(team.id, ada.id, "ünïcødé 🚀").await.expect("find");
    assert_eq!(by_key, Some(expected));

    let empty = Sealed { key_version: 8, bytes: vec![] };
    let edited = stores.messages.edit_message(new.id, &empty, at(2)).await.expect("edit").expect("edited");
    assert_eq!(edited.content, Some(empty));
}

/// `Latest` pages newest first below `before`, skipping `offset`; `After` pages oldest first
/// above `after`; both stop at `limit` and stay within their conversation.
pub async fn message_windows_page_newest_first_or_oldest_first(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let acme = workspace(&stores, &ada, "acme", &[]).await;
    let team = group(&stores, &acme, &ada, &[]).await;
    let other = group(&stores, &acme, &ada, &[]).await;
    for i in 1..=10 {
        send(&stores, &team, &ada, at(i)).await;
        send(&stores, &other, &ada, at(i)).await;
    }

    assert_eq!(seqs(&page(&stores, team.id, latest(None, 0), 3).await), [10, 9, 8]);
    assert_eq!(seqs(&page(&stores, team.id, latest(Some(8), 0), 3).await), [7, 6, 5]);
    assert_eq!(seqs(&page(&stores, team.id, latest(None, 2), 3).await), [8, 7, 6]);
    assert_eq!(seqs(&page(&stores, team.id, latest(Some(8), 5), 3).await), [2, 1]);
    assert_eq!(seqs(&page(&stores, team.id, latest(Some(1), 0), 3).await), Vec::<i64>::new());
    assert_eq!(seqs(&page(&stores, team.id, MessageWindow::After { after: 7 }, 10).await), [8, 9, 10]);
    assert_eq!(seqs(&page(&stores, team.id, MessageWindow::After { after: 0 }, 2).await), [1, 2]);
    assert_eq!(seqs(&page(&stores, team.id, MessageWindow::After { after: 10 }, 5).await), Vec::<i64>::new());
    let listed = page(&stores, team.id, latest(None, 0), 100).await;
    assert_eq!(listed.len(), 10);
    assert!(listed.iter().all(|m| m.conversation_id == team.id));
}

/// Listed messages carry their reactions, each message its own.
pub async fn listed_messages_carry_their_reactions(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let acme = workspace(&stores, &ada, "acme", &[&bob]).await;
    let team = group(&stores, &acme, &ada, &[&bob]).await;
    let mut sent = Vec::new();
    for i in 1..=5 {
        sent.push(send(&stores, &team, &ada, at(i)).await);
    }
    stores.messages.toggle_reaction(sent[1].id, ada.id, "👍", at(10)).await.expect("react");
    stores.messages.toggle_reaction(sent[1].id, bob.id, "👍", at(11)).await.expect("react");
    stores.messages.toggle_reaction(sent[3].id, bob.id, "🎉", at(12)).await.expect("react");

    let listed = page(&stores, team.id, latest(None, 0), 10).await;
    let reactions: Vec<(i64, Vec<Reaction>)> = listed.into_iter().map(|m| (m.seq, m.reactions)).collect();
    assert_eq!(
        reactions,
        [
            (5, vec![]),
            (4, vec![reaction("🎉", &[bob.id])]),
            (3, vec![]),
            (2, vec![reaction("👍", &[ada.id, bob.id])]),
            (1, vec![]),
        ]
    );
    let thread = stores.messages.list_thread(sent[1].id, 0, 10).await.expect("thread");
    assert_eq!(
        thread.iter().map(|m| m.reactions.clone()).collect::<Vec<_>>(),
        [vec![reaction("👍", &[ada.id, bob.id])]]
    );
}

/// A thread is its root, then its own replies in seq order (after `after`, at most `limit`);
/// an unknown root has no thread.
pub async fn a_thread_lists_its_root_then_its_replies(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let acme = workspace(&stores, &ada, "acme", &[&bob]).await;
    let team = group(&stores, &acme, &ada, &[&bob]).await;
    let root = send(&stores, &team, &ada, at(1)).await; // 1
    send(&stores, &team, &bob, at(2)).await; // 2
    reply(&stores, &team, &root, &bob, at(3)).await; // 3
    let other_root = send(&stores, &team, &bob, at(4)).await; // 4
    reply(&stores, &team, &root, &ada, at(5)).await; // 5
    reply(&stores, &team, &other_root, &ada, at(6)).await; // 6
    reply(&stores, &team, &root, &bob, at(7)).await; // 7

    let thread = stores.messages.list_thread(root.id, 0, 10).await.expect("thread");
    assert_eq!(seqs(&thread), [1, 3, 5, 7]);
    assert_eq!(thread[0].id, root.id);
    assert_eq!(thread[0].reply_count, 3);
    assert!(thread[1..].iter().all(|m| m.reply_to_id == Some(root.id)));
    assert_eq!(seqs(&stores.messages.list_thread(root.id, 3, 10).await.expect("thread")), [1, 5, 7]);
    assert_eq!(seqs(&stores.messages.list_thread(root.id, 0, 2).await.expect("thread")), [1, 3, 5]);
    assert_eq!(seqs(&stores.messages.list_thread(root.id, 7, 10).await.expect("thread")), [1]);
    assert_eq!(seqs(&stores.messages.list_thread(other_root.id, 0, 10).await.expect("thread")), [4, 6]);
    assert_eq!(stores.messages.list_thread(MessageId::generate(), 0, 10).await.expect("thread"), []);
}

/// An edit replaces the content and sets `edited_at`, keeping everything else; a deleted or
/// unknown message cannot be edited.
pub async fn an_edit_replaces_content_unless_the_message_is_deleted(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let acme = workspace(&stores, &ada, "acme", &[]).await;
    let team = group(&stores, &acme, &ada, &[]).await;
    let original = send(&stores, &team, &ada, at(1)).await;
    send(&stores, &team, &ada, at(2)).await;

    let new_content = Sealed { key_version: 2, bytes: vec![9, 0, 9] };
    let edited = stores.messages.edit_message(original.id, &new_content, at(10)).await.expect("edit");
    let expected = StoredMessage { content: Some(new_content.clone()), edited_at: Some(at(10)), ..original.clone() };
    assert_eq!(edited.as_ref(), Some(&expected));
    assert_eq!(stores.messages.find_message(original.id).await.expect("find"), Some(expected));

    stores.messages.delete_message(original.id, at(20)).await.expect("delete");
    assert_eq!(stores.messages.edit_message(original.id, &new_content, at(30)).await.expect("edit"), None);
    let after = stores.messages.find_message(original.id).await.expect("find").expect("kept");
    assert_eq!((after.content, after.edited_at), (None, Some(at(10))));
    assert_eq!(stores.messages.edit_message(MessageId::generate(), &new_content, at(40)).await.expect("edit"), None);
}

/// A deleted message keeps its row and seq with its content gone; deleting again keeps the
/// first deletion time; an unknown message is `None`.
pub async fn a_deleted_message_keeps_its_row_and_seq(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let acme = workspace(&stores, &ada, "acme", &[]).await;
    let team = group(&stores, &acme, &ada, &[]).await;
    let first = send(&stores, &team, &ada, at(1)).await;
    send(&stores, &team, &ada, at(2)).await;

    let deleted = stores.messages.delete_message(first.id, at(10)).await.expect("delete");
    let expected = StoredMessage { content: None, deleted_at: Some(at(10)), ..first.clone() };
    assert_eq!(deleted.as_ref(), Some(&expected));
    let again = stores.messages.delete_message(first.id, at(20)).await.expect("delete again");
    assert_eq!(again.as_ref(), Some(&expected));
    assert_eq!(stores.messages.find_message(first.id).await.expect("find"), Some(expected.clone()));
    let listed = page(&stores, team.id, MessageWindow::After { after: 0 }, 10).await;
    assert_eq!(seqs(&listed), [1, 2]);
    assert_eq!(listed[0], expected);
    let conversation = stores.conversations.find_conversation(team.id).await.expect("find").expect("exists");
    assert_eq!(conversation.last_seq, 2);
    assert_eq!(stores.messages.delete_message(MessageId::generate(), at(30)).await.expect("delete"), None);
}

/// Toggling adds a reaction, toggling again removes it; reactions group by emoji in order of
/// first use (ties in time broken by insertion order), users in reaction order, and an emoji
/// nobody uses any more is absent.
pub async fn reactions_toggle_and_group_by_emoji_in_order_of_first_use(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let acme = workspace(&stores, &ada, "acme", &[&bob]).await;
    let team = group(&stores, &acme, &ada, &[&bob]).await;
    let message = send(&stores, &team, &ada, at(1)).await;
    let toggle = async |user: UserId, emoji: &str, secs: i64| -> Vec<Reaction> {
        let after = stores.messages.toggle_reaction(message.id, user, emoji, at(secs)).await.expect("toggle");
        let after = after.expect("the message exists");
        assert_eq!(StoredMessage { reactions: vec![], ..after.clone() }, message, "only reactions change");
        after.reactions
    };

    assert_eq!(toggle(ada.id, "👍", 10).await, [reaction("👍", &[ada.id])]);
    assert_eq!(toggle(bob.id, "❤️", 11).await, [reaction("👍", &[ada.id]), reaction("❤️", &[bob.id])]);
    assert_eq!(toggle(bob.id, "👍", 12).await, [reaction("👍", &[ada.id, bob.id]), reaction("❤️", &[bob.id])]);
    assert_eq!(toggle(ada.id, "👍", 13).await, [reaction("❤️", &[bob.id]), reaction("👍", &[bob.id])]);
    assert_eq!(toggle(bob.id, "👍", 14).await, [reaction("❤️", &[bob.id])]);
    assert_eq!(toggle(bob.id, "❤️", 15).await, []);
    // Same instant: insertion order.
    toggle(bob.id, "b", 20).await;
    toggle(ada.id, "a", 20).await;
    let reactions = toggle(ada.id, "b", 20).await;
    assert_eq!(reactions, [reaction("b", &[bob.id, ada.id]), reaction("a", &[ada.id])]);
    let found = stores.messages.find_message(message.id).await.expect("find").expect("exists");
    assert_eq!(found.reactions, reactions);

    let unknown = stores.messages.toggle_reaction(MessageId::generate(), ada.id, "👍", at(30)).await.expect("toggle");
    assert_eq!(unknown, None);
}
