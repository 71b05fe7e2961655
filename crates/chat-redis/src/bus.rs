//! The cluster bus over Redis pub/sub: one channel per workspace, a dedicated subscription
//! connection read by a background task, a separate multiplexed connection for `PUBLISH`.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chat_domain::error::RepoError;
use chat_domain::ids::WorkspaceId;
use chat_domain::realtime::ClusterBus;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, PubSubSink, PubSubStream};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, timeout};
use uuid::Uuid;

use crate::{COMMAND_TIMEOUT, CONNECT_TIMEOUT, command_connection, open_client};

/// Bytes of the publishing node's id at the start of every frame.
const NODE_ID_LEN: usize = 16;

/// How long the reader waits for the receiver to take a payload before dropping it (and
/// every following payload the receiver has no room for, until it has room again).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(1);

/// How often the subscription connection is pinged, so that a half-open socket (a peer that
/// vanished without a FIN) is noticed within `PING_INTERVAL + COMMAND_TIMEOUT`.
const PING_INTERVAL: Duration = Duration::from_secs(15);

/// First and longest pause between reconnection attempts (doubling, with jitter).
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Channels per `SUBSCRIBE` when re-subscribing after a reconnection.
const SUBSCRIBE_BATCH: usize = 512;

/// What the bus's subscription side is doing, for readiness checks, metrics and tests
/// ([`RedisBus::state`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BusState {
    /// The subscription connection is up and subscribed to every wanted workspace.
    pub connected: bool,
    /// How many times the subscription connection has been established (1 right after
    /// [`RedisBus::connect`]; each reconnection adds one).
    pub connections: u64,
    /// Payloads received for this node but dropped because the receiver had no room for them
    /// (see [`RedisBus`] on back-pressure).
    pub dropped: u64,
}

/// [`ClusterBus`] over Redis pub/sub.
///
/// - **Channels.** Workspace `w` is channel `{namespace}:ws:{w}`; a node subscribes only to
///   the workspaces it has sockets in.
/// - **Frames.** `node id (16 bytes) ‖ payload`. The reader drops frames carrying its own
///   node id, and frames of workspaces it no longer wants (so nothing of a workspace is
///   handed over once [`unsubscribe`](ClusterBus::unsubscribe) has returned).
/// - **Ordering.** One connection publishes and one reads, and the reader forwards
///   sequentially, so payloads of one publisher on one workspace arrive in publish order.
/// - **Back-pressure.** The reader awaits room in the bounded `incoming` channel, so a busy
///   receiver slows the reader down rather than reordering anything. But it never waits
///   longer than one second for one payload: after that the receiver is deemed stuck, the
///   payload is dropped, and so is every following payload the channel has no room for
///   until the receiver takes one again; drops are logged once per episode and counted in
///   [`BusState::dropped`]. A stuck hub thus costs its clients events (which `resume` brings
///   back), never an unbounded queue in this process or a stalled reader.
/// - **Reconnection.** When the subscription connection closes, a ping goes unanswered, or a
///   (un)subscribe command fails, the reader reconnects with exponential backoff (0.1 s
///   doubling to 5 s, jittered) and subscribes again to every workspace wanted at that
///   moment. Payloads published meanwhile are lost to this node (pub/sub is at-most-once).
///   `PUBLISH` goes through a separate self-healing connection.
///
/// Dropping the bus stops its reader.
pub struct RedisBus {
    node_id: Uuid,
    publisher: ConnectionManager,
    shared: Arc<Shared>,
    state: watch::Receiver<BusState>,
    reader: JoinHandle<()>,
}

/// What the bus's methods and its reader share.
struct Shared {
    /// `{namespace}:ws:`
    channel_prefix: String,
    /// The workspaces this node wants. Changed only while `link` is locked, so that the
    /// set and the connection's subscriptions change in the same order.
    wanted: Mutex<HashSet<WorkspaceId>>,
    /// The command half of the current subscription connection; `None` while reconnecting.
    link: tokio::sync::Mutex<Option<Link>>,
    /// Generations of links whose subscriptions are in doubt (a command failed or timed
    /// out): the reader replaces that link.
    doubts: mpsc::Sender<u64>,
}

