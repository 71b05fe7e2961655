//! Workspaces and their memberships.

use async_trait::async_trait;
use chat_domain::error::RepoError;
use chat_domain::ids::{UserId, WorkspaceId};
use chat_domain::workspace::{
    AddWorkspaceMemberError, CreateWorkspaceError, Name, Workspace, WorkspaceMember, WorkspaceRepository,
    WorkspaceRole, WorkspaceView,
};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::{conversation_members, conversations, users, workspace_members, workspaces};
use crate::users::UserRow;
use crate::{PgStore, corrupt, is_unique_violation, repo};

/// A `workspaces` row.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = workspaces, check_for_backend(diesel::pg::Pg))]
struct WorkspaceRow {
    id: Uuid,
    name: String,
    slug: String,
    created_by: Uuid,
    created_at: DateTime<Utc>,
}

impl WorkspaceRow {
    fn from_domain(w: &Workspace) -> Self {
        Self {
            id: w.id.as_uuid(),
            name: w.name.as_str().to_owned(),
            slug: w.slug.clone(),
            created_by: w.created_by.as_uuid(),
            created_at: w.created_at,
        }
    }

    fn into_domain(self) -> Workspace {
        Workspace {
            id: WorkspaceId::from_uuid(self.id),
            name: Name::from_trusted(self.name),
            slug: self.slug,
            created_by: UserId::from_uuid(self.created_by),
            created_at: self.created_at,
        }
    }
}

/// The columns of a `workspace_members` row that the domain sees.
#[derive(Queryable, Selectable)]
#[diesel(table_name = workspace_members, check_for_backend(diesel::pg::Pg))]
struct MembershipRow {
    workspace_id: Uuid,
    role: String,
    joined_at: DateTime<Utc>,
}

pub(crate) fn parse_role(raw: &str) -> Result<WorkspaceRole, RepoError> {
    WorkspaceRole::parse(raw).map_err(|_| corrupt("stored workspace role is not one of owner, admin, member, guest"))
}

fn member(row: MembershipRow, user: UserRow) -> Result<WorkspaceMember, RepoError> {
    Ok(WorkspaceMember {
        workspace_id: WorkspaceId::from_uuid(row.workspace_id),
        user: user.into_user(),
        role: parse_role(&row.role)?,
        joined_at: row.joined_at,
    })
}

#[async_trait]
impl WorkspaceRepository for PgStore {
    #[tracing::instrument(skip_all, fields(workspace = %workspace.id, actor = %workspace.created_by))]
    async fn create_workspace(&self, workspace: &Workspace) -> Result<(), CreateWorkspaceError> {
        let mut conn = self.conn().await?;
        let row = WorkspaceRow::from_domain(workspace);
        (*conn)
            .transaction::<_, DieselError, _>(async |conn: &mut AsyncPgConnection| {
                diesel::insert_into(workspaces::table).values(&row).execute(conn).await?;
                diesel::insert_into(workspace_members::table)
                    .values((
                        workspace_members::workspace_id.eq(row.id),
                        workspace_members::user_id.eq(row.created_by),
                        workspace_members::role.eq(WorkspaceRole::Owner.as_str()),
                        workspace_members::joined_at.eq(row.created_at),
                    ))
                    .execute(conn)
                    .await?;
                Ok(())
            })
            .await
            .map_err(|e| {
                if is_unique_violation(&e, "workspaces_slug_key") {
                    CreateWorkspaceError::DuplicateSlug
                } else {
                    CreateWorkspaceError::Repo(RepoError::new("inserting a workspace", e))
                }
            })
    }

