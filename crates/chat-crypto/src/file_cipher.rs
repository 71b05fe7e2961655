//! Chunked encryption of file bodies: [`ChunkedFileCipher`], the `chat-crypto` adapter of the
//! domain's [`FileCipher`] port.
//!
//! # Keys
//! Every file gets a fresh random 256-bit **file key**. It is wrapped by the workspace's
//! current data key through the [`ContentCipher`] (the [`crate::EnvelopeCipher`]), as the
//! content of field `"file-key"` of a row whose id is the file id: the wrap's AAD is the
//! envelope's content AAD (format 1) — workspace ‖ conversation ‖ file id ‖ key version ‖
//! `"file-key"` — so a wrapped file key copied to another file, conversation, workspace or
//! version does not unwrap, and rotating or shredding the workspace key covers files too.
//!
//! # Body layout (all integers big-endian)
//! `format 0x01 (1) ‖ chunk₀ ‖ chunk₁ ‖ … ‖ chunkₙ₋₁`, each chunk `nonce (12) ‖ ciphertext ‖
//! tag (16)` of AES-256-GCM under the file key. Every chunk but the last holds exactly
//! [`CHUNK_LEN`] (64 KiB) of plaintext; the last holds 0 ..= 64 KiB (an empty file is one empty
//! chunk). Chunk *i*'s AAD is `file id (16) ‖ i as u64 (8) ‖ last (1: 0x01 for the final chunk,
//! else 0x00)`.
//!
//! A reordered chunk fails (its index is in the AAD), a chunk of another file fails (another
//! key and file id), a body truncated at a chunk boundary fails (the new final chunk was sealed
//! with `last = 0`), a body extended by a chunk fails (the old final chunk was sealed with
//! `last = 1`), and any flipped byte fails its tag.
//!
//! # Opening as the body streams in
//! [`FileCipher::opener`] unwraps the file key and returns a chunk opener, which is fed the
//! body in pieces of any size as the blob store delivers them. It holds at most one sealed
//! chunk plus the piece being fed: a full chunk is opened (as not last) as soon as a byte
//! beyond it has arrived, and what is left at the end is opened as the last chunk. No
//! plaintext of a chunk is released before its tag has been checked.
//!
//! # Nonces
//! A fresh random 96-bit nonce per chunk (ring's `SystemRandom`), not a prefix and counter:
//! the key is used for one file only, and a 25 MiB file is 400 chunks, far from the random-nonce
//! bound of 2³² messages per key.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chat_domain::cipher::{ContentCipher, SealContext, Sealed};
use chat_domain::error::RepoError;
use chat_domain::file::{FileCipher, FileContext, FileOpener, SealedFile};
use chat_domain::ids::{FileId, MessageId};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::SystemRandom;
use secrecy::zeroize::Zeroizing;

use crate::fill_random;

/// Plaintext bytes per chunk (every chunk but the last is exactly this long).
pub const CHUNK_LEN: usize = 64 * 1024;

/// The body's leading format byte.
pub const FILE_FORMAT: u8 = 0x01;

const TAG_LEN: usize = 16;
const FILE_KEY_LEN: usize = 32;
/// A full chunk as stored.
const SEALED_CHUNK_LEN: usize = NONCE_LEN + CHUNK_LEN + TAG_LEN;
/// The field name the wrapped file key is sealed under.
const FILE_KEY_FIELD: &str = "file-key";

/// Seals file bodies in 64 KiB AES-256-GCM chunks under per-file keys wrapped by the
/// workspace data keys of `keys`.
#[derive(Clone)]
pub struct ChunkedFileCipher {
    keys: Arc<dyn ContentCipher>,
    rng: SystemRandom,
}

impl fmt::Debug for ChunkedFileCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkedFileCipher").finish_non_exhaustive()
    }
}

impl ChunkedFileCipher {
    /// Wraps file keys with `keys` (normally the [`crate::EnvelopeCipher`]).
    #[must_use]
    pub fn new(keys: Arc<dyn ContentCipher>) -> Self {
        Self { keys, rng: SystemRandom::new() }
    }
}

