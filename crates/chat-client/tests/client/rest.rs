//! Every REST method against a real server.

use chat_client::protocol::{
    AddWorkspaceMemberRequest, ListMessagesQuery, ReadRequest, SendMessageRequest, UpdateConversationRequest,
};
use chat_client::{ClientError, GetOrCreate, Sent};
use uuid::Uuid;

use crate::helpers::{Cast, PASSWORD, TestServer, conversation};

#[track_caller]
fn assert_api(result: Result<impl std::fmt::Debug, ClientError>, status: u16, code: &str) {
    match result {
        Err(ClientError::Api { status: s, code: c, request_id, .. }) => {
            assert_eq!((s, c.as_str()), (status, code));
            assert!(!request_id.is_empty(), "the request id is decoded");
        }
        other => panic!("expected {status} {code}, got {other:?}"),
    }
}

fn message(content: &str, client_msg_id: Option<&str>, reply_to: Option<Uuid>) -> SendMessageRequest {
    SendMessageRequest {
        content: content.to_owned(),
        kind: None,
        reply_to_id: reply_to,
        client_msg_id: client_msg_id.map(str::to_owned),
        attachments: Vec::new(),
    }
}

#[tokio::test]
async fn registering_signs_the_client_in() {
    let server = TestServer::spawn().await;
    let client = server.client();
    assert!(client.access_token().is_none());
    let auth = client.register("Ann@Example.test", PASSWORD, "Ann").await.expect("register");
    assert_eq!(client.access_token().as_deref(), Some(auth.access_token.as_str()));
    assert_eq!(client.refresh_token().as_deref(), Some(auth.refresh_token.as_str()));
    let me = client.me().await.expect("me");
    assert_eq!((me.id, me.email.as_str(), me.display_name.as_str()), (auth.user.id, "ann@example.test", "Ann"));
}

#[tokio::test]
async fn login_signs_in_and_refresh_rotates_the_tokens() {
    let server = TestServer::spawn().await;
    let (_, id) = server.user("carl").await;
    let client = server.client();
    let login = client.login("carl@example.test", PASSWORD).await.expect("login");
    assert_eq!(login.user.id, id);

    let refreshed = client.refresh().await.expect("refresh");
    assert_ne!(refreshed.refresh_token, login.refresh_token);
    assert_eq!(client.refresh_token().as_deref(), Some(refreshed.refresh_token.as_str()));
    assert_eq!(client.me().await.expect("me with the new token").id, id);

    // The spent token is refused (and revokes its family).
    let replay = server.client().with_tokens(login.access_token, login.refresh_token);
    assert_api(replay.refresh().await, 401, "unauthorized");
}

#[tokio::test]
async fn wrong_credentials_and_missing_tokens_are_refused() {
    let server = TestServer::spawn().await;
    server.user("dora").await;
    assert_api(server.client().login("dora@example.test", "wrong password!").await, 401, "unauthorized");
    assert_api(server.client().me().await, 401, "unauthorized");
    assert_api(server.client().with_token("not-a-jwt").me().await, 401, "unauthorized");
    assert!(matches!(server.client().refresh().await, Err(ClientError::NoRefreshToken)));
}

#[tokio::test]
async fn workspaces_and_their_members() {
    let server = TestServer::spawn().await;
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    let (_, carol_id) = server.user("carol").await;

    let workspace = alice.create_workspace("Acme Corp!").await.expect("create");
    assert_eq!((workspace.slug.as_str(), workspace.role.as_str()), ("acme-corp", "owner"));
    assert_eq!(alice.get_workspace(workspace.id).await.expect("get"), workspace);
    let listed = alice.list_workspaces().await.expect("list");
    assert_eq!(listed.items, vec![workspace.clone()]);
    assert_eq!(listed.next_cursor, None);

    let by_email = AddWorkspaceMemberRequest { user_id: None, email: Some("bob@example.test".to_owned()), role: None };
    let added = alice.add_workspace_member(workspace.id, &by_email).await.expect("add bob");
    assert_eq!((added.user_id, added.role.as_str()), (bob_id, "member"));
    let by_id = AddWorkspaceMemberRequest { user_id: Some(carol_id), email: None, role: Some("guest".to_owned()) };
    alice.add_workspace_member(workspace.id, &by_id).await.expect("add carol");
    assert_api(alice.add_workspace_member(workspace.id, &by_id).await, 409, "conflict");

    let members = bob.workspace_members(workspace.id).await.expect("members");
    assert_eq!(members.items.len(), 3);
    assert_api(bob.remove_workspace_member(workspace.id, carol_id).await, 403, "forbidden");
    alice.remove_workspace_member(workspace.id, carol_id).await.expect("remove carol");
    assert_eq!(alice.workspace_members(workspace.id).await.expect("members").items.len(), 2);
}

