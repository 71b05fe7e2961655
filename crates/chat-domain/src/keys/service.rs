use std::collections::HashSet;
use std::sync::Arc;

use super::model::{ClaimedKeys, DeviceKeys, DeviceKeysUpload, signed_prekey_message};
use super::ports::{KeyDirectory, PublishOutcome, SignatureVerifier};
use crate::clock::Clock;
use crate::error::{DomainError, DomainResult};
use crate::ids::UserId;
use crate::realtime::{RateKind, RateLimiter, take_token};
use crate::workspace::WorkspaceRepository;

/// The E2E public key directory: publish, list, claim.
#[derive(Clone)]
pub struct KeyService {
    directory: Arc<dyn KeyDirectory>,
    verifier: Arc<dyn SignatureVerifier>,
    workspaces: Arc<dyn WorkspaceRepository>,
    limiter: Arc<dyn RateLimiter>,
    clock: Arc<dyn Clock>,
    claims_per_minute: u32,
}

impl std::fmt::Debug for KeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyService").field("claims_per_minute", &self.claims_per_minute).finish_non_exhaustive()
    }
}

impl KeyService {
    /// Wires the service; `claims_per_minute` is each caller's claim budget (0 disables).
    #[must_use]
    pub fn new(
        directory: Arc<dyn KeyDirectory>,
        verifier: Arc<dyn SignatureVerifier>,
        workspaces: Arc<dyn WorkspaceRepository>,
        limiter: Arc<dyn RateLimiter>,
        clock: Arc<dyn Clock>,
        claims_per_minute: u32,
    ) -> Self {
        Self { directory, verifier, workspaces, limiter, clock, claims_per_minute }
    }

    /// Publishes (creates or replaces) one of the caller's devices and appends one-time
    /// prekeys.
    ///
    /// # Errors
    /// `Validation` when there are too many one-time prekeys, their ids repeat, or the signed
    /// prekey's signature does not verify under the signing key; `Conflict` when the device id
    /// belongs to another user.
    #[tracing::instrument(skip(self, upload), fields(actor = %actor, device = %upload.device_id))]
    pub async fn publish(&self, actor: UserId, upload: DeviceKeysUpload) -> DomainResult<DeviceKeys> {
        if upload.one_time_prekeys.len() > DeviceKeysUpload::MAX_ONE_TIME_PREKEYS {
            return Err(DomainError::invalid("oneTimePrekeys", "at most 100 per upload"));
        }
        let mut ids = HashSet::with_capacity(upload.one_time_prekeys.len());
        if !upload.one_time_prekeys.iter().all(|k| ids.insert(k.id)) {
            return Err(DomainError::invalid("oneTimePrekeys", "key ids must be unique"));
        }
        let spk = &upload.signed_prekey;
        let message = signed_prekey_message(&upload.identity_key, spk.id, &spk.key);
        if !self.verifier.verify_ed25519(&upload.signing_key, &message, &spk.signature) {
            return Err(DomainError::invalid("signedPrekey.signature", "does not verify under signingKey"));
        }
        match self.directory.publish_device(actor, &upload, self.clock.now()).await? {
            PublishOutcome::Published(device) => {
                tracing::info!(target: "audit", actor = %actor, device = %upload.device_id, "e2e device keys published");
                Ok(*device)
            }
            PublishOutcome::OwnedByAnother => Err(DomainError::Conflict("device id belongs to another user")),
        }
    }

    /// The public keys of every device of `target` (without one-time prekeys).
    ///
    /// # Errors
    /// `NotFound` unless the caller is `target` or shares a workspace with them.
    #[tracing::instrument(skip(self), fields(actor = %actor, target = %target))]
    pub async fn list(&self, actor: UserId, target: UserId) -> DomainResult<Vec<DeviceKeys>> {
        self.ensure_visible(actor, target).await?;
        Ok(self.directory.list_devices(target).await?)
    }

    /// Claims one one-time prekey of every device of `target`, with each device's public keys.
    ///
    /// # Errors
    /// `NotFound` unless the caller is `target` or shares a workspace with them;
    /// `RateLimited` past the caller's claim budget.
    #[tracing::instrument(skip(self), fields(actor = %actor, target = %target))]
    pub async fn claim(&self, actor: UserId, target: UserId) -> DomainResult<Vec<ClaimedKeys>> {
        self.ensure_visible(actor, target).await?;
        take_token(&*self.limiter, RateKind::KeyClaims, &actor.to_string(), self.claims_per_minute).await?;
        Ok(self.directory.claim_prekeys(target).await?)
    }

    /// `NotFound` unless `actor` is `target` or they share at least one workspace: a user
    /// outside every workspace of `target` learns nothing, not even that the account exists.
    async fn ensure_visible(&self, actor: UserId, target: UserId) -> DomainResult<()> {
        if actor == target {
            return Ok(());
        }
        let mine: HashSet<_> =
            self.workspaces.list_workspaces_of(actor).await?.into_iter().map(|w| w.workspace.id).collect();
        if mine.is_empty() {
            return Err(DomainError::NotFound);
        }
        let shared = self.workspaces.list_workspaces_of(target).await?.iter().any(|w| mine.contains(&w.workspace.id));
        if shared { Ok(()) } else { Err(DomainError::NotFound) }
    }
}
