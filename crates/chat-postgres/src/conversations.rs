//! Conversations, their members and read watermarks.

use std::collections::HashMap;

use async_trait::async_trait;
use chat_domain::conversation::{
    AddMemberError, Conversation, ConversationListing, ConversationPatch, ConversationRepository, ConversationRole,
    ConversationType, Created, Member, NewConversation, Standing,
};
use chat_domain::error::RepoError;
use chat_domain::ids::{ConversationId, UserId, WorkspaceId};
use chat_domain::message::StoredMessage;
use chrono::{DateTime, Utc};
use diesel::dsl::count;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::messages::{MessageRow, load_reactions};
use crate::schema::{conversation_members, conversations, messages, workspace_members};
use crate::sql::coalesce;
use crate::{PgStore, corrupt, is_unique_violation, repo};

/// A `conversations` row as read (`unique_key` is only written).
#[derive(Queryable, Selectable)]
#[diesel(table_name = conversations, check_for_backend(diesel::pg::Pg))]
struct ConversationRow {
    id: Uuid,
    workspace_id: Uuid,
    kind: String,
    name: Option<String>,
    description: Option<String>,
    icon: Option<String>,
    document_id: Option<String>,
    is_encrypted: bool,
    max_participants: i32,
    created_by: Uuid,
    last_seq: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    archived_at: Option<DateTime<Utc>>,
}

impl ConversationRow {
    fn into_domain(self) -> Result<Conversation, RepoError> {
        Ok(Conversation {
            id: ConversationId::from_uuid(self.id),
            workspace_id: WorkspaceId::from_uuid(self.workspace_id),
            kind: ConversationType::parse(&self.kind).map_err(|_| corrupt("stored conversation kind is unknown"))?,
            name: self.name,
            description: self.description,
            icon: self.icon,
            document_id: self.document_id,
            is_encrypted: self.is_encrypted,
            max_participants: u32::try_from(self.max_participants)
                .map_err(|_| corrupt("stored max_participants is negative"))?,
            created_by: UserId::from_uuid(self.created_by),
            last_seq: self.last_seq,
            created_at: self.created_at,
            updated_at: self.updated_at,
            archived_at: self.archived_at,
        })
    }
}

/// A `conversations` row to insert.
#[derive(Insertable)]
#[diesel(table_name = conversations, check_for_backend(diesel::pg::Pg))]
struct NewConversationRow<'a> {
    id: Uuid,
    workspace_id: Uuid,
    kind: &'a str,
    name: Option<&'a str>,
    description: Option<&'a str>,
    icon: Option<&'a str>,
    document_id: Option<&'a str>,
    unique_key: Option<&'a str>,
    is_encrypted: bool,
    max_participants: i32,
    created_by: Uuid,
    last_seq: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    archived_at: Option<DateTime<Utc>>,
}

/// A `conversation_members` row to insert (its tie-breaking `ordinal` is generated).
#[derive(Insertable)]
#[diesel(table_name = conversation_members, check_for_backend(diesel::pg::Pg))]
struct NewMemberRow {
    conversation_id: Uuid,
    user_id: Uuid,
    role: &'static str,
    joined_at: DateTime<Utc>,
    last_read_seq: i64,
    last_read_at: Option<DateTime<Utc>>,
    is_muted: bool,
}

/// A `conversation_members` row as read.
#[derive(Queryable, Selectable)]
#[diesel(table_name = conversation_members, check_for_backend(diesel::pg::Pg))]
struct MemberRow {
    conversation_id: Uuid,
    user_id: Uuid,
    role: String,
    joined_at: DateTime<Utc>,
    last_read_seq: i64,
    last_read_at: Option<DateTime<Utc>>,
    is_muted: bool,
}

impl NewMemberRow {
    fn from_domain(m: &Member) -> Self {
        Self {
            conversation_id: m.conversation_id.as_uuid(),
            user_id: m.user_id.as_uuid(),
            role: m.role.as_str(),
            joined_at: m.joined_at,
            last_read_seq: m.last_read_seq,
            last_read_at: m.last_read_at,
            is_muted: m.is_muted,
        }
    }
}

