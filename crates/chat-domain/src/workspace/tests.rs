//! Workspaces: names and slugs, creation, and who may see and manage membership.

use std::sync::{Arc, Mutex};

use super::*;
use crate::error::DomainError;
use crate::ids::{UserId, WorkspaceId};
use crate::tests::{Scene, assert_invalid, now, user, workspace, workspace_member};
use crate::user::PasswordHash;

// ----------------------------------------------------------------------------- names

#[test]
fn a_name_is_one_clean_line_of_1_to_100_characters() {
    assert_eq!(Name::parse("name", " Acme\u{202E} Corp\n ").unwrap().as_str(), "Acme Corp");
    assert_eq!(Name::parse("name", &"ß".repeat(100)).unwrap().as_str().chars().count(), 100);
    assert_invalid(Name::parse("name", &"ß".repeat(101)), "name");
    assert_invalid(Name::parse("name", " \u{2066} "), "name");
}

#[test]
fn a_name_reports_the_field_it_was_parsed_for() {
    assert_invalid(Name::parse("title", ""), "title");
}

#[test]
fn a_slug_is_lower_case_ascii_words_joined_by_dashes() {
    let slug = |raw: &str| Name::parse("name", raw).unwrap().slug();
    assert_eq!(slug("Acme Corp!"), "acme-corp");
    assert_eq!(slug("R&D -- Team 2"), "r-d-team-2");
    assert_eq!(slug("--Hello--"), "hello");
}

#[test]
fn a_slug_is_never_empty() {
    assert_eq!(Name::parse("name", "日本語").unwrap().slug(), "workspace");
    assert_eq!(Name::parse("name", "!!!").unwrap().slug(), "workspace");
}

#[test]
fn a_long_slug_is_cut_to_48_characters_without_a_trailing_dash() {
    let long = Name::parse("name", &"a".repeat(100)).unwrap().slug();
    assert_eq!(long.len(), 48);
    let cut_at_a_space = Name::parse("name", &format!("{} tail", "a".repeat(47))).unwrap().slug();
    assert_eq!(cut_at_a_space, "a".repeat(47));
}

#[test]
fn workspace_roles_parse_in_any_case_and_rank_owner_first() {
    assert_eq!(WorkspaceRole::parse("OWNER").unwrap(), WorkspaceRole::Owner);
    assert_eq!(WorkspaceRole::parse("Guest").unwrap(), WorkspaceRole::Guest);
    assert_invalid(WorkspaceRole::parse("superuser"), "role");
    let ranks: Vec<u8> = [WorkspaceRole::Owner, WorkspaceRole::Admin, WorkspaceRole::Member, WorkspaceRole::Guest]
        .map(WorkspaceRole::rank)
        .into();
    assert!(ranks.windows(2).all(|w| w[0] > w[1]));
    assert!(WorkspaceRole::Admin.manages_members() && !WorkspaceRole::Member.manages_members());
}

// ----------------------------------------------------------------------------- create, get, list

#[tokio::test]
async fn creating_a_workspace_makes_the_creator_its_owner() {
    let alice = UserId::generate();
    let mut scene = Scene::new();
    scene
        .mocks
        .workspaces
        .expect_create_workspace()
        .withf(move |w| {
            w.created_by == alice && w.name.as_str() == "Acme Corp" && w.slug == "acme-corp" && w.created_at == now()
        })
        .times(1)
        .returning(|_| Ok(()));

    let view = scene.build().chat.workspaces.create(alice, "Acme Corp").await.unwrap();

    assert_eq!(view.role, WorkspaceRole::Owner);
    assert_eq!(view.workspace.created_by, alice);
    assert_eq!(view.workspace.slug, "acme-corp");
}

