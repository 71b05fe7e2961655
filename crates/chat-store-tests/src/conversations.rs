//! [`ConversationRepository`](chat_domain::conversation::ConversationRepository):
//! conversations, get-or-create, members and caps, watermarks, unread counts, listings.

use std::collections::HashMap;

use chat_domain::conversation::{
    AddMemberError, ConversationPatch, ConversationRole, ConversationType, Created, Member, Standing,
};
use chat_domain::ids::{ConversationId, UserId};
use chat_domain::message::Reaction;
use chat_domain::workspace::WorkspaceRole;
use futures_util::future::join_all;

use crate::Stores;
use crate::fixtures::{at, create, group, member, new_conversation, send, to_map, user, workspace};

/// A conversation is stored as given, with its initial members in join order (the creator
/// first, even when all joined at the same instant).
pub async fn a_conversation_is_created_with_its_members(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let cat = user(&stores, "cat").await;
    let acme = workspace(&stores, &ada, "acme", &[&bob, &cat]).await;
    let mut new = new_conversation(&acme, ConversationType::Group, &ada, &[&cat, &bob], at(5));
    new.conversation.description = Some("plans".to_owned());
    new.conversation.icon = Some("🚀".to_owned());
    new.conversation.max_participants = 7;

    let created = stores.conversations.create_conversation(&new).await.expect("create");
    assert_eq!(created, Created::New(new.conversation.clone()));
    let found = stores.conversations.find_conversation(new.conversation.id).await.expect("find");
    assert_eq!(found.as_ref(), Some(&new.conversation));
    assert_eq!(stores.conversations.list_members(new.conversation.id).await.expect("members"), new.members);
    let bobs = stores.conversations.find_member(new.conversation.id, bob.id).await.expect("member");
    assert_eq!(bobs.as_ref(), Some(&new.members[2]));
    assert_eq!(stores.conversations.find_member(new.conversation.id, UserId::generate()).await.expect("member"), None);
    assert_eq!(stores.conversations.find_conversation(ConversationId::generate()).await.expect("find"), None);

    // Without a unique key, conversations never collide.
    let other = new_conversation(&acme, ConversationType::Group, &ada, &[&cat, &bob], at(5));
    assert!(matches!(stores.conversations.create_conversation(&other).await.expect("create"), Created::New(_)));
}

/// A standing reads the conversation, the user's workspace role and their membership in one
/// go: each part is the user's own and this conversation's, and is absent when it should be.
pub async fn a_standing_holds_the_conversation_the_workspace_role_and_the_membership(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let cat = user(&stores, "cat").await;
    let eve = user(&stores, "eve").await;
    let acme = workspace(&stores, &ada, "acme", &[&bob, &cat]).await;
    workspace(&stores, &eve, "elsewhere", &[]).await;
    let plans = group(&stores, &acme, &ada, &[&bob]).await;
    let other = group(&stores, &acme, &cat, &[]).await;
    let standing = |c, u| {
        let conversations = stores.conversations.clone();
        async move { conversations.find_standing(c, u).await.expect("standing") }
    };
    let members = stores.conversations.list_members(plans.id).await.expect("members");

    let adas = standing(plans.id, ada.id).await.expect("found");
    assert_eq!(
        adas,
        Standing {
            conversation: plans.clone(),
            workspace_role: Some(WorkspaceRole::Owner),
            member: Some(members[0].clone())
        }
    );
    let bobs = standing(plans.id, bob.id).await.expect("found");
    assert_eq!((bobs.workspace_role, bobs.member.as_ref()), (Some(WorkspaceRole::Member), Some(&members[1])));
    // In the workspace, not in the conversation; a member of another conversation only.
    let cats = standing(plans.id, cat.id).await.expect("found");
    assert_eq!((cats.conversation.id, cats.workspace_role, cats.member), (plans.id, Some(WorkspaceRole::Member), None));
    let bob_elsewhere = standing(other.id, bob.id).await.expect("found");
    assert_eq!((bob_elsewhere.conversation.id, bob_elsewhere.member), (other.id, None));
    // Owner of another workspace: neither role nor membership here.
    let eves = standing(plans.id, eve.id).await.expect("found");
    assert_eq!((eves.workspace_role, eves.member), (None, None));
    assert_eq!(standing(ConversationId::generate(), ada.id).await, None);
}

