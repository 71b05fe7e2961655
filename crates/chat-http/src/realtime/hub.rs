//! The hub: which local sockets receive which pushes.
//!
//! It indexes sockets by conversation and by workspace, so routing a push is a lookup, and the
//! same push — one `Arc` around the serialised frame — is handed to every recipient's bounded
//! queue with `try_send`: no lock is held across an await, nothing is serialised per recipient,
//! and a socket whose queue is full is a slow consumer — it is closed (1013) and recovers with
//! `resume`, rather than growing memory. `message:new` pushes pass through a per-conversation
//! sequencer so that each conversation's messages reach sockets in seq order even when two
//! sends commit in one order and publish in the other.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::wire::{Delivery, Route};
use uuid::Uuid;

/// A socket's id within this process.
pub(crate) type ConnId = u64;

/// What a socket's queue holds.
pub(crate) type Queued = Arc<Outbound>;

/// One push on its way to sockets; `seq` marks a `message:new` of `conversation`. Made once
/// per push and shared: a socket's queue holds [`Queued`] pointers, so that the slots tokio
/// allocates up front for every queue (32) cost a pointer each, not a push each.
#[derive(Debug)]
pub(crate) struct Outbound {
    pub(crate) frame: Utf8Bytes,
    pub(crate) conversation: Option<Uuid>,
    pub(crate) seq: Option<i64>,
}

/// A socket's kill switch: the hub (slow consumer) or shutdown fires it with a close code.
///
/// Only the socket's own task waits on it, so it keeps that task's waker in an
/// [`AtomicWaker`]: checking it on every wake of a busy socket is an atomic load and a waker
/// comparison, not a lock (as a `Notify` waiter's registration and removal would be).
#[derive(Debug, Default)]
pub(crate) struct Kill {
    waker: AtomicWaker,
    code: std::sync::atomic::AtomicU16,
}

impl Kill {
    /// Asks the socket to close with `code` (the first code wins); whether it was the first.
    pub(crate) fn fire(&self, code: u16) -> bool {
        let first = self.code.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire).is_ok();
        self.waker.wake();
        first
    }

    /// Waits until fired; returns the close code. Only one task may wait on a switch.
    pub(crate) fn fired(&self) -> impl Future<Output = u16> + '_ {
        std::future::poll_fn(|cx| {
            let code = self.code.load(Ordering::Acquire);
            if code != 0 {
                return Poll::Ready(code);
            }
            self.waker.register(cx.waker());
            // Fired between the load and the registration: its wake found no waker.
            match self.code.load(Ordering::Acquire) {
                0 => Poll::Pending,
                code => Poll::Ready(code),
            }
        })
    }
}

/// Close code for a consumer that fell behind (RFC 6455 "try again later"); it may `resume`.
pub(crate) const CLOSE_SLOW_CONSUMER: u16 = 1013;
/// Close code on shutdown ("going away").
pub(crate) const CLOSE_GOING_AWAY: u16 = 1001;

/// How long a gap in a conversation's seqs is waited for before later messages go out
/// anyway (the sender of the missing one died between commit and publish; clients `resume`).
const GAP_WAIT: Duration = Duration::from_millis(750);

/// The shards of every index: a power of two, about four per core, so that pushes to
/// different conversations rarely meet on a lock.
fn shard_count() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    (cores * 4).next_power_of_two()
}

/// What the hub keeps of one socket: where its pushes go, and which subscriptions it holds.
struct Conn {
    id: ConnId,
    user: Uuid,
    tx: mpsc::Sender<Queued>,
    kill: Arc<Kill>,
    /// Taken before any shard lock (never the other way round).
    subs: Mutex<Subs>,
}

#[derive(Default)]
struct Subs {
    /// Set once the socket is unregistered: nothing subscribes it any more.
    gone: bool,
    workspaces: HashSet<Uuid>,
    /// Conversations subscribed as a member.
    member_of: HashSet<Uuid>,
    /// Conversations followed with `join_conversation`.
    following: HashSet<Uuid>,
}

