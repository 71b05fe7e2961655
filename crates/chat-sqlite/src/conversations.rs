//! [`ConversationRepository`]: conversations, members, read watermarks and the per-user
//! conversation list.

use std::cmp::Reverse;
use std::collections::HashMap;

use async_trait::async_trait;
use chat_domain::conversation::{
    AddMemberError, Conversation, ConversationListing, ConversationPatch, ConversationRepository, ConversationRole,
    Created, Member, NewConversation, Standing,
};
use chat_domain::error::RepoError;
use chat_domain::ids::{ConversationId, UserId, WorkspaceId};
use chat_domain::message::StoredMessage;
use chrono::{DateTime, Utc};
use diesel::dsl::{count, sql};
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use crate::rows::{
    ConversationRow, MemberRow, MessageRow, ReactionRow, Reactions, WorkspaceMemberRow, key, micros, uuid,
};
use crate::schema::{conversation_members, conversations, message_reactions, messages, workspace_members};
use crate::store::{SqliteStore, Tx, coalesce, settle, unique_violation};

/// The attributes a patch may change; `None` leaves a column alone, `Some(None)` clears it.
#[derive(AsChangeset)]
#[diesel(table_name = conversations, check_for_backend(Sqlite))]
struct ConversationChanges {
    name: Option<Option<String>>,
    description: Option<Option<String>>,
    icon: Option<Option<String>>,
    max_participants: Option<i64>,
    updated_at: i64,
}

/// Unread counts of `user`'s conversations in `workspace` (zeros included): messages from
/// others, not deleted, above the watermark. One grouped query.
fn unread_counts(c: &mut SqliteConnection, workspace: &[u8], user: &[u8]) -> QueryResult<Vec<(Vec<u8>, i64)>> {
    conversation_members::table
        .inner_join(conversations::table)
        .left_join(
            messages::table.on(messages::conversation_id
                .eq(conversation_members::conversation_id)
                .and(messages::seq.gt(conversation_members::last_read_seq))
                .and(messages::sender_id.ne(conversation_members::user_id))
                .and(messages::deleted_at.is_null())),
        )
        .filter(conversation_members::user_id.eq(user))
        .filter(conversations::workspace_id.eq(workspace))
        .group_by(conversation_members::conversation_id)
        .select((conversation_members::conversation_id, count(messages::id.nullable())))
        .load(c)
}

/// Members in join order; insertion order among members who joined in the same microsecond.
fn members_of(c: &mut SqliteConnection, conversation: &[u8]) -> QueryResult<Vec<MemberRow>> {
    conversation_members::table
        .filter(conversation_members::conversation_id.eq(conversation))
        .order_by(conversation_members::joined_at.asc())
        .then_order_by(sql::<BigInt>("conversation_members.rowid"))
        .select(MemberRow::as_select())
        .load(c)
}

fn find_member(c: &mut SqliteConnection, conversation: &[u8], user: &[u8]) -> QueryResult<Option<MemberRow>> {
    conversation_members::table.find((conversation, user)).select(MemberRow::as_select()).get_result(c).optional()
}

