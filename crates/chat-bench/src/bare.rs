//! The physical limit: a bare WebSocket broadcast server (no auth, no storage).
//!
//! `GET /ws?room=<name>` upgrades to a WebSocket in room `<name>` (the raw query value, not
//! percent-decoded: it is only a key). Every text frame a socket sends goes, as the very same
//! bytes, to every socket of its room — the sender included — and nowhere else. There is no
//! authentication, no storage, no JSON: what is left is what any chat server must pay to fan a
//! frame out, and the benchmark drives it with the same clients as our server to show how far
//! from that limit we are.
//!
//! It does what our hub does on the hot path, and nothing more: the received payload is a
//! [`Utf8Bytes`] (reference-counted), so a recipient costs a pointer copy, not a byte copy; each
//! socket has a bounded queue fed with `try_send` (a full queue makes it a slow consumer, closed
//! with 1013 as our server does, instead of growing memory) and a writer task that drains it
//! in batches (`feed` … `flush`: one syscall for a burst). Rooms live in sharded maps of
//! copy-on-write member lists: a broadcast holds a shard's lock only to clone an `Arc`, never
//! across an await, and joins and leaves copy the list only while a broadcast is reading it.
//! A socket is in its room once its handshake response is written, so a client may send as
//! soon as its connect returns.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Frames a socket may have queued before it counts as a slow consumer.
pub const QUEUE_CAPACITY: usize = 1024;
/// Close code for a socket that fell behind (RFC 6455 "try again later"), as our server uses.
pub const CLOSE_SLOW_CONSUMER: u16 = 1013;
/// Close code when the socket's peer went away or closed first.
const CLOSE_NORMAL: u16 = 1000;
/// Independent room maps; a room's shard is fixed by the hash of its name.
const SHARDS: usize = 16;
/// Most frames written before one flush.
const MAX_BATCH: usize = 64;
/// How long a closing socket is given to take its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Pause after a failed accept (out of file descriptors, typically), instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves the bare broadcast WebSocket on `listener` until the task is dropped.
///
/// # Errors
/// Only when the listener cannot be handed to tokio; a failed accept (e.g. the open-files
/// limit, which the idle scenario reaches on purpose) is logged and retried.
pub async fn serve(listener: std::net::TcpListener) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let rooms = Arc::new(Rooms::new());
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, Arc::clone(&rooms)));
            }
            Err(e) => {
                tracing::warn!(error = %e, "bare server: accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// A socket's kill switch: fired by a broadcast (slow consumer) or by its own reader (the
/// peer left), it makes the writer send the close frame and stop.
#[derive(Debug, Default)]
struct Kill {
    notify: Notify,
    code: AtomicU16,
}

impl Kill {
    /// Asks the socket to close with `code`; the first code wins.
    fn fire(&self, code: u16) {
        if self.code.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.notify.notify_one();
        }
    }

    /// The code it was fired with, 0 while it has not been.
    fn code(&self) -> u16 {
        self.code.load(Ordering::Acquire)
    }

    /// Waits until fired; returns the close code.
    async fn fired(&self) -> u16 {
        self.notify.notified().await;
        self.code()
    }
}

/// A socket as its room sees it.
#[derive(Clone, Debug)]
struct Peer {
    id: u64,
    tx: mpsc::Sender<Utf8Bytes>,
    kill: Arc<Kill>,
}

/// A room's name with its shard, computed once per socket.
#[derive(Clone, Debug)]
struct RoomKey {
    name: Arc<str>,
    shard: usize,
}

type Shard = HashMap<Arc<str>, Arc<Vec<Peer>>>;

/// Every room of the server.
#[derive(Debug)]
struct Rooms {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    next_id: AtomicU64,
}

impl Rooms {
    fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
            hasher: RandomState::new(),
            next_id: AtomicU64::new(1),
        }
    }

    fn key(&self, name: &str) -> RoomKey {
        let hash = self.hasher.hash_one(name);
        // The remainder is below SHARDS, so the cast cannot truncate.
        let shard = (hash % SHARDS as u64) as usize;
        RoomKey { name: name.into(), shard }
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn shard(&self, room: &RoomKey) -> MutexGuard<'_, Shard> {
        self.shards[room.shard].lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn join(&self, room: &RoomKey, peer: Peer) {
        let mut shard = self.shard(room);
        Arc::make_mut(shard.entry(Arc::clone(&room.name)).or_default()).push(peer);
    }

    fn leave(&self, room: &RoomKey, id: u64) {
        let mut shard = self.shard(room);
        let Some(peers) = shard.get_mut(&room.name) else { return };
        Arc::make_mut(peers).retain(|p| p.id != id);
        if peers.is_empty() {
            shard.remove(&room.name);
        }
    }

    /// The room's members now (a snapshot; the lock is released on return).
    fn members(&self, room: &RoomKey) -> Option<Arc<Vec<Peer>>> {
        self.shard(room).get(&room.name).cloned()
    }

    /// Queues `text` for every member of `room`; a member whose queue is full is told to
    /// close. `text` is shared, never copied.
    fn broadcast(&self, room: &RoomKey, text: &Utf8Bytes) {
        let Some(peers) = self.members(room) else { return };
        for peer in peers.iter() {
            match peer.tx.try_send(text.clone()) {
                // Closed: the socket is on its way out and leaves the room itself.
                Ok(()) | Err(TrySendError::Closed(_)) => {}
                Err(TrySendError::Full(_)) => peer.kill.fire(CLOSE_SLOW_CONSUMER),
            }
        }
    }
}

