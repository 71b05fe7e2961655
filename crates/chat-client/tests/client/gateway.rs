//! The WebSocket client against the real gateway (`GET /chat/ws`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chat_client::protocol::ws::SendMessage;
use chat_client::protocol::{ListMessagesQuery, Message};
use chat_client::{ClientError, ConnectionState, Push, Realtime, RealtimeOptions, ResumeOptions, ResumingRealtime};
use futures_util::future::join_all;
use serde_json::json;
use uuid::Uuid;

use crate::fake::STEP;
use crate::helpers::{Cast, TestServer};
use crate::proxy::Proxy;

/// Either kind of connection, as a source of pushes.
pub(crate) trait PushSource {
    async fn next_within(&mut self, timeout: Duration) -> Option<Push>;
}

impl PushSource for Realtime {
    async fn next_within(&mut self, timeout: Duration) -> Option<Push> {
        self.next_push_within(timeout).await
    }
}

impl PushSource for ResumingRealtime {
    async fn next_within(&mut self, timeout: Duration) -> Option<Push> {
        self.next_push_within(timeout).await
    }
}

/// The first push `pick` accepts, skipping others (presence, typing …), within [`STEP`].
async fn next_where<T>(source: &mut impl PushSource, what: &str, pick: impl Fn(Push) -> Option<T>) -> T {
    let deadline = Instant::now() + STEP;
    loop {
        match source.next_within(deadline.saturating_duration_since(Instant::now())).await {
            Some(push) => {
                if let Some(found) = pick(push) {
                    return found;
                }
            }
            None => panic!("no {what} arrived in time"),
        }
    }
}

/// The next `n` `message:new` pushes (other kinds of push skipped), which must all be of
/// `conversation`.
async fn message_news(source: &mut impl PushSource, conversation: Uuid, n: usize) -> Vec<Message> {
    let mut messages = Vec::new();
    while messages.len() < n {
        let new = next_where(source, "message:new", |push| match push {
            Push::MessageNew(new) => Some(new),
            _ => None,
        })
        .await;
        assert_eq!(new.conversation_id, conversation, "unexpected message:new {new:?}");
        messages.push(new.message);
    }
    messages
}

/// No `message:new` arrives within a short while.
async fn no_more_messages(source: &mut impl PushSource) {
    let deadline = Instant::now() + Duration::from_millis(300);
    while let Some(push) = source.next_within(deadline.saturating_duration_since(Instant::now())).await {
        assert!(!matches!(push, Push::MessageNew(_)), "unexpected {push:?}");
    }
}

fn send(conversation: Uuid, content: &str, client_msg_id: Option<&str>) -> SendMessage {
    SendMessage {
        conversation_id: conversation,
        content: content.to_owned(),
        reply_to_id: None,
        client_msg_id: client_msg_id.map(str::to_owned),
        kind: None,
        attachments: Vec::new(),
    }
}

