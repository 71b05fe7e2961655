//! Presence per (user, workspace): online, away, busy or offline, and when last seen.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::error::{DomainError, DomainResult, RepoError};
use crate::event::{DomainEvent, EventPublisher};
use crate::ids::{UserId, WorkspaceId};
use crate::realtime::{ConnectionKey, ConnectionTracker};
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

    /// The stored record of one user in one workspace.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn find_presence(&self, user: UserId, workspace: WorkspaceId) -> Result<Option<Presence>, RepoError>;

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
    tracker: Arc<dyn ConnectionTracker>,
    events: Arc<dyn EventPublisher>,
    clock: Arc<dyn Clock>,
}

/// How long a connection counts as live without a heartbeat.
pub const CONNECTION_TTL: chrono::Duration = chrono::Duration::seconds(60);

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
        tracker: Arc<dyn ConnectionTracker>,
        events: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { presence, workspaces, tracker, events, clock }
    }

    async fn announce(&self, user: UserId, workspace: WorkspaceId, status: PresenceStatus) -> DomainResult<Presence> {
        let presence = Presence { user_id: user, workspace_id: workspace, status, last_seen: self.clock.now() };
        self.presence.upsert_presence(&presence).await?;
        self.events.publish(DomainEvent::PresenceChanged { presence: presence.clone() }).await;
        Ok(presence)
    }

    /// A connection of `key.user` joined `key.workspace`: counts it, and when it is the user's
    /// first live connection anywhere, marks them `online` — unless they chose `away` or
    /// `busy`, which stays. Returns whether the user just came online.
    ///
    /// # Errors
    /// `NotFound` unless the user is a member of the workspace; `Internal` when the tracker
    /// or the store fails.
    pub async fn connected(&self, key: ConnectionKey) -> DomainResult<bool> {
        self.workspaces.member_role(key.workspace, key.user).await?.ok_or(DomainError::NotFound)?;
        let now = self.clock.now();
        let first = self.tracker.connected(key, now, now + CONNECTION_TTL).await?;
        if first {
            let chosen = self.presence.find_presence(key.user, key.workspace).await?.map(|p| p.status);
            let status = match chosen {
                Some(s @ (PresenceStatus::Away | PresenceStatus::Busy)) => s,
                _ => PresenceStatus::Online,
            };
            self.announce(key.user, key.workspace, status).await?;
        }
        Ok(first)
    }

    /// Keeps a live connection counted for another [`CONNECTION_TTL`].
    ///
    /// # Errors
    /// `Internal` when the tracker fails.
    pub async fn heartbeat(&self, key: ConnectionKey) -> DomainResult<()> {
        let now = self.clock.now();
        self.tracker.connected(key, now, now + CONNECTION_TTL).await?;
        Ok(())
    }

    /// A connection closed: when it was the user's last, they are `offline` with `lastSeen`
    /// now, stored and announced. Returns whether the user went offline.
    ///
    /// # Errors
    /// `Internal` when the tracker or the store fails.
    pub async fn disconnected(&self, key: ConnectionKey) -> DomainResult<bool> {
        let last = self.tracker.disconnected(key, self.clock.now()).await?;
        if last {
            self.announce(key.user, key.workspace, PresenceStatus::Offline).await?;
        }
        Ok(last)
    }

    /// Sets the caller's status in a workspace and tells its members.
    ///
    /// # Errors
    /// `NotFound` unless the caller is a member of the workspace.
    pub async fn set(&self, actor: UserId, workspace: WorkspaceId, status: PresenceStatus) -> DomainResult<Presence> {
        self.workspaces.member_role(workspace, actor).await?.ok_or(DomainError::NotFound)?;
        self.announce(actor, workspace, status).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{Scene, assert_invalid, minutes_ago, now};

    #[test]
    fn a_status_parses_in_any_case() {
        assert_eq!(PresenceStatus::parse("Online").unwrap(), PresenceStatus::Online);
        assert_eq!(PresenceStatus::parse("BUSY").unwrap(), PresenceStatus::Busy);
        for s in [PresenceStatus::Online, PresenceStatus::Away, PresenceStatus::Busy, PresenceStatus::Offline] {
            assert_eq!(PresenceStatus::parse(s.as_str()).unwrap(), s);
        }
        assert_invalid(PresenceStatus::parse("invisible"), "status");
    }

    #[tokio::test]
    async fn setting_presence_requires_workspace_membership() {
        let mut scene = Scene::new();
        scene.mocks.presence.expect_upsert_presence().never();
        let (outsider, ws) = (scene.outsider.id, scene.workspace.id);
        let h = scene.build();
        let result = h.chat.presence.set(outsider, ws, PresenceStatus::Online).await;
        assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
        assert!(h.events().is_empty());
    }

    #[tokio::test]
    async fn setting_presence_stores_it_and_tells_the_workspace() {
        let mut scene = Scene::new();
        let (alice, ws) = (scene.alice.id, scene.workspace.id);
        let expected = Presence { user_id: alice, workspace_id: ws, status: PresenceStatus::Away, last_seen: now() };
        let stored = expected.clone();
        scene.mocks.presence.expect_upsert_presence().withf(move |p| *p == stored).times(1).returning(|_| Ok(()));
        let h = scene.build();

        let presence = h.chat.presence.set(alice, ws, PresenceStatus::Away).await.unwrap();

        assert_eq!(presence, expected);
        assert_eq!(h.events(), vec![DomainEvent::PresenceChanged { presence: expected }]);
    }

    #[tokio::test]
    async fn listing_presence_fills_in_offline_for_members_without_a_record() {
        let mut scene = Scene::new();
        let (alice, ws) = (scene.alice.id, scene.workspace.id);
        let online =
            Presence { user_id: alice, workspace_id: ws, status: PresenceStatus::Online, last_seen: minutes_ago(1) };
        // A record of someone who has since left the workspace is not listed.
        let stale = Presence { user_id: scene.outsider.id, ..online.clone() };
        let records = vec![stale, online.clone()];
        scene.mocks.presence.expect_list_presence().withf(move |w| *w == ws).returning(move |_| Ok(records.clone()));
        let h = scene.build();

        let listed = h.chat.presence.list(alice, ws).await.unwrap();

        assert_eq!(listed.len(), 6, "one per member: {listed:?}");
        assert!(listed.contains(&online));
        for p in listed.iter().filter(|p| p.user_id != alice) {
            assert_eq!(p.status, PresenceStatus::Offline);
            assert_eq!(p.last_seen, minutes_ago(45), "last seen when they joined");
            assert_eq!(p.workspace_id, ws);
        }
    }

    #[tokio::test]
    async fn listing_presence_requires_workspace_membership() {
        let mut scene = Scene::new();
        scene.mocks.presence.expect_list_presence().never();
        let (outsider, ws) = (scene.outsider.id, scene.workspace.id);
        let result = scene.build().chat.presence.list(outsider, ws).await;
        assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
    }
    fn key(user: UserId, workspace: WorkspaceId) -> ConnectionKey {
        ConnectionKey { user, workspace, connection: uuid::Uuid::from_u128(7) }
    }

    #[tokio::test]
    async fn a_first_connection_brings_a_user_online_and_a_later_one_does_not() {
        let mut scene = Scene::new();
        let (alice, ws) = (scene.alice.id, scene.workspace.id);
        let mut answers = vec![false, true];
        scene.mocks.tracker.expect_connected().times(2).returning(move |_, _, _| Ok(answers.pop().unwrap()));
        scene.mocks.presence.expect_find_presence().times(1).returning(|_, _| Ok(None));
        scene.mocks.presence.expect_upsert_presence().times(1).returning(|_| Ok(()));
        let h = scene.build();

        assert!(h.chat.presence.connected(key(alice, ws)).await.unwrap());
        assert!(!h.chat.presence.connected(key(alice, ws)).await.unwrap());

        let online = Presence { user_id: alice, workspace_id: ws, status: PresenceStatus::Online, last_seen: now() };
        assert_eq!(h.events(), vec![DomainEvent::PresenceChanged { presence: online }]);
    }

    #[tokio::test]
    async fn a_chosen_busy_status_survives_reconnecting() {
        let mut scene = Scene::new();
        let (alice, ws) = (scene.alice.id, scene.workspace.id);
        scene.mocks.tracker.expect_connected().returning(|_, _, _| Ok(true));
        let busy =
            Presence { user_id: alice, workspace_id: ws, status: PresenceStatus::Busy, last_seen: minutes_ago(9) };
        scene.mocks.presence.expect_find_presence().returning(move |_, _| Ok(Some(busy.clone())));
        scene.mocks.presence.expect_upsert_presence().withf(|p| p.status == PresenceStatus::Busy).returning(|_| Ok(()));
        let h = scene.build();
        h.chat.presence.connected(key(alice, ws)).await.unwrap();
        assert!(
            matches!(&h.events()[..], [DomainEvent::PresenceChanged { presence }] if presence.status == PresenceStatus::Busy)
        );
    }

    #[tokio::test]
    async fn the_last_connection_closing_stores_offline_with_last_seen() {
        let mut scene = Scene::new();
        let (alice, ws) = (scene.alice.id, scene.workspace.id);
        let mut answers = vec![true, false];
        scene.mocks.tracker.expect_disconnected().times(2).returning(move |_, _| Ok(answers.pop().unwrap()));
        let offline = Presence { user_id: alice, workspace_id: ws, status: PresenceStatus::Offline, last_seen: now() };
        let stored = offline.clone();
        scene.mocks.presence.expect_upsert_presence().withf(move |p| *p == stored).times(1).returning(|_| Ok(()));
        let h = scene.build();

        assert!(!h.chat.presence.disconnected(key(alice, ws)).await.unwrap(), "another connection is open");
        assert!(h.chat.presence.disconnected(key(alice, ws)).await.unwrap());
        assert_eq!(h.events(), vec![DomainEvent::PresenceChanged { presence: offline }]);
    }

    #[tokio::test]
    async fn connecting_to_a_foreign_workspace_counts_nothing() {
        let mut scene = Scene::new();
        scene.mocks.tracker.expect_connected().never();
        let (outsider, ws) = (scene.outsider.id, scene.workspace.id);
        let result = scene.build().chat.presence.connected(key(outsider, ws)).await;
        assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
    }
}
