//! The naive insert path: one INSERT per message in its own transaction.
//!
//! [`compare`] measures, on one throw-away database, how many messages per second two write
//! paths persist with the same guarantees (every message durable when acknowledged, seqs
//! gap-free per conversation):
//!
//! - **ours**: [`MessageRepository::insert_message`] of [`PgStore`], exactly as the server calls
//!   it (whatever batching the store does behind the port is what is measured);
//! - **naive**: what a straightforward diesel-async implementation does — per message, a
//!   connection from a deadpool pool and one transaction that increments the conversation's
//!   seq counter (the row lock that keeps seqs gap-free), inserts the row and moves the
//!   sender's read marker, i.e. the same rows our store writes. It is written with diesel's
//!   query builder, so its statements are prepared once per connection and cached like ours:
//!   the comparison isolates how the writes are committed, not statement parsing.
//!
//! Both paths get the same pool size ([`POOL_SIZE`], the server's default
//! `DATABASE_POOL_SIZE` and the Socket.IO peer's `pg.Pool` size), warmed before the clock
//! starts, the same `concurrency` sender tasks, the same ~100-byte sealed payloads (the store
//! never decrypts), the same spread over conversations and senders, and conversations of their
//! own in the same database. Afterwards the seqs each path wrote are checked from the tables,
//! and the database is dropped, whatever happened.

use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chat_domain::cipher::Sealed;
use chat_domain::conversation::{
    Conversation, ConversationRepository, ConversationRole, ConversationType, Created, Member, NewConversation,
};
use chat_domain::error::RepoError;
use chat_domain::ids::{ConversationId, MessageId, UserId, WorkspaceId};
use chat_domain::message::{InsertOutcome, MessageRepository, MessageType, NewMessage};
use chat_domain::user::{DisplayName, Email, NewUser, PasswordHash, UserRepository};
use chat_domain::workspace::{Name, Workspace, WorkspaceRepository, WorkspaceRole};
use chat_postgres::PgStore;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::future::try_join_all;
use uuid::Uuid;

use crate::server::{redact, with_database};

/// Connections each path may use: the server's default `DATABASE_POOL_SIZE`.
pub const POOL_SIZE: usize = 16;
/// Accounts that send, round-robin; all of them are members of every conversation.
const SENDERS: usize = 4;
/// Size of each message's sealed content (nonce ‖ ciphertext ‖ tag of a short text).
const CONTENT_BYTES: usize = 100;
/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The two write paths, measured one after the other on the same database.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NaiveReport {
    /// Messages per second persisted by the naive path.
    pub naive_per_sec: f64,
    /// Messages per second persisted by our store's `insert_message`.
    pub ours_per_sec: f64,
    /// `ours_per_sec / naive_per_sec` (0 when the naive path did nothing).
    pub speedup: f64,
    /// Messages each path sent.
    pub total: usize,
    /// Concurrent sender tasks per path.
    pub concurrency: usize,
    /// Conversations per path.
    pub conversations: usize,
    /// Connections each path could use.
    pub pool_size: usize,
    /// Wall time of our path, seconds.
    pub ours_seconds: f64,
    /// Wall time of the naive path, seconds.
    pub naive_seconds: f64,
    /// Messages our path left in its conversations (counted afterwards).
    pub ours_persisted: usize,
    /// Messages the naive path left in its conversations (counted afterwards).
    pub naive_persisted: usize,
    /// Whether every conversation of our path holds seqs 1..=n and its counter says n.
    pub ours_gap_free: bool,
    /// The same for the naive path.
    pub naive_gap_free: bool,
    /// The server's `synchronous_commit` (durability is only comparable when it is `on`).
    pub synchronous_commit: String,
    /// The throw-away database (dropped when `compare` returns).
    pub database: String,
}

