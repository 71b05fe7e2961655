//! [`SearchIndex`]: the blind index, one `message_search_docs` row per message with its tags
//! as hex words, and the FTS5 table `message_search` over them (kept in step by triggers; see
//! the migration `search_fts5`). Tags arrive as opaque bytes from the domain; this store never
//! sees a token.

use std::collections::HashMap;
use std::fmt::Write as _;

use async_trait::async_trait;
use chat_diesel::prepared;
use chat_domain::error::RepoError;
use chat_domain::ids::{MessageId, WorkspaceId};
use chat_domain::search::{IndexEntry, SearchCursor, SearchIndex, TagMatches, TagQuery};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Text};
use diesel::sqlite::Sqlite;

use crate::messages::with_reactions;
use crate::rows::{MessageRow, instant, key, micros, uuid};
use crate::schema::{message_search_docs as docs, messages};
use crate::store::SqliteStore;

/// A tag as an FTS5 word: lower-case hex, which the `ascii` tokenizer keeps whole.
fn word(tag: &[u8]) -> String {
    hex::encode(tag)
}

/// Writes the documents of `entries` (an entry without tags has none; a message already
/// indexed is left as it is) in ONE statement, inside the caller's transaction: a send's batch
/// after its last message, or a re-index. The trigger adds their words to the FTS5 index.
///
/// One statement, because FTS5 writes what it buffered as a new segment at every statement
/// savepoint (`fts5SavepointMethod` flushes), and SQLite opens one for each statement that
/// may abort — every insert into a table with a trigger: a document written per message made
/// a segment per message, where this makes one per batch, at COMMIT. The rows travel as one
/// JSON array (constant SQL, prepared once): `[[message, workspace, conversation, created_at,
/// words, tag count], …]`, the ids in hex. Every field is hex or a number, so nothing in it
/// needs escaping.
pub(crate) fn insert_docs<'a>(
    c: &mut SqliteConnection,
    entries: impl IntoIterator<Item = &'a IndexEntry>,
) -> QueryResult<()> {
    let mut rows = String::from("[");
    for entry in entries.into_iter().filter(|e| !e.tags.is_empty()) {
        if rows.len() > 1 {
            rows.push(',');
        }
        let words = entry.tags.iter().map(|tag| word(&tag.0)).collect::<Vec<_>>().join(" ");
        // Writing into a String cannot fail.
        let _ = write!(
            rows,
            "[\"{}\",\"{}\",\"{}\",{},\"{words}\",{}]",
            hex::encode(entry.message_id.as_uuid().as_bytes()),
            hex::encode(entry.workspace_id.as_uuid().as_bytes()),
            hex::encode(entry.conversation_id.as_uuid().as_bytes()),
            micros(entry.created_at),
            entry.tags.len(),
        );
    }
    if rows.len() == 1 {
        return Ok(());
    }
    rows.push(']');
    prepared(INSERT_DOCS, (rows.into_sql::<Text>(),)).execute(c)?;
    Ok(())
}

/// `insert_docs`' statement. (An upsert after `INSERT … SELECT` needs the `WHERE`, or SQLite
/// reads `ON` as a join constraint.)
const INSERT_DOCS: &str = "INSERT INTO message_search_docs \
     (message_id, workspace_id, conversation_id, created_at, tags, tag_count) \
     SELECT unhex(d.value ->> 0), unhex(d.value ->> 1), unhex(d.value ->> 2), \
            d.value ->> 3, d.value ->> 4, d.value ->> 5 \
     FROM json_each(?) AS d WHERE true \
     ON CONFLICT DO NOTHING";

#[derive(QueryableByName)]
struct Hit {
    #[diesel(sql_type = Binary)]
    message_id: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    created_at: i64,
}

