use std::fmt;

use chrono::{DateTime, Utc};

use crate::error::DomainError;
use crate::ids::UserId;

/// A client-chosen device id: 1 to 128 printable ASCII characters (`!` to `~`: no spaces,
/// no controls), so that it is as many bytes as characters — the message envelope's
/// `senderDevice` and recipient keys are limited to 128 bytes. Device ids are global: the
/// first user to publish one owns it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(String);

impl DeviceId {
    /// Longest device id, in characters.
    pub const MAX_CHARS: usize = 128;

    /// Validates a device id.
    ///
    /// # Errors
    /// `Validation` on `deviceId` when empty, longer than 128 characters, or holding anything
    /// but printable ASCII.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if raw.is_empty() || raw.len() > Self::MAX_CHARS {
            return Err(DomainError::invalid("deviceId", "must be 1 to 128 characters"));
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(DomainError::invalid("deviceId", "must be printable ASCII without spaces"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// Wraps a stored id (already validated when it was published).
    #[must_use]
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    /// The id.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The encodings of X25519 points of small order (and their non-canonical twins `p`, `p+1`,
/// `p-1`), compared with the top bit of the last byte cleared, as libsodium's
/// `has_small_order` does. A Diffie-Hellman with such a "public key" gives an all-zero (or
/// attacker-known) shared secret whatever the private key.
const SMALL_ORDER_POINTS: [[u8; 32]; 7] = [
    // 0 (order 4)
    [0; 32],
    // 1 (order 1)
    [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    // order 8
    [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09,
        0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00,
    ],
    // order 8
    [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04, 0x44,
        0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57,
    ],
    // p - 1 (order 2)
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ],
    // p (= 0)
    [
        0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ],
    // p + 1 (= 1)
    [
        0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ],
];

/// Whether `key` encodes an X25519 point of small order (see [`SMALL_ORDER_POINTS`]).
#[must_use]
pub fn is_small_order_x25519(key: &[u8; 32]) -> bool {
    SMALL_ORDER_POINTS.iter().any(|point| point[..31] == key[..31] && point[31] == key[31] & 0x7f)
}

/// A 32-byte X25519 public key that is not a small-order point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct X25519Key([u8; 32]);

impl X25519Key {
    /// Validates a public key for the named wire field.
    ///
    /// # Errors
    /// `Validation` on `field` when it is not 32 bytes or is a small-order point.
    pub fn parse(field: &'static str, bytes: &[u8]) -> Result<Self, DomainError> {
        let key: [u8; 32] =
            bytes.try_into().map_err(|_| DomainError::invalid(field, "must be a 32-byte X25519 public key"))?;
        if is_small_order_x25519(&key) {
            return Err(DomainError::invalid(field, "is a small-order X25519 point"));
        }
        Ok(Self(key))
    }

    /// Wraps stored bytes (validated when published).
    #[must_use]
    pub const fn from_stored(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A 32-byte Ed25519 public (verifying) key. Whether it is a valid curve point is the
/// [`SignatureVerifier`](super::SignatureVerifier)'s to decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ed25519Key([u8; 32]);

impl Ed25519Key {
    /// Validates the length.
    ///
    /// # Errors
    /// `Validation` on `field` when it is not 32 bytes.
    pub fn parse(field: &'static str, bytes: &[u8]) -> Result<Self, DomainError> {
        bytes.try_into().map(Self).map_err(|_| DomainError::invalid(field, "must be a 32-byte Ed25519 public key"))
    }

    /// Wraps stored bytes.
    #[must_use]
    pub const fn from_stored(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A 64-byte Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signature(..)")
    }
}

impl Signature {
    /// Validates the length.
    ///
    /// # Errors
    /// `Validation` on `field` when it is not 64 bytes.
    pub fn parse(field: &'static str, bytes: &[u8]) -> Result<Self, DomainError> {
        bytes.try_into().map(Self).map_err(|_| DomainError::invalid(field, "must be a 64-byte Ed25519 signature"))
    }

    /// Wraps stored bytes.
    #[must_use]
    pub const fn from_stored(bytes: [u8; 64]) -> Self {
        Self(bytes)
    }

    /// The bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

/// The domain-separation prefix of a signed prekey's signed message.
pub const SIGNED_PREKEY_CONTEXT: &[u8] = b"srtc-e2e/signed-prekey/v1";

/// The bytes a device's Ed25519 signing key signs to vouch for its signed prekey:
/// `"srtc-e2e/signed-prekey/v1" ‖ identity key (32) ‖ prekey id (u32 BE) ‖ prekey (32)`. The
/// identity key is part of it, so a signed prekey cannot be re-attached to another identity.
#[must_use]
pub fn signed_prekey_message(identity: &X25519Key, prekey_id: u32, prekey: &X25519Key) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNED_PREKEY_CONTEXT.len() + 68);
    message.extend_from_slice(SIGNED_PREKEY_CONTEXT);
    message.extend_from_slice(identity.as_bytes());
    message.extend_from_slice(&prekey_id.to_be_bytes());
    message.extend_from_slice(prekey.as_bytes());
    message
}

/// A medium-term prekey, signed by the device's signing key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedPrekey {
    /// The client's id for it (so a recipient finds the matching private key).
    pub id: u32,
    /// The public key.
    pub key: X25519Key,
    /// The signature over [`signed_prekey_message`].
    pub signature: Signature,
}

/// A single-use prekey.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OneTimePrekey {
    /// The client's id for it (unique per device).
    pub id: u32,
    /// The public key.
    pub key: X25519Key,
}

/// What a device publishes with `PUT /keys/devices/:deviceId`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceKeysUpload {
    /// The device.
    pub device_id: DeviceId,
    /// Long-term X25519 identity key.
    pub identity_key: X25519Key,
    /// Long-term Ed25519 key that signs the signed prekey.
    pub signing_key: Ed25519Key,
    /// The current signed prekey (replaces the previous one).
    pub signed_prekey: SignedPrekey,
    /// One-time prekeys to append (at most [`DeviceKeysUpload::MAX_ONE_TIME_PREKEYS`]).
    pub one_time_prekeys: Vec<OneTimePrekey>,
}

impl DeviceKeysUpload {
    /// Most one-time prekeys in one upload.
    pub const MAX_ONE_TIME_PREKEYS: usize = 100;
}

/// A device's public keys as listed by `GET /keys/users/:userId` (no one-time prekeys, only
/// how many are left).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceKeys {
    /// The owner.
    pub user_id: UserId,
    /// The device.
    pub device_id: DeviceId,
    /// Long-term X25519 identity key.
    pub identity_key: X25519Key,
    /// Ed25519 signing key.
    pub signing_key: Ed25519Key,
    /// The current signed prekey.
    pub signed_prekey: SignedPrekey,
    /// Unclaimed one-time prekeys.
    pub one_time_prekeys_left: u64,
    /// First published.
    pub created_at: DateTime<Utc>,
    /// Last published.
    pub updated_at: DateTime<Utc>,
}

/// What one claim hands out for one device: its public keys and, while any are left, one
/// one-time prekey that nobody else will ever be given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedKeys {
    /// The owner.
    pub user_id: UserId,
    /// The device.
    pub device_id: DeviceId,
    /// Long-term X25519 identity key.
    pub identity_key: X25519Key,
    /// Ed25519 signing key.
    pub signing_key: Ed25519Key,
    /// The current signed prekey.
    pub signed_prekey: SignedPrekey,
    /// One one-time prekey, removed from the directory; `None` when the device has none left.
    pub one_time_prekey: Option<OneTimePrekey>,
}