#[tokio::test]
async fn conversations_from_creation_to_archive() {
    let server = TestServer::spawn().await;
    let cast = Cast::new(&server).await;
    let (carol, carol_id) = server.user("carol").await;
    cast.alice
        .add_workspace_member(
            cast.workspace.id,
            &AddWorkspaceMemberRequest { user_id: Some(carol_id), email: None, role: None },
        )
        .await
        .expect("carol joins");

    let channel = cast.channel("general").await;
    assert_eq!((channel.kind.as_str(), channel.role.as_deref()), ("CHANNEL", Some("admin")));

    // A DM is get-or-create: 201 then 200.
    let dm = conversation("direct", cast.workspace.id, None, &[cast.bob_id]);
    let first = cast.alice.create_conversation(&dm).await.expect("dm");
    assert!(first.is_created(), "{first:?}");
    let again = cast.bob.create_conversation(&conversation("DM", cast.workspace.id, None, &[cast.alice_id])).await;
    assert!(matches!(again.expect("dm again"), GetOrCreate::Existing(dm) if dm.id == first.get().id));

    let listed = cast.bob.list_conversations(cast.workspace.id).await.expect("list");
    let ids: Vec<Uuid> = listed.items.iter().map(|c| c.id).collect();
    assert!(ids.contains(&channel.id) && ids.contains(&first.get().id), "{ids:?}");
    assert!(listed.items.iter().all(|c| c.unread_count == Some(0)));

    let renamed = cast
        .alice
        .update_conversation(
            channel.id,
            &UpdateConversationRequest { name: Some(Some("town-square".to_owned())), ..Default::default() },
        )
        .await
        .expect("update");
    assert_eq!(renamed.name.as_deref(), Some("town-square"));
    assert_eq!(cast.bob.get_conversation(channel.id).await.expect("get").name.as_deref(), Some("town-square"));
    assert_api(cast.bob.update_conversation(channel.id, &UpdateConversationRequest::default()).await, 403, "forbidden");

    let member = cast.alice.add_member(channel.id, carol_id, Some("moderator")).await.expect("add carol");
    assert_eq!(member.role, "moderator");
    assert_api(cast.alice.add_member(channel.id, carol_id, None).await, 409, "conflict");
    let promoted = cast.alice.set_member_role(channel.id, cast.bob_id, "admin").await.expect("role");
    assert_eq!(promoted.role, "admin");
    assert_eq!(carol.conversation_members(channel.id).await.expect("members").items.len(), 3);
    carol.remove_member(channel.id, carol_id).await.expect("carol leaves");
    assert_eq!(cast.alice.conversation_members(channel.id).await.expect("members").items.len(), 2);

    cast.alice.archive_conversation(channel.id).await.expect("archive");
    let archived = cast.bob.get_conversation(channel.id).await.expect("still readable");
    assert!(archived.archived_at.is_some());
    assert_api(cast.bob.send_text(channel.id, "anyone?").await, 409, "conflict");
}

#[tokio::test]
async fn messages_are_sent_replayed_listed_edited_reacted_to_and_deleted() {
    let server = TestServer::spawn().await;
    let cast = Cast::new(&server).await;
    let channel = cast.channel("general").await;

    let sent = cast.alice.send_message(channel.id, &message("hello", Some("k-1"), None)).await.expect("send");
    let Sent::New(hello) = sent else { panic!("first send is new: {sent:?}") };
    assert_eq!((hello.seq, hello.client_msg_id.as_deref()), (1, Some("k-1")));
    let replay = cast.alice.send_message(channel.id, &message("hello", Some("k-1"), None)).await.expect("replay");
    assert_eq!(replay, Sent::Replayed(hello.clone()));

    let second = cast.bob.send_text(channel.id, "second").await.expect("second");
    let reply = cast.bob.send_message(channel.id, &message("a reply", None, Some(hello.id))).await.expect("reply");
    let reply = reply.into_message();
    assert_eq!((second.seq, reply.seq, reply.reply_to_id), (2, 3, Some(hello.id)));

    let newest = cast.alice.list_messages(channel.id, &ListMessagesQuery::default()).await.expect("list");
    assert_eq!(newest.items.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![3, 2, 1]);
    let page = cast
        .alice
        .list_messages(channel.id, &ListMessagesQuery { after: Some(1), limit: Some(1), ..Default::default() })
        .await
        .expect("after");
    assert_eq!(page.items.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![2]);
    assert_eq!(page.next_cursor.as_deref(), Some("2"));
    let before = cast
        .alice
        .list_messages(channel.id, &ListMessagesQuery { before: Some(3), offset: Some(1), ..Default::default() })
        .await
        .expect("before");
    assert_eq!(before.items.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1]);
    let thread = cast
        .bob
        .list_messages(channel.id, &ListMessagesQuery { thread_of: Some(hello.id), ..Default::default() })
        .await
        .expect("thread");
    assert_eq!(thread.items.iter().map(|m| m.id).collect::<Vec<_>>(), vec![hello.id, reply.id]);
    assert_api(
        cast.alice
            .list_messages(channel.id, &ListMessagesQuery { after: Some(1), before: Some(3), ..Default::default() })
            .await,
        422,
        "validation_failed",
    );

    let edited = cast.alice.edit_message(hello.id, "hello <b>world</b>").await.expect("edit");
    assert_eq!(edited.content, "hello world");
    assert!(edited.edited_at.is_some());
    assert_api(cast.bob.edit_message(hello.id, "mine now").await, 403, "forbidden");

    let reacted = cast.bob.react(hello.id, "👍").await.expect("react");
    assert_eq!(reacted.reactions.get("👍"), Some(&vec![cast.bob_id]));
    let toggled = cast.bob.react(hello.id, "👍").await.expect("toggle");
    assert!(toggled.reactions.is_empty());

    let read = cast.bob.mark_read(channel.id, &ReadRequest { message_id: None, seq: Some(1) }).await.expect("read");
    assert_eq!(read.last_read_seq, 3, "sending moved bob's watermark to his own message already");
    let unread = cast.alice.unread_count(cast.workspace.id).await.expect("unread");
    assert_eq!(unread.conversations.get(&channel.id), Some(&2), "bob's two messages are unread for alice");

    cast.alice.delete_message(hello.id).await.expect("delete");
    cast.alice.delete_message(hello.id).await.expect("deleting twice is a no-op");
    let listed = cast.bob.list_messages(channel.id, &ListMessagesQuery::default()).await.expect("list");
    let deleted = listed.items.iter().find(|m| m.id == hello.id).expect("deleted message keeps its row");
    assert_eq!((deleted.content.as_str(), deleted.deleted_at.is_some()), ("", true));
    assert_api(cast.bob.react(hello.id, "👍").await, 409, "conflict");
}

