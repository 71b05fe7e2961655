use std::sync::Arc;

use super::model::{Name, Workspace, WorkspaceMember, WorkspaceRole, WorkspaceView};
use super::ports::{AddWorkspaceMemberError, CreateWorkspaceError, WorkspaceRepository};
use crate::audit::{AuditAction, Auditor};
use crate::clock::Clock;
use crate::error::{DomainError, DomainResult};
use crate::ids::{UserId, WorkspaceId};
use crate::user::{Email, UserRepository};

/// Who to add to a workspace.
#[derive(Clone, Debug)]
pub enum MemberRef {
    /// By account id.
    Id(UserId),
    /// By e-mail (any case).
    Email(String),
}

/// Workspaces and their membership.
#[derive(Clone)]
pub struct WorkspaceService {
    workspaces: Arc<dyn WorkspaceRepository>,
    users: Arc<dyn UserRepository>,
    clock: Arc<dyn Clock>,
    audit: Auditor,
}

impl std::fmt::Debug for WorkspaceService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkspaceService").finish_non_exhaustive()
    }
}

impl WorkspaceService {
    /// Wires the service.
    #[must_use]
    pub fn new(
        workspaces: Arc<dyn WorkspaceRepository>,
        users: Arc<dyn UserRepository>,
        clock: Arc<dyn Clock>,
        audit: Auditor,
    ) -> Self {
        Self { workspaces, users, clock, audit }
    }

    /// Creates a workspace owned by `actor`. The slug comes from the name; a taken slug gets a
    /// short suffix from the new id.
    ///
    /// # Errors
    /// `Validation` for a bad name.
    #[tracing::instrument(skip(self, name), fields(actor = %actor))]
    pub async fn create(&self, actor: UserId, name: &str) -> DomainResult<WorkspaceView> {
        let name = Name::parse("name", name)?;
        let id = WorkspaceId::generate();
        let base = name.slug();
        let mut workspace = Workspace { id, name, slug: base.clone(), created_by: actor, created_at: self.clock.now() };
        for attempt in 0..4 {
            match self.workspaces.create_workspace(&workspace).await {
                Ok(()) => return Ok(WorkspaceView { workspace, role: WorkspaceRole::Owner }),
                Err(CreateWorkspaceError::DuplicateSlug) => {
                    let simple = uuid::Uuid::new_v4().simple().to_string();
                    let len = 6 + 2 * attempt;
                    workspace.slug = format!("{base}-{}", &simple[..len]);
                }
                Err(CreateWorkspaceError::Repo(e)) => return Err(e.into()),
            }
        }
        Err(DomainError::Conflict("could not allocate a unique slug"))
    }

    /// The caller's workspaces.
    ///
    /// # Errors
    /// `Internal` on storage failure.
    pub async fn list(&self, actor: UserId) -> DomainResult<Vec<WorkspaceView>> {
        Ok(self.workspaces.list_workspaces_of(actor).await?)
    }

    /// One workspace, if the caller belongs to it.
    ///
    /// # Errors
    /// `NotFound` unless the caller is a member.
    pub async fn get(&self, actor: UserId, id: WorkspaceId) -> DomainResult<WorkspaceView> {
        let role = self.role_of(actor, id).await?;
        let workspace = self.workspaces.find_workspace(id).await?.ok_or(DomainError::NotFound)?;
        Ok(WorkspaceView { workspace, role })
    }

    /// The caller's role in `workspace`.
    ///
    /// # Errors
    /// `NotFound` unless the caller is a member: other workspaces do not exist for them.
    pub async fn role_of(&self, actor: UserId, workspace: WorkspaceId) -> DomainResult<WorkspaceRole> {
        self.workspaces.member_role(workspace, actor).await?.ok_or(DomainError::NotFound)
    }

    /// Adds a user to the workspace. Owners and admins may add; nobody grants `owner`, and
    /// only an owner grants `admin`.
    ///
    /// # Errors
    /// `NotFound` for a non-member caller or an unknown user; `Forbidden` for a weaker role;
    /// `Conflict` when already a member.
    #[tracing::instrument(skip(self, who), fields(actor = %actor, workspace = %workspace))]
    pub async fn add_member(
        &self,
        actor: UserId,
        workspace: WorkspaceId,
        who: MemberRef,
        role: Option<WorkspaceRole>,
    ) -> DomainResult<WorkspaceMember> {
        let actor_role = self.role_of(actor, workspace).await?;
        if !actor_role.manages_members() {
            return Err(DomainError::Forbidden("only workspace owners and admins add members"));
        }
        let role = role.unwrap_or(WorkspaceRole::Member);
        if role == WorkspaceRole::Owner || role.rank() >= actor_role.rank() && actor_role != WorkspaceRole::Owner {
            return Err(DomainError::Forbidden("cannot grant a role as strong as your own"));
        }
        let user = match who {
            MemberRef::Id(id) => self.users.find_user(id).await?,
            MemberRef::Email(raw) => self.users.find_user_by_email(&Email::parse(&raw)?).await?.map(|(u, _)| u),
        }
        .ok_or(DomainError::NotFound)?;
        match self.workspaces.add_workspace_member(workspace, user.id, role, self.clock.now()).await {
            Ok(member) => {
                self.audit
                    .record(
                        Some(workspace),
                        Some(actor),
                        AuditAction::WorkspaceMemberAdded,
                        Some(format!("user:{} role:{}", user.id, role.as_str())),
                    )
                    .await;
                Ok(member)
            }
            Err(AddWorkspaceMemberError::Duplicate) => Err(DomainError::Conflict("already a member of this workspace")),
            Err(AddWorkspaceMemberError::Repo(e)) => Err(e.into()),
        }
    }

    /// The workspace's members.
    ///
    /// # Errors
    /// `NotFound` unless the caller is a member.
    pub async fn members(&self, actor: UserId, workspace: WorkspaceId) -> DomainResult<Vec<WorkspaceMember>> {
        self.role_of(actor, workspace).await?;
        Ok(self.workspaces.list_workspace_members(workspace).await?)
    }

    /// Removes a member (and their conversation memberships). Anyone but the owner may leave;
    /// owners and admins remove members weaker than themselves.
    ///
    /// # Errors
    /// `NotFound` for a non-member caller or target; `Forbidden` otherwise disallowed.
    #[tracing::instrument(skip(self), fields(actor = %actor, workspace = %workspace))]
    pub async fn remove_member(&self, actor: UserId, workspace: WorkspaceId, target: UserId) -> DomainResult<()> {
        let actor_role = self.role_of(actor, workspace).await?;
        let target_role = self.workspaces.member_role(workspace, target).await?.ok_or(DomainError::NotFound)?;
        if target_role == WorkspaceRole::Owner {
            return Err(DomainError::Forbidden("the workspace owner cannot be removed"));
        }
        let allowed = actor == target || actor_role.manages_members() && actor_role.rank() > target_role.rank();
        if !allowed {
            return Err(DomainError::Forbidden("cannot remove this member"));
        }
        if !self.workspaces.remove_workspace_member(workspace, target).await? {
            return Err(DomainError::NotFound);
        }
        self.audit
            .record(Some(workspace), Some(actor), AuditAction::WorkspaceMemberRemoved, Some(format!("user:{target}")))
            .await;
        Ok(())
    }
}
