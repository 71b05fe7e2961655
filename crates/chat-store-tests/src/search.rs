//! [`SearchIndex`](chat_domain::search::SearchIndex): the blind index's rows — replace,
//! delete, and the AND lookup with its conversation filter and cursor.

use chat_domain::conversation::Conversation;
use chat_domain::ids::{MessageId, WorkspaceId};
use chat_domain::message::{InsertOutcome, StoredMessage};
use chat_domain::search::{IndexEntry, SearchCursor, SearchTag, TAG_LEN, TagMatches, TagQuery};
use chat_domain::workspace::Workspace;

use crate::Stores;
use crate::fixtures::{at, group, insert, new_message, send, user, workspace};

/// A tag made of one repeated byte (the store treats tags as opaque bytes).
fn tag(byte: u8) -> SearchTag {
    SearchTag([byte; TAG_LEN])
}

async fn index(stores: &Stores, workspace: &Workspace, message: &StoredMessage, tags: &[u8]) {
    let entry = IndexEntry {
        message_id: message.id,
        workspace_id: workspace.id,
        conversation_id: message.conversation_id,
        created_at: message.created_at,
        tags: tags.iter().copied().map(tag).collect(),
    };
    stores.search.replace_message_tags(&entry).await.expect("index a message");
}

async fn lookup(
    stores: &Stores,
    workspace: WorkspaceId,
    conversations: &[&Conversation],
    tags: &[u8],
    before: Option<SearchCursor>,
    limit: u32,
) -> TagMatches {
    let query = TagQuery {
        workspace_id: workspace,
        conversations: conversations.iter().map(|c| c.id).collect(),
        tags: tags.iter().copied().map(tag).collect(),
        before,
        limit,
    };
    stores.search.search_messages(&query).await.expect("search")
}

fn ids(found: &TagMatches) -> Vec<MessageId> {
    found.messages.iter().map(|m| m.id).collect()
}

/// A message is found only when it carries every tag asked for, newest first, with its
/// content and reactions as stored.
pub async fn a_search_finds_the_messages_carrying_every_tag_newest_first(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let acme = workspace(&stores, &ada, "acme", &[]).await;
    let team = group(&stores, &acme, &ada, &[]).await;
    let first = send(&stores, &team, &ada, at(10)).await;
    let second = send(&stores, &team, &ada, at(20)).await;
    let third = send(&stores, &team, &ada, at(30)).await;
    index(&stores, &acme, &first, &[1, 2, 3]).await;
    index(&stores, &acme, &second, &[1, 3]).await;
    index(&stores, &acme, &third, &[2]).await;
    stores.messages.toggle_reaction(first.id, ada.id, "👍", at(40)).await.expect("react");

    let found = lookup(&stores, acme.id, &[&team], &[1, 3], None, 10).await;
    assert_eq!(ids(&found), vec![second.id, first.id]);
    assert_eq!(found.next, None);
    assert_eq!(found.messages[1].content, first.content, "sealed content comes back byte for byte");
    assert_eq!(found.messages[1].reactions.len(), 1, "with its reactions");
    assert_eq!(ids(&lookup(&stores, acme.id, &[&team], &[1, 2, 3], None, 10).await), vec![first.id]);
    assert_eq!(ids(&lookup(&stores, acme.id, &[&team], &[2], None, 10).await), vec![third.id, first.id]);
    assert!(lookup(&stores, acme.id, &[&team], &[1, 9], None, 10).await.messages.is_empty());
}

/// Only the conversations asked for, and only the workspace asked for, are searched.
pub async fn a_search_is_confined_to_the_given_conversations_and_workspace(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let acme = workspace(&stores, &ada, "acme", &[]).await;
    let other = workspace(&stores, &ada, "other", &[]).await;
    let team = group(&stores, &acme, &ada, &[]).await;
    let private = group(&stores, &acme, &ada, &[]).await;
    let elsewhere = group(&stores, &other, &ada, &[]).await;
    let in_team = send(&stores, &team, &ada, at(10)).await;
    let in_private = send(&stores, &private, &ada, at(20)).await;
    let in_other = send(&stores, &elsewhere, &ada, at(30)).await;
    for (workspace, message) in [(&acme, &in_team), (&acme, &in_private), (&other, &in_other)] {
        index(&stores, workspace, message, &[7]).await;
    }

    assert_eq!(ids(&lookup(&stores, acme.id, &[&team], &[7], None, 10).await), vec![in_team.id]);
    assert_eq!(
        ids(&lookup(&stores, acme.id, &[&team, &private], &[7], None, 10).await),
        vec![in_private.id, in_team.id]
    );
    // A conversation of another workspace named in the filter finds nothing under this one.
    assert_eq!(ids(&lookup(&stores, acme.id, &[&team, &elsewhere], &[7], None, 10).await), vec![in_team.id]);
    assert_eq!(ids(&lookup(&stores, other.id, &[&elsewhere], &[7], None, 10).await), vec![in_other.id]);
    assert!(lookup(&stores, acme.id, &[], &[7], None, 10).await.messages.is_empty());
}

