//! Conversations: creation rules per kind, attributes, archive, membership and roles, read
//! watermarks and unread counts — with the events each use case publishes.

use std::sync::{Arc, Mutex};

use super::ConversationRole::{Admin, Member as Plain, Moderator};
use super::*;
use crate::error::DomainError;
use crate::event::{ConversationUpdate, DomainEvent};
use crate::ids::{ConversationId, UserId};
use crate::tests::{Scene, assert_invalid, member, minutes_ago, now, stored_message};
use crate::user::User;

// ----------------------------------------------------------------------------- types

#[test]
fn conversation_types_and_their_aliases_parse_in_any_case() {
    for (raw, kind) in [
        ("DM", ConversationType::Dm),
        ("dm", ConversationType::Dm),
        ("direct", ConversationType::Dm),
        ("Direct", ConversationType::Dm),
        ("GROUP", ConversationType::Group),
        ("group", ConversationType::Group),
        ("Channel", ConversationType::Channel),
        ("channel", ConversationType::Channel),
        ("DOCUMENT", ConversationType::Document),
        ("document", ConversationType::Document),
    ] {
        assert_eq!(ConversationType::parse(raw).unwrap(), kind, "{raw}");
    }
    for bad in ["", "dms", "private", "chan"] {
        assert_invalid(ConversationType::parse(bad), "type");
    }
}

#[test]
fn a_conversation_type_round_trips_through_its_canonical_spelling() {
    for kind in [ConversationType::Dm, ConversationType::Group, ConversationType::Channel, ConversationType::Document] {
        assert_eq!(ConversationType::parse(kind.as_str()).unwrap(), kind);
    }
    assert!(ConversationType::Channel.is_open() && ConversationType::Document.is_open());
    assert!(!ConversationType::Group.is_open() && !ConversationType::Dm.is_open());
}

#[test]
fn conversation_roles_parse_in_any_case() {
    assert_eq!(ConversationRole::parse("Moderator").unwrap(), Moderator);
    assert_eq!(ConversationRole::parse("ADMIN").unwrap(), Admin);
    assert_invalid(ConversationRole::parse("owner"), "role");
}

// ----------------------------------------------------------------------------- create

fn request(kind: ConversationType, scene: &Scene, member_ids: Vec<UserId>) -> CreateConversation {
    CreateConversation {
        kind,
        workspace_id: scene.workspace.id,
        name: (kind == ConversationType::Channel).then(|| "general".to_owned()),
        description: None,
        icon: None,
        member_ids,
        document_id: (kind == ConversationType::Document).then(|| "doc-42".to_owned()),
        is_encrypted: false,
        max_participants: None,
    }
}

type Inserted = Arc<Mutex<Vec<NewConversation>>>;

/// Every `create_conversation` is recorded and reported as new.
fn expect_create(scene: &mut Scene) -> Inserted {
    let inserted: Inserted = Arc::default();
    let log = inserted.clone();
    scene.mocks.conversations.expect_create_conversation().returning(move |new| {
        log.lock().unwrap().push(new.clone());
        Ok(Created::New(new.conversation.clone()))
    });
    inserted
}

fn refuse_create(scene: &mut Scene) {
    scene.mocks.conversations.expect_create_conversation().never();
}

fn roles(new: &NewConversation) -> Vec<(UserId, ConversationRole)> {
    new.members.iter().map(|m| (m.user_id, m.role)).collect()
}

#[tokio::test]
async fn creating_a_channel_makes_the_creator_admin_and_tells_every_member() {
    let mut scene = Scene::new();
    let inserted = expect_create(&mut scene);
    let (alice, bob) = (scene.alice.id, scene.bob.id);
    let req = request(ConversationType::Channel, &scene, vec![bob]);
    let h = scene.build();

    let created = h.chat.conversations.create(alice, req).await.unwrap();

    let Created::New(conversation) = created else { panic!("expected a new conversation") };
    let new = inserted.lock().unwrap().remove(0);
    assert_eq!(roles(&new), vec![(alice, Admin), (bob, Plain)]);
    assert!(new.members.iter().all(|m| m.joined_at == now() && m.last_read_seq == 0));
    assert_eq!(new.unique_key, None);
    assert_eq!(conversation.name.as_deref(), Some("general"));
    assert_eq!(conversation.max_participants, DEFAULT_MAX_PARTICIPANTS);
    assert_eq!((conversation.created_by, conversation.last_seq, conversation.created_at), (alice, 0, now()));
    assert_eq!(h.events(), vec![DomainEvent::ConversationCreated { conversation, member_ids: vec![alice, bob] }]);
}

#[tokio::test]
async fn a_dm_names_exactly_one_other_user() {
    for others in [vec![], vec![true, true]] {
        let mut scene = Scene::new();
        refuse_create(&mut scene);
        let ids = others.iter().zip([scene.bob.id, scene.carol.id]).map(|(_, id)| id).collect();
        let (alice, req) = (scene.alice.id, request(ConversationType::Dm, &scene, ids));
        assert_invalid(scene.build().chat.conversations.create(alice, req).await, "memberIds");
    }
}

#[tokio::test]
async fn a_dm_with_only_the_caller_is_rejected() {
    let mut scene = Scene::new();
    refuse_create(&mut scene);
    let alice = scene.alice.id;
    let req = request(ConversationType::Dm, &scene, vec![alice, alice]);
    assert_invalid(scene.build().chat.conversations.create(alice, req).await, "memberIds");
}

#[tokio::test]
async fn a_dm_may_name_the_caller_too_and_makes_both_people_admins() {
    let mut scene = Scene::new();
    let inserted = expect_create(&mut scene);
    let (alice, bob) = (scene.alice.id, scene.bob.id);
    let req = request(ConversationType::Dm, &scene, vec![alice, bob]);

    let dm = scene.build().chat.conversations.create(alice, req).await.unwrap().into_inner();

    let new = inserted.lock().unwrap().remove(0);
    assert_eq!(roles(&new), vec![(alice, Admin), (bob, Admin)]);
    assert_eq!(dm.max_participants, 2);
    assert_eq!(dm.name, None);
}

