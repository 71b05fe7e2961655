//! Real-time delivery: domain events → one serialised push → local sockets (the [`hub`]) and,
//! with a cluster bus, the other nodes.
//!
//! A service publishes a committed [`DomainEvent`]; [`Realtime::publish`] turns it into a
//! routed delivery once ([`wire`]), hands it to this node's hub, and sends the same bytes to
//! the bus. Deliveries arriving from the bus go to the hub the same way.

pub mod hub;
pub mod local;
pub(crate) mod wire;

use std::sync::Arc;

use async_trait::async_trait;
use chat_domain::event::{DomainEvent, EventPublisher};
use chat_domain::ids::WorkspaceId;
use chat_domain::realtime::ClusterBus;
use tokio::sync::mpsc;

use self::hub::Hub;

/// The [`EventPublisher`] of the server: local fan-out plus the optional cluster bus.
#[derive(Clone)]
pub struct Realtime {
    hub: Arc<Hub>,
    bus: Option<Arc<dyn ClusterBus>>,
}

impl std::fmt::Debug for Realtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Realtime").field("clustered", &self.bus.is_some()).finish_non_exhaustive()
    }
}

impl Realtime {
    /// Single-node delivery.
    #[must_use]
    pub fn local() -> Self {
        Self { hub: Hub::new(), bus: None }
    }

    /// Delivery across nodes: `bus` carries pushes out, and what it receives (on the other end
    /// of `incoming`) is delivered here. Must be called inside a tokio runtime.
    #[must_use]
    pub fn clustered(bus: Arc<dyn ClusterBus>, mut incoming: mpsc::Receiver<(WorkspaceId, Vec<u8>)>) -> Self {
        let hub = Hub::new();
        let local = Arc::clone(&hub);
        tokio::spawn(async move {
            while let Some((_, bytes)) = incoming.recv().await {
                match wire::decode(bytes) {
                    Some(delivery) => local.deliver(delivery),
                    None => tracing::warn!("undecodable delivery from the cluster bus dropped"),
                }
            }
        });
        Self { hub, bus: Some(bus) }
    }

    /// This node's hub.
    #[must_use]
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Starts receiving a workspace's pushes from other nodes.
    pub(crate) async fn subscribe(&self, workspace: uuid::Uuid) {
        if let Some(bus) = &self.bus
            && let Err(e) = bus.subscribe(WorkspaceId::from_uuid(workspace)).await
        {
            tracing::warn!(error = %e, %workspace, "cluster bus subscribe failed");
        }
    }

    /// Stops receiving a workspace's pushes.
    pub(crate) async fn unsubscribe(&self, workspace: uuid::Uuid) {
        if let Some(bus) = &self.bus
            && let Err(e) = bus.unsubscribe(WorkspaceId::from_uuid(workspace)).await
        {
            tracing::warn!(error = %e, %workspace, "cluster bus unsubscribe failed");
        }
    }

    /// Closes every local socket with 1001 (shutdown).
    pub fn close_all(&self) {
        self.hub.kill_all(hub::CLOSE_GOING_AWAY);
    }
}

#[async_trait]
impl EventPublisher for Realtime {
    async fn publish(&self, event: DomainEvent) {
        let delivery = wire::delivery(&event);
        let workspace = WorkspaceId::from_uuid(delivery.route.workspace());
        let remote = self.bus.as_ref().map(|bus| (bus, wire::encode(&delivery)));
        // This node's sockets first: they should not wait for a network round trip.
        self.hub.deliver(delivery);
        if let Some((bus, bytes)) = remote
            && let Err(e) = bus.publish(workspace, bytes).await
        {
            tracing::warn!(error = %e, "cluster bus publish failed; delivered on this node only");
        }
    }
}
