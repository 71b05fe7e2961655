//! Lean load-generating connections: one task per WebSocket, owning the socket (no split, no
//! lock). A task reads frames, classifies them ([`crate::wire::classify`]) and records
//! deliveries into its own latency histogram; on command it sends at a paced rate (fan-out) or
//! keeps a window of unacknowledged sends (durable). The coordinator reads and resets the
//! counters between steps through [`ConnStats::take`].

use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::BenchError;
use crate::stats::{MAX_LATENCY_US, histogram};
use crate::wire::{self, Incoming, Protocol};

type Ws = WebSocketStream<TcpStream>;

/// State every connection of a run shares: the clock epoch send times count from, and the
/// step whose messages are being counted (0 between steps: nothing is counted).
#[derive(Debug)]
pub struct Shared {
    epoch: std::time::Instant,
    step: AtomicU32,
}

impl Default for Shared {
    fn default() -> Self {
        Self { epoch: std::time::Instant::now(), step: AtomicU32::new(0) }
    }
}

impl Shared {
    /// Nanoseconds since the epoch.
    #[must_use]
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Starts counting `step`'s messages (0: count none).
    pub fn set_step(&self, step: u32) {
        self.step.store(step, Ordering::SeqCst);
    }

    fn step(&self) -> u32 {
        self.step.load(Ordering::Relaxed)
    }
}

/// Counters of one connection since the last [`ConnStats::take`].
#[derive(Debug, Default)]
pub struct ConnStats {
    delivered: AtomicU64,
    acked: AtomicU64,
    sent: AtomicU64,
    errors: AtomicU64,
    stale: AtomicU64,
    closed: AtomicBool,
    /// Set when a `Pace` command is given, cleared by the task once it has sent the step's
    /// last message (see [`ConnStats::is_pacing`]).
    pacing: AtomicBool,
    latency: Mutex<Option<Histogram<u64>>>,
    ack_latency: Mutex<Option<Histogram<u64>>>,
}

/// What [`ConnStats::take`] hands over.
#[derive(Debug, Default)]
pub struct Taken {
    /// Deliveries of the current step.
    pub delivered: u64,
    /// Acks of the current step.
    pub acked: u64,
    /// Messages sent.
    pub sent: u64,
    /// Error frames.
    pub errors: u64,
    /// Deliveries of another step (late).
    pub stale: u64,
    /// Send → receive latency.
    pub latency: Option<Histogram<u64>>,
    /// Send → ack latency.
    pub ack_latency: Option<Histogram<u64>>,
}

fn record(slot: &Mutex<Option<Histogram<u64>>>, micros: u64) {
    let mut h = slot.lock().unwrap_or_else(PoisonError::into_inner);
    h.get_or_insert_with(histogram).saturating_record(micros.clamp(1, MAX_LATENCY_US));
}

impl ConnStats {
    /// Reads and resets the counters.
    pub fn take(&self) -> Taken {
        Taken {
            delivered: self.delivered.swap(0, Ordering::Relaxed),
            acked: self.acked.swap(0, Ordering::Relaxed),
            sent: self.sent.swap(0, Ordering::Relaxed),
            errors: self.errors.swap(0, Ordering::Relaxed),
            stale: self.stale.swap(0, Ordering::Relaxed),
            latency: self.latency.lock().unwrap_or_else(PoisonError::into_inner).take(),
            ack_latency: self.ack_latency.lock().unwrap_or_else(PoisonError::into_inner).take(),
        }
    }

    /// Deliveries counted so far in this step.
    #[must_use]
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Messages sent so far in this step.
    #[must_use]
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Acks counted so far in this step.
    #[must_use]
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Whether the connection may still send messages of its paced step. Its last tick, due
    /// at the step's end, can run after the step's own timer on this single-threaded
    /// generator: the step reads `sent` once this is false (or the socket closed), so that
    /// those last messages are neither left out of `sent` nor counted late in the next step.
    #[must_use]
    pub fn is_pacing(&self) -> bool {
        self.pacing.load(Ordering::Acquire) && !self.is_closed()
    }

