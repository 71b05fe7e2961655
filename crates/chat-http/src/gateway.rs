//! The WebSocket gateway, `GET /chat/ws` (SPEC.md §3; frames, acks and close codes in
//! `docs/protocol.md`).
//!
//! The token is checked before the upgrade (header or `?token=`), then `Origin` against
//! `CORS_ORIGIN`, then the per-IP connection rate. Each socket is one task: it reads client
//! frames and answers each with an ack or an error frame (the same services and codes as
//! REST), writes the pushes the hub queues for it, pings, and closes an idle or slow socket.
//!
//! **How a socket is served.** actix-http hands every request that asks for a WebSocket
//! upgrade, with its connection, to `serve_upgrade` ([`crate::serve`] installs it). The request
//! still goes through the application — middleware, then the `upgrade` route, where the
//! checks are — and its response is written on the connection; when the route admitted it,
//! the raw TCP stream (with any bytes the client already sent) is handed to tokio-tungstenite,
//! and actix-http's two 8 KiB HTTP buffers are freed. What an open socket keeps is its small
//! WebSocket read buffer, what it has to write, and its task.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::{Future, Ready};
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use actix_codec::Framed;
use actix_http::body::{BodySize, MessageBody};
use actix_http::h1::{self, Message as H1Message};
use actix_http::ws::HandshakeError;
use actix_http::{ConnectionType, Response};
use actix_service::Service;
use actix_web::dev::ServiceResponse;
use actix_web::http::{StatusCode, header};
use actix_web::rt::task::{JoinError, JoinHandle};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, get, web};
use bytes::BytesMut;
use chat_domain::conversation::ReadTarget;
use chat_domain::error::DomainError;
use chat_domain::ids::{ConversationId, FileId, MessageId, UserId, WorkspaceId};
use chat_domain::message::{MessageType, MessageWindow, SendMessage as SendCommand};
use chat_domain::presence::PresenceStatus;
use chat_domain::realtime::{ConnectionKey, RateKind, take_token};
use chat_protocol::ws::{self as proto, ClientFrame, client, server};
use futures_util::future::{BoxFuture, Either};
use futures_util::stream::FuturesOrdered;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message, Utf8Bytes};
use uuid::Uuid;

use crate::AppState;
use crate::auth::bearer;
use crate::convert;
use crate::error::ApiError;
use crate::metrics::Transport;
use crate::realtime::hub::{ConnId, Kill, Outbound, Queued};
use crate::realtime::wire;
use crate::socket_stream::{Readable, SocketStream};

/// Gateway limits and timings.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    /// The browser origin allowed to connect (`CORS_ORIGIN`); any when unset.
    pub cors_origin: Option<String>,
    /// New sockets per client IP per minute (0 disables).
    pub connections_per_minute: u32,
    /// Largest client frame, in bytes.
    pub max_frame_bytes: usize,
    /// Pushes a socket may have queued before it counts as a slow consumer.
    pub queue_capacity: usize,
    /// Ping interval.
    pub heartbeat: Duration,
    /// A socket silent (no frame, no pong) this long is closed.
    pub idle_timeout: Duration,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            cors_origin: None,
            connections_per_minute: 30,
            max_frame_bytes: 160 * 1024,
            queue_capacity: 1024,
            heartbeat: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
        }
    }
}

/// How often a socket renews its presence entries (well inside their TTL).
const PRESENCE_RENEWAL: Duration = Duration::from_secs(20);
/// Pushes taken in a row, each before the client's next frame, after which the timer and the
/// client's frames go first once (`Socket::run`).
const READ_TURN: u32 = 8;
/// Messages replayed per page during `resume`.
const RESUME_PAGE: u32 = 100;
/// Sends of one socket that may wait for their commit at once; past it the socket stops
/// reading frames until one is answered.
const MAX_SENDS_IN_FLIGHT: usize = 64;
/// A socket's read buffer, allocated for its whole life: the most read from the TCP stream at
/// once. Client frames are small JSON (a larger one takes several reads, and the buffer grows
/// to hold it); every open socket pays for this buffer, idle or not (2 KiB rather than 4 KiB
/// saved a fifth of an idle socket's memory).
const READ_BUFFER: usize = 2 * 1024;
/// Written frames wait in the socket's write buffer until this much is pending (or the batch
/// is flushed): a burst of pushes goes out in few `write`s, and the buffer stays about this
/// size on a busy socket (it is empty on a socket that wrote nothing yet).
const WRITE_BUFFER: usize = 8 * 1024;

/// A socket's sends that passed their checks and wait for their commit, each in its own task
/// (or already answered, behind sends still waiting): each resolves to its reply frame, and
/// these replies go out in the order their frames came.
type InFlight = FuturesOrdered<Either<Ready<Result<Utf8Bytes, JoinError>>, JoinHandle<Utf8Bytes>>>;

