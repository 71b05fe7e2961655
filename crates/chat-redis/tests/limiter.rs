//! `RedisRateLimiter` against a real Redis.

use std::sync::Arc;
use std::time::Duration;

use chat_domain::realtime::{RateKind, RateLimiter};
use chat_redis::RedisRateLimiter;
use chat_redis::testing::{namespace, redis_url};

async fn limiter() -> Option<RedisRateLimiter> {
    let url = redis_url().await?;
    Some(RedisRateLimiter::connect(&url, &namespace()).await.expect("the limiter connects"))
}

async fn acquire(limiter: &RedisRateLimiter, kind: RateKind, subject: &str, per_minute: u32) -> Result<(), Duration> {
    limiter.acquire(kind, subject, per_minute).await.expect("Redis answers")
}

#[tokio::test]
async fn a_burst_of_per_minute_passes_and_the_next_one_waits_one_interval_at_most() {
    let Some(l) = limiter().await else { return };
    for _ in 0..3 {
        assert_eq!(acquire(&l, RateKind::Messages, "alice", 3).await, Ok(()));
    }
    let retry = acquire(&l, RateKind::Messages, "alice", 3).await.expect_err("the fourth is limited");
    assert!(retry > Duration::ZERO && retry <= Duration::from_secs(20), "retry after {retry:?}");
}

#[tokio::test]
async fn a_limit_of_zero_disables_the_check() {
    let Some(l) = limiter().await else { return };
    for _ in 0..100 {
        assert_eq!(acquire(&l, RateKind::Uploads, "alice", 0).await, Ok(()));
    }
}

#[tokio::test]
async fn subjects_and_kinds_have_their_own_buckets() {
    let Some(l) = limiter().await else { return };
    assert_eq!(acquire(&l, RateKind::Messages, "alice", 1).await, Ok(()));
    assert!(acquire(&l, RateKind::Messages, "alice", 1).await.is_err());

    assert_eq!(acquire(&l, RateKind::Messages, "bob", 1).await, Ok(()), "another subject");
    assert_eq!(acquire(&l, RateKind::Uploads, "alice", 1).await, Ok(()), "another kind");
    assert_eq!(acquire(&l, RateKind::Connections, "alice", 1).await, Ok(()), "another kind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_concurrent_burst_is_granted_exactly_per_minute_tokens() {
    let Some(l) = limiter().await else { return };
    let l = Arc::new(l);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let l = Arc::clone(&l);
            tokio::spawn(async move { acquire(&l, RateKind::Connections, "10.0.0.1", 5).await.is_ok() })
        })
        .collect();
    let mut granted = 0;
    for task in tasks {
        if task.await.expect("the task finished") {
            granted += 1;
        }
    }
    assert_eq!(granted, 5);
}

#[tokio::test]
async fn a_token_is_free_again_after_the_retry_after() {
    let Some(l) = limiter().await else { return };
    // 1,200 a minute: one token every 50 ms, so draining the burst outpaces the refill.
    let per_minute = 1200;
    let mut retry = None;
    for _ in 0..2 * per_minute {
        if let Err(wait) = acquire(&l, RateKind::Messages, "alice", per_minute).await {
            retry = Some(wait);
            break;
        }
    }
    let retry = retry.expect("the bucket runs dry");
    assert!(retry <= Duration::from_millis(50), "one interval at most: {retry:?}");
    tokio::time::sleep(retry).await;
    assert_eq!(acquire(&l, RateKind::Messages, "alice", per_minute).await, Ok(()));
}

#[tokio::test]
async fn an_unreachable_server_or_a_bad_url_fails_to_connect() {
    let unreachable =
        tokio::time::timeout(Duration::from_secs(10), RedisRateLimiter::connect("redis://127.0.0.1:1", "x")).await;
    assert!(matches!(unreachable, Ok(Err(_))));
    assert!(RedisRateLimiter::connect("not a url", "x").await.is_err());
}
