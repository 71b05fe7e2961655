//! [`ResumingRealtime`]: a connection that survives disconnects without losing or repeating
//! a message; the rules are on the type.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chat_protocol::ws::SendMessage;
use chat_protocol::{Message, Presence, ReadResponse};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::{Push, Pushes, Realtime, RealtimeHandle, RealtimeOptions, text_message};
use crate::error::{ClientError, CloseInfo};
use crate::rest::ChatClient;

/// How a [`ResumingRealtime`] reconnects.
#[derive(Clone, Debug)]
pub struct ResumeOptions {
    realtime: RealtimeOptions,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_attempts: Option<u32>,
    seed_from_rest: bool,
    send_retries: u32,
}

impl Default for ResumeOptions {
    fn default() -> Self {
        Self {
            realtime: RealtimeOptions::default(),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            max_attempts: None,
            seed_from_rest: true,
            send_retries: 3,
        }
    }
}

impl ResumeOptions {
    /// Options of each underlying connection (request timeout, push buffer, token placement).
    #[must_use]
    pub fn realtime(mut self, options: RealtimeOptions) -> Self {
        self.realtime = options;
        self
    }

    /// Backoff between reconnect attempts: from `initial`, doubling, at most `max`, with
    /// jitter (defaults 100 ms and 10 s).
    #[must_use]
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Give up after this many failed attempts in a row (default: never).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts.max(1));
        self
    }

    /// Whether joining reads the conversations' `lastSeq` over REST first, so quiet
    /// conversations are resumed too (default `true`).
    #[must_use]
    pub fn seed_from_rest(mut self, yes: bool) -> Self {
        self.seed_from_rest = yes;
        self
    }

    /// How often a `send_message` that carries a `clientMsgId` is retried when the
    /// connection fails under it (default 3). Sends without one are never retried.
    #[must_use]
    pub fn send_retries(mut self, retries: u32) -> Self {
        self.send_retries = retries;
        self
    }
}

/// Where a [`ResumingRealtime`] stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    /// The first connection is open; joining and resuming are not done yet.
    Connecting,
    /// Connected, re-joined and resumed; `generation` counts connections (1 for the first).
    Connected {
        /// Which connection this is.
        generation: u64,
    },
    /// The connection was lost; reconnecting.
    Reconnecting {
        /// The attempt under way (1 for the first).
        attempt: u32,
        /// How the last connection ended.
        last_close: Option<CloseInfo>,
    },
    /// Finished: closed by the client, or reconnecting gave up.
    Closed {
        /// Why.
        reason: String,
    },
}

// ---------------------------------------------------------------- seq tracking

/// What to do with a `message:new`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The next in order (or the first seen): deliver it.
    Deliver,
    /// Already delivered: drop it.
    Duplicate,
    /// Seqs are missing before it: drop it and resume from `from`.
    Gap { from: i64 },
}

/// The last delivered seq per conversation, and which gaps are being filled.
#[derive(Debug, Default)]
pub(crate) struct SeqTracker {
    last: HashMap<Uuid, i64>,
    filling: HashSet<Uuid>,
}

impl SeqTracker {
    pub(crate) fn observe(&mut self, conversation: Uuid, seq: i64) -> Verdict {
        match self.last.get(&conversation).copied() {
            Some(last) if seq <= last => Verdict::Duplicate,
            Some(last) if seq > last + 1 => Verdict::Gap { from: last },
            _ => {
                self.last.insert(conversation, seq);
                Verdict::Deliver
            }
        }
    }

    /// Starts tracking at `last_seq` unless already tracked; `true` when it did.
    pub(crate) fn seed(&mut self, conversation: Uuid, last_seq: i64) -> bool {
        if self.last.contains_key(&conversation) {
            return false;
        }
        self.last.insert(conversation, last_seq);
        true
    }

    /// The consumer holds everything up to `last_seq` (never moves a cursor back).
    pub(crate) fn advance(&mut self, conversation: Uuid, last_seq: i64) {
        let entry = self.last.entry(conversation).or_insert(last_seq);
        *entry = (*entry).max(last_seq);
    }

