//! The in-process [`EventPublisher`]: committed domain events go onto a bounded broadcast
//! channel that the real-time gateway (and tests) subscribe to. A subscriber that lags loses
//! the oldest events rather than growing memory; clients recover them with `resume`.

use std::sync::Arc;

use async_trait::async_trait;
use chat_domain::event::{DomainEvent, EventPublisher};
use tokio::sync::broadcast;

/// Fan-out within one process.
#[derive(Debug, Clone)]
pub struct InProcessPublisher {
    sender: broadcast::Sender<Arc<DomainEvent>>,
}

impl InProcessPublisher {
    /// A publisher whose subscribers may fall `capacity` events behind.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self { sender }
    }

    /// A new subscription, receiving every event published from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<DomainEvent>> {
        self.sender.subscribe()
    }
}

#[async_trait]
impl EventPublisher for InProcessPublisher {
    async fn publish(&self, event: DomainEvent) {
        // No subscriber is not an error: nobody is listening live.
        let _ = self.sender.send(Arc::new(event));
    }
}