/// Twenty concurrent creators of one DM key all get the same conversation; exactly one of
/// them made it, and only its members were stored.
pub async fn concurrent_creators_of_one_dm_agree_on_one_conversation(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let acme = workspace(&stores, &ada, "acme", &[&bob]).await;
    let key = format!("dm:{}:{}:0", ada.id.min(bob.id), ada.id.max(bob.id));
    let creators = (0..20).map(|_| {
        let mut new = new_conversation(&acme, ConversationType::Dm, &ada, &[&bob], at(5));
        new.unique_key = Some(key.clone());
        new.conversation.max_participants = 2;
        let conversations = stores.conversations.clone();
        tokio::spawn(async move { conversations.create_conversation(&new).await })
    });
    let results: Vec<Created<_>> =
        join_all(creators).await.into_iter().map(|r| r.expect("task").expect("create")).collect();
    assert_eq!(results.iter().filter(|c| matches!(c, Created::New(_))).count(), 1);
    let ids: Vec<ConversationId> = results.into_iter().map(|c| c.into_inner().id).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "got {ids:?}");
    assert_eq!(stores.conversations.list_members(ids[0]).await.expect("members").len(), 2);
}

/// A unique key taken in a workspace yields the existing conversation, untouched; in another
/// workspace the same key is free.
pub async fn a_unique_key_is_unique_within_its_workspace_only(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let here = workspace(&stores, &ada, "here", &[&bob]).await;
    let there = workspace(&stores, &ada, "there", &[]).await;
    let document = |workspace, creator, others: &[&chat_domain::user::User], name: &str| {
        let mut new = new_conversation(workspace, ConversationType::Document, creator, others, at(5));
        new.unique_key = Some("doc:spec-42".to_owned());
        new.conversation.document_id = Some("spec-42".to_owned());
        new.conversation.name = Some(name.to_owned());
        new
    };
    let original = document(&here, &ada, &[], "first");
    assert_eq!(
        stores.conversations.create_conversation(&original).await.expect("create"),
        Created::New(original.conversation.clone())
    );
    let again = document(&here, &bob, &[&ada], "second");
    assert_eq!(
        stores.conversations.create_conversation(&again).await.expect("create"),
        Created::Existing(original.conversation.clone())
    );
    assert_eq!(stores.conversations.find_conversation(again.conversation.id).await.expect("find"), None);
    assert_eq!(stores.conversations.list_members(original.conversation.id).await.expect("members"), original.members);

    let elsewhere = document(&there, &ada, &[], "third");
    assert_eq!(
        stores.conversations.create_conversation(&elsewhere).await.expect("create"),
        Created::New(elsewhere.conversation.clone())
    );
}

/// A patch changes what it names: `None` leaves a field alone, `Some(None)` clears it; the
/// update time is the given one. An unknown conversation is `None`.
pub async fn a_conversation_patch_changes_only_what_it_names(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let acme = workspace(&stores, &ada, "acme", &[]).await;
    let mut new = new_conversation(&acme, ConversationType::Channel, &ada, &[], at(0));
    new.conversation.description = Some("all things".to_owned());
    new.conversation.icon = Some("📣".to_owned());
    let original = create(&stores, &new).await;

    let patch = ConversationPatch {
        name: Some(Some("random".to_owned())),
        description: Some(None),
        icon: None,
        max_participants: Some(50),
    };
    let updated = stores.conversations.update_conversation(original.id, &patch, at(10)).await.expect("update");
    let mut expected = original.clone();
    expected.name = Some("random".to_owned());
    expected.description = None;
    expected.max_participants = 50;
    expected.updated_at = at(10);
    assert_eq!(updated.as_ref(), Some(&expected));
    assert_eq!(stores.conversations.find_conversation(original.id).await.expect("find"), Some(expected.clone()));

    let clear_icon = ConversationPatch { icon: Some(None), ..ConversationPatch::default() };
    let updated = stores.conversations.update_conversation(original.id, &clear_icon, at(20)).await.expect("update");
    expected.icon = None;
    expected.updated_at = at(20);
    assert_eq!(updated, Some(expected));

    let unknown = stores.conversations.update_conversation(ConversationId::generate(), &patch, at(30)).await;
    assert_eq!(unknown.expect("update unknown"), None);
}