#[tokio::test]
async fn a_dm_key_is_the_same_from_either_side_and_differs_when_encrypted() {
    let mut scene = Scene::new();
    let inserted = expect_create(&mut scene);
    let (alice, bob, carol) = (scene.alice.id, scene.bob.id, scene.carol.id);
    let to = |other| request(ConversationType::Dm, &scene, vec![other]);
    let (alice_to_bob, bob_to_alice, alice_to_carol) = (to(bob), to(alice), to(carol));
    let encrypted = CreateConversation { is_encrypted: true, ..to(bob) };
    let service = scene.build().chat.conversations;

    service.create(alice, alice_to_bob).await.unwrap();
    service.create(bob, bob_to_alice).await.unwrap();
    service.create(alice, encrypted).await.unwrap();
    service.create(alice, alice_to_carol).await.unwrap();

    let keys: Vec<String> = inserted.lock().unwrap().iter().map(|n| n.unique_key.clone().unwrap()).collect();
    assert_eq!(keys[0], keys[1], "one DM per pair");
    assert_ne!(keys[0], keys[2], "an encrypted DM is a different conversation");
    assert_ne!(keys[0], keys[3], "another pair is another DM");
    assert!(inserted.lock().unwrap()[2].conversation.is_encrypted);
}

#[tokio::test]
async fn an_existing_dm_is_returned_without_an_event() {
    let mut scene = Scene::new();
    let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
    let existing = scene.conversation(ConversationType::Dm, &[(&alice, Admin), (&bob, Admin)]);
    let found = existing.clone();
    scene
        .mocks
        .conversations
        .expect_create_conversation()
        .times(1)
        .returning(move |_| Ok(Created::Existing(found.clone())));
    let req = request(ConversationType::Dm, &scene, vec![bob.id]);
    let h = scene.build();

    let created = h.chat.conversations.create(alice.id, req).await.unwrap();

    assert_eq!(created, Created::Existing(existing));
    assert!(h.events().is_empty());
}

#[tokio::test]
async fn only_a_dm_can_be_end_to_end_encrypted() {
    for kind in [ConversationType::Group, ConversationType::Channel, ConversationType::Document] {
        let mut scene = Scene::new();
        refuse_create(&mut scene);
        let alice = scene.alice.id;
        let req = CreateConversation { is_encrypted: true, ..request(kind, &scene, vec![]) };
        assert_invalid(scene.build().chat.conversations.create(alice, req).await, "isEncrypted");
    }
}

#[tokio::test]
async fn a_channel_needs_a_name() {
    for name in [None, Some(" \u{202E} ".to_owned())] {
        let mut scene = Scene::new();
        refuse_create(&mut scene);
        let alice = scene.alice.id;
        let req = CreateConversation { name, ..request(ConversationType::Channel, &scene, vec![]) };
        assert_invalid(scene.build().chat.conversations.create(alice, req).await, "name");
    }
}

#[tokio::test]
async fn members_must_belong_to_the_workspace() {
    let mut scene = Scene::new();
    refuse_create(&mut scene);
    let (alice, bob, outsider) = (scene.alice.id, scene.bob.id, scene.outsider.id);
    let group = request(ConversationType::Group, &scene, vec![bob, outsider]);
    let dm = request(ConversationType::Dm, &scene, vec![outsider]);
    let service = scene.build().chat.conversations;
    assert_invalid(service.create(alice, group).await, "memberIds");
    assert_invalid(service.create(alice, dm).await, "memberIds");
}

