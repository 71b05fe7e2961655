//! Domain events become *deliveries*: a route (who may receive it) and the push frame,
//! serialised exactly once. The same bytes go to every local socket, and — framed with their
//! route — to the other nodes through the cluster bus.
//!
//! A frame is a [`Utf8Bytes`]: the text payload tungstenite writes, shared by reference count,
//! so that no recipient copies or re-validates it before its socket writes it.

use chat_domain::event::{ConversationUpdate, DomainEvent};
use chat_protocol::ws::{
    ConversationNew, ConversationUpdated, MessageChanged, MessageDeleted, MessageNew, MessageRead, PresenceUpdate,
    ServerFrame, UserInConversation, server,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use uuid::Uuid;

use crate::convert;

/// Who receives a push.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "camelCase")]
pub(crate) enum Route {
    /// Every socket subscribed to the conversation — its members' sockets that joined the
    /// workspace, and sockets following it — except `except`'s. With `seq`, the push is a
    /// `message:new` and is delivered in seq order. With `left`, that user's sockets stop
    /// being subscribed once it is delivered.
    #[serde(rename_all = "camelCase")]
    Conversation {
        workspace: Uuid,
        conversation: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        except: Option<Uuid>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        left: Option<Uuid>,
    },
    /// The sockets of `users` that joined the workspace; they become subscribers of
    /// `conversation` first (`conversation:new`).
    #[serde(rename_all = "camelCase")]
    Newcomers { workspace: Uuid, conversation: Uuid, users: Vec<Uuid> },
    /// Every socket that joined the workspace (`presence_update`).
    Workspace { workspace: Uuid },
}

impl Route {
    /// The workspace the push belongs to (the bus shards by it).
    pub(crate) fn workspace(&self) -> Uuid {
        match self {
            Self::Conversation { workspace, .. }
            | Self::Newcomers { workspace, .. }
            | Self::Workspace { workspace } => *workspace,
        }
    }
}

/// A routed, serialised push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Delivery {
    pub(crate) route: Route,
    pub(crate) frame: Utf8Bytes,
}

/// Serialises a push frame once (the `String` becomes the frame's buffer: no copy).
pub(crate) fn frame(event: &str, data: Value, reference: Option<Value>) -> Utf8Bytes {
    let frame = ServerFrame { event: event.to_owned(), data, reference };
    // Serialising a tree of strings, numbers and maps cannot fail.
    Utf8Bytes::from(serde_json::to_string(&frame).unwrap_or_default())
}

fn to_value<T: Serialize>(data: &T) -> Value {
    serde_json::to_value(data).unwrap_or(Value::Null)
}

fn patch_updates(update: &ConversationUpdate) -> Map<String, Value> {
    let mut updates = Map::new();
    match update {
        ConversationUpdate::Attributes(patch) => {
            if let Some(name) = &patch.name {
                updates.insert("name".into(), json!(name));
            }
            if let Some(description) = &patch.description {
                updates.insert("description".into(), json!(description));
            }
            if let Some(icon) = &patch.icon {
                updates.insert("icon".into(), json!(icon));
            }
            if let Some(max) = patch.max_participants {
                updates.insert("maxParticipants".into(), json!(max));
            }
        }
        ConversationUpdate::Archived(at) => {
            updates.insert("archivedAt".into(), json!(at));
        }
        ConversationUpdate::MemberRole { user_id, role } => {
            updates.insert("memberRole".into(), json!({"userId": user_id.as_uuid(), "role": role.as_str()}));
        }
    }
    updates
}

