use std::sync::Arc;

use super::model::{Attachment, AttachmentKind, Message, StoredMessage};
use crate::cipher::{ContentCipher, SealContext, Sealed};
use crate::conversation::Conversation;
use crate::error::{DomainError, DomainResult};
use crate::file::{FileName, StoredFile, stored_name_ctx};
use crate::ids::MessageId;

/// Seals content on the way into a store and opens it on the way out.
#[derive(Clone)]
pub struct MessageCodec {
    cipher: Arc<dyn ContentCipher>,
}

impl std::fmt::Debug for MessageCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageCodec").finish_non_exhaustive()
    }
}

fn context(conversation: &Conversation, message: MessageId) -> SealContext {
    SealContext { workspace: conversation.workspace_id, conversation: conversation.id, message, field: "content" }
}

impl MessageCodec {
    /// Wraps a cipher.
    #[must_use]
    pub fn new(cipher: Arc<dyn ContentCipher>) -> Self {
        Self { cipher }
    }

    /// Encrypts a message's content, bound to its row.
    ///
    /// # Errors
    /// `Internal` when the cipher fails.
    pub async fn seal(&self, conversation: &Conversation, message: MessageId, content: &str) -> DomainResult<Sealed> {
        Ok(self.cipher.seal(&context(conversation, message), content.as_bytes()).await?)
    }

    /// Decrypts a stored message of `conversation`, and the names of its attachments.
    ///
    /// # Errors
    /// `Internal` when a ciphertext does not authenticate (tampering, a row moved) or is not
    /// UTF-8.
    pub async fn open(&self, conversation: &Conversation, stored: StoredMessage) -> DomainResult<Message> {
        let content = match &stored.content {
            Some(sealed) => {
                let bytes = self.cipher.open(&context(conversation, stored.id), sealed).await?;
                String::from_utf8(bytes).map_err(|e| DomainError::Internal(Box::new(e)))?
            }
            None => String::new(),
        };
        let mut attachments = Vec::with_capacity(stored.attachments.len());
        for file in stored.attachments {
            attachments.push(self.open_attachment(file).await?);
        }
        Ok(Message {
            id: stored.id,
            conversation_id: stored.conversation_id,
            seq: stored.seq,
            sender_id: stored.sender_id,
            client_msg_id: stored.client_msg_id,
            kind: stored.kind,
            content,
            reply_to_id: stored.reply_to_id,
            reply_count: stored.reply_count,
            reactions: stored.reactions,
            attachments,
            is_encrypted: conversation.is_encrypted,
            edited_at: stored.edited_at,
            deleted_at: stored.deleted_at,
            created_at: stored.created_at,
        })
    }

    /// Opens an attached file's name, sealed under its own row's context (as the files service
    /// sealed it).
    async fn open_attachment(&self, file: StoredFile) -> DomainResult<Attachment> {
        let ctx = stored_name_ctx(file.workspace_id, file.conversation_id, file.id);
        let name = self.cipher.open(&ctx, &file.name).await?;
        let name = String::from_utf8(name).map_err(|e| DomainError::Internal(Box::new(e)))?;
        Ok(Attachment {
            id: file.id,
            kind: AttachmentKind::of(&file.content_type),
            name: FileName::from_stored(name),
            content_type: file.content_type,
            size: file.size,
        })
    }

    /// Opens a page of messages of one conversation, in order.
    ///
    /// # Errors
    /// As [`Self::open`].
    pub async fn open_all(
        &self,
        conversation: &Conversation,
        stored: Vec<StoredMessage>,
    ) -> DomainResult<Vec<Message>> {
        let mut out = Vec::with_capacity(stored.len());
        for message in stored {
            out.push(self.open(conversation, message).await?);
        }
        Ok(out)
    }
}
