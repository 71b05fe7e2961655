//! Group commit for message inserts.
//!
//! `insert_message` does not open a transaction of its own: it queues the message (a bounded
//! channel per shard) with a oneshot for its outcome, and a batcher task takes everything
//! queued — up to [`MAX_BATCH`] — and commits it in ONE transaction, answering each sender
//! only after `COMMIT` returned. One fsync then makes a whole batch durable, instead of one per
//! message; nothing is acknowledged that is not durable (a failed commit answers every message
//! of the batch with an error).
//!
//! A batch is a fixed number of round trips, whatever its size, because the statements of
//! one step are *pipelined* on the connection (diesel-async sends futures polled together on
//! a shared `&AsyncPgConnection` back to back):
//!
//! 1. the counter rows of the batch's open conversations are locked, in conversation id order
//!    (`SELECT … ORDER BY id FOR UPDATE`: a stable order, so two batches — of another shard
//!    or another node — can never deadlock), and, pipelined with that, the senders who are
//!    members of the batch's conversations and of their workspaces are read;
//! 2. seqs are assigned here, in queue order, per conversation: a message whose sender is not
//!    such a member takes no seq (the domain may have sent it on a remembered view); one whose
//!    `(conversation, sender, clientMsgId)` came earlier in the same batch is a duplicate and
//!    takes none either, nor does one to an archived conversation;
//! 3. the messages are inserted by [`insert_batch`] (one INSERT from one array per column —
//!    constant SQL, a `chat_diesel::Prepared` parsed once per connection — then the batch's
//!    search tags, thread-root `reply_count`s and attachment links), and each conversation's
//!    counter moves to its last seq and each sender's watermark to the sender's last seq (one
//!    statement each for the whole batch), all pipelined: a batch of 256 messages is about
//!    six statements, not two per message;
//! 4. `COMMIT`.
//!
//! A repeat of a message committed *before* the batch (a client retrying after a lost ack) is
//! not looked for up front — that lookup is a costly multi-array index scan, and repeats are
//! rare. Its insert conflicts (`ON CONFLICT DO NOTHING` returns no row) instead, the batch rolls
//! back before anything is acknowledged, and is committed again with the lookup first: then,
//! once the locks are held (the server runs a pipeline in order), the batch's `clientMsgId`s
//! are looked up, and every message committed under those locks is seen. A keyed message to
//! an archived conversation takes that path too, so that a retry gets its original.
//!
//! Validating first means no statement is expected to fail, so there are no savepoints (two
//! more statements per message). If one does fail all the same (a constraint the batch could
//! not foresee, such as an attachment's file deleted meanwhile), the whole transaction is
//! rolled back — nothing of it was acknowledged — and each message of the batch is retried
//! alone, so the failure stays with the message that caused it.
//!
//! Conversations are spread over [`SHARDS`] batchers by id, so one conversation's messages
//! always queue behind each other in one batcher, and batchers commit concurrently on their
//! own pooled connections.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::Arc;

use chat_diesel::prepared;
use chat_domain::error::RepoError;
use chat_domain::message::{GroupCommitCounters, GroupCommitStats, NewMessage};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_types::{Array, BigInt, Timestamptz, Uuid as SqlUuid};
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::future::{join_all, join3};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::messages::{InsertedRows, insert_batch};
use crate::schema::{conversation_members, conversations, messages, workspace_members};

/// The most messages committed in one transaction.
pub(crate) const MAX_BATCH: usize = 256;
/// Messages that may wait per shard before senders wait for room (backpressure).
const QUEUE: usize = 4 * MAX_BATCH;
/// Batchers, each committing on its own connection; conversations are spread over them.
pub(crate) const SHARDS: usize = 2;

/// What a batch did with one message (the duplicate's original is read by its sender, after
/// the commit, on a connection of its own).
pub(crate) enum Committed {
    Inserted(Box<InsertedRows>),
    Duplicate,
    Archived,
    NotMember,
}

type Reply = oneshot::Sender<Result<Committed, RepoError>>;

struct Request {
    message: NewMessage,
    reply: Reply,
}

