use std::time::Duration;

use serde_json::json;

use crate::helpers::{Backend, TestApp};
use crate::metrics::{sample, scrape};
use crate::on_both_stores;
use crate::ws::WAIT;

on_both_stores!(
    the_upgrade_needs_a_valid_token,
    messages_reach_members_and_never_anyone_else,
    a_websocket_send_is_acked_with_the_message_and_pushed_to_the_others,
    fifty_rapid_sends_arrive_in_seq_order,
    one_sockets_pipelined_sends_take_seqs_and_acks_in_frame_order,
    typing_is_pushed_and_expires_with_a_stop,
    presence_follows_connections,
    read_receipts_are_pushed_when_the_watermark_moves,
    resume_replays_exactly_the_missed_messages_in_order,
    malformed_frames_get_errors_and_the_socket_stays_usable,
    a_non_member_follows_a_channel_only_after_join_conversation,
    membership_changes_are_pushed,
    a_sender_removed_after_sending_is_refused_on_the_next_send,
);

async fn the_upgrade_needs_a_valid_token(app: TestApp) {
    let alice = app.register("alice").await;
    let url = format!("{}/chat/ws", app.base.replace("http://", "ws://"));
    for bad in [url.clone(), format!("{url}?token=garbage")] {
        match tokio_tungstenite::connect_async(bad.as_str()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status().as_u16(), 401),
            other => panic!("expected a 401 refusal, got {:?}", other.map(|_| ())),
        }
    }
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{url}?token={}", alice.token)).await.expect("query token");
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(r#"{"event":"ping","ref":1}"#)).await.expect("send");
    use futures_util::StreamExt;
    let frame = ws.next().await.expect("frame").expect("ok");
    let frame: serde_json::Value = serde_json::from_str(frame.to_text().expect("text")).expect("json");
    assert_eq!(frame, json!({"event": "ack", "data": {}, "ref": 1}));
}

async fn messages_reach_members_and_never_anyone_else(app: TestApp) {
    let cast = app.cast().await;
    let carol = app.register("carol").await;
    app.add_to_workspace(&cast.alice, cast.workspace, &carol, "member").await;
    let group = app.group(&cast.alice, cast.workspace, "private", &[&cast.bob]).await;
    let channel = app.channel(&cast.alice, cast.workspace, "general", &[&cast.bob, &carol]).await;
    let mut bob = app.ws_in(&cast.bob, cast.workspace).await;
    let mut carol_ws = app.ws_in(&carol, cast.workspace).await;
    let mut mallory = app.ws_in(&cast.mallory, cast.elsewhere).await;
    // A stranger cannot even join the workspace.
    mallory.fails("join_workspace", json!({"workspaceId": cast.workspace}), "not_found").await;

    let secret = app.send(&cast.alice, group.id, "group only").await;
    let public = app.send(&cast.alice, channel.id, "for everyone").await;

    let first = bob.push("message:new").await;
    assert_eq!(first["message"]["id"], secret.id.to_string());
    assert_eq!(first["conversationId"], group.id.to_string());
    assert_eq!(bob.push("message:new").await["message"]["id"], public.id.to_string());
    // Carol's first message push is the channel's: the group message never reached her.
    assert_eq!(carol_ws.push("message:new").await["message"]["id"], public.id.to_string());
    mallory.silent(Duration::from_millis(300)).await;
}

