//! [`KeyRepository`]: wrapped per-workspace data keys, by version.

use async_trait::async_trait;
use chat_domain::cipher::{KeyRepository, WrappedKey};
use chat_domain::error::RepoError;
use chat_domain::ids::WorkspaceId;
use chrono::Utc;
use diesel::prelude::*;

use crate::rows::{WorkspaceKeyRow, key, micros, uuid};
use crate::schema::workspace_keys;
use crate::store::SqliteStore;

#[async_trait]
impl KeyRepository for SqliteStore {
    #[tracing::instrument(skip_all, fields(workspace = %workspace))]
    async fn workspace_keys(&self, workspace: WorkspaceId) -> Result<Vec<WrappedKey>, RepoError> {
        self.run("loading workspace keys", move |c| {
            let rows = workspace_keys::table
                .filter(workspace_keys::workspace_id.eq(key(workspace.as_uuid())))
                .order_by(workspace_keys::version.asc())
                .select(WorkspaceKeyRow::as_select())
                .load(c)?;
            Ok(rows.into_iter().map(WorkspaceKeyRow::into_key).collect())
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace, version = wrapped.version))]
    async fn insert_workspace_key(&self, workspace: WorkspaceId, wrapped: &WrappedKey) -> Result<bool, RepoError> {
        let values = (
            workspace_keys::workspace_id.eq(key(workspace.as_uuid())),
            workspace_keys::version.eq(wrapped.version),
            workspace_keys::wrapped.eq(wrapped.wrapped.clone()),
            workspace_keys::created_at.eq(micros(Utc::now())),
        );
        self.run("inserting a workspace key", move |c| {
            // The primary key decides between concurrent writers of one version.
            let inserted =
                diesel::insert_into(workspace_keys::table).values(values).on_conflict_do_nothing().execute(c)?;
            Ok(inserted == 1)
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn keyed_workspaces(&self) -> Result<Vec<WorkspaceId>, RepoError> {
        self.run("listing keyed workspaces", move |c| {
            let ids: Vec<Vec<u8>> = workspace_keys::table
                .select(workspace_keys::workspace_id)
                .distinct()
                .order_by(workspace_keys::workspace_id.asc())
                .load(c)?;
            ids.iter().map(|id| Ok(WorkspaceId::from_uuid(uuid(id)?))).collect()
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace))]
    async fn destroy_workspace_keys(&self, workspace: WorkspaceId) -> Result<u64, RepoError> {
        let workspace = key(workspace.as_uuid());
        self.run("destroying workspace keys", move |c| {
            let deleted =
                diesel::delete(workspace_keys::table.filter(workspace_keys::workspace_id.eq(workspace))).execute(c)?;
            Ok(deleted as u64)
        })
        .await
    }
}
