//! Group commit for message inserts.
//!
//! SQLite has one writer, and with `synchronous=FULL` every commit syncs the WAL: committing
//! each message alone costs one fsync per message. So `insert_message` queues the message (a
//! bounded channel) with a oneshot for its outcome, and one writer thread takes everything
//! queued — up to [`MAX_BATCH`] — and inserts it in ONE `BEGIN IMMEDIATE` transaction,
//! answering each sender only after `COMMIT` returned: one fsync per batch, and nothing
//! acknowledged that is not durable (a failed commit fails every message of the batch).
//!
//! The writer is a thread of its own with a connection of its own, outside the pool: a batch
//! costs one wake-up of that thread and one of each sender (not a hop through a runtime task
//! and the blocking pool as well), and the connection's page cache stays warm — SQLite drops a
//! connection's whole cache when another connection wrote since its last transaction, so
//! batches on whichever pooled connection was free read their B-tree pages back from the file
//! each time (docs/benchmarks.md, round 9).
//!
//! Inside the batch each message runs the per-message insert (`messages::insert_in_batch`) in
//! queue order: seqs are taken under the write lock (gapless, in commit order); a repeated
//! `clientMsgId` — also one that came earlier in the same batch, which the transaction's reads
//! see — and an archived conversation are found before anything is written, and take no seq.
//! So no statement is expected to fail and there are no savepoints (two statements and a
//! sub-journal copy of every touched page, per message). If one fails all the same (a
//! constraint the checks could not foresee, such as a thread root that does not exist), the
//! whole transaction rolls back — nothing of it was acknowledged — and each message of the
//! batch is committed alone, so the failure stays with the message that caused it. The search
//! documents of the messages inserted follow the last message, in one statement
//! (`insert_all`), so that FTS5 writes one segment per batch.

use std::sync::Arc;

use chat_domain::error::RepoError;
use chat_domain::message::{GroupCommitCounters, GroupCommitStats, InsertOutcome, NewMessage};
use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::result::Error as DieselError;
use diesel::sqlite::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use crate::checkpoint::{self, Behind};
use crate::messages::insert_in_batch;
use crate::search::insert_docs;
use crate::store::{Connect, opened};

/// The most messages committed in one transaction.
pub(crate) const MAX_BATCH: usize = 256;
/// Messages that may wait before senders wait for room (backpressure).
const QUEUE: usize = 4 * MAX_BATCH;

type Outcome = Result<InsertOutcome, RepoError>;

struct Request {
    message: NewMessage,
    reply: oneshot::Sender<Outcome>,
}

/// The senders' end of the writer.
#[derive(Clone)]
pub(crate) struct InsertQueue {
    tx: mpsc::Sender<Request>,
    counters: Arc<GroupCommitCounters>,
}

impl InsertQueue {
    /// Starts the writer thread on `writer`; it stops once every clone of the queue is
    /// dropped.
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub(crate) fn start(writer: SqliteConnection, connect: Connect, behind: Behind) -> Result<Self, RepoError> {
        let counters = Arc::new(GroupCommitCounters::default());
        let (tx, rx) = mpsc::channel(QUEUE);
        let shared = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || write_loop(Some(writer), &connect, rx, &shared, &behind))
            .map_err(|e| RepoError::new("starting the sqlite writer thread", e))?;
        Ok(Self { tx, counters })
    }

    /// Queues `message` and waits for the commit of its batch.
    pub(crate) async fn insert(&self, message: NewMessage) -> Outcome {
        let (reply, outcome) = oneshot::channel();
        // Unconstrained: with room in the queue this never yields to Tokio's cooperative budget,
        // so the message is queued on the first poll — a socket that polls its pipelined sends
        // once each, in frame order, gets its messages into batches (and seqs) in that order.
        // (A full queue is waited on in order: the channel's semaphore is fair.)
        tokio::task::unconstrained(self.tx.send(Request { message, reply }))
            .await
            .map_err(|_| RepoError::msg("the message writer stopped"))?;
        outcome.await.map_err(|_| RepoError::msg("the message writer dropped a message"))?
    }

    pub(crate) fn stats(&self) -> GroupCommitStats {
        self.counters.stats()
    }
}

