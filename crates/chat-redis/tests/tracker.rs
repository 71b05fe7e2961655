//! `RedisConnectionTracker` against a real Redis.

use chat_domain::ids::{UserId, WorkspaceId};
use chat_domain::realtime::{ConnectionKey, ConnectionTracker};
use chat_redis::RedisConnectionTracker;
use chat_redis::testing::{namespace, redis_url};
use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

async fn tracker() -> Option<(RedisConnectionTracker, String, String)> {
    let url = redis_url().await?;
    let ns = namespace();
    let tracker = RedisConnectionTracker::connect(&url, &ns).await.expect("the tracker connects");
    Some((tracker, url, ns))
}

fn connection(user: UserId, workspace: WorkspaceId) -> ConnectionKey {
    ConnectionKey { user, workspace, connection: Uuid::new_v4() }
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

async fn online(tracker: &RedisConnectionTracker, key: ConnectionKey, at: DateTime<Utc>) -> bool {
    tracker.is_online(key.user, key.workspace, at).await.expect("is_online")
}

#[tokio::test]
async fn the_first_connection_brings_a_user_online_and_the_last_takes_them_offline() {
    let Some((t, _, _)) = tracker().await else { return };
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
    assert!(!t.disconnected(tab1, now + secs(20)).await.expect("disconnect"), "a repeated disconnect changes nothing");
    assert!(t.disconnected(tab2, now + secs(21)).await.expect("disconnect"), "the last one");
    assert!(!online(&t, tab2, now + secs(21)).await);
}

#[tokio::test]
async fn an_expired_connection_no_longer_counts() {
    let Some((t, _, _)) = tracker().await else { return };
    let (user, ws) = (UserId::generate(), WorkspaceId::generate());
    let (dead, fresh) = (connection(user, ws), connection(user, ws));
    let now = Utc::now();

    assert!(t.connected(dead, now, now + secs(30)).await.expect("connect"));
    assert!(online(&t, dead, now + secs(29)).await);
    assert!(!online(&t, dead, now + secs(30)).await, "its node stopped heart-beating");

    assert!(t.connected(fresh, now + secs(31), now + secs(91)).await.expect("connect"), "online again");
    assert!(t.disconnected(fresh, now + secs(32)).await.expect("disconnect"), "the expired one does not count");
}

#[tokio::test]
async fn a_connection_registered_already_expired_never_counts() {
    let Some((t, _, _)) = tracker().await else { return };
    let key = connection(UserId::generate(), WorkspaceId::generate());
    let now = Utc::now();

    assert!(!t.connected(key, now, now - secs(1)).await.expect("connect"));
    assert!(!online(&t, key, now).await);
    assert!(t.connected(key, now, now + secs(60)).await.expect("connect"), "a live registration is the first");
}

#[tokio::test]
async fn users_and_workspaces_are_independent() {
    let Some((t, _, _)) = tracker().await else { return };
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
async fn presence_keys_expire_after_their_last_connection_and_vanish_when_it_closes() {
    let Some((t, url, ns)) = tracker().await else { return };
    let key = connection(UserId::generate(), WorkspaceId::generate());
    let redis_key = format!("{ns}:presence:{}:{}", key.workspace, key.user);
    let mut conn =
        redis::Client::open(url.as_str()).expect("url").get_multiplexed_async_connection().await.expect("a connection");
    let now = Utc::now();

    t.connected(key, now, now + secs(60)).await.expect("connect");
    let ttl_ms: i64 = redis::cmd("PTTL").arg(&redis_key).query_async(&mut conn).await.expect("PTTL");
    assert!((60_000..=120_000).contains(&ttl_ms), "the key outlives the expiry by a grace period: {ttl_ms} ms");

    t.disconnected(key, now).await.expect("disconnect");
    let exists: i64 = redis::cmd("EXISTS").arg(&redis_key).query_async(&mut conn).await.expect("EXISTS");
    assert_eq!(exists, 0);
}