fn wrap_ctx(ctx: &FileContext) -> SealContext {
    SealContext {
        workspace: ctx.workspace,
        conversation: ctx.conversation,
        message: MessageId::from_uuid(ctx.file.as_uuid()),
        field: FILE_KEY_FIELD,
    }
}

fn chunk_aad(file: FileId, index: u64, last: bool) -> [u8; 25] {
    let mut aad = [0_u8; 25];
    aad[..16].copy_from_slice(file.as_uuid().as_bytes());
    aad[16..24].copy_from_slice(&index.to_be_bytes());
    aad[24] = u8::from(last);
    aad
}

fn file_key(bytes: &[u8]) -> Result<LessSafeKey, RepoError> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| RepoError::msg("file key has the wrong length"))
}

#[async_trait]
impl FileCipher for ChunkedFileCipher {
    #[tracing::instrument(skip_all, fields(workspace = %ctx.workspace, file = %ctx.file, size = plaintext.len()))]
    async fn seal(&self, ctx: &FileContext, plaintext: &[u8]) -> Result<SealedFile, RepoError> {
        let mut raw = Zeroizing::new([0_u8; FILE_KEY_LEN]);
        fill_random(&self.rng, raw.as_mut()).map_err(|e| RepoError::new("generating a file key failed", e))?;
        let key = file_key(raw.as_ref())?;

        let chunks: Vec<&[u8]> =
            if plaintext.is_empty() { vec![&[][..]] } else { plaintext.chunks(CHUNK_LEN).collect() };
        let count = chunks.len();
        let mut body = Vec::with_capacity(1 + plaintext.len() + count * (NONCE_LEN + TAG_LEN));
        body.push(FILE_FORMAT);
        for (i, chunk) in chunks.into_iter().enumerate() {
            let mut nonce = [0_u8; NONCE_LEN];
            fill_random(&self.rng, &mut nonce).map_err(|e| RepoError::new("generating a nonce failed", e))?;
            let aad = chunk_aad(ctx.file, i as u64, i + 1 == count);
            body.extend_from_slice(&nonce);
            let start = body.len();
            body.extend_from_slice(chunk);
            let tag = key
                .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&aad), &mut body[start..])
                .map_err(|_| RepoError::msg("sealing a file chunk failed"))?;
            body.extend_from_slice(tag.as_ref());
        }

        let wrapped = self.keys.seal(&wrap_ctx(ctx), raw.as_ref()).await?;
        Ok(SealedFile { key_version: wrapped.key_version, wrapped_key: wrapped.bytes, body })
    }

    #[tracing::instrument(skip_all, fields(workspace = %ctx.workspace, file = %ctx.file, version = wrapped.key_version))]
    async fn opener(&self, ctx: &FileContext, wrapped: &Sealed) -> Result<Box<dyn FileOpener>, RepoError> {
        let raw = Zeroizing::new(self.keys.open(&wrap_ctx(ctx), wrapped).await?);
        let key = file_key(&raw)?;
        Ok(Box::new(ChunkOpener { key, file: ctx.file, started: false, pending: Vec::new(), index: 0, failed: false }))
    }
}

impl ChunkedFileCipher {
    /// Re-wraps a file key under the workspace's current data key (what `chat-server
    /// reencrypt` does after a rotation): unwraps `wrapped` with its own version and wraps the
    /// same key again, bound to the same file. The body, sealed under the file key, stays
    /// valid as it is. The unwrapped key never leaves this function.
    ///
    /// # Errors
    /// When `wrapped` does not unwrap (unknown or destroyed version, another file) or the
    /// current key cannot be loaded.
    pub async fn rewrap(&self, ctx: &FileContext, wrapped: &Sealed) -> Result<Sealed, RepoError> {
        let raw = Zeroizing::new(self.keys.open(&wrap_ctx(ctx), wrapped).await?);
        file_key(&raw)?;
        self.keys.seal(&wrap_ctx(ctx), raw.as_ref()).await
    }
}

/// Opens one body of [`ChunkedFileCipher`] as it streams in (the domain's [`FileOpener`]).
struct ChunkOpener {
    key: LessSafeKey,
    file: FileId,
    /// Whether the format byte has been read.
    started: bool,
    /// Sealed bytes not opened yet: at most one chunk once a push returns.
    pending: Vec<u8>,
    /// Index of the next chunk.
    index: u64,
    failed: bool,
}