/// The writer thread: takes what is queued (waiting when nothing is), commits it, answers;
/// after a batch, copies the WAL frames the checkpoint thread's last pass left behind
/// (`checkpoint.rs`), so that its next transaction starts the WAL over.
fn write_loop(
    mut conn: Option<SqliteConnection>,
    connect: &Connect,
    mut rx: mpsc::Receiver<Request>,
    counters: &GroupCommitCounters,
    behind: &Behind,
) {
    let mut requests = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        requests.push(first);
        while requests.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(request) => requests.push(request),
                Err(_) => break,
            }
        }
        let size = requests.len() as u64;
        counters.record(size);
        let _span = tracing::debug_span!("insert_batch", size).entered();
        commit_requests(&mut conn, connect, &mut requests);
        if behind.take()
            && let Err(e) = opened(&mut conn, connect).and_then(checkpoint::checkpoint)
        {
            tracing::warn!(error = %e, "sqlite WAL checkpoint after a batch failed");
        }
    }
}

/// Commits the queued requests (draining them) and answers each. A connection left unusable
/// (its transaction state broken) is dropped and the next batch opens another.
fn commit_requests(conn: &mut Option<SqliteConnection>, connect: &Connect, requests: &mut Vec<Request>) {
    let (messages, replies): (Vec<NewMessage>, Vec<_>) = requests.drain(..).map(|r| (r.message, r.reply)).unzip();
    let c = match opened(conn, connect) {
        Ok(c) => c,
        Err(e) => return fail_all(replies, &e),
    };
    let outcomes = commit_batch(c, &messages);
    if outcomes.is_err() && AnsiTransactionManager::is_broken_transaction_manager(c) {
        *conn = None;
    }
    match outcomes {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(outcome.map_err(|e| RepoError::new("inserting a message", e)));
            }
        }
        Err(e) => fail_all(replies, &RepoError::new("committing a batch of messages", e)),
    }
}

fn fail_all(replies: Vec<oneshot::Sender<Outcome>>, error: &RepoError) {
    let message = error.to_string();
    for reply in replies {
        let _ = reply.send(Err(RepoError::new("committing a batch of messages", message.clone())));
    }
}

/// Why a batch's transaction did not commit.
enum BatchError {
    /// A message's statement failed (the transaction rolled back).
    Message(DieselError),
    /// `BEGIN`, `COMMIT` or the rollback failed.
    Transaction(DieselError),
}

impl From<DieselError> for BatchError {
    fn from(e: DieselError) -> Self {
        Self::Transaction(e)
    }
}

/// Inserts `messages` in one immediate transaction; the outcomes are in the same order. When a
/// message's statement fails, the transaction rolls back and each message is committed in a
/// transaction of its own instead. `Err` when a transaction itself fails (then nothing of it
/// committed).
pub(crate) fn commit_batch(
    c: &mut SqliteConnection,
    messages: &[NewMessage],
) -> Result<Vec<Result<InsertOutcome, DieselError>>, DieselError> {
    let together: Result<Vec<InsertOutcome>, BatchError> =
        c.immediate_transaction(|c| insert_all(c, messages).map_err(BatchError::Message));
    match together {
        Ok(outcomes) => Ok(outcomes.into_iter().map(Ok).collect()),
        Err(BatchError::Transaction(e)) => Err(e),
        Err(BatchError::Message(e)) if messages.len() == 1 => Ok(vec![Err(e)]),
        Err(BatchError::Message(_)) => Ok(messages
            .iter()
            .map(|message| {
                c.immediate_transaction(|c| insert_all(c, std::slice::from_ref(message)))
                    .map(|mut outcomes| outcomes.remove(0))
            })
            .collect()),
    }
}

