//! Row structs (what diesel reads and writes) and their conversions to and from domain types.
//! Nothing here leaves the crate: the ports speak domain types only.
//!
//! A row that fails an invariant on the way out (an id that is not 16 bytes, an unknown role)
//! is reported as a diesel deserialisation error, which the store wraps in a `RepoError`.

use std::collections::HashMap;

use chat_domain::cipher::{Sealed, WrappedKey};
use chat_domain::conversation::{Conversation, ConversationRole, ConversationType, Member};
use chat_domain::ids::{ConversationId, MessageId, UserId, WorkspaceId};
use chat_domain::message::{MessageType, Reaction, StoredMessage};
use chat_domain::presence::{Presence, PresenceStatus};
use chat_domain::user::{DisplayName, Email, User};
use chat_domain::workspace::{Name, Workspace, WorkspaceMember, WorkspaceRole};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sqlite::Sqlite;
use uuid::Uuid;

use crate::schema::{
    conversation_members, conversations, message_reactions, messages, presence, refresh_tokens, users, workspace_keys,
    workspaces,
};

/// A corrupt value read back from the database.
pub(crate) fn corrupt(what: &'static str) -> DieselError {
    DieselError::DeserializationError(what.into())
}

/// Microseconds since the epoch: how every instant is stored.
pub(crate) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// An instant read back from storage.
pub(crate) fn instant(micros: i64) -> QueryResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| corrupt("timestamp out of range"))
}

fn opt_instant(micros: Option<i64>) -> QueryResult<Option<DateTime<Utc>>> {
    micros.map(instant).transpose()
}

/// The stored form of an id.
pub(crate) fn key(id: Uuid) -> Vec<u8> {
    id.as_bytes().to_vec()
}

/// An id read back from storage.
pub(crate) fn uuid(bytes: &[u8]) -> QueryResult<Uuid> {
    Uuid::from_slice(bytes).map_err(|_| corrupt("id is not 16 bytes"))
}

fn int_u32(value: i64) -> QueryResult<u32> {
    u32::try_from(value).map_err(|_| corrupt("max_participants out of range"))
}

fn workspace_role(raw: &str) -> QueryResult<WorkspaceRole> {
    WorkspaceRole::parse(raw).map_err(|_| corrupt("unknown workspace role"))
}

fn conversation_role(raw: &str) -> QueryResult<ConversationRole> {
    ConversationRole::parse(raw).map_err(|_| corrupt("unknown conversation role"))
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = users, check_for_backend(Sqlite))]
pub(crate) struct UserRow {
    pub(crate) id: Vec<u8>,
    pub(crate) email: String,
    pub(crate) display_name: String,
    pub(crate) avatar_url: Option<String>,
    pub(crate) password_hash: String,
    pub(crate) created_at: i64,
}

impl UserRow {
    pub(crate) fn into_user(self) -> QueryResult<User> {
        Ok(User {
            id: UserId::from_uuid(uuid(&self.id)?),
            email: Email::from_trusted(self.email),
            display_name: DisplayName::from_trusted(self.display_name),
            avatar_url: self.avatar_url,
            created_at: instant(self.created_at)?,
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = refresh_tokens, check_for_backend(Sqlite))]
pub(crate) struct NewRefreshTokenRow {
    pub(crate) digest: Vec<u8>,
    pub(crate) family_id: Vec<u8>,
    pub(crate) user_id: Vec<u8>,
    pub(crate) issued_at: i64,
    pub(crate) expires_at: i64,
}

/// What rotation needs to know about a presented refresh token.
#[derive(Queryable, Selectable)]
#[diesel(table_name = refresh_tokens, check_for_backend(Sqlite))]
pub(crate) struct RefreshTokenState {
    pub(crate) family_id: Vec<u8>,
    pub(crate) user_id: Vec<u8>,
    pub(crate) expires_at: i64,
    pub(crate) used_at: Option<i64>,
    pub(crate) revoked_at: Option<i64>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = workspaces, check_for_backend(Sqlite))]
pub(crate) struct WorkspaceRow {
    pub(crate) id: Vec<u8>,
    pub(crate) name: String,
    pub(crate) slug: String,
    pub(crate) created_by: Vec<u8>,
    pub(crate) created_at: i64,
}

impl WorkspaceRow {
    pub(crate) fn from_domain(w: &Workspace) -> Self {
        Self {
            id: key(w.id.as_uuid()),
            name: w.name.as_str().to_owned(),
            slug: w.slug.clone(),
            created_by: key(w.created_by.as_uuid()),
            created_at: micros(w.created_at),
        }
    }