struct Link {
    generation: u64,
    sink: PubSubSink,
}

impl Shared {
    fn channel(&self, workspace: WorkspaceId) -> String {
        format!("{}{workspace}", self.channel_prefix)
    }

    fn workspace_of(&self, channel: &str) -> Option<WorkspaceId> {
        channel.strip_prefix(self.channel_prefix.as_str())?.parse().ok()
    }

    fn wanted(&self) -> MutexGuard<'_, HashSet<WorkspaceId>> {
        self.wanted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn doubt(&self, generation: u64) {
        // Full means a doubt is already pending, which will replace the link just the same.
        let _ = self.doubts.try_send(generation);
    }
}

impl fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBus")
            .field("node_id", &self.node_id)
            .field("channel_prefix", &self.shared.channel_prefix)
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

impl RedisBus {
    /// Connects to Redis at `url`, with channels under `namespace`; payloads of subscribed
    /// workspaces published by other nodes are sent to `incoming` (give it a bounded channel:
    /// it is the back-pressure between the bus and the hub).
    ///
    /// # Errors
    /// [`RepoError`] when the URL is malformed or Redis cannot be reached now (later losses
    /// are repaired in the background).
    #[tracing::instrument(skip_all, fields(namespace = namespace))]
    pub async fn connect(
        url: &str,
        namespace: &str,
        incoming: mpsc::Sender<(WorkspaceId, Vec<u8>)>,
    ) -> Result<Self, RepoError> {
        let client = open_client(url)?;
        let publisher = command_connection(&client).await?;
        let (sink, stream) = open_subscriber(&client).await?.split();
        let node_id = Uuid::new_v4();
        let (doubts_tx, doubts_rx) = mpsc::channel(4);
        let shared = Arc::new(Shared {
            channel_prefix: format!("{namespace}:ws:"),
            wanted: Mutex::new(HashSet::new()),
            link: tokio::sync::Mutex::new(Some(Link { generation: 1, sink })),
            doubts: doubts_tx,
        });
        let (state_tx, state) = watch::channel(BusState { connected: true, connections: 1, dropped: 0 });
        let reader = Reader {
            client,
            shared: Arc::clone(&shared),
            node_id,
            incoming,
            state: state_tx,
            doubts: doubts_rx,
            lagging: false,
        };
        let reader = tokio::spawn(reader.run(stream, 1));
        tracing::debug!(node = %node_id, "Redis bus connected");
        Ok(Self { node_id, publisher, shared, state, reader })
    }

    /// This node's random id, carried by every frame it publishes.
    #[must_use]
    pub const fn node_id(&self) -> Uuid {
        self.node_id
    }

