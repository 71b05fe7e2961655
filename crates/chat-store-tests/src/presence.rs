//! [`PresenceRepository`](chat_domain::presence::PresenceRepository) and
//! [`KeyRepository`](chat_domain::cipher::KeyRepository).

use chat_domain::cipher::WrappedKey;
use chat_domain::ids::WorkspaceId;
use chat_domain::presence::{Presence, PresenceStatus};
use futures_util::future::join_all;

use crate::Stores;
use crate::fixtures::{at, user, workspace};

async fn listed(stores: &Stores, workspace: WorkspaceId) -> Vec<Presence> {
    let mut listed = stores.presence.list_presence(workspace).await.expect("list presence");
    listed.sort_by_key(|p| p.user_id);
    listed
}

/// One record per (user, workspace), replaced by each upsert and found by its key; a workspace
/// lists the records of its current members only.
pub async fn presence_is_upserted_per_user_and_workspace_and_listed_and_found(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let here = workspace(&stores, &ada, "here", &[&bob]).await;
    let there = workspace(&stores, &ada, "there", &[]).await;
    let presence = |user: &chat_domain::user::User, workspace: WorkspaceId, status, secs| Presence {
        user_id: user.id,
        workspace_id: workspace,
        status,
        last_seen: at(secs),
    };

    let updates = [
        presence(&ada, here.id, PresenceStatus::Online, 1),
        presence(&bob, here.id, PresenceStatus::Away, 2),
        presence(&ada, here.id, PresenceStatus::Busy, 3),
        presence(&ada, there.id, PresenceStatus::Online, 4),
    ];
    for update in &updates {
        stores.presence.upsert_presence(update).await.expect("upsert");
    }

    assert_eq!(stores.presence.find_presence(ada.id, here.id).await.expect("find"), Some(updates[2].clone()));
    assert_eq!(stores.presence.find_presence(ada.id, there.id).await.expect("find"), Some(updates[3].clone()));
    assert_eq!(stores.presence.find_presence(bob.id, there.id).await.expect("find"), None);

    let mut expected = vec![updates[2].clone(), updates[1].clone()];
    expected.sort_by_key(|p| p.user_id);
    assert_eq!(listed(&stores, here.id).await, expected);
    assert_eq!(listed(&stores, there.id).await, [updates[3].clone()]);
    assert_eq!(listed(&stores, WorkspaceId::generate()).await, []);

    stores.workspaces.remove_workspace_member(here.id, bob.id).await.expect("remove");
    assert_eq!(listed(&stores, here.id).await, [updates[2].clone()]);
}

/// Key versions are listed oldest first, per workspace; a version is stored once, and a
/// second insert of it (even a concurrent one) is `false` and changes nothing.
pub async fn workspace_keys_are_listed_by_version_and_never_overwritten(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let here = workspace(&stores, &ada, "here", &[]).await;
    let there = workspace(&stores, &ada, "there", &[]).await;
    let key = |version, fill: u8| WrappedKey { version, wrapped: vec![fill, 0x00, 0xff, fill] };

    assert!(stores.keys.insert_workspace_key(here.id, &key(1, 1)).await.expect("insert"));
    assert!(stores.keys.insert_workspace_key(here.id, &key(2, 2)).await.expect("insert"));
    assert!(!stores.keys.insert_workspace_key(here.id, &key(1, 9)).await.expect("insert again"));
    let racers = (0..10).map(|i| {
        let keys = stores.keys.clone();
        let id = here.id;
        tokio::spawn(async move { keys.insert_workspace_key(id, &key(3, 30 + i)).await })
    });
    let won =
        join_all(racers).await.into_iter().filter(|r| *r.as_ref().expect("task").as_ref().expect("insert")).count();
    assert_eq!(won, 1);

    let stored = stores.keys.workspace_keys(here.id).await.expect("list");
    assert_eq!(stored.iter().map(|k| k.version).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(stored[..2], [key(1, 1), key(2, 2)]);
    assert_eq!(stores.keys.workspace_keys(there.id).await.expect("list"), []);
}