/// Inserts `messages` in queue order, then the search documents of those inserted, all in one
/// statement (`search::insert_docs` says why it comes last).
fn insert_all(c: &mut SqliteConnection, messages: &[NewMessage]) -> Result<Vec<InsertOutcome>, DieselError> {
    let outcomes = messages.iter().map(|message| insert_in_batch(c, message)).collect::<Result<Vec<_>, _>>()?;
    let inserted = messages.iter().zip(&outcomes).filter(|(_, outcome)| matches!(outcome, InsertOutcome::Inserted(_)));
    insert_docs(c, inserted.filter_map(|(message, _)| message.search.as_ref()))?;
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use chat_domain::cipher::Sealed;
    use chat_domain::conversation::ConversationRepository;
    use chat_domain::ids::{ConversationId, MessageId, UserId};
    use chat_domain::message::{MessageRepository, MessageType};
    use chat_domain::search::{IndexEntry, SearchIndex, SearchTag, TAG_LEN, TagQuery};
    use chrono::Utc;

    use super::*;
    use crate::SqliteStore;

    /// A store with one user and `n` open group conversations of theirs.
    async fn store_with(n: usize) -> (tempfile::TempDir, SqliteStore, UserId, Vec<ConversationId>) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqliteStore::open(dir.path().join("chat.db").to_str().expect("utf-8"), 2).await.expect("open");
        let (ada, conversations) = chat_store_tests::one_user_with_groups(&store, n).await;
        (dir, store, ada, conversations)
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
        DuplicateOf(MessageId),
        Archived,
        NotMember,
        Failed,
    }
    use Got::{Archived, DuplicateOf, Failed, NotMember, Seq};

    /// Commits `messages` as one batch, as the batcher does.
    async fn one_batch(store: &SqliteStore, messages: Vec<NewMessage>) -> Vec<Got> {
        let outcomes = store.run("a batch", move |c| commit_batch(c, &messages)).await.expect("committed");
        outcomes
            .into_iter()
            .map(|o| match o {
                Ok(InsertOutcome::Inserted(m)) => Seq(m.seq),
                Ok(InsertOutcome::Duplicate(m)) => DuplicateOf(m.id),
                Ok(InsertOutcome::Archived) => Archived,
                Ok(InsertOutcome::NotMember) => NotMember,
                Err(_) => Failed,
            })
            .collect()
    }

    async fn last_seq(store: &SqliteStore, conversation: ConversationId) -> i64 {
        store.find_conversation(conversation).await.expect("find").expect("exists").last_seq
    }

    /// The WAL header's checkpoint sequence number: SQLite adds one each time the WAL starts
    /// over from its beginning.
    fn wal_restarts(wal: &std::path::Path) -> u32 {
        let header = std::fs::read(wal).expect("the WAL");
        u32::from_be_bytes(header[12..16].try_into().expect("a WAL header"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn under_commits_back_to_back_the_wal_starts_over_instead_of_growing() {
        let (dir, store, ada, c) = store_with(1).await;
        let wal = dir.path().join("chat.db-wal");
        store.insert_message(&message(c[0], ada, None)).await.expect("insert");
        let before = wal_restarts(&wal);
        // Each commit follows the last at once: the checkpoint thread never finds the WAL
        // still; six of its passes go by.
        let until = std::time::Instant::now() + 6 * checkpoint::INTERVAL;
        let mut commits = 0_u32;
        while std::time::Instant::now() < until {
            store.insert_message(&message(c[0], ada, None)).await.expect("insert");
            commits += 1;
        }
        let restarts = wal_restarts(&wal) - before;
        assert!(restarts >= 2, "the WAL started over {restarts} times in {commits} commits");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_batch_numbers_each_conversation_apart_and_a_repeat_in_it_takes_no_seq() {
        let (_dir, store, ada, c) = store_with(2).await;
        let batch = vec![
            message(c[0], ada, None),
            message(c[1], ada, Some("k")),
            message(c[0], ada, Some("k")),
            message(c[0], ada, Some("k")),
            message(c[1], ada, None),
            message(c[0], ada, None),
        ];
        let got = one_batch(&store, batch.clone()).await;
        assert_eq!(got, [Seq(1), Seq(1), Seq(2), DuplicateOf(batch[2].id), Seq(2), Seq(3)]);
        assert_eq!((last_seq(&store, c[0]).await, last_seq(&store, c[1]).await), (3, 2));
        assert_eq!(store.find_message(batch[3].id).await.expect("find"), None, "the repeat is not stored");
        let member = store.find_member(c[0], ada).await.expect("member").expect("a member");
        assert_eq!(member.last_read_seq, 3, "the watermark is at the sender's last message");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_indexes_every_message_it_inserts_and_no_repeat() {
        let (_dir, store, ada, c) = store_with(2).await;
        let workspace = store.find_conversation(c[0]).await.expect("find").expect("exists").workspace_id;
        let indexed = |mut new: NewMessage, tags: &[u8]| {
            new.search = Some(IndexEntry {
                message_id: new.id,
                workspace_id: workspace,
                conversation_id: new.conversation_id,
                created_at: new.created_at,
                tags: tags.iter().map(|&b| SearchTag([b; TAG_LEN])).collect(),
            });
            new
        };
        let batch = vec![
            indexed(message(c[0], ada, None), &[1]),
            indexed(message(c[1], ada, Some("k")), &[2]),
            indexed(message(c[1], ada, Some("k")), &[3]),
            message(c[0], ada, None),
            indexed(message(c[1], ada, None), &[1, 2]),
        ];
        assert_eq!(one_batch(&store, batch.clone()).await, [Seq(1), Seq(1), DuplicateOf(batch[1].id), Seq(2), Seq(2)]);
        let found = |tags: &'static [u8]| {
            let query = TagQuery {
                workspace_id: workspace,
                conversations: c.clone(),
                tags: tags.iter().map(|&b| SearchTag([b; TAG_LEN])).collect(),
                before: None,
                limit: 10,
            };
            let store = &store;
            async move {
                let mut ids: Vec<MessageId> =
                    store.search_messages(&query).await.expect("search").messages.iter().map(|m| m.id).collect();
                ids.sort();
                ids
            }
        };
        let sorted = |mut ids: Vec<MessageId>| {
            ids.sort();
            ids
        };
        assert_eq!(found(&[1]).await, sorted(vec![batch[0].id, batch[4].id]));
        assert_eq!(found(&[2]).await, sorted(vec![batch[1].id, batch[4].id]));
        assert_eq!(found(&[1, 2]).await, [batch[4].id]);
        assert!(found(&[3]).await.is_empty(), "the repeat's tags are not indexed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_that_fails_in_a_batch_fails_alone() {
        let (_dir, store, ada, c) = store_with(2).await;
        let mut broken = message(c[0], ada, None);
        broken.reply_to_id = Some(MessageId::generate()); // no such root: a foreign-key violation
        let batch = vec![message(c[0], ada, None), broken.clone(), message(c[1], ada, None), message(c[0], ada, None)];
        assert_eq!(one_batch(&store, batch).await, [Seq(1), Failed, Seq(1), Seq(2)]);
        assert_eq!(store.find_message(broken.id).await.expect("find"), None);
        assert_eq!(last_seq(&store, c[0]).await, 2);
    }

    /// Queues `messages` as the senders would and returns what each is answered.
    fn queued(messages: Vec<NewMessage>) -> (Vec<Request>, Vec<oneshot::Receiver<Outcome>>) {
        messages
            .into_iter()
            .map(|message| {
                let (reply, answer) = oneshot::channel();
                (Request { message, reply }, answer)
            })
            .unzip()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_opens_a_connection_when_it_has_none_and_fails_the_batch_when_it_cannot() {
        let (dir, store, ada, c) = store_with(1).await;
        let path = dir.path().join("chat.db").to_str().expect("utf-8").to_owned();
        let unreachable: Connect = Box::new(|| Err(RepoError::msg("no database here")));
        let (mut requests, answers) = queued(vec![message(c[0], ada, None), message(c[0], ada, None)]);
        let mut conn = None;
        tokio::task::block_in_place(|| commit_requests(&mut conn, &unreachable, &mut requests));
        assert!(conn.is_none() && requests.is_empty());
        for answer in answers {
            let error = answer.await.expect("answered").expect_err("no connection, no commit");
            let cause = std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default();
            assert_eq!(cause, "no database here", "{error:?}");
        }
        assert_eq!(last_seq(&store, c[0]).await, 0, "nothing was written");

        let reachable = crate::store::connector(path);
        let (mut requests, answers) = queued(vec![message(c[0], ada, None), message(c[0], ada, None)]);
        tokio::task::block_in_place(|| commit_requests(&mut conn, &reachable, &mut requests));
        assert!(conn.is_some(), "the connection opened is kept for the next batch");
        let mut seqs = Vec::new();
        for answer in answers {
            match answer.await.expect("answered").expect("committed") {
                InsertOutcome::Inserted(m) => seqs.push(m.seq),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(seqs, [1, 2]);
        assert_eq!(last_seq(&store, c[0]).await, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_non_member_in_a_batch_holds_back_no_other() {
        let (_dir, store, ada, c) = store_with(1).await;
        let stranger = UserId::generate();
        let batch = vec![message(c[0], ada, None), message(c[0], stranger, Some("a")), message(c[0], ada, Some("a"))];
        assert_eq!(one_batch(&store, batch.clone()).await, [Seq(1), NotMember, Seq(2)]);
        assert_eq!(store.find_message(batch[1].id).await.expect("find"), None);
        assert_eq!(last_seq(&store, c[0]).await, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_archived_conversation_in_a_batch_holds_back_no_other() {
        let (_dir, store, ada, c) = store_with(2).await;
        store.archive_conversation(c[1], Utc::now()).await.expect("archive");
        let batch = vec![message(c[1], ada, Some("a")), message(c[0], ada, Some("a")), message(c[1], ada, None)];
        assert_eq!(one_batch(&store, batch).await, [Archived, Seq(1), Archived]);
        assert_eq!((last_seq(&store, c[0]).await, last_seq(&store, c[1]).await), (1, 0));
        assert_eq!(store.group_commit_stats().batches, 0, "these batches bypassed the queue");
        store.insert_message(&message(c[0], ada, None)).await.expect("insert");
        assert_eq!(store.group_commit_stats(), GroupCommitStats { batches: 1, messages: 1, largest: 1 });
    }
}
