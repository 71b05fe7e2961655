use std::sync::Arc;

use super::model::{
    Conversation, ConversationPatch, ConversationRole, ConversationType, Created, Member, NewConversation,
};
use super::ports::{AddMemberError, ConversationListing, ConversationRepository};
use crate::Limits;
use crate::access::{Access, View};
use crate::audit::{AuditAction, Auditor};
use crate::clock::Clock;
use crate::error::{DomainError, DomainResult};
use crate::event::{ConversationUpdate, DomainEvent, EventPublisher};
use crate::ids::{ConversationId, MessageId, UserId, WorkspaceId};
use crate::message::{Message, MessageCodec, MessageRepository};
use crate::text::char_len;
use crate::workspace::{Name, WorkspaceRepository, WorkspaceRole};

/// Default member cap of a new conversation.
pub const DEFAULT_MAX_PARTICIPANTS: u32 = 100;
const MAX_DESCRIPTION_CHARS: usize = 1000;
const MAX_ICON_CHARS: usize = 256;
const MAX_DOCUMENT_ID_CHARS: usize = 256;

/// A request to create a conversation.
#[derive(Clone, Debug)]
pub struct CreateConversation {
    /// Kind.
    pub kind: ConversationType,
    /// Workspace.
    pub workspace_id: WorkspaceId,
    /// Name (required for channels).
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Icon.
    pub icon: Option<String>,
    /// Other initial members (for a DM: the one other user; the caller may be listed too).
    pub member_ids: Vec<UserId>,
    /// External document (DOCUMENT only, required there).
    pub document_id: Option<String>,
    /// End-to-end encrypted (DM only).
    pub is_encrypted: bool,
    /// Member cap (default 100).
    pub max_participants: Option<u32>,
}

/// A conversation as listed for one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationSummary {
    /// The conversation.
    pub conversation: Conversation,
    /// The caller's membership.
    pub member: Member,
    /// Unread messages.
    pub unread_count: i64,
    /// The newest message.
    pub last_message: Option<Message>,
}

/// Which point of a conversation a read marker names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadTarget {
    /// Up to and including this message.
    Message(MessageId),
    /// Up to and including this seq.
    Seq(i64),
    /// Everything so far.
    Latest,
}

/// Unread counts of a workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnreadCounts {
    /// Sum over conversations.
    pub total: i64,
    /// Per conversation.
    pub conversations: Vec<(ConversationId, i64)>,
}

/// Conversations, their members, and read state.
#[derive(Clone)]
pub struct ConversationService {
    access: Access,
    conversations: Arc<dyn ConversationRepository>,
    messages: Arc<dyn MessageRepository>,
    workspaces: Arc<dyn WorkspaceRepository>,
    codec: MessageCodec,
    events: Arc<dyn EventPublisher>,
    clock: Arc<dyn Clock>,
    limits: Limits,
    audit: Auditor,
}

impl std::fmt::Debug for ConversationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConversationService").field("limits", &self.limits).finish_non_exhaustive()
    }
}

