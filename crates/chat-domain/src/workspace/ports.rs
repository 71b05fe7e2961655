use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::model::{Workspace, WorkspaceMember, WorkspaceRole, WorkspaceView};
use crate::error::RepoError;
use crate::ids::{UserId, WorkspaceId};

/// Why inserting a workspace failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateWorkspaceError {
    /// The slug is taken; the service retries with a suffix.
    #[error("slug taken")]
    DuplicateSlug,
    /// Storage failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// Why adding a workspace member failed.
#[derive(Debug, thiserror::Error)]
pub enum AddWorkspaceMemberError {
    /// Already a member.
    #[error("already a member")]
    Duplicate,
    /// Storage failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// Workspaces and their memberships.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait WorkspaceRepository: Send + Sync {
    /// Inserts the workspace and makes its creator the owner, in one transaction.
    ///
    /// # Errors
    /// `DuplicateSlug` when the slug exists; `Repo` on storage failure.
    async fn create_workspace(&self, workspace: &Workspace) -> Result<(), CreateWorkspaceError>;

    /// A workspace by id.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn find_workspace(&self, id: WorkspaceId) -> Result<Option<Workspace>, RepoError>;

    /// Every workspace `user` belongs to, with their role, oldest first.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn list_workspaces_of(&self, user: UserId) -> Result<Vec<WorkspaceView>, RepoError>;

    /// `user`'s role in `workspace`, or `None` when not a member (or no such workspace).
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn member_role(&self, workspace: WorkspaceId, user: UserId) -> Result<Option<WorkspaceRole>, RepoError>;

    /// Adds a member.
    ///
    /// # Errors
    /// `Duplicate` when already a member; `Repo` on storage failure.
    async fn add_workspace_member(
        &self,
        workspace: WorkspaceId,
        user: UserId,
        role: WorkspaceRole,
        joined_at: DateTime<Utc>,
    ) -> Result<WorkspaceMember, AddWorkspaceMemberError>;

    /// All members with their profiles, in join order.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn list_workspace_members(&self, workspace: WorkspaceId) -> Result<Vec<WorkspaceMember>, RepoError>;

    /// Removes a member from the workspace and from every conversation of it, in one
    /// transaction; returns whether they were a member.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn remove_workspace_member(&self, workspace: WorkspaceId, user: UserId) -> Result<bool, RepoError>;
}
