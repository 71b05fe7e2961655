//! # chat-postgres
//!
//! The Postgres storage adapter: one [`PgStore`] implements every repository port of
//! `chat-domain` (users, sessions, workspaces, conversations, messages, presence, workspace
//! keys) with diesel 2 and diesel-async over a deadpool pool of pure-Rust `tokio-postgres`
//! connections (no libpq).
//!
//! **Layer.** Outbound adapter. It depends on `chat-domain` (whose ports it implements) and on
//! the database crates, and on nothing of the delivery layer; nothing but `chat-server` (which
//! wires it) and tests depend on it. Row structs never leave the crate: every method takes
//! and returns domain types, and driver errors are translated here — unique violations into
//! the ports' typed outcomes (`DuplicateEmail`, `DuplicateSlug`, `Duplicate`), anything else
//! into a [`RepoError`] that names what was being done.
//!
//! **Where to start reading.** [`PgStore::connect`] (pool and embedded migrations, SQL in
//! `migrations/postgres` at the repository root, mirrored by `schema.rs`), then
//! `messages.rs`: writes hold their invariants by constraints and row locks inside one
//! transaction, never check-then-insert. Message inserts are group-committed
//! (`group_commit.rs`): concurrent sends share one transaction, each acknowledged after its
//! commit. The behaviour
//! suite that pins all of it down is `chat-store-tests`, run by `tests/behaviour.rs`; the
//! `testing` feature gives other crates' tests a throw-away database
//! (`testing::fresh_database`).

#![forbid(unsafe_code)]

use std::fmt;
use std::time::Duration;

use chat_domain::error::RepoError;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

mod attachments;
mod audit;
mod conversations;
mod files;
mod group_commit;
mod key_directory;
mod keys;
mod messages;
mod presence;
mod schema;
mod search;
mod sql;
mod users;
mod workspaces;

#[cfg(feature = "testing")]
pub mod testing;

/// The SQL migrations of `migrations/postgres`, compiled in.
const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// How long a query waits for a pooled connection before giving up (an exhausted pool or an
/// unreachable server then fails the request instead of stalling it).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serialises migrations across processes: several server nodes may start at once.
const MIGRATION_LOCK_KEY: i64 = 0x6368_6174_6d69_6772; // "chatmigr"

use chat_domain::message::GroupCommitStats;

/// Every repository port on one Postgres database.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool<AsyncPgConnection>,
    /// Message inserts go through group commit (`group_commit.rs`).
    inserts: group_commit::InsertQueue,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PgStore")
            .field("max_connections", &status.max_size)
            .field("open_connections", &status.size)
            .finish_non_exhaustive()
    }
}

type PgConn = Object<AsyncPgConnection>;

impl PgStore {
    /// Connects a pool to `url` (`postgres://…`), runs the embedded migrations, starts the
    /// message batchers (group commit) on the current Tokio runtime, returns the store.
    ///
    /// # Errors
    /// [`RepoError`] when the server cannot be reached, the URL is malformed, or a migration
    /// fails.
    #[tracing::instrument(skip_all, fields(max_connections = max_connections))]
    pub async fn connect(url: &str, max_connections: usize) -> Result<Self, RepoError> {
        run_migrations(url.to_owned()).await?;
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .build()
            .map_err(|e| RepoError::new("building the Postgres connection pool", e))?;
        let inserts = group_commit::InsertQueue::start(&pool);
        let store = Self { pool, inserts };
        store.ping().await?;
        Ok(store)
    }

    /// How message inserts have been batched so far (see `group_commit.rs`).
    #[must_use]
    pub fn group_commit_stats(&self) -> GroupCommitStats {
        self.inserts.stats()
    }

    /// A cheap `SELECT 1` for `/readyz`.
    ///
    /// # Errors
    /// [`RepoError`] when no connection can be had or the query fails.
    #[tracing::instrument(skip_all)]
    pub async fn ping(&self) -> Result<(), RepoError> {
        let mut conn = self.conn().await?;
        diesel::sql_query("SELECT 1").execute(&mut conn).await.map_err(repo("pinging Postgres"))?;
        Ok(())
    }

    async fn conn(&self) -> Result<PgConn, RepoError> {
        acquire(&self.pool).await
    }
}

/// A pooled connection, waiting at most [`ACQUIRE_TIMEOUT`].
async fn acquire(pool: &Pool<AsyncPgConnection>) -> Result<PgConn, RepoError> {
    match tokio::time::timeout(ACQUIRE_TIMEOUT, pool.get()).await {
        Ok(conn) => conn.map_err(|e| RepoError::new("acquiring a Postgres connection", e)),
        Err(_) => Err(RepoError::msg("timed out acquiring a Postgres connection")),
    }
}

/// Runs pending migrations on a dedicated connection. Diesel's migration harness is
/// synchronous, so it runs on a blocking thread through diesel-async's
/// `AsyncConnectionWrapper`, under an advisory lock so that concurrent starts take turns.
async fn run_migrations(url: String) -> Result<(), RepoError> {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;

    tokio::task::spawn_blocking(move || {
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url)
            .map_err(|e| RepoError::new("connecting to Postgres", e))?;
        conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
            .map_err(repo("taking the migration lock"))?;
        let applied = conn.run_pending_migrations(MIGRATIONS).map(|v| v.len());
        conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
            .map_err(repo("releasing the migration lock"))?;
        let applied = applied.map_err(|e| RepoError::new("running Postgres migrations", e))?;
        if applied > 0 {
            tracing::info!(applied, "Postgres migrations applied");
        }
        Ok(())
    })
    .await
    .map_err(|e| RepoError::new("running Postgres migrations", e))?
}

/// Wraps a driver error with what was being done.
fn repo(context: &'static str) -> impl FnOnce(DieselError) -> RepoError {
    move |e| RepoError::new(context, e)
}

/// Whether `err` is a unique violation of the named constraint.
fn is_unique_violation(err: &DieselError, constraint: &str) -> bool {
    matches!(err, DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)
        if info.constraint_name() == Some(constraint))
}

/// A stored value that fails an invariant of the domain (a role or kind that the schema's
/// CHECK constraints should have kept out).
fn corrupt(what: &'static str) -> RepoError {
    RepoError::msg(what)
}
