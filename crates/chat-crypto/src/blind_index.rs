//! The keyed half of the search blind index: [`HmacBlindIndexer`].
//!
//! # Keys
//! - A **search root key** is derived once from the master key with HKDF-SHA256
//!   (extract, salt [`SEARCH_KEY_SALT`]); it lives only in process memory.
//! - Each workspace's **search key** (32 bytes) is HKDF-Expand of the root key with info
//!   [`SEARCH_KEY_INFO`] ‖ workspace uuid (16 bytes). It is independent of the workspace's
//!   content data keys (those are random and wrapped; this one is derived), is never stored,
//!   and cannot be computed without the master key. Nothing needs storing or caching: the
//!   derivation is two HMAC computations.
//! - A **tag** is HMAC-SHA256(search key, normalised token as UTF-8), truncated to its first
//!   [`TAG_LEN`] bytes (128 bits: collisions between distinct tokens are negligible).
//!
//! Changing the master key changes every tag: the index must then be rebuilt (as every wrapped
//! data key must be re-wrapped). Search keys are not versioned with the data keys: rotating a
//! workspace's data key does not touch its tags.

use std::fmt;

use chat_domain::error::RepoError;
use chat_domain::ids::WorkspaceId;
use chat_domain::search::{BlindIndexer, SearchTag, TAG_LEN};
use ring::{hkdf, hmac};

use crate::master_key::MasterKey;

/// HKDF-Extract salt of the search root key (domain separation from every other use of the
/// master key).
pub const SEARCH_KEY_SALT: &[u8] = b"chat-crypto/search-root/v1";

/// HKDF-Expand info prefix of a workspace's search key; the workspace uuid follows.
pub const SEARCH_KEY_INFO: &[u8] = b"chat-crypto/workspace-search-key/v1";

/// [`BlindIndexer`] with per-workspace HMAC-SHA256 keys derived from the master key. See the
/// [module documentation](self).
pub struct HmacBlindIndexer {
    root: hkdf::Prk,
}

impl fmt::Debug for HmacBlindIndexer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacBlindIndexer").finish_non_exhaustive()
    }
}

impl HmacBlindIndexer {
    /// Derives the search root key from `master` (which stays the caller's, for
    /// [`crate::EnvelopeCipher::new`]).
    #[must_use]
    pub fn new(master: &MasterKey) -> Self {
        let root = hkdf::Salt::new(hkdf::HKDF_SHA256, SEARCH_KEY_SALT).extract(master.expose());
        Self { root }
    }

    /// The workspace's search key.
    fn workspace_key(&self, workspace: WorkspaceId) -> Result<hmac::Key, RepoError> {
        let id = workspace.as_uuid();
        let info: [&[u8]; 2] = [SEARCH_KEY_INFO, id.as_bytes()];
        let okm = self
            .root
            .expand(&info, hmac::HMAC_SHA256)
            .map_err(|_| RepoError::msg("deriving a workspace search key failed"))?;
        Ok(hmac::Key::from(okm))
    }
}

impl BlindIndexer for HmacBlindIndexer {
    fn tags(&self, workspace: WorkspaceId, tokens: &[String]) -> Result<Vec<SearchTag>, RepoError> {
        let key = self.workspace_key(workspace)?;
        Ok(tokens
            .iter()
            .map(|token| {
                let mac = hmac::sign(&key, token.as_bytes());
                let mut tag = [0_u8; TAG_LEN];
                tag.copy_from_slice(&mac.as_ref()[..TAG_LEN]);
                SearchTag(tag)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn indexer() -> HmacBlindIndexer {
        HmacBlindIndexer::new(&MasterKey::from_hex(MASTER_HEX).unwrap())
    }

    fn tag(indexer: &HmacBlindIndexer, workspace: WorkspaceId, token: &str) -> SearchTag {
        indexer.tags(workspace, &[token.to_owned()]).unwrap()[0]
    }

    #[test]
    fn equal_tokens_of_one_workspace_get_equal_tags_across_instances() {
        let workspace = WorkspaceId::generate();
        let (a, b) = (indexer(), indexer());
        assert_eq!(tag(&a, workspace, "deploy"), tag(&b, workspace, "deploy"));
        assert_ne!(tag(&a, workspace, "deploy"), tag(&a, workspace, "deplo"));
    }

    #[test]
    fn one_token_gets_unrelated_tags_in_two_workspaces() {
        let i = indexer();
        assert_ne!(tag(&i, WorkspaceId::generate(), "deploy"), tag(&i, WorkspaceId::generate(), "deploy"));
    }

    #[test]
    fn tags_depend_on_the_master_key() {
        let workspace = WorkspaceId::generate();
        let other = HmacBlindIndexer::new(&MasterKey::generate().unwrap());
        assert_ne!(tag(&indexer(), workspace, "deploy"), tag(&other, workspace, "deploy"));
    }

    #[test]
    fn a_tag_is_the_truncated_hmac_under_the_hkdf_derived_workspace_key() {
        // Recomputed independently: HKDF-SHA256 (RFC 5869) by hand with ring's HMAC.
        let workspace = WorkspaceId::generate();
        let master = hex::decode(MASTER_HEX).unwrap();
        let prk = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, SEARCH_KEY_SALT), &master);
        let mut t1_input = SEARCH_KEY_INFO.to_vec();
        t1_input.extend_from_slice(workspace.as_uuid().as_bytes());
        t1_input.push(1);
        let search_key = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref()), &t1_input);
        let mac = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, search_key.as_ref()), "déjà".as_bytes());
        assert_eq!(tag(&indexer(), workspace, "déjà").0, mac.as_ref()[..TAG_LEN]);
        // And the search key is not the master key used directly.
        let direct = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &master), "déjà".as_bytes());
        assert_ne!(tag(&indexer(), workspace, "déjà").0, direct.as_ref()[..TAG_LEN]);
    }

    #[test]
    fn tags_come_one_per_token_in_order() {
        let i = indexer();
        let workspace = WorkspaceId::generate();
        let tokens: Vec<String> = ["a", "bb", "ccc"].map(str::to_owned).to_vec();
        let tags = i.tags(workspace, &tokens).unwrap();
        assert_eq!(tags, tokens.iter().map(|t| tag(&i, workspace, t)).collect::<Vec<_>>());
        assert!(i.tags(workspace, &[]).unwrap().is_empty());
    }

    #[test]
    fn debug_shows_no_key_material() {
        assert_eq!(format!("{:?}", indexer()), "HmacBlindIndexer { .. }");
    }
}
