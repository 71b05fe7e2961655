//! WAL checkpoints off the commit path.
//!
//! In WAL mode a commit appends pages to the WAL; a checkpoint copies them back into the
//! database file and syncs it. SQLite's default runs that checkpoint inside the COMMIT that
//! takes the WAL past 1,000 pages — on the message writer, that is a batch now and then
//! waiting for a copy and a sync of the database file before its senders hear back, and every
//! message queued behind it waiting too, for as long as the copy and the sync take. So every
//! connection of the store runs with `wal_autocheckpoint = 0` (`store.rs`), and this thread,
//! on a connection of its own, runs a PASSIVE checkpoint every [`INTERVAL`]: it copies what no
//! reader still needs, beside the writer, which goes on appending to the WAL meanwhile.
//! SQLite still checkpoints on its own when the last connection closes.
//!
//! The WAL only starts over from its beginning when a write transaction begins with every
//! frame copied. Under a steady stream of commits that never happens by itself — the writer
//! appends while the thread copies — and the WAL file grows without bound (2.3 GB in 30 s at
//! 2,500 messages/s, round 11 of docs/benchmarks.md), every frame a new block of the file. So
//! after each pass of a WAL that had frames it raises [`Behind`], and the message writer
//! copies what was appended meanwhile itself, between two batches (`group_commit.rs`): its
//! next transaction then starts the WAL over. The thread does the bulk of the copying, the
//! writer what came during the thread's pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use chat_domain::error::RepoError;
use diesel::sql_types::Integer;
use diesel::sqlite::SqliteConnection;
use diesel::{QueryableByName, RunQueryDsl};

use crate::store::{Connect, opened};

/// How often the WAL is checkpointed: often enough that, at a few hundred commits a second
/// of a few pages each, a checkpoint copies about what SQLite's default would (1,000 pages).
pub(crate) const INTERVAL: Duration = Duration::from_millis(250);

/// Raised after a checkpoint pass of a WAL that had frames: the writer may have appended more
/// while it copied, which the message writer then copies.
#[derive(Clone, Debug, Default)]
pub(crate) struct Behind(Arc<AtomicBool>);

impl Behind {
    fn raise(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether a pass over a WAL with frames ended since the last call (and lowers the flag).
    pub(crate) fn take(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }
}

/// The checkpoint thread; it stops when this is dropped (with the store).
pub(crate) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts the thread; it opens its connection with `connect` (again after a failure), and
    /// raises `behind` after each pass of a WAL that had frames.
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub(crate) fn start(connect: Connect, interval: Duration, behind: Behind) -> Result<Self, RepoError> {
        let (stop, stopped) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".to_owned())
            .spawn(move || {
                let mut conn = None;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    match opened(&mut conn, &connect).and_then(checkpoint) {
                        // A pass copies the frames there were when it began, and answers
                        // with those: whatever the writer appended meanwhile is not counted.
                        Ok(pass) if pass.log > 0 => behind.raise(),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "sqlite WAL checkpoint failed");
                            conn = None;
                        }
                    }
                }
            })
            .map_err(|e| RepoError::new("starting the sqlite checkpoint thread", e))?;
        Ok(Self { _stop: stop })
    }
}

/// What `PRAGMA wal_checkpoint` answers that is used: the frames in the WAL when the pass
/// began.
#[derive(Debug, QueryableByName)]
pub(crate) struct Pass {
    #[diesel(sql_type = Integer)]
    pub(crate) log: i32,
}

/// One PASSIVE checkpoint: copies the WAL's frames that no reader still needs into the
/// database file, without waiting for readers or the writer.
pub(crate) fn checkpoint(conn: &mut SqliteConnection) -> Result<Pass, RepoError> {
    diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
        .get_result::<Pass>(conn)
        .map_err(|e| RepoError::new("checkpointing the sqlite WAL", e))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Instant;

    use diesel::connection::SimpleConnection;

    use super::*;
    use crate::store::{connect, connector};

    fn len(path: &Path) -> u64 {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }

    #[test]
    fn commits_leave_the_wal_to_the_thread_which_copies_it_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        let url = path.to_str().unwrap().to_owned();
        let mut writer = connect(&url).unwrap();
        // About 1,500 pages: past the 1,000 at which a commit would checkpoint by default.
        writer
            .batch_execute(
                "CREATE TABLE t (x BLOB);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)
                 INSERT INTO t SELECT randomblob(3000) FROM n;",
            )
            .unwrap();
        let written = 1500 * 3000;
        assert!(len(&path) < written / 10, "a commit checkpointed: the file has {} bytes", len(&path));
        assert!(len(&path.with_extension("db-wal")) > written, "the rows are in the WAL");

        let _thread = Checkpointer::start(connector(url), Duration::from_millis(10), Behind::default()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while len(&path) < written && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(len(&path) >= written, "not checkpointed: the file has {} bytes", len(&path));
    }
}