/// Sockets by id.
type Sockets = HashMap<ConnId, Arc<Conn>>;

/// The conversations of one shard: their subscribers, and the sequencers of their
/// `message:new` pushes. Lock order: `sequencers`, then `subscribers`.
#[derive(Default)]
struct ConversationShard {
    subscribers: RwLock<HashMap<Uuid, Sockets>>,
    sequencers: Mutex<HashMap<Uuid, Sequencer>>,
}

#[derive(Default)]
struct Sequencer {
    next: i64,
    pending: BTreeMap<i64, (Delivery, Instant)>,
}

/// Local fan-out.
///
/// Every index is sharded by the hash of its key (conversation, workspace, user, socket), so
/// a push takes one read lock on its conversation's shard, and joins and leaves elsewhere do
/// not wait for it. A conversation's entry (and its sequencer) goes when its last local
/// subscriber does; a socket's subscriptions are kept on the socket, and a user's sockets
/// are indexed, so that a member leaving is a lookup.
pub struct Hub {
    conversations: Box<[ConversationShard]>,
    workspaces: Box<[RwLock<HashMap<Uuid, Sockets>>]>,
    users: Box<[RwLock<HashMap<Uuid, Sockets>>]>,
    sockets: Box<[RwLock<Sockets>]>,
    mask: usize,
    next_id: AtomicU64,
    /// Frames handed to socket queues (`chat_ws_frames_out_total`).
    pub(crate) frames_out: Counter,
    /// Sockets closed for not keeping up (`chat_ws_slow_consumer_disconnects_total`).
    pub(crate) slow_consumers: Counter,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("shards", &self.conversations.len()).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Adds `conn` to the set under `key`.
fn insert(map: &RwLock<HashMap<Uuid, Sockets>>, key: Uuid, conn: &Arc<Conn>) -> bool {
    let mut map = write(map);
    let set = map.entry(key).or_default();
    set.insert(conn.id, Arc::clone(conn));
    set.len() == 1
}

/// Removes `id` from the set under `key`; whether the set is gone (it was the last one).
fn remove(map: &RwLock<HashMap<Uuid, Sockets>>, key: Uuid, id: ConnId) -> bool {
    let mut map = write(map);
    let Some(set) = map.get_mut(&key) else { return false };
    set.remove(&id);
    if set.is_empty() {
        map.remove(&key);
        return true;
    }
    false
}

impl Hub {
    /// An empty hub.
    #[must_use]
    pub fn new() -> Arc<Self> {
        let shards = shard_count();
        Arc::new(Self {
            conversations: (0..shards).map(|_| ConversationShard::default()).collect(),
            workspaces: (0..shards).map(|_| RwLock::default()).collect(),
            users: (0..shards).map(|_| RwLock::default()).collect(),
            sockets: (0..shards).map(|_| RwLock::default()).collect(),
            mask: shards - 1,
            next_id: AtomicU64::new(1),
            frames_out: Counter::default(),
            slow_consumers: Counter::default(),
        })
    }

    fn slot(&self, key: Uuid) -> usize {
        // Ids are random (v4) or time-ordered with random low bits (v7): the low bits spread.
        #[allow(clippy::cast_possible_truncation)]
        let low = key.as_u128() as usize;
        low & self.mask
    }

    fn conversation(&self, conversation: Uuid) -> &ConversationShard {
        &self.conversations[self.slot(conversation)]
    }

    fn workspace(&self, workspace: Uuid) -> &RwLock<HashMap<Uuid, Sockets>> {
        &self.workspaces[self.slot(workspace)]
    }

    fn user(&self, user: Uuid) -> &RwLock<HashMap<Uuid, Sockets>> {
        &self.users[self.slot(user)]
    }

    fn socket_shard(&self, id: ConnId) -> &RwLock<Sockets> {
        #[allow(clippy::cast_possible_truncation)]
        let slot = id as usize & self.mask;
        &self.sockets[slot]
    }

