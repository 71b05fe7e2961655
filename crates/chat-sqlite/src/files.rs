//! [`FileRepository`]: the `files` table (metadata of sealed files; the bodies are in the blob
//! store).

use async_trait::async_trait;
use chat_domain::cipher::Sealed;
use chat_domain::error::RepoError;
use chat_domain::file::{FileRepository, StoredFile};
use chat_domain::ids::{ConversationId, FileId, UserId, WorkspaceId};
use diesel::prelude::*;

use crate::rows::{corrupt, instant, key, micros, uuid};
use crate::schema::files;
use crate::store::SqliteStore;

/// A `files` row.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = files, check_for_backend(diesel::sqlite::Sqlite))]
struct FileRow {
    id: Vec<u8>,
    workspace_id: Vec<u8>,
    conversation_id: Vec<u8>,
    uploader_id: Vec<u8>,
    name: Vec<u8>,
    name_key_version: i32,
    content_type: String,
    size: i64,
    storage_key: String,
    wrapped_file_key: Vec<u8>,
    key_version: i32,
    created_at: i64,
}

impl FileRow {
    fn from_domain(f: &StoredFile) -> Result<Self, RepoError> {
        Ok(Self {
            id: key(f.id.as_uuid()),
            workspace_id: key(f.workspace_id.as_uuid()),
            conversation_id: key(f.conversation_id.as_uuid()),
            uploader_id: key(f.uploader.as_uuid()),
            name: f.name.bytes.clone(),
            name_key_version: f.name.key_version,
            content_type: f.content_type.clone(),
            size: i64::try_from(f.size).map_err(|e| RepoError::new("file size out of range", e))?,
            storage_key: f.storage_key.clone(),
            wrapped_file_key: f.wrapped_file_key.clone(),
            key_version: f.key_version,
            created_at: micros(f.created_at),
        })
    }

    fn into_domain(self) -> QueryResult<StoredFile> {
        Ok(StoredFile {
            id: FileId::from_uuid(uuid(&self.id)?),
            workspace_id: WorkspaceId::from_uuid(uuid(&self.workspace_id)?),
            conversation_id: ConversationId::from_uuid(uuid(&self.conversation_id)?),
            uploader: UserId::from_uuid(uuid(&self.uploader_id)?),
            name: Sealed { key_version: self.name_key_version, bytes: self.name },
            content_type: self.content_type,
            size: u64::try_from(self.size).map_err(|_| corrupt("negative file size"))?,
            storage_key: self.storage_key,
            wrapped_file_key: self.wrapped_file_key,
            key_version: self.key_version,
            created_at: instant(self.created_at)?,
        })
    }
}

#[async_trait]
impl FileRepository for SqliteStore {
    #[tracing::instrument(skip_all, fields(file = %file.id))]
    async fn insert_file(&self, file: &StoredFile) -> Result<(), RepoError> {
        let row = FileRow::from_domain(file)?;
        self.run("storing a file row", move |c| diesel::insert_into(files::table).values(&row).execute(c).map(drop))
            .await
    }

    #[tracing::instrument(skip(self))]
    async fn find_file(&self, id: FileId) -> Result<Option<StoredFile>, RepoError> {
        let id = key(id.as_uuid());
        self.run("finding a file row", move |c| {
            files::table
                .find(id)
                .select(FileRow::as_select())
                .first(c)
                .optional()?
                .map(FileRow::into_domain)
                .transpose()
        })
        .await
    }
}