/// The room a handshake asks for, or the status that refuses it.
fn room_of(request: &Request) -> Result<&str, StatusCode> {
    let uri = request.uri();
    if uri.path() != "/ws" {
        return Err(StatusCode::NOT_FOUND);
    }
    let room = uri.query().into_iter().flat_map(|q| q.split('&')).find_map(|pair| pair.strip_prefix("room="));
    match room {
        Some(room) if !room.is_empty() => Ok(room),
        _ => Err(StatusCode::BAD_REQUEST),
    }
}

fn refuse(status: StatusCode) -> ErrorResponse {
    let mut response = ErrorResponse::new(None);
    *response.status_mut() = status;
    response
}

/// One socket: handshake (joining its room), then read frames and broadcast them while its
/// writer task drains its queue; leaves the room when either side stops.
async fn connection(stream: TcpStream, rooms: Arc<Rooms>) {
    // Frames are flushed deliberately (batched); Nagle would only add latency.
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    let kill = Arc::new(Kill::default());
    let peer = Peer { id: rooms.next_id(), tx, kill: Arc::clone(&kill) };
    let id = peer.id;
    let mut joined = None;
    // The error type is the one tungstenite's handshake callback must return.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let room = rooms.key(room_of(request).map_err(refuse)?);
        rooms.join(&room, peer);
        joined = Some(room);
        Ok(response)
    };
    let handshake = tokio_tungstenite::accept_hdr_async(stream, callback).await;
    let Some(room) = joined else { return };
    let Ok(ws) = handshake else {
        rooms.leave(&room, id);
        return;
    };
    let (sink, mut source) = ws.split();
    let mut writer = tokio::spawn(write_loop(sink, rx, Arc::clone(&kill)));
    let mut writer_done = false;
    loop {
        tokio::select! {
            frame = source.next() => match frame {
                Some(Ok(Message::Text(text))) => rooms.broadcast(&room, &text),
                // Binary, ping and pong frames carry nothing to fan out (tungstenite answers pings).
                Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            _ = &mut writer => {
                writer_done = true;
                break;
            }
        }
    }
    rooms.leave(&room, id);
    kill.fire(CLOSE_NORMAL);
    if !writer_done {
        // The writer finishes within CLOSE_GRACE once fired; a panic there is nothing to act on.
        let _ = writer.await;
    }
}

type Sink = SplitSink<WebSocketStream<TcpStream>, Message>;

/// Drains the socket's queue into it until the socket fails or the kill switch fires; then
/// says goodbye (1013 to a slow consumer, the close handshake otherwise), for a bounded time.
async fn write_loop(mut sink: Sink, mut rx: mpsc::Receiver<Utf8Bytes>, kill: Arc<Kill>) {
    let code = tokio::select! {
        code = kill.fired() => code,
        () = pump(&mut sink, &mut rx) => return,
    };
    let goodbye = async {
        if code == CLOSE_SLOW_CONSUMER {
            let frame = CloseFrame { code: code.into(), reason: Utf8Bytes::from_static("slow consumer") };
            sink.send(Message::Close(Some(frame))).await?;
        }
        sink.close().await
    };
    // A peer that does not read cannot take its close frame either: it is dropped regardless.
    let _ = tokio::time::timeout(CLOSE_GRACE, goodbye).await;
}