impl MemberRow {
    fn into_domain(self) -> Result<Member, RepoError> {
        Ok(Member {
            conversation_id: ConversationId::from_uuid(self.conversation_id),
            user_id: UserId::from_uuid(self.user_id),
            role: ConversationRole::parse(&self.role).map_err(|_| corrupt("stored conversation role is unknown"))?,
            joined_at: self.joined_at,
            last_read_seq: self.last_read_seq,
            last_read_at: self.last_read_at,
            is_muted: self.is_muted,
        })
    }
}

/// A [`ConversationPatch`] as a changeset: `None` leaves a column alone, `Some(None)` sets
/// it to NULL.
#[derive(AsChangeset)]
#[diesel(table_name = conversations, check_for_backend(diesel::pg::Pg))]
struct PatchRow<'a> {
    name: Option<Option<&'a str>>,
    description: Option<Option<&'a str>>,
    icon: Option<Option<&'a str>>,
    max_participants: Option<i32>,
    updated_at: DateTime<Utc>,
}

fn participants(max: u32) -> Result<i32, RepoError> {
    i32::try_from(max).map_err(|_| corrupt("max_participants does not fit the column"))
}

/// Unread counts of every conversation of `workspace` that `user` is in, zeros included, in
/// one grouped query: messages from others, not deleted, above the watermark.
async fn unread_counts(
    conn: &mut AsyncPgConnection,
    workspace: WorkspaceId,
    user: UserId,
) -> Result<Vec<(Uuid, i64)>, DieselError> {
    conversation_members::table
        .inner_join(conversations::table)
        .left_join(
            messages::table.on(messages::conversation_id
                .eq(conversation_members::conversation_id)
                .and(messages::seq.gt(conversation_members::last_read_seq))
                .and(messages::sender_id.ne(user.as_uuid()))
                .and(messages::deleted_at.is_null())),
        )
        .filter(conversation_members::user_id.eq(user.as_uuid()))
        .filter(conversations::workspace_id.eq(workspace.as_uuid()))
        .group_by(conversation_members::conversation_id)
        .select((conversation_members::conversation_id, count(messages::id.nullable())))
        .load(conn)
        .await
}

/// Why a transactional `add_member` stopped.
enum AddTx {
    Duplicate,
    Full,
    Missing,
    Db(DieselError),
}

impl From<DieselError> for AddTx {
    fn from(e: DieselError) -> Self {
        if is_unique_violation(&e, "conversation_members_pkey") { Self::Duplicate } else { Self::Db(e) }
    }
}

#[async_trait]
impl ConversationRepository for PgStore {
    #[tracing::instrument(skip_all, fields(conversation = %new.conversation.id, workspace = %new.conversation.workspace_id))]
    async fn create_conversation(&self, new: &NewConversation) -> Result<Created<Conversation>, RepoError> {
        let c = &new.conversation;
        let row = NewConversationRow {
            id: c.id.as_uuid(),
            workspace_id: c.workspace_id.as_uuid(),
            kind: c.kind.as_str(),
            name: c.name.as_deref(),
            description: c.description.as_deref(),
            icon: c.icon.as_deref(),
            document_id: c.document_id.as_deref(),
            unique_key: new.unique_key.as_deref(),
            is_encrypted: c.is_encrypted,
            max_participants: participants(c.max_participants)?,
            created_by: c.created_by.as_uuid(),
            last_seq: c.last_seq,
            created_at: c.created_at,
            updated_at: c.updated_at,
            archived_at: c.archived_at,
        };
        let members: Vec<NewMemberRow> = new.members.iter().map(NewMemberRow::from_domain).collect();
        let mut conn = self.conn().await?;
        // The unique index on (workspace_id, unique_key) decides between concurrent creators:
        // the loser's INSERT does nothing (after waiting for the winner to commit), and it
        // reads the winner's row instead.
        let created = (*conn)
            .transaction::<_, DieselError, _>(async |conn: &mut AsyncPgConnection| {
                let inserted = diesel::insert_into(conversations::table)
                    .values(&row)
                    .on_conflict((conversations::workspace_id, conversations::unique_key))
                    .do_nothing()
                    .returning(ConversationRow::as_returning())
                    .get_result(conn)
                    .await
                    .optional()?;
                if let Some(inserted) = inserted {
                    diesel::insert_into(conversation_members::table).values(&members).execute(conn).await?;
                    return Ok(Created::New(inserted));
                }
                let existing = conversations::table
                    .filter(conversations::workspace_id.eq(row.workspace_id))
                    .filter(conversations::unique_key.eq(row.unique_key))
                    .select(ConversationRow::as_select())
                    .first(conn)
                    .await?;
                Ok(Created::Existing(existing))
            })
            .await
            .map_err(repo("creating a conversation"))?;
        Ok(match created {
            Created::New(row) => Created::New(row.into_domain()?),
            Created::Existing(row) => Created::Existing(row.into_domain()?),
        })
    }