#[tokio::test]
async fn max_participants_lies_between_2_and_the_configured_limit() {
    let mut scene = Scene::new();
    scene.mocks.limits.max_participants = 50;
    let inserted = expect_create(&mut scene);
    let alice = scene.alice.id;
    let with_cap =
        |cap| CreateConversation { max_participants: Some(cap), ..request(ConversationType::Group, &scene, vec![]) };
    let (one, fifty_one, fifty) = (with_cap(1), with_cap(51), with_cap(50));
    let service = scene.build().chat.conversations;

    assert_invalid(service.create(alice, one).await, "maxParticipants");
    assert_invalid(service.create(alice, fifty_one).await, "maxParticipants");
    assert_eq!(service.create(alice, fifty).await.unwrap().into_inner().max_participants, 50);
    assert_eq!(inserted.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_conversation_cannot_start_with_more_members_than_its_cap() {
    let mut scene = Scene::new();
    refuse_create(&mut scene);
    let (alice, bob, carol) = (scene.alice.id, scene.bob.id, scene.carol.id);
    let req =
        CreateConversation { max_participants: Some(2), ..request(ConversationType::Group, &scene, vec![bob, carol]) };
    assert_invalid(scene.build().chat.conversations.create(alice, req).await, "memberIds");
}

#[tokio::test]
async fn a_guest_may_only_start_direct_messages() {
    for kind in [ConversationType::Group, ConversationType::Channel, ConversationType::Document] {
        let mut scene = Scene::new();
        refuse_create(&mut scene);
        let (guest, alice) = (scene.guest.id, scene.alice.id);
        let req = request(kind, &scene, vec![alice]);
        let result = scene.build().chat.conversations.create(guest, req).await;
        assert!(matches!(result, Err(DomainError::Forbidden(_))), "{kind:?}: {result:?}");
    }
    let mut scene = Scene::new();
    let inserted = expect_create(&mut scene);
    let (guest, alice) = (scene.guest.id, scene.alice.id);
    let req = request(ConversationType::Dm, &scene, vec![alice]);
    scene.build().chat.conversations.create(guest, req).await.unwrap();
    assert_eq!(inserted.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_outsider_cannot_create_in_the_workspace() {
    let mut scene = Scene::new();
    refuse_create(&mut scene);
    let outsider = scene.outsider.id;
    let req = request(ConversationType::Channel, &scene, vec![]);
    let result = scene.build().chat.conversations.create(outsider, req).await;
    assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
}

#[tokio::test]
async fn a_document_chat_needs_a_document_id_and_is_keyed_by_it() {
    let mut scene = Scene::new();
    let inserted = expect_create(&mut scene);
    let alice = scene.alice.id;
    let without = CreateConversation { document_id: None, ..request(ConversationType::Document, &scene, vec![]) };
    let blank = CreateConversation {
        document_id: Some("  ".to_owned()),
        ..request(ConversationType::Document, &scene, vec![])
    };
    let padded = CreateConversation {
        document_id: Some(" doc-42 ".to_owned()),
        ..request(ConversationType::Document, &scene, vec![])
    };
    let service = scene.build().chat.conversations;

    assert_invalid(service.create(alice, without).await, "documentId");
    assert_invalid(service.create(alice, blank).await, "documentId");
    let doc = service.create(alice, padded).await.unwrap().into_inner();

    assert_eq!(doc.document_id.as_deref(), Some("doc-42"));
    assert_eq!(inserted.lock().unwrap()[0].unique_key.as_deref(), Some("doc:doc-42"));
}

#[tokio::test]
async fn only_a_document_chat_has_a_document_id() {
    let mut scene = Scene::new();
    refuse_create(&mut scene);
    let alice = scene.alice.id;
    let req = CreateConversation {
        document_id: Some("doc-1".to_owned()),
        ..request(ConversationType::Group, &scene, vec![])
    };
    assert_invalid(scene.build().chat.conversations.create(alice, req).await, "documentId");
}

// ----------------------------------------------------------------------------- list, members

#[tokio::test]
async fn the_conversation_list_opens_each_last_message() {
    let mut scene = Scene::new();
    let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin), (&bob, Plain)]);
    let listing = ConversationListing {
        conversation: c.clone(),
        member: member(&c, alice.id, Admin),
        unread_count: 3,
        last_message: Some(stored_message(&c, bob.id, 3, "see you")),
    };
    let ws = scene.workspace.id;
    scene
        .mocks
        .conversations
        .expect_list_conversations_of()
        .withf(move |w, u| *w == ws && *u == alice.id)
        .returning(move |_, _| Ok(vec![listing.clone()]));

    let listed = scene.build().chat.conversations.list(alice.id, ws).await.unwrap();

    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].unread_count, 3);
    assert_eq!(listed[0].last_message.as_ref().unwrap().content, "see you");
}

#[tokio::test]
async fn an_outsider_cannot_list_a_workspaces_conversations() {
    let mut scene = Scene::new();
    scene.mocks.conversations.expect_list_conversations_of().never();
    let (outsider, ws) = (scene.outsider.id, scene.workspace.id);
    let result = scene.build().chat.conversations.list(outsider, ws).await;
    assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
}

#[tokio::test]
async fn a_non_member_cannot_list_the_members_of_a_group() {
    let mut scene = Scene::new();
    let (alice, carol) = (scene.alice.clone(), scene.carol.id);
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin)]);
    let service = scene.build().chat.conversations;
    assert!(matches!(service.members(carol, c.id).await, Err(DomainError::NotFound)));
    assert_eq!(service.members(alice.id, c.id).await.unwrap(), vec![member(&c, alice.id, Admin)]);
}

// ----------------------------------------------------------------------------- update, archive

fn rename(name: &str) -> Option<Option<String>> {
    Some(Some(name.to_owned()))
}

#[tokio::test]
async fn only_an_admin_updates_a_conversation() {
    for role in [Moderator, Plain] {
        let mut scene = Scene::new();
        scene.mocks.conversations.expect_update_conversation().never();
        let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
        let c = scene.conversation(ConversationType::Group, &[(&alice, Admin), (&bob, role)]);
        let result = scene.build().chat.conversations.update(bob.id, c.id, rename("new"), None, None, None).await;
        assert!(matches!(result, Err(DomainError::Forbidden(_))), "{role:?}: {result:?}");
    }
}

#[tokio::test]
async fn updating_an_archived_conversation_is_a_conflict() {
    let mut scene = Scene::new();
    scene.mocks.conversations.expect_update_conversation().never();
    let alice = scene.alice.clone();
    let mut c = crate::tests::conversation(ConversationType::Group, scene.workspace.id, alice.id);
    c.archived_at = Some(minutes_ago(5));
    scene.put(&c, &[(&alice, Admin)]);
    let result = scene.build().chat.conversations.update(alice.id, c.id, rename("new"), None, None, None).await;
    assert!(matches!(result, Err(DomainError::Conflict(_))), "{result:?}");
}

#[tokio::test]
async fn an_admin_renames_a_group_and_its_members_hear_of_it() {
    let mut scene = Scene::new();
    let alice = scene.alice.clone();
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin)]);
    let expected_patch = ConversationPatch {
        name: rename("Launch"),
        description: Some(Some("line one\nline two".to_owned())),
        ..ConversationPatch::default()
    };
    let (patch, id) = (expected_patch.clone(), c.id);
    let renamed = Conversation { name: Some("Launch".to_owned()), updated_at: now(), ..c.clone() };
    let returned = renamed.clone();
    scene
        .mocks
        .conversations
        .expect_update_conversation()
        .withf(move |i, p, at| *i == id && *p == patch && *at == now())
        .times(1)
        .returning(move |_, _, _| Ok(Some(returned.clone())));
    let h = scene.build();

    let updated = h
        .chat
        .conversations
        .update(alice.id, c.id, rename(" Launch\u{202E} "), Some(Some(" line one\nline two ".to_owned())), None, None)
        .await
        .unwrap();

    assert_eq!(updated, renamed);
    assert_eq!(
        h.events(),
        vec![DomainEvent::ConversationUpdated {
            conversation: renamed,
            updates: ConversationUpdate::Attributes(expected_patch)
        }]
    );
}