/// The senders' end of the batchers.
#[derive(Clone)]
pub(crate) struct InsertQueue {
    shards: Arc<[mpsc::Sender<Request>]>,
    counters: Arc<GroupCommitCounters>,
}

impl InsertQueue {
    /// Starts [`SHARDS`] batchers on the current Tokio runtime. They stop once every clone of
    /// the queue is dropped.
    pub(crate) fn start(pool: &Pool<AsyncPgConnection>) -> Self {
        let counters = Arc::new(GroupCommitCounters::default());
        let shards = (0..SHARDS)
            .map(|_| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(run(pool.clone(), rx, Arc::clone(&counters)));
                tx
            })
            .collect();
        Self { shards, counters }
    }

    /// Queues `message` and waits for the commit of its batch.
    pub(crate) async fn insert(&self, message: NewMessage) -> Result<Committed, RepoError> {
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(message.conversation_id.as_uuid());
        let shard = &self.shards[usize::try_from(hash % self.shards.len() as u64).unwrap_or(0)];
        let (reply, outcome) = oneshot::channel();
        // Unconstrained: with room in the queue this never yields to Tokio's cooperative budget,
        // so the message is queued on the first poll — a socket that polls its pipelined sends
        // once each, in frame order, gets its messages into batches (and seqs) in that order.
        // (A full queue is waited on in order: the channel's semaphore is fair.)
        tokio::task::unconstrained(shard.send(Request { message, reply }))
            .await
            .map_err(|_| RepoError::msg("the message batcher stopped"))?;
        outcome.await.map_err(|_| RepoError::msg("the message batcher dropped a message"))?
    }

    pub(crate) fn stats(&self) -> GroupCommitStats {
        self.counters.stats()
    }
}

async fn run(pool: Pool<AsyncPgConnection>, mut rx: mpsc::Receiver<Request>, counters: Arc<GroupCommitCounters>) {
    let mut requests = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut requests, MAX_BATCH).await > 0 {
        let size = requests.len() as u64;
        counters.record(size);
        let span = tracing::debug_span!("insert_batch", size);
        tracing::Instrument::instrument(commit_requests(&pool, &mut requests), span).await;
    }
}

/// Commits the queued requests (draining them) and answers each.
async fn commit_requests(pool: &Pool<AsyncPgConnection>, requests: &mut Vec<Request>) {
    let mut conn = match crate::acquire(pool).await {
        Ok(conn) => conn,
        Err(e) => return fail_all(requests.drain(..), &e),
    };
    let messages: Vec<&NewMessage> = requests.iter().map(|r| &r.message).collect();
    let mut outcome = commit_batch(&mut conn, &messages, Lookup::Optimistic).await;
    if matches!(outcome, Err(BatchError::Conflict)) {
        // A retry of a message committed earlier: look the batch's clientMsgIds up first.
        outcome = commit_batch(&mut conn, &messages, Lookup::First).await;
    }
    drop(messages);
    match outcome {
        Ok(outcomes) => {
            for (request, outcome) in requests.drain(..).zip(outcomes) {
                let _ = request.reply.send(Ok(outcome));
            }
        }
        Err(e @ (BatchError::Statement(_) | BatchError::Conflict)) if requests.len() > 1 => {
            let error = e.into_repo();
            tracing::warn!(error = %error, size = requests.len(), "a message batch failed; retrying its messages one by one");
            for request in requests.drain(..) {
                let outcome = commit_batch(&mut conn, &[&request.message], Lookup::First).await;
                let _ = request.reply.send(
                    outcome
                        .map_err(BatchError::into_repo)
                        .and_then(|mut o| o.pop().ok_or(RepoError::msg("an empty batch outcome"))),
                );
            }
        }
        Err(e) => fail_all(requests.drain(..), &e.into_repo()),
    }
}

fn fail_all(requests: impl Iterator<Item = Request>, error: &RepoError) {
    let message = error.to_string();
    for request in requests {
        let _ = request.reply.send(Err(RepoError::new("committing a batch of messages", message.clone())));
    }
}

