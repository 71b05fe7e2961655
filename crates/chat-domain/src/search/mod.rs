//! Search over encrypted messages with a keyed blind index.
//!
//! Message text never reaches a store in the clear, so it cannot be indexed in the clear
//! either. Instead each message's normalised words and word prefixes ([`tokens`]) are turned
//! into opaque tags by a [`BlindIndexer`] (HMAC under a per-workspace search key, in
//! `chat-crypto`), and a [`SearchIndex`] store keeps `(message, tag)` rows. A query is
//! tokenised the same way, tagged under the same key, and the store returns the messages that
//! carry every tag; [`SearchService`] decrypts them and re-checks the text. End-to-end
//! conversations are never indexed. What the tags reveal to someone holding the database is
//! written up in `docs/security.md`.

mod ports;
mod service;
pub mod tokens;

pub use ports::*;
pub use service::{DEFAULT_SEARCH_LIMIT, Indexer, MAX_SEARCH_LIMIT, Search, SearchResults, SearchService};
pub use tokens::SearchQuery;

#[cfg(test)]
mod tests;