#[tokio::test]
async fn an_update_that_changes_nothing_is_not_stored_or_announced() {
    let mut scene = Scene::new();
    scene.mocks.conversations.expect_update_conversation().never();
    let alice = scene.alice.clone();
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin)]);
    let h = scene.build();
    assert_eq!(h.chat.conversations.update(alice.id, c.id, None, None, None, None).await.unwrap(), c);
    assert!(h.events().is_empty());
}

#[tokio::test]
async fn a_dm_has_no_name_and_a_channel_keeps_one() {
    let mut scene = Scene::new();
    scene.mocks.conversations.expect_update_conversation().never();
    let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
    let dm = scene.conversation(ConversationType::Dm, &[(&alice, Admin), (&bob, Admin)]);
    let channel = scene.conversation(ConversationType::Channel, &[(&alice, Admin)]);
    let service = scene.build().chat.conversations;
    assert_invalid(service.update(alice.id, dm.id, rename("us"), None, None, None).await, "name");
    assert_invalid(service.update(alice.id, channel.id, Some(None), None, None, None).await, "name");
}

#[tokio::test]
async fn the_cap_cannot_drop_below_the_current_member_count() {
    let mut scene = Scene::new();
    scene.mocks.conversations.expect_update_conversation().never();
    let (alice, bob, carol) = (scene.alice.clone(), scene.bob.clone(), scene.carol.clone());
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin), (&bob, Plain), (&carol, Plain)]);
    let result = scene.build().chat.conversations.update(alice.id, c.id, None, None, None, Some(2)).await;
    assert_invalid(result, "maxParticipants");
}

#[tokio::test]
async fn only_an_admin_archives_a_conversation() {
    for role in [Moderator, Plain] {
        let mut scene = Scene::new();
        scene.mocks.conversations.expect_archive_conversation().never();
        let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
        let c = scene.conversation(ConversationType::Channel, &[(&alice, Admin), (&bob, role)]);
        let result = scene.build().chat.conversations.archive(bob.id, c.id).await;
        assert!(matches!(result, Err(DomainError::Forbidden(_))), "{role:?}: {result:?}");
    }
}

#[tokio::test]
async fn archiving_tells_the_members_when() {
    let mut scene = Scene::new();
    let alice = scene.alice.clone();
    let c = scene.conversation(ConversationType::Channel, &[(&alice, Admin)]);
    let archived = Conversation { archived_at: Some(now()), ..c.clone() };
    let returned = archived.clone();
    let id = c.id;
    scene
        .mocks
        .conversations
        .expect_archive_conversation()
        .withf(move |i, at| *i == id && *at == now())
        .times(1)
        .returning(move |_, _| Ok(Some(returned.clone())));
    let h = scene.build();

    assert_eq!(h.chat.conversations.archive(alice.id, c.id).await.unwrap(), archived);

    assert_eq!(
        h.events(),
        vec![DomainEvent::ConversationUpdated { conversation: archived, updates: ConversationUpdate::Archived(now()) }]
    );
}

#[tokio::test]
async fn archiving_an_archived_conversation_changes_nothing() {
    let mut scene = Scene::new();
    scene.mocks.conversations.expect_archive_conversation().never();
    let alice = scene.alice.clone();
    let mut c = crate::tests::conversation(ConversationType::Group, scene.workspace.id, alice.id);
    c.archived_at = Some(minutes_ago(5));
    scene.put(&c, &[(&alice, Admin)]);
    let h = scene.build();
    assert_eq!(h.chat.conversations.archive(alice.id, c.id).await.unwrap().archived_at, Some(minutes_ago(5)));
    assert!(h.events().is_empty());
}

// ----------------------------------------------------------------------------- add members

/// Expects `user` to be added to `c` with `role`, under the conversation's cap.
fn expect_join(scene: &mut Scene, c: &Conversation, user: UserId, role: ConversationRole) {
    let (id, cap) = (c.id, c.max_participants);
    scene
        .mocks
        .conversations
        .expect_add_member()
        .withf(move |m, max| {
            m.conversation_id == id && m.user_id == user && m.role == role && m.joined_at == now() && *max == cap
        })
        .times(1)
        .returning(|m, _| Ok(m.clone()));
}

fn joined_events(c: &Conversation, user: UserId) -> Vec<DomainEvent> {
    vec![
        DomainEvent::MemberJoined { workspace_id: c.workspace_id, conversation_id: c.id, user_id: user },
        DomainEvent::ConversationCreated { conversation: c.clone(), member_ids: vec![user] },
    ]
}

fn refuse_add(scene: &mut Scene) {
    scene.mocks.conversations.expect_add_member().never();
}

#[tokio::test]
async fn a_moderator_adds_a_member_who_gets_the_conversation_while_the_others_hear_of_it() {
    let mut scene = Scene::new();
    let (alice, bob, carol) = (scene.alice.clone(), scene.bob.clone(), scene.carol.id);
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin), (&bob, Moderator)]);
    expect_join(&mut scene, &c, carol, Plain);
    let h = scene.build();

    let added = h.chat.conversations.add_member(bob.id, c.id, carol, None).await.unwrap();

    assert_eq!((added.user_id, added.role), (carol, Plain));
    assert_eq!(h.events(), joined_events(&c, carol));
}

#[tokio::test]
async fn a_moderator_may_add_only_as_a_plain_member() {
    for role in [Moderator, Admin] {
        let mut scene = Scene::new();
        refuse_add(&mut scene);
        let (alice, bob, carol) = (scene.alice.clone(), scene.bob.clone(), scene.carol.id);
        let c = scene.conversation(ConversationType::Group, &[(&alice, Admin), (&bob, Moderator)]);
        let result = scene.build().chat.conversations.add_member(bob.id, c.id, carol, Some(role)).await;
        assert!(matches!(result, Err(DomainError::Forbidden(_))), "{role:?}: {result:?}");
    }
}

