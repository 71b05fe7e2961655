//! Connection tracking for presence: a sorted set per (workspace, user) of connection ids
//! scored by their expiry, changed by atomic Lua scripts.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chat_domain::error::RepoError;
use chat_domain::ids::{UserId, WorkspaceId};
use chat_domain::realtime::{ConnectionKey, ConnectionTracker};
use chrono::{DateTime, Utc};
use redis::Script;
use redis::aio::ConnectionManager;

use crate::{command_connection, open_client};

/// How long a presence key outlives its last connection's expiry before Redis deletes it.
/// The scores decide who is live; the key's TTL only collects sets nobody touches any more
/// (a node that died with its sockets), with room for clock skew between nodes and Redis.
const KEY_GRACE: Duration = Duration::from_secs(60);

/// KEYS[1] the set; ARGV connection id, now (ms), expires at (ms), grace (ms).
/// Drops expired members, adds (or refreshes) the connection, resets the key's TTL, and
/// returns 1 when the user had no live connection before and has one now.
const CONNECTED: &str = r"
local key = KEYS[1]
local now = tonumber(ARGV[2])
local expires = tonumber(ARGV[3])
local grace = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[2])
local before = redis.call('ZCARD', key)
if expires > now then
  redis.call('ZADD', key, ARGV[3], ARGV[1])
else
  redis.call('ZREM', key, ARGV[1])
end
local after = redis.call('ZCARD', key)
if after == 0 then
  redis.call('DEL', key)
  return 0
end
local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', key, math.floor(tonumber(last[2]) - now + grace))
if before == 0 then return 1 end
return 0
";

/// KEYS[1] the set; ARGV connection id, now (ms), grace (ms).
/// Removes the connection and expired members; returns 1 when no live connection is left.
const DISCONNECTED: &str = r"
local key = KEYS[1]
local now = tonumber(ARGV[2])
local grace = tonumber(ARGV[3])
redis.call('ZREM', key, ARGV[1])
redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[2])
if redis.call('ZCARD', key) == 0 then
  redis.call('DEL', key)
  return 1
end
local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', key, math.floor(tonumber(last[2]) - now + grace))
return 0
";

/// [`ConnectionTracker`] on Redis: `{namespace}:presence:{workspace}:{user}` is a sorted set
/// of connection ids scored by their expiry in milliseconds since the epoch (the caller's
/// clock, as the port passes it). A member whose score is `<= now` no longer counts and is
/// removed by the next script that touches the set. Every change is one Lua script, so
/// concurrent connects and disconnects on several nodes agree on who came online first and
/// who went offline last.
#[derive(Clone)]
pub struct RedisConnectionTracker {
    conn: ConnectionManager,
    namespace: String,
    connected: Script,
    disconnected: Script,
}

impl fmt::Debug for RedisConnectionTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnectionTracker").field("namespace", &self.namespace).finish_non_exhaustive()
    }
}

impl RedisConnectionTracker {
    /// Connects to Redis at `url`, with keys under `namespace`.
    ///
    /// # Errors
    /// [`RepoError`] when the URL is malformed or Redis cannot be reached.
    #[tracing::instrument(skip_all, fields(namespace = namespace))]
    pub async fn connect(url: &str, namespace: &str) -> Result<Self, RepoError> {
        let conn = command_connection(&open_client(url)?).await?;
        Ok(Self {
            conn,
            namespace: namespace.to_owned(),
            connected: Script::new(CONNECTED),
            disconnected: Script::new(DISCONNECTED),
        })
    }

    fn key(&self, workspace: WorkspaceId, user: UserId) -> String {
        format!("{}:presence:{workspace}:{user}", self.namespace)
    }
}

fn grace_ms() -> i64 {
    i64::try_from(KEY_GRACE.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl ConnectionTracker for RedisConnectionTracker {
    #[tracing::instrument(skip_all, fields(workspace = %key.workspace, user = %key.user, connection = %key.connection))]
    async fn connected(
        &self,
        key: ConnectionKey,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, RepoError> {
        let mut conn = self.conn.clone();
        let first: i64 = self
            .connected
            .key(self.key(key.workspace, key.user))
            .arg(key.connection.to_string())
            .arg(now.timestamp_millis())
            .arg(expires_at.timestamp_millis())
            .arg(grace_ms())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| RepoError::new("registering a connection in Redis", e))?;
        Ok(first == 1)
    }

    #[tracing::instrument(skip_all, fields(workspace = %key.workspace, user = %key.user, connection = %key.connection))]
    async fn disconnected(&self, key: ConnectionKey, now: DateTime<Utc>) -> Result<bool, RepoError> {
        let mut conn = self.conn.clone();
        let last: i64 = self
            .disconnected
            .key(self.key(key.workspace, key.user))
            .arg(key.connection.to_string())
            .arg(now.timestamp_millis())
            .arg(grace_ms())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| RepoError::new("removing a connection from Redis", e))?;
        Ok(last == 1)
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace, user = %user))]
    async fn is_online(&self, user: UserId, workspace: WorkspaceId, now: DateTime<Utc>) -> Result<bool, RepoError> {
        let mut conn = self.conn.clone();
        let live: i64 = redis::cmd("ZCOUNT")
            .arg(self.key(workspace, user))
            .arg(format!("({}", now.timestamp_millis()))
            .arg("+inf")
            .query_async(&mut conn)
            .await
            .map_err(|e| RepoError::new("reading presence from Redis", e))?;
        Ok(live > 0)
    }
}
