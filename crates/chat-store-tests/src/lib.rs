//! # chat-store-tests
//!
//! One behaviour suite for the repository ports of `chat-domain`, written once and run
//! against every storage adapter (`chat-postgres`, `chat-sqlite`), so that the adapters agree
//! on every contract the domain relies on: typed conflicts, gap-free `seq`s under concurrency,
//! idempotent sends, get-or-create, forward-only watermarks, soft deletes, reaction grouping,
//! and content kept byte for byte.
//!
//! **Layer.** Test support, beside the adapters. It depends on `chat-domain` (the ports and
//! models it exercises) and on tokio; never on an adapter — adapters depend on it, as a
//! dev-dependency.
//!
//! **Where to start reading.** [`behaviour_suite!`], which an adapter's integration test
//! invokes with a function that makes a fresh [`Stores`]; then the behaviours themselves, one
//! `pub async fn` per sentence, grouped by port in `users.rs`, `sessions.rs`,
//! `workspaces.rs`, `conversations.rs`, `messages.rs`, `presence.rs` (presence and keys) and
//! `search.rs` (the blind index).
//!
//! ```ignore
//! async fn make() -> Option<chat_store_tests::Stores> {
//!     let database = chat_postgres::testing::fresh_database().await?;
//!     let store = chat_postgres::PgStore::connect(database.url(), 8).await.expect("connect");
//!     Some(chat_store_tests::Stores::from_store(std::sync::Arc::new(store)).with_guard(database))
//! }
//! chat_store_tests::behaviour_suite!(make);
//! ```

#![forbid(unsafe_code)]

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use chat_domain::audit::AuditLog;
use chat_domain::cipher::KeyRepository;
use chat_domain::conversation::ConversationRepository;
use chat_domain::file::FileRepository;
use chat_domain::keys::KeyDirectory;
use chat_domain::message::MessageRepository;
use chat_domain::presence::PresenceRepository;
use chat_domain::search::SearchIndex;
use chat_domain::user::{SessionRepository, UserRepository};
use chat_domain::workspace::WorkspaceRepository;

mod attachments;
mod audit;
mod conversations;
mod files;
mod fixtures;
mod group_commit;
mod key_directory;
mod messages;
mod presence;
mod rotation;
mod search;
mod sessions;
mod users;
mod workspaces;

pub use attachments::*;
pub use audit::*;
pub use conversations::*;
pub use files::*;
pub use group_commit::*;
pub use key_directory::*;
pub use messages::*;
pub use presence::*;
pub use rotation::*;
pub use search::*;
pub use sessions::*;
pub use users::*;
pub use workspaces::*;

/// The seven repository ports of one fresh, empty store.
pub struct Stores {
    /// Accounts.
    pub users: Arc<dyn UserRepository>,
    /// Refresh tokens.
    pub sessions: Arc<dyn SessionRepository>,
    /// Workspaces and their members.
    pub workspaces: Arc<dyn WorkspaceRepository>,
    /// Conversations, members, watermarks.
    pub conversations: Arc<dyn ConversationRepository>,
    /// Messages, threads, reactions.
    pub messages: Arc<dyn MessageRepository>,
    /// Presence.
    pub presence: Arc<dyn PresenceRepository>,
    /// Wrapped workspace keys.
    pub keys: Arc<dyn KeyRepository>,
    /// The search blind index.
    pub search: Arc<dyn SearchIndex>,
    /// The E2E public key directory.
    pub key_directory: Arc<dyn KeyDirectory>,
    /// The audit log.
    pub audit: Arc<dyn AuditLog>,
    /// File metadata rows.
    pub files: Arc<dyn FileRepository>,
    /// Keeps whatever backs the store alive for as long as the test runs, and drops it after
    /// the ports (fields drop in declaration order): Postgres's `TestDatabase` guard, which
    /// drops the database, or SQLite's temporary directory. Set it with [`Stores::with_guard`].
    pub _guard: Option<Box<dyn Any + Send + Sync>>,
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stores").field("guarded", &self._guard.is_some()).finish_non_exhaustive()
    }
}

impl Stores {
    /// Every port from one store that implements them all.
    pub fn from_store<S>(store: Arc<S>) -> Self
    where
        S: UserRepository
            + SessionRepository
            + WorkspaceRepository
            + ConversationRepository
            + MessageRepository
            + PresenceRepository
            + KeyRepository
            + SearchIndex
            + KeyDirectory
            + AuditLog
            + FileRepository
            + 'static,
    {
        Self {
            users: store.clone(),
            sessions: store.clone(),
            workspaces: store.clone(),
            conversations: store.clone(),
            messages: store.clone(),
            presence: store.clone(),
            search: store.clone(),
            key_directory: store.clone(),
            audit: store.clone(),
            files: store.clone(),
            keys: store,
            _guard: None,
        }
    }

    /// Keeps `guard` alive until the stores are dropped, and drops it after them.
    #[must_use]
    pub fn with_guard(mut self, guard: impl Any + Send + Sync) -> Self {
        self._guard = Some(Box::new(guard));
        self
    }
}

