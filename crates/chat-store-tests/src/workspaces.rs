//! [`WorkspaceRepository`](chat_domain::workspace::WorkspaceRepository): workspaces, unique
//! slugs, members with roles.

use chat_domain::conversation::ConversationType;
use chat_domain::ids::{UserId, WorkspaceId};
use chat_domain::workspace::{
    AddWorkspaceMemberError, CreateWorkspaceError, WorkspaceMember, WorkspaceRole, WorkspaceView,
};

use crate::Stores;
use crate::fixtures::{at, create, group, new_conversation, new_workspace, user, workspace};

/// A created workspace is found by id, and its creator is its owner, joined when it was made.
pub async fn a_created_workspace_is_found_and_its_creator_is_its_owner(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let acme = new_workspace(&ada, "acme", at(5));
    stores.workspaces.create_workspace(&acme).await.expect("create");

    assert_eq!(stores.workspaces.find_workspace(acme.id).await.expect("find").as_ref(), Some(&acme));
    assert_eq!(stores.workspaces.member_role(acme.id, ada.id).await.expect("role"), Some(WorkspaceRole::Owner));
    let members = stores.workspaces.list_workspace_members(acme.id).await.expect("members");
    assert_eq!(
        members,
        [WorkspaceMember { workspace_id: acme.id, user: ada.clone(), role: WorkspaceRole::Owner, joined_at: at(5) }]
    );
    assert_eq!(stores.workspaces.find_workspace(WorkspaceId::generate()).await.expect("find unknown"), None);
}

/// A second workspace with a taken slug is refused as `DuplicateSlug`, and nothing of it is
/// stored.
pub async fn a_taken_slug_is_refused(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    stores.workspaces.create_workspace(&new_workspace(&ada, "acme", at(0))).await.expect("create");
    let second = new_workspace(&bob, "acme", at(1));
    let refused = stores.workspaces.create_workspace(&second).await;
    assert!(matches!(refused, Err(CreateWorkspaceError::DuplicateSlug)), "got {refused:?}");
    assert_eq!(stores.workspaces.find_workspace(second.id).await.expect("find"), None);
    assert_eq!(stores.workspaces.member_role(second.id, bob.id).await.expect("role"), None);
    assert_eq!(stores.workspaces.list_workspaces_of(bob.id).await.expect("list"), []);
}

/// A user's workspaces are exactly those they belong to, oldest first, each with their role;
/// `member_role` is `None` for strangers and unknown workspaces.
pub async fn a_users_workspaces_are_listed_with_their_roles(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let first = new_workspace(&ada, "first", at(0));
    let second = new_workspace(&bob, "second", at(10));
    let third = new_workspace(&bob, "third", at(30));
    for w in [&first, &second, &third] {
        stores.workspaces.create_workspace(w).await.expect("create");
    }
    stores.workspaces.add_workspace_member(second.id, ada.id, WorkspaceRole::Member, at(20)).await.expect("add");

    let listed = stores.workspaces.list_workspaces_of(ada.id).await.expect("list");
    assert_eq!(
        listed,
        [
            WorkspaceView { workspace: first.clone(), role: WorkspaceRole::Owner },
            WorkspaceView { workspace: second.clone(), role: WorkspaceRole::Member },
        ]
    );
    assert_eq!(stores.workspaces.list_workspaces_of(UserId::generate()).await.expect("list"), []);
    assert_eq!(stores.workspaces.member_role(third.id, ada.id).await.expect("role"), None);
    assert_eq!(stores.workspaces.member_role(WorkspaceId::generate(), ada.id).await.expect("role"), None);
}

/// Members are added once (a second add is `Duplicate`) and listed with their profiles and
/// roles in join order.
pub async fn workspace_members_are_added_once_and_listed_with_profiles_in_join_order(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let cat = user(&stores, "cat").await;
    let acme = new_workspace(&ada, "acme", at(0));
    stores.workspaces.create_workspace(&acme).await.expect("create");

    let added =
        stores.workspaces.add_workspace_member(acme.id, cat.id, WorkspaceRole::Guest, at(10)).await.expect("add");
    let expected_cat =
        WorkspaceMember { workspace_id: acme.id, user: cat.clone(), role: WorkspaceRole::Guest, joined_at: at(10) };
    assert_eq!(added, expected_cat);
    stores.workspaces.add_workspace_member(acme.id, bob.id, WorkspaceRole::Admin, at(20)).await.expect("add");
    let again = stores.workspaces.add_workspace_member(acme.id, bob.id, WorkspaceRole::Member, at(30)).await;
    assert!(matches!(again, Err(AddWorkspaceMemberError::Duplicate)), "got {again:?}");

    let members = stores.workspaces.list_workspace_members(acme.id).await.expect("members");
    assert_eq!(
        members,
        [
            WorkspaceMember { workspace_id: acme.id, user: ada.clone(), role: WorkspaceRole::Owner, joined_at: at(0) },
            expected_cat,
            WorkspaceMember { workspace_id: acme.id, user: bob.clone(), role: WorkspaceRole::Admin, joined_at: at(20) },
        ]
    );
    assert_eq!(stores.workspaces.member_role(acme.id, bob.id).await.expect("role"), Some(WorkspaceRole::Admin));
}

/// Removing a member also removes them from every conversation of that workspace, and from
/// none of another workspace; a second removal reports that they were not a member.
pub async fn removing_a_workspace_member_removes_their_conversations_there_only(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let here = workspace(&stores, &ada, "here", &[&bob]).await;
    let there = workspace(&stores, &ada, "there", &[&bob]).await;
    let here_group = group(&stores, &here, &ada, &[&bob]).await;
    let here_channel = create(&stores, &new_conversation(&here, ConversationType::Channel, &bob, &[&ada], at(2))).await;
    let there_group = group(&stores, &there, &ada, &[&bob]).await;

    assert!(stores.workspaces.remove_workspace_member(here.id, bob.id).await.expect("remove"));

    assert_eq!(stores.workspaces.member_role(here.id, bob.id).await.expect("role"), None);
    for c in [&here_group, &here_channel] {
        assert_eq!(stores.conversations.find_member(c.id, bob.id).await.expect("member"), None);
        assert!(stores.conversations.find_member(c.id, ada.id).await.expect("member").is_some());
    }
    assert!(stores.conversations.find_member(there_group.id, bob.id).await.expect("member").is_some());
    assert_eq!(stores.workspaces.member_role(there.id, bob.id).await.expect("role"), Some(WorkspaceRole::Member));
    assert!(!stores.workspaces.remove_workspace_member(here.id, bob.id).await.expect("remove again"));
}
