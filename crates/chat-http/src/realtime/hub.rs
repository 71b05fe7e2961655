//! The hub: which local sockets receive which pushes.
//!
//! It indexes sockets by conversation and by workspace, so routing a push is a lookup, and the
//! same serialised frame (a cheaply cloned `ByteString`) is handed to every recipient's bounded
//! queue with `try_send`: no lock is held across an await, nothing is serialised per recipient,
//! and a socket whose queue is full is a slow consumer — it is closed (1013) and recovers with
//! `resume`, rather than growing memory. `message:new` pushes pass through a per-conversation
//! sequencer so that each conversation's messages reach sockets in seq order even when two
//! sends commit in one order and publish in the other.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use bytestring::ByteString;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{Notify, mpsc};

use super::wire::{Delivery, Route};
use uuid::Uuid;

/// A socket's id within this process.
pub(crate) type ConnId = u64;

/// One frame on its way to a socket; `seq` marks a `message:new` of `conversation`.
#[derive(Clone, Debug)]
pub(crate) struct Outbound {
    pub(crate) frame: ByteString,
    pub(crate) conversation: Option<Uuid>,
    pub(crate) seq: Option<i64>,
}

/// A socket's kill switch: the hub (slow consumer) or shutdown fires it with a close code.
#[derive(Debug, Default)]
pub(crate) struct Kill {
    notify: Notify,
    code: std::sync::atomic::AtomicU16,
}

impl Kill {
    /// Asks the socket to close with `code` (the first code wins).
    pub(crate) fn fire(&self, code: u16) -> bool {
        let first = self.code.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire).is_ok();
        self.notify.notify_one();
        first
    }

    /// Waits until fired; returns the close code.
    pub(crate) async fn fired(&self) -> u16 {
        self.notify.notified().await;
        self.code.load(Ordering::Acquire)
    }
}

/// Close code for a consumer that fell behind (RFC 6455 "try again later"); it may `resume`.
pub(crate) const CLOSE_SLOW_CONSUMER: u16 = 1013;
/// Close code on shutdown ("going away").
pub(crate) const CLOSE_GOING_AWAY: u16 = 1001;

/// How long a gap in a conversation's seqs is waited for before later messages go out
/// anyway (the sender of the missing one died between commit and publish; clients `resume`).
const GAP_WAIT: Duration = Duration::from_millis(750);

struct Conn {
    user: Uuid,
    tx: mpsc::Sender<Outbound>,
    kill: Arc<Kill>,
    workspaces: HashSet<Uuid>,
    /// Conversations subscribed as a member.
    member_of: HashSet<Uuid>,
    /// Conversations followed with `join_conversation`.
    following: HashSet<Uuid>,
}

#[derive(Default)]
struct State {
    conns: HashMap<ConnId, Conn>,
    by_conversation: HashMap<Uuid, HashSet<ConnId>>,
    by_workspace: HashMap<Uuid, HashSet<ConnId>>,
}

#[derive(Default)]
struct Sequencer {
    next: i64,
    pending: BTreeMap<i64, (Delivery, Instant)>,
}

/// Local fan-out.
pub struct Hub {
    state: RwLock<State>,
    sequencers: Mutex<HashMap<Uuid, Sequencer>>,
    next_id: AtomicU64,
    /// Frames handed to socket queues (`chat_ws_frames_out_total`).
    pub(crate) frames_out: Counter,
    /// Sockets closed for not keeping up (`chat_ws_slow_consumer_disconnects_total`).
    pub(crate) slow_consumers: Counter,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl State {
    fn subscribe(&mut self, id: ConnId, conversation: Uuid) {
        self.by_conversation.entry(conversation).or_default().insert(id);
    }

    fn unsubscribe(&mut self, id: ConnId, conversation: Uuid) {
        if let Some(set) = self.by_conversation.get_mut(&conversation) {
            set.remove(&id);
            if set.is_empty() {
                self.by_conversation.remove(&conversation);
            }
        }
    }
}

impl Hub {
    /// An empty hub.
    #[must_use]
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: RwLock::new(State::default()),
            sequencers: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            frames_out: Counter::default(),
            slow_consumers: Counter::default(),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a socket of `user`; pushes for it go to `tx`, and `kill` is notified when it
    /// must close for falling behind.
    pub(crate) fn register(&self, user: Uuid, tx: mpsc::Sender<Outbound>, kill: Arc<Kill>) -> ConnId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn =
            Conn { user, tx, kill, workspaces: HashSet::new(), member_of: HashSet::new(), following: HashSet::new() };
        self.write().conns.insert(id, conn);
        id
    }

    /// Forgets a socket; returns the workspaces no local socket is in any more (the node can
    /// leave their bus channels).
    pub(crate) fn unregister(&self, id: ConnId) -> Vec<Uuid> {
        let mut state = self.write();
        let Some(conn) = state.conns.remove(&id) else { return Vec::new() };
        for conversation in conn.member_of.iter().chain(&conn.following) {
            state.unsubscribe(id, *conversation);
        }
        let mut emptied = Vec::new();
        for workspace in conn.workspaces {
            if let Some(set) = state.by_workspace.get_mut(&workspace) {
                set.remove(&id);
                if set.is_empty() {
                    state.by_workspace.remove(&workspace);
                    emptied.push(workspace);
                }
            }
        }
        emptied
    }