    pub(crate) fn forget(&mut self, conversation: Uuid) {
        self.last.remove(&conversation);
    }

    pub(crate) fn last(&self, conversation: Uuid) -> Option<i64> {
        self.last.get(&conversation).copied()
    }

    pub(crate) fn cursors(&self) -> BTreeMap<Uuid, i64> {
        self.last.iter().map(|(c, s)| (*c, *s)).collect()
    }

    /// `true` when no fill of this conversation's gap is under way (and marks one).
    pub(crate) fn start_fill(&mut self, conversation: Uuid) -> bool {
        self.filling.insert(conversation)
    }

    pub(crate) fn end_fill(&mut self, conversation: Uuid) {
        self.filling.remove(&conversation);
    }

    /// Forgets the fills of a connection that ended (their answers will never come); the
    /// resume after the reconnect covers their gaps.
    pub(crate) fn end_all_fills(&mut self) {
        self.filling.clear();
    }
}

#[derive(Debug, Default)]
struct Tracking {
    workspaces: Vec<Uuid>,
    conversations: Vec<Uuid>,
    seqs: SeqTracker,
}

#[derive(Debug)]
struct Shared {
    client: ChatClient,
    options: ResumeOptions,
    tracking: Mutex<Tracking>,
    /// The live, re-synced connection; `None` while reconnecting.
    current: watch::Sender<Option<RealtimeHandle>>,
    state: watch::Sender<ConnectionState>,
}

impl Shared {
    fn tracking(&self) -> MutexGuard<'_, Tracking> {
        self.tracking.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// ---------------------------------------------------------------- public handle

impl ChatClient {
    /// Opens a [`ResumingRealtime`] with default [`ResumeOptions`].
    ///
    /// # Errors
    /// As [`ChatClient::connect_ws`], for the first connection (later ones are retried).
    pub async fn connect_resuming(&self) -> Result<ResumingRealtime, ClientError> {
        self.connect_resuming_with(ResumeOptions::default()).await
    }

    /// Opens a [`ResumingRealtime`].
    ///
    /// # Errors
    /// As [`ChatClient::connect_ws`], for the first connection (later ones are retried).
    pub async fn connect_resuming_with(&self, options: ResumeOptions) -> Result<ResumingRealtime, ClientError> {
        let first = self.connect_ws_with(options.realtime.clone()).await?;
        let (push_tx, push_rx) = mpsc::channel(options.realtime.push_buffer);
        let (stop_tx, stop_rx) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            client: self.clone(),
            options,
            tracking: Mutex::new(Tracking::default()),
            current: watch::channel(None).0,
            state: watch::channel(ConnectionState::Connecting).0,
        });
        tokio::spawn(supervise(Arc::clone(&shared), first, push_tx, stop_rx));
        Ok(ResumingRealtime { handle: ResumingHandle { shared, stop: stop_tx }, pushes: Pushes { receiver: push_rx } })
    }
}

/// A real-time connection that reconnects and resumes by itself. It derefs to its
/// [`ResumingHandle`] for requests; [`ResumingRealtime::next_push`] reads the pushes.
///
/// **What it promises.** For every conversation it tracks, the push stream carries each
/// `message:new` once, in seq order (the consumer's own messages included, when its
/// connection receives them): a push whose seq is not above the last one delivered is a
/// duplicate and is dropped; a push that skips seqs is held back and the gap is filled with
/// a `resume` from the last delivered seq, whose replay then arrives in order.
///
/// **How.** A supervisor task forwards the pushes of the current [`Realtime`] connection.
/// When it ends, the supervisor reconnects with exponential backoff (refreshing the access
/// token once if the upgrade is refused with 401), joins again every workspace and
/// conversation joined through this handle, and sends `resume {conversations: {id:
/// lastSeq}}`; the server replays what was missed as `message:new` in seq order. Until that
/// is done, requests wait for the connection (at most the request timeout).
///
/// **Cursors.** A conversation is tracked from the first `message:new` seen for it, from a
/// `conversation:new` push (at its `lastSeq`), from [`ResumingHandle::track`], and — unless
/// turned off — from REST when joining: `join_workspace` lists the workspace's conversations
/// and `join_conversation` reads the conversation *before* joining, so even a conversation
/// that stays quiet while connected is resumed after a disconnect. Acks of `send_message` do
/// not move the cursor: the ack of one's own seq 5 may arrive before the push of someone
/// else's seq 4, and moving the cursor to 5 would then drop message 4.
#[derive(Debug)]
pub struct ResumingRealtime {
    handle: ResumingHandle,
    pushes: Pushes,
}