#[tokio::test]
async fn an_admin_adds_with_any_role() {
    for role in [Admin, Moderator, Plain] {
        let mut scene = Scene::new();
        let (alice, carol) = (scene.alice.clone(), scene.carol.id);
        let c = scene.conversation(ConversationType::Group, &[(&alice, Admin)]);
        expect_join(&mut scene, &c, carol, role);
        let added = scene.build().chat.conversations.add_member(alice.id, c.id, carol, Some(role)).await.unwrap();
        assert_eq!(added.role, role);
    }
}

#[tokio::test]
async fn a_plain_member_cannot_add_others() {
    let mut scene = Scene::new();
    refuse_add(&mut scene);
    let (alice, bob, carol) = (scene.alice.clone(), scene.bob.clone(), scene.carol.id);
    let c = scene.conversation(ConversationType::Channel, &[(&alice, Admin), (&bob, Plain)]);
    let result = scene.build().chat.conversations.add_member(bob.id, c.id, carol, None).await;
    assert!(matches!(result, Err(DomainError::Forbidden(_))), "{result:?}");
}

#[tokio::test]
async fn a_workspace_member_joins_a_channel_by_adding_themself() {
    let mut scene = Scene::new();
    let (alice, carol) = (scene.alice.clone(), scene.carol.id);
    let c = scene.conversation(ConversationType::Channel, &[(&alice, Admin)]);
    expect_join(&mut scene, &c, carol, Plain);
    let h = scene.build();

    h.chat.conversations.add_member(carol, c.id, carol, None).await.unwrap();

    assert_eq!(h.events(), joined_events(&c, carol));
}

#[tokio::test]
async fn joining_a_channel_does_not_grant_a_role() {
    let mut scene = Scene::new();
    refuse_add(&mut scene);
    let (alice, carol) = (scene.alice.clone(), scene.carol.id);
    let c = scene.conversation(ConversationType::Channel, &[(&alice, Admin)]);
    let result = scene.build().chat.conversations.add_member(carol, c.id, carol, Some(Admin)).await;
    assert!(matches!(result, Err(DomainError::Forbidden(_))), "{result:?}");
}

#[tokio::test]
async fn nobody_joins_a_group_on_their_own() {
    let mut scene = Scene::new();
    refuse_add(&mut scene);
    let (alice, carol) = (scene.alice.clone(), scene.carol.id);
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin)]);
    let result = scene.build().chat.conversations.add_member(carol, c.id, carol, None).await;
    assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
}

#[tokio::test]
async fn adding_someone_outside_the_workspace_is_not_found() {
    let mut scene = Scene::new();
    refuse_add(&mut scene);
    let (alice, outsider) = (scene.alice.clone(), scene.outsider.id);
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin)]);
    let result = scene.build().chat.conversations.add_member(alice.id, c.id, outsider, None).await;
    assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
}

#[tokio::test]
async fn joining_a_conversation_twice_is_a_conflict() {
    let mut scene = Scene::new();
    scene.mocks.conversations.expect_add_member().never();
    let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
    let c = scene.conversation(ConversationType::Channel, &[(&alice, Admin), (&bob, Plain)]);
    let result = scene.build().chat.conversations.add_member(bob.id, c.id, bob.id, None).await;
    assert!(matches!(result, Err(DomainError::Conflict(_))), "{result:?}");
}

#[tokio::test]
async fn a_dm_takes_no_third_member() {
    let mut scene = Scene::new();
    refuse_add(&mut scene);
    let (alice, bob, carol) = (scene.alice.clone(), scene.bob.clone(), scene.carol.id);
    let c = scene.conversation(ConversationType::Dm, &[(&alice, Admin), (&bob, Admin)]);
    assert_invalid(scene.build().chat.conversations.add_member(alice.id, c.id, carol, None).await, "userId");
}

#[tokio::test]
async fn adding_to_a_full_conversation_is_a_validation_error() {
    let mut scene = Scene::new();
    scene.mocks.conversations.expect_add_member().times(1).returning(|_, _| Err(AddMemberError::Full));
    let (alice, carol) = (scene.alice.clone(), scene.carol.id);
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin)]);
    let h = scene.build();
    assert_invalid(h.chat.conversations.add_member(alice.id, c.id, carol, None).await, "userId");
    assert!(h.events().is_empty());
}

#[tokio::test]
async fn adding_an_existing_member_is_a_conflict() {
    let mut scene = Scene::new();
    scene.mocks.conversations.expect_add_member().times(1).returning(|_, _| Err(AddMemberError::Duplicate));
    let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin), (&bob, Plain)]);
    let h = scene.build();
    let result = h.chat.conversations.add_member(alice.id, c.id, bob.id, None).await;
    assert!(matches!(result, Err(DomainError::Conflict(_))), "{result:?}");
    assert!(h.events().is_empty());
}

#[tokio::test]
async fn adding_to_an_archived_conversation_is_a_conflict() {
    let mut scene = Scene::new();
    refuse_add(&mut scene);
    let (alice, carol) = (scene.alice.clone(), scene.carol.id);
    let mut c = crate::tests::conversation(ConversationType::Group, scene.workspace.id, alice.id);
    c.archived_at = Some(minutes_ago(1));
    scene.put(&c, &[(&alice, Admin)]);
    let result = scene.build().chat.conversations.add_member(alice.id, c.id, carol, None).await;
    assert!(matches!(result, Err(DomainError::Conflict(_))), "{result:?}");
}

// ----------------------------------------------------------------------------- remove members

