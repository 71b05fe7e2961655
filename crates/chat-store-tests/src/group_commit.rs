//! Bursts of concurrent sends, which the stores commit in batches (group commit): whatever
//! lands in one batch, every conversation's seqs stay gap-free and in commit order, a
//! `clientMsgId` yields one message, and an archived conversation or a sender who is not a
//! member has its messages refused without holding back the others.

use std::collections::HashMap;

use chat_domain::conversation::Conversation;
use chat_domain::ids::UserId;
use chat_domain::message::{InsertOutcome, MessageWindow, NewMessage, StoredMessage};
use futures_util::future::join_all;

use crate::Stores;
use crate::fixtures::{at, group, new_message, seqs, user, workspace};

/// Sends every message at once (one task each) and returns the outcomes in the same order.
async fn burst(stores: &Stores, messages: Vec<NewMessage>) -> Vec<InsertOutcome> {
    let sends = messages.into_iter().map(|new| {
        let repository = stores.messages.clone();
        tokio::spawn(async move { repository.insert_message(&new).await })
    });
    join_all(sends).await.into_iter().map(|r| r.expect("task").expect("insert")).collect()
}

async fn history(stores: &Stores, conversation: &Conversation) -> Vec<StoredMessage> {
    let page = chat_domain::message::MessagePage { window: MessageWindow::After { after: 0 }, limit: 1000 };
    stores.messages.list_messages(conversation.id, &page).await.expect("list messages")
}

async fn last_seq(stores: &Stores, conversation: &Conversation) -> i64 {
    stores.conversations.find_conversation(conversation.id).await.expect("find").expect("exists").last_seq
}

async fn watermark(stores: &Stores, conversation: &Conversation, user: UserId) -> i64 {
    stores.conversations.find_member(conversation.id, user).await.expect("member").expect("a member").last_read_seq
}

fn inserted(outcome: &InsertOutcome) -> Option<&StoredMessage> {
    if let InsertOutcome::Inserted(m) = outcome { Some(m) } else { None }
}

/// `n` messages made by `make(i)`, every even one with a `clientMsgId` (`c-{i}`), so that keyed
/// and unkeyed sends share batches.
fn keyed_every_other(n: i64, make: impl Fn(i64) -> NewMessage) -> Vec<NewMessage> {
    (0..n)
        .map(|i| {
            let mut new = make(i);
            if i % 2 == 0 {
                new.client_msg_id = Some(format!("c-{i}"));
            }
            new
        })
        .collect()
}

/// Sends `messages` as one burst: those `refused` picks must get `refusal` and leave no row,
/// every other one must be inserted as itself.
async fn refused_alone(
    stores: &Stores,
    messages: Vec<NewMessage>,
    refused: impl Fn(&NewMessage) -> bool,
    refusal: &InsertOutcome,
) {
    let sent = messages.clone();
    let outcomes = burst(stores, messages).await;
    assert_eq!(outcomes.len(), sent.len());
    for (new, outcome) in sent.iter().zip(&outcomes) {
        if refused(new) {
            assert_eq!(outcome, refusal);
            assert_eq!(stores.messages.find_message(new.id).await.expect("find"), None);
        } else {
            assert_eq!(inserted(outcome).map(|m| m.id), Some(new.id), "{outcome:?}");
        }
    }
}

/// A burst in which several messages repeat each other's `clientMsgId` (so that repeats share
/// batches with their originals): one message per key, every repeat gets that original, and
/// only the stored messages take seqs, gap-free.
pub async fn repeated_client_msg_ids_in_one_burst_store_one_message_per_key(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let acme = workspace(&stores, &ada, "acme", &[&bob]).await;
    let team = group(&stores, &acme, &ada, &[&bob]).await;

    // Keys k0..k2 sent five times each by ada, k0 once by bob (his own key), ten without a key,
    // interleaved.
    let mut messages = Vec::new();
    for i in 0..25_i64 {
        let mut new = new_message(&team, &ada, at(i));
        if i % 5 < 3 {
            new.client_msg_id = Some(format!("k{}", i % 5));
        }
        messages.push(new);
    }
    let mut bobs = new_message(&team, &bob, at(30));
    bobs.client_msg_id = Some("k0".to_owned());
    messages.push(bobs);
    let sent = messages.clone();
    let outcomes = burst(&stores, messages).await;

    let mut originals: HashMap<(UserId, String), &StoredMessage> = HashMap::new();
    for outcome in &outcomes {
        if let Some(m) = inserted(outcome)
            && let Some(key) = &m.client_msg_id
        {
            assert!(originals.insert((m.sender_id, key.clone()), m).is_none(), "{key} stored twice");
        }
    }
    assert_eq!(originals.len(), 4, "k0..k2 of ada and k0 of bob: {outcomes:?}");
    for (new, outcome) in sent.iter().zip(&outcomes) {
        match (&new.client_msg_id, outcome) {
            (Some(key), InsertOutcome::Duplicate(original)) => {
                assert_eq!(Some(original), originals.get(&(new.sender_id, key.clone())).copied());
            }
            (Some(key), InsertOutcome::Inserted(m)) => assert_eq!(m.id, new.id, "{key}"),
            (None, InsertOutcome::Inserted(m)) => assert_eq!(m.id, new.id),
            (_, other) => panic!("unexpected {other:?}"),
        }
    }
    // 3 + 1 keyed originals and 10 without a key: 14 messages, seqs 1..=14.
    let stored = history(&stores, &team).await;
    assert_eq!(seqs(&stored), (1..=14).collect::<Vec<_>>());
    assert_eq!(last_seq(&stores, &team).await, 14);
    let mut inserted_seqs: Vec<i64> = outcomes.iter().filter_map(inserted).map(|m| m.seq).collect();
    inserted_seqs.sort_unstable();
    assert_eq!(inserted_seqs, (1..=14).collect::<Vec<_>>());
}

