//! The WebSocket side (SPEC.md §3): [`Realtime`], one connection to `GET /chat/ws`.
//!
//! One background task owns the socket. It writes the frames requesters hand it, giving each a
//! fresh `ref`; it reads every frame, routes `ack` and `error` frames by `ref` to the requester
//! waiting on a oneshot channel, forwards pushes (decoded as [`Push`]) into a bounded channel,
//! and answers WebSocket pings. When the socket closes it fails the waiting requesters with
//! [`ClientError::Closed`] and records the [`CloseInfo`].

mod push;
pub(crate) mod resume;

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use chat_protocol::ws::{
    AddReaction, ClientFrame, ConversationRef, DeleteMessage, EditMessage, MarkAsRead, Resume, ResumeAck, SendMessage,
    ServerFrame, UpdatePresence, WorkspaceRef, client, server,
};
use chat_protocol::{Message, Presence, ReadResponse};
use futures_util::{SinkExt, Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use uuid::Uuid;

pub use self::push::Push;
use crate::error::{ClientError, CloseInfo};
use crate::rest::ChatClient;

/// How a [`Realtime`] connection behaves.
#[derive(Clone, Debug)]
pub struct RealtimeOptions {
    request_timeout: Duration,
    push_buffer: usize,
    token_in_query: bool,
}

impl Default for RealtimeOptions {
    fn default() -> Self {
        Self { request_timeout: Duration::from_secs(10), push_buffer: 1024, token_in_query: false }
    }
}

impl RealtimeOptions {
    /// How long a request waits for its ack or error frame (default 10 s).
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How many pushes wait for the consumer before the socket stops being read (default
    /// 1024). A consumer that falls behind stalls its connection; the server then drops it as
    /// a slow consumer (close 1008/1013), and a [`ResumingRealtime`](crate::ResumingRealtime)
    /// resumes. At least 1.
    #[must_use]
    pub fn push_buffer(mut self, capacity: usize) -> Self {
        self.push_buffer = capacity.max(1);
        self
    }

    /// Send the access token as `?token=` instead of an `Authorization: Bearer` header (for
    /// environments that cannot set upgrade headers).
    #[must_use]
    pub fn token_in_query(mut self, yes: bool) -> Self {
        self.token_in_query = yes;
        self
    }

    /// The request timeout.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.request_timeout
    }
}

impl ChatClient {
    /// Opens `GET /chat/ws` with the current access token in an `Authorization: Bearer` header.
    ///
    /// # Errors
    /// `Api` 401 when the token is missing or refused (before the upgrade), `Api` 429 when
    /// connections are rate limited, `WebSocket` when the server cannot be reached.
    pub async fn connect_ws(&self) -> Result<Realtime, ClientError> {
        self.connect_ws_with(RealtimeOptions::default()).await
    }

    /// [`Self::connect_ws`] with options.
    ///
    /// # Errors
    /// As [`Self::connect_ws`].
    pub async fn connect_ws_with(&self, options: RealtimeOptions) -> Result<Realtime, ClientError> {
        let token = self.access_token();
        let mut url = ws_url(self.base_url());
        if let (true, Some(token)) = (options.token_in_query, token.as_deref()) {
            url.push_str("?token=");
            url.push_str(&percent_encode(token));
        }
        let mut request = url.into_client_request().map_err(ClientError::from)?;
        if let (false, Some(token)) = (options.token_in_query, token.as_deref()) {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|e| ClientError::from(tungstenite::Error::HttpFormat(e.into())))?;
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        let (socket, _response) = tokio_tungstenite::connect_async(request).await?;
        tracing::debug!(url = %self.base_url(), "websocket connected");
        Ok(Realtime::from_socket(socket, options))
    }
}

/// `http://h/p` → `ws://h/p/chat/ws` (and `https` → `wss`).
fn ws_url(base: &str) -> String {
    let rest = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    };
    format!("{rest}/chat/ws")
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------- the handle

/// Where an answer goes: the requester's event name and its oneshot.
type Waiting = (String, oneshot::Sender<Result<Value, ClientError>>);

enum Command {
    /// Send a frame with a fresh `ref` and answer `reply` with its ack or error.
    Request { event: String, data: Value, reply: oneshot::Sender<Result<Value, ClientError>> },
    /// Send a frame without a `ref` (no answer expected).
    Notify { event: String, data: Value, sent: oneshot::Sender<Result<(), ClientError>> },
    /// Close the connection.
    Close { code: u16, reason: String },
}

/// The request side of a connection: cheap to clone, usable from many tasks at once.
///
/// Every typed helper is [`request`](Self::request) with SPEC.md §3's event and payload, and
/// decodes the ack's `data` where SPEC.md fixes it (an ack carries what the REST twin
/// returns).
#[derive(Clone, Debug)]
pub struct RealtimeHandle {
    commands: mpsc::Sender<Command>,
    closed: watch::Receiver<Option<CloseInfo>>,
    timeout: Duration,
}

impl RealtimeHandle {
    /// Sends `{event, data, ref}` with a fresh `ref` and waits for the matching `ack` (its
    /// `data`) or `error` frame, at most the request timeout.
    ///
    /// # Errors
    /// [`ClientError::Rejected`] for an error frame, [`ClientError::Timeout`],
    /// [`ClientError::Closed`] when the connection ends first.
    pub async fn request(&self, event: &str, data: Value) -> Result<Value, ClientError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Request { event: event.to_owned(), data, reply };
        let exchange = async {
            self.commands.send(command).await.map_err(|_| self.closed_error())?;
            answer.await.map_err(|_| self.closed_error())?
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout { event: event.to_owned(), after: self.timeout })?
    }

    /// Sends `{event, data}` without a `ref`: the server answers nothing (fire and forget).
    ///
    /// # Errors
    /// [`ClientError::Closed`] when the connection is closed, [`ClientError::Timeout`] when
    /// the frame could not be handed to the socket in time.
    pub async fn notify(&self, event: &str, data: Value) -> Result<(), ClientError> {
        let (sent, done) = oneshot::channel();
        let command = Command::Notify { event: event.to_owned(), data, sent };
        let exchange = async {
            self.commands.send(command).await.map_err(|_| self.closed_error())?;
            done.await.map_err(|_| self.closed_error())?
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout { event: event.to_owned(), after: self.timeout })?
    }

    async fn typed<B: Serialize, T: DeserializeOwned>(&self, event: &str, body: &B) -> Result<T, ClientError> {
        let data = serde_json::to_value(body).map_err(|e| ClientError::decode(format!("{event} payload"), e))?;
        let ack = self.request(event, data).await?;
        serde_json::from_value(ack).map_err(|e| ClientError::decode(format!("ack of {event}"), e))
    }

    async fn unit<B: Serialize>(&self, event: &str, body: &B) -> Result<Value, ClientError> {
        let data = serde_json::to_value(body).map_err(|e| ClientError::decode(format!("{event} payload"), e))?;
        self.request(event, data).await
    }

    /// `join_workspace`: from the ack on, this connection receives the workspace's pushes.
    /// Returns the ack's data.
    ///
    /// # Errors
    /// `Rejected` `not_found` for a workspace the user is not in; as [`Self::request`].
    pub async fn join_workspace(&self, workspace: Uuid) -> Result<Value, ClientError> {
        self.unit(client::JOIN_WORKSPACE, &WorkspaceRef { workspace_id: workspace }).await
    }

    /// `join_conversation`: follow a conversation live (a CHANNEL or DOCUMENT the user is not a
    /// member of, too). Returns the ack's data.
    ///
    /// # Errors
    /// `Rejected` `not_found` for a conversation the user may not see; as [`Self::request`].
    pub async fn join_conversation(&self, conversation: Uuid) -> Result<Value, ClientError> {
        self.unit(client::JOIN_CONVERSATION, &ConversationRef { conversation_id: conversation }).await
    }

    /// `leave_conversation`: stop following a conversation joined with
    /// [`Self::join_conversation`]. Returns the ack's data.
    ///
    /// # Errors
    /// As [`Self::request`].
    pub async fn leave_conversation(&self, conversation: Uuid) -> Result<Value, ClientError> {
        self.unit(client::LEAVE_CONVERSATION, &ConversationRef { conversation_id: conversation }).await
    }

    /// `send_message`: returns the message (the ack is what REST's send returns). With a
    /// `clientMsgId`, a retry returns the original message.
    ///
    /// # Errors
    /// `Rejected` with REST's codes (`forbidden`, `conflict`, `payload_too_large`,
    /// `validation_failed`, `rate_limited` …); as [`Self::request`].
    pub async fn send_message(&self, message: &SendMessage) -> Result<Message, ClientError> {
        self.typed(client::SEND_MESSAGE, message).await
    }

    /// `send_message` of plain text to `conversation`.
    ///
    /// # Errors
    /// As [`Self::send_message`].
    pub async fn send_text(&self, conversation: Uuid, content: &str) -> Result<Message, ClientError> {
        self.send_message(&text_message(conversation, content, None)).await
    }

    /// `edit_message`: returns the edited message.
    ///
    /// # Errors
    /// `Rejected` `forbidden` for someone else's message, `conflict` once deleted.
    pub async fn edit_message(&self, message: Uuid, content: &str) -> Result<Message, ClientError> {
        self.typed(client::EDIT_MESSAGE, &EditMessage { message_id: message, content: content.to_owned() }).await
    }

    /// `delete_message` (soft delete).
    ///
    /// # Errors
    /// `Rejected` `forbidden` when not allowed.
    pub async fn delete_message(&self, message: Uuid, conversation: Uuid) -> Result<(), ClientError> {
        self.unit(client::DELETE_MESSAGE, &DeleteMessage { message_id: message, conversation_id: conversation })
            .await
            .map(drop)
    }

    /// `add_reaction`: toggles `emoji`; returns the message.
    ///
    /// # Errors
    /// `Rejected` `conflict` on a deleted message, `validation_failed` for a bad emoji.
    pub async fn add_reaction(&self, message: Uuid, emoji: &str, conversation: Uuid) -> Result<Message, ClientError> {
        let body = AddReaction { message_id: message, emoji: emoji.to_owned(), conversation_id: conversation };
        self.typed(client::ADD_REACTION, &body).await
    }

    /// `typing_start` (acked; renew within 6 s to keep typing).
    ///
    /// # Errors
    /// As [`Self::request`].
    pub async fn typing_start(&self, conversation: Uuid) -> Result<(), ClientError> {
        self.unit(client::TYPING_START, &ConversationRef { conversation_id: conversation }).await.map(drop)
    }

    /// `typing_stop` (acked).
    ///
    /// # Errors
    /// As [`Self::request`].
    pub async fn typing_stop(&self, conversation: Uuid) -> Result<(), ClientError> {
        self.unit(client::TYPING_STOP, &ConversationRef { conversation_id: conversation }).await.map(drop)
    }

    /// `mark_as_read` up to `message` (everything when `None`); returns the watermark.
    ///
    /// # Errors
    /// `Rejected` `forbidden` for non-members.
    pub async fn mark_as_read(&self, conversation: Uuid, message: Option<Uuid>) -> Result<ReadResponse, ClientError> {
        self.typed(client::MARK_AS_READ, &MarkAsRead { conversation_id: conversation, message_id: message }).await
    }

    /// `update_presence`: `online|away|busy|offline`; returns the presence record.
    ///
    /// # Errors
    /// `Rejected` `validation_failed` for a bad status.
    pub async fn update_presence(&self, workspace: Uuid, status: &str) -> Result<Presence, ClientError> {
        self.typed(client::UPDATE_PRESENCE, &UpdatePresence { status: status.to_owned(), workspace_id: workspace })
            .await
    }

    /// `resume`: the server replays, as `message:new` pushes in seq order, every message with
    /// a seq above the given one per conversation, then acks (how many it replayed). The
    /// replayed pushes arrive on the push stream *before* this returns, so keep reading it.
    ///
    /// # Errors
    /// As [`Self::request`].
    pub async fn resume(&self, conversations: &BTreeMap<Uuid, i64>) -> Result<ResumeAck, ClientError> {
        self.typed(client::RESUME, &Resume { conversations: conversations.clone() }).await
    }

    /// `ping`: returns the round-trip time.
    ///
    /// # Errors
    /// As [`Self::request`].
    pub async fn ping(&self) -> Result<Duration, ClientError> {
        let start = Instant::now();
        self.request(client::PING, Value::Object(serde_json::Map::new())).await?;
        Ok(start.elapsed())
    }

    /// Closes the connection with `1000 normal` and waits (at most the request timeout) for
    /// the socket task to end. Returns how it ended.
    pub async fn close(&self) -> CloseInfo {
        // A full command queue or a finished task: either way the wait below settles it.
        let _ = self.commands.try_send(Command::Close { code: 1000, reason: String::new() });
        match tokio::time::timeout(self.timeout, self.closed()).await {
            Ok(info) => info,
            Err(_) => CloseInfo { code: None, reason: "close did not complete in time".to_owned() },
        }
    }

    /// How the connection ended; `None` while it is open.
    #[must_use]
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.closed.borrow().clone()
    }

    /// `true` once the connection has ended.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.closed.borrow().is_some()
    }

    /// Waits until the connection ends; returns how.
    pub async fn closed(&self) -> CloseInfo {
        let mut closed = self.closed.clone();
        let seen = closed.wait_for(Option::is_some).await.ok().and_then(|info| info.clone());
        seen.or_else(|| closed.borrow().clone()).unwrap_or_else(task_gone)
    }

    fn closed_error(&self) -> ClientError {
        ClientError::Closed(self.close_info().unwrap_or_else(task_gone))
    }
}