fn expect_removal(scene: &mut Scene, c: &Conversation, user: UserId) {
    let id = c.id;
    scene
        .mocks
        .conversations
        .expect_remove_member()
        .withf(move |i, u| *i == id && *u == user)
        .times(1)
        .returning(|_, _| Ok(true));
}

fn refuse_remove(scene: &mut Scene) {
    scene.mocks.conversations.expect_remove_member().never();
}

fn left(c: &Conversation, user: UserId) -> DomainEvent {
    DomainEvent::MemberLeft { workspace_id: c.workspace_id, conversation_id: c.id, user_id: user }
}

#[tokio::test]
async fn a_member_leaves_by_removing_themself() {
    let mut scene = Scene::new();
    let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin), (&bob, Plain)]);
    expect_removal(&mut scene, &c, bob.id);
    let h = scene.build();

    h.chat.conversations.remove_member(bob.id, c.id, bob.id).await.unwrap();

    assert_eq!(h.events(), vec![left(&c, bob.id)]);
}

#[tokio::test]
async fn a_moderator_removes_a_plain_member_but_not_an_admin() {
    let mut scene = Scene::new();
    let (alice, bob, carol) = (scene.alice.clone(), scene.bob.clone(), scene.carol.clone());
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin), (&bob, Moderator), (&carol, Plain)]);
    expect_removal(&mut scene, &c, carol.id);
    let h = scene.build();

    let result = h.chat.conversations.remove_member(bob.id, c.id, alice.id).await;
    assert!(matches!(result, Err(DomainError::Forbidden(_))), "{result:?}");
    h.chat.conversations.remove_member(bob.id, c.id, carol.id).await.unwrap();

    assert_eq!(h.events(), vec![left(&c, carol.id)]);
}

#[tokio::test]
async fn a_plain_member_cannot_remove_another() {
    let mut scene = Scene::new();
    refuse_remove(&mut scene);
    let (alice, bob, carol) = (scene.alice.clone(), scene.bob.clone(), scene.carol.clone());
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin), (&bob, Plain), (&carol, Plain)]);
    let result = scene.build().chat.conversations.remove_member(bob.id, c.id, carol.id).await;
    assert!(matches!(result, Err(DomainError::Forbidden(_))), "{result:?}");
}

#[tokio::test]
async fn an_admin_removes_another_admin() {
    let mut scene = Scene::new();
    let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin), (&bob, Admin)]);
    expect_removal(&mut scene, &c, bob.id);
    scene.build().chat.conversations.remove_member(alice.id, c.id, bob.id).await.unwrap();
}

#[tokio::test]
async fn the_last_admin_cannot_leave_while_others_remain() {
    let mut scene = Scene::new();
    refuse_remove(&mut scene);
    let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin), (&bob, Moderator)]);
    let h = scene.build();
    let result = h.chat.conversations.remove_member(alice.id, c.id, alice.id).await;
    assert!(matches!(result, Err(DomainError::Conflict(_))), "{result:?}");
    assert!(h.events().is_empty());
}

#[tokio::test]
async fn the_last_member_may_leave_even_as_admin() {
    let mut scene = Scene::new();
    let alice = scene.alice.clone();
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin)]);
    expect_removal(&mut scene, &c, alice.id);
    scene.build().chat.conversations.remove_member(alice.id, c.id, alice.id).await.unwrap();
}

#[tokio::test]
async fn nobody_leaves_a_dm() {
    let mut scene = Scene::new();
    refuse_remove(&mut scene);
    let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
    let c = scene.conversation(ConversationType::Dm, &[(&alice, Admin), (&bob, Admin)]);
    assert_invalid(scene.build().chat.conversations.remove_member(alice.id, c.id, alice.id).await, "userId");
}

#[tokio::test]
async fn removing_a_non_member_is_not_found() {
    let mut scene = Scene::new();
    refuse_remove(&mut scene);
    let (alice, carol) = (scene.alice.clone(), scene.carol.id);
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin)]);
    let result = scene.build().chat.conversations.remove_member(alice.id, c.id, carol).await;
    assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
}

// ----------------------------------------------------------------------------- roles

fn expect_role_change(scene: &mut Scene, c: &Conversation, user: UserId, role: ConversationRole) {
    let template = member(c, user, role);
    let id = c.id;
    scene
        .mocks
        .conversations
        .expect_set_member_role()
        .withf(move |i, u, r| *i == id && *u == user && *r == role)
        .times(1)
        .returning(move |_, _, _| Ok(Some(template.clone())));
}

#[tokio::test]
async fn roles_in_a_dm_do_not_change() {
    let mut scene = Scene::new();
    scene.mocks.conversations.expect_set_member_role().never();
    let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
    let c = scene.conversation(ConversationType::Dm, &[(&alice, Admin), (&bob, Admin)]);
    let result = scene.build().chat.conversations.set_role(alice.id, c.id, bob.id, ConversationRole::Member).await;
    assert_invalid(result, "role");
}

#[tokio::test]
async fn only_an_admin_changes_roles() {
    let mut scene = Scene::new();
    scene.mocks.conversations.expect_set_member_role().never();
    let (alice, bob, carol) = (scene.alice.clone(), scene.bob.clone(), scene.carol.clone());
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin), (&bob, Moderator), (&carol, Plain)]);
    let result = scene.build().chat.conversations.set_role(bob.id, c.id, carol.id, Moderator).await;
    assert!(matches!(result, Err(DomainError::Forbidden(_))), "{result:?}");
}

#[tokio::test]
async fn an_admin_promotes_a_member_and_the_conversation_hears_of_it() {
    let mut scene = Scene::new();
    let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin), (&bob, Plain)]);
    expect_role_change(&mut scene, &c, bob.id, Moderator);
    let h = scene.build();

    let changed = h.chat.conversations.set_role(alice.id, c.id, bob.id, Moderator).await.unwrap();

    assert_eq!(changed.role, Moderator);
    assert_eq!(
        h.events(),
        vec![DomainEvent::ConversationUpdated {
            conversation: c,
            updates: ConversationUpdate::MemberRole { user_id: bob.id, role: Moderator },
        }]
    );
}