impl std::ops::Deref for ResumingRealtime {
    type Target = ResumingHandle;

    fn deref(&self) -> &ResumingHandle {
        &self.handle
    }
}

impl ResumingRealtime {
    /// The next push; `None` once closed (by [`ResumingHandle::close`], by dropping every
    /// handle, or because reconnecting gave up).
    pub async fn next_push(&mut self) -> Option<Push> {
        self.pushes.next().await
    }

    /// The next push, waiting at most `timeout`; `None` on timeout or end.
    pub async fn next_push_within(&mut self, timeout: Duration) -> Option<Push> {
        tokio::time::timeout(timeout, self.pushes.next()).await.ok().flatten()
    }

    /// The request side and the push stream, to use from different tasks.
    #[must_use]
    pub fn split(self) -> (ResumingHandle, Pushes) {
        (self.handle, self.pushes)
    }
}

/// The request side of a [`ResumingRealtime`]: cheap to clone. When every handle is dropped,
/// the connection closes.
///
/// Requests go to the current connection, waiting for one (at most the request timeout)
/// while reconnecting. Joins made here are remembered and made again on every reconnect.
#[derive(Clone, Debug)]
pub struct ResumingHandle {
    shared: Arc<Shared>,
    stop: mpsc::Sender<()>,
}

impl ResumingHandle {
    /// The current state.
    #[must_use]
    pub fn state(&self) -> ConnectionState {
        self.shared.state.borrow().clone()
    }

    /// A receiver of state changes (to await `Reconnecting` or the next `Connected`).
    #[must_use]
    pub fn states(&self) -> watch::Receiver<ConnectionState> {
        self.shared.state.subscribe()
    }

    /// The last seq delivered (or seeded) for `conversation`.
    #[must_use]
    pub fn last_seq(&self, conversation: Uuid) -> Option<i64> {
        self.shared.tracking().seqs.last(conversation)
    }

    /// Declares that the consumer already holds `conversation` up to `last_seq` (from REST
    /// history, say): later pushes at or below it are dropped, and a resume starts there.
    pub fn track(&self, conversation: Uuid, last_seq: i64) {
        self.shared.tracking().seqs.advance(conversation, last_seq);
    }

