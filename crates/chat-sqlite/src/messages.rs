//! [`MessageRepository`]: messages with a gap-free per-conversation `seq`, idempotent
//! inserts, threads, edits, soft deletes and reactions.

use async_trait::async_trait;
use chat_diesel::prepared;
use chat_domain::cipher::Sealed;
use chat_domain::error::RepoError;
use chat_domain::ids::{ConversationId, MessageId, UserId, WorkspaceId};
use chat_domain::message::{
    InsertOutcome, MessagePage, MessageRepository, MessageWindow, NewMessage, SealedContent, StoredMessage,
};
use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary};

use crate::attachments;
use crate::rows::{MessageRow, ReactionRow, Reactions, corrupt, key, micros, uuid};
use crate::schema::{conversation_members, conversations, message_reactions, messages, workspace_members};
use crate::store::{SqliteStore, coalesce};

/// Reactions of the given messages, in one query, in reaction order.
fn reactions_of(c: &mut SqliteConnection, ids: &[Vec<u8>]) -> QueryResult<Reactions> {
    if ids.is_empty() {
        return Ok(Reactions::default());
    }
    let rows = message_reactions::table
        .filter(message_reactions::message_id.eq_any(ids))
        .order_by(message_reactions::created_at.asc())
        .then_order_by(sql::<BigInt>("message_reactions.rowid"))
        .select(ReactionRow::as_select())
        .load(c)?;
    Reactions::group(rows)
}

/// Rows with their reactions and attachments (one more query for all reactions, one for all
/// attachments).
pub(crate) fn with_reactions(c: &mut SqliteConnection, rows: Vec<MessageRow>) -> QueryResult<Vec<StoredMessage>> {
    let ids: Vec<Vec<u8>> = rows.iter().map(|r| r.id.clone()).collect();
    let mut reactions = reactions_of(c, &ids)?;
    let mut attached = attachments::attached(c, &ids)?;
    rows.into_iter()
        .map(|row| {
            let files = attached.remove(&row.id).unwrap_or_default();
            Ok(StoredMessage { attachments: files, ..row.into_message(&mut reactions)? })
        })
        .collect()
}

fn one_with_reactions(c: &mut SqliteConnection, row: Option<MessageRow>) -> QueryResult<Option<StoredMessage>> {
    Ok(with_reactions(c, row.into_iter().collect())?.pop())
}

fn find_row(c: &mut SqliteConnection, id: &[u8]) -> QueryResult<Option<MessageRow>> {
    messages::table.find(id).select(MessageRow::as_select()).get_result(c).optional()
}

fn find_by_client_msg_id(
    c: &mut SqliteConnection,
    conversation: &[u8],
    sender: &[u8],
    client_msg_id: &str,
) -> QueryResult<Option<StoredMessage>> {
    let row = messages::table
        .filter(messages::conversation_id.eq(conversation))
        .filter(messages::sender_id.eq(sender))
        .filter(messages::client_msg_id.eq(client_msg_id))
        .select(MessageRow::as_select())
        .get_result(c)
        .optional()?;
    one_with_reactions(c, row)
}

/// The seq an insert took.
#[derive(QueryableByName)]
struct LastSeq {
    #[diesel(sql_type = BigInt)]
    last_seq: i64,
}

/// Whether `sender` is a member of `conversation` and of the workspace it belongs to.
fn is_member(c: &mut SqliteConnection, conversation: &[u8], sender: &[u8]) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        conversation_members::table
            .inner_join(conversations::table)
            .inner_join(
                workspace_members::table.on(workspace_members::workspace_id
                    .eq(conversations::workspace_id)
                    .and(workspace_members::user_id.eq(conversation_members::user_id))),
            )
            .filter(conversation_members::conversation_id.eq(conversation))
            .filter(conversation_members::user_id.eq(sender)),
    ))
    .get_result(c)
}

