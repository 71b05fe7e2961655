//! Test support (feature `testing`): a brand-new, empty database per test, dropped when the
//! test is done, so that tests never share state and may run in parallel.
//!
//! The server is the one at env `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it cannot be reached the test is
//! skipped with one line on stderr — unless env `CHAT_REQUIRE_SERVICES=1` (as in CI), which
//! turns an unreachable server into a failure.

use std::fmt;
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

/// Where the throw-away databases are created when `TEST_DATABASE_URL` is not set.
pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A database that exists until this guard is dropped.
pub struct TestDatabase {
    url: String,
    admin_url: String,
    name: String,
}

impl fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestDatabase").field("name", &self.name).finish_non_exhaustive()
    }
}

impl TestDatabase {
    /// The `postgres://` URL of the database.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its name (`chat_test_<uuid>`).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    /// Drops the database (terminating any connection still open to it). The work runs on its
    /// own thread with its own runtime, so dropping the guard inside a tokio test is fine;
    /// the guard waits for it, so the database is gone when the test ends.
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut conn = AsyncPgConnection::establish(&admin_url).await.map_err(|e| e.to_string())?;
                diesel::sql_query(sql).execute(&mut conn).await.map_err(|e| e.to_string())?;
                Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test database {}: {e}", self.name),
            Err(_) => eprintln!("could not drop test database {}: the dropping thread panicked", self.name),
        }
    }
}

/// Creates a brand-new database `chat_test_<uuid>` and returns its guard; `None` (after one
/// line on stderr) when the server cannot be reached and `CHAT_REQUIRE_SERVICES` is not `1`.
///
/// # Panics
/// When the server cannot be reached and `CHAT_REQUIRE_SERVICES=1`, or when it is reached but
/// refuses to create the database.
pub async fn fresh_database() -> Option<TestDatabase> {
    let admin_url = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_owned());
    let required = std::env::var("CHAT_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, AsyncPgConnection::establish(&admin_url)).await;
    let mut conn = match connected {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return unavailable(required, &admin_url, &e.to_string()),
        Err(_) => return unavailable(required, &admin_url, "timed out"),
    };
    let name = format!("chat_test_{}", uuid::Uuid::new_v4().simple());
    if let Err(e) = diesel::sql_query(format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await {
        panic!("Postgres at {} refused to create a test database: {e}", redact(&admin_url));
    }
    Some(TestDatabase { url: with_database(&admin_url, &name), admin_url, name })
}

fn unavailable(required: bool, admin_url: &str, why: &str) -> Option<TestDatabase> {
    let at = redact(admin_url);
    assert!(!required, "Postgres at {at} is unreachable ({why}) and CHAT_REQUIRE_SERVICES=1");
    eprintln!(
        "skipped: Postgres at {at} is unreachable ({why}); set TEST_DATABASE_URL, or CHAT_REQUIRE_SERVICES=1 to fail"
    );
    None
}

/// `url` with its database (the path) replaced by `database`, query parameters kept.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// `url` without the password, for messages.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_owned() };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{}{user}@{host}{}", &url[..scheme_end], &rest[authority_end..])
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{redact, with_database};

    #[test]
    fn the_database_of_a_url_is_replaced_and_its_parameters_kept() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@db:5432/app?sslmode=disable", "t1"),
            "postgres://u:p@db:5432/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://db", "t1"), "postgres://db/t1");
        assert_eq!(with_database("postgres://db?x=1", "t1"), "postgres://db/t1?x=1");
    }

    #[test]
    fn a_password_never_reaches_a_message() {
        assert_eq!(redact("postgres://u:secret@db:5432/app"), "postgres://u@db:5432/app");
        assert_eq!(redact("postgres://u@db/app"), "postgres://u@db/app");
        assert_eq!(redact("postgres://db/app"), "postgres://db/app");
    }
}