    #[tracing::instrument(skip_all, fields(conversation = %id))]
    async fn find_conversation(&self, id: ConversationId) -> Result<Option<Conversation>, RepoError> {
        let mut conn = self.conn().await?;
        let row = conversations::table
            .find(id.as_uuid())
            .select(ConversationRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(repo("finding a conversation"))?;
        row.map(ConversationRow::into_domain).transpose()
    }

    #[tracing::instrument(skip_all, fields(conversation = %id, user = %user))]
    async fn find_standing(&self, id: ConversationId, user: UserId) -> Result<Option<Standing>, RepoError> {
        let mut conn = self.conn().await?;
        let row = conversations::table
            .left_join(
                workspace_members::table.on(workspace_members::workspace_id
                    .eq(conversations::workspace_id)
                    .and(workspace_members::user_id.eq(user.as_uuid()))),
            )
            .left_join(
                conversation_members::table.on(conversation_members::conversation_id
                    .eq(conversations::id)
                    .and(conversation_members::user_id.eq(user.as_uuid()))),
            )
            .filter(conversations::id.eq(id.as_uuid()))
            .select((
                ConversationRow::as_select(),
                workspace_members::role.nullable(),
                Option::<MemberRow>::as_select(),
            ))
            .first::<(ConversationRow, Option<String>, Option<MemberRow>)>(&mut conn)
            .await
            .optional()
            .map_err(repo("reading a user's standing in a conversation"))?;
        row.map(|(conversation, role, member)| {
            Ok(Standing {
                conversation: conversation.into_domain()?,
                workspace_role: role.as_deref().map(crate::workspaces::parse_role).transpose()?,
                member: member.map(MemberRow::into_domain).transpose()?,
            })
        })
        .transpose()
    }

    #[tracing::instrument(skip_all, fields(conversation = %conversation, user = %user))]
    async fn find_member(&self, conversation: ConversationId, user: UserId) -> Result<Option<Member>, RepoError> {
        let mut conn = self.conn().await?;
        let row = conversation_members::table
            .find((conversation.as_uuid(), user.as_uuid()))
            .select(MemberRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(repo("finding a conversation member"))?;
        row.map(MemberRow::into_domain).transpose()
    }

    #[tracing::instrument(skip_all, fields(conversation = %conversation))]
    async fn list_members(&self, conversation: ConversationId) -> Result<Vec<Member>, RepoError> {
        let mut conn = self.conn().await?;
        let rows = conversation_members::table
            .filter(conversation_members::conversation_id.eq(conversation.as_uuid()))
            .order((conversation_members::joined_at.asc(), conversation_members::ordinal.asc()))
            .select(MemberRow::as_select())
            .load(&mut conn)
            .await
            .map_err(repo("listing conversation members"))?;
        rows.into_iter().map(MemberRow::into_domain).collect()
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace, user = %user))]
    async fn list_conversations_of(
        &self,
        workspace: WorkspaceId,
        user: UserId,
    ) -> Result<Vec<ConversationListing>, RepoError> {
        let mut conn = self.conn().await?;
        // Three queries whatever the count: conversations with the caller's membership and the
        // last message (the one whose seq is the counter), unread counts grouped, and the
        // reactions of those last messages.
        let rows: Vec<(ConversationRow, MemberRow, Option<MessageRow>)> = conversations::table
            .inner_join(
                conversation_members::table.on(conversation_members::conversation_id
                    .eq(conversations::id)
                    .and(conversation_members::user_id.eq(user.as_uuid()))),
            )
            .left_join(
                messages::table
                    .on(messages::conversation_id.eq(conversations::id).and(messages::seq.eq(conversations::last_seq))),
            )
            .filter(conversations::workspace_id.eq(workspace.as_uuid()))
            .select((ConversationRow::as_select(), MemberRow::as_select(), Option::<MessageRow>::as_select()))
            .load(&mut conn)
            .await
            .map_err(repo("listing a user's conversations"))?;
        let unread: HashMap<Uuid, i64> = unread_counts(&mut conn, workspace, user)
            .await
            .map_err(repo("counting unread messages"))?
            .into_iter()
            .collect();
        let last_ids: Vec<Uuid> = rows.iter().filter_map(|(_, _, m)| m.as_ref().map(|m| m.id)).collect();
        let mut reactions =
            load_reactions(&mut conn, &last_ids).await.map_err(repo("loading reactions of last messages"))?;
        let mut attached = crate::attachments::attached(&mut conn, &last_ids).await?;

        let mut listings = rows
            .into_iter()
            .map(|(c, m, last)| {
                let unread_count = unread.get(&c.id).copied().unwrap_or(0);
                let last_message = last
                    .map(|row| {
                        let files = attached.remove(&row.id).unwrap_or_default();
                        row.into_domain(&mut reactions).map(|m| StoredMessage { attachments: files, ..m })
                    })
                    .transpose()?;
                Ok(ConversationListing {
                    conversation: c.into_domain()?,
                    member: m.into_domain()?,
                    unread_count,
                    last_message,
                })
            })
            .collect::<Result<Vec<_>, RepoError>>()?;
        // Most recently active first: the last message's time, else the conversation's.
        listings.sort_by(|a, b| {
            let active = |l: &ConversationListing| {
                (l.last_message.as_ref().map_or(l.conversation.updated_at, |m| m.created_at), l.conversation.id)
            };
            active(b).cmp(&active(a))
        });
        Ok(listings)
    }

