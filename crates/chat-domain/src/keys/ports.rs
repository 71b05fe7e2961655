use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::model::{ClaimedKeys, DeviceKeys, DeviceKeysUpload, Ed25519Key, Signature};
use crate::error::RepoError;
use crate::ids::UserId;

/// The outcome of publishing a device's keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Stored; the device as listed now.
    Published(Box<DeviceKeys>),
    /// The device id belongs to another user; nothing changed.
    OwnedByAnother,
}

/// Storage of the E2E public key directory.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait KeyDirectory: Send + Sync {
    /// Creates the device for `user`, or — when `user` already owns it — replaces its identity
    /// key, signing key and signed prekey; then appends the upload's one-time prekeys (an id
    /// the device already has keeps its stored key). When the identity key changes, the
    /// device's remaining one-time prekeys are dropped first (they belonged to the old
    /// identity). One transaction; the device row is locked, so concurrent publishers of one
    /// id cannot both create it.
    ///
    /// # Errors
    /// `Ok(OwnedByAnother)` when another user published this device id first; [`RepoError`]
    /// on storage failure.
    async fn publish_device(
        &self,
        user: UserId,
        upload: &DeviceKeysUpload,
        at: DateTime<Utc>,
    ) -> Result<PublishOutcome, RepoError>;

    /// Every device of `user`, oldest first, with its count of unclaimed one-time prekeys.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn list_devices(&self, user: UserId) -> Result<Vec<DeviceKeys>, RepoError>;

    /// For every device of `user` (oldest first), removes and returns one one-time prekey
    /// (the lowest id left), or none when it has none left. Each one-time prekey is handed
    /// out at most once, however many claims run concurrently.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn claim_prekeys(&self, user: UserId) -> Result<Vec<ClaimedKeys>, RepoError>;
}

/// Ed25519 signature verification (an adapter: the domain holds no crypto).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait SignatureVerifier: Send + Sync {
    /// Whether `signature` is a valid Ed25519 signature of `message` by `key` (strict
    /// verification: non-canonical signatures and small-order keys are refused).
    fn verify_ed25519(&self, key: &Ed25519Key, message: &[u8], signature: &Signature) -> bool;
}
