//! `ResumingRealtime` against a scripted peer: re-join and resume after a drop, duplicates
//! dropped, gaps filled, idempotent sends retried.

use std::collections::BTreeMap;
use std::time::Duration;

use chat_client::protocol::ws::SendMessage;
use chat_client::{ChatClient, ClientError, ConnectionState, Push, RealtimeOptions, ResumeOptions, ResumingRealtime};
use serde_json::json;
use uuid::Uuid;

use crate::fake::{FakeServer, Peer, STEP, message_json, message_new};

fn options() -> ResumeOptions {
    ResumeOptions::default()
        .seed_from_rest(false)
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .realtime(RealtimeOptions::default().request_timeout(STEP))
}

async fn connect(server: &mut FakeServer) -> (ResumingRealtime, Peer) {
    let client = ChatClient::new(server.base.clone()).with_token("t");
    let realtime = client.connect_resuming_with(options()).await.expect("connect");
    let peer = server.accept().await;
    (realtime, peer)
}

/// The seqs of the next `n` pushes, which must all be `message:new` of `conversation`.
async fn next_seqs(realtime: &mut ResumingRealtime, conversation: Uuid, n: usize) -> Vec<i64> {
    let mut seqs = Vec::new();
    while seqs.len() < n {
        match realtime.next_push_within(STEP).await {
            Some(Push::MessageNew(new)) if new.conversation_id == conversation => seqs.push(new.message.seq),
            other => panic!("expected message:new of {conversation}, got {other:?} after {seqs:?}"),
        }
    }
    seqs
}

async fn wait_for_state(realtime: &ResumingRealtime, wanted: impl Fn(&ConnectionState) -> bool) {
    let mut states = realtime.states();
    tokio::time::timeout(STEP, states.wait_for(|s| wanted(s))).await.expect("state reached in time").expect("state");
}

#[tokio::test]
async fn after_a_drop_it_rejoins_resumes_from_the_last_seq_and_drops_duplicates() {
    let mut server = FakeServer::start().await;
    let (mut realtime, mut peer) = connect(&mut server).await;
    let (workspace, conversation) = (Uuid::new_v4(), Uuid::new_v4());
    wait_for_state(&realtime, |s| *s == ConnectionState::Connected { generation: 1 }).await;

    let join = tokio::spawn({
        let handle = realtime.clone();
        async move { handle.join_workspace(workspace).await }
    });
    let frame = peer.expect("join_workspace").await;
    peer.ack(&frame, json!({})).await;
    tokio::time::timeout(STEP, join).await.expect("in time").expect("task").expect("joined");
    for seq in 1..=2 {
        peer.push("message:new", message_new(conversation, seq)).await;
    }
    assert_eq!(next_seqs(&mut realtime, conversation, 2).await, vec![1, 2]);
    assert_eq!(realtime.last_seq(conversation), Some(2));

    // The network drops the connection (no close frame).
    drop(peer);
    let mut peer = server.accept().await;
    let rejoin = peer.expect("join_workspace").await;
    assert_eq!(rejoin.data, json!({"workspaceId": workspace}));
    peer.ack(&rejoin, json!({})).await;
    let resume = peer.expect("resume").await;
    assert_eq!(resume.data, json!({"conversations": {conversation.to_string(): 2}}));
    // The replay overlaps what was seen (2), then brings what was missed.
    for seq in 2..=4 {
        peer.push("message:new", message_new(conversation, seq)).await;
    }
    peer.ack(&resume, json!({"replayed": {conversation.to_string(): 3}})).await;
    wait_for_state(&realtime, |s| *s == ConnectionState::Connected { generation: 2 }).await;
    // A live duplicate, then the next message.
    peer.push("message:new", message_new(conversation, 4)).await;
    peer.push("message:new", message_new(conversation, 5)).await;

    assert_eq!(next_seqs(&mut realtime, conversation, 3).await, vec![3, 4, 5]);
    assert!(realtime.next_push_within(Duration::from_millis(100)).await.is_none(), "nothing delivered twice");
}