async fn a_websocket_send_is_acked_with_the_message_and_pushed_to_the_others(app: TestApp) {
    let cast = app.cast().await;
    let group = app.group(&cast.alice, cast.workspace, "team", &[&cast.bob]).await;
    let mut alice = app.ws_in(&cast.alice, cast.workspace).await;
    let mut bob = app.ws_in(&cast.bob, cast.workspace).await;
    let body = json!({"conversationId": group.id, "content": "over the socket", "clientMsgId": "ws-1"});
    let acked = alice.ok("send_message", body.clone()).await;
    assert_eq!(acked["seq"], 1);
    assert_eq!(acked["content"], "over the socket");
    // The ack is exactly what REST returns for the message.
    let rest = app.messages(&cast.alice, group.id, "").await;
    assert_eq!(serde_json::to_value(&rest.items[0]).expect("json"), acked);
    let pushed = bob.push("message:new").await;
    assert_eq!(pushed["message"], acked);
    // A retry with the same clientMsgId acks the original and pushes nothing new.
    assert_eq!(alice.ok("send_message", body).await, acked);
    let edited = alice.ok("edit_message", json!({"messageId": acked["id"], "content": "edited"})).await;
    assert_eq!(bob.push("message:edit").await["message"], edited);
    let reacted =
        bob.ok("add_reaction", json!({"messageId": acked["id"], "emoji": "🎉", "conversationId": group.id})).await;
    assert_eq!(alice.push("message:reaction").await["message"], reacted);
    // Ids of another conversation name nothing.
    let other = app.group(&cast.alice, cast.workspace, "other", &[]).await;
    alice.fails("delete_message", json!({"messageId": acked["id"], "conversationId": other.id}), "not_found").await;
    alice.ok("delete_message", json!({"messageId": acked["id"], "conversationId": group.id})).await;
    let deleted = bob.push("message:delete").await;
    assert_eq!(deleted, json!({"messageId": acked["id"], "conversationId": group.id}));
}

async fn fifty_rapid_sends_arrive_in_seq_order(app: TestApp) {
    let cast = app.cast().await;
    let channel = app.channel(&cast.alice, cast.workspace, "fast", &[&cast.bob]).await;
    let mut bob = app.ws_in(&cast.bob, cast.workspace).await;
    // Half over REST concurrently, half over a socket without waiting for acks.
    let mut alice = app.ws_in(&cast.alice, cast.workspace).await;
    for i in 0..25 {
        let frame = json!({"event": "send_message", "data": {"conversationId": channel.id, "content": format!("ws {i}")}, "ref": i});
        alice.send_raw(&frame.to_string()).await;
    }
    let path = format!("/chat/conversations/{}/messages", channel.id);
    let sends = (0..25).map(|i| app.post(&path, &cast.alice, json!({"content": format!("rest {i}")})));
    for reply in futures_util::future::join_all(sends).await {
        reply.assert_status(201);
    }
    let mut seqs = Vec::new();
    for _ in 0..50 {
        seqs.push(bob.push("message:new").await["message"]["seq"].as_i64().expect("seq"));
    }
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>(), "bob sees every message once, in seq order");
}

async fn one_sockets_pipelined_sends_take_seqs_and_acks_in_frame_order(app: TestApp) {
    let cast = app.cast().await;
    let channel = app.channel(&cast.alice, cast.workspace, "pipelined", &[&cast.bob]).await;
    let mut alice = app.ws_in(&cast.alice, cast.workspace).await;
    // 80 frames without waiting: more than the 64 a socket may have waiting for commits.
    for i in 0..80 {
        let frame = json!({"event": "send_message", "data": {"conversationId": channel.id, "content": format!("p{i}")}, "ref": format!("p{i}")});
        alice.send_raw(&frame.to_string()).await;
    }
    let mut acks = Vec::new();
    while acks.len() < 80 {
        let frame = alice.next_frame(Duration::from_secs(10)).await.expect("every send is answered");
        if frame["event"] == "ack" {
            acks.push(frame);
        } else {
            assert_eq!(frame["event"], "message:new", "{frame}");
        }
    }
    for (i, ack) in acks.iter().enumerate() {
        assert_eq!(ack["ref"], format!("p{i}"), "acks come in frame order");
        assert_eq!(ack["data"]["content"], format!("p{i}"));
        assert_eq!(ack["data"]["seq"], i + 1, "seqs follow the frames' order");
    }
}