/// A socket's WebSocket, over the TCP stream of its upgraded connection.
type WebSocket = WebSocketStream<SocketStream>;

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The checks before an upgrade, in this order: a valid token (`Authorization: Bearer`, else
/// `?token=`), then `Origin` against `CORS_ORIGIN`, then the client IP's connection rate.
/// Returns the user and the client IP.
async fn admit(req: &HttpRequest, state: &AppState, query_token: Option<String>) -> Result<(UserId, String), ApiError> {
    let token = bearer(req).map(str::to_owned).or(query_token).ok_or_else(ApiError::unauthorized)?;
    let user = state.chat.auth.authenticate(&token)?;
    if let (Some(allowed), Some(origin)) = (&state.gateway.cors_origin, req.headers().get(header::ORIGIN))
        && origin.as_bytes() != allowed.as_bytes()
    {
        return Err(ApiError::forbidden("origin not allowed"));
    }
    let ip = req.peer_addr().map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
    if let Err(limited) =
        take_token(&*state.limiter, RateKind::Connections, &ip, state.gateway.connections_per_minute).await
    {
        state.metrics.rate_limited(RateKind::Connections);
        return Err(limited.into());
    }
    Ok((user, ip))
}

/// Marks a request that [`serve_upgrade`] handed to the application: only such a request has
/// a connection to upgrade.
struct Upgrading;

/// What the route hands [`serve_upgrade`] with an admitted upgrade's `101`.
struct Admitted {
    state: web::Data<AppState>,
    user: UserId,
    ip: String,
    connection: Uuid,
    /// The socket's span, opened inside the request's (so its lines carry the request id).
    span: tracing::Span,
}

/// Admits an upgrade ([`admit`]), then checks the handshake.
///
/// A request that asks for a WebSocket reaches this route through [`serve_upgrade`], which
/// writes the `101` this returns and opens the socket. A plain `GET` (no `Upgrade: websocket`
/// header) is answered as before the upgrade existed: the checks' refusals, else the
/// handshake's (400 without an upgrade header).
#[get("/chat/ws")]
pub(crate) async fn upgrade(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, actix_web::Error> {
    let (user, ip) = admit(&req, &state, query.into_inner().token).await?;
    let mut handshake = actix_http::ws::handshake(req.head())?;
    if req.extensions().get::<Upgrading>().is_none() {
        // A handshake actix-http did not recognise as an upgrade (say, `Upgrade: websocket,
        // h2c`): there is no connection to take over.
        return Err(HandshakeError::NoWebsocketUpgrade.into());
    }
    let mut response = HttpResponse::from(handshake.finish().map_into_boxed_body());
    let connection = Uuid::new_v4();
    let span = tracing::info_span!("socket", %connection, %user);
    response.extensions_mut().insert(Admitted { state, user, ip, connection, span });
    Ok(response)
}

/// Serves a connection whose request asks for a WebSocket upgrade (actix-http's upgrade
/// service; `app` is a worker's instance of [`crate::app`]).
///
/// The request goes through `app` like any other, so that it meets the same middleware (request
/// id, access log, metrics, security headers) and the same route. Its response is written on
/// the connection; a `101` from the [`upgrade`] route becomes a socket, which this future then
/// serves to its end (so a graceful shutdown waits for it), and anything else closes the
/// connection.
///
/// # Errors
/// When the response cannot be written (actix-http logs it).
pub(crate) async fn serve_upgrade<S, B>(
    app: Rc<S>,
    (req, framed): (actix_http::Request, Framed<TcpStream, h1::Codec>),
) -> Result<(), actix_web::Error>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    // Boxed, each: what answers the request is gone once it is answered, and what serves the
    // socket is only as large as the socket needs.
    if let Some((admitted, io, read)) = Box::pin(answer(app, req, framed)).await? {
        Box::pin(admitted.open(io, read)).await;
    }
    Ok(())
}

/// Runs `req` through `app` and writes the response. Returns the admitted upgrade, its TCP
/// stream and the bytes already read after the request, once the `101` is written.
async fn answer<S, B>(
    app: Rc<S>,
    req: actix_http::Request,
    mut framed: Framed<TcpStream, h1::Codec>,
) -> io::Result<Option<(Admitted, TcpStream, BytesMut)>>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    req.extensions_mut().insert(Upgrading);
    let called = match std::future::poll_fn(|cx| app.poll_ready(cx)).await {
        Ok(()) => app.call(req).await,
        Err(e) => Err(e),
    };
    let mut response = match called {
        Ok(res) => res.into_parts().1.map_into_boxed_body(),
        Err(e) => e.error_response(),
    };
    let admitted = response.extensions_mut().remove::<Admitted>();
    let (head, body) = response.into_parts();
    let mut head = Response::from(head);
    if let Some(admitted) = admitted
        && head.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        framed.send(H1Message::Item((head, BodySize::None))).await?;
        // The HTTP codec's buffers go with it; the bytes the client sent after its request
        // (its first frames, already) do not.
        let parts = framed.into_parts();
        return Ok(Some((admitted, parts.io, parts.read_buf)));
    }
    // Anything else is the connection's only response: it closes after it.
    head.head_mut().set_connection_type(ConnectionType::Close);
    let size = body.size();
    if size == BodySize::Stream {
        // Delimited by the close: the codec would announce chunks it does not write for a
        // connection that asked for an upgrade.
        head.head_mut().no_chunking(true);
    }
    framed.feed(H1Message::Item((head, size))).await?;
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await {
        let chunk = chunk.map_err(|e| io::Error::other(e.to_string()))?;
        framed.feed(H1Message::Chunk(Some(chunk))).await?;
    }
    // `send` flushes: actix-codec's `close` shuts the stream down without writing its buffer.
    framed.send(H1Message::Chunk(None)).await?;
    framed.close().await?;
    Ok(None)
}

