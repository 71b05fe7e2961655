//! Message attachments: the `message_attachments` table links a message to the files it
//! attaches, in the sender's order. It holds ids only; what a message shows of a file (the
//! sealed name, the detected type, the size) is read from the file's own row through it.

use std::collections::HashMap;

use chat_domain::error::RepoError;
use chat_domain::file::StoredFile;
use chat_domain::ids::FileId;
use diesel::dsl::{exists, not};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::files::FileRow;
use crate::repo;
use crate::schema::{files, message_attachments};

/// A `message_attachments` row.
#[derive(Insertable)]
#[diesel(table_name = message_attachments, check_for_backend(diesel::pg::Pg))]
struct AttachmentRow {
    message_id: Uuid,
    file_id: Uuid,
    position: i32,
}

/// Links `files` to `message` in order, inside the insert's transaction, and reads back the
/// linked files' rows (none without attachments, and then no query).
pub(crate) async fn link(
    mut conn: &AsyncPgConnection,
    message: Uuid,
    files: &[FileId],
) -> Result<Vec<FileRow>, DieselError> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<AttachmentRow> = (0..)
        .zip(files)
        .map(|(position, file)| AttachmentRow { message_id: message, file_id: file.as_uuid(), position })
        .collect();
    diesel::insert_into(message_attachments::table).values(&rows).execute(&mut conn).await?;
    Ok(attached_rows(conn, &[message]).await?.into_iter().map(|(_, file)| file).collect())
}

/// The linked files of every message in `messages`: one query, ordered by message and position.
async fn attached_rows(mut conn: &AsyncPgConnection, messages: &[Uuid]) -> Result<Vec<(Uuid, FileRow)>, DieselError> {
    message_attachments::table
        .inner_join(files::table)
        .filter(message_attachments::message_id.eq_any(messages))
        .order((message_attachments::message_id.asc(), message_attachments::position.asc()))
        .select((message_attachments::message_id, FileRow::as_select()))
        .load(&mut conn)
        .await
}

/// Domain rows of files read by [`link`].
pub(crate) fn into_domain(rows: Vec<FileRow>) -> Result<Vec<StoredFile>, RepoError> {
    rows.into_iter().map(FileRow::into_domain).collect()
}

/// The attachments of every message in `messages`, in one query (none, and no query, for an
/// empty list), per message in the sender's order.
pub(crate) async fn attached(
    conn: &mut AsyncPgConnection,
    messages: &[Uuid],
) -> Result<HashMap<Uuid, Vec<StoredFile>>, RepoError> {
    let mut grouped: HashMap<Uuid, Vec<StoredFile>> = HashMap::new();
    if messages.is_empty() {
        return Ok(grouped);
    }
    let rows = attached_rows(conn, messages).await.map_err(repo("loading attachments"))?;
    for (message, file) in rows {
        grouped.entry(message).or_default().push(file.into_domain()?);
    }
    Ok(grouped)
}

/// Inside a message's delete: unlinks its files, then deletes the rows of those of them that
/// `sender` uploaded and no other message attaches (the domain removes their blobs after the
/// commit). The files are locked first, so that two deletes of messages sharing a file take
/// turns and the second one sees the first one's unlink.
pub(crate) async fn unlink(conn: &mut AsyncPgConnection, message: Uuid, sender: Uuid) -> Result<(), DieselError> {
    let linked: Vec<Uuid> = message_attachments::table
        .filter(message_attachments::message_id.eq(message))
        .select(message_attachments::file_id)
        .load(conn)
        .await?;
    if linked.is_empty() {
        return Ok(());
    }
    files::table.filter(files::id.eq_any(&linked)).select(files::id).for_update().load::<Uuid>(conn).await?;
    diesel::delete(message_attachments::table.filter(message_attachments::message_id.eq(message)))
        .execute(conn)
        .await?;
    diesel::delete(
        files::table
            .filter(files::id.eq_any(&linked))
            .filter(files::uploader_id.eq(sender))
            .filter(not(exists(message_attachments::table.filter(message_attachments::file_id.eq(files::id))))),
    )
    .execute(conn)
    .await?;
    Ok(())
}
