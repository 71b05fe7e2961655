//! Envelope encryption of content at rest: [`EnvelopeCipher`].
//!
//! # Key hierarchy
//! - The **master key** (32 bytes, `ENCRYPTION_KEY` or `DATA_DIR/master.key`) lives only in
//!   process memory. It encrypts nothing but data keys.
//! - Each workspace has **data keys** by version (1, 2, …), 32 random bytes each, stored only
//!   *wrapped* (AES-256-GCM under the master key) through the
//!   [`KeyRepository`] port. The highest version is current:
//!   new seals use it; older versions still open what they sealed. [`EnvelopeCipher::rotate`]
//!   adds the next version without downtime and without re-encrypting anything.
//! - **Content** is AES-256-GCM under a data key, bound to its row by the AAD.
//!
//! # Formats (all integers big-endian)
//! - Wrapped data key (`WrappedKey::wrapped`, 60 bytes): `nonce (12) ‖ ciphertext (32) ‖ tag (16)`,
//!   with AAD `"chat-crypto/workspace-key/v1" ‖ workspace uuid (16) ‖ version i32 (4)`. A
//!   wrapped key copied to another workspace or version number does not unwrap.
//! - Sealed content (`Sealed::bytes`): `nonce (12) ‖ ciphertext ‖ tag (16)`; the version is
//!   `Sealed::key_version`, stored beside it.
//! - Content AAD, format 1: `0x01 ‖ workspace uuid (16) ‖ conversation uuid (16) ‖
//!   message uuid (16) ‖ key version i32 (4) ‖ field length u16 (2) ‖ field (UTF-8)`. Every
//!   part but the last has a fixed length and the last is length-prefixed, so two different
//!   contexts never encode to the same bytes. The leading format byte leaves room for another
//!   layout later.
//!
//! # Nonces
//! Every seal and every wrap draws a fresh 96-bit nonce from the operating system's random
//! source (ring's `SystemRandom`); nonces are never derived or counted. With random nonces
//! AES-GCM stays within NIST SP 800-38D's bounds for up to 2³² seals per key, which is the
//! point at which a workspace's key should be rotated at the latest.
//!
//! # Cache
//! Unwrapped keys are cached per workspace (as ring `LessSafeKey`s, which print nothing), so the
//! hot path touches no store. The current version of a workspace is re-checked against the
//! repository at most every [`DEFAULT_KEY_REFRESH`] (see [`EnvelopeCipher::with_key_refresh`]),
//! so a rotation made on another node is adopted for sealing within that interval; a version
//! the cache has not seen yet is loaded as soon as something sealed under it is opened. A
//! reload is authoritative and opening with a key cached longer than the interval reloads
//! first, so keys destroyed by [`EnvelopeCipher::destroy_keys`] (crypto-shredding) on another
//! node stop opening here within the interval — not sooner (a store that cannot be reached
//! then leaves the cached key in use, with a warning). Locks
//! are never held across an `.await`. Raw key bytes exist only briefly, in zeroise-on-drop
//! buffers; the `LessSafeKey` itself is ring's and is not zeroised by ring when dropped.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chat_domain::cipher::{ContentCipher, KeyRepository, SealContext, Sealed, WrappedKey};
use chat_domain::error::RepoError;
use chat_domain::ids::WorkspaceId;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::SystemRandom;
use secrecy::zeroize::Zeroizing;

use crate::fill_random;
use crate::master_key::MasterKey;

/// Length of a workspace data key, in bytes.
pub const DATA_KEY_LEN: usize = 32;

/// Length of an AES-GCM tag, in bytes.
pub const TAG_LEN: usize = 16;

/// Length of a wrapped data key: nonce, encrypted key and tag.
pub const WRAPPED_KEY_LEN: usize = NONCE_LEN + DATA_KEY_LEN + TAG_LEN;

/// The shortest possible sealed value (empty plaintext): nonce and tag.
pub const MIN_SEALED_LEN: usize = NONCE_LEN + TAG_LEN;

/// First byte of the content AAD: the layout described in the [module docs](self).
pub const CONTENT_AAD_FORMAT: u8 = 1;

/// Prefix of the AAD that binds a wrapped data key to its workspace and version.
pub const WRAP_AAD_LABEL: &[u8] = b"chat-crypto/workspace-key/v1";

/// How long a workspace's current key version is trusted before it is re-checked against the
/// repository (to adopt a rotation made on another node).
pub const DEFAULT_KEY_REFRESH: Duration = Duration::from_secs(300);

/// [`ContentCipher`] with per-workspace data keys wrapped by a master key. See the
/// [module documentation](self) for the key hierarchy, formats and nonce policy.
pub struct EnvelopeCipher {
    master: LessSafeKey,
    repo: Arc<dyn KeyRepository>,
    cache: RwLock<HashMap<WorkspaceId, WorkspaceKeys>>,
    rng: SystemRandom,
    refresh_after: Duration,
}