#[tokio::test]
async fn a_taken_slug_is_retried_with_a_suffix() {
    let tried: Arc<Mutex<Vec<Workspace>>> = Arc::default();
    let mut scene = Scene::new();
    let log = tried.clone();
    scene.mocks.workspaces.expect_create_workspace().times(2).returning(move |w| {
        let mut log = log.lock().unwrap();
        log.push(w.clone());
        if log.len() == 1 { Err(CreateWorkspaceError::DuplicateSlug) } else { Ok(()) }
    });

    let view = scene.build().chat.workspaces.create(UserId::generate(), "Acme Corp").await.unwrap();

    let tried = tried.lock().unwrap();
    assert_eq!(tried[0].slug, "acme-corp");
    let suffix = tried[1].slug.strip_prefix("acme-corp-").expect("the base slug and a dash");
    assert!(suffix.len() >= 6 && suffix.chars().all(|c| c.is_ascii_hexdigit()), "{suffix}");
    assert_eq!(tried[0].id, tried[1].id, "the same workspace is retried");
    assert_eq!(view.workspace.slug, tried[1].slug);
}

#[tokio::test]
async fn when_no_slug_can_be_found_creation_is_a_conflict() {
    let mut scene = Scene::new();
    scene.mocks.workspaces.expect_create_workspace().times(4).returning(|_| Err(CreateWorkspaceError::DuplicateSlug));
    let result = scene.build().chat.workspaces.create(UserId::generate(), "Acme").await;
    assert!(matches!(result, Err(DomainError::Conflict(_))), "{result:?}");
}

#[tokio::test]
async fn a_workspace_needs_a_name() {
    let mut scene = Scene::new();
    scene.mocks.workspaces.expect_create_workspace().never();
    assert_invalid(scene.build().chat.workspaces.create(UserId::generate(), " \t ").await, "name");
}

#[tokio::test]
async fn a_member_gets_the_workspace_with_their_role() {
    let mut scene = Scene::new();
    let ws = scene.workspace.clone();
    scene.mocks.workspaces.expect_find_workspace().returning(move |id| Ok((id == ws.id).then(|| ws.clone())));
    let (alice, ws) = (scene.alice.id, scene.workspace.clone());

    let view = scene.build().chat.workspaces.get(alice, ws.id).await.unwrap();

    assert_eq!(view, WorkspaceView { workspace: ws, role: WorkspaceRole::Member });
}

#[tokio::test]
async fn an_outsider_gets_not_found_for_a_workspace() {
    let mut scene = Scene::new();
    scene.mocks.workspaces.expect_find_workspace().never();
    let (outsider, ws) = (scene.outsider.id, scene.workspace.id);
    let result = scene.build().chat.workspaces.get(outsider, ws).await;
    assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
}

#[tokio::test]
async fn an_outsider_gets_not_found_for_the_member_list() {
    let mut scene = Scene::new();
    scene.mocks.workspaces.expect_list_workspace_members().never();
    let (outsider, ws) = (scene.outsider.id, scene.workspace.id);
    let result = scene.build().chat.workspaces.members(outsider, ws).await;
    assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
}

#[tokio::test]
async fn a_member_lists_the_members() {
    let scene = Scene::new();
    let (alice, ws) = (scene.alice.id, scene.workspace.id);
    let members = scene.build().chat.workspaces.members(alice, ws).await.unwrap();
    assert_eq!(members.len(), 6, "owner, admin, alice, bob, carol, guest");
    assert!(members.iter().all(|m| m.workspace_id == ws));
}

#[tokio::test]
async fn listing_returns_the_callers_workspaces() {
    let alice = user("alice");
    let mut scene = Scene::new();
    let mine = vec![WorkspaceView { workspace: workspace(alice.id), role: WorkspaceRole::Owner }];
    let returned = mine.clone();
    scene
        .mocks
        .workspaces
        .expect_list_workspaces_of()
        .withf(move |u| *u == alice.id)
        .returning(move |_| Ok(returned.clone()));
    assert_eq!(scene.build().chat.workspaces.list(alice.id).await.unwrap(), mine);
}

// ----------------------------------------------------------------------------- add members

fn expect_added(scene: &mut Scene, who: UserId, role: WorkspaceRole) {
    let target = user("target");
    scene
        .mocks
        .workspaces
        .expect_add_workspace_member()
        .withf(move |_, u, r, at| *u == who && *r == role && *at == now())
        .times(1)
        .returning(move |ws, _, r, _| Ok(workspace_member(ws, &target, r)));
}