/// Pages follow the cursor without gaps or repeats, including messages created in the same
/// instant (ordered by id), and the last page has no cursor.
pub async fn search_pages_follow_the_cursor_without_gaps_or_repeats(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let acme = workspace(&stores, &ada, "acme", &[]).await;
    let team = group(&stores, &acme, &ada, &[]).await;
    let mut expected = Vec::new();
    for i in 0..7 {
        // Pairs of messages share a timestamp.
        let message = send(&stores, &team, &ada, at(100 + i / 2)).await;
        index(&stores, &acme, &message, &[5]).await;
        expected.push(message);
    }
    expected.sort_by_key(|m| std::cmp::Reverse((m.created_at, m.id.as_uuid())));

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = lookup(&stores, acme.id, &[&team], &[5], cursor, 3).await;
        pages += 1;
        assert!(page.messages.len() <= 3);
        seen.extend(ids(&page));
        match page.next {
            Some(next) => {
                let last = page.messages.last().expect("a page with a cursor is not empty");
                assert_eq!((next.created_at, next.message_id), (last.created_at, last.id));
                cursor = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(seen, expected.iter().map(|m| m.id).collect::<Vec<_>>());
    assert_eq!(pages, 3, "3 + 3 + 1");
    // Exactly a full last page: no further cursor.
    let all = lookup(&stores, acme.id, &[&team], &[5], None, 7).await;
    assert_eq!((all.messages.len(), all.next), (7, None));
}

/// Replacing a message's tags drops the old ones; deleting drops them all; a soft-deleted
/// message is never returned even while tags of it remain.
pub async fn replacing_and_deleting_tags_changes_what_is_found(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let acme = workspace(&stores, &ada, "acme", &[]).await;
    let team = group(&stores, &acme, &ada, &[]).await;
    let edited = send(&stores, &team, &ada, at(10)).await;
    let removed = send(&stores, &team, &ada, at(20)).await;
    let soft_deleted = send(&stores, &team, &ada, at(30)).await;
    index(&stores, &acme, &edited, &[1, 2]).await;
    index(&stores, &acme, &removed, &[1]).await;
    index(&stores, &acme, &soft_deleted, &[1]).await;

    index(&stores, &acme, &edited, &[3]).await;
    assert!(lookup(&stores, acme.id, &[&team], &[2], None, 10).await.messages.is_empty());
    assert_eq!(ids(&lookup(&stores, acme.id, &[&team], &[3], None, 10).await), vec![edited.id]);

    stores.search.delete_message_tags(removed.id).await.expect("drop tags");
    stores.search.delete_message_tags(removed.id).await.expect("dropping twice is fine");
    stores.messages.delete_message(soft_deleted.id, at(40)).await.expect("delete");
    assert!(lookup(&stores, acme.id, &[&team], &[1], None, 10).await.messages.is_empty());

    index(&stores, &acme, &edited, &[]).await;
    assert!(lookup(&stores, acme.id, &[&team], &[3], None, 10).await.messages.is_empty());
}

/// A message inserted with its index entry is searchable once the insert returns (the tags
/// are written in the insert's transaction); a retry of its `clientMsgId` carrying other tags
/// is a duplicate and writes none of them.
pub async fn tags_inserted_with_a_message_are_searchable_and_a_duplicate_adds_none(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let acme = workspace(&stores, &ada, "acme", &[]).await;
    let team = group(&stores, &acme, &ada, &[]).await;
    let entry = |new: &chat_domain::message::NewMessage, tags: &[u8]| IndexEntry {
        message_id: new.id,
        workspace_id: acme.id,
        conversation_id: team.id,
        created_at: new.created_at,
        tags: tags.iter().copied().map(tag).collect(),
    };
    let mut new = new_message(&team, &ada, at(10));
    new.client_msg_id = Some("k-1".to_owned());
    new.search = Some(entry(&new, &[7, 8]));
    let stored = insert(&stores, &new).await;

    assert_eq!(ids(&lookup(&stores, acme.id, &[&team], &[7, 8], None, 10).await), [stored.id]);
    let mut retry = new_message(&team, &ada, at(11));
    retry.client_msg_id = Some("k-1".to_owned());
    retry.search = Some(entry(&retry, &[9]));
    let outcome = stores.messages.insert_message(&retry).await.expect("retry");
    assert!(matches!(outcome, InsertOutcome::Duplicate(ref original) if original.id == stored.id), "{outcome:?}");
    assert!(lookup(&stores, acme.id, &[&team], &[9], None, 10).await.messages.is_empty());
    // Without an entry, a message is not indexed.
    let plain = send(&stores, &team, &ada, at(12)).await;
    let found = lookup(&stores, acme.id, &[&team], &[7], None, 10).await;
    assert!(!ids(&found).contains(&plain.id));
}