/// What this process knows of one workspace's keys.
struct WorkspaceKeys {
    /// The highest version the repository held when last checked (0: none yet).
    current: i32,
    /// Unwrapped keys by version; a version that failed to unwrap is absent.
    keys: BTreeMap<i32, Arc<LessSafeKey>>,
    /// When `current` was last checked against the repository.
    checked_at: Instant,
}

/// The current key as the cache knows it.
enum Current {
    /// Nothing cached for the workspace.
    Unknown,
    /// The repository had no key when last checked.
    NoKey,
    /// The current version is known but did not unwrap.
    Unusable,
    /// The current version, its key, and whether it was checked recently.
    Key(i32, Arc<LessSafeKey>, bool),
}

/// A given version as the cache knows it.
enum Version {
    /// Worth (re)loading: the workspace is not cached or the version is newer than its current.
    Unknown,
    /// Known not to exist or not to unwrap.
    Unusable,
    /// Its key, and whether the workspace was checked recently.
    Key(Arc<LessSafeKey>, bool),
}

impl EnvelopeCipher {
    /// A cipher wrapping data keys under `master` and storing them in `keys`. The master key
    /// is consumed: its bytes are zeroised once the wrapping key is built.
    #[must_use]
    pub fn new(master: MasterKey, keys: Arc<dyn KeyRepository>) -> Self {
        let unbound =
            UnboundKey::new(&AES_256_GCM, master.expose()).expect("a 32-byte key is always a valid AES-256-GCM key");
        Self {
            master: LessSafeKey::new(unbound),
            repo: keys,
            cache: RwLock::new(HashMap::new()),
            rng: SystemRandom::new(),
            refresh_after: DEFAULT_KEY_REFRESH,
        }
    }

    /// Sets how long a workspace's current key version is trusted before it is re-checked
    /// against the repository (default [`DEFAULT_KEY_REFRESH`]).
    #[must_use]
    pub fn with_key_refresh(mut self, every: Duration) -> Self {
        self.refresh_after = every;
        self
    }

    /// Adds the workspace's next key version (version 1 if it has none) and makes it current:
    /// new seals use it, values sealed under older versions still open. Returns the new current
    /// version. Other nodes adopt it for sealing within their refresh interval. If another node
    /// inserts the same version concurrently, its key (equally fresh) is the one kept, and its
    /// version is returned.
    ///
    /// # Errors
    /// [`RepoError`] when the repository fails or the random source fails, and when the
    /// current version does not unwrap (a wrong master key): nothing is added then.
    #[tracing::instrument(skip_all, fields(workspace = %workspace))]
    pub async fn rotate(&self, workspace: WorkspaceId) -> Result<i32, RepoError> {
        self.reload(workspace).await?;
        if let Current::Unusable = self.cached_current(workspace) {
            // Most likely the wrong master key: a key wrapped under it would be one the
            // servers cannot unwrap, and they would stop sealing.
            return Err(RepoError::msg("the workspace's current key does not unwrap under this master key"));
        }
        let next = self
            .known_current(workspace)
            .checked_add(1)
            .ok_or(RepoError::msg("workspace key versions are exhausted"))?;
        if self.create_version(workspace, next).await?.is_none() {
            tracing::info!(version = next, "a concurrent writer created the next workspace key first");
            self.reload(workspace).await?;
            return Ok(self.known_current(workspace));
        }
        tracing::info!(version = next, "workspace key rotated");
        Ok(next)
    }

    /// The workspace's current key version as the repository holds it now (0: no key yet, or
    /// its keys were destroyed). Refreshes this process's cache of the workspace.
    ///
    /// # Errors
    /// [`RepoError`] when the repository fails.
    #[tracing::instrument(skip_all, fields(workspace = %workspace))]
    pub async fn current_version(&self, workspace: WorkspaceId) -> Result<i32, RepoError> {
        self.reload(workspace).await?;
        Ok(self.known_current(workspace))
    }

    /// Crypto-shredding: destroys every key version of the workspace in the repository and
    /// forgets them in this process. Nothing sealed under them can be opened again, by any
    /// node, once that node's cache has re-checked the repository (see the module
    /// documentation). A later seal creates a fresh version 1, which does not open older
    /// values. Returns how many versions were destroyed.
    ///
    /// # Errors
    /// [`RepoError`] when the repository fails (the cache is forgotten all the same).
    #[tracing::instrument(skip_all, fields(workspace = %workspace))]
    pub async fn destroy_keys(&self, workspace: WorkspaceId) -> Result<u64, RepoError> {
        let destroyed = self.repo.destroy_workspace_keys(workspace).await;
        self.cache.write().unwrap_or_else(PoisonError::into_inner).remove(&workspace);
        let destroyed = destroyed?;
        tracing::warn!(versions = destroyed, "workspace keys destroyed");
        Ok(destroyed)
    }

