//! A raw WebSocket client for the gateway tests: JSON text frames exactly as a browser would
//! send them, so these tests pin the wire contract of SPEC.md §3 (the typed client is
//! `chat-client`).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::{TestApp, TestUser};

/// How long a test waits for a frame it expects.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

pub(crate) struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_ref: u64,
    /// Pushes read while waiting for an ack, in arrival order.
    backlog: std::collections::VecDeque<Value>,
}

impl TestApp {
    /// Opens a socket as `user` (token in the `Authorization` header).
    pub(crate) async fn ws(&self, user: &TestUser) -> Ws {
        let url = format!("{}/chat/ws", self.base.replace("http://", "ws://"));
        let mut request = url.into_client_request().expect("request");
        request
            .headers_mut()
            .insert("authorization", HeaderValue::from_str(&format!("Bearer {}", user.token)).expect("header"));
        let (stream, _) = tokio_tungstenite::connect_async(request).await.expect("upgrade");
        Ws { stream, next_ref: 0, backlog: Default::default() }
    }

    /// Opens a socket and joins `workspace`.
    pub(crate) async fn ws_in(&self, user: &TestUser, workspace: uuid::Uuid) -> Ws {
        let mut ws = self.ws(user).await;
        ws.ok("join_workspace", json!({"workspaceId": workspace})).await;
        ws
    }
}

impl Ws {
    pub(crate) async fn send_raw(&mut self, text: &str) {
        self.stream.send(Frame::text(text)).await.expect("send");
    }

    /// The next JSON text frame other than a `presence_update` (those come and go with every
    /// socket; tests that want them use [`Self::push`]); `None` on close or timeout.
    pub(crate) async fn next_frame(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let frame = match self.backlog.pop_front() {
                Some(frame) => frame,
                None => self.read(wait).await?,
            };
            if frame["event"] != "presence_update" {
                return Some(frame);
            }
        }
    }

    async fn read(&mut self, wait: Duration) -> Option<Value> {
        loop {
            match tokio::time::timeout(wait, self.stream.next()).await {
                Ok(Some(Ok(Frame::Text(text)))) => return Some(serde_json::from_str(&text).expect("json frame")),
                Ok(Some(Ok(Frame::Ping(_) | Frame::Pong(_)))) => {}
                _ => return None,
            }
        }
    }

    /// Sends `event` with a fresh `ref`; returns the ack or error frame answering it (pushes
    /// that arrive first are kept for [`Self::push`]).
    pub(crate) async fn request(&mut self, event: &str, data: Value) -> Value {
        self.next_ref += 1;
        let reference = format!("r{}", self.next_ref);
        self.send_raw(&json!({"event": event, "data": data, "ref": reference}).to_string()).await;
        loop {
            let frame = self.read(WAIT).await.unwrap_or_else(|| panic!("no answer to {event}"));
            if frame["ref"] == reference.as_str() {
                return frame;
            }
            self.backlog.push_back(frame);
        }
    }

    /// `request`, asserting an ack; returns its data.
    pub(crate) async fn ok(&mut self, event: &str, data: Value) -> Value {
        let frame = self.request(event, data).await;
        assert_eq!(frame["event"], "ack", "{event}: {frame}");
        frame["data"].clone()
    }

    /// `request`, asserting an error frame with `code`.
    pub(crate) async fn fails(&mut self, event: &str, data: Value, code: &str) {
        let frame = self.request(event, data).await;
        assert_eq!(frame["event"], "error", "{event}: {frame}");
        assert_eq!(frame["data"]["code"], code, "{event}: {frame}");
    }

    /// The data of the next push named `event`; other frames before it are skipped.
    pub(crate) async fn push(&mut self, event: &str) -> Value {
        self.push_where(event, WAIT, |_| true).await
    }

    /// The data of the next push named `event` matching `wanted`, waiting at most `wait` for
    /// each frame; other frames before it are skipped.
    pub(crate) async fn push_where(&mut self, event: &str, wait: Duration, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            let frame = match self.backlog.pop_front() {
                Some(frame) => frame,
                None => self.read(wait).await.unwrap_or_else(|| panic!("no {event} push")),
            };
            if frame["event"] == event && wanted(&frame["data"]) {
                return frame["data"].clone();
            }
        }
    }

    /// Asserts that no push arrives within `wait` (for "never delivered" checks, after a
    /// later event proved delivery has happened).
    pub(crate) async fn silent(&mut self, wait: Duration) {
        if let Some(frame) = self.next_frame(wait).await {
            panic!("unexpected frame {frame}");
        }
    }

    /// Reads for `wait`, answering every ping (tungstenite sends the pong with the next read);
    /// returns how many pings came. Text frames are kept for [`Self::push`].
    pub(crate) async fn pings(&mut self, wait: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + wait;
        let mut pings = 0;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(Ok(Frame::Ping(_)))) => pings += 1,
                Ok(Some(Ok(Frame::Text(text)))) => {
                    self.backlog.push_back(serde_json::from_str(&text).expect("json frame"));
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) => panic!("the socket closed after {pings} pings"),
                Err(_) => return pings,
            }
        }
    }

    /// Waits for the server to close the socket; returns the close code.
    pub(crate) async fn closed(&mut self, wait: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(Ok(Frame::Close(frame)))) => return frame.map(|f| f.code.into()),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) => return Some(1006),
                Err(_) => return None,
            }
        }
    }
}