fn task_gone() -> CloseInfo {
    CloseInfo { code: None, reason: "connection task ended".to_owned() }
}

pub(crate) fn text_message(conversation: Uuid, content: &str, client_msg_id: Option<String>) -> SendMessage {
    SendMessage {
        conversation_id: conversation,
        content: content.to_owned(),
        reply_to_id: None,
        client_msg_id,
        kind: None,
        attachments: Vec::new(),
    }
}

/// The pushes of a connection, in arrival order; ends (`None`) when the connection does.
#[derive(Debug)]
pub struct Pushes {
    receiver: mpsc::Receiver<Push>,
}

impl Pushes {
    /// The next push; `None` once the connection has ended and every push was taken.
    pub async fn next(&mut self) -> Option<Push> {
        self.receiver.recv().await
    }

    /// The next push if one is already waiting.
    pub fn try_next(&mut self) -> Option<Push> {
        self.receiver.try_recv().ok()
    }
}

impl Stream for Pushes {
    type Item = Push;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Push>> {
        self.receiver.poll_recv(cx)
    }
}

/// One WebSocket connection: a [`RealtimeHandle`] to make requests (it derefs to it) and the
/// [`Pushes`] the server sends. Use [`Realtime::split`] to send from one task and read pushes
/// in another; drop the [`Pushes`] to discard pushes. The connection closes (1000) on
/// [`RealtimeHandle::close`], or once every handle and the push stream are dropped.
///
/// It does not reconnect: see [`ResumingRealtime`](crate::ResumingRealtime).
#[derive(Debug)]
pub struct Realtime {
    handle: RealtimeHandle,
    pushes: Pushes,
}

