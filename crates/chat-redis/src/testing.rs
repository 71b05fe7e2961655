//! Test support (feature `testing`): the URL of the Redis to test against, and a namespace
//! per test so that tests sharing that Redis never see each other's keys or channels and may
//! run in parallel.
//!
//! The server is the one at env `TEST_REDIS_URL` (default `redis://127.0.0.1:6379`). When it
//! cannot be reached the test is skipped with one line on stderr — unless env
//! `CHAT_REQUIRE_SERVICES=1` (as in CI), which turns an unreachable server into a failure.

use std::time::Duration;

/// The server tests use when `TEST_REDIS_URL` is not set.
pub const DEFAULT_TEST_REDIS_URL: &str = "redis://127.0.0.1:6379";

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The test server's URL once it answered a `PING`; `None` (after one line on stderr) when it
/// cannot be reached and `CHAT_REQUIRE_SERVICES` is not `1`.
///
/// # Panics
/// When the server cannot be reached and `CHAT_REQUIRE_SERVICES=1`.
pub async fn redis_url() -> Option<String> {
    let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_TEST_REDIS_URL.to_owned());
    let required = std::env::var("CHAT_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    let probe = async {
        let client = redis::Client::open(url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(_pong)) => Some(url),
        Ok(Err(e)) => unavailable(required, &url, &e.to_string()),
        Err(_) => unavailable(required, &url, "timed out"),
    }
}

/// A namespace no other test uses: `test:<uuid>`.
#[must_use]
pub fn namespace() -> String {
    format!("test:{}", uuid::Uuid::new_v4().simple())
}

fn unavailable(required: bool, url: &str, why: &str) -> Option<String> {
    let at = redact(url);
    assert!(!required, "Redis at {at} is unreachable ({why}) and CHAT_REQUIRE_SERVICES=1");
    eprintln!("skipped: Redis at {at} is unreachable ({why}); set TEST_REDIS_URL, or CHAT_REQUIRE_SERVICES=1 to fail");
    None
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
    use super::{namespace, redact};

    #[test]
    fn a_password_never_reaches_a_message() {
        assert_eq!(redact("redis://:secret@cache:6379/0"), "redis://@cache:6379/0");
        assert_eq!(redact("redis://u:secret@cache:6379"), "redis://u@cache:6379");
        assert_eq!(redact("redis://cache:6379"), "redis://cache:6379");
    }

    #[test]
    fn every_test_gets_its_own_namespace() {
        let (a, b) = (namespace(), namespace());
        assert!(a.starts_with("test:"));
        assert_ne!(a, b);
    }
}
