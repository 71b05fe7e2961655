//! [`Push`]: a server → client event of SPEC.md §3, decoded with `chat_protocol::ws`.

use chat_protocol::ws::{
    ConversationNew, ConversationUpdated, ErrorData, MessageChanged, MessageDeleted, MessageNew, MessageRead,
    PresenceUpdate, UserInConversation, server,
};
use serde::de::DeserializeOwned;

/// A push: an event the server sends unasked (not an ack).
///
/// An event this client does not know, or a known event whose `data` does not decode (a
/// newer server, say), arrives as [`Push::Unknown`] rather than being lost.
#[derive(Clone, Debug, PartialEq)]
pub enum Push {
    /// `message:new`.
    MessageNew(Box<MessageNew>),
    /// `message:edit`.
    MessageEdit(Box<MessageChanged>),
    /// `message:delete`.
    MessageDelete(MessageDeleted),
    /// `message:reaction`.
    MessageReaction(Box<MessageChanged>),
    /// `message:read`.
    MessageRead(MessageRead),
    /// `typing:start`.
    TypingStart(UserInConversation),
    /// `typing:stop`.
    TypingStop(UserInConversation),
    /// `conversation:new`.
    ConversationNew(Box<ConversationNew>),
    /// `conversation:updated`.
    ConversationUpdated(ConversationUpdated),
    /// `member:joined`.
    MemberJoined(UserInConversation),
    /// `member:left`.
    MemberLeft(UserInConversation),
    /// `presence_update`.
    PresenceUpdate(PresenceUpdate),
    /// An `error` frame that answers no request (a dropped frame, a limit hit …).
    Error(ErrorData),
    /// Anything else, as received.
    Unknown {
        /// The event name.
        event: String,
        /// Its payload.
        data: serde_json::Value,
    },
}

impl Push {
    /// Decodes a server frame's `event` and `data`.
    #[must_use]
    pub fn decode(event: String, data: serde_json::Value) -> Self {
        fn typed<T: DeserializeOwned>(event: String, data: serde_json::Value, wrap: impl FnOnce(T) -> Push) -> Push {
            match serde_json::from_value::<T>(data.clone()) {
                Ok(decoded) => wrap(decoded),
                Err(error) => {
                    tracing::warn!(%event, %error, "push data does not match chat-protocol; passed on as Unknown");
                    Push::Unknown { event, data }
                }
            }
        }
        match event.as_str() {
            server::MESSAGE_NEW => typed(event, data, |d| Self::MessageNew(Box::new(d))),
            server::MESSAGE_EDIT => typed(event, data, |d| Self::MessageEdit(Box::new(d))),
            server::MESSAGE_DELETE => typed(event, data, Self::MessageDelete),
            server::MESSAGE_REACTION => typed(event, data, |d| Self::MessageReaction(Box::new(d))),
            server::MESSAGE_READ => typed(event, data, Self::MessageRead),
            server::TYPING_START => typed(event, data, Self::TypingStart),
            server::TYPING_STOP => typed(event, data, Self::TypingStop),
            server::CONVERSATION_NEW => typed(event, data, |d| Self::ConversationNew(Box::new(d))),
            server::CONVERSATION_UPDATED => typed(event, data, Self::ConversationUpdated),
            server::MEMBER_JOINED => typed(event, data, Self::MemberJoined),
            server::MEMBER_LEFT => typed(event, data, Self::MemberLeft),
            server::PRESENCE_UPDATE => typed(event, data, Self::PresenceUpdate),
            server::ERROR => typed(event, data, Self::Error),
            _ => Self::Unknown { event, data },
        }
    }

    /// The event name, as on the wire.
    #[must_use]
    pub fn event(&self) -> &str {
        match self {
            Self::MessageNew(_) => server::MESSAGE_NEW,
            Self::MessageEdit(_) => server::MESSAGE_EDIT,
            Self::MessageDelete(_) => server::MESSAGE_DELETE,
            Self::MessageReaction(_) => server::MESSAGE_REACTION,
            Self::MessageRead(_) => server::MESSAGE_READ,
            Self::TypingStart(_) => server::TYPING_START,
            Self::TypingStop(_) => server::TYPING_STOP,
            Self::ConversationNew(_) => server::CONVERSATION_NEW,
            Self::ConversationUpdated(_) => server::CONVERSATION_UPDATED,
            Self::MemberJoined(_) => server::MEMBER_JOINED,
            Self::MemberLeft(_) => server::MEMBER_LEFT,
            Self::PresenceUpdate(_) => server::PRESENCE_UPDATE,
            Self::Error(_) => server::ERROR,
            Self::Unknown { event, .. } => event,
        }
    }