impl std::ops::Deref for Realtime {
    type Target = RealtimeHandle;

    fn deref(&self) -> &RealtimeHandle {
        &self.handle
    }
}

impl Realtime {
    /// Runs the protocol over an already upgraded socket (any transport: a test's in-memory
    /// pipe, a TLS stream you opened yourself). Spawns the socket task on the current tokio
    /// runtime.
    pub fn from_socket<S>(socket: WebSocketStream<S>, options: RealtimeOptions) -> Self
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (commands, command_rx) = mpsc::channel(64);
        let (push_tx, push_rx) = mpsc::channel(options.push_buffer);
        let (closed_tx, closed_rx) = watch::channel(None);
        tokio::spawn(drive(socket, command_rx, push_tx, closed_tx));
        Self {
            handle: RealtimeHandle { commands, closed: closed_rx, timeout: options.request_timeout },
            pushes: Pushes { receiver: push_rx },
        }
    }

    /// The next push; `None` once the connection has ended and every push was taken.
    pub async fn next_push(&mut self) -> Option<Push> {
        self.pushes.next().await
    }

    /// The next push, waiting at most `timeout`; `None` on timeout or end.
    pub async fn next_push_within(&mut self, timeout: Duration) -> Option<Push> {
        tokio::time::timeout(timeout, self.pushes.next()).await.ok().flatten()
    }

    /// A clone of the request side.
    #[must_use]
    pub fn handle(&self) -> RealtimeHandle {
        self.handle.clone()
    }

    /// The request side and the push stream, to use from different tasks.
    #[must_use]
    pub fn split(self) -> (RealtimeHandle, Pushes) {
        (self.handle, self.pushes)
    }
}

