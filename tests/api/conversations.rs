use chat_protocol::{Conversation, Member, Page, UnreadCountResponse};
use serde_json::json;

use crate::helpers::TestApp;
use crate::on_both_stores;

on_both_stores!(
    a_dm_is_get_or_create_per_pair_and_encryption_flag,
    concurrent_dm_creations_agree_on_one_conversation,
    a_dm_names_exactly_one_other_workspace_member,
    a_document_chat_is_unique_per_document_and_open_to_every_member,
    channels_are_readable_and_joinable_by_workspace_members,
    groups_are_invisible_to_non_members,
    conversation_roles_gate_updates_archive_and_membership,
    an_archived_conversation_is_read_only,
    read_watermarks_move_forward_and_drive_unread_counts,
    the_conversation_list_carries_unread_counts_and_last_messages,
);

async fn a_dm_is_get_or_create_per_pair_and_encryption_flag(app: TestApp) {
    let cast = app.cast().await;
    let body = json!({"type": "dm", "workspaceId": cast.workspace, "memberIds": [cast.bob.id]});
    let first = app.create_conversation(&cast.alice, body.clone()).await;
    first.assert_status(201);
    let dm: Conversation = first.json();
    assert_eq!(dm.kind, "DM");
    let again = app.create_conversation(&cast.alice, body).await;
    again.assert_status(200);
    assert_eq!(again.json::<Conversation>().id, dm.id);
    // From the other side, naming both users, it is the same DM.
    let reverse = app
        .create_conversation(
            &cast.bob,
            json!({"type": "DIRECT", "workspaceId": cast.workspace, "memberIds": [cast.alice.id, cast.bob.id]}),
        )
        .await;
    reverse.assert_status(200);
    assert_eq!(reverse.json::<Conversation>().id, dm.id);
    let e2e = app
        .create_conversation(
            &cast.alice,
            json!({"type": "DM", "workspaceId": cast.workspace, "memberIds": [cast.bob.id], "isEncrypted": true}),
        )
        .await;
    e2e.assert_status(201);
    let e2e: Conversation = e2e.json();
    assert!(e2e.is_encrypted);
    assert_ne!(e2e.id, dm.id);
}

async fn concurrent_dm_creations_agree_on_one_conversation(app: TestApp) {
    let cast = app.cast().await;
    let body = json!({"type": "DM", "workspaceId": cast.workspace, "memberIds": [cast.bob.id]});
    let replies = futures_util::future::join_all((0..20).map(|i| {
        let (user, body) = if i % 2 == 0 {
            (&cast.alice, body.clone())
        } else {
            (&cast.bob, json!({"type": "DM", "workspaceId": cast.workspace, "memberIds": [cast.alice.id]}))
        };
        app.create_conversation(user, body)
    }))
    .await;
    let created = replies.iter().filter(|r| r.status.as_u16() == 201).count();
    assert_eq!(created, 1, "exactly one creation");
    let ids: std::collections::HashSet<_> = replies.iter().map(|r| r.json::<Conversation>().id).collect();
    assert_eq!(ids.len(), 1);
}

async fn a_dm_names_exactly_one_other_workspace_member(app: TestApp) {
    let cast = app.cast().await;
    let carol = app.register("carol").await;
    app.add_to_workspace(&cast.alice, cast.workspace, &carol, "member").await;
    for ids in [json!([]), json!([cast.alice.id]), json!([cast.bob.id, carol.id]), json!([cast.mallory.id])] {
        app.create_conversation(&cast.alice, json!({"type": "DM", "workspaceId": cast.workspace, "memberIds": ids}))
            .await
            .assert_error(422, "validation_failed");
    }
    app.create_conversation(&cast.alice, json!({"type": "GROUP", "workspaceId": cast.workspace, "isEncrypted": true}))
        .await
        .assert_error(422, "validation_failed");
    app.create_conversation(&cast.alice, json!({"type": "SPACE", "workspaceId": cast.workspace}))
        .await
        .assert_error(422, "validation_failed");
}

async fn a_document_chat_is_unique_per_document_and_open_to_every_member(app: TestApp) {
    let cast = app.cast().await;
    let body = json!({"type": "DOCUMENT", "workspaceId": cast.workspace, "documentId": "doc-42", "name": "Spec"});
    let first = app.create_conversation(&cast.alice, body.clone()).await;
    first.assert_status(201);
    let doc: Conversation = first.json();
    assert_eq!(doc.document_id.as_deref(), Some("doc-42"));
    let second = app.create_conversation(&cast.bob, body).await;
    second.assert_status(200);
    assert_eq!(second.json::<Conversation>().id, doc.id);
    // Bob is not a member yet he reads and posts; posting makes him one.
    app.get(&format!("/chat/conversations/{}/messages", doc.id), &cast.bob).await.assert_status(200);
    let msg = app.send(&cast.bob, doc.id, "comment on the doc").await;
    assert_eq!(msg.seq, 1);
    let members: Page<Member> = app.get(&format!("/chat/conversations/{}/members", doc.id), &cast.bob).await.json();
    assert!(members.items.iter().any(|m| m.user_id == cast.bob.id));
    app.create_conversation(&cast.alice, json!({"type": "DOCUMENT", "workspaceId": cast.workspace}))
        .await
        .assert_error(422, "validation_failed");
}

