//! Messages, threads and reactions. Content arrives sealed and leaves sealed: this store
//! never sees plaintext.

use std::collections::HashMap;

use async_trait::async_trait;
use chat_diesel::prepared;
use chat_domain::cipher::Sealed;
use chat_domain::error::RepoError;
use chat_domain::ids::{ConversationId, MessageId, UserId, WorkspaceId};
use chat_domain::message::{
    InsertOutcome, MessagePage, MessageRepository, MessageType, MessageWindow, NewMessage, Reaction, SealedContent,
    StoredMessage,
};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_types::{Array, BigInt, Binary, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::files::FileRow;
use crate::group_commit::Committed;
use crate::schema::{conversations, message_reactions, messages};
use crate::sql::coalesce;
use crate::{PgStore, attachments, corrupt, repo};

/// A `messages` row (also read by name: the batch insert's `RETURNING`).
#[derive(Queryable, QueryableByName, Selectable)]
#[diesel(table_name = messages, check_for_backend(diesel::pg::Pg))]
pub(crate) struct MessageRow {
    pub(crate) id: Uuid,
    conversation_id: Uuid,
    seq: i64,
    sender_id: Uuid,
    client_msg_id: Option<String>,
    kind: String,
    content: Option<Vec<u8>>,
    key_version: Option<i32>,
    reply_to_id: Option<Uuid>,
    reply_count: i64,
    edited_at: Option<DateTime<Utc>>,
    deleted_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl MessageRow {
    /// The domain message, taking its reactions out of `reactions` (none when absent), without
    /// attachments (see [`with_reactions`]).
    pub(crate) fn into_domain(self, reactions: &mut HashMap<Uuid, Vec<Reaction>>) -> Result<StoredMessage, RepoError> {
        let content = match (self.content, self.key_version) {
            (Some(bytes), Some(key_version)) => Some(Sealed { key_version, bytes }),
            (None, _) => None,
            (Some(_), None) => return Err(corrupt("stored message content has no key version")),
        };
        Ok(StoredMessage {
            id: MessageId::from_uuid(self.id),
            conversation_id: ConversationId::from_uuid(self.conversation_id),
            seq: self.seq,
            sender_id: UserId::from_uuid(self.sender_id),
            client_msg_id: self.client_msg_id,
            kind: MessageType::parse(&self.kind).map_err(|_| corrupt("stored message kind is unknown"))?,
            content,
            reply_to_id: self.reply_to_id.map(MessageId::from_uuid),
            reply_count: self.reply_count,
            reactions: reactions.remove(&self.id).unwrap_or_default(),
            attachments: Vec::new(),
            edited_at: self.edited_at,
            deleted_at: self.deleted_at,
            created_at: self.created_at,
        })
    }
}

/// The part of a `message_reactions` row that a message shows.
#[derive(Queryable, Selectable)]
#[diesel(table_name = message_reactions, check_for_backend(diesel::pg::Pg))]
struct ReactionRow {
    message_id: Uuid,
    user_id: Uuid,
    emoji: String,
}

/// The reactions of every message in `ids`, in one query, grouped per message by emoji in
/// order of first use, each emoji's users in reaction order.
pub(crate) async fn load_reactions(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<Reaction>>, DieselError> {
    let mut grouped: HashMap<Uuid, Vec<Reaction>> = HashMap::new();
    if ids.is_empty() {
        return Ok(grouped);
    }
    let rows: Vec<ReactionRow> = message_reactions::table
        .filter(message_reactions::message_id.eq_any(ids))
        .order((message_reactions::created_at.asc(), message_reactions::ordinal.asc()))
        .select(ReactionRow::as_select())
        .load(conn)
        .await?;
    for row in rows {
        let reactions = grouped.entry(row.message_id).or_default();
        let user = UserId::from_uuid(row.user_id);
        match reactions.iter_mut().find(|r| r.emoji == row.emoji) {
            Some(reaction) => reaction.user_ids.push(user),
            None => reactions.push(Reaction { emoji: row.emoji, user_ids: vec![user] }),
        }
    }
    Ok(grouped)
}

/// Rows with their reactions and attachments (one more query for all reactions, one for all
/// attachments).
pub(crate) async fn with_reactions(
    conn: &mut AsyncPgConnection,
    rows: Vec<MessageRow>,
) -> Result<Vec<StoredMessage>, RepoError> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut reactions = load_reactions(conn, &ids).await.map_err(repo("loading reactions"))?;
    let mut attached = attachments::attached(conn, &ids).await?;
    rows.into_iter()
        .map(|row| {
            let id = row.id;
            let mut message = row.into_domain(&mut reactions)?;
            message.attachments = attached.remove(&id).unwrap_or_default();
            Ok(message)
        })
        .collect()
}

/// One row with its reactions and attachments.
async fn one_with_reactions(
    conn: &mut AsyncPgConnection,
    row: Option<MessageRow>,
) -> Result<Option<StoredMessage>, RepoError> {
    Ok(match row {
        Some(row) => with_reactions(conn, vec![row]).await?.pop(),
        None => None,
    })
}

/// What [`insert_batch`] wrote for one message: its row and the rows of the files it attaches.
pub(crate) type InsertedRows = (MessageRow, Vec<FileRow>);

/// The SQL of a group-commit batch's messages (`group_commit.rs`), run inside the batch's
/// transaction once the counter rows are locked and each message's `seq` reserved: a fixed
/// number of statements whatever the batch's size — one INSERT of the messages from arrays, then,
/// pipelined, one of every search tag of the batch, one `reply_count` bump for all thread roots,
/// and the attachment links of the (rare) messages that have some. Returns the rows in `batch`
/// order; `None`, having written only what the rollback undoes, when a sender's `clientMsgId`
/// is taken (the batch then rolls back and looks the keys up first). It takes a shared
/// connection so that the batch can pipeline these statements with its counter and watermark
/// updates; anything added per message belongs here.
pub(crate) async fn insert_batch(
    mut conn: &AsyncPgConnection,
    batch: &[(&NewMessage, i64)],
) -> Result<Option<Vec<InsertedRows>>, DieselError> {
    if batch.is_empty() {
        return Ok(Some(Vec::new()));
    }
    // Column by column: one array a column, bound to a statement whose text never changes
    // (a multi-row VALUES list is new SQL for every batch size, parsed and planned each time),
    // `Prepared` so that the connection keeps it (diesel caches no `sql_query`).
    let n = batch.len();
    let mut ids = Vec::with_capacity(n);
    let mut conversation_ids = Vec::with_capacity(n);
    let mut seqs = Vec::with_capacity(n);
    let mut senders = Vec::with_capacity(n);
    let mut client_msg_ids = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut contents = Vec::with_capacity(n);
    let mut key_versions = Vec::with_capacity(n);
    let mut reply_tos = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    for (message, seq) in batch {
        ids.push(message.id.as_uuid());
        conversation_ids.push(message.conversation_id.as_uuid());
        seqs.push(*seq);
        senders.push(message.sender_id.as_uuid());
        client_msg_ids.push(message.client_msg_id.as_deref());
        kinds.push(message.kind.as_str());
        contents.push(&message.content.bytes[..]);
        key_versions.push(message.content.key_version);
        reply_tos.push(message.reply_to_id.map(|id| id.as_uuid()));
        created.push(message.created_at);
    }
    let inserted: Vec<MessageRow> = prepared(
        crate::sql::INSERT_MESSAGES,
        (
            ids.into_sql::<Array<SqlUuid>>(),
            conversation_ids.into_sql::<Array<SqlUuid>>(),
            seqs.into_sql::<Array<BigInt>>(),
            senders.into_sql::<Array<SqlUuid>>(),
            client_msg_ids.into_sql::<Array<Nullable<Text>>>(),
            kinds.into_sql::<Array<Text>>(),
            contents.into_sql::<Array<Binary>>(),
            key_versions.into_sql::<Array<Integer>>(),
            reply_tos.into_sql::<Array<Nullable<SqlUuid>>>(),
            created.into_sql::<Array<Timestamptz>>(),
        ),
    )
    .load(&mut conn)
    .await?;
    // A clientMsgId is taken: the batch rolls back and looks the ids up first.
    if inserted.len() != batch.len() {
        return Ok(None);
    }
    let mut inserted: HashMap<Uuid, MessageRow> = inserted.into_iter().map(|row| (row.id, row)).collect();
    let tags = crate::search::insert_tags(conn, batch.iter().filter_map(|(message, _)| message.search.as_ref()));
    let roots: Vec<Uuid> = batch.iter().filter_map(|(message, _)| message.reply_to_id.map(|id| id.as_uuid())).collect();
    let replies = async move {
        if roots.is_empty() {
            return Ok(0);
        }
        prepared(crate::sql::BUMP_REPLY_COUNTS, (roots.into_sql::<Array<SqlUuid>>(),)).execute(&mut conn).await
    };
    let links = futures_util::future::join_all(
        batch.iter().map(|(message, _)| attachments::link(conn, message.id.as_uuid(), &message.attachments)),
    );
    let (tags, replies, links) = futures_util::future::join3(tags, replies, links).await;
    tags?;
    replies?;
    batch
        .iter()
        .zip(links)
        .map(|((message, _), files)| {
            let row = inserted.remove(&message.id.as_uuid()).ok_or(DieselError::NotFound)?;
            Ok((row, files?))
        })
        .collect::<Result<Vec<_>, DieselError>>()
        .map(Some)
}

impl PgStore {
    async fn message_by_client_msg_id(
        &self,
        conversation: Uuid,
        sender: Uuid,
        client_msg_id: &str,
    ) -> Result<Option<StoredMessage>, RepoError> {
        let mut conn = self.conn().await?;
        let row = messages::table
            .filter(messages::conversation_id.eq(conversation))
            .filter(messages::sender_id.eq(sender))
            .filter(messages::client_msg_id.eq(client_msg_id))
            .select(MessageRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(repo("finding a message by clientMsgId"))?;
        one_with_reactions(&mut conn, row).await
    }
}

#[async_trait]
impl MessageRepository for PgStore {
    #[tracing::instrument(skip_all, fields(conversation = %message.conversation_id, message = %message.id, sender = %message.sender_id))]
    async fn insert_message(&self, message: &NewMessage) -> Result<InsertOutcome, RepoError> {
        // Group commit: the message joins the next batch, which takes its seq under the
        // conversation's counter lock (gapless, in commit order) and answers after COMMIT.
        match self.inserts.insert(message.clone()).await? {
            Committed::Inserted(inserted) => {
                let (row, files) = *inserted;
                let mut inserted = row.into_domain(&mut HashMap::new())?;
                inserted.attachments = attachments::into_domain(files)?;
                Ok(InsertOutcome::Inserted(inserted))
            }
            Committed::Archived => Ok(InsertOutcome::Archived),
            Committed::NotMember => Ok(InsertOutcome::NotMember),
            // Read on a connection of its own, after the batch committed.
            Committed::Duplicate => self.original(message).await,
        }
    }

    #[tracing::instrument(skip_all, fields(message = %id))]
    async fn find_message(&self, id: MessageId) -> Result<Option<StoredMessage>, RepoError> {
        let mut conn = self.conn().await?;
        let row = messages::table
            .find(id.as_uuid())
            .select(MessageRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(repo("finding a message"))?;
        one_with_reactions(&mut conn, row).await
    }

    #[tracing::instrument(skip_all, fields(conversation = %conversation, sender = %sender))]
    async fn find_by_client_msg_id(
        &self,
        conversation: ConversationId,
        sender: UserId,
        client_msg_id: &str,
    ) -> Result<Option<StoredMessage>, RepoError> {
        self.message_by_client_msg_id(conversation.as_uuid(), sender.as_uuid(), client_msg_id).await
    }

    #[tracing::instrument(skip_all, fields(conversation = %conversation))]
    async fn list_messages(
        &self,
        conversation: ConversationId,
        page: &MessagePage,
    ) -> Result<Vec<StoredMessage>, RepoError> {
        let mut query = messages::table
            .filter(messages::conversation_id.eq(conversation.as_uuid()))
            .select(MessageRow::as_select())
            .limit(i64::from(page.limit))
            .into_boxed();
        query = match page.window {
            MessageWindow::Latest { before, offset } => {
                if let Some(before) = before {
                    query = query.filter(messages::seq.lt(before));
                }
                query.order(messages::seq.desc()).offset(i64::from(offset))
            }
            MessageWindow::After { after } => query.filter(messages::seq.gt(after)).order(messages::seq.asc()),
        };
        let mut conn = self.conn().await?;
        let rows = query.load(&mut conn).await.map_err(repo("listing messages"))?;
        with_reactions(&mut conn, rows).await
    }

    #[tracing::instrument(skip_all, fields(message = %root))]
    async fn list_thread(&self, root: MessageId, after: i64, limit: u32) -> Result<Vec<StoredMessage>, RepoError> {
        let mut conn = self.conn().await?;
        let Some(root_row) = messages::table
            .find(root.as_uuid())
            .select(MessageRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(repo("finding a thread root"))?
        else {
            return Ok(Vec::new());
        };
        let replies = messages::table
            .filter(messages::reply_to_id.eq(root.as_uuid()))
            .filter(messages::seq.gt(after))
            .order(messages::seq.asc())
            .limit(i64::from(limit))
            .select(MessageRow::as_select())
            .load(&mut conn)
            .await
            .map_err(repo("listing a thread"))?;
        let mut rows = Vec::with_capacity(replies.len() + 1);
        rows.push(root_row);
        rows.extend(replies);
        with_reactions(&mut conn, rows).await
    }

    #[tracing::instrument(skip_all, fields(message = %id))]
    async fn edit_message(
        &self,
        id: MessageId,
        content: &Sealed,
        at: DateTime<Utc>,
    ) -> Result<Option<StoredMessage>, RepoError> {
        let mut conn = self.conn().await?;
        let row = diesel::update(messages::table.find(id.as_uuid()).filter(messages::deleted_at.is_null()))
            .set((
                messages::content.eq(Some(&content.bytes)),
                messages::key_version.eq(Some(content.key_version)),
                messages::edited_at.eq(Some(at)),
            ))
            .returning(MessageRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(repo("editing a message"))?;
        one_with_reactions(&mut conn, row).await
    }

    #[tracing::instrument(skip_all, fields(message = %id))]
    async fn delete_message(&self, id: MessageId, at: DateTime<Utc>) -> Result<Option<StoredMessage>, RepoError> {
        let mut conn = self.conn().await?;
        // One transaction: the content goes, and so do the attachments (and the files of the
        // sender that no other message attaches).
        let row = (*conn)
            .transaction::<_, DieselError, _>(async |conn: &mut AsyncPgConnection| {
                let row = diesel::update(messages::table.find(id.as_uuid()))
                    .set((
                        messages::content.eq(None::<Vec<u8>>),
                        messages::key_version.eq(None::<i32>),
                        messages::deleted_at.eq(coalesce(messages::deleted_at, Some(at))),
                    ))
                    .returning(MessageRow::as_returning())
                    .get_result(conn)
                    .await
                    .optional()?;
                if let Some(row) = &row {
                    attachments::unlink(conn, row.id, row.sender_id).await?;
                }
                Ok(row)
            })
            .await
            .map_err(repo("deleting a message"))?;
        one_with_reactions(&mut conn, row).await
    }

    #[tracing::instrument(skip_all, fields(message = %message, user = %user))]
    async fn toggle_reaction(
        &self,
        message: MessageId,
        user: UserId,
        emoji: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<StoredMessage>, RepoError> {
        let id = message.as_uuid();
        let key = (id, user.as_uuid(), emoji);
        let mut conn = self.conn().await?;
        let row = (*conn)
            .transaction::<_, DieselError, _>(async |conn: &mut AsyncPgConnection| {
                let exists =
                    messages::table.find(id).select(messages::id).first::<Uuid>(conn).await.optional()?.is_some();
                if !exists {
                    return Ok(None);
                }
                let removed = diesel::delete(message_reactions::table.find(key)).execute(conn).await?;
                if removed == 0 {
                    diesel::insert_into(message_reactions::table)
                        .values((
                            message_reactions::message_id.eq(id),
                            message_reactions::user_id.eq(user.as_uuid()),
                            message_reactions::emoji.eq(emoji),
                            message_reactions::created_at.eq(at),
                        ))
                        .on_conflict_do_nothing()
                        .execute(conn)
                        .await?;
                }
                messages::table.find(id).select(MessageRow::as_select()).first(conn).await.map(Some)
            })
            .await
            .map_err(repo("toggling a reaction"))?;
        one_with_reactions(&mut conn, row).await
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace, below_version, limit))]
    async fn sealed_in_workspace(
        &self,
        workspace: WorkspaceId,
        below_version: i32,
        after: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<SealedContent>, RepoError> {
        let mut conn = self.conn().await?;
        let mut query = messages::table
            .inner_join(conversations::table)
            .filter(conversations::workspace_id.eq(workspace.as_uuid()))
            .filter(messages::key_version.lt(below_version))
            .filter(messages::content.is_not_null())
            .order(messages::id.asc())
            .limit(i64::from(limit))
            .select((messages::id, messages::conversation_id, messages::content, messages::key_version))
            .into_boxed();
        if let Some(after) = after {
            query = query.filter(messages::id.gt(after.as_uuid()));
        }
        let rows: Vec<(Uuid, Uuid, Option<Vec<u8>>, Option<i32>)> =
            query.load(&mut conn).await.map_err(repo("listing sealed content to re-encrypt"))?;
        rows.into_iter()
            .map(|(id, conversation, bytes, version)| match (bytes, version) {
                (Some(bytes), Some(key_version)) => Ok(SealedContent {
                    id: MessageId::from_uuid(id),
                    conversation_id: ConversationId::from_uuid(conversation),
                    content: Sealed { key_version, bytes },
                }),
                _ => Err(RepoError::msg("sealed content without its key version")),
            })
            .collect()
    }

    #[tracing::instrument(skip_all, fields(message = %id, from = expected.key_version, to = new.key_version))]
    async fn replace_sealed(&self, id: MessageId, expected: &Sealed, new: &Sealed) -> Result<bool, RepoError> {
        let mut conn = self.conn().await?;
        let replaced = diesel::update(
            messages::table
                .find(id.as_uuid())
                .filter(messages::deleted_at.is_null())
                .filter(messages::key_version.eq(expected.key_version))
                .filter(messages::content.eq(&expected.bytes)),
        )
        .set((messages::content.eq(Some(&new.bytes)), messages::key_version.eq(Some(new.key_version))))
        .execute(&mut conn)
        .await
        .map_err(repo("replacing sealed content"))?;
        Ok(replaced == 1)
    }
}

impl PgStore {
    /// The message that made an insert a duplicate, read after the insert's rollback.
    async fn original(&self, message: &NewMessage) -> Result<InsertOutcome, RepoError> {
        let key = message.client_msg_id.as_deref().ok_or(RepoError::msg("duplicate message without a clientMsgId"))?;
        let original = self
            .message_by_client_msg_id(message.conversation_id.as_uuid(), message.sender_id.as_uuid(), key)
            .await?
            .ok_or(RepoError::msg("the message a clientMsgId duplicates has vanished"))?;
        Ok(InsertOutcome::Duplicate(original))
    }
}
