//! In-process twins of the real-time ports, for the embedded single-node mode (no
//! `REDIS_URL`): [`LocalConnectionTracker`] counts connections in a map, [`LocalRateLimiter`]
//! keeps token buckets with `governor`. They behave like `chat-redis`'s
//! `RedisConnectionTracker` and `RedisRateLimiter` within one process. There is no local bus:
//! a single node has no one to tell.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chat_domain::error::RepoError;
use chat_domain::ids::{UserId, WorkspaceId};
use chat_domain::realtime::{ConnectionKey, ConnectionTracker, RateKind, RateLimiter};
use chrono::{DateTime, Utc};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use uuid::Uuid;

/// Every this many calls, state nobody touched lately is swept out, so that memory follows
/// the live users and subjects rather than every one ever seen.
const SWEEP_EVERY: u64 = 1024;

/// The shortest retry-after reported, so that a limited caller never hears "retry in 0 s".
const MIN_RETRY_AFTER: Duration = Duration::from_millis(1);

/// A user's connections in a workspace: connection id → expiry.
type Connections = HashMap<Uuid, DateTime<Utc>>;

/// [`ConnectionTracker`] in memory. A connection counts while `now < expires_at`; expired
/// ones are dropped when their user's entry is next touched, and by a sweep of the whole map
/// every [`SWEEP_EVERY`] registrations. The lock is never held across an await.
#[derive(Default)]
pub struct LocalConnectionTracker {
    users: Mutex<HashMap<(WorkspaceId, UserId), Connections>>,
    registrations: AtomicU64,
}

impl fmt::Debug for LocalConnectionTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalConnectionTracker").field("tracked_users", &self.users().len()).finish()
    }
}

impl LocalConnectionTracker {
    /// An empty tracker.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn users(&self) -> MutexGuard<'_, HashMap<(WorkspaceId, UserId), Connections>> {
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn drop_expired(connections: &mut Connections, now: DateTime<Utc>) {
    connections.retain(|_, expires_at| *expires_at > now);
}

#[async_trait]
impl ConnectionTracker for LocalConnectionTracker {
    #[tracing::instrument(skip_all, fields(workspace = %key.workspace, user = %key.user, connection = %key.connection))]
    async fn connected(
        &self,
        key: ConnectionKey,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, RepoError> {
        let sweep = self.registrations.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1;
        let mut users = self.users();
        if sweep {
            users.retain(|_, connections| {
                drop_expired(connections, now);
                !connections.is_empty()
            });
        }
        let entry = (key.workspace, key.user);
        let connections = users.entry(entry).or_default();
        drop_expired(connections, now);
        let before = connections.len();
        if expires_at > now {
            connections.insert(key.connection, expires_at);
        } else {
            connections.remove(&key.connection);
        }
        let after = connections.len();
        if after == 0 {
            users.remove(&entry);
        }
        Ok(before == 0 && after > 0)
    }

    #[tracing::instrument(skip_all, fields(workspace = %key.workspace, user = %key.user, connection = %key.connection))]
    async fn disconnected(&self, key: ConnectionKey, now: DateTime<Utc>) -> Result<bool, RepoError> {
        let mut users = self.users();
        let entry = (key.workspace, key.user);
        let Some(connections) = users.get_mut(&entry) else { return Ok(true) };
        connections.remove(&key.connection);
        drop_expired(connections, now);
        if connections.is_empty() {
            users.remove(&entry);
            return Ok(true);
        }
        Ok(false)
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace, user = %user))]
    async fn is_online(&self, user: UserId, workspace: WorkspaceId, now: DateTime<Utc>) -> Result<bool, RepoError> {
        Ok(self.users().get(&(workspace, user)).is_some_and(|c| c.values().any(|expires_at| *expires_at > now)))
    }
}

/// One keyed limiter per (kind, limit): a `governor` quota is fixed per limiter, so each
/// distinct `per_minute` of a kind gets its own, keyed by subject.
type Limiters = HashMap<(RateKind, u32), Arc<DefaultKeyedRateLimiter<String>>>;

/// [`RateLimiter`] in memory: `governor`'s GCRA, `per_minute` tokens refilling evenly with a
/// burst of `per_minute`, exactly like the Redis limiter but for one process. Keyed limiters
/// keep a state per subject; every [`SWEEP_EVERY`] acquires the states indistinguishable from
/// a full bucket are dropped (`retain_recent`), so memory stays bounded by the subjects seen
/// within about a minute.
#[derive(Default)]
pub struct LocalRateLimiter {
    limiters: Mutex<Limiters>,
    acquires: AtomicU64,
}