    fn socket(&self, id: ConnId) -> Option<Arc<Conn>> {
        read(self.socket_shard(id)).get(&id).cloned()
    }

    /// Registers a socket of `user`; pushes for it go to `tx`, and `kill` is notified when it
    /// must close for falling behind.
    pub(crate) fn register(&self, user: Uuid, tx: mpsc::Sender<Queued>, kill: Arc<Kill>) -> ConnId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn { id, user, tx, kill, subs: Mutex::default() });
        write(self.socket_shard(id)).insert(id, Arc::clone(&conn));
        insert(self.user(user), user, &conn);
        id
    }

    /// Forgets a socket; returns the workspaces no local socket is in any more (the node can
    /// leave their bus channels).
    pub(crate) fn unregister(&self, id: ConnId) -> Vec<Uuid> {
        let Some(conn) = write(self.socket_shard(id)).remove(&id) else { return Vec::new() };
        remove(self.user(conn.user), conn.user, id);
        let subs = {
            let mut subs = lock(&conn.subs);
            subs.gone = true;
            std::mem::take(&mut *subs)
        };
        for conversation in subs.member_of.union(&subs.following) {
            self.unsubscribe(id, *conversation);
        }
        subs.workspaces.into_iter().filter(|workspace| remove(self.workspace(*workspace), *workspace, id)).collect()
    }

    /// The socket joined `workspace`, where its user is a member of `heads` (conversation,
    /// last seq). Returns whether it is the first local socket in the workspace.
    pub(crate) fn join_workspace(&self, id: ConnId, workspace: Uuid, heads: &[(Uuid, i64)]) -> bool {
        let Some(conn) = self.socket(id) else { return false };
        let mut subs = lock(&conn.subs);
        if subs.gone {
            return false;
        }
        subs.workspaces.insert(workspace);
        for (conversation, last_seq) in heads {
            subs.member_of.insert(*conversation);
            self.subscribe(&conn, *conversation, Some(*last_seq));
        }
        insert(self.workspace(workspace), workspace, &conn)
    }

    /// The socket follows an open conversation it is not a member of.
    pub(crate) fn follow(&self, id: ConnId, conversation: Uuid, last_seq: i64) {
        let Some(conn) = self.socket(id) else { return };
        let mut subs = lock(&conn.subs);
        if !subs.gone {
            subs.following.insert(conversation);
            self.subscribe(&conn, conversation, Some(last_seq));
        }
    }

    /// The socket stops following (it stays subscribed where its user is a member).
    pub(crate) fn unfollow(&self, id: ConnId, conversation: Uuid) {
        let Some(conn) = self.socket(id) else { return };
        let mut subs = lock(&conn.subs);
        subs.following.remove(&conversation);
        if !subs.gone && !subs.member_of.contains(&conversation) {
            self.unsubscribe(id, conversation);
        }
    }

    /// Subscribes a socket (its `subs` lock held by the caller) to a conversation. With the
    /// conversation's `last_seq` (read when it joined), a sequencer that does not exist yet
    /// starts right after it, so that the first push through it is not taken for a gap.
    fn subscribe(&self, conn: &Arc<Conn>, conversation: Uuid, last_seq: Option<i64>) {
        let shard = self.conversation(conversation);
        let mut sequencers = lock(&shard.sequencers);
        if let Some(last_seq) = last_seq {
            sequencers
                .entry(conversation)
                .or_insert_with(|| Sequencer { next: last_seq + 1, pending: BTreeMap::new() });
        }
        write(&shard.subscribers).entry(conversation).or_default().insert(conn.id, Arc::clone(conn));
    }

    /// Unsubscribes a socket; the conversation's sequencer goes with its last subscriber
    /// (nobody here needs its order any more; the next subscriber starts one from its head).
    fn unsubscribe(&self, id: ConnId, conversation: Uuid) {
        let shard = self.conversation(conversation);
        if remove(&shard.subscribers, conversation, id) {
            let mut sequencers = lock(&shard.sequencers);
            if !read(&shard.subscribers).contains_key(&conversation) {
                sequencers.remove(&conversation);
            }
        }
    }

    /// Routes a delivery to local sockets, `message:new` in seq order per conversation.
    pub(crate) fn deliver(self: &Arc<Self>, delivery: Delivery) {
        let Route::Conversation { conversation, seq: Some(seq), .. } = delivery.route else {
            self.fan_out(&delivery);
            return;
        };
        let shard = self.conversation(conversation);
        let mut arm_timer = false;
        {
            let mut sequencers = lock(&shard.sequencers);
            let sequencer = match sequencers.get_mut(&conversation) {
                Some(sequencer) => sequencer,
                // No sequencer and no subscriber: nobody on this node receives it.
                None if !read(&shard.subscribers).contains_key(&conversation) => return,
                None => sequencers.entry(conversation).or_insert(Sequencer { next: seq, pending: BTreeMap::new() }),
            };
            if seq < sequencer.next {
                // Late or repeated: sockets drop what they already have.
                self.fan_out(&delivery);
            } else if seq == sequencer.next {
                self.fan_out(&delivery);
                sequencer.next += 1;
                while let Some((d, _)) = sequencer.pending.remove(&sequencer.next) {
                    self.fan_out(&d);
                    sequencer.next += 1;
                }
            } else {
                arm_timer = sequencer.pending.is_empty();
                sequencer.pending.insert(seq, (delivery, Instant::now()));
            }
        }
        if arm_timer {
            let hub = Arc::clone(self);
            tokio::spawn(async move {
                tokio::time::sleep(GAP_WAIT).await;
                hub.skip_gap(conversation);
            });
        }
    }

    /// A gap did not fill in time: delivers what waits behind it, in order.
    fn skip_gap(self: &Arc<Self>, conversation: Uuid) {
        let mut rearm = false;
        {
            let mut sequencers = lock(&self.conversation(conversation).sequencers);
            let Some(sequencer) = sequencers.get_mut(&conversation) else { return };
            while let Some((&seq, (_, since))) = sequencer.pending.first_key_value() {
                if seq != sequencer.next && since.elapsed() < GAP_WAIT {
                    rearm = true;
                    break;
                }
                if let Some((d, _)) = sequencer.pending.remove(&seq) {
                    tracing::debug!(%conversation, from = sequencer.next, to = seq, "seq gap skipped");
                    self.fan_out(&d);
                }
                sequencer.next = seq + 1;
            }
        }
        if rearm {
            let hub = Arc::clone(self);
            tokio::spawn(async move {
                tokio::time::sleep(GAP_WAIT).await;
                hub.skip_gap(conversation);
            });
        }
    }

    /// Offers a frame to one socket's queue; a full queue marks it slow. Whether it was
    /// queued.
    fn offer(&self, conn: &Conn, out: &Queued) -> bool {
        match conn.tx.try_send(Arc::clone(out)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Counted once per socket, however many pushes it misses before it closes.
                if conn.kill.fire(CLOSE_SLOW_CONSUMER) {
                    self.slow_consumers.inc();
                }
                false
            }
            // The socket is closing; its task unregisters it.
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Hands the one serialised push to each socket: a reference-count bump per recipient,
    /// under one read lock, and one counter update per push.
    fn fan_out(&self, delivery: &Delivery) {
        let mut queued = 0_u64;
        match &delivery.route {
            Route::Conversation { conversation, seq, except, left, .. } => {
                {
                    let out = Arc::new(Outbound {
                        frame: delivery.frame.clone(),
                        conversation: Some(*conversation),
                        seq: *seq,
                    });
                    let subscribers = read(&self.conversation(*conversation).subscribers);
                    for conn in subscribers.get(conversation).into_iter().flat_map(HashMap::values) {
                        if except.is_some_and(|u| conn.user == u) {
                            continue;
                        }
                        queued += u64::from(self.offer(conn, &out));
                    }
                }
                if let Some(user) = left {
                    self.forget_membership(*conversation, *user);
                }
            }
            Route::Workspace { workspace } => {
                let out = Arc::new(Outbound { frame: delivery.frame.clone(), conversation: None, seq: None });
                let sockets = read(self.workspace(*workspace));
                for conn in sockets.get(workspace).into_iter().flat_map(HashMap::values) {
                    queued += u64::from(self.offer(conn, &out));
                }
            }
            Route::Newcomers { workspace, conversation, users } => {
                let out =
                    Arc::new(Outbound { frame: delivery.frame.clone(), conversation: Some(*conversation), seq: None });
                for user in users {
                    for conn in self.sockets_of(*user) {
                        {
                            let mut subs = lock(&conn.subs);
                            if subs.gone || !subs.workspaces.contains(workspace) {
                                continue;
                            }
                            subs.member_of.insert(*conversation);
                            self.subscribe(&conn, *conversation, None);
                        }
                        queued += u64::from(self.offer(&conn, &out));
                    }
                }
            }
        }
        self.frames_out.inc_by(queued);
    }

    /// A user's local sockets.
    fn sockets_of(&self, user: Uuid) -> Vec<Arc<Conn>> {
        read(self.user(user)).get(&user).map(|set| set.values().cloned().collect()).unwrap_or_default()
    }

    /// `user` left `conversation`: their sockets stop receiving it (unless following it).
    fn forget_membership(&self, conversation: Uuid, user: Uuid) {
        for conn in self.sockets_of(user) {
            let mut subs = lock(&conn.subs);
            subs.member_of.remove(&conversation);
            if !subs.gone && !subs.following.contains(&conversation) {
                self.unsubscribe(conn.id, conversation);
            }
        }
    }

    fn every_socket(&self) -> impl Iterator<Item = Arc<Conn>> + '_ {
        self.sockets.iter().flat_map(|shard| read(shard).values().cloned().collect::<Vec<_>>())
    }

    /// Every local socket's kill switch (graceful shutdown closes them all).
    pub(crate) fn kill_all(&self, code: u16) {
        for conn in self.every_socket() {
            conn.kill.fire(code);
        }
    }

    /// Open sockets on this node.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.sockets.iter().map(|shard| read(shard).len()).sum()
    }

    /// Pushes queued for local sockets and not yet written (read when metrics are scraped).
    #[must_use]
    pub fn queued(&self) -> usize {
        self.sockets
            .iter()
            .map(|shard| read(shard).values().map(|c| c.tx.max_capacity() - c.tx.capacity()).sum::<usize>())
            .sum()
    }

    /// Conversations with local subscribers, and sequencers kept (what the hub's memory
    /// follows).
    #[cfg(test)]
    fn tracked(&self) -> (usize, usize) {
        self.conversations
            .iter()
            .map(|shard| (read(&shard.subscribers).len(), lock(&shard.sequencers).len()))
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(hub: &Hub, user: Uuid) -> (ConnId, mpsc::Receiver<Queued>) {
        let (tx, rx) = mpsc::channel(16);
        (hub.register(user, tx, Arc::new(Kill::default())), rx)
    }

    fn message(workspace: Uuid, conversation: Uuid, seq: i64) -> Delivery {
        let route = Route::Conversation { workspace, conversation, seq: Some(seq), except: None, left: None };
        Delivery { route, frame: Utf8Bytes::from(format!("m{seq}")) }
    }

    fn left(workspace: Uuid, conversation: Uuid, user: Uuid) -> Delivery {
        let route = Route::Conversation { workspace, conversation, seq: None, except: None, left: Some(user) };
        Delivery { route, frame: Utf8Bytes::from_static("left") }
    }

    fn drain(rx: &mut mpsc::Receiver<Queued>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok()).map(|out| out.frame.to_string()).collect()
    }

    #[tokio::test]
    async fn a_kill_switch_wakes_its_waiting_task_with_the_first_code_fired() {
        let kill = Arc::new(Kill::default());
        let waiting = tokio::spawn({
            let kill = Arc::clone(&kill);
            async move { kill.fired().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "not fired yet");
        assert!(kill.fire(CLOSE_SLOW_CONSUMER));
        assert!(!kill.fire(CLOSE_GOING_AWAY), "only the first fire counts");
        let code = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("woken").expect("task");
        assert_eq!(code, CLOSE_SLOW_CONSUMER);
        // Fired before anyone waits: the wait ends at once.
        assert_eq!(kill.fired().await, CLOSE_SLOW_CONSUMER);
    }

    #[tokio::test]
    async fn message_pushes_reach_sockets_in_seq_order_whatever_order_they_arrive_in() {
        let hub = Hub::new();
        let (workspace, conversation) = (Uuid::new_v4(), Uuid::new_v4());
        let (id, mut rx) = socket(&hub, Uuid::new_v4());
        hub.join_workspace(id, workspace, &[(conversation, 4)]);
        for seq in [7, 5, 6] {
            hub.deliver(message(workspace, conversation, seq));
        }
        assert_eq!(drain(&mut rx), ["m5", "m6", "m7"]);
    }

    #[test]
    fn a_conversation_and_its_sequencer_go_with_its_last_local_subscriber() {
        let hub = Hub::new();
        let (workspace, conversation) = (Uuid::new_v4(), Uuid::new_v4());
        let (ada, _ada_rx) = socket(&hub, Uuid::new_v4());
        let (bob, _bob_rx) = socket(&hub, Uuid::new_v4());
        hub.join_workspace(ada, workspace, &[(conversation, 0)]);
        hub.follow(bob, conversation, 0);
        assert_eq!(hub.tracked(), (1, 1));
        hub.unregister(ada);
        assert_eq!(hub.tracked(), (1, 1), "bob still follows it");
        hub.unfollow(bob, conversation);
        assert_eq!(hub.tracked(), (0, 0));

        // A push for a conversation nobody here subscribes to leaves nothing behind.
        hub.deliver(message(workspace, conversation, 1));
        assert_eq!(hub.tracked(), (0, 0));
        assert_eq!(hub.connections(), 1);
    }

    #[test]
    fn a_member_who_leaves_stops_receiving_on_every_socket_unless_following() {
        let hub = Hub::new();
        let (workspace, conversation) = (Uuid::new_v4(), Uuid::new_v4());
        let (ada, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let (tab1, mut tab1_rx) = socket(&hub, ada);
        let (tab2, mut tab2_rx) = socket(&hub, ada);
        let (bobs, mut bob_rx) = socket(&hub, bob);
        for id in [tab1, tab2, bobs] {
            hub.join_workspace(id, workspace, &[(conversation, 0)]);
        }
        hub.follow(tab2, conversation, 0);
        hub.deliver(left(workspace, conversation, ada));
        hub.deliver(message(workspace, conversation, 1));
        assert_eq!(drain(&mut tab1_rx), ["left"]);
        assert_eq!(drain(&mut tab2_rx), ["left", "m1"], "the second tab follows it");
        assert_eq!(drain(&mut bob_rx), ["left", "m1"]);
    }

    #[test]
    fn unregistering_reports_the_workspaces_left_without_local_sockets() {
        let hub = Hub::new();
        let (w1, w2) = (Uuid::new_v4(), Uuid::new_v4());
        let (a, _a_rx) = socket(&hub, Uuid::new_v4());
        let (b, _b_rx) = socket(&hub, Uuid::new_v4());
        assert!(hub.join_workspace(a, w1, &[]));
        assert!(hub.join_workspace(a, w2, &[]));
        assert!(!hub.join_workspace(b, w1, &[]));
        assert_eq!(hub.unregister(a), [w2]);
        assert_eq!(hub.unregister(b), [w1]);
        assert_eq!(hub.connections(), 0);
        assert!(hub.unregister(b).is_empty());
    }
}
