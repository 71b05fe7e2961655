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

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use chat_domain::error::RepoError;
use diesel::RunQueryDsl;
use diesel::sqlite::SqliteConnection;

use crate::store::{Connect, opened};

/// How often the WAL is checkpointed: often enough that, at a few hundred commits a second
/// of a few pages each, a checkpoint copies about what SQLite's default would (1,000 pages).
pub(crate) const INTERVAL: Duration = Duration::from_millis(250);

/// The checkpoint thread; it stops when this is dropped (with the store).
pub(crate) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts the thread; it opens its connection with `connect` (again after a failure).
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub(crate) fn start(connect: Connect, interval: Duration) -> Result<Self, RepoError> {
        let (stop, stopped) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".to_owned())
            .spawn(move || {
                let mut conn = None;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    if let Err(e) = checkpoint(&mut conn, &connect) {
                        tracing::warn!(error = %e, "sqlite WAL checkpoint failed");
                        conn = None;
                    }
                }
            })
            .map_err(|e| RepoError::new("starting the sqlite checkpoint thread", e))?;
        Ok(Self { _stop: stop })
    }
}

/// One PASSIVE checkpoint: copies the WAL's frames that no reader still needs into the
/// database file, without waiting for readers or the writer.
fn checkpoint(conn: &mut Option<SqliteConnection>, connect: &Connect) -> Result<(), RepoError> {
    diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(opened(conn, connect)?)
        .map(drop)
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

        let _thread = Checkpointer::start(connector(url), Duration::from_millis(10)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while len(&path) < written && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(len(&path) >= written, "not checkpointed: the file has {} bytes", len(&path));
    }
}