#[tokio::test]
async fn errors_carry_the_status_and_code_of_the_spec() {
    let server = TestServer::spawn().await;
    let cast = Cast::new(&server).await;
    let (mallory, _) = server.user("mallory").await;
    let channel = cast.channel("general").await;

    assert_api(cast.alice.get_conversation(Uuid::new_v4()).await, 404, "not_found");
    assert_api(mallory.get_conversation(channel.id).await, 404, "not_found");
    assert_api(mallory.get_workspace(cast.workspace.id).await, 404, "not_found");
    assert_api(server.client().register("alice@example.test", PASSWORD, "Alice 2").await, 409, "conflict");
    assert_api(cast.alice.create_workspace("").await, 422, "validation_failed");
    assert_api(cast.alice.send_text(channel.id, "   ").await, 422, "validation_failed");
    assert_api(cast.alice.send_text(channel.id, &"x".repeat(4001)).await, 413, "payload_too_large");
    assert_api(cast.alice.set_presence(cast.workspace.id, "asleep").await, 422, "validation_failed");

    let error = cast.alice.get_conversation(Uuid::new_v4()).await.expect_err("404");
    assert_eq!((error.status(), error.code()), (Some(404), Some("not_found")));
    assert!(error.to_string().contains("not_found"), "{error}");
}

#[tokio::test]
async fn presence_is_set_and_listed() {
    let server = TestServer::spawn().await;
    let cast = Cast::new(&server).await;
    let presence = cast.bob.set_presence(cast.workspace.id, "busy").await.expect("set");
    assert_eq!((presence.user_id, presence.status.as_str()), (cast.bob_id, "busy"));
    let listed = cast.alice.list_presence(cast.workspace.id).await.expect("list");
    let bob = listed.items.iter().find(|p| p.user_id == cast.bob_id).expect("bob listed");
    assert_eq!(bob.status, "busy");
    assert!(listed.items.iter().any(|p| p.user_id == cast.alice_id));
}

#[tokio::test]
async fn health_and_readiness_answer_ok() {
    let server = TestServer::spawn().await;
    let client = server.client();
    assert_eq!(client.healthz().await.expect("healthz").status, "ok");
    assert_eq!(client.readyz().await.expect("readyz").status, "ok");
}

#[tokio::test]
async fn metrics_count_the_group_commits_of_messages_sent() {
    let server = TestServer::spawn().await;
    let cast = Cast::new(&server).await;
    let channel = cast.channel("general").await;
    let counter = |text: &str, name: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} missing in {text}"));
        line[name.len()..].trim().parse().unwrap_or_else(|e| panic!("{line}: {e}"))
    };
    let before = cast.alice.metrics().await.expect("metrics");
    for text in ["one", "two", "three"] {
        cast.alice.send_text(channel.id, text).await.expect("send");
    }
    let after = cast.alice.metrics().await.expect("metrics");
    let batched = counter(&after, "chat_message_batched_total ") - counter(&before, "chat_message_batched_total ");
    let batches = counter(&after, "chat_message_batches_total ") - counter(&before, "chat_message_batches_total ");
    assert_eq!(batched, 3, "three sends, one after the other");
    assert_eq!(batches, 3, "each waited for its own commit before the next was sent");
}