    /// The conversation this push is about, when it is about one.
    #[must_use]
    pub fn conversation_id(&self) -> Option<uuid::Uuid> {
        match self {
            Self::MessageNew(d) => Some(d.conversation_id),
            Self::MessageEdit(d) | Self::MessageReaction(d) => Some(d.message.conversation_id),
            Self::MessageDelete(d) => Some(d.conversation_id),
            Self::MessageRead(d) => Some(d.conversation_id),
            Self::TypingStart(d) | Self::TypingStop(d) | Self::MemberJoined(d) | Self::MemberLeft(d) => {
                Some(d.conversation_id)
            }
            Self::ConversationNew(d) => Some(d.conversation.id),
            Self::ConversationUpdated(d) => Some(d.conversation_id),
            Self::PresenceUpdate(_) | Self::Error(_) | Self::Unknown { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    fn message_json(conversation: Uuid, seq: i64) -> serde_json::Value {
        json!({
            "id": Uuid::new_v4(), "conversationId": conversation, "seq": seq, "senderId": Uuid::new_v4(),
            "clientMsgId": null, "type": "text", "content": "hi", "attachments": [], "metadata": {},
            "replyToId": null, "replyCount": 0, "reactions": {}, "isEncrypted": false,
            "editedAt": null, "deletedAt": null, "createdAt": "2025-01-01T00:00:00Z"
        })
    }

    #[test]
    fn message_new_decodes_with_its_message() {
        let conversation = Uuid::new_v4();
        let push = Push::decode(
            "message:new".to_owned(),
            json!({"message": message_json(conversation, 7), "conversationId": conversation}),
        );
        let Push::MessageNew(new) = &push else { panic!("{push:?}") };
        assert_eq!((new.conversation_id, new.message.seq, new.message.content.as_str()), (conversation, 7, "hi"));
        assert_eq!(push.event(), "message:new");
        assert_eq!(push.conversation_id(), Some(conversation));
    }

    #[test]
    fn every_named_push_decodes_to_its_variant() {
        let c = Uuid::new_v4();
        let u = Uuid::new_v4();
        let cases = [
            ("message:edit", json!({"message": message_json(c, 1)})),
            ("message:delete", json!({"messageId": u, "conversationId": c})),
            ("message:reaction", json!({"message": message_json(c, 1)})),
            ("message:read", json!({"userId": u, "conversationId": c, "seq": 3, "readAt": "2025-01-01T00:00:00Z"})),
            ("typing:start", json!({"userId": u, "conversationId": c})),
            ("typing:stop", json!({"userId": u, "conversationId": c})),
            ("conversation:updated", json!({"conversationId": c, "updates": {"name": "x"}})),
            ("member:joined", json!({"userId": u, "conversationId": c})),
            ("member:left", json!({"userId": u, "conversationId": c})),
            (
                "presence_update",
                json!({"userId": u, "status": "away", "workspaceId": c, "lastSeen": "2025-01-01T00:00:00Z"}),
            ),
            ("error", json!({"code": "rate_limited", "message": "slow down"})),
        ];
        for (event, data) in cases {
            let push = Push::decode(event.to_owned(), data);
            assert!(!matches!(push, Push::Unknown { .. }), "{event} did not decode: {push:?}");
            assert_eq!(push.event(), event);
        }
    }

    #[test]
    fn an_unknown_event_is_kept_as_unknown() {
        let push = Push::decode("reaction:party".to_owned(), json!({"x": 1}));
        assert_eq!(push, Push::Unknown { event: "reaction:party".to_owned(), data: json!({"x": 1}) });
    }

    #[test]
    fn a_known_event_with_foreign_data_is_kept_as_unknown() {
        let push = Push::decode("typing:start".to_owned(), json!({"who": "?"}));
        assert!(matches!(&push, Push::Unknown { event, .. } if event == "typing:start"), "{push:?}");
    }
}