#[tokio::test]
async fn the_last_admin_cannot_demote_themself() {
    let mut scene = Scene::new();
    scene.mocks.conversations.expect_set_member_role().never();
    let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin), (&bob, Plain)]);
    let result = scene.build().chat.conversations.set_role(alice.id, c.id, alice.id, Plain).await;
    assert!(matches!(result, Err(DomainError::Conflict(_))), "{result:?}");
}

#[tokio::test]
async fn one_of_two_admins_may_step_down() {
    let mut scene = Scene::new();
    let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin), (&bob, Admin)]);
    expect_role_change(&mut scene, &c, alice.id, Moderator);
    scene.build().chat.conversations.set_role(alice.id, c.id, alice.id, Moderator).await.unwrap();
}

#[tokio::test]
async fn the_role_of_a_non_member_is_not_found() {
    let mut scene = Scene::new();
    scene.mocks.conversations.expect_set_member_role().never();
    let (alice, carol) = (scene.alice.clone(), scene.carol.id);
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin)]);
    let result = scene.build().chat.conversations.set_role(alice.id, c.id, carol, Moderator).await;
    assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
}

#[tokio::test]
async fn roles_of_an_archived_conversation_are_frozen() {
    let mut scene = Scene::new();
    scene.mocks.conversations.expect_set_member_role().never();
    let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
    let mut c = crate::tests::conversation(ConversationType::Group, scene.workspace.id, alice.id);
    c.archived_at = Some(minutes_ago(1));
    scene.put(&c, &[(&alice, Admin), (&bob, Plain)]);
    let result = scene.build().chat.conversations.set_role(alice.id, c.id, bob.id, Moderator).await;
    assert!(matches!(result, Err(DomainError::Conflict(_))), "{result:?}");
}

// ----------------------------------------------------------------------------- read state

/// A group of alice (watermark `read`) and bob with `last_seq` messages.
fn read_scene(last_seq: i64, read: i64) -> (Scene, Conversation, User) {
    let mut scene = Scene::new();
    let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
    let mut c = crate::tests::conversation(ConversationType::Group, scene.workspace.id, alice.id);
    c.last_seq = last_seq;
    scene.mocks.with_conversation(&c);
    scene.mocks.with_member(Member {
        last_read_seq: read,
        last_read_at: Some(minutes_ago(20)),
        ..member(&c, alice.id, Admin)
    });
    scene.mocks.with_member(member(&c, bob.id, Plain));
    (scene, c, alice)
}

fn expect_mark(scene: &mut Scene, c: &Conversation, user: UserId, seq: i64) {
    let after = Member { last_read_seq: seq, last_read_at: Some(now()), ..member(c, user, Admin) };
    let id = c.id;
    scene
        .mocks
        .conversations
        .expect_mark_read()
        .withf(move |i, u, s, at| *i == id && *u == user && *s == seq && *at == now())
        .times(1)
        .returning(move |_, _, _, _| Ok(Some(after.clone())));
}

fn read_moved(c: &Conversation, user: UserId, message_id: Option<crate::ids::MessageId>, seq: i64) -> DomainEvent {
    DomainEvent::ReadMoved {
        workspace_id: c.workspace_id,
        conversation_id: c.id,
        user_id: user,
        message_id,
        seq,
        read_at: now(),
    }
}

#[tokio::test]
async fn marking_a_later_seq_moves_the_watermark_and_tells_the_members() {
    let (mut scene, c, alice) = read_scene(10, 2);
    expect_mark(&mut scene, &c, alice.id, 5);
    let h = scene.build();

    assert_eq!(h.chat.conversations.mark_read(alice.id, c.id, ReadTarget::Seq(5)).await.unwrap(), 5);

    assert_eq!(h.events(), vec![read_moved(&c, alice.id, None, 5)]);
}

#[tokio::test]
async fn marking_an_older_seq_keeps_the_watermark_and_tells_nobody() {
    let (mut scene, c, alice) = read_scene(10, 5);
    scene.mocks.conversations.expect_mark_read().never();
    let h = scene.build();

    assert_eq!(h.chat.conversations.mark_read(alice.id, c.id, ReadTarget::Seq(3)).await.unwrap(), 5);
    assert_eq!(h.chat.conversations.mark_read(alice.id, c.id, ReadTarget::Seq(5)).await.unwrap(), 5);

    assert!(h.events().is_empty());
}

#[tokio::test]
async fn marking_past_the_last_message_stops_at_it() {
    let (mut scene, c, alice) = read_scene(10, 2);
    expect_mark(&mut scene, &c, alice.id, 10);
    assert_eq!(scene.build().chat.conversations.mark_read(alice.id, c.id, ReadTarget::Seq(99)).await.unwrap(), 10);
}

#[tokio::test]
async fn marking_everything_read_goes_to_the_last_message() {
    let (mut scene, c, alice) = read_scene(7, 2);
    expect_mark(&mut scene, &c, alice.id, 7);
    assert_eq!(scene.build().chat.conversations.mark_read(alice.id, c.id, ReadTarget::Latest).await.unwrap(), 7);
}

#[tokio::test]
async fn marking_a_message_uses_its_seq_and_names_it() {
    let (mut scene, c, alice) = read_scene(10, 2);
    let message = stored_message(&c, scene.bob.id, 7, "hi");
    scene.mocks.with_message(&message);
    expect_mark(&mut scene, &c, alice.id, 7);
    let h = scene.build();

    assert_eq!(h.chat.conversations.mark_read(alice.id, c.id, ReadTarget::Message(message.id)).await.unwrap(), 7);

    assert_eq!(h.events(), vec![read_moved(&c, alice.id, Some(message.id), 7)]);
}