/// Archiving sets `archived_at` once: archiving again keeps the first time.
pub async fn archiving_keeps_the_first_archived_at(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let acme = workspace(&stores, &ada, "acme", &[]).await;
    let original = group(&stores, &acme, &ada, &[]).await;

    let archived = stores.conversations.archive_conversation(original.id, at(10)).await.expect("archive");
    let mut expected = original.clone();
    expected.archived_at = Some(at(10));
    assert_eq!(archived.as_ref(), Some(&expected));
    let again = stores.conversations.archive_conversation(original.id, at(20)).await.expect("archive again");
    assert_eq!(again.as_ref(), Some(&expected));
    assert_eq!(stores.conversations.find_conversation(original.id).await.expect("find"), Some(expected));
    let unknown = stores.conversations.archive_conversation(ConversationId::generate(), at(30)).await;
    assert_eq!(unknown.expect("archive unknown"), None);
}

/// An existing member is `Duplicate`; a member past the cap is `Full`; the others are stored
/// as given.
pub async fn adding_a_member_refuses_duplicates_and_respects_the_cap(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let cat = user(&stores, "cat").await;
    let dan = user(&stores, "dan").await;
    let acme = workspace(&stores, &ada, "acme", &[&bob, &cat, &dan]).await;
    let team = group(&stores, &acme, &ada, &[&bob]).await;

    let again = stores.conversations.add_member(&member(team.id, bob.id, ConversationRole::Member, at(10)), 3).await;
    assert!(matches!(again, Err(AddMemberError::Duplicate)), "got {again:?}");
    let mut cats = member(team.id, cat.id, ConversationRole::Moderator, at(20));
    cats.is_muted = true;
    let added = stores.conversations.add_member(&cats, 3).await.expect("add");
    assert_eq!(added, cats);
    let full = stores.conversations.add_member(&member(team.id, dan.id, ConversationRole::Member, at(30)), 3).await;
    assert!(matches!(full, Err(AddMemberError::Full)), "got {full:?}");

    let members: Vec<UserId> =
        stores.conversations.list_members(team.id).await.expect("members").into_iter().map(|m| m.user_id).collect();
    assert_eq!(members, [ada.id, bob.id, cat.id]);
}

/// Ten concurrent joins of a conversation with room for four more: four succeed, six are
/// `Full`, and the cap holds — in each of three conversations (the later ones on a warm
/// connection pool, where the joins truly overlap).
pub async fn concurrent_joins_never_exceed_the_cap(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let mut joiners = Vec::new();
    for i in 0..10 {
        joiners.push(user(&stores, &format!("joiner{i}")).await);
    }
    let acme = workspace(&stores, &ada, "acme", &joiners.iter().collect::<Vec<_>>()).await;
    for round in 0..3 {
        let team = group(&stores, &acme, &ada, &[]).await;
        let joins = joiners.iter().map(|u| {
            let conversations = stores.conversations.clone();
            let m = member(team.id, u.id, ConversationRole::Member, at(10));
            tokio::spawn(async move { conversations.add_member(&m, 5).await })
        });
        let results: Vec<_> = join_all(joins).await.into_iter().map(|r| r.expect("task")).collect();
        let added = results.iter().filter(|r| r.is_ok()).count();
        let full = results.iter().filter(|r| matches!(r, Err(AddMemberError::Full))).count();
        assert_eq!((added, full), (4, 6), "round {round}: {results:?}");
        assert_eq!(stores.conversations.list_members(team.id).await.expect("members").len(), 5);
    }
}