#[async_trait]
impl ConversationRepository for SqliteStore {
    #[tracing::instrument(skip_all, fields(conversation = %new.conversation.id, workspace = %new.conversation.workspace_id))]
    async fn create_conversation(&self, new: &NewConversation) -> Result<Created<Conversation>, RepoError> {
        let row = ConversationRow::from_domain(&new.conversation, new.unique_key.clone());
        let members: Vec<MemberRow> = new.members.iter().map(MemberRow::from_domain).collect();
        self.run("creating a conversation", move |c| {
            c.immediate_transaction(|c| {
                let insert = diesel::insert_into(conversations::table).values(&row);
                let inserted = if row.unique_key.is_some() {
                    // The unique index decides: of concurrent creators, one inserts and the
                    // others read what it inserted.
                    insert
                        .on_conflict((conversations::workspace_id, conversations::unique_key))
                        .do_nothing()
                        .execute(c)?
                } else {
                    insert.execute(c)?
                };
                if inserted == 0 {
                    let existing = conversations::table
                        .filter(conversations::workspace_id.eq(&row.workspace_id))
                        .filter(conversations::unique_key.eq(&row.unique_key))
                        .select(ConversationRow::as_select())
                        .get_result(c)?;
                    return Ok(Created::Existing(existing.into_conversation()?));
                }
                diesel::insert_into(conversation_members::table).values(&members).execute(c)?;
                Ok(Created::New(row.into_conversation()?))
            })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(conversation = %id))]
    async fn find_conversation(&self, id: ConversationId) -> Result<Option<Conversation>, RepoError> {
        self.run("finding a conversation", move |c| {
            let row = conversations::table
                .find(key(id.as_uuid()))
                .select(ConversationRow::as_select())
                .get_result(c)
                .optional()?;
            row.map(ConversationRow::into_conversation).transpose()
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(conversation = %id, user = %user))]
    async fn find_standing(&self, id: ConversationId, user: UserId) -> Result<Option<Standing>, RepoError> {
        let (id, user) = (key(id.as_uuid()), key(user.as_uuid()));
        self.run("reading a user's standing in a conversation", move |c| {
            let row = conversations::table
                .left_join(
                    workspace_members::table.on(workspace_members::workspace_id
                        .eq(conversations::workspace_id)
                        .and(workspace_members::user_id.eq(user.clone()))),
                )
                .left_join(
                    conversation_members::table.on(conversation_members::conversation_id
                        .eq(conversations::id)
                        .and(conversation_members::user_id.eq(user))),
                )
                .filter(conversations::id.eq(id))
                .select((
                    ConversationRow::as_select(),
                    workspace_members::role.nullable(),
                    Option::<MemberRow>::as_select(),
                ))
                .get_result::<(ConversationRow, Option<String>, Option<MemberRow>)>(c)
                .optional()?;
            row.map(|(conversation, role, member)| {
                Ok(Standing {
                    conversation: conversation.into_conversation()?,
                    workspace_role: role.as_deref().map(WorkspaceMemberRow::parse_role).transpose()?,
                    member: member.map(MemberRow::into_member).transpose()?,
                })
            })
            .transpose()
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(conversation = %conversation, user = %user))]
    async fn find_member(&self, conversation: ConversationId, user: UserId) -> Result<Option<Member>, RepoError> {
        self.run("finding a conversation member", move |c| {
            find_member(c, &key(conversation.as_uuid()), &key(user.as_uuid()))?.map(MemberRow::into_member).transpose()
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(conversation = %conversation))]
    async fn list_members(&self, conversation: ConversationId) -> Result<Vec<Member>, RepoError> {
        self.run("listing conversation members", move |c| {
            members_of(c, &key(conversation.as_uuid()))?.into_iter().map(MemberRow::into_member).collect()
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace, user = %user))]
    async fn list_conversations_of(
        &self,
        workspace: WorkspaceId,
        user: UserId,
    ) -> Result<Vec<ConversationListing>, RepoError> {
        let (workspace, user) = (key(workspace.as_uuid()), key(user.as_uuid()));
        self.run("listing a user's conversations", move |c| {
            // Four queries whatever the number of conversations, in one read transaction so
            // that they agree with each other.
            c.transaction(|c| {
                let rows = conversations::table
                    .inner_join(conversation_members::table)
                    .filter(conversations::workspace_id.eq(&workspace))
                    .filter(conversation_members::user_id.eq(&user))
                    .select((ConversationRow::as_select(), MemberRow::as_select()))
                    .load::<(ConversationRow, MemberRow)>(c)?;
                let unread: HashMap<Vec<u8>, i64> = unread_counts(c, &workspace, &user)?.into_iter().collect();
                // The last message of each is the one whose seq is the conversation's last_seq.
                let last = messages::table
                    .inner_join(conversations::table.on(
                        conversations::id.eq(messages::conversation_id).and(conversations::last_seq.eq(messages::seq)),
                    ))
                    .inner_join(
                        conversation_members::table.on(conversation_members::conversation_id.eq(conversations::id)),
                    )
                    .filter(conversations::workspace_id.eq(&workspace))
                    .filter(conversation_members::user_id.eq(&user));
                let last_messages = last.select(MessageRow::as_select()).load::<MessageRow>(c)?;
                let reaction_rows = message_reactions::table
                    .inner_join(messages::table.on(messages::id.eq(message_reactions::message_id)))
                    .inner_join(conversations::table.on(
                        conversations::id.eq(messages::conversation_id).and(conversations::last_seq.eq(messages::seq)),
                    ))
                    .inner_join(
                        conversation_members::table.on(conversation_members::conversation_id.eq(conversations::id)),
                    )
                    .filter(conversations::workspace_id.eq(&workspace))
                    .filter(conversation_members::user_id.eq(&user))
                    .order_by(message_reactions::created_at.asc())
                    .then_order_by(sql::<BigInt>("message_reactions.rowid"))
                    .select(ReactionRow::as_select())
                    .load::<ReactionRow>(c)?;
                let mut reactions = Reactions::group(reaction_rows)?;
                let last_ids: Vec<Vec<u8>> = last_messages.iter().map(|m| m.id.clone()).collect();
                let mut attached = crate::attachments::attached(c, &last_ids)?;
                let mut last_by_conversation = HashMap::with_capacity(last_messages.len());
                for row in last_messages {
                    let conversation_id = row.conversation_id.clone();
                    let files = attached.remove(&row.id).unwrap_or_default();
                    let message = StoredMessage { attachments: files, ..row.into_message(&mut reactions)? };
                    last_by_conversation.insert(conversation_id, message);
                }

                let mut listings = rows
                    .into_iter()
                    .map(|(conversation, member)| {
                        let unread_count = unread.get(&conversation.id).copied().unwrap_or(0);
                        let last_message = last_by_conversation.remove(&conversation.id);
                        Ok(ConversationListing {
                            conversation: conversation.into_conversation()?,
                            member: member.into_member()?,
                            unread_count,
                            last_message,
                        })
                    })
                    .collect::<QueryResult<Vec<_>>>()?;
                // Most recently active first: the last message's time, or the conversation's
                // last change when it has no messages.
                listings.sort_by_key(|l| {
                    let active = l.last_message.as_ref().map_or(l.conversation.updated_at, |m| m.created_at);
                    Reverse((active, l.conversation.id))
                });
                Ok(listings)
            })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(conversation = %id))]
    async fn update_conversation(
        &self,
        id: ConversationId,
        patch: &ConversationPatch,
        at: DateTime<Utc>,
    ) -> Result<Option<Conversation>, RepoError> {
        let changes = ConversationChanges {
            name: patch.name.clone(),
            description: patch.description.clone(),
            icon: patch.icon.clone(),
            max_participants: patch.max_participants.map(i64::from),
            updated_at: micros(at),
        };
        self.run("updating a conversation", move |c| {
            let row = diesel::update(conversations::table.find(key(id.as_uuid())))
                .set(&changes)
                .returning(ConversationRow::as_returning())
                .get_result(c)
                .optional()?;
            row.map(ConversationRow::into_conversation).transpose()
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(conversation = %id))]
    async fn archive_conversation(
        &self,
        id: ConversationId,
        at: DateTime<Utc>,
    ) -> Result<Option<Conversation>, RepoError> {
        let at = micros(at);
        self.run("archiving a conversation", move |c| {
            let row = diesel::update(conversations::table.find(key(id.as_uuid())))
                .set(conversations::archived_at.eq(coalesce(conversations::archived_at, at)))
                .returning(ConversationRow::as_returning())
                .get_result(c)
                .optional()?;
            row.map(ConversationRow::into_conversation).transpose()
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(conversation = %member.conversation_id, user = %member.user_id, role = member.role.as_str()))]
    async fn add_member(&self, member: &Member, max_participants: u32) -> Result<Member, AddMemberError> {
        let row = MemberRow::from_domain(member);
        let cap = i64::from(max_participants);
        self.run("adding a conversation member", move |c| {
            // Insert, then count, in one immediate transaction: no other writer can add a
            // member in between, and going over the cap rolls the insert back.
            settle(c.immediate_transaction(|c| {
                diesel::insert_into(conversation_members::table).values(&row).execute(c).map_err(|e| {
                    if unique_violation(&e, "conversation_members.") {
                        Tx::Outcome(AddMemberError::Duplicate)
                    } else {
                        Tx::Db(e)
                    }
                })?;
                let members: i64 = conversation_members::table
                    .filter(conversation_members::conversation_id.eq(&row.conversation_id))
                    .count()
                    .get_result(c)?;
                if members > cap {
                    return Err(Tx::Outcome(AddMemberError::Full));
                }
                Ok(row.into_member()?)
            }))
        })
        .await?
    }

    #[tracing::instrument(skip_all, fields(conversation = %conversation, user = %user))]
    async fn remove_member(&self, conversation: ConversationId, user: UserId) -> Result<bool, RepoError> {
        self.run("removing a conversation member", move |c| {
            let removed =
                diesel::delete(conversation_members::table.find((key(conversation.as_uuid()), key(user.as_uuid()))))
                    .execute(c)?;
            Ok(removed > 0)
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(conversation = %conversation, user = %user, role = role.as_str()))]
    async fn set_member_role(
        &self,
        conversation: ConversationId,
        user: UserId,
        role: ConversationRole,
    ) -> Result<Option<Member>, RepoError> {
        self.run("changing a member's role", move |c| {
            let row =
                diesel::update(conversation_members::table.find((key(conversation.as_uuid()), key(user.as_uuid()))))
                    .set(conversation_members::role.eq(role.as_str()))
                    .returning(MemberRow::as_returning())
                    .get_result(c)
                    .optional()?;
            row.map(MemberRow::into_member).transpose()
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(conversation = %conversation, user = %user, seq = seq))]
    async fn mark_read(
        &self,
        conversation: ConversationId,
        user: UserId,
        seq: i64,
        at: DateTime<Utc>,
    ) -> Result<Option<Member>, RepoError> {
        let (conversation, user, at) = (key(conversation.as_uuid()), key(user.as_uuid()), micros(at));
        self.run("moving a read watermark", move |c| {
            c.immediate_transaction(|c| {
                // Forward only: a smaller seq matches no row and changes nothing.
                diesel::update(
                    conversation_members::table
                        .find((&conversation, &user))
                        .filter(conversation_members::last_read_seq.lt(seq)),
                )
                .set((conversation_members::last_read_seq.eq(seq), conversation_members::last_read_at.eq(at)))
                .execute(c)?;
                find_member(c, &conversation, &user)?.map(MemberRow::into_member).transpose()
            })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace, user = %user))]
    async fn conversation_heads(
        &self,
        workspace: WorkspaceId,
        user: UserId,
    ) -> Result<Vec<(ConversationId, i64)>, RepoError> {
        let (workspace, user) = (key(workspace.as_uuid()), key(user.as_uuid()));
        self.run("listing conversation heads", move |c| {
            conversation_members::table
                .inner_join(conversations::table)
                .filter(conversation_members::user_id.eq(&user))
                .filter(conversations::workspace_id.eq(&workspace))
                .select((conversations::id, conversations::last_seq))
                .load::<(Vec<u8>, i64)>(c)?
                .into_iter()
                .map(|(id, seq)| Ok((ConversationId::from_uuid(uuid(&id)?), seq)))
                .collect()
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(workspace = %workspace, user = %user))]
    async fn unread_counts(
        &self,
        workspace: WorkspaceId,
        user: UserId,
    ) -> Result<Vec<(ConversationId, i64)>, RepoError> {
        let (workspace, user) = (key(workspace.as_uuid()), key(user.as_uuid()));
        self.run("counting unread messages", move |c| {
            unread_counts(c, &workspace, &user)?
                .into_iter()
                .map(|(id, n)| Ok((ConversationId::from_uuid(uuid(&id)?), n)))
                .collect()
        })
        .await
    }
}
