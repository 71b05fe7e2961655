//! Conversations (DM, group, channel, document chat), their members and roles, and read
//! watermarks.

mod model;
mod ports;
mod service;

pub use model::*;
pub use ports::*;
pub use service::{
    ConversationService, ConversationSummary, CreateConversation, DEFAULT_MAX_PARTICIPANTS, ReadTarget, UnreadCounts,
};

#[cfg(test)]
mod tests;