async fn typing_is_pushed_and_expires_with_a_stop(app: TestApp) {
    let cast = app.cast().await;
    let group = app.group(&cast.alice, cast.workspace, "typing", &[&cast.bob]).await;
    let mut alice = app.ws_in(&cast.alice, cast.workspace).await;
    let mut bob = app.ws_in(&cast.bob, cast.workspace).await;
    alice.ok("typing_start", json!({"conversationId": group.id})).await;
    let start = bob.push("typing:start").await;
    assert_eq!(start, json!({"userId": cast.alice.id, "conversationId": group.id}));
    let started = std::time::Instant::now();
    // No renewal: it lapses after 6 s with a typing:stop.
    let stop = bob.push_where("typing:stop", Duration::from_secs(9), |_| true).await;
    assert_eq!(stop, json!({"userId": cast.alice.id, "conversationId": group.id}));
    assert!(started.elapsed() >= Duration::from_secs(5), "expired too early: {:?}", started.elapsed());
    // An explicit stop is pushed at once; the typer never hears their own indicator.
    alice.ok("typing_start", json!({"conversationId": group.id})).await;
    bob.push("typing:start").await;
    alice.ok("typing_stop", json!({"conversationId": group.id})).await;
    bob.push("typing:stop").await;
    alice.ok("ping", json!({})).await;
    alice.silent(Duration::from_millis(200)).await;
    // Someone who may not post there cannot type there.
    let private = app.group(&cast.alice, cast.workspace, "no bob", &[]).await;
    bob.fails("typing_start", json!({"conversationId": private.id}), "not_found").await;
}

async fn presence_follows_connections(app: TestApp) {
    let cast = app.cast().await;
    let mut bob = app.ws_in(&cast.bob, cast.workspace).await;
    let mut alice = app.ws_in(&cast.alice, cast.workspace).await;
    let is_alice = |p: &serde_json::Value| p["userId"] == cast.alice.id.to_string();
    let online = bob.push_where("presence_update", WAIT, is_alice).await;
    assert_eq!(online["status"], "online");
    // A second socket of alice changes nothing; closing one of two keeps her online.
    let mut second = app.ws_in(&cast.alice, cast.workspace).await;
    second.ok("ping", json!({})).await;
    drop(second);
    alice.ok("update_presence", json!({"status": "busy", "workspaceId": cast.workspace})).await;
    let busy = bob.push_where("presence_update", WAIT, is_alice).await;
    assert_eq!(busy["status"], "busy", "the second socket closing did not make her offline first");
    drop(alice);
    let offline = bob.push_where("presence_update", WAIT, is_alice).await;
    assert_eq!(offline["status"], "offline");
    let listed = app.get(&format!("/chat/presence/{}", cast.workspace), &cast.bob).await;
    let record = listed.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|p| p["userId"] == cast.alice.id.to_string())
        .cloned()
        .expect("alice");
    assert_eq!(record["status"], "offline");
    assert_eq!(record["lastSeen"], offline["lastSeen"]);
}

async fn read_receipts_are_pushed_when_the_watermark_moves(app: TestApp) {
    let cast = app.cast().await;
    let group = app.group(&cast.alice, cast.workspace, "reads", &[&cast.bob]).await;
    let first = app.send(&cast.alice, group.id, "one").await;
    app.send(&cast.alice, group.id, "two").await;
    let mut alice = app.ws_in(&cast.alice, cast.workspace).await;
    let mut bob = app.ws_in(&cast.bob, cast.workspace).await;
    let acked = bob.ok("mark_as_read", json!({"conversationId": group.id, "messageId": first.id})).await;
    assert_eq!(acked, json!({"lastReadSeq": 1}));
    let read = alice.push("message:read").await;
    assert_eq!(read["userId"], cast.bob.id.to_string());
    assert_eq!(read["seq"], 1);
    assert_eq!(read["messageId"], first.id.to_string());
    assert!(read["readAt"].is_string());
    // Everything, then an older mark: the watermark does not move back, nothing is pushed.
    assert_eq!(bob.ok("mark_as_read", json!({"conversationId": group.id})).await, json!({"lastReadSeq": 2}));
    assert_eq!(alice.push("message:read").await["seq"], 2);
    assert_eq!(
        bob.ok("mark_as_read", json!({"conversationId": group.id, "messageId": first.id})).await,
        json!({"lastReadSeq": 2})
    );
    alice.silent(Duration::from_millis(300)).await;
}