    /// Whether the socket has closed.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// What a connection does after its setup.
#[derive(Clone, Copy, Debug)]
pub enum Command {
    /// Send `per_sec` messages per second until `until`, stamped with `step`.
    Pace {
        /// Step number.
        step: u32,
        /// Messages per second.
        per_sec: f64,
        /// When to stop.
        until: Instant,
    },
    /// Keep `window` sends unacknowledged until `until`.
    ClosedLoop {
        /// Step number.
        step: u32,
        /// Sends in flight.
        window: usize,
        /// When to stop.
        until: Instant,
    },
}

/// How a connection joins after the upgrade.
#[derive(Clone, Debug)]
pub enum Join {
    /// Nothing to join (bare server: the room is in the URL).
    Nothing,
    /// Ours: `join_workspace`.
    Workspace(uuid::Uuid),
    /// Socket.IO: CONNECT with the token, then `join_conversation` for each.
    SocketIo {
        /// HS256 JWT for the peer.
        token: String,
        /// Conversations to join.
        conversations: Vec<String>,
    },
}

/// One connection to open.
#[derive(Clone, Debug)]
pub struct ConnSpec {
    /// Server protocol.
    pub protocol: Protocol,
    /// Server address.
    pub addr: SocketAddr,
    /// Path and query of the upgrade request.
    pub path: String,
    /// What to join.
    pub join: Join,
    /// The conversation this connection sends into, if it sends.
    pub send_to: Option<String>,
    /// Local source address (idle scenario), else the kernel's choice.
    pub source: Option<IpAddr>,
    /// Small buffers for connections that only idle.
    pub idle: bool,
}

/// An open connection and its task.
#[derive(Debug)]
pub struct Conn {
    /// Its counters.
    pub stats: Arc<ConnStats>,
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
}

impl Conn {
    /// Sends a command to the task (ignored once the socket closed).
    pub fn command(&self, command: Command) {
        if matches!(command, Command::Pace { .. }) {
            self.stats.pacing.store(true, Ordering::Release);
        }
        let _closed = self.commands.send(command);
    }