impl Admitted {
    /// Serves the socket on the upgraded stream; `read` holds bytes the client sent after its
    /// request.
    async fn open(self, io: TcpStream, read: BytesMut) {
        let Self { state, user, ip, connection, span } = self;
        // Frames are written in deliberate batches (`Socket::push`); Nagle would only hold an
        // ack back behind an unacknowledged push.
        if let Err(e) = io.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(WRITE_BUFFER)
            .max_frame_size(Some(state.gateway.max_frame_bytes))
            .max_message_size(Some(state.gateway.max_frame_bytes));
        // Copied out (usually nothing) so that the HTTP read buffer is freed now.
        let part = read.to_vec();
        drop(read);
        let io = SocketStream::new(io);
        let readable = io.readable();
        let ws = WebSocket::from_partially_read(io, part, Role::Server, Some(config)).await;
        let (tx, rx) = mpsc::channel(state.gateway.queue_capacity);
        let kill = Arc::new(Kill::default());
        let id = state.realtime.hub().register(user.as_uuid(), tx, Arc::clone(&kill));
        let socket = Socket {
            state,
            user,
            id,
            connection,
            ws,
            readable,
            kill,
            workspaces: HashSet::new(),
            high_water: HighWater::default(),
            last_heard: Instant::now(),
        };
        // The socket keeps its client IP for the audit log (`crate::audit`).
        tracing::Instrument::instrument(crate::audit::scope(Some(ip), socket.run(rx)), span).await;
    }
}

/// Why a frame was answered with an error.
struct FrameError {
    code: &'static str,
    message: String,
}

impl From<ApiError> for FrameError {
    fn from(e: ApiError) -> Self {
        Self { code: e.code(), message: e.message().to_owned() }
    }
}

impl From<DomainError> for FrameError {
    fn from(e: DomainError) -> Self {
        ApiError::from(e).into()
    }
}

/// Decodes an event's `data`: malformed or unknown fields are `bad_request`, wrong shapes
/// `validation_failed` — as REST bodies.
fn data<T: DeserializeOwned>(value: Value) -> Result<T, FrameError> {
    serde_json::from_value(value).map_err(|e| {
        let message = e.to_string();
        let code = if message.starts_with("unknown field") { "bad_request" } else { "validation_failed" };
        FrameError { code, message }
    })
}

/// Parses a client frame and decodes its `data` for its event with the types and checks the
/// socket applies before it calls a service; `Err` is the error `code` the frame would be
/// answered with. No state, no I/O: the fuzz target `ws_frame` drives it (`fuzz/`).
///
/// # Errors
/// `bad_request` for a malformed frame, an unknown event or an unknown field;
/// `validation_failed` for a wrong shape or value.
#[doc(hidden)]
pub fn decode_client_frame(text: &str) -> Result<String, &'static str> {
    let frame: ClientFrame = serde_json::from_str(text).map_err(|_| "bad_request")?;
    Request::decode(&frame.event, frame.data).map_err(|e| e.code)?;
    Ok(frame.event)
}

/// A client frame's data, decoded for its event: the one map from event names to types,
/// shared by the socket task and the fuzz entry point.
enum Request {
    Ping,
    JoinWorkspace(proto::WorkspaceRef),
    JoinConversation(proto::ConversationRef),
    LeaveConversation(proto::ConversationRef),
    SendMessage(proto::SendMessage, Option<MessageType>),
    EditMessage(proto::EditMessage),
    DeleteMessage(proto::DeleteMessage),
    AddReaction(proto::AddReaction),
    TypingStart(proto::ConversationRef),
    TypingStop(proto::ConversationRef),
    MarkAsRead(proto::MarkAsRead),
    UpdatePresence(proto::UpdatePresence, PresenceStatus),
    Resume(proto::Resume),
}