/// The delivery of a domain event.
pub(crate) fn delivery(event: &DomainEvent) -> Delivery {
    let in_conversation = |workspace: Uuid, conversation: Uuid| Route::Conversation {
        workspace,
        conversation,
        seq: None,
        except: None,
        left: None,
    };
    let (route, name, data) = match event {
        DomainEvent::MessageCreated { workspace_id, message } => (
            Route::Conversation {
                workspace: workspace_id.as_uuid(),
                conversation: message.conversation_id.as_uuid(),
                seq: Some(message.seq),
                except: None,
                left: None,
            },
            server::MESSAGE_NEW,
            to_value(&MessageNew {
                message: convert::message(message),
                conversation_id: message.conversation_id.as_uuid(),
            }),
        ),
        DomainEvent::MessageEdited { workspace_id, message } => (
            in_conversation(workspace_id.as_uuid(), message.conversation_id.as_uuid()),
            server::MESSAGE_EDIT,
            to_value(&MessageChanged { message: convert::message(message) }),
        ),
        DomainEvent::ReactionToggled { workspace_id, message } => (
            in_conversation(workspace_id.as_uuid(), message.conversation_id.as_uuid()),
            server::MESSAGE_REACTION,
            to_value(&MessageChanged { message: convert::message(message) }),
        ),
        DomainEvent::MessageDeleted { workspace_id, conversation_id, message_id, .. } => (
            in_conversation(workspace_id.as_uuid(), conversation_id.as_uuid()),
            server::MESSAGE_DELETE,
            to_value(&MessageDeleted { message_id: message_id.as_uuid(), conversation_id: conversation_id.as_uuid() }),
        ),
        DomainEvent::ReadMoved { workspace_id, conversation_id, user_id, message_id, seq, read_at } => (
            in_conversation(workspace_id.as_uuid(), conversation_id.as_uuid()),
            server::MESSAGE_READ,
            to_value(&MessageRead {
                user_id: user_id.as_uuid(),
                conversation_id: conversation_id.as_uuid(),
                message_id: message_id.map(|m| m.as_uuid()),
                seq: *seq,
                read_at: *read_at,
            }),
        ),
        DomainEvent::TypingStarted { workspace_id, conversation_id, user_id }
        | DomainEvent::TypingStopped { workspace_id, conversation_id, user_id } => (
            Route::Conversation {
                workspace: workspace_id.as_uuid(),
                conversation: conversation_id.as_uuid(),
                seq: None,
                except: Some(user_id.as_uuid()),
                left: None,
            },
            if matches!(event, DomainEvent::TypingStarted { .. }) { server::TYPING_START } else { server::TYPING_STOP },
            to_value(&UserInConversation { user_id: user_id.as_uuid(), conversation_id: conversation_id.as_uuid() }),
        ),
        DomainEvent::ConversationCreated { conversation, member_ids } => (
            Route::Newcomers {
                workspace: conversation.workspace_id.as_uuid(),
                conversation: conversation.id.as_uuid(),
                users: member_ids.iter().map(|u| u.as_uuid()).collect(),
            },
            server::CONVERSATION_NEW,
            to_value(&ConversationNew { conversation: convert::conversation(conversation, None) }),
        ),
        DomainEvent::ConversationUpdated { conversation, updates } => (
            in_conversation(conversation.workspace_id.as_uuid(), conversation.id.as_uuid()),
            server::CONVERSATION_UPDATED,
            to_value(&ConversationUpdated {
                conversation_id: conversation.id.as_uuid(),
                updates: patch_updates(updates),
            }),
        ),
        DomainEvent::MemberJoined { workspace_id, conversation_id, user_id } => (
            Route::Conversation {
                workspace: workspace_id.as_uuid(),
                conversation: conversation_id.as_uuid(),
                seq: None,
                except: Some(user_id.as_uuid()),
                left: None,
            },
            server::MEMBER_JOINED,
            to_value(&UserInConversation { user_id: user_id.as_uuid(), conversation_id: conversation_id.as_uuid() }),
        ),
        DomainEvent::MemberLeft { workspace_id, conversation_id, user_id } => (
            Route::Conversation {
                workspace: workspace_id.as_uuid(),
                conversation: conversation_id.as_uuid(),
                seq: None,
                except: None,
                left: Some(user_id.as_uuid()),
            },
            server::MEMBER_LEFT,
            to_value(&UserInConversation { user_id: user_id.as_uuid(), conversation_id: conversation_id.as_uuid() }),
        ),
        DomainEvent::PresenceChanged { presence } => (
            Route::Workspace { workspace: presence.workspace_id.as_uuid() },
            server::PRESENCE_UPDATE,
            to_value(&PresenceUpdate {
                user_id: presence.user_id.as_uuid(),
                status: presence.status.as_str().to_owned(),
                workspace_id: presence.workspace_id.as_uuid(),
                last_seen: presence.last_seen,
            }),
        ),
    };
    Delivery { route, frame: frame(name, data, None) }
}

/// A delivery as it crosses the bus: the route as one JSON line, then the frame.
pub(crate) fn encode(delivery: &Delivery) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(&delivery.route).unwrap_or_default();
    bytes.push(b'\n');
    bytes.extend_from_slice(delivery.frame.as_bytes());
    bytes
}

/// The inverse of [`encode`]; `None` for bytes that are not a delivery. The frame keeps the
/// received buffer (no copy) and is validated as UTF-8 once, here: every local recipient then
/// shares it.
pub(crate) fn decode(bytes: Vec<u8>) -> Option<Delivery> {
    let split = bytes.iter().position(|&b| b == b'\n')?;
    let route = serde_json::from_slice(&bytes[..split]).ok()?;
    let frame = Utf8Bytes::try_from(bytes::Bytes::from(bytes).slice(split + 1..)).ok()?;
    Some(Delivery { route, frame })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_survives_the_bus_encoding() {
        let delivery = Delivery {
            route: Route::Conversation {
                workspace: Uuid::from_u128(1),
                conversation: Uuid::from_u128(2),
                seq: Some(7),
                except: None,
                left: Some(Uuid::from_u128(3)),
            },
            frame: frame("message:new", json!({"x": "line\nbreak"}), None),
        };
        assert_eq!(decode(encode(&delivery)), Some(delivery));
        assert_eq!(decode(b"no newline".to_vec()), None);
        assert_eq!(decode(b"{\"to\":\"nowhere\"}\n{}".to_vec()), None);
        assert_eq!(
            decode(b"{\"to\":\"workspace\",\"workspace\":\"00000000-0000-0000-0000-000000000001\"}\n\xff".to_vec()),
            None
        );
    }
}