async fn resume_replays_exactly_the_missed_messages_in_order(app: TestApp) {
    let cast = app.cast().await;
    let channel = app.channel(&cast.alice, cast.workspace, "busy", &[&cast.bob]).await;
    let mut bob = app.ws_in(&cast.bob, cast.workspace).await;
    for i in 1..=5 {
        app.send(&cast.alice, channel.id, &format!("m{i}")).await;
    }
    for seq in 1..=5 {
        assert_eq!(bob.push("message:new").await["message"]["seq"], seq);
    }
    drop(bob);
    // A gap of 1,000 messages while bob is away (one is edited, one deleted meanwhile).
    let path = format!("/chat/conversations/{}/messages", channel.id);
    let mut edited = None;
    for batch in 0..20 {
        let sends =
            (0..50).map(|i| app.post(&path, &cast.alice, json!({"content": format!("missed {}", batch * 50 + i)})));
        for reply in futures_util::future::join_all(sends).await {
            reply.assert_status(201);
            edited.get_or_insert_with(|| reply.json::<chat_protocol::Message>());
        }
    }
    let edited = edited.expect("a message");
    app.put(&format!("/chat/messages/{}", edited.id), &cast.alice, json!({"content": "edited while away"}))
        .await
        .assert_status(200);

    let mut bob = app.ws_in(&cast.bob, cast.workspace).await;
    let frame = bob.request("resume", json!({"conversations": {channel.id.to_string(): 5}})).await;
    // The replay comes before the ack: every missed message, once, in seq order.
    let mut replayed = Vec::new();
    loop {
        let next = bob.next_frame(WAIT).await.expect("replayed frame");
        if next["event"] == "message:new" {
            replayed.push(next["data"]["message"].clone());
        } else {
            panic!("unexpected {next}");
        }
        if replayed.len() == 1000 {
            break;
        }
    }
    assert_eq!(frame["event"], "ack", "{frame}");
    assert_eq!(frame["data"]["replayed"][channel.id.to_string()], 1000);
    let seqs: Vec<i64> = replayed.iter().map(|m| m["seq"].as_i64().expect("seq")).collect();
    assert_eq!(seqs, (6..=1005).collect::<Vec<_>>());
    let current = replayed.iter().find(|m| m["id"] == edited.id.to_string()).expect("edited message replayed");
    assert_eq!(current["content"], "edited while away", "replayed in its current state");
    // Nothing more, and the socket is live.
    app.send(&cast.alice, channel.id, "after").await;
    assert_eq!(bob.push("message:new").await["message"]["seq"], 1006);
    // Resuming a conversation one may not read answers not_found and replays nothing.
    let private = app.group(&cast.alice, cast.workspace, "private", &[]).await;
    bob.fails("resume", json!({"conversations": {private.id.to_string(): 0}}), "not_found").await;
}

async fn malformed_frames_get_errors_and_the_socket_stays_usable(app: TestApp) {
    let cast = app.cast().await;
    let mut ws = app.ws_in(&cast.alice, cast.workspace).await;
    ws.send_raw("this is not json").await;
    let error = ws.next_frame(WAIT).await.expect("error frame");
    assert_eq!(error["event"], "error");
    assert_eq!(error["data"]["code"], "bad_request");
    ws.fails("no_such_event", json!({}), "bad_request").await;
    ws.fails("send_message", json!({"conversationId": "not-a-uuid", "content": "x"}), "validation_failed").await;
    ws.fails(
        "send_message",
        json!({"conversationId": uuid::Uuid::new_v4(), "content": "x", "sneaky": 1}),
        "bad_request",
    )
    .await;
    ws.fails("send_message", json!({"conversationId": uuid::Uuid::new_v4(), "content": "x"}), "not_found").await;
    let channel = app.channel(&cast.alice, cast.workspace, "limits", &[]).await;
    ws.fails("send_message", json!({"conversationId": channel.id, "content": "x".repeat(4001)}), "payload_too_large")
        .await;
    assert_eq!(ws.ok("ping", json!({})).await, json!({}));
}