/// Why a batch did not commit.
pub(crate) enum BatchError {
    /// A statement of the batch failed: the transaction rolled back, the messages can be
    /// retried one by one.
    Statement(DieselError),
    /// Beginning or committing failed (the connection is gone, or the commit's fate is
    /// unknown): every message fails.
    Transaction(DieselError),
    /// An optimistic batch met a `clientMsgId` that exists: it rolled back, to be committed
    /// again with the lookup first.
    Conflict,
}

/// Whether a batch looks its `clientMsgId`s up before inserting.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// No: repeats within the batch are caught here, and a repeat of a committed message
    /// (a client's retry: rare) makes its insert conflict, which rolls the batch back.
    Optimistic,
    /// Yes, once the counters are locked (one more statement per batch).
    First,
}

impl From<DieselError> for BatchError {
    fn from(e: DieselError) -> Self {
        Self::Transaction(e)
    }
}

impl BatchError {
    fn into_repo(self) -> RepoError {
        match self {
            Self::Statement(e) => RepoError::new("inserting a message", e),
            Self::Transaction(e) => RepoError::new("committing a batch of messages", e),
            Self::Conflict => RepoError::msg("a clientMsgId was taken while its batch committed"),
        }
    }
}

/// What the batch will do with one message, decided before anything is written.
#[derive(Clone, Copy)]
enum Plan {
    Insert(i64),
    Duplicate,
    Archived,
    NotMember,
}