impl Request {
    fn decode(event: &str, payload: Value) -> Result<Self, FrameError> {
        Ok(match event {
            client::PING => Self::Ping,
            client::JOIN_WORKSPACE => Self::JoinWorkspace(data(payload)?),
            client::JOIN_CONVERSATION => Self::JoinConversation(data(payload)?),
            client::LEAVE_CONVERSATION => Self::LeaveConversation(data(payload)?),
            client::SEND_MESSAGE => {
                let req: proto::SendMessage = data(payload)?;
                let kind = req.kind.as_deref().map(MessageType::parse).transpose()?;
                Self::SendMessage(req, kind)
            }
            client::EDIT_MESSAGE => Self::EditMessage(data(payload)?),
            client::DELETE_MESSAGE => Self::DeleteMessage(data(payload)?),
            client::ADD_REACTION => Self::AddReaction(data(payload)?),
            client::TYPING_START => Self::TypingStart(data(payload)?),
            client::TYPING_STOP => Self::TypingStop(data(payload)?),
            client::MARK_AS_READ => Self::MarkAsRead(data(payload)?),
            client::UPDATE_PRESENCE => {
                let req: proto::UpdatePresence = data(payload)?;
                let status = PresenceStatus::parse(&req.status)?;
                Self::UpdatePresence(req, status)
            }
            client::RESUME => Self::Resume(data(payload)?),
            other => return Err(FrameError { code: "bad_request", message: format!("unknown event {other:?}") }),
        })
    }
}

struct Socket {
    state: web::Data<AppState>,
    user: UserId,
    id: ConnId,
    connection: Uuid,
    /// Read and written by the socket's one task: no lock between the two halves.
    ws: WebSocket,
    /// Whether the client may have sent a frame the socket has not read (`socket_stream`).
    readable: Arc<Readable>,
    kill: Arc<Kill>,
    workspaces: HashSet<Uuid>,
    high_water: HighWater,
    last_heard: Instant,
}

/// The frame answering a client frame: its ack, or its error.
fn reply(answer: Result<Value, FrameError>, reference: Option<Value>) -> Utf8Bytes {
    match answer {
        Ok(data) => wire::frame(server::ACK, data, reference),
        Err(e) => wire::frame(
            server::ERROR,
            serde_json::to_value(proto::ErrorData { code: e.code.to_owned(), message: e.message }).unwrap_or_default(),
            reference,
        ),
    }
}

/// The close frame of a killed socket.
fn kill_reason(code: u16) -> CloseFrame {
    let reason =
        if code == crate::realtime::hub::CLOSE_GOING_AWAY { "server shutting down" } else { "too slow: resume" };
    CloseFrame { code: CloseCode::from(code), reason: Utf8Bytes::from_static(reason) }
}

/// The close frame for a client that broke the protocol (`None` when the connection failed:
/// nobody is left to tell).
fn violation(e: &WsError) -> Option<CloseFrame> {
    let (code, reason) = match e {
        WsError::Capacity(_) => (CloseCode::Size, "frame too large"),
        WsError::Utf8(_) => (CloseCode::Invalid, "text frame is not UTF-8"),
        WsError::Protocol(_) => (CloseCode::Protocol, "protocol violation"),
        _ => return None,
    };
    Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) })
}

/// Highest `message:new` seq a socket wrote, per conversation: a push at or below it (a live
/// push the socket already replayed with `resume`, or a repeat) is not written again.
///
/// Checked for every push the socket writes, so the conversation it wrote to last is kept
/// beside the socket's other state and the map is touched only when a push of another
/// conversation comes: a burst in one conversation — the common case, and every push of a
/// socket in one conversation — costs a comparison, not a hash lookup in a table of its own.
#[derive(Debug, Default)]
struct HighWater {
    /// The conversation written to last and its mark (its entry in `others`, if any, is stale).
    recent: Option<(Uuid, i64)>,
    others: HashMap<Uuid, i64>,
}

impl HighWater {
    /// Records `seq` of `conversation` if it is above the mark; whether it was.
    fn advance(&mut self, conversation: Uuid, seq: i64) -> bool {
        let seen = match &mut self.recent {
            Some((recent, seen)) if *recent == conversation => seen,
            recent => {
                if let Some((parked, mark)) = recent.take() {
                    self.others.insert(parked, mark);
                }
                let mark = self.others.get(&conversation).copied().unwrap_or(0);
                &mut recent.insert((conversation, mark)).1
            }
        };
        if seq <= *seen {
            return false;
        }
        *seen = seq;
        true
    }

    /// Whether a push is new to the socket (see [`HighWater`]); records the seq of one that is.
    fn fresh(&mut self, out: &Outbound) -> bool {
        match (out.conversation, out.seq) {
            (Some(conversation), Some(seq)) => self.advance(conversation, seq),
            _ => true,
        }
    }
}

/// Runs a write — unless the socket is killed while the write waits on a peer that stopped
/// reading (the hub fires the kill when this socket's queue overflows).
async fn guarded(kill: &Kill, write: impl Future<Output = Result<(), WsError>>) -> Flow {
    tokio::select! {
        written = write => match written {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Close(None),
        },
        code = kill.fired() => Flow::Close(Some(kill_reason(code))),
    }
}