/// One burst into several conversations: each conversation's seqs are its own, gap-free from
/// 1, and each sender's watermark is at their last message there.
pub async fn a_burst_across_conversations_keeps_each_gap_free(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let acme = workspace(&stores, &ada, "acme", &[&bob]).await;
    let mut teams = Vec::new();
    for _ in 0..5 {
        teams.push(group(&stores, &acme, &ada, &[&bob]).await);
    }
    let messages: Vec<NewMessage> = (0..100_i64)
        .map(|i| {
            let team = &teams[usize::try_from(i).expect("small") % teams.len()];
            new_message(team, if i % 3 == 0 { &bob } else { &ada }, at(i))
        })
        .collect();
    let outcomes = burst(&stores, messages).await;
    assert!(outcomes.iter().all(|o| inserted(o).is_some()), "{outcomes:?}");

    for team in &teams {
        let stored = history(&stores, team).await;
        assert_eq!(seqs(&stored), (1..=20).collect::<Vec<_>>());
        assert!(stored.iter().all(|m| m.conversation_id == team.id));
        assert_eq!(last_seq(&stores, team).await, 20);
        for sender in [ada.id, bob.id] {
            let last = stored.iter().filter(|m| m.sender_id == sender).map(|m| m.seq).max().expect("sent some");
            assert_eq!(watermark(&stores, team, sender).await, last);
        }
    }
}

/// A burst into an open, an archived and another open conversation: the archived one refuses
/// every message and takes no seq; the others commit all of theirs, gap-free.
pub async fn a_burst_with_an_archived_conversation_commits_the_others(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let acme = workspace(&stores, &ada, "acme", &[]).await;
    let open = group(&stores, &acme, &ada, &[]).await;
    let archived = group(&stores, &acme, &ada, &[]).await;
    let other = group(&stores, &acme, &ada, &[]).await;
    stores.conversations.archive_conversation(archived.id, at(1)).await.expect("archive");

    let targets = [&open, &archived, &other];
    let messages = keyed_every_other(30, |i| new_message(targets[usize::try_from(i).expect("small") % 3], &ada, at(i)));
    refused_alone(&stores, messages, |new| new.conversation_id == archived.id, &InsertOutcome::Archived).await;
    assert_eq!(last_seq(&stores, &archived).await, 0);
    assert!(history(&stores, &archived).await.is_empty());
    for team in [&open, &other] {
        assert_eq!(seqs(&history(&stores, team).await), (1..=10).collect::<Vec<_>>());
        assert_eq!(last_seq(&stores, team).await, 10);
    }
}

/// A burst by a member and by a workspace member outside the conversation, interleaved, so
/// that they share batches: the outsider's messages are all `NotMember` and take no seq; the
/// member's all commit, gap-free.
pub async fn a_burst_with_a_non_member_commits_the_members_messages(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let carol = user(&stores, "carol").await;
    let acme = workspace(&stores, &ada, "acme", &[&carol]).await;
    let team = group(&stores, &acme, &ada, &[]).await;

    let messages = keyed_every_other(30, |i| new_message(&team, if i % 3 == 1 { &carol } else { &ada }, at(i)));
    refused_alone(&stores, messages, |new| new.sender_id == carol.id, &InsertOutcome::NotMember).await;
    assert_eq!(seqs(&history(&stores, &team).await), (1..=20).collect::<Vec<_>>());
    assert_eq!(last_seq(&stores, &team).await, 20);
    assert_eq!(watermark(&stores, &team, ada.id).await, 20);
}