/// Writes queued frames, up to [`MAX_BATCH`] per flush; returns when the queue closes or the
/// socket fails.
async fn pump(sink: &mut Sink, rx: &mut mpsc::Receiver<Utf8Bytes>) {
    while let Some(first) = rx.recv().await {
        if sink.feed(Message::Text(first)).await.is_err() {
            return;
        }
        for _ in 1..MAX_BATCH {
            let Ok(next) = rx.try_recv() else { break };
            if sink.feed(Message::Text(next)).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::SocketAddr;

    use futures_util::{SinkExt, StreamExt};
    use tokio::net::TcpStream;
    use tokio_tungstenite::tungstenite::{self, Message};
    use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

    use super::*;

    type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

    /// A bare server on a free port of this host, served by the test's runtime.
    pub(crate) fn start() -> (SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local address");
        (addr, tokio::spawn(serve(listener)))
    }

    async fn join(addr: SocketAddr, room: &str) -> Client {
        connect_async(format!("ws://{addr}/ws?room={room}")).await.expect("connect").0
    }

    /// The next text frame (pings and pongs skipped); panics if the socket closes instead.
    async fn next_text(ws: &mut Client) -> String {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => return text.as_str().to_owned(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_frame_reaches_every_socket_of_its_room_sender_included_and_no_other() {
        let (addr, server) = start();
        let mut ada = join(addr, "general").await;
        let mut bob = join(addr, "general").await;
        let mut cyd = join(addr, "general").await;
        let mut dan = join(addr, "random").await;

        ada.send(Message::text("hello general")).await.expect("send");
        for ws in [&mut ada, &mut bob, &mut cyd] {
            assert_eq!(next_text(ws).await, "hello general");
        }
        // Dan's queue is FIFO: had the broadcast above reached him, it would come before this.
        dan.send(Message::text("hello random")).await.expect("send");
        assert_eq!(next_text(&mut dan).await, "hello random");
        // And his frame stayed in his room: the general sockets see their next frame, not his.
        bob.send(Message::text("second")).await.expect("send");
        for ws in [&mut ada, &mut bob, &mut cyd] {
            assert_eq!(next_text(ws).await, "second");
        }
        server.abort();
    }

    #[tokio::test]
    async fn a_handshake_without_a_room_or_off_the_path_is_refused() {
        let (addr, server) = start();
        for (url, status) in [
            (format!("ws://{addr}/ws"), StatusCode::BAD_REQUEST),
            (format!("ws://{addr}/ws?room="), StatusCode::BAD_REQUEST),
            (format!("ws://{addr}/other?room=general"), StatusCode::NOT_FOUND),
        ] {
            match connect_async(&url).await {
                Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), status, "{url}"),
                other => panic!("{url}: expected a refusal, got {other:?}"),
            }
        }
        server.abort();
    }

    #[tokio::test]
    async fn a_member_whose_queue_is_full_is_told_to_close_as_a_slow_consumer() {
        let rooms = Rooms::new();
        let room = rooms.key("general");
        let (fast_tx, mut fast_rx) = mpsc::channel(4);
        let (slow_tx, mut slow_rx) = mpsc::channel(1);
        let fast = Arc::new(Kill::default());
        let slow = Arc::new(Kill::default());
        rooms.join(&room, Peer { id: rooms.next_id(), tx: fast_tx, kill: Arc::clone(&fast) });
        rooms.join(&room, Peer { id: rooms.next_id(), tx: slow_tx, kill: Arc::clone(&slow) });

        rooms.broadcast(&room, &Utf8Bytes::from_static("one"));
        assert_eq!(slow.code(), 0, "a queue with room is not slow");
        rooms.broadcast(&room, &Utf8Bytes::from_static("two"));

        assert_eq!(slow.code(), CLOSE_SLOW_CONSUMER);
        assert_eq!(fast.code(), 0);
        assert_eq!(slow.fired().await, CLOSE_SLOW_CONSUMER);
        assert_eq!(slow_rx.recv().await.as_deref(), Some("one"));
        assert!(slow_rx.try_recv().is_err(), "the overflowing frame is not queued");
        assert_eq!(fast_rx.recv().await.as_deref(), Some("one"));
        assert_eq!(fast_rx.recv().await.as_deref(), Some("two"));
    }

    #[test]
    fn the_last_member_to_leave_removes_the_room_and_others_stay() {
        let rooms = Rooms::new();
        let room = rooms.key("general");
        let (tx, _rx) = mpsc::channel(1);
        let (a, b) = (rooms.next_id(), rooms.next_id());
        rooms.join(&room, Peer { id: a, tx: tx.clone(), kill: Arc::default() });
        rooms.join(&room, Peer { id: b, tx, kill: Arc::default() });
        let snapshot = rooms.members(&room).expect("the room exists");

        rooms.leave(&room, a);
        let left: Vec<u64> = rooms.members(&room).expect("b is still in").iter().map(|p| p.id).collect();
        assert_eq!(left, [b]);
        assert_eq!(snapshot.len(), 2, "a broadcast's snapshot is not changed under it");
        rooms.leave(&room, b);
        assert!(rooms.members(&room).is_none());
        assert!(rooms.shards.iter().all(|s| s.lock().expect("lock").is_empty()));
    }
}