fn optional_text(field: &'static str, raw: Option<&str>, max: usize) -> DomainResult<Option<String>> {
    let Some(raw) = raw else { return Ok(None) };
    let text: String =
        raw.chars().filter(|&c| !crate::text::is_bidi_control(c) && (c == '\n' || !c.is_control())).collect();
    let text = text.trim();
    if char_len(text) > max {
        return Err(DomainError::invalid(field, format!("must be at most {max} characters")));
    }
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

impl ConversationService {
    /// Wires the service.
    #[must_use]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        access: Access,
        conversations: Arc<dyn ConversationRepository>,
        messages: Arc<dyn MessageRepository>,
        workspaces: Arc<dyn WorkspaceRepository>,
        codec: MessageCodec,
        events: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
        limits: Limits,
        audit: Auditor,
    ) -> Self {
        Self { access, conversations, messages, workspaces, codec, events, clock, limits, audit }
    }

    /// Creates a conversation, or returns the existing DM of the pair / chat of the document
    /// ([`Created::Existing`]).
    ///
    /// # Errors
    /// `NotFound` when the caller is not in the workspace; `Forbidden` for guests creating
    /// anything but a DM; `Validation` for a malformed request (DM without exactly one other
    /// user, members outside the workspace, encryption outside DMs, caps out of range).
    #[tracing::instrument(skip(self, req), fields(actor = %actor, workspace = %req.workspace_id))]
    pub async fn create(&self, actor: UserId, req: CreateConversation) -> DomainResult<Created<Conversation>> {
        let ws_role = self.access.workspace_role(actor, req.workspace_id).await?;
        if ws_role == WorkspaceRole::Guest && req.kind != ConversationType::Dm {
            return Err(DomainError::Forbidden("guests may only start direct messages"));
        }
        if req.is_encrypted && req.kind != ConversationType::Dm {
            return Err(DomainError::invalid("isEncrypted", "only direct messages can be end-to-end encrypted"));
        }
        let name = match (req.kind, req.name.as_deref()) {
            (ConversationType::Dm, _) | (_, None) => None,
            (_, Some(raw)) => Some(Name::parse("name", raw)?.as_str().to_owned()),
        };
        if req.kind == ConversationType::Channel && name.is_none() {
            return Err(DomainError::invalid("name", "a channel needs a name"));
        }
        let description = optional_text("description", req.description.as_deref(), MAX_DESCRIPTION_CHARS)?;
        let icon = optional_text("icon", req.icon.as_deref(), MAX_ICON_CHARS)?;
        let mut others: Vec<UserId> = req.member_ids.iter().copied().filter(|&id| id != actor).collect();
        others.sort_unstable();
        others.dedup();
        let max_participants = match req.kind {
            ConversationType::Dm => 2,
            _ => req.max_participants.unwrap_or(DEFAULT_MAX_PARTICIPANTS.min(self.limits.max_participants)),
        };
        if !(2..=self.limits.max_participants).contains(&max_participants) {
            return Err(DomainError::invalid(
                "maxParticipants",
                format!("must be between 2 and {}", self.limits.max_participants),
            ));
        }
        if others.len() + 1 > max_participants as usize {
            return Err(DomainError::invalid("memberIds", "more members than maxParticipants"));
        }
        let (unique_key, document_id) = match req.kind {
            ConversationType::Dm => {
                let [other] = others.as_slice() else {
                    return Err(DomainError::invalid("memberIds", "a DM names exactly one other user"));
                };
                let (a, b) = if actor < *other { (actor, *other) } else { (*other, actor) };
                (Some(format!("dm:{a}:{b}:{}", u8::from(req.is_encrypted))), None)
            }
            ConversationType::Document => {
                let doc = req.document_id.as_deref().map(str::trim).unwrap_or_default();
                if doc.is_empty() || char_len(doc) > MAX_DOCUMENT_ID_CHARS || doc.chars().any(char::is_control) {
                    return Err(DomainError::invalid(
                        "documentId",
                        "a DOCUMENT chat needs a documentId of 1 to 256 characters",
                    ));
                }
                (Some(format!("doc:{doc}")), Some(doc.to_owned()))
            }
            ConversationType::Group | ConversationType::Channel => (None, None),
        };
        if req.document_id.is_some() && req.kind != ConversationType::Document {
            return Err(DomainError::invalid("documentId", "only DOCUMENT chats have a documentId"));
        }
        self.ensure_workspace_members(req.workspace_id, &others).await?;

        let now = self.clock.now();
        let conversation = Conversation {
            id: ConversationId::generate(),
            workspace_id: req.workspace_id,
            kind: req.kind,
            name,
            description,
            icon,
            document_id,
            is_encrypted: req.is_encrypted,
            max_participants,
            created_by: actor,
            last_seq: 0,
            created_at: now,
            updated_at: now,
            archived_at: None,
        };
        let member = |user_id, role| Member {
            conversation_id: conversation.id,
            user_id,
            role,
            joined_at: now,
            last_read_seq: 0,
            last_read_at: None,
            is_muted: false,
        };
        let mut members = vec![member(actor, ConversationRole::Admin)];
        // In a DM both people are equals.
        let other_role =
            if req.kind == ConversationType::Dm { ConversationRole::Admin } else { ConversationRole::Member };
        members.extend(others.iter().map(|&id| member(id, other_role)));
        let member_ids = members.iter().map(|m| m.user_id).collect();
        let created =
            self.conversations.create_conversation(&NewConversation { conversation, unique_key, members }).await?;
        if let Created::New(conversation) = &created {
            tracing::info!(conversation = %conversation.id, kind = conversation.kind.as_str(), "conversation created");
            self.events
                .publish(DomainEvent::ConversationCreated { conversation: conversation.clone(), member_ids })
                .await;
        }
        Ok(created)
    }

    async fn ensure_workspace_members(&self, workspace: WorkspaceId, users: &[UserId]) -> DomainResult<()> {
        if users.is_empty() {
            return Ok(());
        }
        let members: std::collections::HashSet<UserId> =
            self.workspaces.list_workspace_members(workspace).await?.into_iter().map(|m| m.user.id).collect();
        if users.iter().all(|u| members.contains(u)) {
            Ok(())
        } else {
            Err(DomainError::invalid("memberIds", "every member must belong to the workspace"))
        }
    }

    /// The caller's view of a conversation.
    ///
    /// # Errors
    /// `NotFound` when the caller may not see it.
    pub async fn get(&self, actor: UserId, id: ConversationId) -> DomainResult<View> {
        self.access.view(actor, id).await
    }

    /// The caller's conversations in a workspace, with unread counts and last messages.
    ///
    /// # Errors
    /// `NotFound` when the caller is not in the workspace.
    pub async fn list(&self, actor: UserId, workspace: WorkspaceId) -> DomainResult<Vec<ConversationSummary>> {
        self.access.workspace_role(actor, workspace).await?;
        let listings = self.conversations.list_conversations_of(workspace, actor).await?;
        let mut out = Vec::with_capacity(listings.len());
        for ConversationListing { conversation, member, unread_count, last_message } in listings {
            let last_message = match last_message {
                Some(stored) => Some(self.codec.open(&conversation, stored).await?),
                None => None,
            };
            out.push(ConversationSummary { conversation, member, unread_count, last_message });
        }
        Ok(out)
    }

    /// Members of a conversation the caller may see.
    ///
    /// # Errors
    /// `NotFound` when the caller may not see it.
    pub async fn members(&self, actor: UserId, id: ConversationId) -> DomainResult<Vec<Member>> {
        self.access.view(actor, id).await?;
        Ok(self.conversations.list_members(id).await?)
    }

    /// Changes name, description, icon or cap (conversation admins; not DMs' names).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden` for non-admins, `Conflict` when archived, `Validation`.
    #[tracing::instrument(skip(self, name, description, icon), fields(actor = %actor, conversation = %id))]
    pub async fn update(
        &self,
        actor: UserId,
        id: ConversationId,
        name: Option<Option<String>>,
        description: Option<Option<String>>,
        icon: Option<Option<String>>,
        max_participants: Option<u32>,
    ) -> DomainResult<Conversation> {
        let view = self.access.view(actor, id).await?;
        if !view.is_admin() {
            return Err(DomainError::Forbidden("only conversation admins update it"));
        }
        view.ensure_writable()?;
        let kind = view.conversation.kind;
        let name = match name {
            Some(_) if kind == ConversationType::Dm => return Err(DomainError::invalid("name", "a DM has no name")),
            Some(None) if kind == ConversationType::Channel => {
                return Err(DomainError::invalid("name", "a channel needs a name"));
            }
            Some(Some(raw)) => Some(Some(Name::parse("name", &raw)?.as_str().to_owned())),
            other => other,
        };
        let description = match description {
            Some(d) => Some(optional_text("description", d.as_deref(), MAX_DESCRIPTION_CHARS)?),
            None => None,
        };
        let icon = match icon {
            Some(i) => Some(optional_text("icon", i.as_deref(), MAX_ICON_CHARS)?),
            None => None,
        };
        if let Some(max) = max_participants {
            if kind == ConversationType::Dm {
                return Err(DomainError::invalid("maxParticipants", "a DM has exactly two members"));
            }
            let current = self.conversations.list_members(id).await?.len();
            if !(2..=self.limits.max_participants).contains(&max) || (max as usize) < current {
                return Err(DomainError::invalid(
                    "maxParticipants",
                    format!("must be between the current member count and {}", self.limits.max_participants),
                ));
            }
        }
        let patch = ConversationPatch { name, description, icon, max_participants };
        if patch.is_empty() {
            return Ok(view.conversation);
        }
        let conversation =
            self.conversations.update_conversation(id, &patch, self.clock.now()).await?.ok_or(DomainError::NotFound)?;
        self.events
            .publish(DomainEvent::ConversationUpdated {
                conversation: conversation.clone(),
                updates: ConversationUpdate::Attributes(patch),
            })
            .await;
        Ok(conversation)
    }

    /// Archives (the `DELETE` of the API): read-only from now on. Conversation admins only.
    ///
    /// # Errors
    /// `NotFound`, `Forbidden` for non-admins.
    #[tracing::instrument(skip(self), fields(actor = %actor, conversation = %id))]
    pub async fn archive(&self, actor: UserId, id: ConversationId) -> DomainResult<Conversation> {
        let view = self.access.view(actor, id).await?;
        if !view.is_admin() {
            return Err(DomainError::Forbidden("only conversation admins archive it"));
        }
        if view.conversation.archived_at.is_some() {
            return Ok(view.conversation);
        }
        let conversation =
            self.conversations.archive_conversation(id, self.clock.now()).await?.ok_or(DomainError::NotFound)?;
        self.audit
            .record(
                Some(conversation.workspace_id),
                Some(actor),
                AuditAction::ConversationArchived,
                Some(format!("conversation:{id}")),
            )
            .await;
        if let Some(at) = conversation.archived_at {
            self.events
                .publish(DomainEvent::ConversationUpdated {
                    conversation: conversation.clone(),
                    updates: ConversationUpdate::Archived(at),
                })
                .await;
        }
        Ok(conversation)
    }

    /// Adds a member. Admins and moderators add workspace members (only admins with a role
    /// other than `member`); any non-guest workspace member joins a CHANNEL or DOCUMENT chat
    /// by adding themself.
    ///
    /// # Errors
    /// `NotFound` (also for a target outside the workspace), `Forbidden`, `Conflict` when
    /// already a member or archived, `Validation` for DMs or a full conversation.
    #[tracing::instrument(skip(self), fields(actor = %actor, conversation = %id))]
    pub async fn add_member(
        &self,
        actor: UserId,
        id: ConversationId,
        target: UserId,
        role: Option<ConversationRole>,
    ) -> DomainResult<Member> {
        let view = self.access.view(actor, id).await?;
        view.ensure_writable()?;
        if view.conversation.kind == ConversationType::Dm {
            return Err(DomainError::invalid("userId", "a DM has exactly two members"));
        }
        let role = role.unwrap_or(ConversationRole::Member);
        if target == actor && view.member.is_some() {
            return Err(DomainError::Conflict("already a member"));
        }
        let self_join = target == actor && view.member.is_none() && view.may_self_join();
        let allowed = if self_join {
            role == ConversationRole::Member
        } else {
            view.is_admin() || view.moderates() && role == ConversationRole::Member
        };
        if !allowed {
            return Err(DomainError::Forbidden("not allowed to add this member"));
        }
        self.workspaces.member_role(view.conversation.workspace_id, target).await?.ok_or(DomainError::NotFound)?;
        let member = self.join(&view.conversation, target, role).await?;
        self.audit
            .record(
                Some(view.conversation.workspace_id),
                Some(actor),
                AuditAction::ConversationMemberAdded,
                Some(format!("conversation:{id} user:{target} role:{}", role.as_str())),
            )
            .await;
        Ok(member)
    }

    /// Inserts a membership and announces it: `conversation:new` to the newcomer,
    /// `member:joined` to the others.
    pub(crate) async fn join(
        &self,
        conversation: &Conversation,
        user: UserId,
        role: ConversationRole,
    ) -> DomainResult<Member> {
        let member = Member {
            conversation_id: conversation.id,
            user_id: user,
            role,
            joined_at: self.clock.now(),
            last_read_seq: 0,
            last_read_at: None,
            is_muted: false,
        };
        let member = match self.conversations.add_member(&member, conversation.max_participants).await {
            Ok(member) => member,
            Err(AddMemberError::Duplicate) => return Err(DomainError::Conflict("already a member")),
            Err(AddMemberError::Full) => return Err(DomainError::invalid("userId", "the conversation is full")),
            Err(AddMemberError::Repo(e)) => return Err(e.into()),
        };
        self.events
            .publish(DomainEvent::MemberJoined {
                workspace_id: conversation.workspace_id,
                conversation_id: conversation.id,
                user_id: user,
            })
            .await;
        self.events
            .publish(DomainEvent::ConversationCreated { conversation: conversation.clone(), member_ids: vec![user] })
            .await;
        Ok(member)
    }

    /// Removes a member: anyone may leave; admins remove anyone, moderators non-admins. The
    /// last admin of a conversation with other members must hand over first.
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, `Conflict` for the last admin, `Validation` for DMs.
    #[tracing::instrument(skip(self), fields(actor = %actor, conversation = %id))]
    pub async fn remove_member(&self, actor: UserId, id: ConversationId, target: UserId) -> DomainResult<()> {
        let view = self.access.view(actor, id).await?;
        if view.conversation.kind == ConversationType::Dm {
            return Err(DomainError::invalid("userId", "a DM has exactly two members"));
        }
        let members = self.conversations.list_members(id).await?;
        let target_member = members.iter().find(|m| m.user_id == target).ok_or(DomainError::NotFound)?;
        let allowed =
            actor == target || view.is_admin() || view.moderates() && target_member.role != ConversationRole::Admin;
        if !allowed {
            return Err(DomainError::Forbidden("not allowed to remove this member"));
        }
        let admins = members.iter().filter(|m| m.role == ConversationRole::Admin).count();
        if target_member.role == ConversationRole::Admin && admins == 1 && members.len() > 1 {
            return Err(DomainError::Conflict("the last admin must name another admin first"));
        }
        if !self.conversations.remove_member(id, target).await? {
            return Err(DomainError::NotFound);
        }
        self.audit
            .record(
                Some(view.conversation.workspace_id),
                Some(actor),
                AuditAction::ConversationMemberRemoved,
                Some(format!("conversation:{id} user:{target}")),
            )
            .await;
        self.events
            .publish(DomainEvent::MemberLeft {
                workspace_id: view.conversation.workspace_id,
                conversation_id: id,
                user_id: target,
            })
            .await;
        Ok(())
    }

    /// Changes a member's role (conversation admins). The last admin cannot step down.
    ///
    /// # Errors
    /// `NotFound`, `Forbidden` for non-admins, `Conflict` for the last admin.
    #[tracing::instrument(skip(self), fields(actor = %actor, conversation = %id))]
    pub async fn set_role(
        &self,
        actor: UserId,
        id: ConversationId,
        target: UserId,
        role: ConversationRole,
    ) -> DomainResult<Member> {
        let view = self.access.view(actor, id).await?;
        if !view.is_admin() {
            return Err(DomainError::Forbidden("only conversation admins change roles"));
        }
        if view.conversation.kind == ConversationType::Dm {
            return Err(DomainError::invalid("role", "both members of a DM are its admins"));
        }
        view.ensure_writable()?;
        let members = self.conversations.list_members(id).await?;
        let current = members.iter().find(|m| m.user_id == target).ok_or(DomainError::NotFound)?;
        let admins = members.iter().filter(|m| m.role == ConversationRole::Admin).count();
        if current.role == ConversationRole::Admin && role != ConversationRole::Admin && admins == 1 {
            return Err(DomainError::Conflict("the last admin must name another admin first"));
        }
        let member = self.conversations.set_member_role(id, target, role).await?.ok_or(DomainError::NotFound)?;
        self.audit
            .record(
                Some(view.conversation.workspace_id),
                Some(actor),
                AuditAction::ConversationRoleChanged,
                Some(format!("conversation:{id} user:{target} role:{}", role.as_str())),
            )
            .await;
        self.events
            .publish(DomainEvent::ConversationUpdated {
                conversation: view.conversation,
                updates: ConversationUpdate::MemberRole { user_id: target, role },
            })
            .await;
        Ok(member)
    }

    /// Moves the caller's read watermark forward (never back) and tells the other members.
    /// Returns the watermark after the call.
    ///
    /// # Errors
    /// `NotFound` (also for a message of another conversation), `Forbidden` for non-members.
    #[tracing::instrument(skip(self), fields(actor = %actor, conversation = %id))]
    pub async fn mark_read(&self, actor: UserId, id: ConversationId, target: ReadTarget) -> DomainResult<i64> {
        let view = self.access.view(actor, id).await?;
        let member = view.ensure_member()?;
        let (seq, message_id) = match target {
            ReadTarget::Message(mid) => {
                let message = self.messages.find_message(mid).await?.filter(|m| m.conversation_id == id);
                let message = message.ok_or(DomainError::NotFound)?;
                (message.seq, Some(mid))
            }
            ReadTarget::Seq(seq) if seq < 0 => return Err(DomainError::invalid("seq", "must not be negative")),
            ReadTarget::Seq(seq) => (seq.min(view.conversation.last_seq), None),
            ReadTarget::Latest => (view.conversation.last_seq, None),
        };
        if seq <= member.last_read_seq {
            return Ok(member.last_read_seq);
        }
        let now = self.clock.now();
        let after = self.conversations.mark_read(id, actor, seq, now).await?.ok_or(DomainError::NotFound)?;
        if after.last_read_seq > member.last_read_seq {
            self.events
                .publish(DomainEvent::ReadMoved {
                    workspace_id: view.conversation.workspace_id,
                    conversation_id: id,
                    user_id: actor,
                    message_id,
                    seq: after.last_read_seq,
                    read_at: after.last_read_at.unwrap_or(now),
                })
                .await;
        }
        Ok(after.last_read_seq)
    }

    /// The caller's conversations in a workspace with their current `last_seq` (what a
    /// socket joining the workspace subscribes to).
    ///
    /// # Errors
    /// `NotFound` when the caller is not in the workspace.
    pub async fn heads(&self, actor: UserId, workspace: WorkspaceId) -> DomainResult<Vec<(ConversationId, i64)>> {
        self.access.workspace_role(actor, workspace).await?;
        Ok(self.conversations.conversation_heads(workspace, actor).await?)
    }

    /// Unread counts over the caller's conversations in a workspace.
    ///
    /// # Errors
    /// `NotFound` when the caller is not in the workspace.
    pub async fn unread_counts(&self, actor: UserId, workspace: WorkspaceId) -> DomainResult<UnreadCounts> {
        self.access.workspace_role(actor, workspace).await?;
        let conversations = self.conversations.unread_counts(workspace, actor).await?;
        let total = conversations.iter().map(|(_, n)| n).sum();
        Ok(UnreadCounts { total, conversations })
    }
}