/// The client's next frame. The stream is read only while the client may have sent
/// something ([`Readable::wait`]): a wake for a push does not read it.
fn next_frame<'a>(
    ws: &'a mut WebSocket,
    readable: &'a Readable,
) -> impl Future<Output = Option<Result<Message, WsError>>> + 'a {
    std::future::poll_fn(move |cx| {
        if !readable.wait(cx) {
            return Poll::Pending;
        }
        ws.poll_next_unpin(cx)
    })
}

/// What woke a socket's task (`Socket::run`).
enum Wake {
    Killed(u16),
    /// A send's commit answered (or its task failed).
    Reply(Option<Result<Utf8Bytes, JoinError>>),
    /// A frame from the client; `None` once the stream ended.
    Frame(Option<Result<Message, WsError>>),
    /// A push from the hub; `None` once the hub forgot the socket.
    Push(Option<Queued>),
    /// The ping or presence-renewal time came.
    Timer,
}

enum Flow {
    Continue,
    /// Close the socket, with this close frame.
    Close(Option<CloseFrame>),
}

impl Socket {
    fn key(&self, workspace: Uuid) -> ConnectionKey {
        ConnectionKey { user: self.user, workspace: WorkspaceId::from_uuid(workspace), connection: self.connection }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Queued>) {
        let settings = self.state.gateway.clone();
        let now = tokio::time::Instant::now();
        let mut ping_at = now + settings.heartbeat;
        let mut renew_at = now + PRESENCE_RENEWAL;
        let timer = tokio::time::sleep_until(ping_at.min(renew_at));
        let kill = Arc::clone(&self.kill);
        let killed = kill.fired();
        tokio::pin!(timer, killed);
        let mut sends = InFlight::new();
        let mut pushes_in_a_row = 0_u32;
        let close = loop {
            // Biased, pushes before the client's frames: a push is what wakes a busy socket,
            // and taking it before polling the stream and the timer saves those polls on most
            // wakes (the timer is polled, and its waker renewed, once the queue is empty; the
            // stream only when the client may have sent something). So that a socket under a
            // steady stream of pushes still reads its client, pings and renews its presence,
            // every `READ_TURN`-th push in a row lets the timer and the stream go first.
            let wake = if pushes_in_a_row < READ_TURN {
                tokio::select! {
                    biased;
                    code = &mut killed => Wake::Killed(code),
                    reply = sends.next(), if !sends.is_empty() => Wake::Reply(reply),
                    out = rx.recv() => Wake::Push(out),
                    incoming = next_frame(&mut self.ws, &self.readable),
                        if sends.len() < MAX_SENDS_IN_FLIGHT => Wake::Frame(incoming),
                    () = &mut timer => Wake::Timer,
                }
            } else {
                tokio::select! {
                    biased;
                    code = &mut killed => Wake::Killed(code),
                    () = &mut timer => Wake::Timer,
                    reply = sends.next(), if !sends.is_empty() => Wake::Reply(reply),
                    incoming = next_frame(&mut self.ws, &self.readable),
                        if sends.len() < MAX_SENDS_IN_FLIGHT => Wake::Frame(incoming),
                    out = rx.recv() => Wake::Push(out),
                }
            };
            pushes_in_a_row = match wake {
                Wake::Push(_) if pushes_in_a_row < READ_TURN => pushes_in_a_row + 1,
                _ => 0,
            };
            let flow = match wake {
                Wake::Killed(code) => Flow::Close(Some(kill_reason(code))),
                Wake::Reply(Some(Ok(reply))) => self.write(reply).await,
                Wake::Reply(Some(Err(e))) => {
                    tracing::error!(error = %e, "a send's task failed");
                    Flow::Continue
                }
                Wake::Reply(None) => Flow::Continue,
                Wake::Push(Some(out)) => self.push(out, &mut rx).await,
                Wake::Push(None) | Wake::Frame(None) => Flow::Close(None),
                // Boxed: a frame's service call is a large state machine that an idle socket's
                // task would otherwise carry inline (one allocation per frame).
                Wake::Frame(Some(Ok(message))) => {
                    // The bytes that held this frame may hold the next one.
                    self.readable.raise();
                    Box::pin(self.on_message(message, &mut sends)).await
                }
                Wake::Frame(Some(Err(e))) => {
                    tracing::debug!(error = %e, "websocket protocol error");
                    Flow::Close(violation(&e))
                }
                Wake::Timer => {
                    let now = tokio::time::Instant::now();
                    if now >= renew_at {
                        renew_at = now + PRESENCE_RENEWAL;
                        Box::pin(self.renew_presence()).await;
                    }
                    let mut flow = Flow::Continue;
                    if now >= ping_at {
                        ping_at = now + settings.heartbeat;
                        flow = if self.last_heard.elapsed() > settings.idle_timeout {
                            Flow::Close(Some(CloseFrame {
                                code: CloseCode::Normal,
                                reason: Utf8Bytes::from_static("idle"),
                            }))
                        } else {
                            self.send(Message::Ping(Bytes::new())).await
                        };
                    }
                    timer.as_mut().reset(ping_at.min(renew_at));
                    flow
                }
            };
            if let Flow::Close(frame) = flow {
                break frame;
            }
        };
        // Sends already under way run on in their own tasks: they still commit and publish.
        drop(sends);
        Box::pin(self.finish(close)).await;
    }