fn expect_lookup(scene: &mut Scene, found: &crate::user::User) {
    let found = found.clone();
    scene.mocks.users.expect_find_user().returning(move |id| Ok((id == found.id).then(|| found.clone())));
}

#[tokio::test]
async fn an_outsider_cannot_add_members_and_learns_nothing() {
    let mut scene = Scene::new();
    scene.mocks.workspaces.expect_add_workspace_member().never();
    let (outsider, ws, bob) = (scene.outsider.id, scene.workspace.id, scene.bob.id);
    let result = scene.build().chat.workspaces.add_member(outsider, ws, MemberRef::Id(bob), None).await;
    assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
}

#[tokio::test]
async fn a_plain_member_or_guest_cannot_add_members() {
    for actor in [|s: &Scene| s.alice.id, |s: &Scene| s.guest.id] {
        let newcomer = user("newcomer");
        let mut scene = Scene::new();
        scene.mocks.workspaces.expect_add_workspace_member().never();
        let (actor, ws) = (actor(&scene), scene.workspace.id);
        let result = scene.build().chat.workspaces.add_member(actor, ws, MemberRef::Id(newcomer.id), None).await;
        assert!(matches!(result, Err(DomainError::Forbidden(_))), "{result:?}");
    }
}

#[tokio::test]
async fn an_admin_adds_a_member_by_email_in_any_case() {
    let newcomer = user("newcomer");
    let mut scene = Scene::new();
    let found = newcomer.clone();
    scene
        .mocks
        .users
        .expect_find_user_by_email()
        .withf(|e| e.as_str() == "newcomer@example.com")
        .returning(move |_| Ok(Some((found.clone(), PasswordHash("$argon2id$x".to_owned())))));
    expect_added(&mut scene, newcomer.id, WorkspaceRole::Member);
    let (admin, ws) = (scene.admin.id, scene.workspace.id);

    let member = scene
        .build()
        .chat
        .workspaces
        .add_member(admin, ws, MemberRef::Email(" NewComer@Example.COM".to_owned()), None)
        .await
        .unwrap();

    assert_eq!(member.role, WorkspaceRole::Member);
}

#[tokio::test]
async fn an_admin_cannot_grant_admin_or_owner() {
    for role in [WorkspaceRole::Admin, WorkspaceRole::Owner] {
        let newcomer = user("newcomer");
        let mut scene = Scene::new();
        expect_lookup(&mut scene, &newcomer);
        scene.mocks.workspaces.expect_add_workspace_member().never();
        let (admin, ws) = (scene.admin.id, scene.workspace.id);
        let result = scene.build().chat.workspaces.add_member(admin, ws, MemberRef::Id(newcomer.id), Some(role)).await;
        assert!(matches!(result, Err(DomainError::Forbidden(_))), "{role:?}: {result:?}");
    }
}

#[tokio::test]
async fn an_admin_may_add_a_guest() {
    let newcomer = user("newcomer");
    let mut scene = Scene::new();
    expect_lookup(&mut scene, &newcomer);
    expect_added(&mut scene, newcomer.id, WorkspaceRole::Guest);
    let (admin, ws) = (scene.admin.id, scene.workspace.id);
    let member = scene
        .build()
        .chat
        .workspaces
        .add_member(admin, ws, MemberRef::Id(newcomer.id), Some(WorkspaceRole::Guest))
        .await
        .unwrap();
    assert_eq!(member.role, WorkspaceRole::Guest);
}

#[tokio::test]
async fn an_owner_can_grant_admin() {
    let newcomer = user("newcomer");
    let mut scene = Scene::new();
    expect_lookup(&mut scene, &newcomer);
    expect_added(&mut scene, newcomer.id, WorkspaceRole::Admin);
    let (owner, ws) = (scene.owner.id, scene.workspace.id);
    let member = scene
        .build()
        .chat
        .workspaces
        .add_member(owner, ws, MemberRef::Id(newcomer.id), Some(WorkspaceRole::Admin))
        .await
        .unwrap();
    assert_eq!(member.role, WorkspaceRole::Admin);
}

