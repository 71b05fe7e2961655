//! Key rotation and crypto-shredding, store side: re-encryption's reader and guarded writer
//! ([`MessageRepository::sealed_in_workspace`], [`MessageRepository::replace_sealed`]),
//! [`KeyRepository::keyed_workspaces`], [`KeyRepository::destroy_workspace_keys`] and
//! [`SearchIndex::delete_workspace_tags`].
//!
//! [`MessageRepository::sealed_in_workspace`]: chat_domain::message::MessageRepository::sealed_in_workspace
//! [`MessageRepository::replace_sealed`]: chat_domain::message::MessageRepository::replace_sealed
//! [`KeyRepository::keyed_workspaces`]: chat_domain::cipher::KeyRepository::keyed_workspaces
//! [`KeyRepository::destroy_workspace_keys`]: chat_domain::cipher::KeyRepository::destroy_workspace_keys
//! [`SearchIndex::delete_workspace_tags`]: chat_domain::search::SearchIndex::delete_workspace_tags

use chat_domain::cipher::{Sealed, WrappedKey};
use chat_domain::ids::{MessageId, WorkspaceId};
use chat_domain::message::{SealedContent, StoredMessage};
use chat_domain::search::{IndexEntry, SearchTag, TAG_LEN, TagQuery};

use crate::Stores;
use crate::fixtures::{all_pages, at, group, insert, new_message, user, workspace};

fn sealed_as(version: i32, fill: u8) -> Sealed {
    Sealed { key_version: version, bytes: vec![fill, 0x00, 0xff, fill] }
}

fn as_content(message: &StoredMessage) -> SealedContent {
    SealedContent {
        id: message.id,
        conversation_id: message.conversation_id,
        content: message.content.clone().expect("sealed content"),
    }
}

async fn all_below(stores: &Stores, workspace: WorkspaceId, below: i32, limit: u32) -> Vec<SealedContent> {
    all_pages(
        limit,
        |row: &SealedContent| row.id,
        |after| async move {
            stores.messages.sealed_in_workspace(workspace, below, after, limit).await.expect("list sealed")
        },
    )
    .await
}

/// Re-encryption reads the workspace's live content sealed below a version, by id and in
/// pages without gaps or repeats, and no other workspace's; a replacement lands only while
/// the content is exactly what was read (an edit or delete in between wins), keeps
/// `edited_at`, and takes the row out of the listing.
pub async fn reencryption_reads_old_content_by_id_and_replaces_it_only_while_unchanged(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let here = workspace(&stores, &ada, "here", &[]).await;
    let there = workspace(&stores, &ada, "there", &[]).await;
    let team = group(&stores, &here, &ada, &[]).await;
    let side = group(&stores, &here, &ada, &[]).await;
    let away = group(&stores, &there, &ada, &[]).await;

    let mut old = Vec::new();
    for i in 0..7_u8 {
        let conversation = if i % 2 == 0 { &team } else { &side };
        let mut new = new_message(conversation, &ada, at(i64::from(i)));
        new.content = sealed_as(1 + i32::from(i % 2), i);
        old.push(insert(&stores, &new).await);
    }
    let mut current = new_message(&team, &ada, at(10));
    current.content = sealed_as(3, 10);
    let current = insert(&stores, &current).await;
    let mut foreign = new_message(&away, &ada, at(11));
    foreign.content = sealed_as(1, 11);
    insert(&stores, &foreign).await;
    let deleted = insert(&stores, &new_message(&team, &ada, at(12))).await;
    stores.messages.delete_message(deleted.id, at(13)).await.expect("delete");

    let mut expected: Vec<SealedContent> = old.iter().map(as_content).collect();
    expected.sort_by_key(|c| c.id.as_uuid());
    for limit in [1, 3, 100] {
        assert_eq!(all_below(&stores, here.id, 3, limit).await, expected, "pages of {limit}");
    }
    let below_two: Vec<_> = expected.iter().filter(|c| c.content.key_version < 2).cloned().collect();
    assert_eq!(all_below(&stores, here.id, 2, 2).await, below_two);
    assert_eq!(all_below(&stores, here.id, 1, 10).await, []);
    assert_eq!(all_below(&stores, WorkspaceId::generate(), 3, 10).await, []);
    assert!(!all_below(&stores, here.id, 4, 100).await.iter().any(|c| c.id == deleted.id));

    // Replaced while unchanged: the row leaves the listing, the rest of the row is kept.
    let target = &old[0];
    let resealed = sealed_as(3, 100);
    assert!(stores.messages.replace_sealed(target.id, &as_content(target).content, &resealed).await.expect("replace"));
    let after = stores.messages.find_message(target.id).await.expect("find").expect("kept");
    assert_eq!(after, StoredMessage { content: Some(resealed.clone()), ..target.clone() });
    assert!(!all_below(&stores, here.id, 3, 100).await.iter().any(|c| c.id == target.id));
    // Replacing again from the old value is refused: it is no longer what is stored.
    assert!(
        !stores
            .messages
            .replace_sealed(target.id, &as_content(target).content, &sealed_as(3, 101))
            .await
            .expect("replace")
    );
    assert_eq!(stores.messages.find_message(target.id).await.expect("find").expect("kept").content, Some(resealed));

    // An edit in between wins, even one sealed under the same old version.
    let edited = &old[2];
    let edit = sealed_as(edited.content.as_ref().expect("sealed").key_version, 200);
    stores.messages.edit_message(edited.id, &edit, at(20)).await.expect("edit");
    assert!(
        !stores
            .messages
            .replace_sealed(edited.id, &as_content(edited).content, &sealed_as(3, 102))
            .await
            .expect("replace")
    );
    let after = stores.messages.find_message(edited.id).await.expect("find").expect("kept");
    assert_eq!((after.content, after.edited_at), (Some(edit), Some(at(20))));

    // A delete in between wins too; an unknown message is not replaced.
    let gone = &old[4];
    stores.messages.delete_message(gone.id, at(21)).await.expect("delete");
    assert!(
        !stores.messages.replace_sealed(gone.id, &as_content(gone).content, &sealed_as(3, 103)).await.expect("replace")
    );
    assert_eq!(stores.messages.find_message(gone.id).await.expect("find").expect("kept").content, None);
    assert!(
        !stores
            .messages
            .replace_sealed(MessageId::generate(), &sealed_as(1, 1), &sealed_as(3, 1))
            .await
            .expect("replace")
    );

    // The current one was never listed and is untouched.
    assert_eq!(stores.messages.find_message(current.id).await.expect("find"), Some(current));
}