    /// Watches the subscription side: connected or not, connections made, payloads dropped.
    #[must_use]
    pub fn state(&self) -> watch::Receiver<BusState> {
        self.state.clone()
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[async_trait]
impl ClusterBus for RedisBus {
    #[tracing::instrument(skip_all, fields(workspace = %workspace, bytes = payload.len()))]
    async fn publish(&self, workspace: WorkspaceId, payload: Vec<u8>) -> Result<(), RepoError> {
        let mut frame = Vec::with_capacity(NODE_ID_LEN + payload.len());
        frame.extend_from_slice(self.node_id.as_bytes());
        frame.extend_from_slice(&payload);
        let mut conn = self.publisher.clone();
        redis::cmd("PUBLISH")
            .arg(self.shared.channel(workspace))
            .arg(frame)
            .query_async::<i64>(&mut conn)
            .await
            .map(|_receivers| ())
            .map_err(|e| RepoError::new("publishing on the Redis bus", e))
    }

    /// On `Err` the wish is kept: the workspace is subscribed as soon as the connection is
    /// back, and payloads arrive from then on.
    #[tracing::instrument(skip_all, fields(workspace = %workspace))]
    async fn subscribe(&self, workspace: WorkspaceId) -> Result<(), RepoError> {
        let link = self.shared.link.lock().await;
        if !self.shared.wanted().insert(workspace) {
            return Ok(());
        }
        let Some(link) = link.as_ref() else {
            return Err(RepoError::msg("the Redis bus is reconnecting; the subscription follows"));
        };
        let mut sink = link.sink.clone();
        match timeout(COMMAND_TIMEOUT, sink.subscribe(self.shared.channel(workspace))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.shared.doubt(link.generation);
                Err(RepoError::new("subscribing on the Redis bus", e))
            }
            Err(_) => {
                self.shared.doubt(link.generation);
                Err(RepoError::msg("subscribing on the Redis bus timed out"))
            }
        }
    }

    /// Payloads of `workspace` stop being handed over when this returns, even on `Err`.
    #[tracing::instrument(skip_all, fields(workspace = %workspace))]
    async fn unsubscribe(&self, workspace: WorkspaceId) -> Result<(), RepoError> {
        let link = self.shared.link.lock().await;
        if !self.shared.wanted().remove(&workspace) {
            return Ok(());
        }
        // While reconnecting nothing is subscribed, and the new connection will not be.
        let Some(link) = link.as_ref() else { return Ok(()) };
        let mut sink = link.sink.clone();
        match timeout(COMMAND_TIMEOUT, sink.unsubscribe(self.shared.channel(workspace))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.shared.doubt(link.generation);
                Err(RepoError::new("unsubscribing on the Redis bus", e))
            }
            Err(_) => {
                self.shared.doubt(link.generation);
                Err(RepoError::msg("unsubscribing on the Redis bus timed out"))
            }
        }
    }
}

async fn open_subscriber(client: &redis::Client) -> Result<redis::aio::PubSub, RepoError> {
    match timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await {
        Ok(Ok(pubsub)) => Ok(pubsub),
        Ok(Err(e)) => Err(RepoError::new("opening the Redis bus subscription connection", e)),
        Err(_) => Err(RepoError::msg("opening the Redis bus subscription connection timed out")),
    }
}

/// Why the reader stopped reading a connection.
enum Flow {
    /// The connection is gone or in doubt: make a new one.
    Reconnect(&'static str),
    /// The receiver is gone: the bus has no one to deliver to.
    Stop,
}

/// The background task that owns the subscription connection's stream.
struct Reader {
    client: redis::Client,
    shared: Arc<Shared>,
    node_id: Uuid,
    incoming: mpsc::Sender<(WorkspaceId, Vec<u8>)>,
    state: watch::Sender<BusState>,
    doubts: mpsc::Receiver<u64>,
    /// The receiver had no room for a whole `FORWARD_TIMEOUT`: drop what does not fit.
    lagging: bool,
}

impl Reader {
    async fn run(mut self, mut stream: PubSubStream, mut generation: u64) {
        loop {
            let why = match self.read(&mut stream, generation).await {
                Flow::Reconnect(why) => why,
                Flow::Stop => break,
            };
            drop(stream);
            *self.shared.link.lock().await = None;
            self.state.send_modify(|s| s.connected = false);
            tracing::warn!(reason = why, "Redis bus subscription lost; reconnecting");
            generation += 1;
            match self.reconnect(generation).await {
                Some(next) => stream = next,
                None => break,
            }
        }
        tracing::debug!("Redis bus reader stopped: its receiver is gone");
    }