#[track_caller]
fn assert_rejected<T: std::fmt::Debug>(result: Result<T, ClientError>, event: &str, code: &str) {
    match result {
        Err(ClientError::Rejected { event: e, code: c, .. }) => assert_eq!((e.as_str(), c.as_str()), (event, code)),
        other => panic!("expected {event} rejected with {code}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_missing_or_bad_token_is_refused_before_the_upgrade() {
    let server = TestServer::spawn().await;
    for client in [server.client(), server.client().with_token("not-a-jwt")] {
        let error = client.connect_ws().await.expect_err("refused");
        assert_eq!(error.status(), Some(401), "{error:?}");
        if let ClientError::Api { code, .. } = &error {
            assert_eq!(code, "unauthorized");
        }
    }
}

#[tokio::test]
async fn the_token_may_travel_as_a_query_parameter() {
    let server = TestServer::spawn().await;
    let (client, _) = server.user("quinn").await;
    let realtime =
        client.connect_ws_with(RealtimeOptions::default().token_in_query(true)).await.expect("connect with ?token=");
    realtime.ping().await.expect("ping acked");
}

#[tokio::test]
async fn joining_a_workspace_is_acked_and_a_foreign_one_is_not_found() {
    let server = TestServer::spawn().await;
    let cast = Cast::new(&server).await;
    let (mallory, _) = server.user("mallory").await;
    let elsewhere = mallory.create_workspace("Elsewhere").await.expect("workspace");

    let realtime = cast.alice.connect_ws().await.expect("connect");
    let ack = realtime.join_workspace(cast.workspace.id).await.expect("joined");
    assert_eq!(ack["workspaceId"], json!(cast.workspace.id));
    assert_rejected(realtime.join_workspace(elsewhere.id).await, "join_workspace", "not_found");
    assert_rejected(realtime.join_workspace(Uuid::new_v4()).await, "join_workspace", "not_found");
}

#[tokio::test]
async fn a_message_sent_over_the_socket_reaches_the_other_member_as_message_new() {
    let server = TestServer::spawn().await;
    let cast = Cast::new(&server).await;
    let channel = cast.channel("general").await;
    let alice = cast.alice.connect_ws().await.expect("alice connects");
    let mut bob = cast.bob.connect_ws().await.expect("bob connects");
    alice.join_workspace(cast.workspace.id).await.expect("alice joins");
    bob.join_workspace(cast.workspace.id).await.expect("bob joins");

    let sent = alice.send_message(&send(channel.id, "hello over ws", Some("ws-1"))).await.expect("sent");
    assert_eq!((sent.seq, sent.sender_id, sent.content.as_str()), (1, cast.alice_id, "hello over ws"));
    let received = message_news(&mut bob, channel.id, 1).await;
    assert_eq!(received, vec![sent.clone()]);

    // The ack is exactly what REST returns for that message.
    let listed = cast.alice.list_messages(channel.id, &ListMessagesQuery::default()).await.expect("list");
    assert_eq!(listed.items, vec![sent.clone()]);

    // The same clientMsgId again is the original message, not a new one.
    let again = alice.send_message(&send(channel.id, "hello over ws", Some("ws-1"))).await.expect("replayed");
    assert_eq!(again.id, sent.id);
    no_more_messages(&mut bob).await;
}

#[tokio::test]
async fn many_requests_in_flight_each_get_their_own_ack() {
    let server = TestServer::spawn().await;
    let cast = Cast::new(&server).await;
    let channel = cast.channel("general").await;
    let alice = cast.alice.connect_ws().await.expect("connect");

    let contents: Vec<String> = (0..10).map(|i| format!("message {i}")).collect();
    let sends = contents.iter().map(|content| {
        let handle = alice.handle();
        let content = content.clone();
        async move { (content.clone(), handle.send_text(channel.id, &content).await) }
    });
    let mut seqs = Vec::new();
    for (content, result) in join_all(sends).await {
        let message = result.expect("acked");
        assert_eq!(message.content, content, "each ack answers its own request");
        seqs.push(message.seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
}

#[tokio::test]
async fn bad_frames_are_answered_with_error_frames_carrying_the_spec_codes() {
    let server = TestServer::spawn().await;
    let cast = Cast::new(&server).await;
    let (mallory, _) = server.user("mallory").await;
    let channel = cast.channel("general").await;
    let alice = cast.alice.connect_ws().await.expect("connect");

    assert_rejected(alice.request("no_such_event", json!({})).await, "no_such_event", "bad_request");
    let unknown_field = json!({"conversationId": channel.id, "content": "x", "bogus": true});
    assert_rejected(alice.request("send_message", unknown_field).await, "send_message", "bad_request");
    assert_rejected(alice.send_text(channel.id, "   ").await, "send_message", "validation_failed");
    assert_rejected(alice.send_text(Uuid::new_v4(), "hi").await, "send_message", "not_found");
    let stranger = mallory.connect_ws().await.expect("mallory connects");
    assert_rejected(stranger.send_text(channel.id, "let me in").await, "send_message", "not_found");

    // The connection survives its errors.
    alice.ping().await.expect("still answering");
    assert_eq!(alice.close_info(), None);
}

#[tokio::test]
async fn edits_reactions_reads_typing_presence_and_deletes_reach_the_other_member() {
    let server = TestServer::spawn().await;
    let cast = Cast::new(&server).await;
    let channel = cast.channel("general").await;
    let mut alice = cast.alice.connect_ws().await.expect("alice connects");
    let mut bob = cast.bob.connect_ws().await.expect("bob connects");
    alice.join_workspace(cast.workspace.id).await.expect("alice joins");
    bob.join_workspace(cast.workspace.id).await.expect("bob joins");

    let sent = alice.send_text(channel.id, "first draft").await.expect("sent");
    message_news(&mut bob, channel.id, 1).await;

    let edited = alice.edit_message(sent.id, "final").await.expect("edited");
    assert_eq!(edited.content, "final");
    let pushed = next_where(&mut bob, "message:edit", |p| match p {
        Push::MessageEdit(e) => Some(e.message),
        _ => None,
    })
    .await;
    assert_eq!(pushed, edited);

    let reacted = alice.add_reaction(sent.id, "🎉", channel.id).await.expect("reacted");
    assert_eq!(reacted.reactions.get("🎉"), Some(&vec![cast.alice_id]));
    let pushed = next_where(&mut bob, "message:reaction", |p| match p {
        Push::MessageReaction(r) => Some(r.message),
        _ => None,
    })
    .await;
    assert_eq!(pushed.reactions, reacted.reactions);

    let read = bob.mark_as_read(channel.id, Some(sent.id)).await.expect("read");
    assert_eq!(read.last_read_seq, 1);
    let seen = next_where(&mut alice, "message:read", |p| match p {
        Push::MessageRead(r) => Some(r),
        _ => None,
    })
    .await;
    assert_eq!((seen.user_id, seen.conversation_id, seen.seq), (cast.bob_id, channel.id, 1));

    alice.typing_start(channel.id).await.expect("typing");
    let typing = next_where(&mut bob, "typing:start", |p| match p {
        Push::TypingStart(t) => Some(t),
        _ => None,
    })
    .await;
    assert_eq!((typing.user_id, typing.conversation_id), (cast.alice_id, channel.id));
    alice.typing_stop(channel.id).await.expect("stopped");
    next_where(&mut bob, "typing:stop", |p| match p {
        Push::TypingStop(t) if t.user_id == cast.alice_id => Some(()),
        _ => None,
    })
    .await;

    let presence = alice.update_presence(cast.workspace.id, "away").await.expect("presence");
    assert_eq!((presence.user_id, presence.status.as_str()), (cast.alice_id, "away"));
    next_where(&mut bob, "presence_update away", |p| match p {
        Push::PresenceUpdate(u) if u.user_id == cast.alice_id && u.status == "away" => Some(()),
        _ => None,
    })
    .await;

    alice.delete_message(sent.id, channel.id).await.expect("deleted");
    let deleted = next_where(&mut bob, "message:delete", |p| match p {
        Push::MessageDelete(d) => Some(d),
        _ => None,
    })
    .await;
    assert_eq!((deleted.message_id, deleted.conversation_id), (sent.id, channel.id));
}

#[tokio::test]
async fn resume_replays_the_missed_messages_in_seq_order_then_acks() {
    let server = TestServer::spawn().await;
    let cast = Cast::new(&server).await;
    let channel = cast.channel("general").await;
    for content in ["one", "two", "three"] {
        cast.alice.send_text(channel.id, content).await.expect("sent");
    }

    // Bob joined nothing: the only pushes he can get are the replay.
    let mut bob = cast.bob.connect_ws().await.expect("connect");
    let ack = bob.resume(&BTreeMap::from([(channel.id, 1)])).await.expect("resumed");
    assert_eq!(ack.replayed, BTreeMap::from([(channel.id, 2)]));
    let replayed = message_news(&mut bob, channel.id, 2).await;
    let seen: Vec<(i64, &str)> = replayed.iter().map(|m| (m.seq, m.content.as_str())).collect();
    assert_eq!(seen, vec![(2, "two"), (3, "three")]);
    no_more_messages(&mut bob).await;
}

fn resuming_options() -> ResumeOptions {
    ResumeOptions::default().backoff(Duration::from_millis(20), Duration::from_millis(200))
}

#[tokio::test]
async fn after_a_network_cut_the_resuming_client_gets_exactly_the_missed_messages_in_order() {
    let server = TestServer::spawn().await;
    let cast = Cast::new(&server).await;
    let channel = cast.channel("general").await;
    let proxy = Proxy::start(&server.base).await;
    let bob_client = chat_client::ChatClient::new(proxy.base.clone())
        .with_tokens(cast.bob.access_token().expect("token"), cast.bob.refresh_token().expect("refresh"));

    let mut bob = bob_client.connect_resuming_with(resuming_options()).await.expect("connect");
    bob.join_workspace(cast.workspace.id).await.expect("joined");
    cast.alice.send_text(channel.id, "m1").await.expect("m1");
    assert_eq!(message_news(&mut bob, channel.id, 1).await[0].seq, 1);

    proxy.cut();
    let mut states = bob.states();
    tokio::time::timeout(STEP, states.wait_for(|s| matches!(s, ConnectionState::Reconnecting { .. })))
        .await
        .expect("the cut is noticed in time")
        .expect("state");
    for content in ["m2", "m3", "m4"] {
        cast.alice.send_text(channel.id, content).await.expect("sent while bob is away");
    }
    proxy.restore();

    let missed = message_news(&mut bob, channel.id, 3).await;
    let seen: Vec<(i64, &str)> = missed.iter().map(|m| (m.seq, m.content.as_str())).collect();
    assert_eq!(seen, vec![(2, "m2"), (3, "m3"), (4, "m4")]);
    tokio::time::timeout(STEP, states.wait_for(|s| matches!(s, ConnectionState::Connected { generation: 2 })))
        .await
        .expect("reconnected in time")
        .expect("state");

    // Live again, and nothing was delivered twice.
    cast.alice.send_text(channel.id, "m5").await.expect("m5");
    let next = message_news(&mut bob, channel.id, 1).await;
    assert_eq!((next[0].seq, next[0].content.as_str()), (5, "m5"));
    assert_eq!(bob.last_seq(channel.id), Some(5));
    no_more_messages(&mut bob).await;
}

#[tokio::test]
async fn a_send_with_a_client_msg_id_repeated_after_a_reconnect_is_posted_once() {
    let server = TestServer::spawn().await;
    let cast = Cast::new(&server).await;
    let channel = cast.channel("general").await;
    let proxy = Proxy::start(&server.base).await;
    let alice_client = chat_client::ChatClient::new(proxy.base.clone())
        .with_tokens(cast.alice.access_token().expect("token"), cast.alice.refresh_token().expect("refresh"));
    let alice = alice_client.connect_resuming_with(resuming_options()).await.expect("connect");

    let message = send(channel.id, "exactly once", Some("idem-1"));
    let first = alice.send_message(&message).await.expect("sent");
    proxy.cut();
    let mut states = alice.states();
    tokio::time::timeout(STEP, states.wait_for(|s| matches!(s, ConnectionState::Reconnecting { .. })))
        .await
        .expect("the cut is noticed in time")
        .expect("state");
    proxy.restore();
    let again = alice.send_message(&message).await.expect("sent again on the new connection");
    assert_eq!(again, first);
    assert!(matches!(alice.state(), ConnectionState::Connected { generation: 2 }), "{:?}", alice.state());

    let listed = cast.alice.list_messages(channel.id, &ListMessagesQuery::default()).await.expect("list");
    assert_eq!(listed.items.len(), 1, "posted once: {:?}", listed.items);
}