    pub(crate) fn into_workspace(self) -> QueryResult<Workspace> {
        Ok(Workspace {
            id: WorkspaceId::from_uuid(uuid(&self.id)?),
            name: Name::from_trusted(self.name),
            slug: self.slug,
            created_by: UserId::from_uuid(uuid(&self.created_by)?),
            created_at: instant(self.created_at)?,
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = crate::schema::workspace_members, check_for_backend(Sqlite))]
pub(crate) struct WorkspaceMemberRow {
    pub(crate) workspace_id: Vec<u8>,
    pub(crate) role: String,
    pub(crate) joined_at: i64,
}

impl WorkspaceMemberRow {
    pub(crate) fn parse_role(raw: &str) -> QueryResult<WorkspaceRole> {
        workspace_role(raw)
    }

    pub(crate) fn into_member(self, user: UserRow) -> QueryResult<WorkspaceMember> {
        Ok(WorkspaceMember {
            workspace_id: WorkspaceId::from_uuid(uuid(&self.workspace_id)?),
            role: workspace_role(&self.role)?,
            joined_at: instant(self.joined_at)?,
            user: user.into_user()?,
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = workspace_keys, check_for_backend(Sqlite))]
pub(crate) struct WorkspaceKeyRow {
    pub(crate) version: i32,
    pub(crate) wrapped: Vec<u8>,
}

impl WorkspaceKeyRow {
    pub(crate) fn into_key(self) -> WrappedKey {
        WrappedKey { version: self.version, wrapped: self.wrapped }
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = conversations, check_for_backend(Sqlite))]
pub(crate) struct ConversationRow {
    pub(crate) id: Vec<u8>,
    pub(crate) workspace_id: Vec<u8>,
    pub(crate) kind: String,
    pub(crate) name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) icon: Option<String>,
    pub(crate) document_id: Option<String>,
    pub(crate) unique_key: Option<String>,
    pub(crate) is_encrypted: bool,
    pub(crate) max_participants: i64,
    pub(crate) created_by: Vec<u8>,
    pub(crate) last_seq: i64,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) archived_at: Option<i64>,
}

impl ConversationRow {
    pub(crate) fn from_domain(c: &Conversation, unique_key: Option<String>) -> Self {
        Self {
            id: key(c.id.as_uuid()),
            workspace_id: key(c.workspace_id.as_uuid()),
            kind: c.kind.as_str().to_owned(),
            name: c.name.clone(),
            description: c.description.clone(),
            icon: c.icon.clone(),
            document_id: c.document_id.clone(),
            unique_key,
            is_encrypted: c.is_encrypted,
            max_participants: i64::from(c.max_participants),
            created_by: key(c.created_by.as_uuid()),
            last_seq: c.last_seq,
            created_at: micros(c.created_at),
            updated_at: micros(c.updated_at),
            archived_at: c.archived_at.map(micros),
        }
    }

    pub(crate) fn into_conversation(self) -> QueryResult<Conversation> {
        Ok(Conversation {
            id: ConversationId::from_uuid(uuid(&self.id)?),
            workspace_id: WorkspaceId::from_uuid(uuid(&self.workspace_id)?),
            kind: ConversationType::parse(&self.kind).map_err(|_| corrupt("unknown conversation kind"))?,
            name: self.name,
            description: self.description,
            icon: self.icon,
            document_id: self.document_id,
            is_encrypted: self.is_encrypted,
            max_participants: int_u32(self.max_participants)?,
            created_by: UserId::from_uuid(uuid(&self.created_by)?),
            last_seq: self.last_seq,
            created_at: instant(self.created_at)?,
            updated_at: instant(self.updated_at)?,
            archived_at: opt_instant(self.archived_at)?,
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = conversation_members, check_for_backend(Sqlite))]
pub(crate) struct MemberRow {
    pub(crate) conversation_id: Vec<u8>,
    pub(crate) user_id: Vec<u8>,
    pub(crate) role: String,
    pub(crate) joined_at: i64,
    pub(crate) last_read_seq: i64,
    pub(crate) last_read_at: Option<i64>,
    pub(crate) is_muted: bool,
}

impl MemberRow {
    pub(crate) fn from_domain(m: &Member) -> Self {
        Self {
            conversation_id: key(m.conversation_id.as_uuid()),
            user_id: key(m.user_id.as_uuid()),
            role: m.role.as_str().to_owned(),
            joined_at: micros(m.joined_at),
            last_read_seq: m.last_read_seq,
            last_read_at: m.last_read_at.map(micros),
            is_muted: m.is_muted,
        }
    }

    pub(crate) fn into_member(self) -> QueryResult<Member> {
        Ok(Member {
            conversation_id: ConversationId::from_uuid(uuid(&self.conversation_id)?),
            user_id: UserId::from_uuid(uuid(&self.user_id)?),
            role: conversation_role(&self.role)?,
            joined_at: instant(self.joined_at)?,
            last_read_seq: self.last_read_seq,
            last_read_at: opt_instant(self.last_read_at)?,
            is_muted: self.is_muted,
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = messages, check_for_backend(Sqlite))]
pub(crate) struct MessageRow {
    pub(crate) id: Vec<u8>,
    pub(crate) conversation_id: Vec<u8>,
    pub(crate) seq: i64,
    pub(crate) sender_id: Vec<u8>,
    pub(crate) client_msg_id: Option<String>,
    pub(crate) kind: String,
    pub(crate) content: Option<Vec<u8>>,
    pub(crate) key_version: Option<i32>,
    pub(crate) reply_to_id: Option<Vec<u8>>,
    pub(crate) reply_count: i64,
    pub(crate) edited_at: Option<i64>,
    pub(crate) deleted_at: Option<i64>,
    pub(crate) created_at: i64,
}

impl MessageRow {
    /// The message, with the reactions found for it in `reactions` (taken out of the map),
    /// without attachments (`messages::with_reactions` adds them).
    pub(crate) fn into_message(self, reactions: &mut Reactions) -> QueryResult<StoredMessage> {
        let content = match (self.content, self.key_version) {
            (Some(bytes), Some(key_version)) => Some(Sealed { key_version, bytes }),
            (None, None) => None,
            _ => return Err(corrupt("content and key_version disagree")),
        };
        let reactions = reactions.take(&self.id);
        Ok(StoredMessage {
            id: MessageId::from_uuid(uuid(&self.id)?),
            conversation_id: ConversationId::from_uuid(uuid(&self.conversation_id)?),
            seq: self.seq,
            sender_id: UserId::from_uuid(uuid(&self.sender_id)?),
            client_msg_id: self.client_msg_id,
            kind: MessageType::parse(&self.kind).map_err(|_| corrupt("unknown message kind"))?,
            content,
            reply_to_id: self.reply_to_id.as_deref().map(uuid).transpose()?.map(MessageId::from_uuid),
            reply_count: self.reply_count,
            reactions,
            attachments: Vec::new(),
            edited_at: opt_instant(self.edited_at)?,
            deleted_at: opt_instant(self.deleted_at)?,
            created_at: instant(self.created_at)?,
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = message_reactions, check_for_backend(Sqlite))]
pub(crate) struct ReactionRow {
    pub(crate) message_id: Vec<u8>,
    pub(crate) user_id: Vec<u8>,
    pub(crate) emoji: String,
    pub(crate) created_at: i64,
}

/// Reactions of a set of messages, grouped per message and per emoji.
#[derive(Default)]
pub(crate) struct Reactions(HashMap<Vec<u8>, Vec<Reaction>>);

impl Reactions {
    /// Groups rows that arrive in reaction order: emojis in order of first use, users in
    /// order of reaction.
    pub(crate) fn group(rows: Vec<ReactionRow>) -> QueryResult<Self> {
        let mut map: HashMap<Vec<u8>, Vec<Reaction>> = HashMap::new();
        for row in rows {
            let user = UserId::from_uuid(uuid(&row.user_id)?);
            let list = map.entry(row.message_id).or_default();
            match list.iter_mut().find(|r| r.emoji == row.emoji) {
                Some(reaction) => reaction.user_ids.push(user),
                None => list.push(Reaction { emoji: row.emoji, user_ids: vec![user] }),
            }
        }
        Ok(Self(map))
    }

    fn take(&mut self, message_id: &[u8]) -> Vec<Reaction> {
        self.0.remove(message_id).unwrap_or_default()
    }
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = presence, check_for_backend(Sqlite))]
pub(crate) struct PresenceRow {
    pub(crate) user_id: Vec<u8>,
    pub(crate) workspace_id: Vec<u8>,
    pub(crate) status: String,
    pub(crate) last_seen: i64,
}

impl PresenceRow {
    pub(crate) fn from_domain(p: &Presence) -> Self {
        Self {
            user_id: key(p.user_id.as_uuid()),
            workspace_id: key(p.workspace_id.as_uuid()),
            status: p.status.as_str().to_owned(),
            last_seen: micros(p.last_seen),
        }
    }

    pub(crate) fn into_presence(self) -> QueryResult<Presence> {
        Ok(Presence {
            user_id: UserId::from_uuid(uuid(&self.user_id)?),
            workspace_id: WorkspaceId::from_uuid(uuid(&self.workspace_id)?),
            status: PresenceStatus::parse(&self.status).map_err(|_| corrupt("unknown presence status"))?,
            last_seen: instant(self.last_seen)?,
        })
    }
}
