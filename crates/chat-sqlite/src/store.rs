//! [`SqliteStore`]: opening the database, the connection pool, and the one way every port
//! method reaches SQLite ([`SqliteStore::run`]: one closure on one pooled connection, on a
//! blocking thread).
//!
//! Queries here read one row with `get_result`, never `first`: diesel binds `first`'s
//! `LIMIT 1` as a parameter, and the bundled SQLite (3.50) plans a bound `LIMIT` by its value, so it
//! re-prepares such a cached statement on every execution. Stepping once reads one row all the
//! same. (Paged reads keep their bound `LIMIT` and pay that preparation.)

use std::fmt;
use std::path::{Path, PathBuf};

use chat_domain::error::RepoError;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::Text;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

/// The schema, compiled in: `open` brings any database file up to date.
pub(crate) const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Set on every connection of the store. `busy_timeout` comes first so that the others wait
/// for a lock instead of failing; WAL lets readers run beside the single writer;
/// `synchronous=FULL` syncs the WAL on every commit, so nothing acknowledged is lost to a
/// power cut. No commit checkpoints the WAL: a thread of the store does (`checkpoint.rs`).
const CONNECTION_PRAGMAS: &str = "PRAGMA busy_timeout = 5000;
     PRAGMA journal_mode = WAL;
     PRAGMA synchronous = FULL;
     PRAGMA wal_autocheckpoint = 0;
     PRAGMA foreign_keys = ON;";

pub(crate) type AsyncSqlite = SyncConnectionWrapper<SqliteConnection>;

/// The embedded store: every repository port of `chat-domain` on one SQLite database file.
///
/// Cheap to share behind an `Arc`; each call checks a connection out of a small pool and runs
/// its statements on a blocking thread, except message inserts, which a writer thread commits
/// in batches on a connection of its own. Writers serialise on SQLite's single write lock
/// (`BEGIN IMMEDIATE`), readers run concurrently beside them (WAL).
pub struct SqliteStore {
    pool: Pool<AsyncSqlite>,
    path: PathBuf,
    /// Message inserts go through group commit (`group_commit.rs`).
    pub(crate) inserts: crate::group_commit::InsertQueue,
    /// Checkpoints the WAL off the commit path (`checkpoint.rs`); stops with the store.
    _checkpointer: crate::checkpoint::Checkpointer,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("max_connections", &status.max_size)
            .field("open_connections", &status.size)
            .finish()
    }
}

#[derive(QueryableByName)]
struct JournalMode {
    #[diesel(sql_type = Text)]
    journal_mode: String,
}

/// The file behind a `DATABASE_URL`: `sqlite://relative/path.db`, `sqlite:///absolute/path.db`,
/// `sqlite:path.db` or a bare path. A `?query` after a `sqlite:` URL is ignored.
fn database_path(url: &str) -> Result<PathBuf, RepoError> {
    let path = match url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        Some(rest) => rest.split_once('?').map_or(rest, |(path, _)| path),
        None => url,
    };
    if path.is_empty() || path == ":memory:" || path.starts_with("file:") {
        // An in-memory database would be a different, empty database on every pooled
        // connection; `file:` URIs would bypass the path handling below.
        return Err(RepoError::msg("DATABASE_URL must name a sqlite database file"));
    }
    Ok(PathBuf::from(path))
}