    #[tracing::instrument(skip_all, fields(conversation = %id))]
    async fn update_conversation(
        &self,
        id: ConversationId,
        patch: &ConversationPatch,
        at: DateTime<Utc>,
    ) -> Result<Option<Conversation>, RepoError> {
        let changes = PatchRow {
            name: patch.name.as_ref().map(Option::as_deref),
            description: patch.description.as_ref().map(Option::as_deref),
            icon: patch.icon.as_ref().map(Option::as_deref),
            max_participants: patch.max_participants.map(participants).transpose()?,
            updated_at: at,
        };
        let mut conn = self.conn().await?;
        let row = diesel::update(conversations::table.find(id.as_uuid()))
            .set(&changes)
            .returning(ConversationRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(repo("updating a conversation"))?;
        row.map(ConversationRow::into_domain).transpose()
    }

    #[tracing::instrument(skip_all, fields(conversation = %id))]
    async fn archive_conversation(
        &self,
        id: ConversationId,
        at: DateTime<Utc>,
    ) -> Result<Option<Conversation>, RepoError> {
        let mut conn = self.conn().await?;
        let row = diesel::update(conversations::table.find(id.as_uuid()))
            .set(conversations::archived_at.eq(coalesce(conversations::archived_at, Some(at))))
            .returning(ConversationRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(repo("archiving a conversation"))?;
        row.map(ConversationRow::into_domain).transpose()
    }

    #[tracing::instrument(skip_all, fields(conversation = %member.conversation_id, user = %member.user_id))]
    async fn add_member(&self, member: &Member, max_participants: u32) -> Result<Member, AddMemberError> {
        let row = NewMemberRow::from_domain(member);
        let conversation = row.conversation_id;
        let cap = i64::from(max_participants);
        let mut conn = self.conn().await?;
        // The conversation row's lock serialises every adder of this conversation, so the count
        // and the insert see the same membership. (`FOR NO KEY UPDATE`: it conflicts with itself
        // and with the seq counter's update, not with foreign-key checks of other inserts.)
        let added = (*conn)
            .transaction::<_, AddTx, _>(async |conn: &mut AsyncPgConnection| {
                conversations::table
                    .find(conversation)
                    .select(conversations::id)
                    .for_no_key_update()
                    .first::<Uuid>(conn)
                    .await
                    .optional()?
                    .ok_or(AddTx::Missing)?;
                let already = conversation_members::table
                    .find((conversation, row.user_id))
                    .select(conversation_members::user_id)
                    .first::<Uuid>(conn)
                    .await
                    .optional()?;
                if already.is_some() {
                    return Err(AddTx::Duplicate);
                }
                let members: i64 = conversation_members::table
                    .filter(conversation_members::conversation_id.eq(conversation))
                    .count()
                    .get_result(conn)
                    .await?;
                if members >= cap {
                    return Err(AddTx::Full);
                }
                Ok(diesel::insert_into(conversation_members::table)
                    .values(&row)
                    .returning(MemberRow::as_returning())
                    .get_result(conn)
                    .await?)
            })
            .await;
        match added {
            Ok(row) => Ok(row.into_domain()?),
            Err(AddTx::Duplicate) => Err(AddMemberError::Duplicate),
            Err(AddTx::Full) => Err(AddMemberError::Full),
            Err(AddTx::Missing) => Err(RepoError::msg("adding a member to a conversation that does not exist").into()),
            Err(AddTx::Db(e)) => Err(RepoError::new("adding a conversation member", e).into()),
        }
    }

    #[tracing::instrument(skip_all, fields(conversation = %conversation, user = %user))]
    async fn remove_member(&self, conversation: ConversationId, user: UserId) -> Result<bool, RepoError> {
        let mut conn = self.conn().await?;
        let removed = diesel::delete(conversation_members::table.find((conversation.as_uuid(), user.as_uuid())))
            .execute(&mut conn)
            .await
            .map_err(repo("removing a conversation member"))?;
        Ok(removed > 0)
    }

    #[tracing::instrument(skip_all, fields(conversation = %conversation, user = %user))]
    async fn set_member_role(
        &self,
        conversation: ConversationId,
        user: UserId,
        role: ConversationRole,
    ) -> Result<Option<Member>, RepoError> {
        let mut conn = self.conn().await?;
        let row = diesel::update(conversation_members::table.find((conversation.as_uuid(), user.as_uuid())))
            .set(conversation_members::role.eq(role.as_str()))
            .returning(MemberRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(repo("changing a member's role"))?;
        row.map(MemberRow::into_domain).transpose()
    }

    #[tracing::instrument(skip_all, fields(conversation = %conversation, user = %user, seq = seq))]
    async fn mark_read(
        &self,
        conversation: ConversationId,
        user: UserId,
        seq: i64,
        at: DateTime<Utc>,
    ) -> Result<Option<Member>, RepoError> {
        let key = (conversation.as_uuid(), user.as_uuid());
        let mut conn = self.conn().await?;
        // Forward only: the condition is part of the UPDATE, so concurrent marks never move
        // the watermark back.
        let moved =
            diesel::update(conversation_members::table.find(key).filter(conversation_members::last_read_seq.lt(seq)))
                .set((conversation_members::last_read_seq.eq(seq), conversation_members::last_read_at.eq(at)))
                .returning(MemberRow::as_returning())
                .get_result(&mut conn)
                .await
                .optional()
                .map_err(repo("moving a read watermark"))?;
        let row = match moved {
            Some(row) => Some(row),
            None => conversation_members::table
                .find(key)
                .select(MemberRow::as_select())
                .first(&mut conn)
                .await
                .optional()
                .map_err(repo("reading a read watermark"))?,
        };
        row.map(MemberRow::into_domain).transpose()
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace, user = %user))]
    #[tracing::instrument(skip_all, fields(workspace = %workspace, user = %user))]
    async fn conversation_heads(
        &self,
        workspace: WorkspaceId,
        user: UserId,
    ) -> Result<Vec<(ConversationId, i64)>, RepoError> {
        let mut conn = self.conn().await?;
        let heads: Vec<(Uuid, i64)> = conversation_members::table
            .inner_join(conversations::table)
            .filter(conversation_members::user_id.eq(user.as_uuid()))
            .filter(conversations::workspace_id.eq(workspace.as_uuid()))
            .select((conversations::id, conversations::last_seq))
            .load(&mut conn)
            .await
            .map_err(repo("listing conversation heads"))?;
        Ok(heads.into_iter().map(|(id, seq)| (ConversationId::from_uuid(id), seq)).collect())
    }

    async fn unread_counts(
        &self,
        workspace: WorkspaceId,
        user: UserId,
    ) -> Result<Vec<(ConversationId, i64)>, RepoError> {
        let mut conn = self.conn().await?;
        let counts = unread_counts(&mut conn, workspace, user).await.map_err(repo("counting unread messages"))?;
        Ok(counts.into_iter().map(|(id, n)| (ConversationId::from_uuid(id), n)).collect())
    }
}
