//! Files shared in conversations: uploaded by someone who may post there, sealed with a fresh
//! per-file key (itself wrapped by the workspace data key) before any byte reaches the blob
//! store, and downloadable by the conversation's members only.
//!
//! Start with [`FileService`]; the ports are [`FileRepository`] (metadata rows),
//! [`BlobStore`] (the sealed bytes, under random storage keys) and [`FileCipher`] (chunked
//! AEAD, implemented by `chat-crypto`).

mod model;
mod ports;
mod service;

pub use model::*;
pub use ports::*;
pub use service::{FileService, UploadFile};

#[cfg(test)]
pub(crate) mod tests;
