//! [`SearchIndex`]: the blind index, one `message_search` row per message with its tags in an
//! array under a GIN index. Tags arrive as opaque bytes from the domain; this store never sees
//! a token.

use std::collections::HashMap;

use async_trait::async_trait;
use chat_domain::error::RepoError;
use chat_domain::ids::{MessageId, WorkspaceId};
use chat_domain::search::{IndexEntry, SearchCursor, SearchIndex, TagMatches, TagQuery};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::messages::{MessageRow, with_reactions};
use crate::schema::{message_search as search, messages};
use crate::{PgStore, repo};

#[derive(Insertable)]
#[diesel(table_name = search)]
struct SearchRow<'e> {
    message_id: Uuid,
    workspace_id: Uuid,
    conversation_id: Uuid,
    created_at: DateTime<Utc>,
    tags: Vec<&'e [u8]>,
}

/// Writes the tags of `entries`, one row per message, in one statement (a message already
/// indexed is left as it is), inside the caller's transaction: a send's batch, or a re-index.
pub(crate) async fn insert_tags<'e>(
    mut conn: &AsyncPgConnection,
    entries: impl Iterator<Item = &'e IndexEntry>,
) -> Result<(), diesel::result::Error> {
    let rows: Vec<SearchRow<'e>> = entries
        .filter(|entry| !entry.tags.is_empty())
        .map(|entry| SearchRow {
            message_id: entry.message_id.as_uuid(),
            workspace_id: entry.workspace_id.as_uuid(),
            conversation_id: entry.conversation_id.as_uuid(),
            created_at: entry.created_at,
            tags: entry.tags.iter().map(|tag| &tag.0[..]).collect(),
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    diesel::insert_into(search::table).values(&rows).on_conflict_do_nothing().execute(&mut conn).await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Dropped {
    #[diesel(sql_type = BigInt)]
    tags: i64,
}

#[async_trait]
impl SearchIndex for PgStore {
    #[tracing::instrument(skip_all, fields(message = %entry.message_id, tags = entry.tags.len()))]
    async fn replace_message_tags(&self, entry: &IndexEntry) -> Result<(), RepoError> {
        let message = entry.message_id.as_uuid();
        let mut conn = self.conn().await?;
        (*conn)
            .transaction::<_, diesel::result::Error, _>(async |conn: &mut AsyncPgConnection| {
                diesel::delete(search::table.find(message)).execute(conn).await?;
                insert_tags(conn, std::iter::once(entry)).await
            })
            .await
            .map_err(repo("replacing a message's search tags"))
    }

    #[tracing::instrument(skip_all, fields(message = %message))]
    async fn delete_message_tags(&self, message: MessageId) -> Result<(), RepoError> {
        let mut conn = self.conn().await?;
        diesel::delete(search::table.find(message.as_uuid()))
            .execute(&mut conn)
            .await
            .map_err(repo("dropping a message's search tags"))?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace))]
    async fn delete_workspace_tags(&self, workspace: WorkspaceId) -> Result<u64, RepoError> {
        let mut conn = self.conn().await?;
        // Counted in tags, as the port promises, not in rows.
        let dropped = diesel::sql_query(
            "WITH gone AS (DELETE FROM message_search WHERE workspace_id = $1 RETURNING cardinality(tags) AS n) \
             SELECT coalesce(sum(n), 0)::int8 AS tags FROM gone",
        )
        .bind::<SqlUuid, _>(workspace.as_uuid())
        .get_result::<Dropped>(&mut conn)
        .await
        .map_err(repo("dropping a workspace's search tags"))?;
        Ok(u64::try_from(dropped.tags).unwrap_or_default())
    }

    #[tracing::instrument(skip_all, fields(workspace = %query.workspace_id, tags = query.tags.len(), limit = query.limit))]
    async fn search_messages(&self, query: &TagQuery) -> Result<TagMatches, RepoError> {
        if query.tags.is_empty() || query.conversations.is_empty() || query.limit == 0 {
            return Ok(TagMatches { messages: Vec::new(), next: None });
        }
        let wanted: Vec<Vec<u8>> = query.tags.iter().map(|t| t.0.to_vec()).collect();
        let conversations: Vec<Uuid> = query.conversations.iter().map(|c| c.as_uuid()).collect();
        // Messages carrying every tag (the GIN index answers `@>`), newest first. One more
        // than a page tells whether another page follows.
        let mut lookup = search::table
            .filter(search::workspace_id.eq(query.workspace_id.as_uuid()))
            .filter(search::tags.contains(wanted))
            .filter(search::conversation_id.eq_any(conversations))
            .select((search::message_id, search::created_at))
            .order((search::created_at.desc(), search::message_id.desc()))
            .limit(i64::from(query.limit) + 1)
            .into_boxed();
        if let Some(before) = query.before {
            let id = before.message_id.as_uuid();
            lookup = lookup.filter(
                search::created_at
                    .lt(before.created_at)
                    .or(search::created_at.eq(before.created_at).and(search::message_id.lt(id))),
            );
        }
        let mut conn = self.conn().await?;
        let mut hits: Vec<(Uuid, DateTime<Utc>)> =
            lookup.load(&mut conn).await.map_err(repo("looking up search tags"))?;
        let next = if hits.len() > query.limit as usize {
            hits.truncate(query.limit as usize);
            hits.last().map(|(id, at)| SearchCursor { created_at: *at, message_id: MessageId::from_uuid(*id) })
        } else {
            None
        };
        let ids: Vec<Uuid> = hits.iter().map(|(id, _)| *id).collect();
        let rows: Vec<MessageRow> = messages::table
            .filter(messages::id.eq_any(&ids))
            .filter(messages::deleted_at.is_null())
            .select(MessageRow::as_select())
            .load(&mut conn)
            .await
            .map_err(repo("loading found messages"))?;
        let position: HashMap<Uuid, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let mut rows = rows;
        rows.sort_by_key(|row| position.get(&row.id).copied().unwrap_or(usize::MAX));
        let messages = with_reactions(&mut conn, rows).await?;
        Ok(TagMatches { messages, next })
    }
}
