//! # chat-redis
//!
//! The Redis adapter for running several server nodes as one: [`RedisBus`] carries pushes
//! between nodes ([`ClusterBus`](chat_domain::realtime::ClusterBus)),
//! [`RedisConnectionTracker`] counts a user's open connections across nodes for presence
//! ([`ConnectionTracker`](chat_domain::realtime::ConnectionTracker)), and [`RedisRateLimiter`]
//! keeps token buckets every node shares ([`RateLimiter`](chat_domain::realtime::RateLimiter)).
//! The embedded single-node mode uses the in-process twins in `chat-http` instead.
//!
//! **Layer.** Outbound adapter. It depends on `chat-domain` (whose ports it implements) and
//! on the `redis` crate, and on nothing of the delivery layer; only `chat-server` (which wires
//! it) and tests depend on it. Redis errors become a [`RepoError`] naming what was being
//! done; neither payloads nor URLs (which may carry a password) are ever logged.
//!
//! **Keys and channels.** Everything lives under a caller-chosen `namespace`, so that several
//! deployments (or parallel tests) can share one Redis:
//!
//! | what | key or channel | type |
//! |---|---|---|
//! | pushes of a workspace | `{namespace}:ws:{workspace uuid}` | pub/sub channel |
//! | a user's connections in a workspace | `{namespace}:presence:{workspace}:{user}` | sorted set: connection id → expiry (ms) |
//! | a rate-limit bucket | `{namespace}:rl:{kind}:{subject}` | string: the bucket's theoretical arrival time (µs, server clock) |
//!
//! **Channel sharding.** One channel per workspace, not one for the cluster: a node subscribes
//! only to the workspaces it has sockets in (the hub calls `subscribe` when the first local
//! socket joins a workspace and `unsubscribe` when the last leaves), so Redis sends a node
//! only the traffic it can deliver, and adding nodes does not multiply every node's inbound
//! traffic. Each frame starts with the publishing node's 16-byte random id, by which a node
//! drops its own copies.
//!
//! **Delivery guarantees.** Redis pub/sub is at-most-once: payloads published while a node's
//! subscription connection is down are lost to that node, which reconnects with backoff and
//! re-subscribes its workspaces; clients recover what they missed with `resume` (their
//! per-conversation `seq` shows the gap). Payloads from one publisher on one channel arrive in
//! publish order. Details in [`RedisBus`].
//!
//! **Time.** Presence expiries use the caller's clock (the port passes `now` and
//! `expires_at`, and heartbeats are tens of seconds apart, so node clock skew of a second is
//! harmless); rate limits use the Redis server's clock (`TIME` inside the script), so that
//! all nodes agree on one bucket exactly. Requires Redis ≥ 5 (scripts that read `TIME` and
//! then write are replicated by effect).
//!
//! **Where to start reading.** [`RedisBus::connect`] and its background reader in `bus.rs`;
//! then the two Lua scripts in `tracker.rs` and `limiter.rs`. The tests in `tests/` run
//! against a real Redis (`testing::redis_url`, skipped with one line on stderr when it is down
//! unless `CHAT_REQUIRE_SERVICES=1`).

#![forbid(unsafe_code)]

use std::time::Duration;

use chat_domain::error::RepoError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

mod bus;
mod limiter;
mod tracker;

#[cfg(feature = "testing")]
pub mod testing;

pub use bus::{BusState, RedisBus};
pub use limiter::RedisRateLimiter;
pub use tracker::RedisConnectionTracker;

/// How long one command may take before it fails (and the request goes on without Redis).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Parses `url` (`redis://[user:password@]host[:port][/db]`, `rediss://…`, `redis+unix://…`).
fn open_client(url: &str) -> Result<redis::Client, RepoError> {
    redis::Client::open(url).map_err(|e| RepoError::new("invalid Redis URL", e))
}

/// A self-healing multiplexed connection for commands: concurrent callers share one socket
/// (their commands are pipelined), and a lost connection is re-established in the background
/// while the command that noticed it fails.
async fn command_connection(client: &redis::Client) -> Result<ConnectionManager, RepoError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    client.get_connection_manager_with_config(config).await.map_err(|e| RepoError::new("connecting to Redis", e))
}
