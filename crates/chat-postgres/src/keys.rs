//! Wrapped per-workspace data keys (the master key never reaches the database).

use async_trait::async_trait;
use chat_domain::cipher::{KeyRepository, WrappedKey};
use chat_domain::error::RepoError;
use chat_domain::ids::WorkspaceId;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::schema::workspace_keys;
use crate::{PgStore, repo};

#[async_trait]
impl KeyRepository for PgStore {
    #[tracing::instrument(skip_all, fields(workspace = %workspace))]
    async fn workspace_keys(&self, workspace: WorkspaceId) -> Result<Vec<WrappedKey>, RepoError> {
        let mut conn = self.conn().await?;
        let rows: Vec<(i32, Vec<u8>)> = workspace_keys::table
            .filter(workspace_keys::workspace_id.eq(workspace.as_uuid()))
            .order(workspace_keys::version.asc())
            .select((workspace_keys::version, workspace_keys::wrapped))
            .load(&mut conn)
            .await
            .map_err(repo("listing workspace keys"))?;
        Ok(rows.into_iter().map(|(version, wrapped)| WrappedKey { version, wrapped }).collect())
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace, version = key.version))]
    async fn insert_workspace_key(&self, workspace: WorkspaceId, key: &WrappedKey) -> Result<bool, RepoError> {
        let mut conn = self.conn().await?;
        // The primary key (workspace_id, version) decides between concurrent writers.
        let inserted = diesel::insert_into(workspace_keys::table)
            .values((
                workspace_keys::workspace_id.eq(workspace.as_uuid()),
                workspace_keys::version.eq(key.version),
                workspace_keys::wrapped.eq(&key.wrapped),
            ))
            .on_conflict_do_nothing()
            .execute(&mut conn)
            .await
            .map_err(repo("storing a workspace key"))?;
        Ok(inserted == 1)
    }

    #[tracing::instrument(skip_all)]
    async fn keyed_workspaces(&self) -> Result<Vec<WorkspaceId>, RepoError> {
        let mut conn = self.conn().await?;
        let ids: Vec<uuid::Uuid> = workspace_keys::table
            .select(workspace_keys::workspace_id)
            .distinct()
            .order(workspace_keys::workspace_id.asc())
            .load(&mut conn)
            .await
            .map_err(repo("listing keyed workspaces"))?;
        Ok(ids.into_iter().map(WorkspaceId::from_uuid).collect())
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace))]
    async fn destroy_workspace_keys(&self, workspace: WorkspaceId) -> Result<u64, RepoError> {
        let mut conn = self.conn().await?;
        let deleted =
            diesel::delete(workspace_keys::table.filter(workspace_keys::workspace_id.eq(workspace.as_uuid())))
                .execute(&mut conn)
                .await
                .map_err(repo("destroying workspace keys"))?;
        Ok(deleted as u64)
    }
}
