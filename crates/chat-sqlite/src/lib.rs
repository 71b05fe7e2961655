//! # chat-sqlite
//!
//! The embedded default store: one [`SqliteStore`] implements every repository port of
//! `chat-domain` (users and sessions, workspaces, conversations, messages, presence and
//! wrapped workspace keys) on a single SQLite file, with diesel through diesel-async's
//! `SyncConnectionWrapper` and a deadpool pool.
//!
//! **Layer.** Outbound adapter. It depends on `chat-domain` (ports and models), diesel,
//! diesel-async, diesel_migrations, the bundled libsqlite3, tokio and tracing — never on a web,
//! Redis or crypto crate. Row structs stay private; the ports speak domain types only.
//! Message content arrives already sealed by the domain and is stored as an opaque BLOB:
//! nothing here holds, indexes or derives anything from plaintext.
//!
//! **Where to start reading.** [`SqliteStore::open`] (file, pragmas, migrations, pool) and
//! `SqliteStore::run` in `store.rs` (every call is one closure on one connection, on a
//! blocking thread), then `messages.rs`: `insert_message` takes the next `seq` and inserts
//! the message in one `BEGIN IMMEDIATE` transaction. The schema is
//! `migrations/sqlite/*/up.sql`, mirrored by hand in `schema.rs`.
//!
//! **Concurrency.** SQLite has one writer at a time. Every write that reads before it
//! writes runs in an immediate transaction, so concurrent writers queue on the write lock
//! (up to `busy_timeout`) rather than deadlock on a lock upgrade; uniqueness is decided by
//! constraints (`ON CONFLICT`, unique violations mapped to typed outcomes), never by a check
//! followed by an insert.

#![forbid(unsafe_code)]

mod attachments;
mod audit;
mod checkpoint;
mod conversations;
mod files;
mod group_commit;
mod key_directory;
mod keys;
mod messages;
mod presence;
mod rows;
mod schema;
mod search;
mod store;
mod users;
mod workspaces;

pub use store::SqliteStore;
