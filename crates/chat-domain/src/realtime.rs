//! Ports of the real-time layer that must work across server nodes: the cluster bus that
//! carries already-serialised pushes between nodes, connection tracking for presence, and rate
//! limiting. Each has an in-process implementation (in `chat-http`) for the embedded mode and a
//! Redis one (`chat-redis`) for several nodes.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::{DomainError, DomainResult, RepoError};
use crate::ids::{UserId, WorkspaceId};

/// Carries opaque payloads (a routed, serialised push, built once by the publishing node)
/// to the other nodes that hold connections in a workspace. What arrives is handed to the
/// receiver given to the implementation at construction.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ClusterBus: Send + Sync {
    /// Sends `payload` to every node subscribed to `workspace` (the sending node's own copy is
    /// not delivered back to it).
    ///
    /// # Errors
    /// [`RepoError`] when the bus is unreachable; the event then reaches local sockets only.
    async fn publish(&self, workspace: WorkspaceId, payload: Vec<u8>) -> Result<(), RepoError>;

    /// Starts receiving `workspace`'s payloads (idempotent).
    ///
    /// # Errors
    /// [`RepoError`] when the bus is unreachable.
    async fn subscribe(&self, workspace: WorkspaceId) -> Result<(), RepoError>;

    /// Stops receiving `workspace`'s payloads (idempotent).
    ///
    /// # Errors
    /// [`RepoError`] when the bus is unreachable.
    async fn unsubscribe(&self, workspace: WorkspaceId) -> Result<(), RepoError>;
}

/// One open connection, as presence counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionKey {
    /// Whose.
    pub user: UserId,
    /// In which workspace (after `join_workspace`).
    pub workspace: WorkspaceId,
    /// A process-unique connection id (node id and counter).
    pub connection: uuid::Uuid,
}

/// Counts a user's open connections in a workspace across every node. A connection that stops
/// heart-beating for longer than its TTL no longer counts (its node died).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ConnectionTracker: Send + Sync {
    /// Registers (or refreshes) a connection until `expires_at`; `true` when it is the user's
    /// first live connection in the workspace (they just came online).
    ///
    /// # Errors
    /// [`RepoError`] when the tracker is unreachable.
    async fn connected(
        &self,
        key: ConnectionKey,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, RepoError>;

    /// Removes a connection; `true` when the user has no live connection left in the
    /// workspace (they just went offline).
    ///
    /// # Errors
    /// [`RepoError`] when the tracker is unreachable.
    async fn disconnected(&self, key: ConnectionKey, now: DateTime<Utc>) -> Result<bool, RepoError>;

    /// Whether the user has a live connection in the workspace.
    ///
    /// # Errors
    /// [`RepoError`] when the tracker is unreachable.
    async fn is_online(&self, user: UserId, workspace: WorkspaceId, now: DateTime<Utc>) -> Result<bool, RepoError>;
}

/// What is being limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RateKind {
    /// Messages sent, per user.
    Messages,
    /// WebSocket connections opened, per client IP.
    Connections,
    /// File uploads, per user.
    Uploads,
    /// E2E one-time prekey claims, per user.
    KeyClaims,
}

impl RateKind {
    /// A short stable name for keys and metrics.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Messages => "messages",
            Self::Connections => "connections",
            Self::Uploads => "uploads",
            Self::KeyClaims => "key_claims",
        }
    }
}

/// Token buckets that allow short bursts: `per_minute` tokens refill evenly over a minute, up
/// to a burst of `per_minute`. A limit of 0 disables the check.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Takes one token from `subject`'s bucket of `kind`, or says how long until one is free.
    ///
    /// # Errors
    /// `Ok(Err(retry_after))` when limited; `Err` when the limiter's store is unreachable (the
    /// caller lets the request through and logs it: availability over strictness).
    async fn acquire(&self, kind: RateKind, subject: &str, per_minute: u32) -> Result<Result<(), Duration>, RepoError>;
}

/// Takes one token of `subject`'s `kind` budget — the one rate-limit policy of every use case
/// and of the gateway. A limiter outage lets the request through and is logged: availability
/// over strictness.
///
/// # Errors
/// [`DomainError::RateLimited`] with the time until a token is free.
pub async fn take_token(limiter: &dyn RateLimiter, kind: RateKind, subject: &str, per_minute: u32) -> DomainResult<()> {
    match limiter.acquire(kind, subject, per_minute).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(retry_after)) => Err(DomainError::RateLimited { retry_after }),
        Err(e) => {
            tracing::warn!(error = %e, kind = kind.as_str(), "rate limiter unavailable; request let through");
            Ok(())
        }
    }
}
