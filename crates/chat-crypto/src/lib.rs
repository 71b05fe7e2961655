//! # chat-crypto
//!
//! The cryptography adapter of SecureRealTime Chat: it implements the domain's crypto ports
//! — [`chat_domain::cipher::ContentCipher`] (encryption at rest),
//! [`chat_domain::user::PasswordHasher`] and [`chat_domain::user::TokenIssuer`] — and loads or
//! generates the secrets of the embedded default (`DATA_DIR/master.key`, `DATA_DIR/jwt.secret`).
//!
//! **Layer.** Outbound adapter. It depends on `chat-domain` (ports and types) and on audited
//! crypto crates only: `ring` (AES-256-GCM, SHA-256, the system random source), `argon2`,
//! `jsonwebtoken` (HS256 through its `rust_crypto` provider) and `secrecy`/`zeroize`. It knows
//! no database, web framework or environment: every setting arrives as an argument from
//! `chat-server`'s `Settings`.
//!
//! The search blind index's keyed tags ([`chat_domain::search::BlindIndexer`]) are
//! [`HmacBlindIndexer`]: HMAC-SHA256 under per-workspace keys derived from the master key.
//!
//! **Where to start reading.** [`EnvelopeCipher`] (the key hierarchy: [`MasterKey`] →
//! wrapped per-workspace data keys stored through [`chat_domain::cipher::KeyRepository`] →
//! sealed content), then [`JwtIssuer`] and [`Argon2Hasher`]. The on-disk and on-row formats
//! (nonce policy, AAD layouts) are documented on [`envelope`] and in `docs/security.md`.
//!
//! [`Ed25519Verifier`] checks the signed prekeys of the E2E key directory
//! ([`chat_domain::keys::SignatureVerifier`], `ed25519-dalek` strict verification).
//!
//! Nothing in this crate logs, prints or `Debug`-formats key material, passwords or tokens.

#![forbid(unsafe_code)]

pub mod blind_index;
pub mod envelope;
pub mod file_cipher;
pub mod jwt;
pub mod master_key;
pub mod password;
pub mod signature;

pub use blind_index::HmacBlindIndexer;
pub use envelope::EnvelopeCipher;
pub use file_cipher::ChunkedFileCipher;
pub use jwt::{JwtConfigError, JwtIssuer};
pub use master_key::{KeyFileError, MasterKey, MasterKeyError, load_or_generate_secret};
pub use password::{Argon2Hasher, HasherError};
pub use signature::Ed25519Verifier;

/// The operating system's random source failed (it practically never does; when it does,
/// nothing secret may be generated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the system random source failed")]
pub struct RandomError;

/// Fills `buf` from ring's [`ring::rand::SystemRandom`].
fn fill_random(rng: &ring::rand::SystemRandom, buf: &mut [u8]) -> Result<(), RandomError> {
    ring::rand::SecureRandom::fill(rng, buf).map_err(|_| RandomError)
}
