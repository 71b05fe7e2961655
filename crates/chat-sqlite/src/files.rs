//! [`FileRepository`]: the `files` table (metadata of sealed files; the bodies are in the blob
//! store).

use async_trait::async_trait;
use chat_domain::cipher::Sealed;
use chat_domain::error::RepoError;
use chat_domain::file::{FileRepository, FileSeals, SealedFileRow, StoredFile};
use chat_domain::ids::{ConversationId, FileId, UserId, WorkspaceId};
use diesel::prelude::*;

use crate::rows::{corrupt, instant, key, micros, uuid};
use crate::schema::files;
use crate::store::SqliteStore;

/// A `files` row (also read through a message's attachments).
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = files, check_for_backend(diesel::sqlite::Sqlite))]
pub(crate) struct FileRow {
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

    pub(crate) fn into_domain(self) -> QueryResult<StoredFile> {
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
                .get_result(c)
                .optional()?
                .map(FileRow::into_domain)
                .transpose()
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(files = ids.len()))]
    async fn find_files(&self, ids: &[FileId]) -> Result<Vec<StoredFile>, RepoError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Vec<u8>> = ids.iter().map(|id| key(id.as_uuid())).collect();
        self.run("finding file rows", move |c| {
            let rows = files::table.filter(files::id.eq_any(&ids)).select(FileRow::as_select()).load(c)?;
            rows.into_iter().map(FileRow::into_domain).collect()
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace, below_version, limit))]
    async fn sealed_files_in_workspace(
        &self,
        workspace: WorkspaceId,
        below_version: i32,
        after: Option<FileId>,
        limit: u32,
    ) -> Result<Vec<SealedFileRow>, RepoError> {
        let workspace = key(workspace.as_uuid());
        let after = after.map(|id| key(id.as_uuid()));
        self.run("listing file keys and names to re-encrypt", move |c| {
            let mut query = files::table
                .filter(files::workspace_id.eq(workspace))
                .filter(files::key_version.lt(below_version).or(files::name_key_version.lt(below_version)))
                .order_by(files::id.asc())
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
                query = query.filter(files::id.gt(after));
            }
            let rows: Vec<(Vec<u8>, Vec<u8>, Vec<u8>, i32, Vec<u8>, i32)> = query.load(c)?;
            rows.into_iter()
                .map(|(id, conversation, name, name_version, file_key, key_version)| {
                    Ok(SealedFileRow {
                        id: FileId::from_uuid(uuid(&id)?),
                        conversation_id: ConversationId::from_uuid(uuid(&conversation)?),
                        seals: FileSeals {
                            name: Sealed { key_version: name_version, bytes: name },
                            file_key: Sealed { key_version, bytes: file_key },
                        },
                    })
                })
                .collect()
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(file = %id, to = new.file_key.key_version))]
    async fn replace_file_seals(&self, id: FileId, expected: &FileSeals, new: &FileSeals) -> Result<bool, RepoError> {
        let (id, expected, new) = (key(id.as_uuid()), expected.clone(), new.clone());
        self.run("replacing a file's key and name", move |c| {
            let replaced = diesel::update(
                files::table
                    .find(&id)
                    .filter(files::name_key_version.eq(expected.name.key_version))
                    .filter(files::name.eq(expected.name.bytes))
                    .filter(files::key_version.eq(expected.file_key.key_version))
                    .filter(files::wrapped_file_key.eq(expected.file_key.bytes)),
            )
            .set((
                files::name.eq(new.name.bytes),
                files::name_key_version.eq(new.name.key_version),
                files::wrapped_file_key.eq(new.file_key.bytes),
                files::key_version.eq(new.file_key.key_version),
            ))
            .execute(c)?;
            Ok(replaced == 1)
        })
        .await
    }
}