// ---------------------------------------------------------------- the socket task

/// Owns the socket until it ends; see the module documentation.
async fn drive<S>(
    mut socket: WebSocketStream<S>,
    mut commands: mpsc::Receiver<Command>,
    pushes: mpsc::Sender<Push>,
    closed: watch::Sender<Option<CloseInfo>>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut pending: HashMap<String, Waiting> = HashMap::new();
    let mut next_ref: u64 = 0;
    // Handles can still send commands.
    let mut commands_open = true;
    // Set once this side sent a close frame: the server gets this long to answer it.
    let mut closing: Option<tokio::time::Instant> = None;
    let info = loop {
        tokio::select! {
            command = commands.recv(), if commands_open && closing.is_none() => match command {
                Some(Command::Request { event, data, reply }) => {
                    next_ref += 1;
                    let reference = next_ref.to_string();
                    // Requesters that gave up (timed out) leave closed senders behind.
                    pending.retain(|_, (_, waiting)| !waiting.is_closed());
                    match write_frame(&mut socket, &event, data, Some(&reference)).await {
                        Ok(()) => {
                            pending.insert(reference, (event, reply));
                        }
                        Err(error) => {
                            let info = CloseInfo { code: None, reason: error.to_string() };
                            let _ = reply.send(Err(ClientError::Closed(info.clone())));
                            break info;
                        }
                    }
                }
                Some(Command::Notify { event, data, sent }) => {
                    if let Err(error) = write_frame(&mut socket, &event, data, None).await {
                        let info = CloseInfo { code: None, reason: error.to_string() };
                        let _ = sent.send(Err(ClientError::Closed(info.clone())));
                        break info;
                    }
                    let _ = sent.send(Ok(()));
                }
                Some(Command::Close { code, reason }) => {
                    if let Err(error) = start_close(&mut socket, code, reason).await {
                        break CloseInfo { code: Some(code), reason: error.to_string() };
                    }
                    closing = Some(tokio::time::Instant::now() + CLOSE_GRACE);
                }
                None => {
                    // Every handle is gone. A consumer still reading pushes keeps the socket.
                    commands_open = false;
                    if pushes.is_closed() {
                        if let Err(error) = start_close(&mut socket, 1000, String::new()).await {
                            break CloseInfo { code: Some(1000), reason: error.to_string() };
                        }
                        closing = Some(tokio::time::Instant::now() + CLOSE_GRACE);
                    }
                }
            },
            () = pushes.closed(), if !commands_open && closing.is_none() => {
                // ... and now nobody reads pushes either.
                if let Err(error) = start_close(&mut socket, 1000, String::new()).await {
                    break CloseInfo { code: Some(1000), reason: error.to_string() };
                }
                closing = Some(tokio::time::Instant::now() + CLOSE_GRACE);
            }
            () = tokio::time::sleep_until(closing.unwrap_or_else(tokio::time::Instant::now)), if closing.is_some() => {
                break CloseInfo { code: None, reason: "the server did not answer the close in time".to_owned() };
            }
            frame = socket.next() => match frame {
                None => break CloseInfo { code: None, reason: "connection ended".to_owned() },
                Some(Err(error)) => break CloseInfo { code: None, reason: error.to_string() },
                Some(Ok(WsMessage::Text(text))) => {
                    route(text.as_str(), &mut pending, &pushes).await;
                }
                Some(Ok(WsMessage::Ping(_))) => {
                    // tungstenite queued the pong; push it out now rather than on the next write.
                    if let Err(error) = socket.flush().await {
                        break CloseInfo { code: None, reason: error.to_string() };
                    }
                }
                Some(Ok(WsMessage::Close(frame))) => {
                    // The server's close, or its answer to ours. tungstenite queued the reply to
                    // a server-initiated close; send it and stop: nothing else will be answered.
                    tracing::debug!(?frame, "server closed the websocket");
                    let _ = socket.flush().await;
                    break match frame {
                        Some(frame) => CloseInfo { code: Some(u16::from(frame.code)), reason: frame.reason.to_string() },
                        None => CloseInfo { code: Some(1005), reason: String::new() },
                    };
                }
                Some(Ok(WsMessage::Binary(_))) => tracing::warn!("ignoring a binary websocket frame"),
                Some(Ok(WsMessage::Pong(_) | WsMessage::Frame(_))) => {}
            },
        }
    };
    tracing::debug!(%info, pending = pending.len(), "websocket connection ended");
    // Published first, so that a requester woken by the failure below already sees the
    // connection as closed.
    closed.send_replace(Some(info.clone()));
    for (_, (_, waiting)) in pending.drain() {
        let _ = waiting.send(Err(ClientError::Closed(info.clone())));
    }
    // Commands that were queued but never written fail the same way.
    commands.close();
    while let Ok(command) = commands.try_recv() {
        match command {
            Command::Request { reply, .. } => {
                let _ = reply.send(Err(ClientError::Closed(info.clone())));
            }
            Command::Notify { sent, .. } => {
                let _ = sent.send(Err(ClientError::Closed(info.clone())));
            }
            Command::Close { .. } => {}
        }
    }
}