/// The per-message insert, run by the group-commit batcher (`group_commit.rs`) for each
/// message of a batch, in queue order, inside the batch's immediate transaction (which holds
/// the write lock, so nothing interleaves): a sender who is not a member of the conversation
/// and of its workspace yields `NotMember`, a repeat of a `clientMsgId` — committed before the
/// batch or earlier in it, which this transaction's reads see — yields the original, an
/// archived conversation yields `Archived`, all having written nothing; otherwise
/// it takes the conversation's next seq, inserts the row, links the attachments, bumps the
/// thread root's `reply_count` and moves the sender's watermark. Its search document is not
/// written here but with the whole batch's, after the last message (`search::insert_docs`).
///
/// No savepoint: those checks come first, so no statement is expected to fail, and a savepoint
/// would cost two statements and a sub-journal copy of every page the message touches. One
/// that fails all the same fails the batch, which `commit_batch` then retries message by
/// message. Anything added per message belongs here.
pub(crate) fn insert_in_batch(c: &mut SqliteConnection, new: &NewMessage) -> QueryResult<InsertOutcome> {
    let conversation = key(new.conversation_id.as_uuid());
    let sender = key(new.sender_id.as_uuid());
    if !is_member(c, &conversation, &sender)? {
        return Ok(InsertOutcome::NotMember);
    }
    if let Some(client_msg_id) = &new.client_msg_id
        && let Some(original) = find_by_client_msg_id(c, &conversation, &sender, client_msg_id)?
    {
        return Ok(InsertOutcome::Duplicate(original));
    }
    // Taking the seq writes the conversation row: senders of one batch take theirs in queue
    // order, batches one after the other, so seqs follow commit order.
    let seq = prepared(
        "UPDATE conversations SET last_seq = last_seq + 1 WHERE id = ? AND archived_at IS NULL RETURNING last_seq",
        (conversation.as_slice().into_sql::<Binary>(),),
    )
    .get_result::<LastSeq>(c)
    .optional()?;
    let Some(LastSeq { last_seq: seq }) = seq else { return Ok(InsertOutcome::Archived) };
    let row = MessageRow {
        id: key(new.id.as_uuid()),
        conversation_id: conversation,
        seq,
        sender_id: sender,
        client_msg_id: new.client_msg_id.clone(),
        kind: new.kind.as_str().to_owned(),
        content: Some(new.content.bytes.clone()),
        key_version: Some(new.content.key_version),
        reply_to_id: new.reply_to_id.map(|id| key(id.as_uuid())),
        reply_count: 0,
        edited_at: None,
        deleted_at: None,
        created_at: micros(new.created_at),
    };
    diesel::insert_into(messages::table).values(&row).execute(c)?;
    let attached = attachments::link(c, &row.id, &new.attachments)?;
    if let Some(root) = &row.reply_to_id {
        prepared(
            "UPDATE messages SET reply_count = reply_count + 1 WHERE id = ? AND conversation_id = ?",
            (root.as_slice().into_sql::<Binary>(), row.conversation_id.as_slice().into_sql::<Binary>()),
        )
        .execute(c)?;
    }
    // The sender has read what they sent: their watermark moves forward to it.
    prepared(
        "UPDATE conversation_members SET last_read_seq = ?, last_read_at = ? \
         WHERE conversation_id = ? AND user_id = ? AND last_read_seq < ?",
        (
            row.seq.into_sql::<BigInt>(),
            row.created_at.into_sql::<BigInt>(),
            row.conversation_id.as_slice().into_sql::<Binary>(),
            row.sender_id.as_slice().into_sql::<Binary>(),
            row.seq.into_sql::<BigInt>(),
        ),
    )
    .execute(c)?;
    Ok(InsertOutcome::Inserted(StoredMessage { attachments: attached, ..row.into_message(&mut Reactions::default())? }))
}