    #[tracing::instrument(skip_all, fields(workspace = %id))]
    async fn find_workspace(&self, id: WorkspaceId) -> Result<Option<Workspace>, RepoError> {
        let mut conn = self.conn().await?;
        let row = workspaces::table
            .find(id.as_uuid())
            .select(WorkspaceRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(repo("finding a workspace"))?;
        Ok(row.map(WorkspaceRow::into_domain))
    }

    #[tracing::instrument(skip_all, fields(user = %user))]
    async fn list_workspaces_of(&self, user: UserId) -> Result<Vec<WorkspaceView>, RepoError> {
        let mut conn = self.conn().await?;
        let rows: Vec<(WorkspaceRow, String)> = workspaces::table
            .inner_join(workspace_members::table)
            .filter(workspace_members::user_id.eq(user.as_uuid()))
            .order((workspaces::created_at.asc(), workspaces::id.asc()))
            .select((WorkspaceRow::as_select(), workspace_members::role))
            .load(&mut conn)
            .await
            .map_err(repo("listing a user's workspaces"))?;
        rows.into_iter()
            .map(|(w, role)| Ok(WorkspaceView { workspace: w.into_domain(), role: parse_role(&role)? }))
            .collect()
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace, user = %user))]
    async fn member_role(&self, workspace: WorkspaceId, user: UserId) -> Result<Option<WorkspaceRole>, RepoError> {
        let mut conn = self.conn().await?;
        let role: Option<String> = workspace_members::table
            .find((workspace.as_uuid(), user.as_uuid()))
            .select(workspace_members::role)
            .first(&mut conn)
            .await
            .optional()
            .map_err(repo("reading a workspace role"))?;
        role.as_deref().map(parse_role).transpose()
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace, user = %user))]
    async fn add_workspace_member(
        &self,
        workspace: WorkspaceId,
        user: UserId,
        role: WorkspaceRole,
        joined_at: DateTime<Utc>,
    ) -> Result<WorkspaceMember, AddWorkspaceMemberError> {
        let mut conn = self.conn().await?;
        let membership = diesel::insert_into(workspace_members::table)
            .values((
                workspace_members::workspace_id.eq(workspace.as_uuid()),
                workspace_members::user_id.eq(user.as_uuid()),
                workspace_members::role.eq(role.as_str()),
                workspace_members::joined_at.eq(joined_at),
            ))
            .returning(MembershipRow::as_returning())
            .get_result(&mut conn)
            .await
            .map_err(|e| {
                if is_unique_violation(&e, "workspace_members_pkey") {
                    AddWorkspaceMemberError::Duplicate
                } else {
                    AddWorkspaceMemberError::Repo(RepoError::new("adding a workspace member", e))
                }
            })?;
        let profile = users::table
            .find(user.as_uuid())
            .select(UserRow::as_select())
            .first(&mut conn)
            .await
            .map_err(repo("loading a new workspace member's profile"))?;
        Ok(member(membership, profile)?)
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace))]
    async fn list_workspace_members(&self, workspace: WorkspaceId) -> Result<Vec<WorkspaceMember>, RepoError> {
        let mut conn = self.conn().await?;
        let rows: Vec<(MembershipRow, UserRow)> = workspace_members::table
            .inner_join(users::table)
            .filter(workspace_members::workspace_id.eq(workspace.as_uuid()))
            .order((workspace_members::joined_at.asc(), workspace_members::ordinal.asc()))
            .select((MembershipRow::as_select(), UserRow::as_select()))
            .load(&mut conn)
            .await
            .map_err(repo("listing workspace members"))?;
        rows.into_iter().map(|(m, u)| member(m, u)).collect()
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace, user = %user))]
    async fn remove_workspace_member(&self, workspace: WorkspaceId, user: UserId) -> Result<bool, RepoError> {
        let mut conn = self.conn().await?;
        (*conn)
            .transaction::<_, DieselError, _>(async |conn: &mut AsyncPgConnection| {
                let of_workspace = conversations::table
                    .filter(conversations::workspace_id.eq(workspace.as_uuid()))
                    .select(conversations::id);
                diesel::delete(
                    conversation_members::table
                        .filter(conversation_members::user_id.eq(user.as_uuid()))
                        .filter(conversation_members::conversation_id.eq_any(of_workspace)),
                )
                .execute(conn)
                .await?;
                let removed = diesel::delete(workspace_members::table.find((workspace.as_uuid(), user.as_uuid())))
                    .execute(conn)
                    .await?;
                Ok(removed > 0)
            })
            .await
            .map_err(repo("removing a workspace member"))
    }
}
