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
        self.assemble(conversation, stored, content).await
    }

    /// The message just stored from `content`, the plaintext its row was sealed from: what
    /// [`Self::open`] would return, without decrypting again what this process has just
    /// encrypted (the send path). Attachment names are still opened from their own rows.
    ///
    /// # Errors
    /// `Internal` when an attachment name does not authenticate.
    pub async fn with_plaintext(
        &self,
        conversation: &Conversation,
        stored: StoredMessage,
        content: String,
    ) -> DomainResult<Message> {
        self.assemble(conversation, stored, content).await
    }

    async fn assemble(
        &self,
        conversation: &Conversation,
        stored: StoredMessage,
        content: String,
    ) -> DomainResult<Message> {
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::cipher::{ContentCipher, SealContext, Sealed};
    use crate::conversation::ConversationType;
    use crate::error::RepoError;
    use crate::ids::{UserId, WorkspaceId};
    use crate::message::model::{MessageType, NewMessage};
    use crate::tests::{FakeCipher, conversation, now, stored_from_new};

    /// The fake cipher, counting the values it opens.
    #[derive(Debug, Default)]
    struct CountingCipher {
        opened: AtomicUsize,
    }

    #[async_trait]
    impl ContentCipher for CountingCipher {
        async fn seal(&self, ctx: &SealContext, plaintext: &[u8]) -> Result<Sealed, RepoError> {
            FakeCipher.seal(ctx, plaintext).await
        }

        async fn open(&self, ctx: &SealContext, sealed: &Sealed) -> Result<Vec<u8>, RepoError> {
            self.opened.fetch_add(1, Ordering::SeqCst);
            FakeCipher.open(ctx, sealed).await
        }
    }

    #[tokio::test]
    async fn a_message_built_from_its_plaintext_equals_the_opened_row_without_decrypting_it() {
        let cipher = Arc::new(CountingCipher::default());
        let codec = MessageCodec::new(cipher.clone());
        let c = conversation(ConversationType::Group, WorkspaceId::generate(), UserId::generate());
        let id = MessageId::generate();
        let content = codec.seal(&c, id, "hello &amp; bye").await.unwrap();
        let new = NewMessage {
            id,
            conversation_id: c.id,
            sender_id: UserId::generate(),
            client_msg_id: Some("k1".to_owned()),
            kind: MessageType::Text,
            content,
            reply_to_id: None,
            attachments: Vec::new(),
            search: None,
            created_at: now(),
        };
        let stored = stored_from_new(&new, 7);

        let built = codec.with_plaintext(&c, stored.clone(), "hello &amp; bye".to_owned()).await.unwrap();
        assert_eq!(cipher.opened.load(Ordering::SeqCst), 0, "nothing was decrypted");
        let opened = codec.open(&c, stored).await.unwrap();
        assert_eq!(cipher.opened.load(Ordering::SeqCst), 1);
        assert_eq!(built, opened);
        assert_eq!(built.content, "hello &amp; bye");
        assert_eq!(built.seq, 7);
    }
}