async fn a_non_member_follows_a_channel_only_after_join_conversation(app: TestApp) {
    let cast = app.cast().await;
    let channel = app.channel(&cast.alice, cast.workspace, "open", &[]).await;
    let group = app.group(&cast.alice, cast.workspace, "closed", &[]).await;
    let mut bob = app.ws_in(&cast.bob, cast.workspace).await;
    app.send(&cast.alice, channel.id, "before following").await;
    bob.ok("ping", json!({})).await;
    bob.silent(Duration::from_millis(300)).await;
    let conversation = bob.ok("join_conversation", json!({"conversationId": channel.id})).await;
    assert_eq!(conversation["id"], channel.id.to_string());
    bob.fails("join_conversation", json!({"conversationId": group.id}), "not_found").await;
    app.send(&cast.alice, channel.id, "while following").await;
    assert_eq!(bob.push("message:new").await["message"]["content"], "while following");
    bob.ok("leave_conversation", json!({"conversationId": channel.id})).await;
    app.send(&cast.alice, channel.id, "after leaving").await;
    bob.silent(Duration::from_millis(300)).await;
}

async fn membership_changes_are_pushed(app: TestApp) {
    let cast = app.cast().await;
    let carol = app.register("carol").await;
    app.add_to_workspace(&cast.alice, cast.workspace, &carol, "member").await;
    let mut bob = app.ws_in(&cast.bob, cast.workspace).await;
    let mut carol_ws = app.ws_in(&carol, cast.workspace).await;
    let group = app.group(&cast.alice, cast.workspace, "team", &[&cast.bob]).await;
    assert_eq!(bob.push("conversation:new").await["conversation"]["id"], group.id.to_string());
    app.post(&format!("/chat/conversations/{}/members", group.id), &cast.alice, json!({"userId": carol.id}))
        .await
        .assert_status(201);
    assert_eq!(bob.push("member:joined").await, json!({"userId": carol.id, "conversationId": group.id}));
    assert_eq!(carol_ws.push("conversation:new").await["conversation"]["id"], group.id.to_string());
    // Carol now receives the group's messages.
    app.send(&cast.alice, group.id, "welcome").await;
    assert_eq!(carol_ws.push("message:new").await["message"]["content"], "welcome");
    app.put(&format!("/chat/conversations/{}", group.id), &cast.alice, json!({"name": "renamed"}))
        .await
        .assert_status(200);
    let updated = bob.push("conversation:updated").await;
    assert_eq!(updated, json!({"conversationId": group.id, "updates": {"name": "renamed"}}));
    app.delete(&format!("/chat/conversations/{}/members/{}", group.id, carol.id), &carol).await.assert_status(204);
    assert_eq!(carol_ws.push("member:left").await, json!({"userId": carol.id, "conversationId": group.id}));
    assert_eq!(bob.push("member:left").await, json!({"userId": carol.id, "conversationId": group.id}));
    app.send(&cast.alice, group.id, "after carol left").await;
    assert_eq!(bob.push("message:new").await["message"]["content"], "after carol left");
    carol_ws.silent(Duration::from_millis(300)).await;
}