    async fn read(&mut self, stream: &mut PubSubStream, generation: u64) -> Flow {
        let mut ping = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(msg) => {
                        if self.deliver(&msg).await.is_err() {
                            return Flow::Stop;
                        }
                    }
                    None => return Flow::Reconnect("connection closed"),
                },
                _ = ping.tick() => {
                    if !self.ping(generation).await {
                        return Flow::Reconnect("ping unanswered");
                    }
                }
                Some(doubtful) = self.doubts.recv() => {
                    if doubtful == generation {
                        return Flow::Reconnect("a subscription command failed");
                    }
                }
            }
        }
    }

    async fn ping(&self, generation: u64) -> bool {
        let sink = match self.shared.link.lock().await.as_ref() {
            Some(link) if link.generation == generation => link.sink.clone(),
            _ => return false,
        };
        let mut sink = sink;
        matches!(timeout(COMMAND_TIMEOUT, sink.ping::<redis::Value>()).await, Ok(Ok(_)))
    }

    /// Hands one frame to the receiver; `Err` when the receiver is gone.
    async fn deliver(&mut self, msg: &redis::Msg) -> Result<(), ()> {
        let Some(workspace) = self.shared.workspace_of(msg.get_channel_name()) else { return Ok(()) };
        if !self.shared.wanted().contains(&workspace) {
            return Ok(());
        }
        let frame = msg.get_payload_bytes();
        let Some((from, payload)) = frame.split_at_checked(NODE_ID_LEN) else {
            tracing::debug!(workspace = %workspace, "dropped a frame too short to carry a node id");
            return Ok(());
        };
        if from == self.node_id.as_bytes() {
            return Ok(());
        }
        self.forward(workspace, payload.to_vec()).await
    }

    async fn forward(&mut self, workspace: WorkspaceId, payload: Vec<u8>) -> Result<(), ()> {
        if self.lagging {
            return match self.incoming.try_send((workspace, payload)) {
                Ok(()) => {
                    self.lagging = false;
                    tracing::info!("Redis bus receiver caught up; delivering again");
                    Ok(())
                }
                Err(TrySendError::Full(_)) => {
                    self.state.send_modify(|s| s.dropped += 1);
                    Ok(())
                }
                Err(TrySendError::Closed(_)) => Err(()),
            };
        }
        match timeout(FORWARD_TIMEOUT, self.incoming.send((workspace, payload))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_closed)) => Err(()),
            Err(_) => {
                self.lagging = true;
                self.state.send_modify(|s| s.dropped += 1);
                tracing::warn!(
                    workspace = %workspace,
                    "Redis bus receiver took nothing for {FORWARD_TIMEOUT:?}; dropping payloads until it has room"
                );
                Ok(())
            }
        }
    }

    /// Connects again (backing off between failures) and subscribes to every wanted
    /// workspace; `None` when the receiver went away meanwhile.
    async fn reconnect(&mut self, generation: u64) -> Option<PubSubStream> {
        let mut delay = BACKOFF_MIN;
        loop {
            if self.incoming.is_closed() {
                return None;
            }
            match self.establish(generation).await {
                Ok(stream) => {
                    tracing::info!(generation, "Redis bus subscription re-established");
                    return Some(stream);
                }
                Err(e) => {
                    let pause = jittered(delay);
                    tracing::warn!(error = %e, retry_in_ms = pause.as_millis(), "Redis bus reconnection failed");
                    tokio::time::sleep(pause).await;
                    delay = (delay * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    async fn establish(&mut self, generation: u64) -> Result<PubSubStream, RepoError> {
        let (mut sink, stream) = open_subscriber(&self.client).await?.split();
        let mut link = self.shared.link.lock().await;
        let channels: Vec<String> = self.shared.wanted().iter().map(|w| self.shared.channel(*w)).collect();
        for batch in channels.chunks(SUBSCRIBE_BATCH) {
            match timeout(COMMAND_TIMEOUT, sink.subscribe(batch)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(RepoError::new("re-subscribing on the Redis bus", e)),
                Err(_) => return Err(RepoError::msg("re-subscribing on the Redis bus timed out")),
            }
        }
        *link = Some(Link { generation, sink });
        drop(link);
        // Doubts about earlier links are settled by this one.
        while self.doubts.try_recv().is_ok() {}
        self.state.send_modify(|s| {
            s.connected = true;
            s.connections += 1;
        });
        Ok(stream)
    }
}

/// `delay` scaled by a random factor in [0.5, 1.5), so that nodes cut off together do not
/// reconnect in lockstep.
fn jittered(delay: Duration) -> Duration {
    let permille = u32::try_from(Uuid::new_v4().as_u128() % 1000).unwrap_or(0);
    delay * (500 + permille) / 1000
}
