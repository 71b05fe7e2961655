//! Files shared in conversations: uploaded by someone who may post there, sealed with a fresh
//! per-file key (itself wrapped by the workspace data key) before any byte reaches the blob
//! store, and downloadable by the conversation's members only.
//!
//! Start with [`FileService`]; the ports are [`FileRepository`] (metadata rows, and
//! re-encryption's reader and writer), [`BlobStore`] (the sealed bytes, under random storage
//! keys, read back as a stream) and [`FileCipher`] (chunked AEAD, implemented by
//! `chat-crypto`, whose [`FileOpener`] opens a body chunk by chunk as it streams in).

mod model;
mod ports;
mod service;

pub use model::*;
pub use ports::*;
pub(crate) use service::stored_name_ctx;
pub use service::{FileBody, FileService, UploadFile};

#[cfg(test)]
pub(crate) mod tests;