    /// Renews the socket's presence entries (boxed by the caller, like every rare path).
    async fn renew_presence(&self) {
        for workspace in &self.workspaces {
            if let Err(e) = self.state.chat.presence.heartbeat(self.key(*workspace)).await {
                tracing::warn!(error = %e, "presence heartbeat failed");
            }
        }
    }

    /// Leaves the hub and presence, then closes: sends `frame` (or, when the client closed
    /// first, the echo tungstenite queued) and reads until the client's answering close, so
    /// that the connection ends with nothing unread — for a second at most: a peer that
    /// stopped reading cannot take a close frame either.
    async fn finish(mut self, frame: Option<CloseFrame>) {
        let hub = self.state.realtime.hub();
        for workspace in hub.unregister(self.id) {
            self.state.realtime.unsubscribe(workspace).await;
        }
        for workspace in &self.workspaces {
            if let Err(e) = self.state.chat.presence.disconnected(self.key(*workspace)).await {
                tracing::warn!(error = %e, "presence update on disconnect failed");
            }
        }
        let close = async {
            // Refused after the client's close: the flush in `close` then writes the echo.
            let _ = self.ws.send(Message::Close(frame)).await;
            let _ = SinkExt::close(&mut self.ws).await;
            while let Some(Ok(_)) = self.ws.next().await {}
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), close).await;
    }

    /// Writes a message at once (yielding to the kill switch).
    async fn send(&mut self, message: Message) -> Flow {
        guarded(&self.kill, self.ws.send(message)).await
    }

    /// Writes a frame at once (yielding to the kill switch).
    async fn write(&mut self, frame: Utf8Bytes) -> Flow {
        self.send(Message::Text(frame)).await
    }

    /// Buffers a frame for the next flush (yielding to the kill switch).
    async fn feed(&mut self, frame: Utf8Bytes) -> Flow {
        guarded(&self.kill, self.ws.feed(Message::Text(frame))).await
    }

    /// Writes a push and, in the same batch, every push queued behind it when it was taken —
    /// in queue order, without the `message:new`s the socket already wrote — then flushes
    /// once: a socket that fell a few pushes behind catches up in a few `write`s, not one per
    /// push. Pushes queued meanwhile wait for the next batch, so that reading the client is
    /// never starved.
    async fn push(&mut self, first: Queued, rx: &mut mpsc::Receiver<Queued>) -> Flow {
        let Self { ws, kill, high_water, .. } = self;
        let behind = rx.len();
        let batch = async {
            if high_water.fresh(&first) {
                ws.feed(Message::Text(first.frame.clone())).await?;
            }
            for _ in 0..behind {
                let Ok(out) = rx.try_recv() else { break };
                if high_water.fresh(&out) {
                    ws.feed(Message::Text(out.frame.clone())).await?;
                }
            }
            ws.flush().await
        };
        guarded(kill, batch).await
    }

    async fn on_message(&mut self, message: Message, sends: &mut InFlight) -> Flow {
        self.last_heard = Instant::now();
        match message {
            Message::Text(text) => self.on_frame(&text, sends).await,
            Message::Binary(_) => {
                self.state.metrics.frame_in(None);
                let frame =
                    wire::frame(server::ERROR, json!({"code": "bad_request", "message": "frames are JSON text"}), None);
                self.write(frame).await
            }
            // tungstenite queued the pong; it would go out with the next read, but a socket
            // with its sends in flight at the limit is not read.
            Message::Ping(_) => guarded(&self.kill, self.ws.flush()).await,
            Message::Pong(_) | Message::Frame(_) => Flow::Continue,
            // tungstenite queued the echo, which `finish` flushes.
            Message::Close(_) => Flow::Close(None),
        }
    }

    /// Answers a frame. A `send_message` is checked and sealed now, in frame order, and then
    /// joins `sends` to wait for its commit, so that a client's pipelined sends share group
    /// commits instead of each waiting for the one before; the socket meanwhile reads on and
    /// writes pushes.
    async fn on_frame(&mut self, text: &str, sends: &mut InFlight) -> Flow {
        let frame: ClientFrame = match serde_json::from_str(text) {
            Ok(frame) => frame,
            Err(e) => {
                self.state.metrics.frame_in(None);
                // Echo a `ref` if one can be found, so the client can match the error.
                let reference = serde_json::from_str::<Value>(text).ok().and_then(|v| v.get("ref").cloned());
                let message = format!("malformed frame: {e}");
                return self
                    .write(wire::frame(server::ERROR, json!({"code": "bad_request", "message": message}), reference))
                    .await;
            }
        };
        self.state.metrics.frame_in(Some(&frame.event));
        let reference = frame.reference.clone();
        let answer = match Request::decode(&frame.event, frame.data) {
            Ok(Request::SendMessage(req, kind)) => match self.prepare_send(req, kind).await {
                Ok(commit) => {
                    let mut commit: BoxFuture<'static, Utf8Bytes> =
                        Box::pin(async move { reply(commit.await, reference) });
                    // The first poll queues the message for its batch (the store's first wait is
                    // for the commit), so a socket's sends join batches in frame order; the rest
                    // — the commit, the push, the reply — runs in its own task, so that neither
                    // this socket's other work delays the push nor the other way round.
                    if let Poll::Ready(frame) = futures_util::poll!(&mut commit) {
                        // Answered at once (its batch committed before this poll ended, on a
                        // busy machine): still after the sends before it.
                        if sends.is_empty() {
                            return self.write(frame).await;
                        }
                        sends.push_back(Either::Left(std::future::ready(Ok(frame))));
                        return Flow::Continue;
                    }
                    sends.push_back(Either::Right(actix_web::rt::spawn(commit)));
                    return Flow::Continue;
                }
                Err(e) => Err(e),
            },
            Ok(request) => self.dispatch(request).await,
            Err(e) => Err(e),
        };
        self.write(reply(answer, reference)).await
    }

    /// Checks and seals a send; the future it returns inserts it (answering after the commit)
    /// and owns all it needs, so that it can wait beside the socket's other work.
    async fn prepare_send(
        &self,
        req: proto::SendMessage,
        kind: Option<MessageType>,
    ) -> Result<impl Future<Output = Result<Value, FrameError>> + Send + 'static, FrameError> {
        let started = Instant::now();
        let command = SendCommand {
            content: req.content,
            kind,
            reply_to_id: req.reply_to_id.map(MessageId::from_uuid),
            client_msg_id: req.client_msg_id,
            attachments: req.attachments.iter().map(|a| FileId::from_uuid(a.id)).collect(),
        };
        let state = self.state.clone();
        let conversation = ConversationId::from_uuid(req.conversation_id);
        let prepared = state.chat.messages.prepare_send(self.user, conversation, command).await;
        if prepared.is_err() {
            state.metrics.message_sent(Transport::Ws, started, &prepared);
        }
        let prepared = prepared?;
        Ok(async move {
            let sent = state.chat.messages.commit_send(prepared).await;
            state.metrics.message_sent(Transport::Ws, started, &sent);
            let sent = sent?;
            Ok(serde_json::to_value(convert::message(sent.message())).unwrap_or_default())
        })
    }

    async fn dispatch(&mut self, request: Request) -> Result<Value, FrameError> {
        let chat = self.state.chat.clone();
        let actor = self.user;
        match request {
            Request::Ping => Ok(json!({})),
            Request::JoinWorkspace(req) => {
                let workspace = WorkspaceId::from_uuid(req.workspace_id);
                let heads = chat.conversations.heads(actor, workspace).await?;
                let heads: Vec<(Uuid, i64)> = heads.into_iter().map(|(c, seq)| (c.as_uuid(), seq)).collect();
                if self.state.realtime.hub().join_workspace(self.id, req.workspace_id, &heads) {
                    self.state.realtime.subscribe(req.workspace_id).await;
                }
                if self.workspaces.insert(req.workspace_id) {
                    chat.presence.connected(self.key(req.workspace_id)).await?;
                }
                Ok(json!({"workspaceId": req.workspace_id, "conversations": heads.len()}))
            }
            Request::JoinConversation(req) => {
                let view = chat.conversations.get(actor, ConversationId::from_uuid(req.conversation_id)).await?;
                self.state.realtime.hub().follow(self.id, req.conversation_id, view.conversation.last_seq);
                Ok(serde_json::to_value(convert::conversation(&view.conversation, view.member.as_ref()))
                    .unwrap_or_default())
            }
            Request::LeaveConversation(req) => {
                self.state.realtime.hub().unfollow(self.id, req.conversation_id);
                Ok(json!({}))
            }
            Request::SendMessage(req, kind) => self.prepare_send(req, kind).await?.await,
            Request::EditMessage(req) => {
                let message = chat.messages.edit(actor, MessageId::from_uuid(req.message_id), req.content).await?;
                Ok(serde_json::to_value(convert::message(&message)).unwrap_or_default())
            }
            Request::DeleteMessage(req) => {
                chat.messages
                    .delete_in(
                        actor,
                        ConversationId::from_uuid(req.conversation_id),
                        MessageId::from_uuid(req.message_id),
                    )
                    .await?;
                Ok(json!({}))
            }
            Request::AddReaction(req) => {
                let message = chat
                    .messages
                    .react_in(
                        actor,
                        ConversationId::from_uuid(req.conversation_id),
                        MessageId::from_uuid(req.message_id),
                        &req.emoji,
                    )
                    .await?;
                Ok(serde_json::to_value(convert::message(&message)).unwrap_or_default())
            }
            Request::TypingStart(req) => {
                chat.typing.start(actor, ConversationId::from_uuid(req.conversation_id)).await?;
                Ok(json!({}))
            }
            Request::TypingStop(req) => {
                chat.typing.stop(actor, ConversationId::from_uuid(req.conversation_id)).await;
                Ok(json!({}))
            }
            Request::MarkAsRead(req) => {
                let target =
                    req.message_id.map_or(ReadTarget::Latest, |m| ReadTarget::Message(MessageId::from_uuid(m)));
                let seq =
                    chat.conversations.mark_read(actor, ConversationId::from_uuid(req.conversation_id), target).await?;
                Ok(json!({"lastReadSeq": seq}))
            }
            Request::UpdatePresence(req, status) => {
                let presence = chat.presence.set(actor, WorkspaceId::from_uuid(req.workspace_id), status).await?;
                Ok(serde_json::to_value(convert::presence(&presence)).unwrap_or_default())
            }
            Request::Resume(req) => self.resume(req.conversations).await,
        }
    }

    /// Replays every message after each given seq, in seq order, as `message:new`. Every
    /// conversation is checked before anything is replayed.
    async fn resume(&mut self, from: BTreeMap<Uuid, i64>) -> Result<Value, FrameError> {
        let chat = self.state.chat.clone();
        let mut views = Vec::with_capacity(from.len());
        for (conversation, after) in &from {
            let view = chat.conversations.get(self.user, ConversationId::from_uuid(*conversation)).await?;
            views.push((view.conversation.id, *after));
        }
        let mut replayed = BTreeMap::new();
        for (conversation, mut after) in views {
            let mut count = 0_u64;
            loop {
                let page =
                    chat.messages.list(self.user, conversation, MessageWindow::After { after }, RESUME_PAGE).await?;
                let full = page.len() == RESUME_PAGE as usize;
                for message in &page {
                    self.high_water.advance(conversation.as_uuid(), message.seq);
                    let frame = wire::frame(
                        server::MESSAGE_NEW,
                        serde_json::to_value(proto::MessageNew {
                            message: convert::message(message),
                            conversation_id: conversation.as_uuid(),
                        })
                        .unwrap_or_default(),
                        None,
                    );
                    // Written with the ack, which flushes (or as the write buffer fills).
                    if let Flow::Close(_) = self.feed(frame).await {
                        return Err(FrameError { code: "internal", message: "socket closed".into() });
                    }
                    count += 1;
                    after = message.seq;
                }
                if !full {
                    break;
                }
            }
            replayed.insert(conversation.as_uuid(), count);
        }
        Ok(serde_json::to_value(proto::ResumeAck { replayed }).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_writes_each_seq_of_each_conversation_once_whatever_order_they_interleave_in() {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut marks = HighWater::default();
        // Each push against a map of the marks, the behaviour the fast path must keep.
        let mut expected: HashMap<Uuid, i64> = HashMap::new();
        let pushes = [
            (a, 1),
            (a, 2),
            (a, 2),
            (b, 1),
            (a, 3),
            (a, 1),
            (b, 1),
            (b, 3),
            (c, 5),
            (b, 2),
            (a, 3),
            (a, 4),
            (c, 4),
            (c, 6),
            (b, 4),
            (a, 4),
            (a, 5),
            (b, 4),
            (c, 6),
            (c, 7),
        ];
        let mut written = Vec::new();
        for (conversation, seq) in pushes {
            let mark = expected.entry(conversation).or_insert(0);
            let new = seq > *mark;
            *mark = (*mark).max(seq);
            let out = Outbound { frame: Utf8Bytes::from_static(""), conversation: Some(conversation), seq: Some(seq) };
            assert_eq!(marks.fresh(&out), new, "{conversation} seq {seq}");
            if new {
                written.push((conversation, seq));
            }
        }
        assert_eq!(written.len(), 11, "{written:?}");
        // Pushes that are not `message:new` always go out.
        let other = Outbound { frame: Utf8Bytes::from_static(""), conversation: Some(a), seq: None };
        assert!(marks.fresh(&other) && marks.fresh(&other));
    }

    #[test]
    fn the_fuzzed_decoder_knows_every_client_event() {
        for event in client::ALL {
            // Empty data is a wrong shape (or fine, for `ping`), never an unknown event.
            let answer = decode_client_frame(&json!({"event": event, "data": {}}).to_string());
            assert_ne!(answer, Err("bad_request"), "{event}");
        }
        assert_eq!(decode_client_frame(r#"{"event":"no_such_event"}"#), Err("bad_request"));
        assert_eq!(decode_client_frame(r#"{"event":"ping","data":{},"extra":1}"#), Err("bad_request"));
        assert_eq!(
            decode_client_frame(
                r#"{"event":"update_presence","data":{"status":"asleep","workspaceId":"00000000-0000-0000-0000-000000000000"}}"#
            ),
            Err("validation_failed")
        );
        assert_eq!(decode_client_frame(r#"{"event":"ping"}"#), Ok("ping".to_owned()));
    }
}