/// A removed member is gone (a second removal says so); a role change keeps everything else;
/// non-members have no role to change.
pub async fn removed_members_are_gone_and_roles_change(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let cat = user(&stores, "cat").await;
    let acme = workspace(&stores, &ada, "acme", &[&bob, &cat]).await;
    let team = group(&stores, &acme, &ada, &[&bob, &cat]).await;

    assert!(stores.conversations.remove_member(team.id, bob.id).await.expect("remove"));
    assert!(!stores.conversations.remove_member(team.id, bob.id).await.expect("remove again"));
    assert_eq!(stores.conversations.find_member(team.id, bob.id).await.expect("member"), None);

    let before = stores.conversations.find_member(team.id, cat.id).await.expect("member").expect("a member");
    let changed =
        stores.conversations.set_member_role(team.id, cat.id, ConversationRole::Moderator).await.expect("role");
    let expected = Member { role: ConversationRole::Moderator, ..before };
    assert_eq!(changed.as_ref(), Some(&expected));
    assert_eq!(stores.conversations.find_member(team.id, cat.id).await.expect("member"), Some(expected));
    let nobody = stores.conversations.set_member_role(team.id, bob.id, ConversationRole::Admin).await.expect("role");
    assert_eq!(nobody, None);
}

/// The watermark moves forward only: a lower or equal seq leaves it (and its time) as it was.
pub async fn the_read_watermark_only_moves_forward(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let acme = workspace(&stores, &ada, "acme", &[&bob]).await;
    let team = group(&stores, &acme, &ada, &[&bob]).await;
    for i in 1..=5 {
        send(&stores, &team, &ada, at(i)).await;
    }

    let read = stores.conversations.mark_read(team.id, bob.id, 3, at(100)).await.expect("mark").expect("a member");
    assert_eq!((read.last_read_seq, read.last_read_at), (3, Some(at(100))));
    for (seq, when) in [(1, at(200)), (3, at(300))] {
        let unchanged =
            stores.conversations.mark_read(team.id, bob.id, seq, when).await.expect("mark").expect("a member");
        assert_eq!(unchanged, read);
    }
    let further = stores.conversations.mark_read(team.id, bob.id, 5, at(400)).await.expect("mark").expect("a member");
    assert_eq!((further.last_read_seq, further.last_read_at), (5, Some(at(400))));
    assert_eq!(stores.conversations.mark_read(team.id, UserId::generate(), 5, at(500)).await.expect("mark"), None);
}

/// Unread counts: messages from others, not deleted, above the watermark; every conversation
/// of the workspace the user is in (zeros included), and none other.
pub async fn unread_counts_cover_the_users_conversations_of_one_workspace(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let cat = user(&stores, "cat").await;
    let here = workspace(&stores, &ada, "here", &[&bob, &cat]).await;
    let there = workspace(&stores, &ada, "there", &[&bob]).await;

    // bob leaves `busy` after posting in it and joins again (from seq 0), so one of the
    // messages above his watermark is his own.
    let busy = group(&stores, &here, &ada, &[&bob, &cat]).await;
    let quiet = group(&stores, &here, &ada, &[&bob]).await;
    let not_his = group(&stores, &here, &ada, &[&cat]).await;
    let elsewhere = group(&stores, &there, &ada, &[&bob]).await;
    send(&stores, &busy, &ada, at(1)).await;
    let deleted = send(&stores, &busy, &ada, at(2)).await;
    send(&stores, &busy, &ada, at(3)).await;
    send(&stores, &busy, &bob, at(4)).await;
    send(&stores, &busy, &cat, at(5)).await;
    stores.messages.delete_message(deleted.id, at(6)).await.expect("delete");
    assert!(stores.conversations.remove_member(busy.id, bob.id).await.expect("leave"));
    stores
        .conversations
        .add_member(&member(busy.id, bob.id, ConversationRole::Member, at(7)), 100)
        .await
        .expect("join");
    stores.conversations.mark_read(busy.id, bob.id, 1, at(8)).await.expect("mark");
    send(&stores, &not_his, &ada, at(9)).await;
    send(&stores, &elsewhere, &ada, at(10)).await;

    let counts = to_map(stores.conversations.unread_counts(here.id, bob.id).await.expect("counts"));
    assert_eq!(counts, HashMap::from([(busy.id, 2), (quiet.id, 0)]));
    let counts = to_map(stores.conversations.unread_counts(there.id, bob.id).await.expect("counts"));
    assert_eq!(counts, HashMap::from([(elsewhere.id, 1)]));
    let counts = to_map(stores.conversations.unread_counts(here.id, ada.id).await.expect("counts"));
    assert_eq!(counts, HashMap::from([(busy.id, 2), (quiet.id, 0), (not_his.id, 0)]));
}