impl fmt::Debug for ChunkOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkOpener")
            .field("file", &self.file)
            .field("index", &self.index)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl ChunkOpener {
    /// Opens the sealed chunk `pending[range]` as chunk `self.index` and appends its plaintext.
    fn open_chunk(
        &mut self,
        range: std::ops::Range<usize>,
        last: bool,
        plaintext: &mut Vec<u8>,
    ) -> Result<(), RepoError> {
        let chunk = &self.pending[range];
        if chunk.len() < NONCE_LEN + TAG_LEN {
            return Err(RepoError::msg("sealed file chunk is too short"));
        }
        let (nonce, ct) = chunk.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| RepoError::msg("malformed nonce"))?;
        let aad = chunk_aad(self.file, self.index, last);
        let at = plaintext.len();
        plaintext.extend_from_slice(ct);
        match self.key.open_in_place(nonce, Aad::from(&aad), &mut plaintext[at..]) {
            Ok(opened) => {
                let len = opened.len();
                plaintext.truncate(at + len);
                self.index += 1;
                Ok(())
            }
            Err(_) => {
                plaintext.truncate(at);
                Err(RepoError::msg("sealed file chunk failed authentication"))
            }
        }
    }

    fn fail(&mut self, error: RepoError) -> RepoError {
        self.failed = true;
        self.pending = Vec::new();
        error
    }
}

impl FileOpener for ChunkOpener {
    fn push(&mut self, sealed: &[u8], plaintext: &mut Vec<u8>) -> Result<(), RepoError> {
        if self.failed {
            return Err(RepoError::msg("sealed file already failed"));
        }
        let mut sealed = sealed;
        if !self.started {
            match sealed.split_first() {
                None => return Ok(()),
                Some((&FILE_FORMAT, rest)) => {
                    self.started = true;
                    sealed = rest;
                }
                Some(_) => return Err(self.fail(RepoError::msg("sealed file has an unknown format"))),
            }
        }
        self.pending.extend_from_slice(sealed);
        // A full chunk followed by at least one byte is not the last one.
        let mut start = 0;
        while self.pending.len() - start > SEALED_CHUNK_LEN {
            if let Err(e) = self.open_chunk(start..start + SEALED_CHUNK_LEN, false, plaintext) {
                return Err(self.fail(e));
            }
            start += SEALED_CHUNK_LEN;
        }
        self.pending.drain(..start);
        Ok(())
    }