async fn channels_are_readable_and_joinable_by_workspace_members(app: TestApp) {
    let cast = app.cast().await;
    let channel = app.channel(&cast.alice, cast.workspace, "general", &[]).await;
    let path = format!("/chat/conversations/{}", channel.id);
    app.get(&path, &cast.bob).await.assert_status(200);
    app.get(&format!("{path}/messages"), &cast.bob).await.assert_status(200);
    // Posting needs joining first.
    app.post(&format!("{path}/messages"), &cast.bob, json!({"content": "hi"})).await.assert_error(403, "forbidden");
    app.post(&format!("{path}/members"), &cast.bob, json!({"userId": cast.bob.id})).await.assert_status(201);
    app.send(&cast.bob, channel.id, "hi").await;
    app.post(&format!("{path}/members"), &cast.bob, json!({"userId": cast.bob.id})).await.assert_error(409, "conflict");
    // A guest sees nothing of a channel they are not in.
    let gus = app.register("gus").await;
    app.add_to_workspace(&cast.alice, cast.workspace, &gus, "guest").await;
    app.get(&path, &gus).await.assert_error(404, "not_found");
}

async fn groups_are_invisible_to_non_members(app: TestApp) {
    let cast = app.cast().await;
    let group = app.group(&cast.alice, cast.workspace, "private", &[]).await;
    let path = format!("/chat/conversations/{}", group.id);
    app.get(&path, &cast.bob).await.assert_error(404, "not_found");
    app.get(&format!("{path}/messages"), &cast.bob).await.assert_error(404, "not_found");
    app.post(&format!("{path}/members"), &cast.bob, json!({"userId": cast.bob.id}))
        .await
        .assert_error(404, "not_found");
    app.post(&format!("{path}/members"), &cast.alice, json!({"userId": cast.bob.id})).await.assert_status(201);
    app.get(&path, &cast.bob).await.assert_status(200);
}

async fn conversation_roles_gate_updates_archive_and_membership(app: TestApp) {
    let cast = app.cast().await;
    let carol = app.register("carol").await;
    app.add_to_workspace(&cast.alice, cast.workspace, &carol, "member").await;
    let group = app.group(&cast.alice, cast.workspace, "team", &[&cast.bob]).await;
    let path = format!("/chat/conversations/{}", group.id);
    // A member neither updates, archives, adds nor promotes.
    app.put(&path, &cast.bob, json!({"name": "renamed"})).await.assert_error(403, "forbidden");
    app.delete(&path, &cast.bob).await.assert_error(403, "forbidden");
    app.post(&format!("{path}/members"), &cast.bob, json!({"userId": carol.id})).await.assert_error(403, "forbidden");
    app.put(&format!("{path}/members/{}/role", cast.bob.id), &cast.bob, json!({"role": "admin"}))
        .await
        .assert_error(403, "forbidden");
    // The admin makes bob a moderator, who may then add members (as members only).
    let promoted =
        app.put(&format!("{path}/members/{}/role", cast.bob.id), &cast.alice, json!({"role": "moderator"})).await;
    promoted.assert_status(200);
    assert_eq!(promoted.json::<Member>().role, "moderator");
    app.post(&format!("{path}/members"), &cast.bob, json!({"userId": carol.id, "role": "admin"}))
        .await
        .assert_error(403, "forbidden");
    app.post(&format!("{path}/participants"), &cast.bob, json!({"userId": carol.id})).await.assert_status(201);
    // A moderator deletes anyone's message; a member only their own.
    let by_alice = app.send(&cast.alice, group.id, "from alice").await;
    let by_carol = app.send(&carol, group.id, "from carol").await;
    app.delete(&format!("/chat/messages/{}", by_alice.id), &carol).await.assert_error(403, "forbidden");
    app.delete(&format!("/chat/messages/{}", by_carol.id), &cast.bob).await.assert_status(204);
    // The moderator removes carol, not the admin.
    app.delete(&format!("{path}/members/{}", cast.alice.id), &cast.bob).await.assert_error(403, "forbidden");
    app.delete(&format!("{path}/members/{}", carol.id), &cast.bob).await.assert_status(204);
    // The last admin cannot leave while others remain.
    app.delete(&format!("{path}/members/{}", cast.alice.id), &cast.alice).await.assert_error(409, "conflict");
    let updated = app.put(&path, &cast.alice, json!({"name": "renamed", "description": "d"})).await;
    updated.assert_status(200);
    let updated: Conversation = updated.json();
    assert_eq!(updated.name.as_deref(), Some("renamed"));
    assert_eq!(updated.description.as_deref(), Some("d"));
    let cleared: Conversation = app.put(&path, &cast.alice, json!({"description": null})).await.json();
    assert_eq!(cleared.description, None);
    assert_eq!(cleared.name.as_deref(), Some("renamed"));
}