/// Creates the parent directories, and the file itself readable by its owner only (it holds
/// password hashes, token digests and wrapped keys). An existing file is left as it is.
fn prepare_file(path: &Path) -> std::io::Result<()> {
    if path.exists() {
        // Never open and close an existing file here: closing any descriptor of it drops the
        // POSIX locks SQLite holds for this process's other connections to it (a second
        // store on the same file), after which another process may delete the WAL under them
        // and they would read a stale snapshot for good.
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(drop)
}

fn configure(conn: &mut SqliteConnection) -> QueryResult<()> {
    conn.batch_execute(CONNECTION_PRAGMAS)
}

/// Opens a connection to `url` with [`CONNECTION_PRAGMAS`] set: every connection of the store
/// (the migrating one that becomes the message writer's, its replacements, the pooled ones).
pub(crate) fn connect(url: &str) -> diesel::ConnectionResult<SqliteConnection> {
    let mut conn = SqliteConnection::establish(url)?;
    configure(&mut conn).map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

/// Opens a configured connection for a thread of the store that keeps one of its own — the
/// message writer, the WAL checkpointer — and again after a failure that left it unusable.
pub(crate) type Connect = Box<dyn Fn() -> Result<SqliteConnection, RepoError> + Send>;

/// [`connect`] as the store's own threads call it, for `url`.
pub(crate) fn connector(url: String) -> Connect {
    Box::new(move || connect(&url).map_err(|e| RepoError::new("opening the sqlite database", e)))
}

/// The connection a thread of the store keeps in `slot`, opened with `connect` when it has
/// none (at the start, or after it was dropped as unusable).
pub(crate) fn opened<'a>(
    slot: &'a mut Option<SqliteConnection>,
    connect: &Connect,
) -> Result<&'a mut SqliteConnection, RepoError> {
    match slot {
        Some(c) => Ok(c),
        None => Ok(slot.insert(connect()?)),
    }
}

/// Prepares the file, checks WAL took effect and runs pending migrations; returns the
/// connection that did it, which becomes the message writer's.
fn initialise(path: &Path, url: &str) -> Result<SqliteConnection, RepoError> {
    prepare_file(path).map_err(|e| RepoError::new("creating the sqlite database file", e))?;
    let mut conn = connect(url).map_err(|e| RepoError::new("opening the sqlite database", e))?;
    let mode = diesel::sql_query("PRAGMA journal_mode")
        .get_result::<JournalMode>(&mut conn)
        .map_err(|e| RepoError::new("reading the sqlite journal mode", e))?;
    if !mode.journal_mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(journal_mode = %mode.journal_mode, "sqlite refused WAL mode; readers will wait for writers");
    }
    let applied =
        conn.run_pending_migrations(MIGRATIONS).map_err(|e| RepoError::new("running sqlite migrations", e))?;
    for version in applied {
        tracing::info!(%version, "applied sqlite migration");
    }
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating parent directories and the file if needed) the database at `url`, which
    /// is `sqlite://relative/or/absolute/path.db` or a bare path; sets WAL, `synchronous=FULL`
    /// (nothing acknowledged may be lost), `foreign_keys=ON` and `busy_timeout=5000` on every
    /// connection; runs the embedded migrations. At most `max_connections` (at least one)
    /// pooled connections are opened, beside the message writer's own (`group_commit.rs`)
    /// and the WAL checkpointer's (`checkpoint.rs`).
    ///
    /// Must be called inside a Tokio runtime, which the store keeps using afterwards.
    ///
    /// # Errors
    /// [`RepoError`] when the URL names no file, the file cannot be created or opened, or a
    /// migration fails.
    #[tracing::instrument(skip_all, fields(url = %url, max_connections = max_connections))]
    pub async fn open(url: &str, max_connections: usize) -> Result<Self, RepoError> {
        let path = database_path(url)?;
        let conn_url = path.to_str().ok_or_else(|| RepoError::msg("sqlite database path is not UTF-8"))?.to_owned();
        let writer = {
            let (path, conn_url) = (path.clone(), conn_url.clone());
            tokio::task::spawn_blocking(move || initialise(&path, &conn_url))
                .await
                .map_err(|e| RepoError::new("initialising the sqlite database", e))??
        };

        let mut config = ManagerConfig::<AsyncSqlite>::default();
        config.recycling_method = RecyclingMethod::Fast;
        config.custom_setup = Box::new(|url| {
            let url = url.to_owned();
            Box::pin(async move {
                tokio::task::spawn_blocking(move || connect(&url))
                    .await
                    .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?
                    .map(AsyncSqlite::new)
            })
        });
        let (writer_url, checkpoint_url) = (conn_url.clone(), conn_url.clone());
        let manager = AsyncDieselConnectionManager::new_with_config(conn_url, config);
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .build()
            .map_err(|e| RepoError::new("building the sqlite connection pool", e))?;
        let behind = crate::checkpoint::Behind::default();
        let inserts = crate::group_commit::InsertQueue::start(writer, connector(writer_url), behind.clone())?;
        let checkpointer =
            crate::checkpoint::Checkpointer::start(connector(checkpoint_url), crate::checkpoint::INTERVAL, behind)?;
        let store = Self { pool, path, inserts, _checkpointer: checkpointer };
        store.ping().await?;
        Ok(store)
    }

    /// How message inserts have been batched so far (see `group_commit.rs`).
    #[must_use]
    pub fn group_commit_stats(&self) -> chat_domain::message::GroupCommitStats {
        self.inserts.stats()
    }

    /// A cheap `SELECT 1` for `/readyz`.
    ///
    /// # Errors
    /// [`RepoError`] when no connection can be checked out or the query fails.
    #[tracing::instrument(skip_all)]
    pub async fn ping(&self) -> Result<(), RepoError> {
        self.run("pinging sqlite", |c| diesel::sql_query("SELECT 1").execute(c).map(drop)).await
    }

    /// Runs `task` on a pooled connection, on a blocking thread, as one unit: a transaction
    /// begun in `task` is committed or rolled back before it returns, so a connection never
    /// goes back to the pool mid-transaction. Driver errors become `RepoError`s described by
    /// `what`.
    ///
    /// The work runs in its own Tokio task, so a caller that is cancelled (a client hung up)
    /// neither blocks its thread waiting for the blocking part to finish nor cuts a
    /// transaction short: the task completes and returns the connection on its own. This also
    /// keeps callers on current-thread runtimes (actix-web's workers) safe, where waiting for a
    /// blocking task inside a destructor is not allowed.
    pub(crate) async fn run<R, F>(&self, what: &'static str, task: F) -> Result<R, RepoError>
    where
        F: FnOnce(&mut SqliteConnection) -> QueryResult<R> + Send + 'static,
        R: Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let mut conn = pool.get().await.map_err(|e| RepoError::new("checking out a sqlite connection", e))?;
            conn.spawn_blocking(task).await.map_err(|e| RepoError::new(what, e))
        })
        .await
        .map_err(|e| RepoError::new(what, e))?
    }
}