    /// Closes the socket and waits for the task.
    pub async fn close(self) {
        drop(self.commands);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Connects, upgrades, joins, then spawns the connection's task.
///
/// # Errors
/// When the TCP connection, the upgrade or the join fails or times out.
pub async fn open(spec: ConnSpec, shared: Arc<Shared>) -> Result<Conn, BenchError> {
    let ws = tokio::time::timeout(SETUP_TIMEOUT, connect_and_join(&spec))
        .await
        .map_err(|_| BenchError::setup(format!("{}: setup timed out", spec.protocol.name())))??;
    let stats = Arc::new(ConnStats::default());
    let (commands, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(ws, spec.protocol, spec.send_to.map(Arc::from), Arc::clone(&stats), shared, rx));
    Ok(Conn { stats, commands, task })
}

async fn connect_and_join(spec: &ConnSpec) -> Result<Ws, BenchError> {
    let socket = TcpSocket::new_v4().map_err(BenchError::io("socket"))?;
    if let Some(ip) = spec.source {
        socket.bind(SocketAddr::new(ip, 0)).map_err(BenchError::io(format!("bind {ip}")))?;
    }
    let stream = socket.connect(spec.addr).await.map_err(BenchError::io(format!("connect {}", spec.addr)))?;
    stream.set_nodelay(true).map_err(BenchError::io("nodelay"))?;
    let buffer = if spec.idle { 4 * 1024 } else { 64 * 1024 };
    let config = WebSocketConfig::default().read_buffer_size(buffer);
    let url = format!("ws://{}{}", spec.addr, spec.path);
    let (mut ws, _response) = tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
    match &spec.join {
        Join::Nothing => {}
        Join::Workspace(workspace) => {
            let frame = format!(r#"{{"event":"join_workspace","data":{{"workspaceId":"{workspace}"}},"ref":"join"}}"#);
            ws.send(Message::text(frame)).await?;
            loop {
                let text = next_text(&mut ws).await?;
                if text.contains(r#""ref":"join""#) {
                    if text.starts_with(r#"{"event":"ack""#) {
                        break;
                    }
                    return Err(BenchError::setup(format!("join_workspace refused: {text}")));
                }
            }
        }
        Join::SocketIo { token, conversations } => {
            let open = next_text(&mut ws).await?;
            if !open.starts_with('0') {
                return Err(BenchError::setup(format!("engine.io open expected, got {open}")));
            }
            ws.send(Message::text(format!(r#"40{{"token":"{token}"}}"#))).await?;
            loop {
                let text = next_text(&mut ws).await?;
                if text.starts_with("40") {
                    break;
                }
                if text.starts_with("44") {
                    return Err(BenchError::setup(format!("socket.io connect refused: {text}")));
                }
            }
            for (n, conversation) in conversations.iter().enumerate() {
                let frame = format!(r#"42{n}["join_conversation",{{"conversationId":"{conversation}"}}]"#);
                ws.send(Message::text(frame)).await?;
                let ack = format!("43{n}[");
                while !next_text(&mut ws).await?.starts_with(&ack) {}
            }
        }
    }
    Ok(ws)
}

/// The next text frame, answering Engine.IO pings on the way.
async fn next_text(ws: &mut Ws) -> Result<String, BenchError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                if text.as_str() == "2" {
                    ws.send(Message::text("3")).await?;
                    continue;
                }
                return Ok(text.as_str().to_owned());
            }
            Some(Ok(Message::Close(reason))) => {
                return Err(BenchError::setup(format!("closed during setup: {reason:?}")));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err(BenchError::setup("closed during setup")),
        }
    }
}

enum Mode {
    Idle,
    /// `phase` ∈ [0, 1) staggers senders: message *k* (from 0) is due at
    /// `start + (k + 1 − phase) / per_sec`, so a step of `T` seconds sends `T × per_sec`
    /// messages on average — also when that is below one per sender — and senders do not
    /// all fire together.
    Pace {
        step: u32,
        per_sec: f64,
        phase: f64,
        start: Instant,
        until: Instant,
        sent: u64,
    },
    ClosedLoop {
        step: u32,
        until: Instant,
    },
}

struct Sender {
    protocol: Protocol,
    conversation: Option<Arc<str>>,
    ack_id: u64,
    stats: Arc<ConnStats>,
    shared: Arc<Shared>,
}

impl Sender {
    async fn send(&mut self, ws: &mut Ws, step: u32, n: u64) -> Result<(), BenchError> {
        let Some(conversation) = self.conversation.clone() else { return Ok(()) };
        for _ in 0..n {
            self.ack_id += 1;
            let content = wire::content(step, self.shared.now_ns());
            ws.feed(Message::text(wire::send_frame(self.protocol, &conversation, &content, self.ack_id))).await?;
        }
        ws.flush().await?;
        self.stats.sent.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }
}

/// Longest burst a late pacing tick may send at once.
const MAX_BURST: u64 = 2_000;

async fn run(
    mut ws: Ws,
    protocol: Protocol,
    conversation: Option<Arc<str>>,
    stats: Arc<ConnStats>,
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut mode = Mode::Idle;
    let mut sender =
        Sender { protocol, conversation, ack_id: 0, stats: Arc::clone(&stats), shared: Arc::clone(&shared) };
    let mut next_tick = Instant::now();
    let outcome: Result<(), BenchError> = async {
        loop {
            let pacing = matches!(mode, Mode::Pace { .. });
            tokio::select! {
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        match wire::classify(protocol, text.as_bytes()) {
                            Incoming::Delivery { step, sent_ns } => {
                                if step == shared.step() {
                                    stats.delivered.fetch_add(1, Ordering::Relaxed);
                                    record(&stats.latency, shared.now_ns().saturating_sub(sent_ns) / 1000);
                                } else {
                                    stats.stale.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Incoming::Ack(stamp) => {
                                let current = shared.step();
                                if let Some((step, sent_ns)) = stamp {
                                    if step == current {
                                        stats.acked.fetch_add(1, Ordering::Relaxed);
                                        record(&stats.ack_latency, shared.now_ns().saturating_sub(sent_ns) / 1000);
                                    }
                                } else {
                                    stats.acked.fetch_add(1, Ordering::Relaxed);
                                }
                                if let Mode::ClosedLoop { step, until } = mode {
                                    if Instant::now() < until { sender.send(&mut ws, step, 1).await?; } else { mode = Mode::Idle; }
                                }
                            }
                            Incoming::Error => {
                                stats.errors.fetch_add(1, Ordering::Relaxed);
                                if let Mode::ClosedLoop { step, until } = mode && Instant::now() < until {
                                    sender.send(&mut ws, step, 1).await?;
                                }
                            }
                            Incoming::Ping => ws.send(Message::text("3")).await?,
                            Incoming::Other => {}
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => return Ok(()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                },
                command = commands.recv() => match command {
                    None => {
                        let _ = ws.close(None).await;
                        return Ok(());
                    }
                    Some(Command::Pace { step, per_sec, until }) => {
                        let start = Instant::now();
                        #[allow(clippy::cast_precision_loss)]
                        let phase = std::hash::RandomState::new().hash_one(step) as f64 / (u64::MAX as f64 + 1.0);
                        mode = Mode::Pace { step, per_sec, phase, start, until, sent: 0 };
                        next_tick = start;
                    }
                    Some(Command::ClosedLoop { step, window, until }) => {
                        mode = Mode::ClosedLoop { step, until };
                        sender.send(&mut ws, step, window as u64).await?;
                    }
                },
                () = tokio::time::sleep_until(next_tick), if pacing => {
                    if let Mode::Pace { step, per_sec, phase, start, until, ref mut sent } = mode {
                        let now = Instant::now();
                        let end = now.min(until);
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let target = ((end - start).as_secs_f64() * per_sec + phase) as u64;
                        let due = target.saturating_sub(*sent).min(MAX_BURST);
                        if due > 0 {
                            sender.send(&mut ws, step, due).await?;
                            *sent += due;
                        }
                        if now >= until {
                            mode = Mode::Idle;
                            // After `sent` has counted the step's last message.
                            stats.pacing.store(false, Ordering::Release);
                        } else {
                            // The next message is due at start + (sent + 1 − phase) / rate;
                            // never wake more often than every millisecond.
                            let due_at = start + Duration::from_secs_f64(((*sent + 1) as f64 - phase) / per_sec);
                            next_tick = due_at.max(now + Duration::from_millis(1)).min(until);
                        }
                    }
                }
            }
        }
    }
    .await;
    if let Err(e) = outcome {
        tracing::debug!(error = %e, "connection ended");
    }
    stats.closed.store(true, Ordering::Relaxed);
}

/// Opens `specs` with at most `parallel` handshakes at a time, in order. Stops at the first
/// failure and returns what opened with the error.
pub async fn open_many(specs: Vec<ConnSpec>, shared: &Arc<Shared>, parallel: usize) -> (Vec<Conn>, Option<BenchError>) {
    let mut opened = Vec::with_capacity(specs.len());
    let mut results =
        futures_util::stream::iter(specs.into_iter().map(|spec| open(spec, Arc::clone(shared)))).buffered(parallel);
    while let Some(result) = results.next().await {
        match result {
            Ok(conn) => opened.push(conn),
            Err(e) => return (opened, Some(e)),
        }
    }
    (opened, None)
}

/// Closes every connection.
pub async fn close_all(conns: Vec<Conn>) {
    futures_util::stream::iter(conns.into_iter().map(Conn::close)).buffer_unordered(256).collect::<Vec<()>>().await;
}

/// Sum of [`Taken`] over connections, histograms merged.
#[derive(Debug, Default)]
pub struct Totals {
    /// Deliveries.
    pub delivered: u64,
    /// Acks.
    pub acked: u64,
    /// Sends.
    pub sent: u64,
    /// Error frames.
    pub errors: u64,
    /// Late deliveries (another step's).
    pub stale: u64,
    /// Closed connections.
    pub closed: u64,
    /// Send → receive.
    pub latency: Option<Histogram<u64>>,
    /// Send → ack.
    pub ack_latency: Option<Histogram<u64>>,
}

fn merge(into: &mut Option<Histogram<u64>>, from: Option<Histogram<u64>>) {
    if let Some(from) = from {
        match into {
            Some(h) => {
                let _ = h.add(&from);
            }
            None => *into = Some(from),
        }
    }
}

/// Takes and sums every connection's counters.
#[must_use]
pub fn take_all(conns: &[Conn]) -> Totals {
    let mut t = Totals::default();
    for c in conns {
        let x = c.stats.take();
        t.delivered += x.delivered;
        t.acked += x.acked;
        t.sent += x.sent;
        t.errors += x.errors;
        t.stale += x.stale;
        t.closed += u64::from(c.stats.is_closed());
        merge(&mut t.latency, x.latency);
        merge(&mut t.ack_latency, x.ack_latency);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_paced_connection_sends_nothing_once_it_says_it_stopped_pacing() {
        let (addr, server) = crate::bare::tests::start();
        let shared = Arc::new(Shared::default());
        let spec = ConnSpec {
            protocol: Protocol::Bare,
            addr,
            path: "/ws?room=pacing".to_owned(),
            join: Join::Nothing,
            send_to: Some("pacing".to_owned()),
            source: None,
            idle: false,
        };
        let conn = open(spec, Arc::clone(&shared)).await.expect("open");
        shared.set_step(1);

        let until = Instant::now() + Duration::from_millis(200);
        conn.command(Command::Pace { step: 1, per_sec: 1000.0, until });
        assert!(conn.stats.is_pacing(), "pacing from the command on");
        tokio::time::sleep_until(until).await;
        let stopped = tokio::time::timeout(Duration::from_secs(5), async {
            while conn.stats.is_pacing() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        assert!(stopped.is_ok(), "the step's last tick ran");
        let sent = conn.stats.sent();
        // 200 ms at 1,000/s (less the few ms the task took to start), the phase adding one at most.
        assert!((190..=201).contains(&sent), "sent {sent}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(conn.stats.sent(), sent, "nothing sent after pacing ended");
        // The bare room echoes every frame to its sender: all of them come back in this step.
        let delivered = tokio::time::timeout(Duration::from_secs(5), async {
            while conn.stats.delivered() < sent {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(delivered.is_ok(), "delivered {} of {sent}", conn.stats.delivered());
        conn.close().await;
        server.abort();
    }
}