#[async_trait]
impl SearchIndex for SqliteStore {
    #[tracing::instrument(skip_all, fields(message = %entry.message_id, tags = entry.tags.len()))]
    async fn replace_message_tags(&self, entry: &IndexEntry) -> Result<(), RepoError> {
        let entry = entry.clone();
        self.run("replacing a message's search tags", move |c| {
            c.immediate_transaction(|c| {
                let message = key(entry.message_id.as_uuid());
                diesel::delete(docs::table.filter(docs::message_id.eq(&message))).execute(c)?;
                insert_docs(c, [&entry])
            })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(message = %message))]
    async fn delete_message_tags(&self, message: MessageId) -> Result<(), RepoError> {
        let message = key(message.as_uuid());
        self.run("dropping a message's search tags", move |c| {
            diesel::delete(docs::table.filter(docs::message_id.eq(message))).execute(c).map(drop)
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace))]
    async fn delete_workspace_tags(&self, workspace: WorkspaceId) -> Result<u64, RepoError> {
        let workspace = key(workspace.as_uuid());
        self.run("deleting a workspace's search tags", move |c| {
            // Counted in tags, as the port promises, not in documents.
            let counts: Vec<i32> = diesel::delete(docs::table.filter(docs::workspace_id.eq(workspace)))
                .returning(docs::tag_count)
                .get_results(c)?;
            Ok(counts.into_iter().map(|n| u64::try_from(n).unwrap_or_default()).sum())
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(workspace = %query.workspace_id, tags = query.tags.len(), limit = query.limit))]
    async fn search_messages(&self, query: &TagQuery) -> Result<TagMatches, RepoError> {
        if query.tags.is_empty() || query.conversations.is_empty() || query.limit == 0 {
            return Ok(TagMatches { messages: Vec::new(), next: None });
        }
        // Documents holding every tag (an FTS5 AND of quoted words), newest first. One more
        // than a page tells whether another page follows. The text depends on the number of
        // conversations, so diesel prepares it on each call; the limit, our own number, is
        // written into it.
        let matching = query.tags.iter().map(|t| format!("\"{}\"", word(&t.0))).collect::<Vec<_>>().join(" AND ");
        let conversations: Vec<Vec<u8>> = query.conversations.iter().map(|c| key(c.as_uuid())).collect();
        let workspace = key(query.workspace_id.as_uuid());
        let before = query.before.map(|b| (micros(b.created_at), key(b.message_id.as_uuid())));
        let limit = query.limit as usize;
        let mut sql = String::from(
            "SELECT d.message_id, d.created_at FROM message_search JOIN message_search_docs AS d \
             ON d.doc = message_search.rowid \
             WHERE message_search MATCH ? AND d.workspace_id = ? AND d.conversation_id IN (",
        );
        sql.push_str(&vec!["?"; conversations.len()].join(", "));
        sql.push(')');
        if before.is_some() {
            sql.push_str(" AND (d.created_at < ? OR (d.created_at = ? AND d.message_id < ?))");
        }
        sql.push_str(&format!(" ORDER BY d.created_at DESC, d.message_id DESC LIMIT {}", limit + 1));
        self.run("searching messages by tags", move |c| {
            c.transaction(|c| {
                let mut lookup = diesel::sql_query(sql)
                    .into_boxed::<Sqlite>()
                    .bind::<Text, _>(matching)
                    .bind::<Binary, _>(workspace);
                for conversation in conversations {
                    lookup = lookup.bind::<Binary, _>(conversation);
                }
                if let Some((at, id)) = before {
                    lookup = lookup.bind::<BigInt, _>(at).bind::<BigInt, _>(at).bind::<Binary, _>(id);
                }
                let mut hits: Vec<(Vec<u8>, i64)> =
                    lookup.load::<Hit>(c)?.into_iter().map(|hit| (hit.message_id, hit.created_at)).collect();
                let next = if hits.len() > limit {
                    hits.truncate(limit);
                    match hits.last() {
                        Some((id, at)) => Some(SearchCursor {
                            created_at: instant(*at)?,
                            message_id: MessageId::from_uuid(uuid(id)?),
                        }),
                        None => None,
                    }
                } else {
                    None
                };
                let ids: Vec<Vec<u8>> = hits.into_iter().map(|(id, _)| id).collect();
                let mut rows: Vec<MessageRow> = messages::table
                    .filter(messages::id.eq_any(&ids))
                    .filter(messages::deleted_at.is_null())
                    .select(MessageRow::as_select())
                    .load(c)?;
                let position: HashMap<&[u8], usize> =
                    ids.iter().enumerate().map(|(i, id)| (id.as_slice(), i)).collect();
                rows.sort_by_key(|row| position.get(row.id.as_slice()).copied().unwrap_or(usize::MAX));
                let messages = with_reactions(c, rows)?;
                Ok(TagMatches { messages, next })
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::migration::{MigrationConnection, MigrationSource};
    use diesel::sql_types::Integer;
    use diesel_migrations::MigrationHarness;

    use super::*;

    #[derive(QueryableByName, Debug, PartialEq, Eq)]
    struct TagRow {
        #[diesel(sql_type = Text)]
        message: String,
        #[diesel(sql_type = Text)]
        tag: String,
    }

    #[derive(QueryableByName, Debug, PartialEq, Eq)]
    struct DocRow {
        #[diesel(sql_type = Text)]
        message: String,
        #[diesel(sql_type = Integer)]
        tag_count: i32,
    }

    fn tag_rows(c: &mut SqliteConnection) -> Vec<TagRow> {
        diesel::sql_query(
            "SELECT hex(message_id) AS message, lower(hex(tag)) AS tag FROM message_search_tags ORDER BY 1, 2",
        )
        .load(c)
        .expect("tags")
    }

    #[test]
    fn the_fts5_migration_carries_indexed_tags_over_and_back() {
        let mut c = SqliteConnection::establish(":memory:").expect("open");
        let mut migrations = crate::store::MIGRATIONS.migrations().expect("migrations");
        let fts5 = migrations.pop().expect("the last migration");
        assert!(fts5.name().to_string().ends_with("search_fts5"), "{}", fts5.name());
        c.setup().expect("the migrations table");
        for migration in &migrations {
            c.run_migration(migration.as_ref()).expect("migrate");
        }
        // Two messages' tags in the old layout, without the rows they refer to.
        c.batch_execute(
            "PRAGMA foreign_keys = OFF;
             INSERT INTO messages (id, conversation_id, seq, sender_id, kind, created_at) VALUES
                 (x'01010101010101010101010101010101', x'0c', 1, x'05', 'text', 10),
                 (x'02020202020202020202020202020202', x'0c', 2, x'05', 'text', 20);
             INSERT INTO message_search_tags (message_id, tag, workspace_id, conversation_id, created_at) VALUES
                 (x'01010101010101010101010101010101', x'aa000000000000000000000000000000', x'0f', x'0c', 10),
                 (x'01010101010101010101010101010101', x'bb000000000000000000000000000000', x'0f', x'0c', 10),
                 (x'01010101010101010101010101010101', x'cc000000000000000000000000000000', x'0f', x'0c', 10),
                 (x'02020202020202020202020202020202', x'aa000000000000000000000000000000', x'0f', x'0c', 20),
                 (x'02020202020202020202020202020202', x'dd000000000000000000000000000000', x'0f', x'0c', 20);",
        )
        .expect("seed");
        let before = tag_rows(&mut c);

        c.run_migration(fts5.as_ref()).expect("up");
        let docs: Vec<DocRow> =
            diesel::sql_query("SELECT hex(message_id) AS message, tag_count FROM message_search_docs ORDER BY 1")
                .load(&mut c)
                .expect("docs");
        assert_eq!(
            docs,
            [DocRow { message: "01".repeat(16), tag_count: 3 }, DocRow { message: "02".repeat(16), tag_count: 2 }]
        );
        let found = |c: &mut SqliteConnection, query: &str| -> Vec<String> {
            diesel::sql_query(
                "SELECT hex(d.message_id) AS message, '' AS tag FROM message_search \
                 JOIN message_search_docs AS d ON d.doc = message_search.rowid \
                 WHERE message_search MATCH ? ORDER BY 1",
            )
            .bind::<Text, _>(query)
            .load::<TagRow>(c)
            .expect("match")
            .into_iter()
            .map(|row| row.message)
            .collect()
        };
        let (aa, bb) = (format!("\"aa{}\"", "0".repeat(30)), format!("\"bb{}\"", "0".repeat(30)));
        assert_eq!(found(&mut c, &aa), ["01".repeat(16), "02".repeat(16)]);
        assert_eq!(found(&mut c, &format!("{aa} AND {bb}")), ["01".repeat(16)]);

        c.revert_last_migration(crate::store::MIGRATIONS).expect("down");
        assert_eq!(tag_rows(&mut c), before);
    }
}