/// Decides every message's fate from the `(conversation, sender)`s whose sender is a member
/// of the conversation and its workspace, the locked counters (`last_seq` of each open
/// conversation of the batch) and the `(conversation, sender, clientMsgId)`s that exist.
/// Returns the plans, in batch order, and each conversation's new `last_seq`.
fn plan<'m>(
    messages: &[&'m NewMessage],
    members: Vec<(Uuid, Uuid)>,
    counters: Vec<(Uuid, i64)>,
    existing: Vec<(Uuid, Uuid, Option<String>)>,
) -> (Vec<Plan>, HashMap<Uuid, i64>) {
    let members: HashSet<(Uuid, Uuid)> = members.into_iter().collect();
    let mut last_seq: HashMap<Uuid, i64> = counters.into_iter().collect();
    let existing: HashSet<(Uuid, Uuid, String)> =
        existing.into_iter().filter_map(|(c, s, key)| key.map(|key| (c, s, key))).collect();
    let mut taken: HashSet<(Uuid, Uuid, &'m str)> = HashSet::new();
    let plans = messages
        .iter()
        .map(|m| {
            let (conversation, sender) = (m.conversation_id.as_uuid(), m.sender_id.as_uuid());
            if !members.contains(&(conversation, sender)) {
                return Plan::NotMember;
            }
            let key = m.client_msg_id.as_deref();
            if let Some(key) = key
                && (taken.contains(&(conversation, sender, key))
                    || existing.contains(&(conversation, sender, key.to_owned())))
            {
                return Plan::Duplicate;
            }
            let Some(last) = last_seq.get_mut(&conversation) else { return Plan::Archived };
            *last += 1;
            if let Some(key) = key {
                taken.insert((conversation, sender, key));
            }
            Plan::Insert(*last)
        })
        .collect();
    (plans, last_seq)
}

/// Commits `messages` in one transaction; the outcomes are in the same order.
pub(crate) async fn commit_batch(
    conn: &mut AsyncPgConnection,
    messages: &[&NewMessage],
    lookup: Lookup,
) -> Result<Vec<Committed>, BatchError> {
    let mut conversation_ids: Vec<Uuid> = messages.iter().map(|m| m.conversation_id.as_uuid()).collect();
    conversation_ids.sort_unstable();
    conversation_ids.dedup();
    let mut senders: Vec<Uuid> = messages.iter().map(|m| m.sender_id.as_uuid()).collect();
    senders.sort_unstable();
    senders.dedup();
    let keyed: Vec<&NewMessage> = messages.iter().copied().filter(|m| m.client_msg_id.is_some()).collect();
    conn.transaction::<_, BatchError, _>(async |conn: &mut AsyncPgConnection| {
        let conn: &AsyncPgConnection = conn;
        let locked = conversations::table
            .filter(conversations::id.eq_any(&conversation_ids))
            .filter(conversations::archived_at.is_null())
            .order(conversations::id.asc())
            .select((conversations::id, conversations::last_seq))
            .for_update()
            .load::<(Uuid, i64)>(&mut &*conn);
        // Which senders may post: members of the conversation and of its workspace.
        let members = conversation_members::table
            .inner_join(conversations::table)
            .inner_join(
                workspace_members::table.on(workspace_members::workspace_id
                    .eq(conversations::workspace_id)
                    .and(workspace_members::user_id.eq(conversation_members::user_id))),
            )
            .filter(conversation_members::conversation_id.eq_any(&conversation_ids))
            .filter(conversation_members::user_id.eq_any(&senders))
            .select((conversation_members::conversation_id, conversation_members::user_id))
            .load::<(Uuid, Uuid)>(&mut &*conn);
        let existing = async {
            if keyed.is_empty() || lookup == Lookup::Optimistic {
                return Ok(Vec::new());
            }
            let senders: Vec<Uuid> = keyed.iter().map(|m| m.sender_id.as_uuid()).collect();
            let keys: Vec<&str> = keyed.iter().filter_map(|m| m.client_msg_id.as_deref()).collect();
            messages::table
                .filter(messages::conversation_id.eq_any(&conversation_ids))
                .filter(messages::sender_id.eq_any(senders))
                .filter(messages::client_msg_id.eq_any(keys))
                .select((messages::conversation_id, messages::sender_id, messages::client_msg_id))
                .load::<(Uuid, Uuid, Option<String>)>(&mut &*conn)
                .await
        };
        let (locked, members, existing) = join3(locked, members, existing).await;
        let (plans, last_seq) = plan(
            messages,
            members.map_err(BatchError::Statement)?,
            locked.map_err(BatchError::Statement)?,
            existing.map_err(BatchError::Statement)?,
        );
        if lookup == Lookup::Optimistic
            && messages.iter().zip(&plans).any(|(m, p)| matches!(p, Plan::Archived) && m.client_msg_id.is_some())
        {
            // A retry into an archived conversation still gets its original: look it up.
            return Err(BatchError::Conflict);
        }

        // The last message of each (conversation, sender): where the sender's watermark goes.
        let mut watermarks: HashMap<(Uuid, Uuid), (i64, chrono::DateTime<chrono::Utc>)> = HashMap::new();
        let mut moved: HashSet<Uuid> = HashSet::new();
        for (message, plan) in messages.iter().zip(&plans) {
            if let Plan::Insert(seq) = *plan {
                let conversation = message.conversation_id.as_uuid();
                moved.insert(conversation);
                watermarks.insert((conversation, message.sender_id.as_uuid()), (seq, message.created_at));
            }
        }
        let mut watermarks: Vec<_> = watermarks.into_iter().collect();
        watermarks.sort_unstable_by_key(|(key, _)| *key);
        let mut counters: Vec<(Uuid, i64)> =
            last_seq.into_iter().filter(|(conversation, _)| moved.contains(conversation)).collect();
        counters.sort_unstable();

        let batch: Vec<(&NewMessage, i64)> = messages
            .iter()
            .zip(&plans)
            .filter_map(|(message, plan)| match *plan {
                Plan::Insert(seq) => Some((*message, seq)),
                Plan::Duplicate | Plan::Archived | Plan::NotMember => None,
            })
            .collect();
        let inserts = insert_batch(conn, &batch);
        // One statement each for all counters and all watermarks of the batch: constant SQL
        // over arrays, `Prepared` so that the connection parses it once and keeps it.
        let (ids, seqs): (Vec<Uuid>, Vec<i64>) = counters.into_iter().unzip();
        let counter_updates = join_all((!ids.is_empty()).then(|| {
            prepared(crate::sql::MOVE_COUNTERS, (ids.into_sql::<Array<SqlUuid>>(), seqs.into_sql::<Array<BigInt>>()))
                .execute(&mut &*conn)
        }));
        let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((conversation, user), (seq, at)) in watermarks {
            columns.0.push(conversation);
            columns.1.push(user);
            columns.2.push(seq);
            columns.3.push(at);
        }
        let watermark_updates = join_all((!columns.0.is_empty()).then(|| {
            let (conversations, users, seqs, read_at) = columns;
            prepared(
                crate::sql::MOVE_WATERMARKS,
                (
                    conversations.into_sql::<Array<SqlUuid>>(),
                    users.into_sql::<Array<SqlUuid>>(),
                    seqs.into_sql::<Array<BigInt>>(),
                    read_at.into_sql::<Array<Timestamptz>>(),
                ),
            )
            .execute(&mut &*conn)
        }));
        // Every statement runs to its end (none is dropped mid-flight); the first error fails
        // the batch.
        let (rows, counted, marked) = join3(inserts, counter_updates, watermark_updates).await;
        counted.into_iter().chain(marked).try_for_each(|r| r.map(drop)).map_err(BatchError::Statement)?;
        let mut rows = rows.map_err(BatchError::Statement)?.ok_or(BatchError::Conflict)?.into_iter();
        plans
            .iter()
            .map(|plan| {
                Ok(match *plan {
                    Plan::Insert(_) => match rows.next() {
                        Some(rows) => Committed::Inserted(Box::new(rows)),
                        None => return Err(BatchError::Statement(DieselError::NotFound)),
                    },
                    Plan::Duplicate => Committed::Duplicate,
                    Plan::Archived => Committed::Archived,
                    Plan::NotMember => Committed::NotMember,
                })
            })
            .collect()
    })
    .await
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use chat_domain::cipher::Sealed;
    use chat_domain::conversation::ConversationRepository;
    use chat_domain::ids::{ConversationId, MessageId, UserId};
    use chat_domain::message::{MessageRepository, MessageType};
    use chrono::Utc;

    use super::*;
    use crate::PgStore;

    /// A store with one user and `n` open group conversations of theirs.
    async fn store_with(n: usize) -> Option<(crate::testing::TestDatabase, PgStore, UserId, Vec<ConversationId>)> {
        let database = crate::testing::fresh_database().await?;
        let store = PgStore::connect(database.url(), 4).await.expect("connect");
        let (ada, conversations) = chat_store_tests::one_user_with_groups(&store, n).await;
        Some((database, store, ada, conversations))
    }

    fn message(conversation: ConversationId, sender: UserId, key: Option<&str>) -> NewMessage {
        NewMessage {
            id: MessageId::generate(),
            conversation_id: conversation,
            sender_id: sender,
            client_msg_id: key.map(str::to_owned),
            kind: MessageType::Text,
            content: Sealed { key_version: 1, bytes: vec![1, 2, 3] },
            reply_to_id: None,
            attachments: Vec::new(),
            search: None,
            created_at: Utc::now(),
        }
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Got {
        Seq(i64),
        Duplicate,
        Archived,
        NotMember,
    }
    use Got::{Archived, Duplicate, NotMember, Seq};

    /// Commits `messages` as one batch through the batcher's own path, returning each outcome.
    async fn one_batch(store: &PgStore, messages: Vec<NewMessage>) -> Vec<Result<Got, RepoError>> {
        let (mut requests, mut outcomes) = (Vec::new(), Vec::new());
        for message in messages {
            let (reply, outcome) = oneshot::channel();
            requests.push(Request { message, reply });
            outcomes.push(outcome);
        }
        commit_requests(&store.pool, &mut requests).await;
        let mut seqs = Vec::new();
        for outcome in outcomes {
            seqs.push(outcome.await.expect("answered").map(|c| match c {
                Committed::Inserted(rows) => Seq(rows.0.into_domain(&mut HashMap::new()).expect("row").seq),
                Committed::Duplicate => Duplicate,
                Committed::Archived => Archived,
                Committed::NotMember => NotMember,
            }));
        }
        seqs
    }

    async fn last_seq(store: &PgStore, conversation: ConversationId) -> i64 {
        store.find_conversation(conversation).await.expect("find").expect("exists").last_seq
    }

    #[tokio::test]
    async fn one_batch_numbers_each_conversation_apart_and_a_repeat_in_it_takes_no_seq() {
        let Some((_db, store, ada, c)) = store_with(2).await else { return };
        let batch = vec![
            message(c[0], ada, None),
            message(c[1], ada, Some("k")),
            message(c[0], ada, Some("k")),
            message(c[0], ada, Some("k")),
            message(c[1], ada, None),
            message(c[0], ada, None),
        ];
        let outcomes = one_batch(&store, batch.clone()).await;
        let got: Vec<Got> = outcomes.into_iter().map(|o| o.expect("no error")).collect();
        assert_eq!(got, [Seq(1), Seq(1), Seq(2), Duplicate, Seq(2), Seq(3)]);
        assert_eq!((last_seq(&store, c[0]).await, last_seq(&store, c[1]).await), (3, 2));
        assert_eq!(store.find_message(batch[3].id).await.expect("find"), None, "the repeat is not stored");
        let original = store.find_by_client_msg_id(c[0], ada, "k").await.expect("find").expect("stored");
        assert_eq!((original.id, original.seq), (batch[2].id, 2));
        let member = store.find_member(c[0], ada).await.expect("member").expect("a member");
        assert_eq!(member.last_read_seq, 3, "the watermark is at the sender's last message");

        // A later batch repeating a committed clientMsgId: its insert conflicts, the batch is
        // committed again with the lookup first, and the others keep gap-free seqs.
        let later = one_batch(&store, vec![message(c[0], ada, None), message(c[0], ada, Some("k"))]).await;
        let got: Vec<Got> = later.into_iter().map(|o| o.expect("no error")).collect();
        assert_eq!(got, [Seq(4), Duplicate]);
        assert_eq!(last_seq(&store, c[0]).await, 4);

        // Through the port, a repeat answers with the original.
        match store.insert_message(&batch[3]).await.expect("insert") {
            chat_domain::message::InsertOutcome::Duplicate(m) => assert_eq!(m.id, batch[2].id),
            other => panic!("expected the original, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_message_that_fails_in_a_batch_fails_alone() {
        let Some((_db, store, ada, c)) = store_with(2).await else { return };
        let mut broken = message(c[0], ada, None);
        broken.reply_to_id = Some(MessageId::generate()); // no such root: a foreign-key violation
        let batch = vec![message(c[0], ada, None), broken.clone(), message(c[1], ada, None), message(c[0], ada, None)];
        let outcomes = one_batch(&store, batch).await;
        assert_eq!(outcomes[0].as_ref().ok(), Some(&Seq(1)));
        assert!(outcomes[1].is_err(), "{:?}", outcomes[1]);
        assert_eq!(outcomes[2].as_ref().ok(), Some(&Seq(1)));
        assert_eq!(outcomes[3].as_ref().ok(), Some(&Seq(2)), "no gap where the failed one was");
        assert_eq!(store.find_message(broken.id).await.expect("find"), None);
        assert_eq!(last_seq(&store, c[0]).await, 2);
    }

    #[tokio::test]
    async fn one_batch_counts_every_reply_to_a_root_and_stores_every_messages_tags() {
        let Some((_db, store, ada, c)) = store_with(1).await else { return };
        let root = message(c[0], ada, None);
        assert_eq!(one_batch(&store, vec![root.clone()]).await[0].as_ref().ok(), Some(&Seq(1)));
        // Two replies to the committed root, a new root and a reply to it, all in one batch.
        let new_root = message(c[0], ada, None);
        let reply = |to: &NewMessage| NewMessage { reply_to_id: Some(to.id), ..message(c[0], ada, None) };
        let mut batch = vec![reply(&root), reply(&root), new_root.clone(), reply(&new_root)];
        let workspace = store.find_conversation(c[0]).await.expect("find").expect("exists").workspace_id;
        for (n, m) in batch.iter_mut().enumerate() {
            let tag = chat_domain::search::SearchTag([u8::try_from(n).expect("small"); 16]);
            m.search = Some(chat_domain::search::IndexEntry {
                message_id: m.id,
                workspace_id: workspace,
                conversation_id: c[0],
                created_at: m.created_at,
                tags: vec![tag, chat_domain::search::SearchTag([0xee; 16])],
            });
        }
        let got: Vec<Got> = one_batch(&store, batch.clone()).await.into_iter().map(|o| o.expect("no error")).collect();
        assert_eq!(got, [Seq(2), Seq(3), Seq(4), Seq(5)]);
        let count = |id| {
            let store = &store;
            async move { store.find_message(id).await.expect("find").expect("stored").reply_count }
        };
        assert_eq!((count(root.id).await, count(new_root.id).await), (2, 1));
        let mut conn = store.pool.get().await.expect("conn");
        let indexed: Vec<Vec<Vec<u8>>> = crate::schema::message_search::table
            .filter(crate::schema::message_search::conversation_id.eq(c[0].as_uuid()))
            .select(crate::schema::message_search::tags)
            .load(&mut conn)
            .await
            .expect("load");
        assert_eq!(
            indexed.iter().map(Vec::len).collect::<Vec<_>>(),
            [2, 2, 2, 2],
            "two tags for each of the four messages"
        );
    }

    #[tokio::test]
    async fn an_archived_conversation_in_a_batch_holds_back_no_other() {
        let Some((_db, store, ada, c)) = store_with(2).await else { return };
        store.archive_conversation(c[1], Utc::now()).await.expect("archive");
        let outcomes = one_batch(
            &store,
            vec![message(c[1], ada, Some("a")), message(c[0], ada, Some("a")), message(c[1], ada, None)],
        )
        .await;
        let got: Vec<Got> = outcomes.into_iter().map(|o| o.expect("no error")).collect();
        assert_eq!(got, [Archived, Seq(1), Archived]);
        assert_eq!((last_seq(&store, c[0]).await, last_seq(&store, c[1]).await), (1, 0));
    }

    #[tokio::test]
    async fn a_non_member_in_a_batch_holds_back_no_other() {
        let Some((_db, store, ada, c)) = store_with(1).await else { return };
        let stranger = UserId::generate();
        let batch = vec![message(c[0], ada, None), message(c[0], stranger, Some("a")), message(c[0], ada, Some("a"))];
        let outcomes = one_batch(&store, batch.clone()).await;
        let got: Vec<Got> = outcomes.into_iter().map(|o| o.expect("no error")).collect();
        assert_eq!(got, [Seq(1), NotMember, Seq(2)]);
        assert_eq!(store.find_message(batch[1].id).await.expect("find"), None);
        assert_eq!(last_seq(&store, c[0]).await, 2);
    }

    #[tokio::test]
    async fn a_batchs_statements_are_prepared_once_per_connection() {
        use diesel::connection::InstrumentationEvent;
        let Some((_db, store, ada, c)) = store_with(2).await else { return };
        let mut conn = crate::acquire(&store.pool).await.expect("a connection");
        let cached = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen = Arc::clone(&cached);
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::CacheQuery { sql, .. } = event {
                seen.lock().expect("not poisoned").push(sql.to_owned());
            }
        });
        for size in [1, 3, 2] {
            let batch: Vec<NewMessage> = (0..size).map(|i| message(c[i % 2], ada, None)).collect();
            let batch: Vec<&NewMessage> = batch.iter().collect();
            let committed = commit_batch(&mut conn, &batch, Lookup::Optimistic).await.map_err(BatchError::into_repo);
            assert_eq!(committed.expect("committed").len(), size);
        }
        let cached = cached.lock().expect("not poisoned").clone();
        for statement in [crate::sql::INSERT_MESSAGES, crate::sql::MOVE_COUNTERS, crate::sql::MOVE_WATERMARKS] {
            let times = cached.iter().filter(|sql| *sql == statement).count();
            assert_eq!(times, 1, "prepared on the first batch only, whatever the size: {statement}");
        }
        drop(conn);
        assert_eq!((last_seq(&store, c[0]).await, last_seq(&store, c[1]).await), (4, 2));
    }
}
