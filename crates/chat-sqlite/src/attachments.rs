//! Message attachments: the `message_attachments` table links a message to the files it
//! attaches, in the sender's order. It holds ids only; what a message shows of a file (the
//! sealed name, the detected type, the size) is read from the file's own row through it.

use std::collections::HashMap;

use chat_domain::file::StoredFile;
use chat_domain::ids::FileId;
use diesel::dsl::{exists, not};
use diesel::prelude::*;

use crate::files::FileRow;
use crate::rows::key;
use crate::schema::{files, message_attachments};

/// A `message_attachments` row.
#[derive(Insertable)]
#[diesel(table_name = message_attachments, check_for_backend(diesel::sqlite::Sqlite))]
struct AttachmentRow {
    message_id: Vec<u8>,
    file_id: Vec<u8>,
    position: i32,
}

/// Links `files` to `message` in order, inside the insert's transaction, and reads back the
/// linked files (none without attachments, and then no query).
pub(crate) fn link(c: &mut SqliteConnection, message: &[u8], files: &[FileId]) -> QueryResult<Vec<StoredFile>> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<AttachmentRow> = (0..)
        .zip(files)
        .map(|(position, file)| AttachmentRow { message_id: message.to_vec(), file_id: key(file.as_uuid()), position })
        .collect();
    diesel::insert_into(message_attachments::table).values(&rows).execute(c)?;
    Ok(attached(c, &[message.to_vec()])?.remove(message).unwrap_or_default())
}

/// The attachments of every message in `messages`, in one query (none, and no query, for an
/// empty list), per message in the sender's order.
pub(crate) fn attached(
    c: &mut SqliteConnection,
    messages: &[Vec<u8>],
) -> QueryResult<HashMap<Vec<u8>, Vec<StoredFile>>> {
    let mut grouped: HashMap<Vec<u8>, Vec<StoredFile>> = HashMap::new();
    if messages.is_empty() {
        return Ok(grouped);
    }
    let rows: Vec<(Vec<u8>, FileRow)> = message_attachments::table
        .inner_join(files::table)
        .filter(message_attachments::message_id.eq_any(messages))
        .order((message_attachments::message_id.asc(), message_attachments::position.asc()))
        .select((message_attachments::message_id, FileRow::as_select()))
        .load(c)?;
    for (message, file) in rows {
        grouped.entry(message).or_default().push(file.into_domain()?);
    }
    Ok(grouped)
}

/// Inside a message's delete (an immediate transaction, so no other writer interleaves):
/// unlinks its files, then deletes the rows of those of them that `sender` uploaded and no
/// other message attaches (the domain removes their blobs after the commit).
pub(crate) fn unlink(c: &mut SqliteConnection, message: &[u8], sender: &[u8]) -> QueryResult<()> {
    let linked: Vec<Vec<u8>> = message_attachments::table
        .filter(message_attachments::message_id.eq(message))
        .select(message_attachments::file_id)
        .load(c)?;
    if linked.is_empty() {
        return Ok(());
    }
    diesel::delete(message_attachments::table.filter(message_attachments::message_id.eq(message))).execute(c)?;
    diesel::delete(
        files::table
            .filter(files::id.eq_any(&linked))
            .filter(files::uploader_id.eq(sender))
            .filter(not(exists(message_attachments::table.filter(message_attachments::file_id.eq(files::id))))),
    )
    .execute(c)?;
    Ok(())
}
