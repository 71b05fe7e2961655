//! # chat-blobstore
//!
//! Where sealed file bodies live: the two adapters of `chat-domain`'s
//! [`BlobStore`](chat_domain::file::BlobStore) port, chosen by `FILE_STORE`.
//!
//! - [`LocalBlobStore`]: a directory on local disk (default `$DATA_DIR/files`), created 0700,
//!   objects written 0600 to a temporary name, synced and renamed into place.
//! - [`ObjectBlobStore`]: any [`object_store::ObjectStore`]; in production an S3-compatible
//!   bucket (`FILE_STORE=s3://bucket[/prefix]`, configured by the usual `AWS_*` variables
//!   through object_store's own parser, [`ObjectBlobStore::s3`]).
//!
//! Both accept only the domain's storage keys, 32 lowercase hex characters (128 random bits),
//! and refuse any other key before touching the store ([`check_key`]), so no client text ever
//! becomes a path or an object name. Both read objects back as a stream of pieces, so a
//! download never holds a whole body. Bodies arrive sealed (`chat_crypto::file_cipher`): no
//! store sees plaintext. Nothing here logs a key's value or a credential.
//!
//! **Layer.** Outbound adapter: depends on `chat-domain` (the port), tokio (files) and
//! `object_store` (S3); only `chat-server` wires it. Start with [`LocalBlobStore`], then
//! [`ObjectBlobStore`]; [`testing`] (feature `testing`) starts an S3-compatible test server.

#![forbid(unsafe_code)]

mod local;
mod object;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod behaviour;

use chat_domain::error::RepoError;
pub use local::LocalBlobStore;
pub use object::{ObjectBlobStore, OpenError};

/// Length of a storage key: 128 bits as lowercase hex.
pub const KEY_LEN: usize = 32;

/// Bytes per piece when a local object is streamed back (one sealed chunk is 65,564 bytes).
pub const READ_PIECE: usize = 64 * 1024;

/// Accepts a storage key only if it is 32 lowercase hex characters, as the domain draws them.
///
/// # Errors
/// `malformed blob key` for anything else (the key itself is not repeated).
pub fn check_key(key: &str) -> Result<&str, RepoError> {
    let well_formed = key.len() == KEY_LEN && key.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if well_formed { Ok(key) } else { Err(RepoError::msg("malformed blob key")) }
}