#[tokio::test]
async fn not_even_the_owner_grants_owner() {
    let newcomer = user("newcomer");
    let mut scene = Scene::new();
    expect_lookup(&mut scene, &newcomer);
    scene.mocks.workspaces.expect_add_workspace_member().never();
    let (owner, ws) = (scene.owner.id, scene.workspace.id);
    let result = scene
        .build()
        .chat
        .workspaces
        .add_member(owner, ws, MemberRef::Id(newcomer.id), Some(WorkspaceRole::Owner))
        .await;
    assert!(matches!(result, Err(DomainError::Forbidden(_))), "{result:?}");
}

#[tokio::test]
async fn adding_an_unknown_user_is_not_found() {
    let mut scene = Scene::new();
    scene.mocks.users.expect_find_user().returning(|_| Ok(None));
    scene.mocks.users.expect_find_user_by_email().returning(|_| Ok(None));
    scene.mocks.workspaces.expect_add_workspace_member().never();
    let (admin, ws) = (scene.admin.id, scene.workspace.id);
    let service = scene.build().chat.workspaces;
    let by_id = service.add_member(admin, ws, MemberRef::Id(UserId::generate()), None).await;
    assert!(matches!(by_id, Err(DomainError::NotFound)), "{by_id:?}");
    let by_email = service.add_member(admin, ws, MemberRef::Email("ghost@example.com".to_owned()), None).await;
    assert!(matches!(by_email, Err(DomainError::NotFound)), "{by_email:?}");
}

#[tokio::test]
async fn adding_an_existing_member_is_a_conflict() {
    let mut scene = Scene::new();
    let bob = scene.bob.clone();
    expect_lookup(&mut scene, &bob);
    scene
        .mocks
        .workspaces
        .expect_add_workspace_member()
        .returning(|_, _, _, _| Err(AddWorkspaceMemberError::Duplicate));
    let (admin, ws) = (scene.admin.id, scene.workspace.id);
    let result = scene.build().chat.workspaces.add_member(admin, ws, MemberRef::Id(bob.id), None).await;
    assert!(matches!(result, Err(DomainError::Conflict(_))), "{result:?}");
}

// ----------------------------------------------------------------------------- remove members

fn expect_removed(scene: &mut Scene, ws: WorkspaceId, who: UserId) {
    scene
        .mocks
        .workspaces
        .expect_remove_workspace_member()
        .withf(move |w, u| *w == ws && *u == who)
        .times(1)
        .returning(|_, _| Ok(true));
}

#[tokio::test]
async fn an_outsider_cannot_remove_members_and_learns_nothing() {
    let mut scene = Scene::new();
    scene.mocks.workspaces.expect_remove_workspace_member().never();
    let (outsider, ws, bob) = (scene.outsider.id, scene.workspace.id, scene.bob.id);
    let result = scene.build().chat.workspaces.remove_member(outsider, ws, bob).await;
    assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
}

#[tokio::test]
async fn the_owner_cannot_be_removed_not_even_by_themself() {
    for actor in [|s: &Scene| s.admin.id, |s: &Scene| s.owner.id] {
        let mut scene = Scene::new();
        scene.mocks.workspaces.expect_remove_workspace_member().never();
        let (actor, ws, owner) = (actor(&scene), scene.workspace.id, scene.owner.id);
        let result = scene.build().chat.workspaces.remove_member(actor, ws, owner).await;
        assert!(matches!(result, Err(DomainError::Forbidden(_))), "{result:?}");
    }
}

#[tokio::test]
async fn a_member_can_leave() {
    let mut scene = Scene::new();
    let (alice, ws) = (scene.alice.id, scene.workspace.id);
    expect_removed(&mut scene, ws, alice);
    scene.build().chat.workspaces.remove_member(alice, ws, alice).await.unwrap();
}

