//! [`SearchIndex`]: the blind index's `(message, tag)` rows. Tags arrive as opaque bytes from
//! the domain; this store never sees a token.

use std::collections::HashMap;

use async_trait::async_trait;
use chat_domain::error::RepoError;
use chat_domain::ids::{MessageId, WorkspaceId};
use chat_domain::search::{IndexEntry, SearchCursor, SearchIndex, TagMatches, TagQuery};
use chrono::{DateTime, Utc};
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel::sql_types::{Array, Bytea, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::messages::{MessageRow, with_reactions};
use crate::schema::{message_search_tags as tags, messages};
use crate::{PgStore, repo};

/// Writes the tags of `entries` in one statement (distinct per message; a repeat would be a
/// no-op, not an error), inside the caller's transaction: a send's batch, or a re-index.
pub(crate) async fn insert_tags<'e>(
    mut conn: &AsyncPgConnection,
    entries: impl Iterator<Item = &'e IndexEntry>,
) -> Result<(), diesel::result::Error> {
    let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for entry in entries {
        for tag in &entry.tags {
            columns.0.push(entry.message_id.as_uuid());
            columns.1.push(tag.0.to_vec());
            columns.2.push(entry.workspace_id.as_uuid());
            columns.3.push(entry.conversation_id.as_uuid());
            columns.4.push(entry.created_at);
        }
    }
    if columns.0.is_empty() {
        return Ok(());
    }
    diesel::sql_query(crate::sql::INSERT_TAGS)
        .bind::<Array<SqlUuid>, _>(columns.0)
        .bind::<Array<Bytea>, _>(columns.1)
        .bind::<Array<SqlUuid>, _>(columns.2)
        .bind::<Array<SqlUuid>, _>(columns.3)
        .bind::<Array<Timestamptz>, _>(columns.4)
        .execute(&mut conn)
        .await?;
    Ok(())
}

#[async_trait]
impl SearchIndex for PgStore {
    #[tracing::instrument(skip_all, fields(message = %entry.message_id, tags = entry.tags.len()))]
    async fn replace_message_tags(&self, entry: &IndexEntry) -> Result<(), RepoError> {
        let message = entry.message_id.as_uuid();
        let mut conn = self.conn().await?;
        (*conn)
            .transaction::<_, diesel::result::Error, _>(async |conn: &mut AsyncPgConnection| {
                diesel::delete(tags::table.filter(tags::message_id.eq(message))).execute(conn).await?;
                insert_tags(conn, std::iter::once(entry)).await
            })
            .await
            .map_err(repo("replacing a message's search tags"))
    }

    #[tracing::instrument(skip_all, fields(message = %message))]
    async fn delete_message_tags(&self, message: MessageId) -> Result<(), RepoError> {
        let mut conn = self.conn().await?;
        diesel::delete(tags::table.filter(tags::message_id.eq(message.as_uuid())))
            .execute(&mut conn)
            .await
            .map_err(repo("dropping a message's search tags"))?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace))]
    async fn delete_workspace_tags(&self, workspace: WorkspaceId) -> Result<u64, RepoError> {
        let mut conn = self.conn().await?;
        let deleted = diesel::delete(tags::table.filter(tags::workspace_id.eq(workspace.as_uuid())))
            .execute(&mut conn)
            .await
            .map_err(repo("dropping a workspace's search tags"))?;
        Ok(deleted as u64)
    }

    #[tracing::instrument(skip_all, fields(workspace = %query.workspace_id, tags = query.tags.len(), limit = query.limit))]
    async fn search_messages(&self, query: &TagQuery) -> Result<TagMatches, RepoError> {
        if query.tags.is_empty() || query.conversations.is_empty() || query.limit == 0 {
            return Ok(TagMatches { messages: Vec::new(), next: None });
        }
        let wanted: Vec<Vec<u8>> = query.tags.iter().map(|t| t.0.to_vec()).collect();
        let conversations: Vec<Uuid> = query.conversations.iter().map(|c| c.as_uuid()).collect();
        let needed = i64::try_from(wanted.len()).map_err(|e| RepoError::new("too many search tags", e))?;
        // Messages carrying every tag: as many matching rows as tags (tags are distinct per
        // message). One more than a page tells whether another page follows.
        let mut lookup = tags::table
            .filter(tags::workspace_id.eq(query.workspace_id.as_uuid()))
            .filter(tags::tag.eq_any(wanted))
            .filter(tags::conversation_id.eq_any(conversations))
            .group_by((tags::message_id, tags::created_at))
            .having(count_star().eq(needed))
            .select((tags::message_id, tags::created_at))
            .order((tags::created_at.desc(), tags::message_id.desc()))
            .limit(i64::from(query.limit) + 1)
            .into_boxed();
        if let Some(before) = query.before {
            let id = before.message_id.as_uuid();
            lookup = lookup.filter(
                tags::created_at
                    .lt(before.created_at)
                    .or(tags::created_at.eq(before.created_at).and(tags::message_id.lt(id))),
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
