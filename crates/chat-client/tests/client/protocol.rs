//! `Realtime` against a scripted peer: the upgrade, frame encoding, ack routing by `ref`,
//! error frames, pushes, timeouts, pings and close codes.

use std::time::Duration;

use chat_client::protocol::ws::SendMessage;
use chat_client::{ChatClient, ClientError, Push, RealtimeOptions};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use uuid::Uuid;

use crate::fake::{FakeServer, STEP, Upgrade, message_json, message_new};

fn client(server: &FakeServer) -> ChatClient {
    ChatClient::new(server.base.clone()).with_token("token-123")
}

#[tokio::test]
async fn the_upgrade_carries_the_bearer_token_to_chat_ws() {
    let mut server = FakeServer::start().await;
    let _realtime = client(&server).connect_ws().await.expect("connect");
    let peer = server.accept().await;
    assert_eq!(peer.path, "/chat/ws");
    assert_eq!(peer.authorization.as_deref(), Some("Bearer token-123"));
    assert_eq!(peer.query, None);
}

#[tokio::test]
async fn the_token_can_travel_as_a_query_parameter() {
    let mut server = FakeServer::start().await;
    let client = ChatClient::new(server.base.clone()).with_token("a.b+c");
    let _realtime = client.connect_ws_with(RealtimeOptions::default().token_in_query(true)).await.expect("connect");
    let peer = server.accept().await;
    assert_eq!(peer.query.as_deref(), Some("token=a.b%2Bc"));
    assert_eq!(peer.authorization, None);
}

#[tokio::test]
async fn a_refused_upgrade_is_an_api_error_with_the_spec_code() {
    let body = json!({"error": {"code": "unauthorized", "message": "bad token", "requestId": "req-9"}}).to_string();
    let server = FakeServer::start_with(Upgrade::Refuse { status: 401, body }).await;
    let error = client(&server).connect_ws().await.expect_err("refused");
    assert_eq!(error.status(), Some(401), "{error:?}");
    if let ClientError::Api { code, .. } = &error {
        assert_eq!(code, "unauthorized");
    }
}

#[tokio::test]
async fn a_request_is_framed_with_a_ref_and_resolved_by_its_ack() {
    let mut server = FakeServer::start().await;
    let realtime = client(&server).connect_ws().await.expect("connect");
    let mut peer = server.accept().await;
    let workspace = Uuid::new_v4();

    let request = tokio::spawn({
        let handle = realtime.handle();
        async move { handle.join_workspace(workspace).await }
    });
    let frame = peer.expect("join_workspace").await;
    assert_eq!(frame.data, json!({"workspaceId": workspace}));
    assert!(matches!(&frame.reference, Some(Value::String(r)) if !r.is_empty()), "{frame:?}");
    peer.ack(&frame, json!({"joined": workspace})).await;

    let ack = tokio::time::timeout(STEP, request).await.expect("in time").expect("task").expect("acked");
    assert_eq!(ack, json!({"joined": workspace}));
}

#[tokio::test]
async fn answers_reach_their_requester_whatever_their_order() {
    let mut server = FakeServer::start().await;
    let realtime = client(&server).connect_ws().await.expect("connect");
    let mut peer = server.accept().await;

    let handle = realtime.handle();
    let first = tokio::spawn({
        let handle = handle.clone();
        async move { handle.request("custom_one", json!({"n": 1})).await }
    });
    let a = peer.expect("custom_one").await;
    let second = tokio::spawn({
        let handle = handle.clone();
        async move { handle.request("custom_two", json!({"n": 2})).await }
    });
    let b = peer.expect("custom_two").await;
    assert_ne!(a.reference, b.reference, "every request gets its own ref");

    // Answered in reverse order, with a push in between.
    peer.ack(&b, json!("for two")).await;
    peer.push("typing:start", json!({"userId": Uuid::new_v4(), "conversationId": Uuid::new_v4()})).await;
    peer.ack(&a, json!("for one")).await;
    assert_eq!(
        tokio::time::timeout(STEP, second).await.expect("in time").expect("task").expect("ack"),
        json!("for two")
    );
    assert_eq!(
        tokio::time::timeout(STEP, first).await.expect("in time").expect("task").expect("ack"),
        json!("for one")
    );
}

