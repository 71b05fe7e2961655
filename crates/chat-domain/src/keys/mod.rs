//! The end-to-end public key directory (SPEC.md §4, "E2E DMs"): every device of a user
//! publishes an X25519 identity key, an Ed25519 signing key, a signed X25519 prekey and a
//! batch of one-time X25519 prekeys. The server stores public keys only, verifies the signed
//! prekey's signature on upload ([`SignatureVerifier`]), refuses small-order X25519 points,
//! lists a user's devices to anyone who shares a workspace with them, and hands out each
//! one-time prekey exactly once ([`KeyDirectory::claim_prekeys`]). Clients do everything else
//! (`chat-client`'s `e2e` module, `docs/e2e.md`).

mod model;
mod ports;
mod service;

pub use model::*;
pub use ports::*;
pub use service::KeyService;

#[cfg(test)]
mod tests;
