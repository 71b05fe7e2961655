//! Typing indicators: never stored, throttled per user and conversation, and expiring after
//! [`TYPING_TTL`] without a renewal (`typing:stop` is published on expiry too).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use crate::access::Access;
use crate::clock::Clock;
use crate::error::DomainResult;
use crate::event::{DomainEvent, EventPublisher};
use crate::ids::{ConversationId, UserId, WorkspaceId};

/// A typing indicator lapses this long after its last renewal.
pub const TYPING_TTL: Duration = Duration::seconds(6);
/// Renewals within this window extend the indicator without another `typing:start`.
pub const TYPING_THROTTLE: Duration = Duration::seconds(3);

#[derive(Clone, Copy, Debug)]
struct Typing {
    workspace: WorkspaceId,
    expires_at: DateTime<Utc>,
    announced_at: DateTime<Utc>,
}

/// Who is typing where.
#[derive(Clone)]
pub struct TypingService {
    access: Access,
    events: Arc<dyn EventPublisher>,
    clock: Arc<dyn Clock>,
    typing: Arc<Mutex<HashMap<(UserId, ConversationId), Typing>>>,
}

impl std::fmt::Debug for TypingService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypingService").finish_non_exhaustive()
    }
}

impl TypingService {
    /// Wires the service.
    #[must_use]
    pub fn new(access: Access, events: Arc<dyn EventPublisher>, clock: Arc<dyn Clock>) -> Self {
        Self { access, events, clock, typing: Arc::new(Mutex::new(HashMap::new())) }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<(UserId, ConversationId), Typing>> {
        // A poisoned table only means a panic elsewhere mid-update; its data is still usable.
        self.typing.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The caller is typing: announces `typing:start` unless announced within the throttle
    /// window, and (re)arms the expiry.
    ///
    /// # Errors
    /// `NotFound`, `Forbidden` when the caller may not post there, `Conflict` when archived.
    pub async fn start(&self, actor: UserId, conversation: ConversationId) -> DomainResult<()> {
        let view = self.access.view(actor, conversation).await?;
        view.ensure_may_post()?;
        view.ensure_writable()?;
        let now = self.clock.now();
        let workspace = view.conversation.workspace_id;
        let announce = {
            let mut table = self.table();
            let entry = table.entry((actor, conversation)).or_insert(Typing {
                workspace,
                expires_at: now,
                announced_at: now - TYPING_THROTTLE - TYPING_THROTTLE,
            });
            entry.expires_at = now + TYPING_TTL;
            let announce = now - entry.announced_at >= TYPING_THROTTLE;
            if announce {
                entry.announced_at = now;
            }
            announce
        };
        if announce {
            self.events
                .publish(DomainEvent::TypingStarted {
                    workspace_id: workspace,
                    conversation_id: conversation,
                    user_id: actor,
                })
                .await;
        }
        Ok(())
    }

    /// The caller stopped typing (or sent their message): announces `typing:stop` if they
    /// were typing there.
    pub async fn stop(&self, actor: UserId, conversation: ConversationId) {
        let removed = self.table().remove(&(actor, conversation));
        if let Some(typing) = removed {
            self.events
                .publish(DomainEvent::TypingStopped {
                    workspace_id: typing.workspace,
                    conversation_id: conversation,
                    user_id: actor,
                })
                .await;
        }
    }

    /// Ends every indicator not renewed within [`TYPING_TTL`], announcing `typing:stop` for
    /// each. The delivery layer calls this on a short tick. Returns how many lapsed.
    pub async fn expire(&self) -> usize {
        let now = self.clock.now();
        let lapsed: Vec<((UserId, ConversationId), Typing)> = {
            let mut table = self.table();
            let due: Vec<_> = table.iter().filter(|(_, t)| t.expires_at <= now).map(|(k, t)| (*k, *t)).collect();
            for (key, _) in &due {
                table.remove(key);
            }
            due
        };
        for ((user, conversation), typing) in &lapsed {
            self.events
                .publish(DomainEvent::TypingStopped {
                    workspace_id: typing.workspace,
                    conversation_id: *conversation,
                    user_id: *user,
                })
                .await;
        }
        lapsed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::ConversationRole::{Admin, Member as Plain};
    use crate::conversation::ConversationType;
    use crate::error::DomainError;
    use crate::tests::{ManualClock, Scene};

    fn started(c: ConversationId, u: UserId, w: WorkspaceId) -> DomainEvent {
        DomainEvent::TypingStarted { workspace_id: w, conversation_id: c, user_id: u }
    }

    fn stopped(c: ConversationId, u: UserId, w: WorkspaceId) -> DomainEvent {
        DomainEvent::TypingStopped { workspace_id: w, conversation_id: c, user_id: u }
    }

    #[tokio::test]
    async fn typing_is_announced_once_per_throttle_window_and_expires_with_a_stop() {
        let mut scene = Scene::new();
        let clock = ManualClock::new();
        scene.mocks.clock = clock.clone();
        let (alice, bob, ws) = (scene.alice.clone(), scene.bob.clone(), scene.workspace.id);
        let c = scene.conversation(ConversationType::Group, &[(&alice, Admin), (&bob, Plain)]);
        let h = scene.build();
        let typing = &h.chat.typing;

        typing.start(alice.id, c.id).await.unwrap();
        clock.advance(Duration::seconds(1));
        typing.start(alice.id, c.id).await.unwrap();
        assert_eq!(h.events(), vec![started(c.id, alice.id, ws)], "a renewal within 3 s is not announced");

        clock.advance(Duration::seconds(5));
        assert_eq!(typing.expire().await, 0, "renewed 5 s ago: still typing");
        clock.advance(Duration::seconds(1));
        assert_eq!(typing.expire().await, 1);
        assert_eq!(h.events(), vec![stopped(c.id, alice.id, ws)], "events() drains what it returns");
        assert_eq!(typing.expire().await, 0, "expired once");
    }

    #[tokio::test]
    async fn stopping_announces_only_when_typing() {
        let mut scene = Scene::new();
        let (alice, ws) = (scene.alice.clone(), scene.workspace.id);
        let c = scene.conversation(ConversationType::Group, &[(&alice, Admin)]);
        let h = scene.build();
        h.chat.typing.stop(alice.id, c.id).await;
        assert!(h.events().is_empty());
        h.chat.typing.start(alice.id, c.id).await.unwrap();
        h.chat.typing.stop(alice.id, c.id).await;
        assert_eq!(h.events(), vec![started(c.id, alice.id, ws), stopped(c.id, alice.id, ws)]);
        assert_eq!(h.chat.typing.expire().await, 0, "a stopped indicator does not expire again");
    }

    #[tokio::test]
    async fn only_those_who_may_post_can_type() {
        let mut scene = Scene::new();
        let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
        let group = scene.conversation(ConversationType::Group, &[(&alice, Admin)]);
        let channel = scene.conversation(ConversationType::Channel, &[(&alice, Admin)]);
        let h = scene.build();
        let hidden = h.chat.typing.start(bob.id, group.id).await;
        assert!(matches!(hidden, Err(DomainError::NotFound)), "{hidden:?}");
        let not_joined = h.chat.typing.start(bob.id, channel.id).await;
        assert!(matches!(not_joined, Err(DomainError::Forbidden(_))), "{not_joined:?}");
        assert!(h.events().is_empty());
    }
}
