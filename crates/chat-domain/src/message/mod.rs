//! Messages: per-conversation `seq`, idempotent sends, threads, edits, soft deletes,
//! reactions; content sealed at rest.

mod codec;
mod model;
mod ports;
mod service;

pub use codec::MessageCodec;
pub use model::*;
pub use ports::*;
pub use service::{MAX_ATTACHMENTS, MAX_CLIENT_MSG_ID_LEN, MessageService, PreparedSend, SendMessage, Sent};

#[cfg(test)]
mod tests;