async fn an_archived_conversation_is_read_only(app: TestApp) {
    let cast = app.cast().await;
    let group = app.group(&cast.alice, cast.workspace, "old", &[&cast.bob]).await;
    let msg = app.send(&cast.bob, group.id, "before").await;
    app.delete(&format!("/chat/conversations/{}", group.id), &cast.alice).await.assert_status(204);
    let read: Conversation = app.get(&format!("/chat/conversations/{}", group.id), &cast.bob).await.json();
    assert!(read.archived_at.is_some());
    assert_eq!(app.messages(&cast.bob, group.id, "").await.items.len(), 1);
    app.post(&format!("/chat/conversations/{}/messages", group.id), &cast.bob, json!({"content": "after"}))
        .await
        .assert_error(409, "conflict");
    app.put(&format!("/chat/messages/{}", msg.id), &cast.bob, json!({"content": "edited"}))
        .await
        .assert_error(409, "conflict");
}

async fn read_watermarks_move_forward_and_drive_unread_counts(app: TestApp) {
    let cast = app.cast().await;
    let group = app.group(&cast.alice, cast.workspace, "reads", &[&cast.bob]).await;
    for i in 0..3 {
        app.send(&cast.bob, group.id, &format!("m{i}")).await;
    }
    let own = app.send(&cast.alice, group.id, "mine").await;
    assert_eq!(own.seq, 4);
    let unread: UnreadCountResponse =
        app.get(&format!("/chat/workspaces/{}/unread-count", cast.workspace), &cast.alice).await.json();
    // Alice's own message moved her watermark to 4: nothing from bob is unread before it.
    assert_eq!(unread.total, 0);
    let bob_unread: UnreadCountResponse =
        app.get(&format!("/chat/workspaces/{}/unread-count", cast.workspace), &cast.bob).await.json();
    assert_eq!(bob_unread.conversations.get(&group.id), Some(&1));
    let read = format!("/chat/conversations/{}/read", group.id);
    let page = app.messages(&cast.bob, group.id, "?after=0").await;
    let first = &page.items[0];
    app.post(&read, &cast.bob, json!({"messageId": first.id})).await.assert_status(200);
    let marked = app.post(&read, &cast.bob, json!({"seq": 4})).await;
    marked.assert_status(200);
    assert_eq!(marked.body["lastReadSeq"], 4);
    // An older mark is a no-op answered with the unchanged watermark.
    let older = app.post(&read, &cast.bob, json!({"seq": 2})).await;
    older.assert_status(200);
    assert_eq!(older.body["lastReadSeq"], 4);
    let after: UnreadCountResponse =
        app.get(&format!("/chat/workspaces/{}/unread-count", cast.workspace), &cast.bob).await.json();
    assert_eq!(after.total, 0);
}

async fn the_conversation_list_carries_unread_counts_and_last_messages(app: TestApp) {
    let cast = app.cast().await;
    let quiet = app.group(&cast.alice, cast.workspace, "quiet", &[&cast.bob]).await;
    let busy = app.group(&cast.alice, cast.workspace, "busy", &[&cast.bob]).await;
    app.send(&cast.alice, quiet.id, "old news").await;
    app.send(&cast.alice, busy.id, "one").await;
    app.send(&cast.alice, busy.id, "two").await;
    let other = app.create_workspace(&cast.bob, "Bob's own").await;
    app.channel(&cast.bob, other.id, "elsewhere", &[]).await;
    let list: Page<Conversation> =
        app.get(&format!("/chat/conversations?workspaceId={}", cast.workspace), &cast.bob).await.json();
    assert_eq!(list.items.len(), 2, "only this workspace's conversations");
    assert_eq!(list.items[0].id, busy.id, "most recently active first");
    assert_eq!(list.items[0].unread_count, Some(2));
    let last = list.items[0].last_message.clone().flatten().expect("last message");
    assert_eq!(last.content, "two");
    assert_eq!(list.items[1].unread_count, Some(1));
    app.get(&format!("/chat/conversations?workspaceId={}", cast.elsewhere), &cast.bob)
        .await
        .assert_error(404, "not_found");
}