#[async_trait]
impl MessageRepository for SqliteStore {
    #[tracing::instrument(skip_all, fields(message = %new.id, conversation = %new.conversation_id, sender = %new.sender_id))]
    async fn insert_message(&self, new: &NewMessage) -> Result<InsertOutcome, RepoError> {
        // Group commit: the message joins the next batch (`group_commit.rs`), which answers
        // after its COMMIT.
        self.inserts.insert(new.clone()).await
    }

    #[tracing::instrument(skip_all, fields(message = %id))]
    async fn find_message(&self, id: MessageId) -> Result<Option<StoredMessage>, RepoError> {
        self.run("finding a message", move |c| {
            c.transaction(|c| {
                let row = find_row(c, &key(id.as_uuid()))?;
                one_with_reactions(c, row)
            })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(conversation = %conversation, sender = %sender))]
    async fn find_by_client_msg_id(
        &self,
        conversation: ConversationId,
        sender: UserId,
        client_msg_id: &str,
    ) -> Result<Option<StoredMessage>, RepoError> {
        let client_msg_id = client_msg_id.to_owned();
        self.run("finding a message by clientMsgId", move |c| {
            c.transaction(|c| {
                find_by_client_msg_id(c, &key(conversation.as_uuid()), &key(sender.as_uuid()), &client_msg_id)
            })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(conversation = %conversation, limit = page.limit))]
    async fn list_messages(
        &self,
        conversation: ConversationId,
        page: &MessagePage,
    ) -> Result<Vec<StoredMessage>, RepoError> {
        let page = *page;
        self.run("listing messages", move |c| {
            c.transaction(|c| {
                let of_conversation = messages::table
                    .filter(messages::conversation_id.eq(key(conversation.as_uuid())))
                    .select(MessageRow::as_select())
                    .limit(i64::from(page.limit))
                    .into_boxed();
                let query = match page.window {
                    MessageWindow::Latest { before, offset } => {
                        let query = of_conversation.order_by(messages::seq.desc()).offset(i64::from(offset));
                        match before {
                            Some(before) => query.filter(messages::seq.lt(before)),
                            None => query,
                        }
                    }
                    MessageWindow::After { after } => {
                        of_conversation.filter(messages::seq.gt(after)).order_by(messages::seq.asc())
                    }
                };
                let rows = query.load(c)?;
                with_reactions(c, rows)
            })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(root = %root, after = after, limit = limit))]
    async fn list_thread(&self, root: MessageId, after: i64, limit: u32) -> Result<Vec<StoredMessage>, RepoError> {
        let root = key(root.as_uuid());
        self.run("listing a thread", move |c| {
            c.transaction(|c| {
                let Some(root_row) = find_row(c, &root)? else { return Ok(Vec::new()) };
                let replies = messages::table
                    .filter(messages::reply_to_id.eq(&root))
                    .filter(messages::seq.gt(after))
                    .order_by(messages::seq.asc())
                    .limit(i64::from(limit))
                    .select(MessageRow::as_select())
                    .load(c)?;
                let mut rows = Vec::with_capacity(replies.len() + 1);
                rows.push(root_row);
                rows.extend(replies);
                with_reactions(c, rows)
            })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(message = %id))]
    async fn edit_message(
        &self,
        id: MessageId,
        content: &Sealed,
        at: DateTime<Utc>,
    ) -> Result<Option<StoredMessage>, RepoError> {
        let (id, sealed, at) = (key(id.as_uuid()), content.clone(), micros(at));
        self.run("editing a message", move |c| {
            c.immediate_transaction(|c| {
                let row = diesel::update(messages::table.find(&id).filter(messages::deleted_at.is_null()))
                    .set((
                        messages::content.eq(sealed.bytes),
                        messages::key_version.eq(sealed.key_version),
                        messages::edited_at.eq(at),
                    ))
                    .returning(MessageRow::as_returning())
                    .get_result(c)
                    .optional()?;
                one_with_reactions(c, row)
            })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(message = %id))]
    async fn delete_message(&self, id: MessageId, at: DateTime<Utc>) -> Result<Option<StoredMessage>, RepoError> {
        let (id, at) = (key(id.as_uuid()), micros(at));
        self.run("deleting a message", move |c| {
            c.immediate_transaction(|c| {
                // Soft delete: the sealed bytes go, the row and its seq stay; the attachments go
                // too (and the files of the sender that no other message attaches).
                let row = diesel::update(messages::table.find(&id))
                    .set((
                        messages::content.eq(None::<Vec<u8>>),
                        messages::key_version.eq(None::<i32>),
                        messages::deleted_at.eq(coalesce(messages::deleted_at, at)),
                    ))
                    .returning(MessageRow::as_returning())
                    .get_result(c)
                    .optional()?;
                if let Some(row) = &row {
                    attachments::unlink(c, &row.id, &row.sender_id)?;
                }
                one_with_reactions(c, row)
            })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(message = %message, user = %user))]
    async fn toggle_reaction(
        &self,
        message: MessageId,
        user: UserId,
        emoji: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<StoredMessage>, RepoError> {
        let reaction = ReactionRow {
            message_id: key(message.as_uuid()),
            user_id: key(user.as_uuid()),
            emoji: emoji.to_owned(),
            created_at: micros(at),
        };
        self.run("toggling a reaction", move |c| {
            c.immediate_transaction(|c| {
                let Some(row) = find_row(c, &reaction.message_id)? else { return Ok(None) };
                let added = diesel::insert_into(message_reactions::table)
                    .values(&reaction)
                    .on_conflict_do_nothing()
                    .execute(c)?;
                if added == 0 {
                    diesel::delete(message_reactions::table.find((
                        &reaction.message_id,
                        &reaction.user_id,
                        &reaction.emoji,
                    )))
                    .execute(c)?;
                }
                one_with_reactions(c, Some(row))
            })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace, below_version, limit))]
    async fn sealed_in_workspace(
        &self,
        workspace: WorkspaceId,
        below_version: i32,
        after: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<SealedContent>, RepoError> {
        let workspace = key(workspace.as_uuid());
        let after = after.map(|id| key(id.as_uuid()));
        self.run("listing sealed content to re-encrypt", move |c| {
            let mut query = messages::table
                .inner_join(conversations::table)
                .filter(conversations::workspace_id.eq(workspace))
                .filter(messages::key_version.lt(below_version))
                .filter(messages::content.is_not_null())
                .order_by(messages::id.asc())
                .limit(i64::from(limit))
                .select((messages::id, messages::conversation_id, messages::content, messages::key_version))
                .into_boxed();
            if let Some(after) = after {
                query = query.filter(messages::id.gt(after));
            }
            let rows: Vec<(Vec<u8>, Vec<u8>, Option<Vec<u8>>, Option<i32>)> = query.load(c)?;
            rows.into_iter()
                .map(|(id, conversation, bytes, version)| {
                    let (Some(bytes), Some(key_version)) = (bytes, version) else {
                        return Err(corrupt("sealed content without its key version"));
                    };
                    Ok(SealedContent {
                        id: MessageId::from_uuid(uuid(&id)?),
                        conversation_id: ConversationId::from_uuid(uuid(&conversation)?),
                        content: Sealed { key_version, bytes },
                    })
                })
                .collect()
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(message = %id, from = expected.key_version, to = new.key_version))]
    async fn replace_sealed(&self, id: MessageId, expected: &Sealed, new: &Sealed) -> Result<bool, RepoError> {
        let (id, expected, new) = (key(id.as_uuid()), expected.clone(), new.clone());
        self.run("replacing sealed content", move |c| {
            let replaced = diesel::update(
                messages::table
                    .find(&id)
                    .filter(messages::deleted_at.is_null())
                    .filter(messages::key_version.eq(expected.key_version))
                    .filter(messages::content.eq(expected.bytes)),
            )
            .set((messages::content.eq(new.bytes), messages::key_version.eq(new.key_version)))
            .execute(c)?;
            Ok(replaced == 1)
        })
        .await
    }
}