    /// The key to seal with: the cached current one, else (re)loaded, else created.
    async fn seal_key(&self, workspace: WorkspaceId) -> Result<(i32, Arc<LessSafeKey>), RepoError> {
        let cached = self.cached_current(workspace);
        if let Current::Key(version, key, true) = cached {
            return Ok((version, key));
        }
        if let Err(err) = self.reload(workspace).await {
            // Sealing under a version that may have been superseded is still correct; only
            // failing to seal at all would hurt.
            if let Current::Key(version, key, false) = cached {
                tracing::warn!(error = %err, "could not re-check the workspace key; sealing with the cached one");
                return Ok((version, key));
            }
            return Err(err);
        }
        match self.cached_current(workspace) {
            Current::Key(version, key, _) => return Ok((version, key)),
            Current::Unusable => return Err(RepoError::msg("the workspace's current key cannot be unwrapped")),
            Current::NoKey | Current::Unknown => {}
        }
        // The workspace's first seal.
        if let Some(key) = self.create_version(workspace, 1).await? {
            return Ok((1, key));
        }
        // Another node created version 1 between our load and our insert: use theirs.
        self.reload(workspace).await?;
        match self.cached_current(workspace) {
            Current::Key(version, key, _) => Ok((version, key)),
            _ => Err(RepoError::msg("the workspace's current key cannot be unwrapped")),
        }
    }

    /// The key of `version`, loading the workspace's keys when it is not cached yet.
    async fn open_key(&self, workspace: WorkspaceId, version: i32) -> Result<Arc<LessSafeKey>, RepoError> {
        const UNUSABLE: RepoError = RepoError::msg("unknown or unusable workspace key version");
        if version < 1 {
            return Err(UNUSABLE);
        }
        match self.cached_version(workspace, version) {
            Version::Key(key, true) => return Ok(key),
            Version::Key(key, false) => {
                // Re-checked now and then, so that destroyed keys (crypto-shredding) stop
                // opening on every node within the refresh interval.
                if let Err(err) = self.reload(workspace).await {
                    tracing::warn!(error = %err, "could not re-check the workspace keys; opening with the cached one");
                    return Ok(key);
                }
            }
            Version::Unusable => return Err(UNUSABLE),
            Version::Unknown => self.reload(workspace).await?,
        }
        match self.cached_version(workspace, version) {
            Version::Key(key, _) => Ok(key),
            Version::Unusable | Version::Unknown => Err(UNUSABLE),
        }
    }