#[tokio::test]
async fn an_error_frame_fails_its_request_with_the_code() {
    let mut server = FakeServer::start().await;
    let realtime = client(&server).connect_ws().await.expect("connect");
    let mut peer = server.accept().await;

    let request = tokio::spawn({
        let handle = realtime.handle();
        async move { handle.join_conversation(Uuid::new_v4()).await }
    });
    let frame = peer.expect("join_conversation").await;
    let reference = frame.reference.clone().expect("ref");
    peer.send(
        json!({"event": "error", "ref": reference, "data": {"code": "not_found", "message": "no such conversation"}}),
    )
    .await;
    let error = tokio::time::timeout(STEP, request).await.expect("in time").expect("task").expect_err("rejected");
    match error {
        ClientError::Rejected { event, code, message } => {
            assert_eq!(
                (event.as_str(), code.as_str(), message.as_str()),
                ("join_conversation", "not_found", "no such conversation")
            );
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn send_message_sends_the_spec_payload_and_returns_the_acked_message() {
    let mut server = FakeServer::start().await;
    let realtime = client(&server).connect_ws().await.expect("connect");
    let mut peer = server.accept().await;
    let conversation = Uuid::new_v4();

    let request = tokio::spawn({
        let handle = realtime.handle();
        async move {
            let message = SendMessage {
                conversation_id: conversation,
                content: "hi".to_owned(),
                reply_to_id: None,
                client_msg_id: Some("c-1".to_owned()),
                kind: None,
                attachments: Vec::new(),
            };
            handle.send_message(&message).await
        }
    });
    let frame = peer.expect("send_message").await;
    assert_eq!(frame.data, json!({"conversationId": conversation, "content": "hi", "clientMsgId": "c-1"}));
    peer.ack(&frame, message_json(conversation, 4, "hi")).await;
    let message = tokio::time::timeout(STEP, request).await.expect("in time").expect("task").expect("acked");
    assert_eq!((message.conversation_id, message.seq, message.content.as_str()), (conversation, 4, "hi"));
}

#[tokio::test]
async fn pushes_are_decoded_and_delivered_in_arrival_order() {
    let mut server = FakeServer::start().await;
    let mut realtime = client(&server).connect_ws().await.expect("connect");
    let mut peer = server.accept().await;
    let conversation = Uuid::new_v4();
    let user = Uuid::new_v4();

    peer.push("message:new", message_new(conversation, 1)).await;
    peer.push("typing:stop", json!({"userId": user, "conversationId": conversation})).await;
    peer.push("something:else", json!({"x": 1})).await;
    peer.send(json!({"event": "error", "data": {"code": "rate_limited", "message": "slow down"}})).await;

    let Some(Push::MessageNew(new)) = realtime.next_push_within(STEP).await else { panic!("message:new first") };
    assert_eq!((new.conversation_id, new.message.seq), (conversation, 1));
    assert!(matches!(realtime.next_push_within(STEP).await, Some(Push::TypingStop(t)) if t.user_id == user));
    assert_eq!(
        realtime.next_push_within(STEP).await,
        Some(Push::Unknown { event: "something:else".to_owned(), data: json!({"x": 1}) })
    );
    assert!(matches!(realtime.next_push_within(STEP).await, Some(Push::Error(e)) if e.code == "rate_limited"));
}

#[tokio::test]
async fn an_unanswered_request_times_out_and_a_late_ack_is_ignored() {
    let mut server = FakeServer::start().await;
    let options = RealtimeOptions::default().request_timeout(Duration::from_millis(300));
    let mut realtime = client(&server).connect_ws_with(options).await.expect("connect");
    let mut peer = server.accept().await;

    let request = tokio::spawn({
        let handle = realtime.handle();
        async move { handle.request("slow", json!({})).await }
    });
    let slow = peer.expect("slow").await;
    let error = tokio::time::timeout(STEP, request).await.expect("in time").expect("task").expect_err("times out");
    assert!(matches!(&error, ClientError::Timeout { event, .. } if event == "slow"), "{error:?}");

    // The late ack goes nowhere; the connection still works.
    peer.ack(&slow, json!("late")).await;
    let ping = tokio::spawn({
        let handle = realtime.handle();
        async move { handle.ping().await }
    });
    let frame = peer.expect("ping").await;
    peer.ack(&frame, json!({})).await;
    tokio::time::timeout(STEP, ping).await.expect("in time").expect("task").expect("pong");
    assert!(realtime.next_push_within(Duration::from_millis(50)).await.is_none(), "a stray ack is not a push");
}

#[tokio::test]
async fn websocket_pings_are_answered_with_pongs() {
    let mut server = FakeServer::start().await;
    let _realtime = client(&server).connect_ws().await.expect("connect");
    let mut peer = server.accept().await;
    peer.ws.send(WsMessage::Ping(b"heartbeat".to_vec().into())).await.expect("ping");
    let answer = tokio::time::timeout(STEP, peer.ws.next()).await.expect("in time");
    assert!(matches!(&answer, Some(Ok(WsMessage::Pong(payload))) if payload.as_ref() == b"heartbeat"), "{answer:?}");
}

#[tokio::test]
async fn a_server_close_exposes_its_code_and_fails_waiting_requests() {
    let mut server = FakeServer::start().await;
    let mut realtime = client(&server).connect_ws().await.expect("connect");
    let mut peer = server.accept().await;

    let request = tokio::spawn({
        let handle = realtime.handle();
        async move { handle.typing_start(Uuid::new_v4()).await }
    });
    peer.expect("typing_start").await;
    let frame = CloseFrame { code: CloseCode::Again, reason: "slow consumer".into() };
    peer.ws.close(Some(frame)).await.expect("close");

    let error = tokio::time::timeout(STEP, request).await.expect("in time").expect("task").expect_err("closed");
    assert!(matches!(&error, ClientError::Closed(info) if info.code == Some(1013)), "{error:?}");
    let info = tokio::time::timeout(STEP, realtime.closed()).await.expect("in time");
    assert_eq!((info.code, info.reason.as_str()), (Some(1013), "slow consumer"));
    assert_eq!(realtime.close_info(), Some(info));
    assert_eq!(realtime.next_push_within(STEP).await, None, "the push stream ends with the connection");
    let after = realtime.ping().await.expect_err("closed");
    assert!(matches!(after, ClientError::Closed(_)), "{after:?}");
}

#[tokio::test]
async fn closing_from_the_client_sends_a_normal_close_frame() {
    let mut server = FakeServer::start().await;
    let realtime = client(&server).connect_ws().await.expect("connect");
    let mut peer = server.accept().await;

    let closing = tokio::spawn({
        let handle = realtime.handle();
        async move { handle.close().await }
    });
    let frame = tokio::time::timeout(STEP, peer.ws.next()).await.expect("in time");
    assert!(matches!(&frame, Some(Ok(WsMessage::Close(Some(f)))) if f.code == CloseCode::Normal), "{frame:?}");
    // tungstenite answers the close; the client sees the handshake complete.
    while let Some(Ok(_)) = tokio::time::timeout(STEP, peer.ws.next()).await.expect("in time") {}
    let info = tokio::time::timeout(STEP, closing).await.expect("in time").expect("task");
    assert_eq!(info.code, Some(1000));
}

#[tokio::test]
async fn a_reader_that_dropped_the_handle_keeps_the_connection_until_it_drops_the_pushes() {
    let mut server = FakeServer::start().await;
    let (handle, mut pushes) = client(&server).connect_ws().await.expect("connect").split();
    let mut peer = server.accept().await;
    drop(handle);

    peer.push("typing:start", json!({"userId": Uuid::new_v4(), "conversationId": Uuid::new_v4()})).await;
    let push = tokio::time::timeout(STEP, pushes.next()).await.expect("in time");
    assert!(matches!(push, Some(Push::TypingStart(_))), "{push:?}");

    drop(pushes);
    let frame = tokio::time::timeout(STEP, peer.ws.next()).await.expect("in time");
    assert!(matches!(&frame, Some(Ok(WsMessage::Close(Some(f)))) if f.code == CloseCode::Normal), "{frame:?}");
}
