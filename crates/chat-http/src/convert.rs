//! Domain values to wire types (chat-protocol). The wire never sees a domain type directly.

use chat_domain::conversation::{Conversation, ConversationSummary, Member};
use chat_domain::message::{Attachment, Message};
use chat_domain::presence::Presence;
use chat_domain::user::User;
use chat_domain::workspace::{WorkspaceMember, WorkspaceView};
use chat_protocol as wire;

pub(crate) fn user(u: &User) -> wire::User {
    wire::User {
        id: u.id.as_uuid(),
        email: u.email.as_str().to_owned(),
        display_name: u.display_name.as_str().to_owned(),
        avatar_url: u.avatar_url.clone(),
        created_at: u.created_at,
    }
}

pub(crate) fn workspace(v: &WorkspaceView) -> wire::Workspace {
    wire::Workspace {
        id: v.workspace.id.as_uuid(),
        name: v.workspace.name.as_str().to_owned(),
        slug: v.workspace.slug.clone(),
        created_by_id: v.workspace.created_by.as_uuid(),
        created_at: v.workspace.created_at,
        role: v.role.as_str().to_owned(),
    }
}

pub(crate) fn workspace_member(m: &WorkspaceMember) -> wire::WorkspaceMember {
    wire::WorkspaceMember {
        workspace_id: m.workspace_id.as_uuid(),
        user_id: m.user.id.as_uuid(),
        role: m.role.as_str().to_owned(),
        joined_at: m.joined_at,
        user: user(&m.user),
    }
}

pub(crate) fn conversation(c: &Conversation, member: Option<&Member>) -> wire::Conversation {
    wire::Conversation {
        id: c.id.as_uuid(),
        workspace_id: c.workspace_id.as_uuid(),
        kind: c.kind.as_str().to_owned(),
        name: c.name.clone(),
        description: c.description.clone(),
        icon: c.icon.clone(),
        document_id: c.document_id.clone(),
        is_encrypted: c.is_encrypted,
        max_participants: c.max_participants,
        created_by_id: c.created_by.as_uuid(),
        last_seq: c.last_seq,
        created_at: c.created_at,
        updated_at: c.updated_at,
        archived_at: c.archived_at,
        role: member.map(|m| m.role.as_str().to_owned()),
        last_read_seq: member.map(|m| m.last_read_seq),
        unread_count: None,
        last_message: None,
    }
}

pub(crate) fn summary(s: &ConversationSummary) -> wire::Conversation {
    wire::Conversation {
        unread_count: Some(s.unread_count),
        last_message: Some(s.last_message.as_ref().map(message)),
        ..conversation(&s.conversation, Some(&s.member))
    }
}

pub(crate) fn member(m: &Member) -> wire::Member {
    wire::Member {
        conversation_id: m.conversation_id.as_uuid(),
        user_id: m.user_id.as_uuid(),
        role: m.role.as_str().to_owned(),
        joined_at: m.joined_at,
        last_read_seq: m.last_read_seq,
        last_read_at: m.last_read_at,
        is_muted: m.is_muted,
    }
}

pub(crate) fn message(m: &Message) -> wire::Message {
    wire::Message {
        id: m.id.as_uuid(),
        conversation_id: m.conversation_id.as_uuid(),
        seq: m.seq,
        sender_id: m.sender_id.as_uuid(),
        client_msg_id: m.client_msg_id.clone(),
        kind: m.kind.as_str().to_owned(),
        content: m.content.clone(),
        attachments: m.attachments.iter().map(attachment).collect(),
        metadata: serde_json::Map::new(),
        reply_to_id: m.reply_to_id.map(|id| id.as_uuid()),
        reply_count: m.reply_count,
        reactions: m
            .reactions
            .iter()
            .map(|r| (r.emoji.clone(), r.user_ids.iter().map(|u| u.as_uuid()).collect()))
            .collect(),
        is_encrypted: m.is_encrypted,
        edited_at: m.edited_at,
        deleted_at: m.deleted_at,
        created_at: m.created_at,
    }
}

pub(crate) fn attachment(a: &Attachment) -> wire::Attachment {
    wire::Attachment {
        id: a.id.as_uuid(),
        kind: a.kind.as_str().to_owned(),
        name: a.name.as_str().to_owned(),
        mime_type: a.content_type.clone(),
        size: a.size,
        url: format!("/files/{}", a.id),
    }
}

pub(crate) fn presence(p: &Presence) -> wire::Presence {
    wire::Presence {
        user_id: p.user_id.as_uuid(),
        workspace_id: p.workspace_id.as_uuid(),
        status: p.status.as_str().to_owned(),
        last_seen: p.last_seen,
    }
}