/// The server remembers a member's view for their next send and the store checks the
/// membership again in the insert: removal from a conversation, or from the workspace, still
/// takes effect on the very next send — over the socket or REST — which gets SPEC's error and
/// stores nothing.
async fn a_sender_removed_after_sending_is_refused_on_the_next_send(app: TestApp) {
    let cast = app.cast().await;
    let group = app.group(&cast.alice, cast.workspace, "team", &[&cast.bob]).await;
    let channel = app.channel(&cast.alice, cast.workspace, "general", &[&cast.bob]).await;
    let mut bob = app.ws_in(&cast.bob, cast.workspace).await;
    bob.ok("send_message", json!({"conversationId": group.id, "content": "one"})).await;
    bob.ok("send_message", json!({"conversationId": channel.id, "content": "two"})).await;
    app.send(&cast.bob, channel.id, "three").await;

    app.delete(&format!("/chat/conversations/{}/members/{}", group.id, cast.bob.id), &cast.alice)
        .await
        .assert_status(204);
    bob.fails("send_message", json!({"conversationId": group.id, "content": "after removal"}), "not_found").await;
    app.post(&format!("/chat/conversations/{}/messages", group.id), &cast.bob, json!({"content": "again"}))
        .await
        .assert_error(404, "not_found");

    app.delete(&format!("/workspaces/{}/members/{}", cast.workspace, cast.bob.id), &cast.alice)
        .await
        .assert_status(204);
    app.post(&format!("/chat/conversations/{}/messages", channel.id), &cast.bob, json!({"content": "gone"}))
        .await
        .assert_error(404, "not_found");

    let contents = |page: chat_protocol::Page<chat_protocol::Message>| {
        page.items.into_iter().map(|m| (m.seq, m.content)).collect::<Vec<_>>()
    };
    assert_eq!(contents(app.messages(&cast.alice, group.id, "").await), [(1, "one".to_owned())]);
    let mut channel_messages = contents(app.messages(&cast.alice, channel.id, "").await);
    channel_messages.sort();
    assert_eq!(channel_messages, [(1, "two".to_owned()), (2, "three".to_owned())]);
}

/// Rate limits need their own server settings, and run once (the limiter is not a store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_and_rate_limited_frames_without_dropping_the_socket() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("RATE_LIMIT_MESSAGES_PER_MINUTE", "3"), ("RATE_LIMIT_CONNECTIONS_PER_MINUTE", "2")],
    )
    .await
    .expect("sqlite");
    let cast = app.cast().await;
    let channel = app.channel(&cast.alice, cast.workspace, "limited", &[]).await;
    let mut ws = app.ws_in(&cast.alice, cast.workspace).await;
    for i in 0..3 {
        ws.ok("send_message", json!({"conversationId": channel.id, "content": format!("m{i}")})).await;
    }
    ws.fails("send_message", json!({"conversationId": channel.id, "content": "one too many"}), "rate_limited").await;
    assert_eq!(ws.ok("ping", json!({})).await, json!({}), "the socket stays open");
    let rest = app
        .post(&format!("/chat/conversations/{}/messages", channel.id), &cast.alice, json!({"content": "rest"}))
        .await;
    rest.assert_error(429, "rate_limited");
    assert_eq!(app.messages(&cast.alice, channel.id, "").await.items.len(), 3, "nothing refused was stored");
    let retry = app
        .client
        .post(format!("{}/chat/conversations/{}/messages", app.base, channel.id))
        .bearer_auth(&cast.alice.token)
        .json(&json!({"content": "again"}))
        .send()
        .await
        .expect("sent");
    let seconds: u64 = retry.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=20).contains(&seconds), "Retry-After {seconds}");
    // Connections per IP: the first socket counted; one more is allowed, then 429.
    let _second = app.ws(&cast.alice).await;
    let url = format!("{}/chat/ws?token={}", app.base.replace("http://", "ws://"), cast.alice.token);
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status().as_u16(), 429),
        other => panic!("expected 429, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_is_refused_before_the_upgrade() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("CORS_ORIGIN", "https://chat.example")]).await.expect("sqlite");
    let alice = app.register("alice").await;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}/chat/ws?token={}", app.base.replace("http://", "ws://"), alice.token);
    let mut request = url.as_str().into_client_request().expect("request");
    request.headers_mut().insert("origin", "https://evil.example".parse().expect("header"));
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status().as_u16(), 403),
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    let mut request = url.as_str().into_client_request().expect("request");
    request.headers_mut().insert("origin", "https://chat.example".parse().expect("header"));
    tokio_tungstenite::connect_async(request).await.expect("the configured origin connects");
}