    fn finish(mut self: Box<Self>, plaintext: &mut Vec<u8>) -> Result<(), RepoError> {
        if self.failed {
            return Err(RepoError::msg("sealed file already failed"));
        }
        if !self.started {
            return Err(RepoError::msg("sealed file is empty"));
        }
        if self.pending.is_empty() {
            return Err(RepoError::msg("sealed file has no final chunk"));
        }
        let len = self.pending.len();
        self.open_chunk(0..len, true, plaintext)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use chat_domain::cipher::{MockKeyRepository, WrappedKey};
    use chat_domain::ids::{ConversationId, FileId, WorkspaceId};

    use super::*;
    use crate::{EnvelopeCipher, MasterKey};

    /// Wrapped keys in memory, behind the domain's mock (so new port methods need no edit).
    fn keys() -> MockKeyRepository {
        let rows: Arc<Mutex<HashMap<WorkspaceId, Vec<WrappedKey>>>> = Arc::default();
        let mut repo = MockKeyRepository::new();
        let read = Arc::clone(&rows);
        repo.expect_workspace_keys()
            .returning(move |workspace| Ok(read.lock().unwrap().get(&workspace).cloned().unwrap_or_default()));
        repo.expect_insert_workspace_key().returning(move |workspace, key| {
            let mut rows = rows.lock().unwrap();
            let versions = rows.entry(workspace).or_default();
            if versions.iter().any(|k| k.version == key.version) {
                return Ok(false);
            }
            versions.push(key.clone());
            Ok(true)
        });
        repo
    }

    fn cipher() -> ChunkedFileCipher {
        let master = MasterKey::from_hex("8f1c2d3e4f5061728394a5b6c7d8e9fa0b1c2d3e4f5061728394a5b6c7d8e9fa").unwrap();
        ChunkedFileCipher::new(Arc::new(EnvelopeCipher::new(master, Arc::new(keys()))))
    }

    fn ctx() -> FileContext {
        FileContext {
            workspace: WorkspaceId::generate(),
            conversation: ConversationId::generate(),
            file: FileId::generate(),
        }
    }

    /// Opens a whole body as it would stream in, in pieces of `piece` bytes.
    async fn open_in_pieces(
        cipher: &ChunkedFileCipher,
        ctx: &FileContext,
        sealed: &SealedFile,
        piece: usize,
    ) -> Result<Vec<u8>, RepoError> {
        let wrapped = Sealed { key_version: sealed.key_version, bytes: sealed.wrapped_key.clone() };
        let mut opener = cipher.opener(ctx, &wrapped).await?;
        let mut plaintext = Vec::new();
        for piece in sealed.body.chunks(piece) {
            opener.push(piece, &mut plaintext)?;
        }
        opener.finish(&mut plaintext)?;
        Ok(plaintext)
    }

    /// Opens a whole body fed in pieces of several sizes (smaller than, equal to, just over and
    /// larger than a sealed chunk); every way must agree.
    async fn open(cipher: &ChunkedFileCipher, ctx: &FileContext, sealed: &SealedFile) -> Result<Vec<u8>, RepoError> {
        let mut outcomes = Vec::new();
        for piece in [1000, 4096, SEALED_CHUNK_LEN, SEALED_CHUNK_LEN + 1, usize::MAX] {
            outcomes.push(open_in_pieces(cipher, ctx, sealed, piece).await);
        }
        let first = outcomes.remove(0);
        for other in &outcomes {
            assert_eq!(other.as_ref().ok(), first.as_ref().ok(), "every piece size agrees");
        }
        first
    }

    /// 2½ chunks of a recognisable pattern.
    fn content() -> Vec<u8> {
        (0..CHUNK_LEN * 5 / 2).map(|i| b"secret file "[i % 12]).collect()
    }

    #[tokio::test]
    async fn files_of_every_size_round_trip_in_64_kib_chunks() {
        let cipher = cipher();
        for size in [0, 1, CHUNK_LEN - 1, CHUNK_LEN, CHUNK_LEN + 1, 2 * CHUNK_LEN, CHUNK_LEN * 5 / 2] {
            let ctx = ctx();
            let plain: Vec<u8> = content().into_iter().cycle().take(size).collect();
            let sealed = cipher.seal(&ctx, &plain).await.unwrap();
            let chunks = size.div_ceil(CHUNK_LEN).max(1);
            assert_eq!(sealed.body.len(), 1 + size + chunks * (NONCE_LEN + TAG_LEN), "size {size}");
            assert_eq!(sealed.key_version, 1);
            assert_eq!(open(&cipher, &ctx, &sealed).await.unwrap(), plain, "size {size}");
        }
    }

    #[tokio::test]
    async fn the_body_and_the_wrapped_key_hold_no_plaintext_and_keys_are_fresh_per_file() {
        let cipher = cipher();
        let ctx = ctx();
        let (a, b) = (cipher.seal(&ctx, &content()).await.unwrap(), cipher.seal(&ctx, &content()).await.unwrap());
        assert!(!a.body.windows(6).any(|w| w == b"secret"));
        assert_ne!(a.body, b.body);
        assert_ne!(a.wrapped_key, b.wrapped_key);
        // The second file's key does not open the first file's chunks.
        let mixed = SealedFile { wrapped_key: b.wrapped_key.clone(), ..a.clone() };
        assert!(open(&cipher, &ctx, &mixed).await.is_err());
    }

    #[tokio::test]
    async fn a_truncated_or_extended_body_does_not_open() {
        let cipher = cipher();
        let ctx = ctx();
        let sealed = cipher.seal(&ctx, &content()).await.unwrap();
        // Cut after the second (full) chunk: it was sealed as not last.
        let cut = SealedFile { body: sealed.body[..1 + 2 * SEALED_CHUNK_LEN].to_vec(), ..sealed.clone() };
        assert!(open(&cipher, &ctx, &cut).await.is_err());
        // Cut inside the last chunk.
        let short = SealedFile { body: sealed.body[..sealed.body.len() - 1].to_vec(), ..sealed.clone() };
        assert!(open(&cipher, &ctx, &short).await.is_err());
        // Only the format byte left.
        let empty = SealedFile { body: vec![FILE_FORMAT], ..sealed.clone() };
        assert!(open(&cipher, &ctx, &empty).await.is_err());

        // A file of exactly two chunks, extended by a copy of its first chunk.
        let two = cipher.seal(&ctx, &content()[..2 * CHUNK_LEN]).await.unwrap();
        let mut body = two.body.clone();
        body.extend_from_slice(&two.body[1..=SEALED_CHUNK_LEN]);
        assert!(open(&cipher, &ctx, &SealedFile { body, ..two.clone() }).await.is_err());
        assert!(open(&cipher, &ctx, &two).await.is_ok());
    }

    #[tokio::test]
    async fn reordered_chunks_do_not_open() {
        let cipher = cipher();
        let ctx = ctx();
        let sealed = cipher.seal(&ctx, &content()).await.unwrap();
        let (first, second) = (1..=SEALED_CHUNK_LEN, 1 + SEALED_CHUNK_LEN..=2 * SEALED_CHUNK_LEN);
        let mut body = vec![FILE_FORMAT];
        body.extend_from_slice(&sealed.body[second]);
        body.extend_from_slice(&sealed.body[first]);
        body.extend_from_slice(&sealed.body[1 + 2 * SEALED_CHUNK_LEN..]);
        assert_eq!(body.len(), sealed.body.len());
        assert!(open(&cipher, &ctx, &SealedFile { body, ..sealed }).await.is_err());
    }

    #[tokio::test]
    async fn a_chunk_from_another_file_or_a_flipped_bit_does_not_open() {
        let cipher = cipher();
        let ctx = ctx();
        let sealed = cipher.seal(&ctx, &content()).await.unwrap();
        let other = cipher.seal(&ctx, &content()).await.unwrap();
        let mut body = sealed.body.clone();
        body[1..=SEALED_CHUNK_LEN].copy_from_slice(&other.body[1..=SEALED_CHUNK_LEN]);
        assert!(open(&cipher, &ctx, &SealedFile { body, ..sealed.clone() }).await.is_err());

        let mut flipped = sealed.body.clone();
        flipped[100] ^= 1;
        assert!(open(&cipher, &ctx, &SealedFile { body: flipped, ..sealed.clone() }).await.is_err());
        let mut format = sealed.body.clone();
        format[0] = 2;
        assert!(open(&cipher, &ctx, &SealedFile { body: format, ..sealed.clone() }).await.is_err());
        assert!(open(&cipher, &ctx, &sealed).await.is_ok());
    }

    #[tokio::test]
    async fn a_sealed_file_opens_only_under_its_own_file_conversation_and_workspace() {
        let cipher = cipher();
        let ctx = ctx();
        let sealed = cipher.seal(&ctx, b"hello").await.unwrap();
        for other in [
            FileContext { file: FileId::generate(), ..ctx },
            FileContext { conversation: ConversationId::generate(), ..ctx },
            FileContext { workspace: WorkspaceId::generate(), ..ctx },
        ] {
            assert!(open(&cipher, &other, &sealed).await.is_err());
        }
        // The key version is bound too.
        assert!(open(&cipher, &ctx, &SealedFile { key_version: 2, ..sealed.clone() }).await.is_err());
        assert_eq!(open(&cipher, &ctx, &sealed).await.unwrap(), b"hello");
    }

    #[tokio::test]
    async fn plaintext_is_released_chunk_by_chunk_once_each_chunk_is_known_not_to_be_last() {
        let cipher = cipher();
        let ctx = ctx();
        let plain = content();
        let sealed = cipher.seal(&ctx, &plain).await.unwrap();
        let wrapped = Sealed { key_version: sealed.key_version, bytes: sealed.wrapped_key.clone() };
        let mut opener = cipher.opener(&ctx, &wrapped).await.unwrap();
        let mut out = Vec::new();
        // The format byte and one whole chunk: it may still be the last, so nothing yet.
        opener.push(&sealed.body[..=SEALED_CHUNK_LEN], &mut out).unwrap();
        assert!(out.is_empty());
        // One byte more shows it is not: exactly its plaintext comes out.
        opener.push(&sealed.body[SEALED_CHUNK_LEN + 1..SEALED_CHUNK_LEN + 2], &mut out).unwrap();
        assert_eq!(out, plain[..CHUNK_LEN]);
        // The rest at once: the second chunk now, the last (half) chunk only at the end.
        opener.push(&sealed.body[SEALED_CHUNK_LEN + 2..], &mut out).unwrap();
        assert_eq!(out, plain[..2 * CHUNK_LEN]);
        opener.finish(&mut out).unwrap();
        assert_eq!(out, plain);
    }

    #[tokio::test]
    async fn a_failed_chunk_releases_nothing_of_itself_and_the_opener_stays_failed() {
        let cipher = cipher();
        let ctx = ctx();
        let plain = content();
        let sealed = cipher.seal(&ctx, &plain).await.unwrap();
        let mut body = sealed.body.clone();
        body[1 + SEALED_CHUNK_LEN + 100] ^= 1; // inside the second chunk
        let wrapped = Sealed { key_version: sealed.key_version, bytes: sealed.wrapped_key.clone() };
        let mut opener = cipher.opener(&ctx, &wrapped).await.unwrap();
        let mut out = Vec::new();
        opener.push(&body[..1 + SEALED_CHUNK_LEN + 1], &mut out).unwrap();
        assert_eq!(out, plain[..CHUNK_LEN]);
        assert!(opener.push(&body[1 + SEALED_CHUNK_LEN + 1..], &mut out).is_err());
        assert_eq!(out, plain[..CHUNK_LEN], "nothing of the failed chunk");
        assert!(opener.push(&body[..1], &mut out).is_err(), "a failed opener stays failed");
        assert!(opener.finish(&mut out).is_err());
        assert_eq!(out.len(), CHUNK_LEN);
    }

    #[tokio::test]
    async fn an_empty_body_or_a_wrapped_key_of_another_file_does_not_open() {
        let cipher = cipher();
        let ctx = ctx();
        let sealed = cipher.seal(&ctx, b"hello").await.unwrap();
        let wrapped = Sealed { key_version: sealed.key_version, bytes: sealed.wrapped_key.clone() };
        let opener = cipher.opener(&ctx, &wrapped).await.unwrap();
        assert!(opener.finish(&mut Vec::new()).is_err(), "no bytes at all");
        let other = FileContext { file: FileId::generate(), ..ctx };
        assert!(cipher.opener(&other, &wrapped).await.is_err());
    }

    #[tokio::test]
    async fn a_rewrapped_file_key_opens_the_same_body_under_the_newest_version_only_for_its_file() {
        let keys: Arc<EnvelopeCipher> = Arc::new(EnvelopeCipher::new(
            MasterKey::from_hex("8f1c2d3e4f5061728394a5b6c7d8e9fa0b1c2d3e4f5061728394a5b6c7d8e9fa").unwrap(),
            Arc::new(keys()),
        ));
        let cipher = ChunkedFileCipher::new(keys.clone());
        let ctx = ctx();
        let sealed = cipher.seal(&ctx, &content()).await.unwrap();
        assert_eq!(sealed.key_version, 1);
        assert_eq!(keys.rotate(ctx.workspace).await.unwrap(), 2);

        let old = Sealed { key_version: 1, bytes: sealed.wrapped_key.clone() };
        let new = cipher.rewrap(&ctx, &old).await.unwrap();
        assert_eq!(new.key_version, 2);
        assert_ne!(new.bytes, old.bytes);
        let rewrapped = SealedFile { key_version: 2, wrapped_key: new.bytes.clone(), ..sealed.clone() };
        assert_eq!(open(&cipher, &ctx, &rewrapped).await.unwrap(), content(), "the body is untouched");
        assert_eq!(open(&cipher, &ctx, &sealed).await.unwrap(), content(), "the old version still opens");
        // Bound to its file: another file's context neither rewraps nor opens it.
        let other = FileContext { file: FileId::generate(), ..ctx };
        assert!(cipher.rewrap(&other, &old).await.is_err());
        assert!(open(&cipher, &other, &rewrapped).await.is_err());
    }
}
