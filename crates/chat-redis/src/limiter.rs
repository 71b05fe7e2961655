//! Rate limits every node shares: GCRA token buckets, one Lua script per acquire.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chat_domain::error::RepoError;
use chat_domain::realtime::{RateKind, RateLimiter};
use redis::Script;
use redis::aio::ConnectionManager;

use crate::{command_connection, open_client};

/// KEYS[1] the bucket; ARGV emission interval (µs per token), burst (tokens).
///
/// GCRA, the token bucket written as one timestamp: the bucket stores its theoretical arrival
/// time `tat` (when it would be full again). Taking a token moves `tat` one interval later;
/// that is allowed while `tat` stays within `burst` intervals of now. The clock is the Redis
/// server's (`TIME`), so every node agrees. Returns 0 when a token was taken, else the
/// microseconds until one is free (always > 0). The key expires when the bucket is full
/// again, at which point it is indistinguishable from a missing one.
const ACQUIRE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then
  tat = math.max(tonumber(stored), now)
end
local next_tat = tat + interval
local allowed_at = next_tat - burst * interval
if allowed_at > now then
  return allowed_at - now
end
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1)
return 0
";

/// [`RateLimiter`] on Redis: bucket `{namespace}:rl:{kind}:{subject}` holds `per_minute`
/// tokens refilling evenly (one every `60 s / per_minute`), so a client may burst
/// `per_minute` requests and then continue at the steady rate. Each acquire is one atomic
/// script, so concurrent requests on every node share the bucket exactly.
#[derive(Clone)]
pub struct RedisRateLimiter {
    conn: ConnectionManager,
    namespace: String,
    acquire: Script,
}

impl fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimiter").field("namespace", &self.namespace).finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// Connects to Redis at `url`, with keys under `namespace`.
    ///
    /// # Errors
    /// [`RepoError`] when the URL is malformed or Redis cannot be reached.
    #[tracing::instrument(skip_all, fields(namespace = namespace))]
    pub async fn connect(url: &str, namespace: &str) -> Result<Self, RepoError> {
        let conn = command_connection(&open_client(url)?).await?;
        Ok(Self { conn, namespace: namespace.to_owned(), acquire: Script::new(ACQUIRE) })
    }
}

/// Microseconds between two tokens of a bucket refilling `per_minute` per minute.
fn emission_interval_us(per_minute: u32) -> u64 {
    (60_000_000 / u64::from(per_minute)).max(1)
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    /// The subject (a user id or a client IP) is a key, not a log field.
    #[tracing::instrument(skip_all, fields(kind = kind.as_str(), per_minute = per_minute))]
    async fn acquire(&self, kind: RateKind, subject: &str, per_minute: u32) -> Result<Result<(), Duration>, RepoError> {
        if per_minute == 0 {
            return Ok(Ok(()));
        }
        let mut conn = self.conn.clone();
        let wait_us: u64 = self
            .acquire
            .key(format!("{}:rl:{}:{subject}", self.namespace, kind.as_str()))
            .arg(emission_interval_us(per_minute))
            .arg(per_minute)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| RepoError::new("taking a rate-limit token in Redis", e))?;
        Ok(if wait_us == 0 { Ok(()) } else { Err(Duration::from_micros(wait_us)) })
    }
}