impl fmt::Debug for LocalRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalRateLimiter").field("limiters", &self.limiters().len()).finish()
    }
}

impl LocalRateLimiter {
    /// No buckets yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn limiters(&self) -> MutexGuard<'_, Limiters> {
        self.limiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn limiter(&self, kind: RateKind, per_minute: NonZeroU32) -> Arc<DefaultKeyedRateLimiter<String>> {
        let mut limiters = self.limiters();
        let limiter = limiters
            .entry((kind, per_minute.get()))
            .or_insert_with(|| Arc::new(DefaultKeyedRateLimiter::keyed(Quota::per_minute(per_minute))));
        Arc::clone(limiter)
    }

    fn sweep(&self) {
        let limiters: Vec<_> = self.limiters().values().cloned().collect();
        for limiter in limiters {
            limiter.retain_recent();
        }
    }
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    /// The subject (a user id or a client IP) is a key, not a log field.
    #[tracing::instrument(skip_all, fields(kind = kind.as_str(), per_minute = per_minute))]
    async fn acquire(&self, kind: RateKind, subject: &str, per_minute: u32) -> Result<Result<(), Duration>, RepoError> {
        let Some(per_minute) = NonZeroU32::new(per_minute) else { return Ok(Ok(())) };
        if self.acquires.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        let limiter = self.limiter(kind, per_minute);
        Ok(match limiter.check_key(&subject.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => Err(not_until.wait_time_from(limiter.clock().now()).max(MIN_RETRY_AFTER)),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use chat_domain::ids::{UserId, WorkspaceId};
    use chat_domain::realtime::{ConnectionKey, ConnectionTracker, RateKind, RateLimiter};
    use chrono::{DateTime, TimeDelta, Utc};
    use uuid::Uuid;

    use super::{LocalConnectionTracker, LocalRateLimiter, SWEEP_EVERY};

    fn connection(user: UserId, workspace: WorkspaceId) -> ConnectionKey {
        ConnectionKey { user, workspace, connection: Uuid::new_v4() }
    }

    fn secs(n: i64) -> TimeDelta {
        TimeDelta::seconds(n)
    }

    async fn online(tracker: &LocalConnectionTracker, key: ConnectionKey, at: DateTime<Utc>) -> bool {
        tracker.is_online(key.user, key.workspace, at).await.expect("is_online")
    }

    #[tokio::test]
    async fn the_first_connection_brings_a_user_online_and_the_last_takes_them_offline() {
        let t = LocalConnectionTracker::new();
        let (user, ws) = (UserId::generate(), WorkspaceId::generate());
        let (tab1, tab2) = (connection(user, ws), connection(user, ws));
        let now = Utc::now();
        assert!(!online(&t, tab1, now).await);

        assert!(t.connected(tab1, now, now + secs(60)).await.expect("connect"), "first connection");
        assert!(online(&t, tab1, now).await);
        assert!(!t.connected(tab2, now, now + secs(60)).await.expect("connect"), "second connection");
        assert!(!t.connected(tab1, now + secs(10), now + secs(70)).await.expect("refresh"), "a heartbeat");

        assert!(!t.disconnected(tab1, now + secs(20)).await.expect("disconnect"), "tab2 is still open");
        assert!(online(&t, tab2, now + secs(20)).await);
        assert!(!t.disconnected(tab1, now + secs(20)).await.expect("disconnect"), "a repeated disconnect");
        assert!(t.disconnected(tab2, now + secs(21)).await.expect("disconnect"), "the last one");
        assert!(!online(&t, tab2, now + secs(21)).await);
    }

    #[tokio::test]
    async fn an_expired_connection_no_longer_counts() {
        let t = LocalConnectionTracker::new();
        let (user, ws) = (UserId::generate(), WorkspaceId::generate());
        let (dead, fresh) = (connection(user, ws), connection(user, ws));
        let now = Utc::now();

        assert!(t.connected(dead, now, now + secs(30)).await.expect("connect"));
        assert!(online(&t, dead, now + secs(29)).await);
        assert!(!online(&t, dead, now + secs(30)).await, "its connection stopped heart-beating");

        assert!(t.connected(fresh, now + secs(31), now + secs(91)).await.expect("connect"), "online again");
        assert!(t.disconnected(fresh, now + secs(32)).await.expect("disconnect"), "the expired one does not count");
    }

    #[tokio::test]
    async fn a_connection_registered_already_expired_never_counts() {
        let t = LocalConnectionTracker::new();
        let key = connection(UserId::generate(), WorkspaceId::generate());
        let now = Utc::now();

        assert!(!t.connected(key, now, now - secs(1)).await.expect("connect"));
        assert!(!online(&t, key, now).await);
        assert!(t.connected(key, now, now + secs(60)).await.expect("connect"), "a live registration is the first");
    }

    #[tokio::test]
    async fn users_and_workspaces_are_independent() {
        let t = LocalConnectionTracker::new();
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let (ws1, ws2) = (WorkspaceId::generate(), WorkspaceId::generate());
        let (alice1, bob1, alice2) = (connection(alice, ws1), connection(bob, ws1), connection(alice, ws2));
        let now = Utc::now();
        let until = now + secs(60);

        assert!(t.connected(alice1, now, until).await.expect("connect"));
        assert!(t.connected(bob1, now, until).await.expect("connect"), "bob's first, though alice is online");
        assert!(t.connected(alice2, now, until).await.expect("connect"), "alice's first in ws2");

        assert!(t.disconnected(alice1, now).await.expect("disconnect"), "alice leaves ws1 while bob stays");
        assert!(online(&t, bob1, now).await);
        assert!(online(&t, alice2, now).await, "alice is still in ws2");
        assert!(!online(&t, alice1, now).await);
    }

    #[tokio::test]
    async fn users_whose_connections_expired_are_swept_out() {
        let t = LocalConnectionTracker::new();
        let now = Utc::now();
        for _ in 0..SWEEP_EVERY - 1 {
            let key = connection(UserId::generate(), WorkspaceId::generate());
            t.connected(key, now, now + secs(30)).await.expect("connect");
        }
        assert_eq!(t.users().len(), usize::try_from(SWEEP_EVERY - 1).expect("small"));

        let survivor = connection(UserId::generate(), WorkspaceId::generate());
        t.connected(survivor, now + secs(31), now + secs(91)).await.expect("connect");
        assert_eq!(t.users().len(), 1, "only the live user is left");
    }

    async fn acquire(
        limiter: &LocalRateLimiter,
        kind: RateKind,
        subject: &str,
        per_minute: u32,
    ) -> Result<(), Duration> {
        limiter.acquire(kind, subject, per_minute).await.expect("in memory never fails")
    }

    #[tokio::test]
    async fn a_burst_of_per_minute_passes_and_the_next_one_waits_one_interval_at_most() {
        let l = LocalRateLimiter::new();
        for _ in 0..3 {
            assert_eq!(acquire(&l, RateKind::Messages, "alice", 3).await, Ok(()));
        }
        let retry = acquire(&l, RateKind::Messages, "alice", 3).await.expect_err("the fourth is limited");
        assert!(retry > Duration::ZERO && retry <= Duration::from_secs(20), "retry after {retry:?}");
    }

    #[tokio::test]
    async fn a_limit_of_zero_disables_the_check() {
        let l = LocalRateLimiter::new();
        for _ in 0..100 {
            assert_eq!(acquire(&l, RateKind::Uploads, "alice", 0).await, Ok(()));
        }
    }

    #[tokio::test]
    async fn subjects_kinds_and_limits_have_their_own_buckets() {
        let l = LocalRateLimiter::new();
        assert_eq!(acquire(&l, RateKind::Messages, "alice", 1).await, Ok(()));
        assert!(acquire(&l, RateKind::Messages, "alice", 1).await.is_err());

        assert_eq!(acquire(&l, RateKind::Messages, "bob", 1).await, Ok(()), "another subject");
        assert_eq!(acquire(&l, RateKind::Uploads, "alice", 1).await, Ok(()), "another kind");
        assert_eq!(acquire(&l, RateKind::Connections, "alice", 1).await, Ok(()), "another kind");
        assert_eq!(acquire(&l, RateKind::Messages, "alice", 2).await, Ok(()), "another limit");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_concurrent_burst_is_granted_exactly_per_minute_tokens() {
        let l = Arc::new(LocalRateLimiter::new());
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
        let l = LocalRateLimiter::new();
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
    async fn subjects_with_full_buckets_are_forgotten() {
        let l = LocalRateLimiter::new();
        // One token a microsecond: a subject's bucket is full again almost at once.
        let per_minute = 60_000_000;
        let subjects = 2 * usize::try_from(SWEEP_EVERY).expect("small");
        for i in 0..subjects {
            assert_eq!(
                acquire(&l, RateKind::Connections, &format!("10.0.{}.{}", i / 256, i % 256), per_minute).await,
                Ok(())
            );
        }
        let limiter = l.limiter(RateKind::Connections, per_minute.try_into().expect("non-zero"));
        assert!(limiter.len() < subjects, "{} of {subjects} subjects kept", limiter.len());
    }
}