#[tokio::test]
async fn marking_a_message_of_another_conversation_is_not_found() {
    let (mut scene, c, alice) = read_scene(10, 2);
    let other = crate::tests::conversation(ConversationType::Group, scene.workspace.id, alice.id);
    let foreign = stored_message(&other, alice.id, 3, "elsewhere");
    scene.mocks.with_message(&foreign);
    scene.mocks.conversations.expect_mark_read().never();
    let result = scene.build().chat.conversations.mark_read(alice.id, c.id, ReadTarget::Message(foreign.id)).await;
    assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
}

#[tokio::test]
async fn a_negative_seq_is_rejected() {
    let (mut scene, c, alice) = read_scene(10, 2);
    scene.mocks.conversations.expect_mark_read().never();
    assert_invalid(scene.build().chat.conversations.mark_read(alice.id, c.id, ReadTarget::Seq(-1)).await, "seq");
}

#[tokio::test]
async fn a_reader_who_has_not_joined_a_channel_has_no_watermark_to_move() {
    let mut scene = Scene::new();
    scene.mocks.conversations.expect_mark_read().never();
    let (alice, carol) = (scene.alice.clone(), scene.carol.id);
    let c = scene.conversation(ConversationType::Channel, &[(&alice, Admin)]);
    let result = scene.build().chat.conversations.mark_read(carol, c.id, ReadTarget::Latest).await;
    assert!(matches!(result, Err(DomainError::Forbidden(_))), "{result:?}");
}

#[tokio::test]
async fn unread_counts_add_up_to_a_total() {
    let mut scene = Scene::new();
    let (alice, ws) = (scene.alice.id, scene.workspace.id);
    let counts =
        vec![(ConversationId::generate(), 3), (ConversationId::generate(), 0), (ConversationId::generate(), 4)];
    let returned = counts.clone();
    scene
        .mocks
        .conversations
        .expect_unread_counts()
        .withf(move |w, u| *w == ws && *u == alice)
        .returning(move |_, _| Ok(returned.clone()));

    let unread = scene.build().chat.conversations.unread_counts(alice, ws).await.unwrap();

    assert_eq!(unread, UnreadCounts { total: 7, conversations: counts });
}

#[tokio::test]
async fn an_outsider_has_no_unread_counts_in_the_workspace() {
    let mut scene = Scene::new();
    scene.mocks.conversations.expect_unread_counts().never();
    let (outsider, ws) = (scene.outsider.id, scene.workspace.id);
    let result = scene.build().chat.conversations.unread_counts(outsider, ws).await;
    assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
}

// ----------------------------------------------------------------------------- audit log

/// The one entry `h` recorded, checked for `action` by `actor` in `c`'s workspace.
fn single_entry(
    h: &crate::tests::Harness,
    c: &Conversation,
    actor: UserId,
    action: crate::audit::AuditAction,
) -> crate::audit::AuditEntry {
    let mut entries = h.audit();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = entries.remove(0);
    assert_eq!((entry.action, entry.workspace_id, entry.actor), (action, Some(c.workspace_id), Some(actor)));
    entry
}

#[tokio::test]
async fn adding_a_conversation_member_records_exactly_one_audit_entry() {
    let mut scene = Scene::new();
    let (alice, carol) = (scene.alice.clone(), scene.carol.id);
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin)]);
    expect_join(&mut scene, &c, carol, Moderator);
    let h = scene.build();

    h.chat.conversations.add_member(alice.id, c.id, carol, Some(Moderator)).await.unwrap();

    let entry = single_entry(&h, &c, alice.id, crate::audit::AuditAction::ConversationMemberAdded);
    assert_eq!(entry.target, Some(format!("conversation:{} user:{carol} role:moderator", c.id)));
}

#[tokio::test]
async fn removing_a_conversation_member_records_exactly_one_audit_entry() {
    let mut scene = Scene::new();
    let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin), (&bob, Plain)]);
    expect_removal(&mut scene, &c, bob.id);
    let h = scene.build();

    h.chat.conversations.remove_member(alice.id, c.id, bob.id).await.unwrap();

    let entry = single_entry(&h, &c, alice.id, crate::audit::AuditAction::ConversationMemberRemoved);
    assert_eq!(entry.target, Some(format!("conversation:{} user:{}", c.id, bob.id)));
}

#[tokio::test]
async fn changing_a_conversation_role_records_exactly_one_audit_entry() {
    let mut scene = Scene::new();
    let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin), (&bob, Plain)]);
    expect_role_change(&mut scene, &c, bob.id, Moderator);
    let h = scene.build();

    h.chat.conversations.set_role(alice.id, c.id, bob.id, Moderator).await.unwrap();

    let entry = single_entry(&h, &c, alice.id, crate::audit::AuditAction::ConversationRoleChanged);
    assert_eq!(entry.target, Some(format!("conversation:{} user:{} role:moderator", c.id, bob.id)));
}

#[tokio::test]
async fn archiving_records_exactly_one_audit_entry_and_a_refusal_none() {
    let mut scene = Scene::new();
    let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
    let c = scene.conversation(ConversationType::Channel, &[(&alice, Admin), (&bob, Plain)]);
    let archived = Conversation { archived_at: Some(now()), ..c.clone() };
    scene.mocks.conversations.expect_archive_conversation().times(1).returning(move |_, _| Ok(Some(archived.clone())));
    let h = scene.build();

    assert!(h.chat.conversations.archive(bob.id, c.id).await.is_err());
    assert!(h.audit().is_empty(), "a refused archive is not an audited action");
    h.chat.conversations.archive(alice.id, c.id).await.unwrap();

    let entry = single_entry(&h, &c, alice.id, crate::audit::AuditAction::ConversationArchived);
    assert_eq!(entry.target, Some(format!("conversation:{}", c.id)));
}