#[tokio::test]
async fn a_gap_in_live_pushes_is_filled_by_a_resume_in_order() {
    let mut server = FakeServer::start().await;
    let (mut realtime, mut peer) = connect(&mut server).await;
    let conversation = Uuid::new_v4();

    peer.push("message:new", message_new(conversation, 1)).await;
    peer.push("message:new", message_new(conversation, 4)).await;
    let resume = peer.expect("resume").await;
    assert_eq!(resume.data, json!({"conversations": {conversation.to_string(): 1}}));
    for seq in 2..=4 {
        peer.push("message:new", message_new(conversation, seq)).await;
    }
    peer.ack(&resume, json!({"replayed": {conversation.to_string(): 3}})).await;

    assert_eq!(next_seqs(&mut realtime, conversation, 4).await, vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn a_conversation_new_push_starts_tracking_at_its_last_seq() {
    let mut server = FakeServer::start().await;
    let (mut realtime, mut peer) = connect(&mut server).await;
    let conversation = Uuid::new_v4();
    let created = json!({
        "id": conversation, "workspaceId": Uuid::new_v4(), "type": "GROUP", "name": "g", "description": null,
        "icon": null, "documentId": null, "isEncrypted": false, "maxParticipants": 100, "createdById": Uuid::new_v4(),
        "lastSeq": 0, "createdAt": "2025-01-01T00:00:00Z", "updatedAt": "2025-01-01T00:00:00Z", "archivedAt": null
    });
    peer.push("conversation:new", json!({"conversation": created})).await;
    assert!(matches!(realtime.next_push_within(STEP).await, Some(Push::ConversationNew(_))));
    assert_eq!(realtime.last_seq(conversation), Some(0));

    // Seq 2 before seq 1 is a gap from 0, not a first sighting.
    peer.push("message:new", message_new(conversation, 2)).await;
    let resume = peer.expect("resume").await;
    assert_eq!(resume.data, json!({"conversations": {conversation.to_string(): 0}}));
}

#[tokio::test]
async fn a_send_with_a_client_msg_id_is_retried_on_the_next_connection() {
    let mut server = FakeServer::start().await;
    let (realtime, mut peer) = connect(&mut server).await;
    let conversation = Uuid::new_v4();
    wait_for_state(&realtime, |s| matches!(s, ConnectionState::Connected { .. })).await;

    let send = tokio::spawn({
        let handle = realtime.clone();
        async move {
            let message = SendMessage {
                conversation_id: conversation,
                content: "once".to_owned(),
                reply_to_id: None,
                client_msg_id: Some("m-1".to_owned()),
                kind: None,
                attachments: Vec::new(),
            };
            handle.send_message(&message).await
        }
    });
    let first = peer.expect("send_message").await;
    drop(peer); // lost before the ack
    let mut peer = server.accept().await;
    let retry = peer.expect("send_message").await;
    assert_eq!(retry.data, first.data, "the retry is the same frame, clientMsgId included");
    let mut acked = message_json(conversation, 1, "once");
    acked["clientMsgId"] = json!("m-1");
    peer.ack(&retry, acked).await;
    let message = tokio::time::timeout(STEP, send).await.expect("in time").expect("task").expect("sent");
    assert_eq!((message.seq, message.client_msg_id.as_deref()), (1, Some("m-1")));
}

#[tokio::test]
async fn a_send_without_a_client_msg_id_is_not_retried() {
    let mut server = FakeServer::start().await;
    let (realtime, mut peer) = connect(&mut server).await;
    wait_for_state(&realtime, |s| matches!(s, ConnectionState::Connected { .. })).await;

    let send = tokio::spawn({
        let handle = realtime.clone();
        async move {
            let message = SendMessage {
                conversation_id: Uuid::new_v4(),
                content: "maybe".to_owned(),
                reply_to_id: None,
                client_msg_id: None,
                kind: None,
                attachments: Vec::new(),
            };
            handle.send_message(&message).await
        }
    });
    peer.expect("send_message").await;
    drop(peer);
    let error = tokio::time::timeout(STEP, send).await.expect("in time").expect("task").expect_err("not retried");
    assert!(matches!(error, ClientError::Closed(_)), "{error:?}");
    // It reconnects all the same, and sends nothing on its own.
    let mut peer = server.accept().await;
    wait_for_state(&realtime, |s| *s == ConnectionState::Connected { generation: 2 }).await;
    let ping = tokio::spawn({
        let handle = realtime.clone();
        async move { handle.ping().await }
    });
    let frame = peer.expect("ping").await;
    peer.ack(&frame, json!({})).await;
    tokio::time::timeout(STEP, ping).await.expect("in time").expect("task").expect("pong");
}

#[tokio::test]
async fn the_reconnecting_state_exposes_the_close_code_and_close_ends_it_all() {
    let mut server = FakeServer::start().await;
    let (mut realtime, mut peer) = connect(&mut server).await;
    wait_for_state(&realtime, |s| *s == ConnectionState::Connected { generation: 1 }).await;
    realtime.track(Uuid::new_v4(), 7);
    let mut states = realtime.states();

    let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Policy,
        reason: "too slow".into(),
    };
    peer.ws.close(Some(frame)).await.expect("close");
    let seen = tokio::time::timeout(
        STEP,
        states.wait_for(|s| matches!(s, ConnectionState::Reconnecting { last_close: Some(_), .. })),
    )
    .await
    .expect("in time")
    .expect("state")
    .clone();
    let ConnectionState::Reconnecting { last_close: Some(info), .. } = seen else { unreachable!() };
    assert_eq!(info.code, Some(1008));

    let mut peer = server.accept().await;
    let resume = peer.expect("resume").await;
    assert_eq!(resume.data["conversations"].as_object().map(|m| m.len()), Some(1));
    peer.ack(&resume, json!({"replayed": BTreeMap::<String, u64>::new()})).await;
    wait_for_state(&realtime, |s| *s == ConnectionState::Connected { generation: 2 }).await;

    let closing = tokio::spawn({
        let handle = realtime.clone();
        async move { handle.close().await }
    });
    // Answer the close handshake.
    while let Ok(Some(Ok(_))) = tokio::time::timeout(STEP, futures_util::StreamExt::next(&mut peer.ws)).await {}
    tokio::time::timeout(STEP, closing).await.expect("in time").expect("task");
    assert!(matches!(realtime.state(), ConnectionState::Closed { .. }), "{:?}", realtime.state());
    assert_eq!(realtime.next_push_within(STEP).await, None, "pushes end once closed");
    assert!(realtime.ping().await.is_err());
}
