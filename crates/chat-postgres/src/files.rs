//! [`FileRepository`]: the `files` table (metadata of sealed files; the bodies are in the blob
//! store).

use async_trait::async_trait;
use chat_domain::cipher::Sealed;
use chat_domain::error::RepoError;
use chat_domain::file::{FileRepository, StoredFile};
use chat_domain::ids::{ConversationId, FileId, UserId, WorkspaceId};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::schema::files;
use crate::{PgStore, corrupt, repo};

/// A `files` row.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = files, check_for_backend(diesel::pg::Pg))]
struct FileRow {
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

    fn into_domain(self) -> Result<StoredFile, RepoError> {
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
}