/// Every socket is pinged each heartbeat; one that answers (a pong or any frame) stays open
/// however long it has nothing to say, one silent past the idle timeout is closed (1000).
#[tokio::test]
async fn a_socket_silent_past_the_idle_timeout_is_closed_and_one_answering_pings_is_not() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("WS_HEARTBEAT_SECONDS", "1"), ("WS_IDLE_TIMEOUT_SECONDS", "2")])
        .await
        .expect("sqlite");
    let cast = app.cast().await;
    let mut answering = app.ws_in(&cast.alice, cast.workspace).await;
    let mut silent = app.ws_in(&cast.bob, cast.workspace).await;
    // Past the idle timeout, reading (and so answering pings) all along.
    let pings = answering.pings(Duration::from_millis(3500)).await;
    assert!(pings >= 2, "{pings} pings in 3.5 s at one a second");
    assert_eq!(answering.ok("ping", json!({})).await, json!({}), "the answering socket is open");
    // The other read nothing meanwhile, so it answered no ping: closed, and told why.
    assert_eq!(silent.closed(WAIT).await, Some(1000));
}

/// A socket that stops reading is closed; the server's queue for it stays bounded, and
/// everyone else keeps receiving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_disconnected_while_others_keep_receiving() {
    // The reading socket gets slack for several batches (64 queued pushes); the stalled one
    // overflows once its TCP buffers are full.
    let app = TestApp::spawn_with(Backend::Sqlite, &[("WS_QUEUE_CAPACITY", "64"), ("MAX_MESSAGE_LENGTH", "60000")])
        .await
        .expect("sqlite");
    let cast = app.cast().await;
    let channel = app.channel(&cast.alice, cast.workspace, "firehose", &[&cast.bob]).await;
    let mut stalled = app.ws_in(&cast.bob, cast.workspace).await;
    let carol = app.register("carol").await;
    app.add_to_workspace(&cast.alice, cast.workspace, &carol, "member").await;
    app.post(&format!("/chat/conversations/{}/members", channel.id), &carol, json!({"userId": carol.id}))
        .await
        .assert_status(201);
    let mut reader = app.ws_in(&carol, cast.workspace).await;
    // 50 KB messages: the stalled socket's TCP buffers and its bounded queue fill quickly.
    let big = "x".repeat(50_000);
    let total = 400;
    let reading = tokio::spawn(async move {
        let mut seqs = Vec::new();
        while seqs.len() < total {
            let pushed = reader.push("message:new").await;
            seqs.push(pushed["message"]["seq"].as_i64().expect("seq"));
        }
        seqs
    });
    let path = format!("/chat/conversations/{}/messages", channel.id);
    for batch in 0..(total / 20) {
        let sends = (0..20).map(|i| app.post(&path, &cast.alice, json!({"content": format!("{batch}-{i} {big}")})));
        for reply in futures_util::future::join_all(sends).await {
            reply.assert_status(201);
        }
        // The server's queues never hold more than their capacity (64) per socket, whatever
        // the stalled socket does.
        let depth = sample(&scrape(&app).await, "chat_ws_queue_depth").expect("queue depth");
        assert!(depth <= 2.0 * 64.0, "queued pushes {depth}");
    }
    let seqs = tokio::time::timeout(Duration::from_secs(30), reading).await.expect("reader finished").expect("reader");
    assert_eq!(seqs, (1..=total as i64).collect::<Vec<_>>(), "the reading socket got everything, in order");
    // The stalled socket was cut off: draining it ends in a close, far short of every message.
    let mut drained = 0;
    let code = loop {
        match stalled.next_frame(Duration::from_secs(5)).await {
            Some(frame) if frame["event"] == "message:new" => drained += 1,
            Some(_) => {}
            None => break stalled.closed(Duration::from_secs(5)).await,
        }
    };
    assert!(drained < total, "a stalled socket was fed everything ({drained})");
    assert!(matches!(code, Some(1013) | Some(1006) | None), "close code {code:?}");
    let metrics = scrape(&app).await;
    assert!(sample(&metrics, "chat_ws_slow_consumer_disconnects_total").is_some_and(|n| n >= 1.0), "{metrics}");
}
