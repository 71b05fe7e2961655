//! [`FileRepository`]: the `files` table (metadata of sealed files; the bodies are in the blob
//! store).

use async_trait::async_trait;
use chat_domain::cipher::Sealed;
use chat_domain::error::RepoError;
use chat_domain::file::{FileRepository, FileSeals, SealedFileRow, StoredFile};
use chat_domain::ids::{ConversationId, FileId, UserId, WorkspaceId};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::schema::files;
use crate::{PgStore, corrupt, repo};

/// A `files` row (also read through a message's attachments).
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = files, check_for_backend(diesel::pg::Pg))]
pub(crate) struct FileRow {
    id: Uuid,
    workspace_id: Uuid,
    conversation_id: Uuid,
    uploader_id: Uuid,
    name: Vec<u8>,
    name_key_version: i32,
    content_type: String,
    size: i64,
    storage_key: String,
    wrapped_file_key: Vec<u8>,
    key_version: i32,
    created_at: DateTime<Utc>,
}

impl FileRow {
    fn from_domain(f: &StoredFile) -> Result<Self, RepoError> {
        Ok(Self {
            id: f.id.as_uuid(),
            workspace_id: f.workspace_id.as_uuid(),
            conversation_id: f.conversation_id.as_uuid(),
            uploader_id: f.uploader.as_uuid(),
            name: f.name.bytes.clone(),
            name_key_version: f.name.key_version,
            content_type: f.content_type.clone(),
            size: i64::try_from(f.size).map_err(|e| RepoError::new("file size out of range", e))?,
            storage_key: f.storage_key.clone(),
            wrapped_file_key: f.wrapped_file_key.clone(),
            key_version: f.key_version,
            created_at: f.created_at,
        })
    }

    pub(crate) fn into_domain(self) -> Result<StoredFile, RepoError> {
        Ok(StoredFile {
            id: FileId::from_uuid(self.id),
            workspace_id: WorkspaceId::from_uuid(self.workspace_id),
            conversation_id: ConversationId::from_uuid(self.conversation_id),
            uploader: UserId::from_uuid(self.uploader_id),
            name: Sealed { key_version: self.name_key_version, bytes: self.name },
            content_type: self.content_type,
            size: u64::try_from(self.size).map_err(|_| corrupt("stored file size is negative"))?,
            storage_key: self.storage_key,
            wrapped_file_key: self.wrapped_file_key,
            key_version: self.key_version,
            created_at: self.created_at,
        })
    }
}

#[async_trait]
impl FileRepository for PgStore {
    #[tracing::instrument(skip_all, fields(file = %file.id))]
    async fn insert_file(&self, file: &StoredFile) -> Result<(), RepoError> {
        let row = FileRow::from_domain(file)?;
        let mut conn = self.conn().await?;
        diesel::insert_into(files::table).values(row).execute(&mut conn).await.map_err(repo("storing a file row"))?;
        Ok(())
    }

    #[tracing::instrument(skip(self))]
    async fn find_file(&self, id: FileId) -> Result<Option<StoredFile>, RepoError> {
        let mut conn = self.conn().await?;
        let row = files::table
            .find(id.as_uuid())
            .select(FileRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(repo("finding a file row"))?;
        row.map(FileRow::into_domain).transpose()
    }

    #[tracing::instrument(skip_all, fields(files = ids.len()))]
    async fn find_files(&self, ids: &[FileId]) -> Result<Vec<StoredFile>, RepoError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = ids.iter().map(FileId::as_uuid).collect();
        let mut conn = self.conn().await?;
        let rows = files::table
            .filter(files::id.eq_any(&ids))
            .select(FileRow::as_select())
            .load(&mut conn)
            .await
            .map_err(repo("finding file rows"))?;
        rows.into_iter().map(FileRow::into_domain).collect()
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace, below_version, limit))]
    async fn sealed_files_in_workspace(
        &self,
        workspace: WorkspaceId,
        below_version: i32,
        after: Option<FileId>,
        limit: u32,
    ) -> Result<Vec<SealedFileRow>, RepoError> {
        let mut conn = self.conn().await?;
        let mut query = files::table
            .filter(files::workspace_id.eq(workspace.as_uuid()))
            .filter(files::key_version.lt(below_version).or(files::name_key_version.lt(below_version)))
            .order(files::id.asc())
            .limit(i64::from(limit))
            .select((
                files::id,
                files::conversation_id,
                files::name,
                files::name_key_version,
                files::wrapped_file_key,
                files::key_version,
            ))
            .into_boxed();
        if let Some(after) = after {
            query = query.filter(files::id.gt(after.as_uuid()));
        }
        let rows: Vec<(Uuid, Uuid, Vec<u8>, i32, Vec<u8>, i32)> =
            query.load(&mut conn).await.map_err(repo("listing file keys and names to re-encrypt"))?;
        Ok(rows
            .into_iter()
            .map(|(id, conversation, name, name_version, file_key, key_version)| SealedFileRow {
                id: FileId::from_uuid(id),
                conversation_id: ConversationId::from_uuid(conversation),
                seals: FileSeals {
                    name: Sealed { key_version: name_version, bytes: name },
                    file_key: Sealed { key_version, bytes: file_key },
                },
            })
            .collect())
    }

    #[tracing::instrument(skip_all, fields(file = %id, to = new.file_key.key_version))]
    async fn replace_file_seals(&self, id: FileId, expected: &FileSeals, new: &FileSeals) -> Result<bool, RepoError> {
        let mut conn = self.conn().await?;
        let replaced = diesel::update(
            files::table
                .find(id.as_uuid())
                .filter(files::name_key_version.eq(expected.name.key_version))
                .filter(files::name.eq(&expected.name.bytes))
                .filter(files::key_version.eq(expected.file_key.key_version))
                .filter(files::wrapped_file_key.eq(&expected.file_key.bytes)),
        )
        .set((
            files::name.eq(&new.name.bytes),
            files::name_key_version.eq(new.name.key_version),
            files::wrapped_file_key.eq(&new.file_key.bytes),
            files::key_version.eq(new.file_key.key_version),
        ))
        .execute(&mut conn)
        .await
        .map_err(repo("replacing a file's key and name"))?;
        Ok(replaced == 1)
    }
}
