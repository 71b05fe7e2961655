//! The permission policy: who may see and do what in a conversation. Every service goes
//! through [`Access::view`] first, so a caller outside the workspace, or outside a private
//! conversation, gets `NotFound` whatever the operation, and role checks read from one place.

use std::sync::Arc;

use crate::conversation::{Conversation, ConversationRepository, ConversationRole, ConversationType, Member};
use crate::error::{DomainError, DomainResult};
use crate::ids::{ConversationId, UserId};
use crate::workspace::{WorkspaceRepository, WorkspaceRole};

/// A caller's standing towards one conversation they are allowed to see.
#[derive(Clone, Debug)]
pub struct View {
    /// The conversation.
    pub conversation: Conversation,
    /// The caller's workspace role.
    pub workspace_role: WorkspaceRole,
    /// The caller's membership, if they are a member.
    pub member: Option<Member>,
}

impl View {
    /// The caller's conversation role, if a member.
    #[must_use]
    pub fn role(&self) -> Option<ConversationRole> {
        self.member.as_ref().map(|m| m.role)
    }

    /// Conversation admins manage it: update, archive, members, roles.
    #[must_use]
    pub fn is_admin(&self) -> bool {
        self.role() == Some(ConversationRole::Admin)
    }

    /// Admins and moderators moderate: add members, delete any message.
    #[must_use]
    pub fn moderates(&self) -> bool {
        matches!(self.role(), Some(ConversationRole::Admin | ConversationRole::Moderator))
    }

    /// Whether the caller may post (and react). Members may; in a DOCUMENT chat any non-guest
    /// workspace member may, joining by doing so.
    #[must_use]
    pub fn may_post(&self) -> bool {
        self.member.is_some() || self.joins_by_posting()
    }

    /// Posting would make the caller a member (DOCUMENT chats).
    #[must_use]
    pub fn joins_by_posting(&self) -> bool {
        self.member.is_none()
            && self.conversation.kind == ConversationType::Document
            && self.workspace_role != WorkspaceRole::Guest
    }

    /// Whether the caller may join on their own (open conversations, not guests).
    #[must_use]
    pub fn may_self_join(&self) -> bool {
        self.conversation.kind.is_open() && self.workspace_role != WorkspaceRole::Guest
    }

    /// `Conflict` when archived: archived conversations are read-only.
    ///
    /// # Errors
    /// `Conflict` when archived.
    pub fn ensure_writable(&self) -> DomainResult<()> {
        if self.conversation.archived_at.is_some() {
            Err(DomainError::Conflict("conversation is archived"))
        } else {
            Ok(())
        }
    }

    /// `Forbidden` unless the caller may post.
    ///
    /// # Errors
    /// `Forbidden` when not a member (and not a DOCUMENT chat they may join).
    pub fn ensure_may_post(&self) -> DomainResult<()> {
        if self.may_post() { Ok(()) } else { Err(DomainError::Forbidden("join the conversation first")) }
    }

    /// `Forbidden` unless the caller is a member.
    ///
    /// # Errors
    /// `Forbidden` when not a member.
    pub fn ensure_member(&self) -> DomainResult<&Member> {
        self.member.as_ref().ok_or(DomainError::Forbidden("not a member of this conversation"))
    }
}

/// Loads a caller's [`View`] of a conversation.
#[derive(Clone)]
pub struct Access {
    workspaces: Arc<dyn WorkspaceRepository>,
    conversations: Arc<dyn ConversationRepository>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access").finish_non_exhaustive()
    }
}

impl Access {
    /// Wires the policy to the stores it reads.
    #[must_use]
    pub fn new(workspaces: Arc<dyn WorkspaceRepository>, conversations: Arc<dyn ConversationRepository>) -> Self {
        Self { workspaces, conversations }
    }

    /// The caller's workspace role.
    ///
    /// # Errors
    /// `NotFound` when the caller is not a member of the workspace.
    pub async fn workspace_role(&self, actor: UserId, workspace: crate::ids::WorkspaceId) -> DomainResult<WorkspaceRole> {
        self.workspaces.member_role(workspace, actor).await?.ok_or(DomainError::NotFound)
    }

    /// The caller's view of a conversation they may read: a member, or a non-guest workspace
    /// member for CHANNEL and DOCUMENT chats.
    ///
    /// # Errors
    /// `NotFound` for a missing conversation, one in a workspace the caller is not in, or a
    /// DM/GROUP they are not a member of.
    pub async fn view(&self, actor: UserId, id: ConversationId) -> DomainResult<View> {
        let conversation = self.conversations.find_conversation(id).await?.ok_or(DomainError::NotFound)?;
        let workspace_role = self
            .workspaces
            .member_role(conversation.workspace_id, actor)
            .await?
            .ok_or(DomainError::NotFound)?;
        let member = self.conversations.find_member(id, actor).await?;
        let view = View { conversation, workspace_role, member };
        if view.member.is_some() || view.may_self_join() { Ok(view) } else { Err(DomainError::NotFound) }
    }
}