    /// The current connection, waiting for the reconnect (at most the request timeout).
    ///
    /// Requests made directly on it are not remembered for reconnects.
    ///
    /// # Errors
    /// [`ClientError::Timeout`] when no connection came up in time, [`ClientError::Closed`]
    /// once closed for good.
    pub async fn connection(&self) -> Result<RealtimeHandle, ClientError> {
        let timeout = self.shared.options.realtime.request_timeout;
        let mut current = self.shared.current.subscribe();
        let mut state = self.shared.state.subscribe();
        let wait = async {
            loop {
                if let ConnectionState::Closed { reason } = &*state.borrow_and_update() {
                    return Err(ClientError::Closed(CloseInfo { code: None, reason: reason.clone() }));
                }
                let live = current.borrow_and_update().as_ref().filter(|h| !h.is_closed()).cloned();
                if let Some(handle) = live {
                    return Ok(handle);
                }
                tokio::select! {
                    _ = current.changed() => {}
                    _ = state.changed() => {}
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ClientError::Timeout { event: "reconnect".to_owned(), after: timeout })?
    }

    /// [`RealtimeHandle::request`] on the current connection (not remembered for reconnects).
    ///
    /// # Errors
    /// As [`RealtimeHandle::request`] and [`Self::connection`].
    pub async fn request(&self, event: &str, data: Value) -> Result<Value, ClientError> {
        self.connection().await?.request(event, data).await
    }

    /// `join_workspace`, remembered for reconnects. Unless turned off, first reads the
    /// workspace's conversations over REST to start their cursors, and resumes them after the
    /// ack (so nothing posted between the read and the join is missed).
    ///
    /// # Errors
    /// As [`RealtimeHandle::join_workspace`]; REST errors of the conversation list. A
    /// rejected join is forgotten; one cut short by a disconnect is made on the reconnect.
    pub async fn join_workspace(&self, workspace: Uuid) -> Result<Value, ClientError> {
        let mut seeded = Vec::new();
        if self.shared.options.seed_from_rest {
            let page = self.shared.client.list_conversations(workspace).await?;
            let mut tracking = self.shared.tracking();
            for conversation in page.items {
                tracking.seqs.seed(conversation.id, conversation.last_seq);
                seeded.push(conversation.id);
            }
        }
        remember(&mut self.shared.tracking().workspaces, workspace);
        let handle = self.connection().await?;
        let ack = match handle.join_workspace(workspace).await {
            Ok(ack) => ack,
            Err(error) => {
                if !error.is_connection_failure() {
                    self.shared.tracking().workspaces.retain(|w| *w != workspace);
                }
                return Err(error);
            }
        };
        self.catch_up(&handle, &seeded).await?;
        Ok(ack)
    }

    /// `join_conversation`, remembered for reconnects; seeded from REST like
    /// [`Self::join_workspace`].
    ///
    /// # Errors
    /// As [`RealtimeHandle::join_conversation`]; REST errors of the conversation read.
    pub async fn join_conversation(&self, conversation: Uuid) -> Result<Value, ClientError> {
        if self.shared.options.seed_from_rest {
            let read = self.shared.client.get_conversation(conversation).await?;
            self.shared.tracking().seqs.seed(read.id, read.last_seq);
        }
        remember(&mut self.shared.tracking().conversations, conversation);
        let handle = self.connection().await?;
        let ack = match handle.join_conversation(conversation).await {
            Ok(ack) => ack,
            Err(error) => {
                if !error.is_connection_failure() {
                    self.shared.tracking().conversations.retain(|c| *c != conversation);
                }
                return Err(error);
            }
        };
        if self.shared.options.seed_from_rest {
            self.catch_up(&handle, &[conversation]).await?;
        }
        Ok(ack)
    }

    /// Resumes `conversations` from their cursors on `handle`.
    async fn catch_up(&self, handle: &RealtimeHandle, conversations: &[Uuid]) -> Result<(), ClientError> {
        let cursors: BTreeMap<Uuid, i64> = {
            let tracking = self.shared.tracking();
            conversations.iter().filter_map(|c| tracking.seqs.last(*c).map(|s| (*c, s))).collect()
        };
        if !cursors.is_empty() {
            handle.resume(&cursors).await?;
        }
        Ok(())
    }

    /// `leave_conversation`; no longer joined on reconnects.
    ///
    /// # Errors
    /// As [`RealtimeHandle::leave_conversation`].
    pub async fn leave_conversation(&self, conversation: Uuid) -> Result<Value, ClientError> {
        self.shared.tracking().conversations.retain(|c| *c != conversation);
        self.connection().await?.leave_conversation(conversation).await
    }

    /// `send_message`. When it carries a `clientMsgId` and the connection fails under it, it
    /// is sent again on the next connection (up to the configured retries): the server
    /// answers a repeated `clientMsgId` with the original message, so it is posted once.
    ///
    /// # Errors
    /// As [`RealtimeHandle::send_message`].
    pub async fn send_message(&self, message: &SendMessage) -> Result<Message, ClientError> {
        let retries = if message.client_msg_id.is_some() { self.shared.options.send_retries } else { 0 };
        let mut attempt = 0;
        loop {
            match self.connection().await?.send_message(message).await {
                Err(error) if error.is_connection_failure() && attempt < retries => {
                    attempt += 1;
                    tracing::debug!(%error, attempt, "send_message failed with the connection; retrying");
                }
                outcome => return outcome,
            }
        }
    }

    /// [`Self::send_message`] of plain text with a fresh `clientMsgId`, so it survives a
    /// reconnect without being posted twice.
    ///
    /// # Errors
    /// As [`RealtimeHandle::send_message`].
    pub async fn send_text(&self, conversation: Uuid, content: &str) -> Result<Message, ClientError> {
        self.send_message(&text_message(conversation, content, Some(Uuid::new_v4().to_string()))).await
    }

    /// [`RealtimeHandle::edit_message`] on the current connection.
    ///
    /// # Errors
    /// As [`RealtimeHandle::edit_message`].
    pub async fn edit_message(&self, message: Uuid, content: &str) -> Result<Message, ClientError> {
        self.connection().await?.edit_message(message, content).await
    }

    /// [`RealtimeHandle::delete_message`] on the current connection.
    ///
    /// # Errors
    /// As [`RealtimeHandle::delete_message`].
    pub async fn delete_message(&self, message: Uuid, conversation: Uuid) -> Result<(), ClientError> {
        self.connection().await?.delete_message(message, conversation).await
    }

    /// [`RealtimeHandle::add_reaction`] on the current connection.
    ///
    /// # Errors
    /// As [`RealtimeHandle::add_reaction`].
    pub async fn add_reaction(&self, message: Uuid, emoji: &str, conversation: Uuid) -> Result<Message, ClientError> {
        self.connection().await?.add_reaction(message, emoji, conversation).await
    }

    /// [`RealtimeHandle::typing_start`] on the current connection.
    ///
    /// # Errors
    /// As [`RealtimeHandle::typing_start`].
    pub async fn typing_start(&self, conversation: Uuid) -> Result<(), ClientError> {
        self.connection().await?.typing_start(conversation).await
    }

    /// [`RealtimeHandle::typing_stop`] on the current connection.
    ///
    /// # Errors
    /// As [`RealtimeHandle::typing_stop`].
    pub async fn typing_stop(&self, conversation: Uuid) -> Result<(), ClientError> {
        self.connection().await?.typing_stop(conversation).await
    }

    /// [`RealtimeHandle::mark_as_read`] on the current connection.
    ///
    /// # Errors
    /// As [`RealtimeHandle::mark_as_read`].
    pub async fn mark_as_read(&self, conversation: Uuid, message: Option<Uuid>) -> Result<ReadResponse, ClientError> {
        self.connection().await?.mark_as_read(conversation, message).await
    }

    /// [`RealtimeHandle::update_presence`] on the current connection.
    ///
    /// # Errors
    /// As [`RealtimeHandle::update_presence`].
    pub async fn update_presence(&self, workspace: Uuid, status: &str) -> Result<Presence, ClientError> {
        self.connection().await?.update_presence(workspace, status).await
    }

    /// [`RealtimeHandle::ping`] on the current connection.
    ///
    /// # Errors
    /// As [`RealtimeHandle::ping`].
    pub async fn ping(&self) -> Result<Duration, ClientError> {
        self.connection().await?.ping().await
    }

    /// Closes for good: the current connection closes normally, no reconnect follows, and the
    /// push stream ends. Waits at most the request timeout.
    pub async fn close(&self) {
        let _ = self.stop.try_send(());
        let mut state = self.states();
        let _ = tokio::time::timeout(
            self.shared.options.realtime.request_timeout,
            state.wait_for(|s| matches!(s, ConnectionState::Closed { .. })),
        )
        .await;
    }
}

fn remember(list: &mut Vec<Uuid>, id: Uuid) {
    if !list.contains(&id) {
        list.push(id);
    }
}

// ---------------------------------------------------------------- the supervisor

/// What the helpers of one connection report to the supervisor.
enum Event {
    /// Re-joining and resuming finished (or failed: reconnect).
    Resynced(Result<(), ClientError>),
    /// A gap fill of this conversation finished.
    Filled { conversation: Uuid, ok: bool },
}

enum Ended {
    Lost(Option<CloseInfo>),
    Stopped,
}

async fn supervise(shared: Arc<Shared>, first: Realtime, outer: mpsc::Sender<Push>, mut stop: mpsc::Receiver<()>) {
    let mut next = Some(first);
    let mut generation = 0_u64;
    loop {
        let realtime = match next.take() {
            Some(realtime) => realtime,
            None => match reconnect(&shared, &mut stop).await {
                Ok(realtime) => realtime,
                Err(reason) => {
                    shared.state.send_replace(ConnectionState::Closed { reason });
                    return;
                }
            },
        };
        generation += 1;
        let (handle, mut inner) = realtime.split();
        let (events_tx, mut events) = mpsc::unbounded_channel();
        // Resuming makes the server replay pushes before it acks, so it runs beside the loop
        // that forwards them.
        let resync = tokio::spawn(resync(Arc::clone(&shared), handle.clone(), events_tx.clone()));
        let ended = loop {
            tokio::select! {
                push = inner.next() => match push {
                    Some(push) => {
                        if let Some(push) = screen(&shared, &handle, &events_tx, push) {
                            // A dropped receiver means the consumer discards pushes.
                            let _ = outer.send(push).await;
                        }
                    }
                    None => break Ended::Lost(handle.close_info()),
                },
                Some(event) = events.recv() => match event {
                    Event::Resynced(Ok(())) => {
                        shared.current.send_replace(Some(handle.clone()));
                        shared.state.send_replace(ConnectionState::Connected { generation });
                        tracing::debug!(generation, "realtime connection ready");
                    }
                    Event::Resynced(Err(error)) => {
                        tracing::warn!(%error, "re-joining after a reconnect failed; reconnecting");
                        handle.request_close(1001, "resync failed");
                    }
                    Event::Filled { conversation, ok } => {
                        let mut tracking = shared.tracking();
                        tracking.seqs.end_fill(conversation);
                        if !ok {
                            // Do not hold the conversation back forever: restart it at the next push.
                            tracking.seqs.forget(conversation);
                        }
                    }
                },
                _ = stop.recv() => {
                    handle.close().await;
                    break Ended::Stopped;
                }
            }
        };
        resync.abort();
        shared.current.send_replace(None);
        shared.tracking().seqs.end_all_fills();
        match ended {
            Ended::Stopped => {
                shared.state.send_replace(ConnectionState::Closed { reason: "closed by the client".to_owned() });
                return;
            }
            Ended::Lost(last_close) => {
                tracing::info!(close = ?last_close, "realtime connection lost; reconnecting");
                shared.state.send_replace(ConnectionState::Reconnecting { attempt: 0, last_close });
            }
        }
    }
}

/// Applies the seq rules to one push; `Some` when it goes to the consumer.
fn screen(
    shared: &Arc<Shared>,
    handle: &RealtimeHandle,
    events: &mpsc::UnboundedSender<Event>,
    push: Push,
) -> Option<Push> {
    match &push {
        Push::MessageNew(new) => {
            let (conversation, seq) = (new.conversation_id, new.message.seq);
            let mut tracking = shared.tracking();
            match tracking.seqs.observe(conversation, seq) {
                Verdict::Deliver => Some(push),
                Verdict::Duplicate => {
                    tracing::trace!(%conversation, seq, "dropping a message:new already delivered");
                    None
                }
                Verdict::Gap { from } => {
                    tracing::debug!(%conversation, seq, from, "message:new skips seqs; resuming the gap");
                    if tracking.seqs.start_fill(conversation) {
                        let handle = handle.clone();
                        let events = events.clone();
                        tokio::spawn(async move {
                            let ok = handle.resume(&BTreeMap::from([(conversation, from)])).await.is_ok();
                            let _ = events.send(Event::Filled { conversation, ok });
                        });
                    }
                    None
                }
            }
        }
        Push::ConversationNew(new) => {
            shared.tracking().seqs.seed(new.conversation.id, new.conversation.last_seq);
            Some(push)
        }
        _ => Some(push),
    }
}

/// Joins again what was joined, then resumes every tracked conversation.
async fn resync(shared: Arc<Shared>, handle: RealtimeHandle, events: mpsc::UnboundedSender<Event>) {
    let outcome = rejoin_and_resume(&shared, &handle).await;
    let _ = events.send(Event::Resynced(outcome));
}

async fn rejoin_and_resume(shared: &Shared, handle: &RealtimeHandle) -> Result<(), ClientError> {
    let (workspaces, conversations) = {
        let tracking = shared.tracking();
        (tracking.workspaces.clone(), tracking.conversations.clone())
    };
    for workspace in workspaces {
        match handle.join_workspace(workspace).await {
            Ok(_) => {}
            Err(error @ ClientError::Rejected { .. }) => {
                tracing::warn!(%workspace, %error, "workspace can no longer be joined; forgetting it");
                shared.tracking().workspaces.retain(|w| *w != workspace);
            }
            Err(error) => return Err(error),
        }
    }
    for conversation in conversations {
        match handle.join_conversation(conversation).await {
            Ok(_) => {}
            Err(error @ ClientError::Rejected { .. }) => {
                tracing::warn!(%conversation, %error, "conversation can no longer be joined; forgetting it");
                shared.tracking().conversations.retain(|c| *c != conversation);
            }
            Err(error) => return Err(error),
        }
    }
    let cursors = shared.tracking().seqs.cursors();
    if cursors.is_empty() {
        return Ok(());
    }
    match handle.resume(&cursors).await {
        Ok(_) => Ok(()),
        Err(ClientError::Rejected { .. }) => {
            // One conversation the user lost access to must not stop the others: resume them
            // one by one and stop tracking those refused.
            for (conversation, seq) in cursors {
                match handle.resume(&BTreeMap::from([(conversation, seq)])).await {
                    Ok(_) => {}
                    Err(error @ ClientError::Rejected { .. }) => {
                        tracing::warn!(%conversation, %error, "conversation can no longer be resumed");
                        shared.tracking().seqs.forget(conversation);
                    }
                    Err(error) => return Err(error),
                }
            }
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Opens a new connection, with backoff; `Err(reason)` when it gives up.
async fn reconnect(shared: &Shared, stop: &mut mpsc::Receiver<()>) -> Result<Realtime, String> {
    let options = &shared.options;
    let last_close = match &*shared.state.borrow() {
        ConnectionState::Reconnecting { last_close, .. } => last_close.clone(),
        _ => None,
    };
    let mut refreshed = false;
    let mut attempt = 0_u32;
    loop {
        attempt += 1;
        shared.state.send_replace(ConnectionState::Reconnecting { attempt, last_close: last_close.clone() });
        let error = match shared.client.connect_ws_with(options.realtime.clone()).await {
            Ok(realtime) => return Ok(realtime),
            Err(error) => error,
        };
        // A refused upgrade may come back without SPEC's body (it is read with the headers
        // only when it fits), hence the status rather than the code.
        let delay = match error.status() {
            Some(401) if !refreshed && shared.client.refresh_token().is_some() => {
                // The access token expired while disconnected: refresh it once, then retry now.
                refreshed = true;
                let stale = shared.client.access_token();
                match shared.client.refresh_if_still(stale.as_deref()).await {
                    Ok(()) => continue,
                    Err(error) if error.status().is_some() => {
                        return Err(format!("refreshing the session failed: {error}"));
                    }
                    Err(error) => {
                        tracing::debug!(%error, "refresh failed in transit; backing off");
                        refreshed = false;
                        backoff(options, attempt)
                    }
                }
            }
            Some(429) => match &error {
                ClientError::Api { retry_after: Some(after), .. } => *after,
                _ => backoff(options, attempt),
            },
            Some(status) if (400..500).contains(&status) => {
                return Err(format!("the server refused the connection: {error}"));
            }
            _ => {
                tracing::debug!(%error, attempt, "reconnect attempt failed");
                backoff(options, attempt)
            }
        };
        if options.max_attempts.is_some_and(|max| attempt >= max) {
            return Err(format!("gave up after {attempt} reconnect attempts"));
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.recv() => return Err("closed by the client".to_owned()),
        }
    }
}

/// Exponential backoff with equal jitter: half the step, plus a random part of the other half.
fn backoff(options: &ResumeOptions, attempt: u32) -> Duration {
    let doubled = options.initial_backoff.saturating_mul(1_u32 << attempt.saturating_sub(1).min(16));
    let step = doubled.min(options.max_backoff);
    let half = step / 2;
    let random = u64::from(Uuid::new_v4().as_u128() as u16);
    half + half.mul_f64(random as f64 / f64::from(u16::MAX))
}

impl RealtimeHandle {
    /// Asks the socket task to close, without waiting.
    pub(crate) fn request_close(&self, code: u16, reason: &str) {
        let _ = self.commands.try_send(super::Command::Close { code, reason: reason.to_owned() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_message_of_an_untracked_conversation_is_delivered() {
        let mut seqs = SeqTracker::default();
        let c = Uuid::new_v4();
        assert_eq!(seqs.observe(c, 5), Verdict::Deliver);
        assert_eq!(seqs.last(c), Some(5));
    }

    #[test]
    fn messages_at_or_below_the_cursor_are_duplicates() {
        let mut seqs = SeqTracker::default();
        let c = Uuid::new_v4();
        seqs.seed(c, 3);
        assert_eq!(seqs.observe(c, 3), Verdict::Duplicate);
        assert_eq!(seqs.observe(c, 1), Verdict::Duplicate);
        assert_eq!(seqs.observe(c, 4), Verdict::Deliver);
        assert_eq!(seqs.observe(c, 4), Verdict::Duplicate);
    }

    #[test]
    fn a_skipped_seq_is_a_gap_from_the_cursor_and_does_not_move_it() {
        let mut seqs = SeqTracker::default();
        let c = Uuid::new_v4();
        seqs.seed(c, 2);
        assert_eq!(seqs.observe(c, 5), Verdict::Gap { from: 2 });
        assert_eq!(seqs.last(c), Some(2));
        assert_eq!(seqs.observe(c, 3), Verdict::Deliver);
    }

    #[test]
    fn seeding_never_overrides_and_advancing_never_goes_back() {
        let mut seqs = SeqTracker::default();
        let c = Uuid::new_v4();
        assert!(seqs.seed(c, 4));
        assert!(!seqs.seed(c, 9));
        assert_eq!(seqs.last(c), Some(4));
        seqs.advance(c, 2);
        assert_eq!(seqs.last(c), Some(4));
        seqs.advance(c, 7);
        assert_eq!(seqs.cursors(), BTreeMap::from([(c, 7)]));
    }

    #[test]
    fn only_one_gap_fill_runs_per_conversation() {
        let mut seqs = SeqTracker::default();
        let c = Uuid::new_v4();
        assert!(seqs.start_fill(c));
        assert!(!seqs.start_fill(c));
        seqs.end_fill(c);
        assert!(seqs.start_fill(c));
        seqs.end_all_fills();
        assert!(seqs.start_fill(c), "a lost connection's fills do not block the next one");
    }

    #[test]
    fn backoff_grows_and_stays_under_the_cap() {
        let options = ResumeOptions::default().backoff(Duration::from_millis(100), Duration::from_secs(1));
        for attempt in 1..40 {
            let delay = backoff(&options, attempt);
            assert!(delay <= Duration::from_secs(1), "attempt {attempt}: {delay:?}");
        }
        assert!(backoff(&options, 1) <= Duration::from_millis(100));
        assert!(backoff(&options, 10) >= Duration::from_millis(500));
    }
}
