//! [`SearchIndex`]: the blind index's `(message, tag)` rows. Tags arrive as opaque bytes from
//! the domain; this store never sees a token.

use std::collections::HashMap;

use async_trait::async_trait;
use chat_domain::error::RepoError;
use chat_domain::ids::{MessageId, WorkspaceId};
use chat_domain::search::{IndexEntry, SearchCursor, SearchIndex, TagMatches, TagQuery};
use diesel::dsl::count_star;
use diesel::prelude::*;

use crate::messages::with_reactions;
use crate::rows::{MessageRow, instant, key, micros, uuid};
use crate::schema::{message_search_tags as tags, messages};
use crate::store::SqliteStore;

/// Writes a message's tags (distinct per message; a repeat would be a no-op, not an error),
/// inside the caller's transaction: a send's batch, or a re-index. One statement per row:
/// SQLite caps the bound parameters of one statement, and prepared statements are cached.
pub(crate) fn insert_tags(c: &mut SqliteConnection, entry: &IndexEntry) -> QueryResult<()> {
    let message = key(entry.message_id.as_uuid());
    let (workspace, conversation) = (key(entry.workspace_id.as_uuid()), key(entry.conversation_id.as_uuid()));
    let created_at = micros(entry.created_at);
    for tag in &entry.tags {
        diesel::insert_into(tags::table)
            .values((
                tags::message_id.eq(&message),
                tags::tag.eq(&tag.0[..]),
                tags::workspace_id.eq(&workspace),
                tags::conversation_id.eq(&conversation),
                tags::created_at.eq(created_at),
            ))
            .on_conflict_do_nothing()
            .execute(c)?;
    }
    Ok(())
}

#[async_trait]
impl SearchIndex for SqliteStore {
    #[tracing::instrument(skip_all, fields(message = %entry.message_id, tags = entry.tags.len()))]
    async fn replace_message_tags(&self, entry: &IndexEntry) -> Result<(), RepoError> {
        let entry = entry.clone();
        self.run("replacing a message's search tags", move |c| {
            c.immediate_transaction(|c| {
                let message = key(entry.message_id.as_uuid());
                diesel::delete(tags::table.filter(tags::message_id.eq(&message))).execute(c)?;
                insert_tags(c, &entry)
            })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(message = %message))]
    async fn delete_message_tags(&self, message: MessageId) -> Result<(), RepoError> {
        let message = key(message.as_uuid());
        self.run("dropping a message's search tags", move |c| {
            diesel::delete(tags::table.filter(tags::message_id.eq(message))).execute(c).map(drop)
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace))]
    async fn delete_workspace_tags(&self, workspace: WorkspaceId) -> Result<u64, RepoError> {
        let workspace = key(workspace.as_uuid());
        self.run("deleting a workspace's search tags", move |c| {
            let deleted = diesel::delete(tags::table.filter(tags::workspace_id.eq(workspace))).execute(c)?;
            Ok(deleted as u64)
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(workspace = %query.workspace_id, tags = query.tags.len(), limit = query.limit))]
    async fn search_messages(&self, query: &TagQuery) -> Result<TagMatches, RepoError> {
        if query.tags.is_empty() || query.conversations.is_empty() || query.limit == 0 {
            return Ok(TagMatches { messages: Vec::new(), next: None });
        }
        let wanted: Vec<Vec<u8>> = query.tags.iter().map(|t| t.0.to_vec()).collect();
        let conversations: Vec<Vec<u8>> = query.conversations.iter().map(|c| key(c.as_uuid())).collect();
        let needed = i64::try_from(wanted.len()).map_err(|e| RepoError::new("too many search tags", e))?;
        let workspace = key(query.workspace_id.as_uuid());
        let before = query.before.map(|b| (micros(b.created_at), key(b.message_id.as_uuid())));
        let limit = query.limit as usize;
        self.run("searching messages by tags", move |c| {
            c.transaction(|c| {
                // Messages carrying every tag: as many matching rows as tags (tags are distinct
                // per message). One more than a page tells whether another page follows.
                let mut lookup = tags::table
                    .filter(tags::workspace_id.eq(workspace))
                    .filter(tags::tag.eq_any(wanted))
                    .filter(tags::conversation_id.eq_any(conversations))
                    .group_by((tags::message_id, tags::created_at))
                    .having(count_star().eq(needed))
                    .select((tags::message_id, tags::created_at))
                    .order((tags::created_at.desc(), tags::message_id.desc()))
                    .limit(i64::try_from(limit + 1).unwrap_or(i64::MAX))
                    .into_boxed();
                if let Some((at, id)) = before {
                    lookup =
                        lookup.filter(tags::created_at.lt(at).or(tags::created_at.eq(at).and(tags::message_id.lt(id))));
                }
                let mut hits: Vec<(Vec<u8>, i64)> = lookup.load(c)?;
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