#[tokio::test]
async fn a_member_cannot_remove_another_member() {
    let mut scene = Scene::new();
    scene.mocks.workspaces.expect_remove_workspace_member().never();
    let (alice, ws, bob) = (scene.alice.id, scene.workspace.id, scene.bob.id);
    let result = scene.build().chat.workspaces.remove_member(alice, ws, bob).await;
    assert!(matches!(result, Err(DomainError::Forbidden(_))), "{result:?}");
}

#[tokio::test]
async fn an_admin_removes_a_member() {
    let mut scene = Scene::new();
    let (admin, ws, bob) = (scene.admin.id, scene.workspace.id, scene.bob.id);
    expect_removed(&mut scene, ws, bob);
    scene.build().chat.workspaces.remove_member(admin, ws, bob).await.unwrap();
}

#[tokio::test]
async fn an_admin_cannot_remove_another_admin() {
    let other_admin = user("other-admin");
    let mut scene = Scene::new();
    scene.mocks.in_workspace(scene.workspace.id, &other_admin, WorkspaceRole::Admin);
    scene.mocks.workspaces.expect_remove_workspace_member().never();
    let (admin, ws) = (scene.admin.id, scene.workspace.id);
    let result = scene.build().chat.workspaces.remove_member(admin, ws, other_admin.id).await;
    assert!(matches!(result, Err(DomainError::Forbidden(_))), "{result:?}");
}

#[tokio::test]
async fn the_owner_removes_an_admin() {
    let mut scene = Scene::new();
    let (owner, ws, admin) = (scene.owner.id, scene.workspace.id, scene.admin.id);
    expect_removed(&mut scene, ws, admin);
    scene.build().chat.workspaces.remove_member(owner, ws, admin).await.unwrap();
}

#[tokio::test]
async fn removing_someone_who_is_not_a_member_is_not_found() {
    let mut scene = Scene::new();
    scene.mocks.workspaces.expect_remove_workspace_member().never();
    let (admin, ws, outsider) = (scene.admin.id, scene.workspace.id, scene.outsider.id);
    let result = scene.build().chat.workspaces.remove_member(admin, ws, outsider).await;
    assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
}

// ----------------------------------------------------------------------------- audit log

#[tokio::test]
async fn adding_a_workspace_member_records_exactly_one_audit_entry() {
    let newcomer = user("newcomer");
    let mut scene = Scene::new();
    expect_lookup(&mut scene, &newcomer);
    expect_added(&mut scene, newcomer.id, WorkspaceRole::Guest);
    let (admin, ws) = (scene.admin.id, scene.workspace.id);
    let h = scene.build();

    h.chat.workspaces.add_member(admin, ws, MemberRef::Id(newcomer.id), Some(WorkspaceRole::Guest)).await.unwrap();

    let entries = h.audit();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(entry.action, crate::audit::AuditAction::WorkspaceMemberAdded);
    assert_eq!((entry.workspace_id, entry.actor), (Some(ws), Some(admin)));
    assert_eq!(entry.target.as_deref(), Some(format!("user:{} role:guest", newcomer.id).as_str()));
    assert_eq!(entry.at, now());
}

#[tokio::test]
async fn removing_a_workspace_member_records_exactly_one_audit_entry_and_a_refusal_none() {
    let mut scene = Scene::new();
    let (admin, alice, bob, ws) = (scene.admin.id, scene.alice.id, scene.bob.id, scene.workspace.id);
    expect_removed(&mut scene, ws, bob);
    let h = scene.build();

    assert!(h.chat.workspaces.remove_member(alice, ws, admin).await.is_err());
    assert!(h.audit().is_empty(), "a refused removal is not an audited action");
    h.chat.workspaces.remove_member(admin, ws, bob).await.unwrap();

    let entries = h.audit();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].action, crate::audit::AuditAction::WorkspaceMemberRemoved);
    assert_eq!((entries[0].workspace_id, entries[0].actor), (Some(ws), Some(admin)));
    assert_eq!(entries[0].target.as_deref(), Some(format!("user:{bob}").as_str()));
}