/// Why a comparison could not be made.
#[derive(Debug, thiserror::Error)]
pub enum NaiveError {
    /// `conversations` and `concurrency` must be at least 1.
    #[error("invalid parameters: {0}")]
    Parameters(&'static str),
    /// The server could not be reached (the URL is shown without its password).
    #[error("connecting to Postgres at {at}")]
    Connect {
        /// The server, redacted.
        at: String,
        /// Why.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// A query or a pooled connection failed.
    #[error("{what}")]
    Database {
        /// What was being done.
        what: &'static str,
        /// Why.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// A sender task panicked.
    #[error("a sender task panicked")]
    Task(#[from] tokio::task::JoinError),
    /// The store refused a message it should have inserted.
    #[error("the store did not insert a message: {0}")]
    Refused(&'static str),
}

impl From<RepoError> for NaiveError {
    fn from(e: RepoError) -> Self {
        Self::Database { what: "our store", source: Box::new(e) }
    }
}

fn db<E: StdError + Send + Sync + 'static>(what: &'static str) -> impl FnOnce(E) -> NaiveError {
    move |e| NaiveError::Database { what, source: Box::new(e) }
}

/// Creates a fresh database on the server of `database_url` (`postgres://…`; its own database
/// is only used to connect), migrates it with our schema, provisions `conversations`
/// conversations per path through the store, sends `total` messages per path from
/// `concurrency` tasks — ours through [`MessageRepository::insert_message`], then the naive
/// way — checks the seqs both left, drops the database and reports.
///
/// # Errors
/// [`NaiveError::Parameters`] (before anything is touched) when `conversations` or
/// `concurrency` is 0; otherwise when the server cannot be reached or a query fails. The
/// database is dropped in every case once it was created.
pub async fn compare(
    database_url: &str,
    conversations: usize,
    concurrency: usize,
    total: usize,
) -> Result<NaiveReport, NaiveError> {
    if conversations == 0 {
        return Err(NaiveError::Parameters("conversations must be at least 1"));
    }
    if concurrency == 0 {
        return Err(NaiveError::Parameters("concurrency must be at least 1"));
    }
    let name = format!("chat_bench_naive_{}", Uuid::new_v4().simple());
    let mut admin = connect(database_url).await?;
    diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .map_err(db("creating the benchmark database"))?;
    drop(admin);
    let url = with_database(database_url, &name);
    let outcome = run(&url, &name, conversations, concurrency, total).await;
    // Dropped on a fresh connection: the first may have died with whatever failed.
    let dropped = async {
        let mut admin = connect(database_url).await?;
        diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .map_err(db("dropping the benchmark database"))
    }
    .await;
    let report = outcome?;
    dropped?;
    Ok(report)
}

/// Both measurements on the database at `url`.
async fn run(
    url: &str,
    name: &str,
    conversations: usize,
    concurrency: usize,
    total: usize,
) -> Result<NaiveReport, NaiveError> {
    let store = PgStore::connect(url, POOL_SIZE).await?;
    let senders = provision_senders(&store).await?;
    let workspace = provision_workspace(&store, &senders).await?;
    let ours = Arc::new(Plan::new(&store, workspace, &senders, conversations).await?);
    let naive = Arc::new(Plan::new(&store, workspace, &senders, conversations).await?);

    // Ours: every pooled connection opened before the clock starts.
    try_join_all((0..POOL_SIZE).map(|_| store.ping())).await?;
    let (sender_store, plan) = (store.clone(), Arc::clone(&ours));
    let ours_seconds = timed(concurrency, total, move |n| {
        let (store, plan) = (sender_store.clone(), Arc::clone(&plan));
        async move {
            match store.insert_message(&plan.message(n)).await? {
                InsertOutcome::Inserted(_) => Ok(()),
                InsertOutcome::Duplicate(_) => Err(NaiveError::Refused("duplicate")),
                InsertOutcome::Archived => Err(NaiveError::Refused("archived")),
                InsertOutcome::NotMember => Err(NaiveError::Refused("not a member")),
            }
        }
    })
    .await?;
    drop(store);

    // Naive: a pool of the same size, warmed the same way.
    let pool = Pool::builder(AsyncDieselConnectionManager::<AsyncPgConnection>::new(url))
        .max_size(POOL_SIZE)
        .build()
        .map_err(db("building the naive path's pool"))?;
    drop(try_join_all((0..POOL_SIZE).map(|_| pool.get())).await.map_err(db("opening the naive path's connections"))?);
    let (sender_pool, plan) = (pool.clone(), Arc::clone(&naive));
    let naive_seconds = timed(concurrency, total, move |n| {
        let (pool, plan) = (sender_pool.clone(), Arc::clone(&plan));
        async move {
            let mut conn = pool.get().await.map_err(db("acquiring a naive connection"))?;
            plan.insert_naively(&mut conn, n).await.map_err(db("inserting a message the naive way"))
        }
    })
    .await?;

    let mut conn = pool.get().await.map_err(db("acquiring a connection to check seqs"))?;
    let ours_stats = seq_stats(&mut conn, &ours.conversations).await?;
    let naive_stats = seq_stats(&mut conn, &naive.conversations).await?;
    let synchronous_commit = diesel::sql_query("SHOW synchronous_commit")
        .get_result::<Setting>(&mut conn)
        .await
        .map_err(db("reading synchronous_commit"))?
        .synchronous_commit;
    let naive_per_sec = per_sec(total, naive_seconds);
    let ours_per_sec = per_sec(total, ours_seconds);
    Ok(NaiveReport {
        naive_per_sec,
        ours_per_sec,
        speedup: if naive_per_sec > 0.0 { ours_per_sec / naive_per_sec } else { 0.0 },
        total,
        concurrency,
        conversations,
        pool_size: POOL_SIZE,
        ours_seconds,
        naive_seconds,
        ours_persisted: persisted(&ours_stats),
        naive_persisted: persisted(&naive_stats),
        ours_gap_free: gap_free(&ours_stats, conversations, total),
        naive_gap_free: gap_free(&naive_stats, conversations, total),
        synchronous_commit,
        database: name.to_owned(),
    })
}

/// Runs `send(n)` for every `n < total` from `concurrency` tasks pulling from one counter;
/// returns the wall time in seconds. The first failure is returned once every task has ended.
async fn timed<F, Fut>(concurrency: usize, total: usize, send: F) -> Result<f64, NaiveError>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), NaiveError>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (next, send) = (Arc::clone(&next), send.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return Ok(());
                    }
                    if let Err(e) = send(n).await {
                        // Stops the other tasks at their next message.
                        next.store(total, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            })
        })
        .collect();
    let mut first_error = None;
    for task in tasks {
        let outcome = task.await.map_err(NaiveError::from).and_then(|sent| sent);
        if let Err(e) = outcome {
            first_error.get_or_insert(e);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    first_error.map_or(Ok(seconds), Err)
}

/// Messages per second (counts are far below 2^52, so the conversion is exact).
fn per_sec(messages: usize, seconds: f64) -> f64 {
    if seconds > 0.0 { messages as f64 / seconds } else { 0.0 }
}

/// The accounts that send, stored through the store.
async fn provision_senders(store: &PgStore) -> Result<Vec<UserId>, NaiveError> {
    let mut senders = Vec::with_capacity(SENDERS);
    for i in 0..SENDERS {
        let name = format!("sender{i}");
        let user = NewUser {
            id: UserId::generate(),
            email: Email::parse(&format!("{name}@bench.invalid")).map_err(db("a sender's e-mail"))?,
            display_name: DisplayName::parse(&name).map_err(db("a sender's name"))?,
            // Never verified: nobody logs in here.
            password_hash: PasswordHash(String::from("$argon2id$v=19$m=19456,t=2,p=1$bench$unused")),
            created_at: Utc::now(),
        };
        senders.push(store.create_user(&user).await.map_err(db("creating a sender"))?.id);
    }
    Ok(senders)
}

/// A workspace owned by the first sender, the others members.
async fn provision_workspace(store: &PgStore, senders: &[UserId]) -> Result<WorkspaceId, NaiveError> {
    let (&owner, others) = senders.split_first().ok_or(NaiveError::Parameters("no senders"))?;
    let workspace = Workspace {
        id: WorkspaceId::generate(),
        name: Name::parse("name", "bench").map_err(db("the workspace name"))?,
        slug: "bench".to_owned(),
        created_by: owner,
        created_at: Utc::now(),
    };
    store.create_workspace(&workspace).await.map_err(db("creating the workspace"))?;
    for &user in others {
        store
            .add_workspace_member(workspace.id, user, WorkspaceRole::Member, Utc::now())
            .await
            .map_err(db("adding a workspace member"))?;
    }
    Ok(workspace.id)
}

/// One path's conversations and the messages it sends into them.
#[derive(Debug)]
struct Plan {
    conversations: Vec<Uuid>,
    senders: Vec<UserId>,
    content: Vec<u8>,
}

impl Plan {
    /// `conversations` groups of every sender, created through the store.
    async fn new(
        store: &PgStore,
        workspace: WorkspaceId,
        senders: &[UserId],
        conversations: usize,
    ) -> Result<Self, NaiveError> {
        let mut ids = Vec::with_capacity(conversations);
        for i in 0..conversations {
            let now = Utc::now();
            let id = ConversationId::generate();
            let conversation = Conversation {
                id,
                workspace_id: workspace,
                kind: ConversationType::Group,
                name: Some(format!("bench {i}")),
                description: None,
                icon: None,
                document_id: None,
                is_encrypted: false,
                max_participants: 100,
                created_by: senders[0],
                last_seq: 0,
                created_at: now,
                updated_at: now,
                archived_at: None,
            };
            let members = senders
                .iter()
                .enumerate()
                .map(|(k, &user)| Member {
                    conversation_id: id,
                    user_id: user,
                    role: if k == 0 { ConversationRole::Admin } else { ConversationRole::Member },
                    joined_at: now,
                    last_read_seq: 0,
                    last_read_at: None,
                    is_muted: false,
                })
                .collect();
            let new = NewConversation { conversation, unique_key: None, members };
            match store.create_conversation(&new).await? {
                Created::New(c) => ids.push(c.id.as_uuid()),
                Created::Existing(_) => return Err(NaiveError::Refused("a fresh conversation already existed")),
            }
        }
        // Opaque bytes, as sealed content is: the store never looks inside.
        let content = (0..CONTENT_BYTES).map(|i| (i * 37 % 251) as u8).collect();
        Ok(Self { conversations: ids, senders: senders.to_vec(), content })
    }

    fn conversation(&self, n: usize) -> Uuid {
        self.conversations[n % self.conversations.len()]
    }

    fn sender(&self, n: usize) -> UserId {
        self.senders[n % self.senders.len()]
    }

    /// Message `n` as our store takes it.
    fn message(&self, n: usize) -> NewMessage {
        NewMessage {
            id: MessageId::generate(),
            conversation_id: ConversationId::from_uuid(self.conversation(n)),
            sender_id: self.sender(n),
            client_msg_id: None,
            kind: MessageType::Text,
            content: Sealed { key_version: 1, bytes: self.content.clone() },
            reply_to_id: None,
            attachments: Vec::new(),
            search: None,
            created_at: Utc::now(),
        }
    }

    /// Message `n` the naive way: its own transaction, counter row locked by the increment.
    async fn insert_naively(&self, conn: &mut AsyncPgConnection, n: usize) -> Result<(), diesel::result::Error> {
        use schema::{conversation_members as members, conversations, messages};

        let (conversation, sender) = (self.conversation(n), self.sender(n).as_uuid());
        let (id, at): (Uuid, DateTime<Utc>) = (MessageId::generate().as_uuid(), Utc::now());
        let content = self.content.as_slice();
        conn.transaction::<_, diesel::result::Error, _>(async |conn: &mut AsyncPgConnection| {
            let seq: i64 =
                diesel::update(conversations::table.find(conversation).filter(conversations::archived_at.is_null()))
                    .set(conversations::last_seq.eq(conversations::last_seq + 1))
                    .returning(conversations::last_seq)
                    .get_result(conn)
                    .await?;
            diesel::insert_into(messages::table)
                .values((
                    messages::id.eq(id),
                    messages::conversation_id.eq(conversation),
                    messages::seq.eq(seq),
                    messages::sender_id.eq(sender),
                    messages::kind.eq(MessageType::Text.as_str()),
                    messages::content.eq(content),
                    messages::key_version.eq(1),
                    messages::created_at.eq(at),
                ))
                .execute(conn)
                .await?;
            diesel::update(members::table.find((conversation, sender)).filter(members::last_read_seq.lt(seq)))
                .set((members::last_read_seq.eq(seq), members::last_read_at.eq(at)))
                .execute(conn)
                .await?;
            Ok(())
        })
        .await
    }
}

/// The columns the naive path writes (the tables are our migrations').
mod schema {
    diesel::table! {
        conversations (id) {
            id -> Uuid,
            last_seq -> Int8,
            archived_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        messages (id) {
            id -> Uuid,
            conversation_id -> Uuid,
            seq -> Int8,
            sender_id -> Uuid,
            kind -> Text,
            content -> Nullable<Bytea>,
            key_version -> Nullable<Int4>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        conversation_members (conversation_id, user_id) {
            conversation_id -> Uuid,
            user_id -> Uuid,
            last_read_seq -> Int8,
            last_read_at -> Nullable<Timestamptz>,
        }
    }
}

/// What one conversation holds after a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
struct SeqStats {
    /// Its counter.
    #[diesel(sql_type = BigInt)]
    last_seq: i64,
    /// Its messages.
    #[diesel(sql_type = BigInt)]
    count: i64,
    /// Lowest seq (0 without messages).
    #[diesel(sql_type = BigInt)]
    lowest: i64,
    /// Highest seq (0 without messages).
    #[diesel(sql_type = BigInt)]
    highest: i64,
}

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    synchronous_commit: String,
}

async fn seq_stats(conn: &mut AsyncPgConnection, conversations: &[Uuid]) -> Result<Vec<SeqStats>, NaiveError> {
    diesel::sql_query(
        "SELECT c.last_seq, count(m.id) AS count, coalesce(min(m.seq), 0) AS lowest, \
         coalesce(max(m.seq), 0) AS highest \
         FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id \
         WHERE c.id = ANY($1) GROUP BY c.id, c.last_seq",
    )
    .bind::<Array<diesel::sql_types::Uuid>, _>(conversations)
    .load(conn)
    .await
    .map_err(db("counting the seqs written"))
}

fn persisted(stats: &[SeqStats]) -> usize {
    stats.iter().map(|s| usize::try_from(s.count).unwrap_or(0)).sum()
}

/// Every one of the `conversations` conversations holds exactly seqs `1..=n` with its counter
/// at `n`, and they hold `total` messages together. (`(conversation, seq)` is unique and seqs
/// are positive, so `n` rows between 1 and `n` are each of them once.)
fn gap_free(stats: &[SeqStats], conversations: usize, total: usize) -> bool {
    stats.len() == conversations
        && persisted(stats) == total
        && stats.iter().all(|s| s.count == s.highest && s.highest == s.last_seq && (s.count == 0 || s.lowest == 1))
}

async fn connect(url: &str) -> Result<AsyncPgConnection, NaiveError> {
    let at = || redact(url);
    match tokio::time::timeout(CONNECT_TIMEOUT, AsyncPgConnection::establish(url)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(NaiveError::Connect { at: at(), source: Box::new(e) }),
        Err(e) => Err(NaiveError::Connect { at: at(), source: Box::new(e) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

    /// The local server (`TEST_DATABASE_URL`), or `None` after one line on stderr when it is
    /// unreachable — a failure instead when `CHAT_REQUIRE_SERVICES=1`, as everywhere here.
    async fn postgres_server() -> Option<String> {
        let url = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_SERVER.to_owned());
        match connect(&url).await {
            Ok(_) => Some(url),
            Err(e) => {
                let required = std::env::var("CHAT_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
                assert!(!required, "{e} and CHAT_REQUIRE_SERVICES=1");
                eprintln!("skipped: {e}; set TEST_DATABASE_URL, or CHAT_REQUIRE_SERVICES=1 to fail");
                None
            }
        }
    }

    #[tokio::test]
    async fn both_paths_persist_every_message_with_gap_free_seqs_and_the_database_is_dropped() {
        let Some(server) = postgres_server().await else { return };

        let report = compare(&server, 3, 4, 50).await.expect("compare");

        assert_eq!((report.total, report.concurrency, report.conversations), (50, 4, 3));
        assert_eq!(report.ours_persisted, 50);
        assert_eq!(report.naive_persisted, 50);
        assert!(report.ours_gap_free, "{report:?}");
        assert!(report.naive_gap_free, "{report:?}");
        assert!(report.ours_per_sec > 0.0 && report.naive_per_sec > 0.0, "{report:?}");
        assert!(["on", "off", "local", "remote_write", "remote_apply"].contains(&report.synchronous_commit.as_str()));
        let mut admin = connect(&server).await.expect("connect");
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let left: Count = diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
            .bind::<Text, _>(&report.database)
            .get_result(&mut admin)
            .await
            .expect("query pg_database");
        assert!(report.database.starts_with("chat_bench_naive_"));
        assert_eq!(left.n, 0, "the benchmark database was dropped");
    }

    #[tokio::test]
    async fn zero_conversations_or_senders_are_refused_before_anything_is_touched() {
        // An unreachable server: a refusal that got as far as connecting would be a Connect error.
        let nowhere = "postgres://postgres@127.0.0.1:1/postgres";
        assert!(matches!(compare(nowhere, 0, 4, 10).await, Err(NaiveError::Parameters(_))));
        assert!(matches!(compare(nowhere, 3, 0, 10).await, Err(NaiveError::Parameters(_))));
        assert!(matches!(compare(nowhere, 3, 4, 10).await, Err(NaiveError::Connect { .. })));
    }

    fn stats(last_seq: i64, count: i64, lowest: i64, highest: i64) -> SeqStats {
        SeqStats { last_seq, count, lowest, highest }
    }

    #[test]
    fn seqs_are_gap_free_only_when_each_conversation_holds_one_to_its_counter() {
        let good = [stats(3, 3, 1, 3), stats(2, 2, 1, 2), stats(0, 0, 0, 0)];
        assert!(gap_free(&good, 3, 5));
        // A hole: three rows, the highest is 4.
        assert!(!gap_free(&[stats(4, 3, 1, 4), stats(2, 2, 1, 2)], 2, 5));
        // The counter ran ahead of the rows (a seq consumed and lost).
        assert!(!gap_free(&[stats(4, 3, 1, 3), stats(2, 2, 1, 2)], 2, 5));
        // Not starting at 1.
        assert!(!gap_free(&[stats(3, 3, 2, 3)], 1, 3));
        // A conversation missing, or messages missing overall.
        assert!(!gap_free(&good[..2], 3, 5));
        assert!(!gap_free(&good, 3, 6));
    }

    #[test]
    fn the_database_of_a_url_is_replaced_and_its_password_never_shown() {
        assert_eq!(
            with_database("postgres://u:p@db:5432/app?sslmode=disable", "t1"),
            "postgres://u:p@db:5432/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://db", "t1"), "postgres://db/t1");
        assert_eq!(redact("postgres://u:secret@db:5432/app"), "postgres://u@db:5432/app");
        let e = NaiveError::Connect { at: redact("postgres://u:secret@db/app"), source: "refused".into() };
        assert!(!e.to_string().contains("secret"));
    }
}
