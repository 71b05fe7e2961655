//! [`WorkspaceRepository`]: workspaces and their memberships.

use async_trait::async_trait;
use chat_domain::error::RepoError;
use chat_domain::ids::{UserId, WorkspaceId};
use chat_domain::workspace::{
    AddWorkspaceMemberError, CreateWorkspaceError, Workspace, WorkspaceMember, WorkspaceRepository, WorkspaceRole,
    WorkspaceView,
};
use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use crate::rows::{UserRow, WorkspaceMemberRow, WorkspaceRow, key, micros};
use crate::schema::{conversation_members, conversations, presence, users, workspace_members, workspaces};
use crate::store::{SqliteStore, Tx, settle, unique_violation};

#[async_trait]
impl WorkspaceRepository for SqliteStore {
    #[tracing::instrument(skip_all, fields(workspace = %workspace.id, creator = %workspace.created_by))]
    async fn create_workspace(&self, workspace: &Workspace) -> Result<(), CreateWorkspaceError> {
        let row = WorkspaceRow::from_domain(workspace);
        self.run("inserting a workspace", move |c| {
            settle(c.immediate_transaction(|c| {
                diesel::insert_into(workspaces::table).values(&row).execute(c).map_err(|e| {
                    if unique_violation(&e, "workspaces.slug") {
                        Tx::Outcome(CreateWorkspaceError::DuplicateSlug)
                    } else {
                        Tx::Db(e)
                    }
                })?;
                diesel::insert_into(workspace_members::table)
                    .values((
                        workspace_members::workspace_id.eq(&row.id),
                        workspace_members::user_id.eq(&row.created_by),
                        workspace_members::role.eq(WorkspaceRole::Owner.as_str()),
                        workspace_members::joined_at.eq(row.created_at),
                    ))
                    .execute(c)?;
                Ok(())
            }))
        })
        .await?
    }

    #[tracing::instrument(skip_all, fields(workspace = %id))]
    async fn find_workspace(&self, id: WorkspaceId) -> Result<Option<Workspace>, RepoError> {
        self.run("finding a workspace", move |c| {
            let row =
                workspaces::table.find(key(id.as_uuid())).select(WorkspaceRow::as_select()).get_result(c).optional()?;
            row.map(WorkspaceRow::into_workspace).transpose()
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(user = %user))]
    async fn list_workspaces_of(&self, user: UserId) -> Result<Vec<WorkspaceView>, RepoError> {
        self.run("listing a user's workspaces", move |c| {
            let rows = workspaces::table
                .inner_join(workspace_members::table)
                .filter(workspace_members::user_id.eq(key(user.as_uuid())))
                .order_by((workspaces::created_at.asc(), workspaces::id.asc()))
                .select((WorkspaceRow::as_select(), workspace_members::role))
                .load::<(WorkspaceRow, String)>(c)?;
            rows.into_iter()
                .map(|(row, role)| {
                    let role = WorkspaceMemberRow::parse_role(&role)?;
                    Ok(WorkspaceView { workspace: row.into_workspace()?, role })
                })
                .collect()
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace, user = %user))]
    async fn member_role(&self, workspace: WorkspaceId, user: UserId) -> Result<Option<WorkspaceRole>, RepoError> {
        self.run("reading a workspace role", move |c| {
            let role = workspace_members::table
                .find((key(workspace.as_uuid()), key(user.as_uuid())))
                .select(workspace_members::role)
                .get_result::<String>(c)
                .optional()?;
            role.as_deref().map(WorkspaceMemberRow::parse_role).transpose()
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace, user = %user, role = role.as_str()))]
    async fn add_workspace_member(
        &self,
        workspace: WorkspaceId,
        user: UserId,
        role: WorkspaceRole,
        joined_at: DateTime<Utc>,
    ) -> Result<WorkspaceMember, AddWorkspaceMemberError> {
        let (workspace_id, user_id) = (key(workspace.as_uuid()), key(user.as_uuid()));
        let joined_at = micros(joined_at);
        self.run("adding a workspace member", move |c| {
            settle(c.immediate_transaction(|c| {
                diesel::insert_into(workspace_members::table)
                    .values((
                        workspace_members::workspace_id.eq(&workspace_id),
                        workspace_members::user_id.eq(&user_id),
                        workspace_members::role.eq(role.as_str()),
                        workspace_members::joined_at.eq(joined_at),
                    ))
                    .execute(c)
                    .map_err(|e| {
                        if unique_violation(&e, "workspace_members.") {
                            Tx::Outcome(AddWorkspaceMemberError::Duplicate)
                        } else {
                            Tx::Db(e)
                        }
                    })?;
                let (member, profile) = workspace_members::table
                    .inner_join(users::table)
                    .filter(workspace_members::workspace_id.eq(&workspace_id))
                    .filter(workspace_members::user_id.eq(&user_id))
                    .select((WorkspaceMemberRow::as_select(), UserRow::as_select()))
                    .get_result::<(WorkspaceMemberRow, UserRow)>(c)?;
                Ok(member.into_member(profile)?)
            }))
        })
        .await?
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace))]
    async fn list_workspace_members(&self, workspace: WorkspaceId) -> Result<Vec<WorkspaceMember>, RepoError> {
        self.run("listing workspace members", move |c| {
            workspace_members::table
                .inner_join(users::table)
                .filter(workspace_members::workspace_id.eq(key(workspace.as_uuid())))
                // Join order; insertion order among members who joined in the same microsecond.
                .order_by(workspace_members::joined_at.asc())
                .then_order_by(sql::<BigInt>("workspace_members.rowid"))
                .select((WorkspaceMemberRow::as_select(), UserRow::as_select()))
                .load::<(WorkspaceMemberRow, UserRow)>(c)?
                .into_iter()
                .map(|(member, profile)| member.into_member(profile))
                .collect()
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace, user = %user))]
    async fn remove_workspace_member(&self, workspace: WorkspaceId, user: UserId) -> Result<bool, RepoError> {
        let (workspace_id, user_id) = (key(workspace.as_uuid()), key(user.as_uuid()));
        self.run("removing a workspace member", move |c| {
            c.immediate_transaction(|c| {
                let of_workspace = conversations::table
                    .filter(conversations::workspace_id.eq(&workspace_id))
                    .select(conversations::id);
                diesel::delete(
                    conversation_members::table
                        .filter(conversation_members::user_id.eq(&user_id))
                        .filter(conversation_members::conversation_id.eq_any(of_workspace)),
                )
                .execute(c)?;
                diesel::delete(presence::table.find((&user_id, &workspace_id))).execute(c)?;
                let removed = diesel::delete(workspace_members::table.find((&workspace_id, &user_id))).execute(c)?;
                Ok(removed > 0)
            })
        })
        .await
    }
}
