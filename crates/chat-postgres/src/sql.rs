//! SQL functions diesel does not ship, and the few statements the DSL cannot express.

use diesel::expression::functions::declare_sql_function;
use diesel::sql_types::{Nullable, Timestamptz};

#[declare_sql_function]
extern "SQL" {
    /// `COALESCE(a, b)` over timestamps: keeps an earlier `archived_at` / `deleted_at`.
    fn coalesce(a: Nullable<Timestamptz>, b: Nullable<Timestamptz>) -> Nullable<Timestamptz>;
}

/// Group commit: inserts a batch's messages, one array per column (`$1[i]` … `$10[i]` are
/// message `i`): constant text, run as a `chat_diesel::Prepared`, so it is parsed once per
/// connection whatever the batch's size. A `(conversation, sender, clientMsgId)` already taken
/// inserts nothing and returns no row (the batch then rolls back and looks its keys up first).
pub(crate) const INSERT_MESSAGES: &str = "INSERT INTO messages \
     (id, conversation_id, seq, sender_id, client_msg_id, kind, content, key_version, reply_to_id, created_at) \
     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int8[], $4::uuid[], $5::text[], $6::text[], $7::bytea[], \
     $8::int4[], $9::uuid[], $10::timestamptz[]) \
     ON CONFLICT (conversation_id, sender_id, client_msg_id) DO NOTHING \
     RETURNING id, conversation_id, seq, sender_id, client_msg_id, kind, content, key_version, reply_to_id, \
     reply_count, edited_at, deleted_at, created_at";

/// Group commit: moves each conversation of `$1` to the `last_seq` at the same index of `$2`
/// (their rows are locked by the batch already).
pub(crate) const MOVE_COUNTERS: &str = "UPDATE conversations AS c SET last_seq = u.last_seq \
     FROM unnest($1::uuid[], $2::int8[]) AS u(id, last_seq) WHERE c.id = u.id";

/// Group commit: moves the read watermark of each `(conversation $1[i], user $2[i])` forward to
/// `$3[i]` (read at `$4[i]`), never back. The batch holds the counter lock of every one of these
/// conversations, so no other batch writes these rows meanwhile.
pub(crate) const MOVE_WATERMARKS: &str = "UPDATE conversation_members AS m \
     SET last_read_seq = u.seq, last_read_at = u.at \
     FROM unnest($1::uuid[], $2::uuid[], $3::int8[], $4::timestamptz[]) AS u(conversation_id, user_id, seq, at) \
     WHERE m.conversation_id = u.conversation_id AND m.user_id = u.user_id AND m.last_read_seq < u.seq";

/// Group commit: adds to the `reply_count` of each thread root in `$1` the number of times it
/// appears there (the batch's replies to it).
pub(crate) const BUMP_REPLY_COUNTS: &str = "UPDATE messages AS m SET reply_count = m.reply_count + u.replies \
     FROM (SELECT id, count(*) AS replies FROM unnest($1::uuid[]) AS r(id) GROUP BY id) AS u WHERE m.id = u.id";
