//! Presence per (user, workspace): online, away, busy or offline, and when last seen.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::error::{DomainError, DomainResult, RepoError};
use crate::event::{DomainEvent, EventPublisher};
use crate::ids::{UserId, WorkspaceId};
use crate::workspace::WorkspaceRepository;

/// A presence status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PresenceStatus {
    /// Connected and available.
    Online,
    /// Chosen: away.
    Away,
    /// Chosen: do not disturb.
    Busy,
    /// Not connected.
    Offline,
}

impl PresenceStatus {
    /// The wire and storage spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Away => "away",
            Self::Busy => "busy",
            Self::Offline => "offline",
        }
    }

    /// Parses the wire spelling (case-insensitive).
    ///
    /// # Errors
    /// [`DomainError::Validation`] for anything else.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw.to_ascii_lowercase().as_str() {
            "online" => Ok(Self::Online),
            "away" => Ok(Self::Away),
            "busy" => Ok(Self::Busy),
            "offline" => Ok(Self::Offline),
            _ => Err(DomainError::invalid("status", "must be one of online, away, busy, offline")),
        }
    }
}

/// One user's presence in one workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presence {
    /// Who.
    pub user_id: UserId,
    /// Where.
    pub workspace_id: WorkspaceId,
    /// Status.
    pub status: PresenceStatus,
    /// Last activity.
    pub last_seen: DateTime<Utc>,
}

/// Persisted presence (the last known status and `lastSeen`).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PresenceRepository: Send + Sync {
    /// Inserts or replaces the record of `(user, workspace)`.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn upsert_presence(&self, presence: &Presence) -> Result<(), RepoError>;

    /// Every stored record of a workspace's current members.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn list_presence(&self, workspace: WorkspaceId) -> Result<Vec<Presence>, RepoError>;
}

/// Reading and setting presence.
#[derive(Clone)]
pub struct PresenceService {
    presence: Arc<dyn PresenceRepository>,
    workspaces: Arc<dyn WorkspaceRepository>,
    events: Arc<dyn EventPublisher>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for PresenceService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceService").finish_non_exhaustive()
    }
}

impl PresenceService {
    /// Wires the service.
    #[must_use]
    pub fn new(
        presence: Arc<dyn PresenceRepository>,
        workspaces: Arc<dyn WorkspaceRepository>,
        events: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { presence, workspaces, events, clock }
    }

    /// Sets the caller's status in a workspace and tells its members.
    ///
    /// # Errors
    /// `NotFound` unless the caller is a member of the workspace.
    pub async fn set(&self, actor: UserId, workspace: WorkspaceId, status: PresenceStatus) -> DomainResult<Presence> {
        self.workspaces.member_role(workspace, actor).await?.ok_or(DomainError::NotFound)?;
        let presence = Presence { user_id: actor, workspace_id: workspace, status, last_seen: self.clock.now() };
        self.presence.upsert_presence(&presence).await?;
        self.events.publish(DomainEvent::PresenceChanged { presence: presence.clone() }).await;
        Ok(presence)
    }

    /// Every member's presence; members with no record yet are `offline`, last seen when they
    /// joined.
    ///
    /// # Errors
    /// `NotFound` unless the caller is a member of the workspace.
    pub async fn list(&self, actor: UserId, workspace: WorkspaceId) -> DomainResult<Vec<Presence>> {
        self.workspaces.member_role(workspace, actor).await?.ok_or(DomainError::NotFound)?;
        let members = self.workspaces.list_workspace_members(workspace).await?;
        let mut known: std::collections::HashMap<UserId, Presence> =
            self.presence.list_presence(workspace).await?.into_iter().map(|p| (p.user_id, p)).collect();
        Ok(members
            .into_iter()
            .map(|m| {
                known.remove(&m.user.id).unwrap_or(Presence {
                    user_id: m.user.id,
                    workspace_id: workspace,
                    status: PresenceStatus::Offline,
                    last_seen: m.joined_at,
                })
            })
            .collect())
    }
}