    /// The socket joined `workspace`, where its user is a member of `heads` (conversation,
    /// last seq). Returns whether it is the first local socket in the workspace.
    pub(crate) fn join_workspace(&self, id: ConnId, workspace: Uuid, heads: &[(Uuid, i64)]) -> bool {
        self.start_sequencers(heads);
        let mut state = self.write();
        let Some(conn) = state.conns.get_mut(&id) else { return false };
        conn.workspaces.insert(workspace);
        conn.member_of.extend(heads.iter().map(|(c, _)| *c));
        for (conversation, _) in heads {
            state.subscribe(id, *conversation);
        }
        let sockets = state.by_workspace.entry(workspace).or_default();
        sockets.insert(id);
        sockets.len() == 1
    }

    /// The socket follows an open conversation it is not a member of.
    pub(crate) fn follow(&self, id: ConnId, conversation: Uuid, last_seq: i64) {
        self.start_sequencers(&[(conversation, last_seq)]);
        let mut state = self.write();
        if let Some(conn) = state.conns.get_mut(&id) {
            conn.following.insert(conversation);
            state.subscribe(id, conversation);
        }
    }

    /// The socket stops following (it stays subscribed where its user is a member).
    pub(crate) fn unfollow(&self, id: ConnId, conversation: Uuid) {
        let mut state = self.write();
        let Some(conn) = state.conns.get_mut(&id) else { return };
        conn.following.remove(&conversation);
        if !conn.member_of.contains(&conversation) {
            state.unsubscribe(id, conversation);
        }
    }

    fn start_sequencers(&self, heads: &[(Uuid, i64)]) {
        let mut sequencers = lock(&self.sequencers);
        for (conversation, last_seq) in heads {
            sequencers
                .entry(*conversation)
                .or_insert_with(|| Sequencer { next: last_seq + 1, pending: BTreeMap::new() });
        }
    }

    /// Routes a delivery to local sockets, `message:new` in seq order per conversation.
    pub(crate) fn deliver(self: &Arc<Self>, delivery: Delivery) {
        let Route::Conversation { conversation, seq: Some(seq), .. } = delivery.route else {
            self.fan_out(&delivery);
            return;
        };
        let mut arm_timer = false;
        {
            let mut sequencers = lock(&self.sequencers);
            let sequencer =
                sequencers.entry(conversation).or_insert_with(|| Sequencer { next: seq, pending: BTreeMap::new() });
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
            let mut sequencers = lock(&self.sequencers);
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

    /// Offers a frame to one socket's queue; a full queue marks it slow.
    fn offer(&self, conn: &Conn, out: Outbound) -> bool {
        match conn.tx.try_send(out) {
            Ok(()) => {
                self.frames_out.inc();
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Counted once per socket, however many pushes it misses before it closes.
                if conn.kill.fire(CLOSE_SLOW_CONSUMER) {
                    self.slow_consumers.inc();
                }
                false
            }
            // The socket is closing; its task unregisters it.
            Err(mpsc::error::TrySendError::Closed(_)) => true,
        }
    }

    fn fan_out(&self, delivery: &Delivery) {
        match &delivery.route {
            Route::Conversation { conversation, seq, except, left, .. } => {
                {
                    let state = self.read();
                    for id in state.by_conversation.get(conversation).into_iter().flatten() {
                        let Some(conn) = state.conns.get(id) else { continue };
                        if except.is_some_and(|u| conn.user == u) {
                            continue;
                        }
                        let out =
                            Outbound { frame: delivery.frame.clone(), conversation: Some(*conversation), seq: *seq };
                        self.offer(conn, out);
                    }
                }
                if let Some(user) = left {
                    self.forget_membership(*conversation, *user);
                }
            }
            Route::Workspace { workspace } => {
                let state = self.read();
                for id in state.by_workspace.get(workspace).into_iter().flatten() {
                    if let Some(conn) = state.conns.get(id) {
                        let out = Outbound { frame: delivery.frame.clone(), conversation: None, seq: None };
                        self.offer(conn, out);
                    }
                }
            }
            Route::Newcomers { workspace, conversation, users } => {
                let mut state = self.write();
                let targets: Vec<ConnId> = state
                    .by_workspace
                    .get(workspace)
                    .into_iter()
                    .flatten()
                    .filter(|id| state.conns.get(id).is_some_and(|c| users.contains(&c.user)))
                    .copied()
                    .collect();
                for id in targets {
                    if let Some(conn) = state.conns.get_mut(&id) {
                        conn.member_of.insert(*conversation);
                    }
                    state.subscribe(id, *conversation);
                    if let Some(conn) = state.conns.get(&id) {
                        let out =
                            Outbound { frame: delivery.frame.clone(), conversation: Some(*conversation), seq: None };
                        self.offer(conn, out);
                    }
                }
            }
        }
    }

    /// `user` left `conversation`: their sockets stop receiving it (unless following it).
    fn forget_membership(&self, conversation: Uuid, user: Uuid) {
        let mut state = self.write();
        let ids: Vec<ConnId> = state.conns.iter().filter(|(_, c)| c.user == user).map(|(id, _)| *id).collect();
        for id in ids {
            let follows = state.conns.get_mut(&id).is_some_and(|c| {
                c.member_of.remove(&conversation);
                c.following.contains(&conversation)
            });
            if !follows {
                state.unsubscribe(id, conversation);
            }
        }
    }

    /// Every local socket's kill switch (graceful shutdown closes them all).
    pub(crate) fn kill_all(&self, code: u16) {
        for conn in self.read().conns.values() {
            conn.kill.fire(code);
        }
    }

    /// Open sockets on this node.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.read().conns.len()
    }

    /// Pushes queued for local sockets and not yet written (read when metrics are scraped).
    #[must_use]
    pub fn queued(&self) -> usize {
        self.read().conns.values().map(|c| c.tx.max_capacity() - c.tx.capacity()).sum()
    }
}