    /// Loads every version of the workspace from the repository, unwraps them and merges them
    /// into the cache.
    #[tracing::instrument(skip_all, fields(workspace = %workspace))]
    async fn reload(&self, workspace: WorkspaceId) -> Result<(), RepoError> {
        let rows = self.repo.workspace_keys(workspace).await?;
        let mut current = 0;
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            if row.version < 1 {
                tracing::error!(version = row.version, "ignoring a workspace key with an invalid version");
                continue;
            }
            current = current.max(row.version);
            match self.unwrap_key(workspace, row) {
                Some(key) => keys.push((row.version, Arc::new(key))),
                None => tracing::error!(
                    version = row.version,
                    "workspace key does not unwrap (wrong master key, or the stored key was altered)"
                ),
            }
        }
        self.remember(workspace, current, keys, true);
        Ok(())
    }

    /// Generates, wraps and inserts `version`; `None` when that version already exists.
    async fn create_version(
        &self,
        workspace: WorkspaceId,
        version: i32,
    ) -> Result<Option<Arc<LessSafeKey>>, RepoError> {
        let (wrapped, key) = {
            let mut raw = Zeroizing::new([0_u8; DATA_KEY_LEN]);
            fill_random(&self.rng, &mut *raw).map_err(|e| RepoError::new("generating a workspace key failed", e))?;
            let wrapped = self.wrap_key(workspace, version, &raw)?;
            let unbound =
                UnboundKey::new(&AES_256_GCM, &*raw).map_err(|_| RepoError::msg("building a workspace key failed"))?;
            (wrapped, Arc::new(LessSafeKey::new(unbound)))
        };
        let row = WrappedKey { version, wrapped };
        if !self.repo.insert_workspace_key(workspace, &row).await? {
            return Ok(None);
        }
        self.remember(workspace, version, [(version, Arc::clone(&key))], false);
        tracing::info!(workspace = %workspace, version, "created a workspace data key");
        Ok(Some(key))
    }

    fn wrap_key(&self, workspace: WorkspaceId, version: i32, raw: &[u8; DATA_KEY_LEN]) -> Result<Vec<u8>, RepoError> {
        let mut nonce = [0_u8; NONCE_LEN];
        fill_random(&self.rng, &mut nonce).map_err(|e| RepoError::new("generating a nonce failed", e))?;
        let mut out = Vec::with_capacity(WRAPPED_KEY_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(raw);
        // Encrypted in place: the buffer never holds the raw key once this returns.
        let tag = self
            .master
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(wrap_aad(workspace, version)),
                &mut out[NONCE_LEN..],
            )
            .map_err(|_| RepoError::msg("wrapping a workspace key failed"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    fn unwrap_key(&self, workspace: WorkspaceId, row: &WrappedKey) -> Option<LessSafeKey> {
        if row.wrapped.len() != WRAPPED_KEY_LEN {
            return None;
        }
        let (nonce, sealed) = row.wrapped.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let raw = self.master.open_in_place(nonce, Aad::from(wrap_aad(workspace, row.version)), &mut buf).ok()?;
        UnboundKey::new(&AES_256_GCM, raw).ok().map(LessSafeKey::new)
    }

    /// Records what was learnt about a workspace. A full load (`checked`) is authoritative and
    /// replaces what was cached, so versions destroyed in the repository are forgotten; a
    /// version this process just created is merged in (a load that raced with its insert may
    /// drop it again, which only means it is loaded again when needed).
    fn remember(
        &self,
        workspace: WorkspaceId,
        current: i32,
        keys: impl IntoIterator<Item = (i32, Arc<LessSafeKey>)>,
        checked: bool,
    ) {
        let now = Instant::now();
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        let entry = cache.entry(workspace).or_insert_with(|| WorkspaceKeys {
            current: 0,
            keys: BTreeMap::new(),
            checked_at: now,
        });
        if checked {
            entry.current = current;
            entry.keys = keys.into_iter().collect();
            entry.checked_at = now;
        } else {
            entry.current = entry.current.max(current);
            for (version, key) in keys {
                entry.keys.entry(version).or_insert(key);
            }
        }
    }

    fn cached_current(&self, workspace: WorkspaceId) -> Current {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        match cache.get(&workspace) {
            None => Current::Unknown,
            Some(entry) if entry.current == 0 => Current::NoKey,
            Some(entry) => match entry.keys.get(&entry.current) {
                Some(key) => {
                    let fresh = entry.checked_at.elapsed() < self.refresh_after;
                    Current::Key(entry.current, Arc::clone(key), fresh)
                }
                None => Current::Unusable,
            },
        }
    }

    fn cached_version(&self, workspace: WorkspaceId, version: i32) -> Version {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        match cache.get(&workspace) {
            None => Version::Unknown,
            Some(entry) => match entry.keys.get(&version) {
                Some(key) => Version::Key(Arc::clone(key), entry.checked_at.elapsed() < self.refresh_after),
                None if version > entry.current => Version::Unknown,
                None => Version::Unusable,
            },
        }
    }

    fn known_current(&self, workspace: WorkspaceId) -> i32 {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        cache.get(&workspace).map_or(0, |entry| entry.current)
    }
}

impl fmt::Debug for EnvelopeCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self.cache.read().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("EnvelopeCipher")
            .field("cached_workspaces", &cached)
            .field("refresh_after", &self.refresh_after)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl ContentCipher for EnvelopeCipher {
    #[tracing::instrument(skip_all, fields(workspace = %ctx.workspace, message = %ctx.message, field = ctx.field))]
    async fn seal(&self, ctx: &SealContext, plaintext: &[u8]) -> Result<Sealed, RepoError> {
        let (version, key) = self.seal_key(ctx.workspace).await?;
        let aad = content_aad(ctx, version)?;
        let mut nonce = [0_u8; NONCE_LEN];
        fill_random(&self.rng, &mut nonce).map_err(|e| RepoError::new("generating a nonce failed", e))?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(plaintext);
        let tag = key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&aad), &mut bytes[NONCE_LEN..])
            .map_err(|_| RepoError::msg("sealing content failed"))?;
        bytes.extend_from_slice(tag.as_ref());
        Ok(Sealed { key_version: version, bytes })
    }

    #[tracing::instrument(skip_all, fields(workspace = %ctx.workspace, message = %ctx.message, field = ctx.field, version = sealed.key_version))]
    async fn open(&self, ctx: &SealContext, sealed: &Sealed) -> Result<Vec<u8>, RepoError> {
        if sealed.bytes.len() < MIN_SEALED_LEN {
            return Err(RepoError::msg("sealed value is too short"));
        }
        let key = self.open_key(ctx.workspace, sealed.key_version).await?;
        let aad = content_aad(ctx, sealed.key_version)?;
        let (nonce, body) = sealed.bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| RepoError::msg("sealed value is malformed"))?;
        let mut buf = body.to_vec();
        let len = key
            .open_in_place(nonce, Aad::from(&aad), &mut buf)
            .map_err(|_| RepoError::msg("sealed value failed authentication"))?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

/// The AAD binding a wrapped data key to its workspace and version.
fn wrap_aad(workspace: WorkspaceId, version: i32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_AAD_LABEL.len() + 16 + 4);
    aad.extend_from_slice(WRAP_AAD_LABEL);
    aad.extend_from_slice(workspace.as_uuid().as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

/// The content AAD, format 1 (see the module documentation).
fn content_aad(ctx: &SealContext, version: i32) -> Result<Vec<u8>, RepoError> {
    let field_len = u16::try_from(ctx.field.len()).map_err(|_| RepoError::msg("sealed field name is too long"))?;
    let mut aad = Vec::with_capacity(1 + 3 * 16 + 4 + 2 + ctx.field.len());
    aad.push(CONTENT_AAD_FORMAT);
    aad.extend_from_slice(ctx.workspace.as_uuid().as_bytes());
    aad.extend_from_slice(ctx.conversation.as_uuid().as_bytes());
    aad.extend_from_slice(ctx.message.as_uuid().as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(&field_len.to_be_bytes());
    aad.extend_from_slice(ctx.field.as_bytes());
    Ok(aad)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chat_domain::cipher::MockKeyRepository;
    use chat_domain::ids::{ConversationId, MessageId};

    use super::*;

    /// The reference in-memory key store: versions are unique per workspace, as the port says.
    #[derive(Default)]
    struct MemoryKeys {
        rows: Mutex<HashMap<WorkspaceId, Vec<WrappedKey>>>,
        loads: AtomicUsize,
    }

    impl MemoryKeys {
        fn loads(&self) -> usize {
            self.loads.load(Ordering::SeqCst)
        }

        fn rows(&self, workspace: WorkspaceId) -> Vec<WrappedKey> {
            self.rows.lock().unwrap().get(&workspace).cloned().unwrap_or_default()
        }

        fn put(&self, workspace: WorkspaceId, rows: Vec<WrappedKey>) {
            self.rows.lock().unwrap().insert(workspace, rows);
        }
    }

    #[async_trait]
    impl KeyRepository for MemoryKeys {
        async fn workspace_keys(&self, workspace: WorkspaceId) -> Result<Vec<WrappedKey>, RepoError> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            // Let concurrent callers interleave, as a real store would.
            tokio::task::yield_now().await;
            Ok(self.rows(workspace))
        }

        async fn insert_workspace_key(&self, workspace: WorkspaceId, key: &WrappedKey) -> Result<bool, RepoError> {
            tokio::task::yield_now().await;
            let mut rows = self.rows.lock().unwrap();
            let versions = rows.entry(workspace).or_default();
            if versions.iter().any(|k| k.version == key.version) {
                return Ok(false);
            }
            versions.push(key.clone());
            versions.sort_by_key(|k| k.version);
            Ok(true)
        }

        async fn keyed_workspaces(&self) -> Result<Vec<WorkspaceId>, RepoError> {
            let rows = self.rows.lock().unwrap();
            Ok(rows.iter().filter(|(_, keys)| !keys.is_empty()).map(|(id, _)| *id).collect())
        }

        async fn destroy_workspace_keys(&self, workspace: WorkspaceId) -> Result<u64, RepoError> {
            Ok(self.rows.lock().unwrap().remove(&workspace).map_or(0, |keys| keys.len() as u64))
        }
    }

    const MASTER_HEX: &str = "8f1c2d3e4f5061728394a5b6c7d8e9fa0b1c2d3e4f5061728394a5b6c7d8e9fa";

    fn master() -> MasterKey {
        MasterKey::from_hex(MASTER_HEX).unwrap()
    }

    fn cipher(repo: &Arc<MemoryKeys>) -> EnvelopeCipher {
        EnvelopeCipher::new(master(), Arc::clone(repo) as Arc<dyn KeyRepository>)
    }

    fn ctx() -> SealContext {
        SealContext {
            workspace: WorkspaceId::generate(),
            conversation: ConversationId::generate(),
            message: MessageId::generate(),
            field: "content",
        }
    }

    #[tokio::test]
    async fn a_sealed_value_opens_under_the_same_context() {
        let repo = Arc::new(MemoryKeys::default());
        let cipher = cipher(&repo);
        let ctx = ctx();
        let sealed = cipher.seal(&ctx, b"hello, world").await.unwrap();
        assert_eq!(sealed.key_version, 1);
        assert_eq!(sealed.bytes.len(), NONCE_LEN + 12 + TAG_LEN);
        assert_eq!(cipher.open(&ctx, &sealed).await.unwrap(), b"hello, world");

        let empty = cipher.seal(&ctx, b"").await.unwrap();
        assert_eq!(empty.bytes.len(), MIN_SEALED_LEN);
        assert_eq!(cipher.open(&ctx, &empty).await.unwrap(), b"");

        // Another node (a fresh cipher on the same store and master key) opens it too.
        assert_eq!(self::cipher(&repo).open(&ctx, &sealed).await.unwrap(), b"hello, world");
        // Only the wrapped key reached the store.
        let rows = repo.rows(ctx.workspace);
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].version, rows[0].wrapped.len()), (1, WRAPPED_KEY_LEN));
    }

    #[tokio::test]
    async fn a_sealed_value_does_not_open_under_another_context() {
        let repo = Arc::new(MemoryKeys::default());
        let cipher = cipher(&repo);
        let ctx = ctx();
        let sealed = cipher.seal(&ctx, b"bound to its row").await.unwrap();

        let other_message = SealContext { message: MessageId::generate(), ..ctx };
        let other_conversation = SealContext { conversation: ConversationId::generate(), ..ctx };
        let other_field = SealContext { field: "attachments", ..ctx };
        let longer_field = SealContext { field: "contents", ..ctx };
        let keyless_workspace = SealContext { workspace: WorkspaceId::generate(), ..ctx };
        let keyed_workspace = SealContext { workspace: WorkspaceId::generate(), ..ctx };
        cipher.seal(&keyed_workspace, b"gives the workspace a key").await.unwrap();

        for wrong in [other_message, other_conversation, other_field, longer_field, keyless_workspace, keyed_workspace]
        {
            assert!(cipher.open(&wrong, &sealed).await.is_err(), "opened under {wrong:?}");
        }
        assert!(cipher.open(&ctx, &sealed).await.is_ok());
    }

    #[tokio::test]
    async fn flipping_any_bit_or_truncating_makes_opening_fail() {
        let repo = Arc::new(MemoryKeys::default());
        let cipher = cipher(&repo);
        let ctx = ctx();
        let sealed = cipher.seal(&ctx, b"tamper-evident").await.unwrap();
        for byte in 0..sealed.bytes.len() {
            for bit in 0..8 {
                let mut tampered = sealed.clone();
                tampered.bytes[byte] ^= 1 << bit;
                assert!(cipher.open(&ctx, &tampered).await.is_err(), "byte {byte} bit {bit}");
            }
        }
        for len in [0, 1, NONCE_LEN, MIN_SEALED_LEN - 1, sealed.bytes.len() - 1] {
            let truncated = Sealed { key_version: 1, bytes: sealed.bytes[..len].to_vec() };
            assert!(cipher.open(&ctx, &truncated).await.is_err(), "length {len}");
        }
        let mut extended = sealed.clone();
        extended.bytes.push(0);
        assert!(cipher.open(&ctx, &extended).await.is_err());
        for version in [0, -1, 2, i32::MAX] {
            let relabelled = Sealed { key_version: version, ..sealed.clone() };
            assert!(cipher.open(&ctx, &relabelled).await.is_err(), "version {version}");
        }
        assert!(cipher.open(&ctx, &sealed).await.is_ok());
    }

    #[tokio::test]
    async fn sealing_twice_gives_different_bytes_without_the_plaintext() {
        let repo = Arc::new(MemoryKeys::default());
        let cipher = cipher(&repo);
        let ctx = ctx();
        let plaintext = b"the quick brown fox jumps over the lazy dog";
        let a = cipher.seal(&ctx, plaintext).await.unwrap();
        let b = cipher.seal(&ctx, plaintext).await.unwrap();
        assert_ne!(a.bytes[..NONCE_LEN], b.bytes[..NONCE_LEN], "fresh nonce per seal");
        assert_ne!(a.bytes, b.bytes);
        for sealed in [&a, &b] {
            assert!(!sealed.bytes.windows(8).any(|w| plaintext.windows(8).any(|p| p == w)));
            assert_eq!(cipher.open(&ctx, sealed).await.unwrap(), plaintext);
        }
    }

    #[tokio::test]
    async fn after_rotation_new_seals_use_the_new_version_and_old_values_still_open() {
        let repo = Arc::new(MemoryKeys::default());
        let cipher = cipher(&repo);
        let ctx = ctx();
        let old = cipher.seal(&ctx, b"before").await.unwrap();
        assert_eq!(old.key_version, 1);

        assert_eq!(cipher.rotate(ctx.workspace).await.unwrap(), 2);
        let new = cipher.seal(&ctx, b"after").await.unwrap();
        assert_eq!(new.key_version, 2);
        assert_eq!(cipher.open(&ctx, &old).await.unwrap(), b"before");
        assert_eq!(cipher.open(&ctx, &new).await.unwrap(), b"after");
        // A v1 value relabelled as v2 does not open: the versions are different keys.
        assert!(cipher.open(&ctx, &Sealed { key_version: 2, ..old.clone() }).await.is_err());

        assert_eq!(cipher.rotate(ctx.workspace).await.unwrap(), 3);
        assert_eq!(repo.rows(ctx.workspace).iter().map(|k| k.version).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[tokio::test]
    async fn another_node_adopts_a_rotation_within_its_refresh_interval() {
        let repo = Arc::new(MemoryKeys::default());
        let admin = cipher(&repo);
        let lazy = cipher(&repo);
        let eager = cipher(&repo).with_key_refresh(Duration::ZERO);
        let ctx = ctx();
        let v1 = admin.seal(&ctx, b"one").await.unwrap();
        assert_eq!(lazy.seal(&ctx, b"x").await.unwrap().key_version, 1);
        assert_eq!(eager.seal(&ctx, b"x").await.unwrap().key_version, 1);

        admin.rotate(ctx.workspace).await.unwrap();
        let v2 = admin.seal(&ctx, b"two").await.unwrap();
        assert_eq!(v2.key_version, 2);

        // Within its interval the lazy node keeps sealing with v1 (still valid), but opens v2
        // values at once: an unseen version triggers a load.
        assert_eq!(lazy.seal(&ctx, b"x").await.unwrap().key_version, 1);
        assert_eq!(lazy.open(&ctx, &v2).await.unwrap(), b"two");
        assert_eq!(lazy.seal(&ctx, b"x").await.unwrap().key_version, 2, "seeing v2 made it current");
        // A node whose interval has passed seals with v2 straight away.
        assert_eq!(eager.seal(&ctx, b"x").await.unwrap().key_version, 2);
        assert_eq!(eager.open(&ctx, &v1).await.unwrap(), b"one");
    }

    #[tokio::test]
    async fn destroyed_keys_stop_opening_on_every_node_once_its_refresh_interval_has_passed() {
        let repo = Arc::new(MemoryKeys::default());
        let admin = cipher(&repo);
        let lazy = cipher(&repo);
        let eager = cipher(&repo).with_key_refresh(Duration::ZERO);
        let ctx = ctx();
        let other = SealContext { workspace: WorkspaceId::generate(), ..ctx };
        let v1 = admin.seal(&ctx, b"one").await.unwrap();
        assert_eq!(admin.rotate(ctx.workspace).await.unwrap(), 2);
        assert_eq!(admin.current_version(ctx.workspace).await.unwrap(), 2);
        let v2 = admin.seal(&ctx, b"two").await.unwrap();
        let elsewhere = admin.seal(&other, b"elsewhere").await.unwrap();
        for node in [&lazy, &eager] {
            assert_eq!(node.open(&ctx, &v1).await.unwrap(), b"one");
            assert_eq!(node.open(&ctx, &v2).await.unwrap(), b"two");
        }

        assert_eq!(admin.destroy_keys(ctx.workspace).await.unwrap(), 2);
        assert_eq!(repo.rows(ctx.workspace), []);
        assert_eq!(admin.current_version(ctx.workspace).await.unwrap(), 0);
        for sealed in [&v1, &v2] {
            assert!(admin.open(&ctx, sealed).await.is_err(), "the shredding process forgot the keys");
            assert!(eager.open(&ctx, sealed).await.is_err(), "a node past its interval re-checked");
            assert!(cipher(&repo).open(&ctx, sealed).await.is_err(), "a fresh node never had them");
            // What does not hold: a node within its interval still has the keys in memory.
            assert!(lazy.open(&ctx, sealed).await.is_ok());
        }
        // Other workspaces are untouched.
        assert_eq!(eager.open(&other, &elsewhere).await.unwrap(), b"elsewhere");
        // The workspace can seal again, under a fresh version 1 that does not open the old one.
        let fresh = admin.seal(&ctx, b"fresh").await.unwrap();
        assert_eq!(fresh.key_version, 1);
        assert!(admin.open(&ctx, &v1).await.is_err());
        assert_eq!(eager.open(&ctx, &fresh).await.unwrap(), b"fresh");
    }

    #[tokio::test]
    async fn the_hot_path_does_not_touch_the_store() {
        let repo = Arc::new(MemoryKeys::default());
        let cipher = cipher(&repo);
        let ctx = ctx();
        let first = cipher.seal(&ctx, b"first").await.unwrap();
        let loads = repo.loads();
        for _ in 0..10 {
            let sealed = cipher.seal(&ctx, b"again").await.unwrap();
            cipher.open(&ctx, &sealed).await.unwrap();
            cipher.open(&ctx, &first).await.unwrap();
        }
        // A tampered value with a known version fails without a reload either.
        let mut tampered = first.clone();
        tampered.bytes[NONCE_LEN] ^= 1;
        assert!(cipher.open(&ctx, &tampered).await.is_err());
        assert_eq!(repo.loads(), loads);
    }

    #[tokio::test]
    async fn when_another_node_wins_the_first_key_race_its_key_is_used() {
        // The winner: another node that created version 1 of the workspace.
        let winner_store = Arc::new(MemoryKeys::default());
        let winner = cipher(&winner_store);
        let ctx = ctx();
        winner.seal(&ctx, b"winner's first message").await.unwrap();
        let winning_rows = winner_store.rows(ctx.workspace);
        assert_eq!(winning_rows.len(), 1);

        // This node loads (nothing yet), inserts its own v1 (refused), then must reload.
        let loads = Arc::new(AtomicUsize::new(0));
        let mut repo = MockKeyRepository::new();
        let (seen, rows) = (Arc::clone(&loads), winning_rows.clone());
        repo.expect_workspace_keys()
            .times(2)
            .returning(move |_| Ok(if seen.fetch_add(1, Ordering::SeqCst) == 0 { vec![] } else { rows.clone() }));
        repo.expect_insert_workspace_key()
            .withf(|_, key| key.version == 1 && key.wrapped.len() == WRAPPED_KEY_LEN)
            .times(1)
            .returning(|_, _| Ok(false));
        let loser = EnvelopeCipher::new(master(), Arc::new(repo));

        let sealed = loser.seal(&ctx, b"loser's first message").await.unwrap();
        assert_eq!(sealed.key_version, 1);
        assert_eq!(loads.load(Ordering::SeqCst), 2);
        // Sealed under the winner's key, so the winner opens it.
        assert_eq!(winner.open(&ctx, &sealed).await.unwrap(), b"loser's first message");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_seals_on_several_nodes_agree_on_one_key() {
        let repo = Arc::new(MemoryKeys::default());
        let nodes: Vec<_> = (0..4).map(|_| Arc::new(cipher(&repo))).collect();
        let ctx = ctx();
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let node = Arc::clone(&nodes[i % nodes.len()]);
                tokio::spawn(async move { node.seal(&ctx, format!("message {i}").as_bytes()).await })
            })
            .collect();
        let mut sealed = Vec::new();
        for task in tasks {
            sealed.push(task.await.unwrap().unwrap());
        }
        assert_eq!(repo.rows(ctx.workspace).len(), 1);
        for (i, value) in sealed.iter().enumerate() {
            assert_eq!(value.key_version, 1);
            for node in &nodes {
                assert_eq!(node.open(&ctx, value).await.unwrap(), format!("message {i}").as_bytes());
            }
        }
    }

    #[tokio::test]
    async fn keys_wrapped_under_one_master_key_do_not_unwrap_under_another() {
        let repo = Arc::new(MemoryKeys::default());
        let right = cipher(&repo);
        let ctx = ctx();
        let sealed = right.seal(&ctx, b"secret").await.unwrap();

        let wrong = EnvelopeCipher::new(MasterKey::generate().unwrap(), Arc::clone(&repo) as Arc<dyn KeyRepository>);
        assert!(wrong.open(&ctx, &sealed).await.is_err());
        assert!(wrong.seal(&ctx, b"new").await.is_err(), "never seals with a key it cannot unwrap");
        assert!(wrong.rotate(ctx.workspace).await.is_err(), "never adds a version the servers cannot unwrap");
        assert_eq!(repo.rows(ctx.workspace).len(), 1, "and never replaces it");
        assert_eq!(right.open(&ctx, &sealed).await.unwrap(), b"secret");
    }

    #[tokio::test]
    async fn a_wrapped_key_copied_to_another_workspace_or_version_does_not_unwrap() {
        let repo = Arc::new(MemoryKeys::default());
        let cipher = cipher(&repo);
        let ctx = ctx();
        let sealed = cipher.seal(&ctx, b"secret").await.unwrap();
        let row = repo.rows(ctx.workspace).remove(0);

        let elsewhere = SealContext { workspace: WorkspaceId::generate(), ..ctx };
        repo.put(elsewhere.workspace, vec![row.clone()]);
        let fresh = self::cipher(&repo);
        assert!(fresh.seal(&elsewhere, b"x").await.is_err());

        // The same bytes presented as version 2 of the original workspace.
        repo.put(ctx.workspace, vec![row.clone(), WrappedKey { version: 2, wrapped: row.wrapped.clone() }]);
        let fresh = self::cipher(&repo);
        assert!(fresh.seal(&ctx, b"x").await.is_err(), "v2 is current and must not unwrap");
        assert_eq!(fresh.open(&ctx, &sealed).await.unwrap(), b"secret", "v1 is intact");
    }

    #[tokio::test]
    async fn store_failures_are_errors_not_panics() {
        let mut repo = MockKeyRepository::new();
        repo.expect_workspace_keys().returning(|_| Err(RepoError::msg("store down")));
        let cipher = EnvelopeCipher::new(master(), Arc::new(repo));
        let ctx = ctx();
        assert!(cipher.seal(&ctx, b"x").await.is_err());
        let sealed = Sealed { key_version: 1, bytes: vec![0; 40] };
        assert!(cipher.open(&ctx, &sealed).await.is_err());
        assert!(cipher.rotate(ctx.workspace).await.is_err());
    }

    #[test]
    fn the_content_aad_is_fixed_layout_with_a_length_prefixed_field() {
        let ctx = ctx();
        let aad = content_aad(&ctx, 7).unwrap();
        assert_eq!(aad.len(), 1 + 48 + 4 + 2 + "content".len());
        assert_eq!(aad[0], CONTENT_AAD_FORMAT);
        assert_eq!(&aad[1..17], ctx.workspace.as_uuid().as_bytes());
        assert_eq!(&aad[17..33], ctx.conversation.as_uuid().as_bytes());
        assert_eq!(&aad[33..49], ctx.message.as_uuid().as_bytes());
        assert_eq!(&aad[49..53], &7_i32.to_be_bytes());
        assert_eq!(&aad[53..55], &7_u16.to_be_bytes());
        assert_eq!(&aad[55..], b"content");
        assert_ne!(aad, content_aad(&ctx, 8).unwrap());
    }

    #[test]
    fn debug_shows_no_key_material() {
        let cipher = cipher(&Arc::new(MemoryKeys::default()));
        let shown = format!("{cipher:?}");
        assert!(shown.starts_with("EnvelopeCipher"));
        assert!(!shown.to_lowercase().contains(&MASTER_HEX[..8]));
    }
}
