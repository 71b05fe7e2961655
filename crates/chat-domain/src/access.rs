//! The permission policy: who may see and do what in a conversation. Every service goes
//! through [`Access::view`] first, so a caller outside the workspace, or outside a private
//! conversation, gets `NotFound` whatever the operation, and role checks read from one place.
//!
//! Sending is the one hot path, so it reads its view through [`Access::view_to_post`]: the
//! views of recent senders who are members are remembered, and a send spends no read on them.
//! A remembered view can be stale, which is safe only because the store checks again, in the
//! insert's own transaction, everything a member's view allowed: that the sender is still a
//! member of the conversation and of its workspace (`InsertOutcome::NotMember`) and that the
//! conversation is still open (`InsertOutcome::Archived`). The rest of a member's view that a
//! send reads — the conversation's kind, workspace and encryption — never changes. A refused
//! insert forgets the view ([`Access::forget_poster`]), so the next send reads it afresh.

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

/// How many `(sender, conversation)` views a node remembers for sending (about 0.5 KiB each);
/// the least used go first.
pub const POSTER_VIEWS: usize = 16_384;

/// Loads a caller's [`View`] of a conversation.
#[derive(Clone)]
pub struct Access {
    workspaces: Arc<dyn WorkspaceRepository>,
    conversations: Arc<dyn ConversationRepository>,
    /// Views of members who sent recently, open conversations only (see the module docs).
    posters: Arc<quick_cache::sync::Cache<(UserId, ConversationId), Arc<View>>>,
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
        Self { workspaces, conversations, posters: Arc::new(quick_cache::sync::Cache::new(POSTER_VIEWS)) }
    }

    /// The caller's workspace role.
    ///
    /// # Errors
    /// `NotFound` when the caller is not a member of the workspace.
    pub async fn workspace_role(
        &self,
        actor: UserId,
        workspace: crate::ids::WorkspaceId,
    ) -> DomainResult<WorkspaceRole> {
        self.workspaces.member_role(workspace, actor).await?.ok_or(DomainError::NotFound)
    }

    /// The caller's view of a conversation they may read: a member, or a non-guest workspace
    /// member for CHANNEL and DOCUMENT chats.
    ///
    /// # Errors
    /// `NotFound` for a missing conversation, one in a workspace the caller is not in, or a
    /// DM/GROUP they are not a member of.
    pub async fn view(&self, actor: UserId, id: ConversationId) -> DomainResult<View> {
        let standing = self.conversations.find_standing(id, actor).await?.ok_or(DomainError::NotFound)?;
        let workspace_role = standing.workspace_role.ok_or(DomainError::NotFound)?;
        let view = View { conversation: standing.conversation, workspace_role, member: standing.member };
        if view.member.is_some() || view.may_self_join() { Ok(view) } else { Err(DomainError::NotFound) }
    }

    /// [`Self::view`] for sending a message: a member's view of an open conversation is
    /// remembered, and answered from memory by the next send. Only for a send whose insert
    /// the store checks again (module docs); a refused insert must call
    /// [`Self::forget_poster`].
    ///
    /// # Errors
    /// As [`Self::view`].
    pub async fn view_to_post(&self, actor: UserId, id: ConversationId) -> DomainResult<View> {
        if let Some(view) = self.posters.get(&(actor, id)) {
            return Ok(View::clone(&view));
        }
        let view = self.view(actor, id).await?;
        if view.member.is_some() && view.conversation.archived_at.is_none() {
            self.posters.insert((actor, id), Arc::new(view.clone()));
        }
        Ok(view)
    }

    /// Forgets a remembered [`Self::view_to_post`], after the store refused its insert.
    pub fn forget_poster(&self, actor: UserId, id: ConversationId) {
        self.posters.remove(&(actor, id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::ConversationRole::{Admin, Member as Plain, Moderator};
    use crate::ids::WorkspaceId;
    use crate::tests::{Scene, conversation, member};

    const ALL_KINDS: [ConversationType; 4] =
        [ConversationType::Dm, ConversationType::Group, ConversationType::Channel, ConversationType::Document];

    #[tokio::test]
    async fn a_missing_conversation_is_not_found() {
        let scene = Scene::new();
        let alice = scene.alice.id;
        let result = scene.build().chat.conversations.get(alice, ConversationId::generate()).await;
        assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn someone_outside_the_workspace_gets_not_found_for_any_conversation() {
        for kind in ALL_KINDS {
            let mut scene = Scene::new();
            let (alice, outsider) = (scene.alice.clone(), scene.outsider.clone());
            // Even a membership row left behind does not let a non-member of the workspace in.
            let c = scene.conversation(kind, &[(&alice, Admin), (&outsider, Plain)]);
            let result = scene.build().chat.conversations.get(outsider.id, c.id).await;
            assert!(matches!(result, Err(DomainError::NotFound)), "{kind:?}: {result:?}");
        }
    }

    #[tokio::test]
    async fn a_workspace_member_outside_a_group_or_dm_gets_not_found() {
        for kind in [ConversationType::Group, ConversationType::Dm] {
            let mut scene = Scene::new();
            let (alice, bob, carol) = (scene.alice.clone(), scene.bob.clone(), scene.carol.id);
            let c = scene.conversation(kind, &[(&alice, Admin), (&bob, Admin)]);
            let result = scene.build().chat.conversations.get(carol, c.id).await;
            assert!(matches!(result, Err(DomainError::NotFound)), "{kind:?}: {result:?}");
        }
    }

    #[tokio::test]
    async fn a_member_of_a_group_reads_it_with_their_role() {
        let mut scene = Scene::new();
        let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
        let c = scene.conversation(ConversationType::Group, &[(&alice, Admin), (&bob, Moderator)]);
        let view = scene.build().chat.conversations.get(bob.id, c.id).await.unwrap();
        assert_eq!(view.conversation, c);
        assert_eq!(view.role(), Some(Moderator));
        assert_eq!(view.workspace_role, WorkspaceRole::Member);
    }

    #[tokio::test]
    async fn a_workspace_member_reads_a_channel_or_document_without_joining() {
        for kind in [ConversationType::Channel, ConversationType::Document] {
            let mut scene = Scene::new();
            let (alice, carol) = (scene.alice.clone(), scene.carol.id);
            let c = scene.conversation(kind, &[(&alice, Admin)]);
            let view = scene.build().chat.conversations.get(carol, c.id).await.unwrap();
            assert_eq!(view.conversation.id, c.id);
            assert!(view.member.is_none(), "{kind:?}: reading does not join");
        }
    }

    #[tokio::test]
    async fn a_guest_cannot_read_an_open_conversation_they_are_not_in() {
        for kind in [ConversationType::Channel, ConversationType::Document] {
            let mut scene = Scene::new();
            let (alice, guest) = (scene.alice.clone(), scene.guest.id);
            let c = scene.conversation(kind, &[(&alice, Admin)]);
            let result = scene.build().chat.conversations.get(guest, c.id).await;
            assert!(matches!(result, Err(DomainError::NotFound)), "{kind:?}: {result:?}");
        }
    }

    #[tokio::test]
    async fn a_guest_reads_a_channel_they_were_added_to() {
        let mut scene = Scene::new();
        let (alice, guest) = (scene.alice.clone(), scene.guest.clone());
        let c = scene.conversation(ConversationType::Channel, &[(&alice, Admin), (&guest, Plain)]);
        let view = scene.build().chat.conversations.get(guest.id, c.id).await.unwrap();
        assert_eq!(view.workspace_role, WorkspaceRole::Guest);
        assert_eq!(view.role(), Some(Plain));
    }

    fn view(kind: ConversationType, workspace_role: WorkspaceRole, role: Option<ConversationRole>) -> View {
        let conversation = conversation(kind, WorkspaceId::generate(), UserId::generate());
        let member = role.map(|r| member(&conversation, UserId::generate(), r));
        View { conversation, workspace_role, member }
    }

    #[test]
    fn only_admins_administer_and_only_admins_and_moderators_moderate() {
        let of = |role| view(ConversationType::Group, WorkspaceRole::Member, role);
        assert!(of(Some(Admin)).is_admin() && of(Some(Admin)).moderates());
        assert!(!of(Some(Moderator)).is_admin() && of(Some(Moderator)).moderates());
        assert!(!of(Some(Plain)).is_admin() && !of(Some(Plain)).moderates());
        // A workspace owner has no say inside a conversation they are not a member of.
        let owner = view(ConversationType::Channel, WorkspaceRole::Owner, None);
        assert!(!owner.is_admin() && !owner.moderates());
    }

    #[test]
    fn a_non_member_may_post_only_in_a_document_chat_and_joins_by_doing_so() {
        let channel = view(ConversationType::Channel, WorkspaceRole::Member, None);
        assert!(!channel.may_post() && !channel.joins_by_posting());
        assert!(matches!(channel.ensure_may_post(), Err(DomainError::Forbidden(_))));
        let document = view(ConversationType::Document, WorkspaceRole::Member, None);
        assert!(document.may_post() && document.joins_by_posting());
        let guest = view(ConversationType::Document, WorkspaceRole::Guest, None);
        assert!(!guest.may_post());
        let member = view(ConversationType::Document, WorkspaceRole::Member, Some(Plain));
        assert!(member.may_post() && !member.joins_by_posting());
    }

    #[test]
    fn only_non_guests_self_join_and_only_open_conversations() {
        assert!(view(ConversationType::Channel, WorkspaceRole::Member, None).may_self_join());
        assert!(view(ConversationType::Document, WorkspaceRole::Member, None).may_self_join());
        assert!(!view(ConversationType::Channel, WorkspaceRole::Guest, None).may_self_join());
        assert!(!view(ConversationType::Group, WorkspaceRole::Owner, None).may_self_join());
        assert!(!view(ConversationType::Dm, WorkspaceRole::Owner, None).may_self_join());
    }

    #[test]
    fn an_archived_conversation_is_not_writable() {
        let mut archived = view(ConversationType::Group, WorkspaceRole::Member, Some(Admin));
        assert!(archived.ensure_writable().is_ok());
        archived.conversation.archived_at = Some(crate::tests::now());
        assert!(matches!(archived.ensure_writable(), Err(DomainError::Conflict(_))));
    }

    #[test]
    fn ensure_member_is_forbidden_for_a_reader_who_has_not_joined() {
        assert!(matches!(
            view(ConversationType::Channel, WorkspaceRole::Member, None).ensure_member(),
            Err(DomainError::Forbidden(_))
        ));
        assert!(view(ConversationType::Channel, WorkspaceRole::Member, Some(Plain)).ensure_member().is_ok());
    }
}