/// A user's listing of a workspace: their conversations there only, each with their
/// membership, its unread count and its last message (the highest seq, with its reactions),
/// most recently active first (last message, else the conversation's update time).
pub async fn conversation_listings_carry_unread_counts_and_last_messages_most_recent_first(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let here = workspace(&stores, &ada, "here", &[&bob]).await;
    let there = workspace(&stores, &ada, "there", &[&bob]).await;

    let older = group(&stores, &here, &ada, &[&bob]).await;
    let newer = group(&stores, &here, &ada, &[&bob]).await;
    let empty = create(&stores, &new_conversation(&here, ConversationType::Group, &ada, &[&bob], at(40))).await;
    let not_his = group(&stores, &here, &ada, &[]).await;
    let elsewhere = group(&stores, &there, &ada, &[&bob]).await;
    send(&stores, &newer, &ada, at(10)).await;
    send(&stores, &older, &ada, at(20)).await;
    send(&stores, &older, &bob, at(25)).await;
    send(&stores, &older, &ada, at(30)).await;
    send(&stores, &newer, &ada, at(45)).await;
    let last = send(&stores, &newer, &ada, at(50)).await;
    send(&stores, &not_his, &ada, at(60)).await;
    send(&stores, &elsewhere, &ada, at(70)).await;
    stores.messages.toggle_reaction(last.id, bob.id, "👀", at(55)).await.expect("react");

    let listed = stores.conversations.list_conversations_of(here.id, bob.id).await.expect("list");
    let order: Vec<ConversationId> = listed.iter().map(|l| l.conversation.id).collect();
    assert_eq!(order, [newer.id, empty.id, older.id]);

    let [newest, quiet, oldest] = listed.as_slice() else { panic!("three listings") };
    assert_eq!(newest.conversation.last_seq, 3);
    assert_eq!(newest.unread_count, 3);
    let last_listed = newest.last_message.as_ref().expect("a last message");
    assert_eq!((last_listed.id, last_listed.seq, &last_listed.content), (last.id, 3, &last.content));
    assert_eq!(last_listed.reactions, [Reaction { emoji: "👀".to_owned(), user_ids: vec![bob.id] }]);
    assert_eq!(
        Some(&newest.member),
        stores.conversations.find_member(newer.id, bob.id).await.expect("member").as_ref()
    );

    assert_eq!(quiet.conversation, empty);
    assert_eq!((quiet.unread_count, quiet.last_message.as_ref()), (0, None));

    assert_eq!(oldest.member.last_read_seq, 2, "bob's own message moved his watermark");
    assert_eq!(oldest.unread_count, 1);
    assert_eq!(oldest.last_message.as_ref().map(|m| (m.seq, m.sender_id)), Some((3, ada.id)));
}

/// Conversation heads: the user's conversations of one workspace with their current `last_seq`,
/// and none other.
pub async fn conversation_heads_name_the_users_conversations_with_their_last_seq(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let bob = user(&stores, "bob").await;
    let here = workspace(&stores, &ada, "here", &[&bob]).await;
    let there = workspace(&stores, &ada, "there", &[&bob]).await;
    let busy = group(&stores, &here, &ada, &[&bob]).await;
    let empty = group(&stores, &here, &ada, &[&bob]).await;
    let not_his = group(&stores, &here, &ada, &[]).await;
    let elsewhere = group(&stores, &there, &ada, &[&bob]).await;
    for secs in 1..=3 {
        send(&stores, &busy, &ada, at(secs)).await;
    }
    send(&stores, &not_his, &ada, at(4)).await;
    send(&stores, &elsewhere, &ada, at(5)).await;

    let heads = to_map(stores.conversations.conversation_heads(here.id, bob.id).await.expect("heads"));
    assert_eq!(heads, HashMap::from([(busy.id, 3), (empty.id, 0)]));
    let heads = to_map(stores.conversations.conversation_heads(there.id, bob.id).await.expect("heads"));
    assert_eq!(heads, HashMap::from([(elsewhere.id, 1)]));
}