diesel::define_sql_function! {
    /// SQL `COALESCE(x, y)` on nullable instants: keeps an earlier `archived_at`/`deleted_at`.
    fn coalesce(x: diesel::sql_types::Nullable<diesel::sql_types::BigInt>, y: diesel::sql_types::Nullable<diesel::sql_types::BigInt>) -> diesel::sql_types::Nullable<diesel::sql_types::BigInt>;
}

/// Whether `err` is a unique (or primary-key) violation of a constraint whose SQLite message
/// names `column` (`"users.email"`): SQLite reports `UNIQUE constraint failed: t.a, t.b`.
pub(crate) fn unique_violation(err: &DieselError, column: &str) -> bool {
    matches!(err, DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) if info.message().contains(column))
}

/// The error of a transaction that may end in an expected outcome: `Outcome` rolls the
/// transaction back like an error, and is then reported as a value.
pub(crate) enum Tx<O> {
    /// The driver failed.
    Db(DieselError),
    /// An expected outcome that must not commit.
    Outcome(O),
}

impl<O> From<DieselError> for Tx<O> {
    fn from(err: DieselError) -> Self {
        Self::Db(err)
    }
}

/// Splits a transaction result into driver failure (outer) and outcome (inner).
pub(crate) fn settle<T, O>(result: Result<T, Tx<O>>) -> QueryResult<Result<T, O>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(Tx::Outcome(outcome)) => Ok(Err(outcome)),
        Err(Tx::Db(err)) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use diesel::sql_types::Integer;

    use super::*;

    #[derive(QueryableByName)]
    struct Synchronous {
        #[diesel(sql_type = Integer)]
        synchronous: i32,
    }

    #[derive(QueryableByName)]
    struct ForeignKeys {
        #[diesel(sql_type = Integer)]
        foreign_keys: i32,
    }

    #[derive(QueryableByName)]
    struct BusyTimeout {
        #[diesel(sql_type = Integer)]
        timeout: i32,
    }

    #[derive(QueryableByName)]
    struct WalAutocheckpoint {
        #[diesel(sql_type = Integer)]
        wal_autocheckpoint: i32,
    }

    #[derive(Debug, PartialEq, Eq)]
    struct Settings {
        journal_mode: String,
        synchronous: i32,
        foreign_keys: i32,
        busy_timeout: i32,
        wal_autocheckpoint: i32,
    }

    fn settings(c: &mut SqliteConnection) -> QueryResult<Settings> {
        Ok(Settings {
            journal_mode: diesel::sql_query("PRAGMA journal_mode").get_result::<JournalMode>(c)?.journal_mode,
            synchronous: diesel::sql_query("PRAGMA synchronous").get_result::<Synchronous>(c)?.synchronous,
            foreign_keys: diesel::sql_query("PRAGMA foreign_keys").get_result::<ForeignKeys>(c)?.foreign_keys,
            busy_timeout: diesel::sql_query("PRAGMA busy_timeout").get_result::<BusyTimeout>(c)?.timeout,
            wal_autocheckpoint: diesel::sql_query("PRAGMA wal_autocheckpoint")
                .get_result::<WalAutocheckpoint>(c)?
                .wal_autocheckpoint,
        })
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_cancelled_call_finishes_its_work_and_returns_its_connection() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("chat.db").to_str().unwrap(), 1).await.unwrap();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let call = store.run("a slow write", move |c| {
            wait.recv().map_err(|e| DieselError::QueryBuilderError(e.into()))?;
            c.batch_execute("CREATE TABLE finished (x INTEGER)")
        });
        // Poll the call once (its work is now waiting on a blocking thread), then drop it.
        tokio::select! {
            biased;
            _ = call => panic!("the call cannot finish before it is released"),
            () = std::future::ready(()) => {}
        }
        go.send(()).unwrap();
        // The only connection comes back once the abandoned work is done, and the work did run.
        store
            .run("checking", |c| diesel::sql_query("SELECT x FROM finished").execute(c).map(drop))
            .await
            .expect("the abandoned write completed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_pooled_connection_is_configured() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("chat.db").display());
        let store = SqliteStore::open(&url, 3).await.unwrap();
        // Hold three connections at once, so that the pool has to open three.
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(store.pool.get().await.unwrap());
        }
        assert_eq!(store.pool.status().size, 3);
        let expected = Settings {
            journal_mode: "wal".to_owned(),
            synchronous: 2, // FULL
            foreign_keys: 1,
            busy_timeout: 5000,
            // The store's checkpoint thread checkpoints the WAL, no commit does.
            wal_autocheckpoint: 0,
        };
        for conn in &mut held {
            assert_eq!(conn.spawn_blocking(settings).await.unwrap(), expected);
        }
        // So are the message writer's and the checkpoint thread's: they open theirs with
        // `connect`, as the pool does.
        let path = dir.path().join("chat.db");
        assert_eq!(settings(&mut connect(path.to_str().unwrap()).unwrap()).unwrap(), expected);
    }

    #[derive(QueryableByName)]
    struct CompileOption {
        #[diesel(sql_type = Text)]
        compile_options: String,
    }

    /// `.cargo/config.toml` passes `LIBSQLITE3_FLAGS` (`fdatasync` for the WAL syncs, no
    /// memory-usage counters) to the bundled SQLite's build; SQLite lists the second.
    #[test]
    fn the_bundled_sqlite_is_built_with_the_workspace_flags() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        let options: Vec<String> = diesel::sql_query("PRAGMA compile_options")
            .load::<CompileOption>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|o| o.compile_options)
            .collect();
        assert!(options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"), "{options:?}");
    }

    #[test]
    fn urls_and_bare_paths_name_the_same_file() {
        assert_eq!(database_path("sqlite://data/chat.db").unwrap(), PathBuf::from("data/chat.db"));
        assert_eq!(database_path("sqlite:///var/lib/chat.db").unwrap(), PathBuf::from("/var/lib/chat.db"));
        assert_eq!(database_path("sqlite:chat.db?mode=rwc").unwrap(), PathBuf::from("chat.db"));
        assert_eq!(database_path("./data/chat.db").unwrap(), PathBuf::from("./data/chat.db"));
    }

    #[test]
    fn urls_without_a_file_are_refused() {
        for url in ["sqlite://", "", ":memory:", "sqlite::memory:", "file:chat.db"] {
            assert!(database_path(url).is_err(), "{url} was accepted");
        }
    }
}