/// Destroying a workspace's keys deletes all its versions and nothing of another workspace;
/// so does deleting its search tags. Keyed workspaces are listed once each, in id order.
pub async fn destroying_keys_and_tags_touches_one_workspace_only(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let here = workspace(&stores, &ada, "here", &[]).await;
    let there = workspace(&stores, &ada, "there", &[]).await;
    workspace(&stores, &ada, "keyless", &[]).await;
    let key = |version, fill: u8| WrappedKey { version, wrapped: vec![fill; 60] };
    for (ws, versions) in [(here.id, 3), (there.id, 2)] {
        for version in 1..=versions {
            assert!(stores.keys.insert_workspace_key(ws, &key(version, 7)).await.expect("insert"));
        }
    }
    let mut keyed = vec![here.id, there.id];
    keyed.sort_by_key(|id| id.as_uuid());
    assert_eq!(stores.keys.keyed_workspaces().await.expect("list"), keyed);

    let tag = |byte: u8| SearchTag([byte; TAG_LEN]);
    let mut indexed = Vec::new();
    for ws in [&here, &there] {
        let conversation = group(&stores, ws, &ada, &[]).await;
        let message = insert(&stores, &new_message(&conversation, &ada, at(1))).await;
        let entry = IndexEntry {
            message_id: message.id,
            workspace_id: ws.id,
            conversation_id: conversation.id,
            created_at: message.created_at,
            tags: vec![tag(1), tag(2)],
        };
        stores.search.replace_message_tags(&entry).await.expect("index");
        indexed.push((ws.id, conversation.id, message.id));
    }
    let found = |(ws, conversation, _): (WorkspaceId, _, MessageId)| {
        let search = stores.search.clone();
        async move {
            let query = TagQuery {
                workspace_id: ws,
                conversations: vec![conversation],
                tags: vec![tag(1)],
                before: None,
                limit: 10,
            };
            search.search_messages(&query).await.expect("search").messages.iter().map(|m| m.id).collect::<Vec<_>>()
        }
    };

    assert_eq!(stores.keys.destroy_workspace_keys(here.id).await.expect("destroy"), 3);
    assert_eq!(stores.keys.workspace_keys(here.id).await.expect("list"), []);
    assert_eq!(stores.keys.workspace_keys(there.id).await.expect("list"), [key(1, 7), key(2, 7)]);
    assert_eq!(stores.keys.keyed_workspaces().await.expect("list"), [there.id]);
    assert_eq!(stores.keys.destroy_workspace_keys(here.id).await.expect("destroy again"), 0);

    assert_eq!(stores.search.delete_workspace_tags(here.id).await.expect("drop tags"), 2);
    assert_eq!(found(indexed[0]).await, []);
    assert_eq!(found(indexed[1]).await, [indexed[1].2]);
    assert_eq!(stores.search.delete_workspace_tags(here.id).await.expect("drop again"), 0);

    // A destroyed workspace can be keyed again from version 1.
    assert!(stores.keys.insert_workspace_key(here.id, &key(1, 9)).await.expect("insert"));
    assert_eq!(stores.keys.workspace_keys(here.id).await.expect("list"), [key(1, 9)]);
}