/// Expands to one `#[tokio::test(flavor = "multi_thread", worker_threads = 4)]` per behaviour
/// of this crate. `$make` is a path to an `async fn() -> Option<Stores>` that gives a FRESH,
/// empty store on every call; `None` skips the test (its services are unavailable). The
/// invoking crate needs `tokio` (with `macros` and `rt-multi-thread`) among its
/// dev-dependencies.
#[macro_export]
macro_rules! behaviour_suite {
    ($make:path) => {
        $crate::behaviour_suite!(@tests $make;
            // users
            a_created_user_is_found_by_id_and_by_email,
            a_second_account_with_the_same_email_is_refused,
            concurrent_registrations_of_one_email_create_one_account,
            // sessions
            a_current_refresh_token_rotates_into_its_replacement,
            a_spent_refresh_token_revokes_its_whole_family,
            an_expired_or_unknown_refresh_token_is_invalid,
            concurrent_rotations_of_one_token_rotate_exactly_once,
            // workspaces
            a_created_workspace_is_found_and_its_creator_is_its_owner,
            a_taken_slug_is_refused,
            a_users_workspaces_are_listed_with_their_roles,
            workspace_members_are_added_once_and_listed_with_profiles_in_join_order,
            removing_a_workspace_member_removes_their_conversations_there_only,
            // conversations
            a_conversation_is_created_with_its_members,
            a_standing_holds_the_conversation_the_workspace_role_and_the_membership,
            concurrent_creators_of_one_dm_agree_on_one_conversation,
            a_unique_key_is_unique_within_its_workspace_only,
            a_conversation_patch_changes_only_what_it_names,
            archiving_keeps_the_first_archived_at,
            adding_a_member_refuses_duplicates_and_respects_the_cap,
            concurrent_joins_never_exceed_the_cap,
            removed_members_are_gone_and_roles_change,
            the_read_watermark_only_moves_forward,
            unread_counts_cover_the_users_conversations_of_one_workspace,
            conversation_listings_carry_unread_counts_and_last_messages_most_recent_first,
            conversation_heads_name_the_users_conversations_with_their_last_seq,
            // messages
            concurrent_senders_get_gapless_seqs,
            a_repeated_client_msg_id_yields_the_original_and_consumes_no_seq,
            a_message_to_an_archived_or_missing_conversation_is_refused,
            only_a_member_of_the_conversation_and_its_workspace_may_insert,
            sending_moves_the_senders_watermark,
            a_reply_bumps_its_roots_reply_count,
            sealed_content_round_trips_byte_for_byte,
            message_windows_page_newest_first_or_oldest_first,
            listed_messages_carry_their_reactions,
            a_thread_lists_its_root_then_its_replies,
            an_edit_replaces_content_unless_the_message_is_deleted,
            a_deleted_message_keeps_its_row_and_seq,
            reactions_toggle_and_group_by_emoji_in_order_of_first_use,
            // group commit: bursts of concurrent sends
            repeated_client_msg_ids_in_one_burst_store_one_message_per_key,
            a_burst_across_conversations_keeps_each_gap_free,
            a_burst_with_an_archived_conversation_commits_the_others,
            a_burst_with_a_non_member_commits_the_members_messages,
            // presence and keys
            presence_is_upserted_per_user_and_workspace_and_listed_and_found,
            workspace_keys_are_listed_by_version_and_never_overwritten,
            // key rotation and crypto-shredding
            reencryption_reads_old_content_by_id_and_replaces_it_only_while_unchanged,
            destroying_keys_and_tags_touches_one_workspace_only,
            // search index
            a_search_finds_the_messages_carrying_every_tag_newest_first,
            a_search_is_confined_to_the_given_conversations_and_workspace,
            search_pages_follow_the_cursor_without_gaps_or_repeats,
            replacing_and_deleting_tags_changes_what_is_found,
            tags_inserted_with_a_message_are_searchable_and_a_duplicate_adds_none,
            // E2E key directory
            a_published_device_is_listed_with_its_prekey_count,
            republishing_replaces_the_signed_prekey_and_appends_one_time_prekeys,
            a_new_identity_key_drops_the_old_one_time_prekeys,
            a_device_id_belongs_to_its_first_publisher,
            concurrent_first_publishers_of_one_device_id_leave_one_owner,
            claims_hand_out_the_lowest_prekey_once_then_none,
            concurrent_claims_hand_out_each_one_time_prekey_exactly_once,
            // audit log
            audit_entries_round_trip_and_list_newest_first_per_workspace,
            audit_pages_follow_the_cursor_without_gaps_or_repeats,
            account_entries_are_listed_in_their_actors_workspaces_only,
            // files
            file_rows_round_trip_and_ids_and_storage_keys_are_unique,
            file_keys_and_names_are_read_for_reencryption_and_replaced_only_while_unchanged,
            // message attachments
            attachments_round_trip_in_order_through_every_read,
            deleting_a_message_drops_its_attachments_and_the_senders_unshared_files,
            a_duplicate_client_msg_id_returns_the_originals_attachments,
            file_rows_are_found_in_bulk,
        );
    };
    (@tests $make:path; $($behaviour:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $behaviour() {
                if let Some(stores) = $make().await {
                    $crate::$behaviour(stores).await;
                }
            }
        )+
    };
}

/// One account that is the admin of `n` open group conversations of one workspace, in any
/// store: what the stores' own batch tests start from. Returns the account and the
/// conversations.
///
/// # Panics
/// When the store refuses any of it.
pub async fn one_user_with_groups<S>(
    store: &S,
    n: usize,
) -> (chat_domain::ids::UserId, Vec<chat_domain::ids::ConversationId>)
where
    S: UserRepository + WorkspaceRepository + ConversationRepository,
{
    let ada = store.create_user(&fixtures::new_user("ada")).await.expect("create a user");
    let workspace = fixtures::new_workspace(&ada, "acme", fixtures::at(0));
    store.create_workspace(&workspace).await.expect("create a workspace");
    let mut conversations = Vec::with_capacity(n);
    for _ in 0..n {
        let new = fixtures::new_conversation(
            &workspace,
            chat_domain::conversation::ConversationType::Group,
            &ada,
            &[],
            fixtures::at(0),
        );
        conversations.push(new.conversation.id);
        store.create_conversation(&new).await.expect("create a conversation");
    }
    (ada.id, conversations)
}
