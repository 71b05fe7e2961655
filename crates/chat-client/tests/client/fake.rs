//! A scripted WebSocket peer on 127.0.0.1:0: each test plays the server's side of an
//! exchange frame by frame.

use std::time::Duration;

use chat_client::protocol::ws::ClientFrame;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use uuid::Uuid;

/// How long a scripted step waits for the client.
pub(crate) const STEP: Duration = Duration::from_secs(5);

/// What the server answers an upgrade with.
#[derive(Clone)]
pub(crate) enum Upgrade {
    Accept,
    Refuse { status: u16, body: String },
}

/// One accepted connection, and what its upgrade request carried.
pub(crate) struct Peer {
    pub(crate) ws: WebSocketStream<TcpStream>,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) authorization: Option<String>,
}

pub(crate) struct FakeServer {
    pub(crate) base: String,
    accepted: mpsc::UnboundedReceiver<Peer>,
}

impl FakeServer {
    pub(crate) async fn start() -> Self {
        Self::start_with(Upgrade::Accept).await
    }

    pub(crate) async fn start_with(upgrade: Upgrade) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, accepted) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                let upgrade = upgrade.clone();
                tokio::spawn(async move {
                    let mut seen = (String::new(), None, None);
                    // The shape of tungstenite's handshake callback, not ours to shrink.
                    #[allow(clippy::result_large_err)]
                    let callback = |request: &Request, response: Response| {
                        seen = (
                            request.uri().path().to_owned(),
                            request.uri().query().map(str::to_owned),
                            request.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned),
                        );
                        match upgrade {
                            Upgrade::Accept => Ok(response),
                            Upgrade::Refuse { status, body } => {
                                let refused: ErrorResponse = tokio_tungstenite::tungstenite::http::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Some(body))
                                    .expect("response");
                                Err(refused)
                            }
                        }
                    };
                    if let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await {
                        let (path, query, authorization) = seen;
                        let _ = tx.send(Peer { ws, path, query, authorization });
                    }
                });
            }
        });
        Self { base, accepted }
    }

    /// The next connection the client opens.
    pub(crate) async fn accept(&mut self) -> Peer {
        tokio::time::timeout(STEP, self.accepted.recv()).await.expect("client connects in time").expect("listener")
    }
}

impl Peer {
    /// The next frame from the client, skipping control frames.
    pub(crate) async fn frame(&mut self) -> ClientFrame {
        loop {
            match tokio::time::timeout(STEP, self.ws.next()).await.expect("client frame in time") {
                Some(Ok(WsMessage::Text(text))) => {
                    return serde_json::from_str(text.as_str()).expect("client frames are ClientFrame JSON");
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame, which must be `event`.
    pub(crate) async fn expect(&mut self, event: &str) -> ClientFrame {
        let frame = self.frame().await;
        assert_eq!(frame.event, event, "{frame:?}");
        frame
    }

    pub(crate) async fn send(&mut self, frame: Value) {
        self.ws.send(WsMessage::text(frame.to_string())).await.expect("server send");
    }

    pub(crate) async fn ack(&mut self, to: &ClientFrame, data: Value) {
        let reference = to.reference.clone().expect("acked frames carry a ref");
        self.send(json!({"event": "ack", "ref": reference, "data": data})).await;
    }

    pub(crate) async fn push(&mut self, event: &str, data: Value) {
        self.send(json!({"event": event, "data": data})).await;
    }
}

/// A message as the server serialises it.
pub(crate) fn message_json(conversation: Uuid, seq: i64, content: &str) -> Value {
    json!({
        "id": Uuid::new_v4(), "conversationId": conversation, "seq": seq, "senderId": Uuid::new_v4(),
        "clientMsgId": null, "type": "text", "content": content, "attachments": [], "metadata": {},
        "replyToId": null, "replyCount": 0, "reactions": {}, "isEncrypted": false,
        "editedAt": null, "deletedAt": null, "createdAt": "2025-01-01T00:00:00Z"
    })
}

/// `message:new` data.
pub(crate) fn message_new(conversation: Uuid, seq: i64) -> Value {
    json!({"message": message_json(conversation, seq, &format!("m{seq}")), "conversationId": conversation})
}