/// How long a close started by the client waits for the server's answer.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

async fn start_close<S>(socket: &mut WebSocketStream<S>, code: u16, reason: String) -> Result<(), tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    socket.close(Some(CloseFrame { code: CloseCode::from(code), reason: reason.into() })).await
}

async fn write_frame<S>(
    socket: &mut WebSocketStream<S>,
    event: &str,
    data: Value,
    reference: Option<&str>,
) -> Result<(), tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame =
        ClientFrame { event: event.to_owned(), data, reference: reference.map(|r| Value::String(r.to_owned())) };
    // Serialising a `Value` into a string cannot fail.
    let text = serde_json::to_string(&frame).unwrap_or_default();
    socket.send(WsMessage::text(text)).await
}

/// Routes one text frame: an answer to its requester, anything else to the push channel.
async fn route(text: &str, pending: &mut HashMap<String, Waiting>, pushes: &mpsc::Sender<Push>) {
    let frame: ServerFrame = match serde_json::from_str(text) {
        Ok(frame) => frame,
        Err(error) => {
            tracing::warn!(%error, "ignoring a websocket frame that is not a server frame");
            return;
        }
    };
    let reference = frame.reference.as_ref().and_then(|r| match r {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    let waiting = reference.as_ref().and_then(|r| pending.remove(r));
    match (frame.event.as_str(), waiting) {
        (server::ACK, Some((_, reply))) => {
            let _ = reply.send(Ok(frame.data));
        }
        (server::ERROR, Some((event, reply))) => {
            let (code, message) = match serde_json::from_value::<chat_protocol::ws::ErrorData>(frame.data.clone()) {
                Ok(error) => (error.code, error.message),
                Err(_) => ("unknown".to_owned(), frame.data.to_string()),
            };
            let _ = reply.send(Err(ClientError::Rejected { event, code, message }));
        }
        (server::ACK, None) => {
            tracing::debug!(?reference, "ack for a request nobody waits for (timed out?)");
        }
        (_, waiting) => {
            if let Some((event, reply)) = waiting {
                // A push that happens to carry a ref answers nothing; keep the requester waiting.
                if let Some(reference) = reference {
                    pending.insert(reference, (event, reply));
                }
            }
            // A dropped receiver means the consumer discards pushes.
            let _ = pushes.send(Push::decode(frame.event, frame.data)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ws_url_follows_the_base_scheme_and_path() {
        assert_eq!(ws_url("http://127.0.0.1:8080"), "ws://127.0.0.1:8080/chat/ws");
        assert_eq!(ws_url("https://chat.example/api"), "wss://chat.example/api/chat/ws");
    }

    #[test]
    fn query_tokens_are_percent_encoded() {
        assert_eq!(percent_encode("ab.c-_~"), "ab.c-_~");
        assert_eq!(percent_encode("a b+/="), "a%20b%2B%2F%3D");
    }
}
