//! End-to-end encryption for encrypted DMs (`isEncrypted: true`), client side. The protocol,
//! its security properties and its limits are in `docs/e2e.md`; in short:
//!
//! * A [`Device`] holds long-term keys — an X25519 identity key and an Ed25519 signing key —,
//!   a signed X25519 prekey and one-time X25519 prekeys. It publishes the public halves with
//!   [`Device::publish`] (`PUT /keys/devices/:deviceId`).
//! * To write to a device it has no session with, a sender claims that device's bundle
//!   (`POST /keys/users/:userId/claim`), checks the signed prekey's Ed25519 signature, and runs
//!   an X3DH-style agreement: `DH1 = DH(IKa, SPKb)`, `DH2 = DH(EKa, IKb)`,
//!   `DH3 = DH(EKa, SPKb)`, and `DH4 = DH(EKa, OPKb)` when a one-time prekey was handed out;
//!   `HKDF-SHA256` turns them into a 32-byte session key (ring's HKDF).
//! * Each message key is `HKDF-Expand(session key, "srtc-e2e/message/v1" ‖ counter)`; the
//!   content is sealed with AES-256-GCM (ring) under a random 96-bit nonce, with the
//!   conversation id, both device ids and the header as associated data.
//! * [`Device::encrypt`] seals one plaintext for every given device (both users' devices, this
//!   one excepted) into the envelope `{v, senderDevice, recipients: {deviceId: {header,
//!   ciphertext}}}` that the server stores byte for byte; [`Device::decrypt`] opens this
//!   device's entry after checking that the header's identity key is the one the sender's
//!   device published.
//! * [`safety_number`] is a 60-digit fingerprint of both users' device keys, for people to
//!   compare out of band; it changes whenever either user adds or replaces a device.
//!
//! Forward secrecy is per session, not per message: there is no double ratchet. See
//! `docs/e2e.md` for exactly what that means.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chat_protocol::{ClaimedDeviceKeys, DeviceKeysBody, OneTimePrekeyBody, PublishDeviceKeysRequest, SignedPrekeyBody};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::digest::{SHA512, digest};
use ring::hkdf::{HKDF_SHA256, KeyType, Prk, Salt};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use crate::error::ClientError;
use crate::rest::ChatClient;

/// The envelope version this module writes and reads.
pub const ENVELOPE_VERSION: u64 = 1;

/// The largest envelope the server accepts (SPEC.md §6: 64 KiB).
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;

/// Domain separation of the signed prekey's signature (the server checks the same bytes).
const SIGNED_PREKEY_CONTEXT: &[u8] = b"srtc-e2e/signed-prekey/v1";
const X3DH_INFO: &[u8] = b"srtc-e2e/x3dh/v1";
const MESSAGE_INFO: &[u8] = b"srtc-e2e/message/v1";
const AAD_CONTEXT: &[u8] = b"srtc-e2e/aad/v1";
const HEADER_LEN: usize = 1 + 32 + 32 + 4 + 1 + 4 + 4 + 12;
const HEADER_VERSION: u8 = 1;
/// Leading bytes of a saved device state, also its AAD.
const SAVED_STATE_MAGIC: &[u8] = b"srtc-e2e/device-state/v1";
const NONCE_LEN: usize = 12;
/// Signal's iteration count for fingerprints.
const FINGERPRINT_ITERATIONS: usize = 5200;

/// What can go wrong on the E2E path.
#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    /// A published bundle is unusable: bad encoding, a small-order key, or a signed prekey
    /// whose signature does not verify.
    #[error("bad key bundle for device {device}: {why}")]
    BadBundle {
        /// The device.
        device: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The envelope or a header is not in this module's format.
    #[error("malformed envelope: {0}")]
    Malformed(&'static str),
    /// The envelope has no entry for this device.
    #[error("the envelope is not addressed to this device")]
    NotForThisDevice,
    /// The header's identity key is not the one the sender device published (or the sender
    /// device is unknown): the message is not provably from that device.
    #[error("the sender device's identity key does not match the directory")]
    UnknownSender,
    /// The header names a prekey this device does not have (spent, or never made here).
    #[error("unknown prekey")]
    UnknownPrekey,
    /// Authentication failed: the ciphertext, header or context was altered, or the keys
    /// do not match.
    #[error("decryption failed")]
    Decrypt,
    /// This message was already opened (same session and counter).
    #[error("replayed message")]
    Replay,
    /// A Diffie-Hellman gave an all-zero result (a small-order key slipped through).
    #[error("non-contributory key agreement")]
    NonContributory,
    /// The envelope would exceed the server's 64 KiB.
    #[error("the envelope would be {0} bytes, over 64 KiB")]
    TooLarge(usize),
    /// The system random source failed.
    #[error("the system random source failed")]
    Random,
    /// A call to the server failed.
    #[error(transparent)]
    Client(#[from] ClientError),
}

fn random<const N: usize>(rng: &SystemRandom) -> Result<Zeroizing<[u8; N]>, E2eError> {
    let mut bytes = Zeroizing::new([0u8; N]);
    rng.fill(bytes.as_mut()).map_err(|_| E2eError::Random)?;
    Ok(bytes)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64<const N: usize>(device: &str, raw: &str) -> Result<[u8; N], E2eError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| E2eError::BadBundle { device: device.to_owned(), why: "not base64url" })?;
    bytes.try_into().map_err(|_| E2eError::BadBundle { device: device.to_owned(), why: "wrong key length" })
}

fn signed_prekey_message(identity: &[u8; 32], id: u32, prekey: &[u8; 32]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNED_PREKEY_CONTEXT.len() + 68);
    message.extend_from_slice(SIGNED_PREKEY_CONTEXT);
    message.extend_from_slice(identity);
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(prekey);
    message
}

/// One device's public keys as a sender needs them: from `GET /keys/users/:userId` (no
/// one-time prekey) or from a claim (with one, while any are left). Constructing it checks the
/// signed prekey's signature: the client does not take the server's word for it.
#[derive(Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The owner.
    pub user_id: Uuid,
    /// The device.
    pub device_id: String,
    /// X25519 identity key.
    pub identity_key: [u8; 32],
    /// Ed25519 signing key.
    pub signing_key: [u8; 32],
    /// Signed prekey id.
    pub signed_prekey_id: u32,
    /// Signed prekey.
    pub signed_prekey: [u8; 32],
    /// A claimed one-time prekey (id, key).
    pub one_time_prekey: Option<(u32, [u8; 32])>,
}

impl fmt::Debug for Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bundle")
            .field("user_id", &self.user_id)
            .field("device_id", &self.device_id)
            .field("identity_key", &b64(&self.identity_key))
            .field("one_time_prekey", &self.one_time_prekey.map(|(id, _)| id))
            .finish_non_exhaustive()
    }
}

impl Bundle {
    fn checked(
        user_id: Uuid,
        device_id: &str,
        identity_key: &str,
        signing_key: &str,
        spk: &SignedPrekeyBody,
        one_time: Option<&OneTimePrekeyBody>,
    ) -> Result<Self, E2eError> {
        let bad = |why| E2eError::BadBundle { device: device_id.to_owned(), why };
        let identity_key: [u8; 32] = unb64(device_id, identity_key)?;
        let signing_key: [u8; 32] = unb64(device_id, signing_key)?;
        let signed_prekey: [u8; 32] = unb64(device_id, &spk.public_key)?;
        let signature: [u8; 64] = unb64(device_id, &spk.signature)?;
        let verifying = VerifyingKey::from_bytes(&signing_key).map_err(|_| bad("signing key is not a valid point"))?;
        verifying
            .verify_strict(
                &signed_prekey_message(&identity_key, spk.key_id, &signed_prekey),
                &ed25519_dalek::Signature::from_bytes(&signature),
            )
            .map_err(|_| bad("signed prekey signature does not verify"))?;
        let one_time_prekey = match one_time {
            Some(k) => Some((k.key_id, unb64(device_id, &k.public_key)?)),
            None => None,
        };
        Ok(Self {
            user_id,
            device_id: device_id.to_owned(),
            identity_key,
            signing_key,
            signed_prekey_id: spk.key_id,
            signed_prekey,
            one_time_prekey,
        })
    }

    /// From a listing (`GET /keys/users/:userId`).
    ///
    /// # Errors
    /// [`E2eError::BadBundle`] for bad encodings or a signature that does not verify.
    pub fn from_listed(keys: &DeviceKeysBody) -> Result<Self, E2eError> {
        Self::checked(keys.user_id, &keys.device_id, &keys.identity_key, &keys.signing_key, &keys.signed_prekey, None)
    }

    /// From a claim (`POST /keys/users/:userId/claim`).
    ///
    /// # Errors
    /// [`E2eError::BadBundle`] for bad encodings or a signature that does not verify.
    pub fn from_claimed(keys: &ClaimedDeviceKeys) -> Result<Self, E2eError> {
        Self::checked(
            keys.user_id,
            &keys.device_id,
            &keys.identity_key,
            &keys.signing_key,
            &keys.signed_prekey,
            keys.one_time_prekey.as_ref(),
        )
    }
}

/// The fixed-layout header of one recipient's entry:
/// `version(1) ‖ sender identity(32) ‖ ephemeral(32) ‖ signed prekey id(4) ‖ has one-time(1) ‖
/// one-time id(4) ‖ counter(4) ‖ nonce(12)`, base64url in the envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    identity: [u8; 32],
    ephemeral: [u8; 32],
    signed_prekey_id: u32,
    one_time_prekey_id: Option<u32>,
    counter: u32,
    nonce: [u8; 12],
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = HEADER_VERSION;
        out[1..33].copy_from_slice(&self.identity);
        out[33..65].copy_from_slice(&self.ephemeral);
        out[65..69].copy_from_slice(&self.signed_prekey_id.to_be_bytes());
        out[69] = u8::from(self.one_time_prekey_id.is_some());
        out[70..74].copy_from_slice(&self.one_time_prekey_id.unwrap_or(0).to_be_bytes());
        out[74..78].copy_from_slice(&self.counter.to_be_bytes());
        out[78..90].copy_from_slice(&self.nonce);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, E2eError> {
        let bytes: &[u8; HEADER_LEN] = bytes.try_into().map_err(|_| E2eError::Malformed("header length"))?;
        if bytes[0] != HEADER_VERSION {
            return Err(E2eError::Malformed("header version"));
        }
        let u32_at = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let mut header = Self {
            identity: [0; 32],
            ephemeral: [0; 32],
            signed_prekey_id: u32_at(65),
            one_time_prekey_id: match bytes[69] {
                0 => None,
                1 => Some(u32_at(70)),
                _ => return Err(E2eError::Malformed("one-time prekey flag")),
            },
            counter: u32_at(74),
            nonce: [0; 12],
        };
        header.identity.copy_from_slice(&bytes[1..33]);
        header.ephemeral.copy_from_slice(&bytes[33..65]);
        header.nonce.copy_from_slice(&bytes[78..90]);
        Ok(header)
    }
}

/// The envelope SPEC.md §4 names, as this module writes it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Envelope {
    v: u64,
    sender_device: String,
    recipients: BTreeMap<String, Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    header: String,
    ciphertext: String,
}

/// A session this device opened towards another device.
struct Outbound {
    remote_identity: [u8; 32],
    root: Zeroizing<[u8; 32]>,
    ephemeral: [u8; 32],
    signed_prekey_id: u32,
    one_time_prekey_id: Option<u32>,
    counter: u32,
}

/// A session another device opened towards this one.
struct Inbound {
    root: Zeroizing<[u8; 32]>,
    seen: HashSet<u32>,
}

/// A device's state as [`Device::save`] seals it: every secret and session, base64url.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedDevice {
    id: String,
    identity: String,
    signing: String,
    signed_prekeys: BTreeMap<u32, String>,
    current_signed_prekey: u32,
    one_time_prekeys: BTreeMap<u32, String>,
    next_one_time_id: u32,
    outbound: BTreeMap<String, SavedOutbound>,
    inbound: Vec<SavedInbound>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedOutbound {
    remote_identity: String,
    root: String,
    ephemeral: String,
    signed_prekey_id: u32,
    one_time_prekey_id: Option<u32>,
    counter: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedInbound {
    sender_device: String,
    ephemeral: String,
    root: String,
    seen: Vec<u32>,
}

impl Drop for SavedDevice {
    /// The encoded secrets are wiped, like the keys they encode.
    fn drop(&mut self) {
        self.identity.zeroize();
        self.signing.zeroize();
        self.signed_prekeys.values_mut().chain(self.one_time_prekeys.values_mut()).for_each(Zeroize::zeroize);
        self.outbound.values_mut().for_each(|s| s.root.zeroize());
        self.inbound.iter_mut().for_each(|s| s.root.zeroize());
    }
}

fn saved_key<const N: usize>(raw: &str) -> Result<Zeroizing<[u8; N]>, E2eError> {
    let bytes = Zeroizing::new(URL_SAFE_NO_PAD.decode(raw).map_err(|_| E2eError::Malformed("saved state"))?);
    let mut out = Zeroizing::new([0u8; N]);
    if bytes.len() != N {
        return Err(E2eError::Malformed("saved state"));
    }
    out.copy_from_slice(&bytes);
    Ok(out)
}

fn state_key(storage_key: &[u8; 32]) -> Result<LessSafeKey, E2eError> {
    let unbound = UnboundKey::new(&AES_256_GCM, storage_key).map_err(|_| E2eError::Decrypt)?;
    Ok(LessSafeKey::new(unbound))
}

/// HKDF output length for ring.
struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// `HKDF-SHA256(salt = 0³², ikm = 0xFF³² ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4], info = "srtc-e2e/x3dh/v1" ‖
/// IK(initiator) ‖ IK(responder))` — the 0xFF prefix as in X3DH, so the input is never a
/// valid X25519 output alone.
fn x3dh_root(dhs: &[[u8; 32]], initiator: &[u8; 32], responder: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, E2eError> {
    let mut ikm = Zeroizing::new(Vec::with_capacity(32 * (dhs.len() + 1)));
    ikm.extend_from_slice(&[0xff; 32]);
    for dh in dhs {
        ikm.extend_from_slice(dh);
    }
    let prk = Salt::new(HKDF_SHA256, &[0; 32]).extract(&ikm);
    let info: [&[u8]; 3] = [X3DH_INFO, initiator, responder];
    let mut root = Zeroizing::new([0u8; 32]);
    prk.expand(&info, Len(32)).and_then(|okm| okm.fill(root.as_mut())).map_err(|_| E2eError::Decrypt)?;
    Ok(root)
}

fn message_key(root: &[u8; 32], counter: u32) -> Result<LessSafeKey, E2eError> {
    let prk = Prk::new_less_safe(HKDF_SHA256, root);
    let counter = counter.to_be_bytes();
    let info: [&[u8]; 2] = [MESSAGE_INFO, &counter];
    let mut key = Zeroizing::new([0u8; 32]);
    prk.expand(&info, Len(32)).and_then(|okm| okm.fill(key.as_mut())).map_err(|_| E2eError::Decrypt)?;
    let unbound = UnboundKey::new(&AES_256_GCM, key.as_ref()).map_err(|_| E2eError::Decrypt)?;
    Ok(LessSafeKey::new(unbound))
}

fn aad(conversation: Uuid, sender: &str, recipient: &str, header: &[u8]) -> Result<Vec<u8>, E2eError> {
    let mut aad = Vec::with_capacity(AAD_CONTEXT.len() + 16 + 4 + sender.len() + recipient.len() + header.len());
    aad.extend_from_slice(AAD_CONTEXT);
    aad.extend_from_slice(conversation.as_bytes());
    for device in [sender, recipient] {
        let len = u16::try_from(device.len()).map_err(|_| E2eError::Malformed("device id too long"))?;
        aad.extend_from_slice(&len.to_be_bytes());
        aad.extend_from_slice(device.as_bytes());
    }
    aad.extend_from_slice(header);
    Ok(aad)
}

fn dh(secret: &StaticSecret, public: &[u8; 32]) -> Result<[u8; 32], E2eError> {
    let shared = secret.diffie_hellman(&PublicKey::from(*public));
    if shared.was_contributory() { Ok(shared.to_bytes()) } else { Err(E2eError::NonContributory) }
}

/// One device's secrets and sessions. Keep it for as long as the device lives (its one-time
/// prekeys and sessions are what later messages need): [`Device::save`] seals the whole state
/// under a 32-byte storage key the application keeps in the platform's key store, and
/// [`Device::restore`] opens it again.
pub struct Device {
    id: String,
    identity: StaticSecret,
    signing: SigningKey,
    signed_prekeys: BTreeMap<u32, StaticSecret>,
    current_signed_prekey: u32,
    one_time_prekeys: BTreeMap<u32, StaticSecret>,
    next_one_time_id: u32,
    outbound: HashMap<String, Outbound>,
    inbound: HashMap<(String, [u8; 32]), Inbound>,
    rng: SystemRandom,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id)
            .field("identity_key", &b64(&self.identity_key()))
            .field("one_time_prekeys", &self.one_time_prekeys.len())
            .field("sessions", &(self.outbound.len() + self.inbound.len()))
            .finish_non_exhaustive()
    }
}

impl Device {
    /// A new device with fresh identity, signing and signed prekeys (no one-time prekeys yet:
    /// [`Device::publish_request`] makes them). `device_id` should be random (a UUID): it is
    /// global on the server and belongs to whoever publishes it first.
    ///
    /// # Errors
    /// [`E2eError::Random`] when the system random source fails.
    pub fn generate(device_id: impl Into<String>) -> Result<Self, E2eError> {
        let rng = SystemRandom::new();
        let identity = StaticSecret::from(*random::<32>(&rng)?);
        let signing = SigningKey::from_bytes(&*random::<32>(&rng)?);
        let mut signed_prekeys = BTreeMap::new();
        signed_prekeys.insert(1, StaticSecret::from(*random::<32>(&rng)?));
        Ok(Self {
            id: device_id.into(),
            identity,
            signing,
            signed_prekeys,
            current_signed_prekey: 1,
            one_time_prekeys: BTreeMap::new(),
            next_one_time_id: 1,
            outbound: HashMap::new(),
            inbound: HashMap::new(),
            rng,
        })
    }

    /// The whole state — long-term keys, prekeys, sessions and replay counters — sealed with
    /// AES-256-GCM under `storage_key` (random nonce; the format tag is the AAD), for the
    /// application to write to disk. Save after every [`Device::encrypt`], [`Device::decrypt`]
    /// and publish: an older copy would re-use message counters and forget spent prekeys.
    ///
    /// # Errors
    /// [`E2eError::Random`] when the system random source fails.
    pub fn save(&self, storage_key: &[u8; 32]) -> Result<Vec<u8>, E2eError> {
        let saved = SavedDevice {
            id: self.id.clone(),
            identity: b64(self.identity.as_bytes()),
            signing: b64(self.signing.as_bytes()),
            signed_prekeys: self.signed_prekeys.iter().map(|(id, k)| (*id, b64(k.as_bytes()))).collect(),
            current_signed_prekey: self.current_signed_prekey,
            one_time_prekeys: self.one_time_prekeys.iter().map(|(id, k)| (*id, b64(k.as_bytes()))).collect(),
            next_one_time_id: self.next_one_time_id,
            outbound: self
                .outbound
                .iter()
                .map(|(device, s)| {
                    let session = SavedOutbound {
                        remote_identity: b64(&s.remote_identity),
                        root: b64(s.root.as_ref()),
                        ephemeral: b64(&s.ephemeral),
                        signed_prekey_id: s.signed_prekey_id,
                        one_time_prekey_id: s.one_time_prekey_id,
                        counter: s.counter,
                    };
                    (device.clone(), session)
                })
                .collect(),
            inbound: self
                .inbound
                .iter()
                .map(|((device, ephemeral), s)| {
                    let mut seen: Vec<u32> = s.seen.iter().copied().collect();
                    seen.sort_unstable();
                    SavedInbound {
                        sender_device: device.clone(),
                        ephemeral: b64(ephemeral),
                        root: b64(s.root.as_ref()),
                        seen,
                    }
                })
                .collect(),
        };
        let mut sealed = Zeroizing::new(serde_json::to_vec(&saved).map_err(|_| E2eError::Malformed("saved state"))?);
        let nonce = random::<NONCE_LEN>(&self.rng)?;
        state_key(storage_key)?
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(SAVED_STATE_MAGIC), &mut *sealed)
            .map_err(|_| E2eError::Decrypt)?;
        let mut out = Vec::with_capacity(SAVED_STATE_MAGIC.len() + NONCE_LEN + sealed.len());
        out.extend_from_slice(SAVED_STATE_MAGIC);
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a state [`Device::save`] sealed under the same `storage_key`.
    ///
    /// # Errors
    /// [`E2eError::Decrypt`] for another key or altered bytes; [`E2eError::Malformed`] when it
    /// is not a saved state.
    pub fn restore(saved: &[u8], storage_key: &[u8; 32]) -> Result<Self, E2eError> {
        let rest = saved.strip_prefix(SAVED_STATE_MAGIC).ok_or(E2eError::Malformed("not a saved device state"))?;
        if rest.len() < NONCE_LEN {
            return Err(E2eError::Malformed("not a saved device state"));
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| E2eError::Malformed("saved state"))?;
        let mut buffer = Zeroizing::new(sealed.to_vec());
        let plain = state_key(storage_key)?
            .open_in_place(nonce, Aad::from(SAVED_STATE_MAGIC), &mut buffer)
            .map_err(|_| E2eError::Decrypt)?;
        let saved: SavedDevice = serde_json::from_slice(plain).map_err(|_| E2eError::Malformed("saved state"))?;
        let secret = |raw: &str| saved_key::<32>(raw).map(|k| StaticSecret::from(*k));
        let mut outbound = HashMap::with_capacity(saved.outbound.len());
        for (device, s) in &saved.outbound {
            let session = Outbound {
                remote_identity: *saved_key::<32>(&s.remote_identity)?,
                root: saved_key::<32>(&s.root)?,
                ephemeral: *saved_key::<32>(&s.ephemeral)?,
                signed_prekey_id: s.signed_prekey_id,
                one_time_prekey_id: s.one_time_prekey_id,
                counter: s.counter,
            };
            outbound.insert(device.clone(), session);
        }
        let mut inbound = HashMap::with_capacity(saved.inbound.len());
        for s in &saved.inbound {
            let session = Inbound { root: saved_key::<32>(&s.root)?, seen: s.seen.iter().copied().collect() };
            inbound.insert((s.sender_device.clone(), *saved_key::<32>(&s.ephemeral)?), session);
        }
        Ok(Self {
            id: saved.id.clone(),
            identity: secret(&saved.identity)?,
            signing: SigningKey::from_bytes(&*saved_key::<32>(&saved.signing)?),
            signed_prekeys: saved
                .signed_prekeys
                .iter()
                .map(|(id, k)| Ok((*id, secret(k)?)))
                .collect::<Result<_, E2eError>>()?,
            current_signed_prekey: saved.current_signed_prekey,
            one_time_prekeys: saved
                .one_time_prekeys
                .iter()
                .map(|(id, k)| Ok((*id, secret(k)?)))
                .collect::<Result<_, E2eError>>()?,
            next_one_time_id: saved.next_one_time_id,
            outbound,
            inbound,
            rng: SystemRandom::new(),
        })
    }

    /// The device id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The public X25519 identity key.
    #[must_use]
    pub fn identity_key(&self) -> [u8; 32] {
        PublicKey::from(&self.identity).to_bytes()
    }

    /// One-time prekeys made and not yet used by an incoming session.
    #[must_use]
    pub fn unused_one_time_prekeys(&self) -> usize {
        self.one_time_prekeys.len()
    }

    /// Makes a new signed prekey the current one (publish afterwards). Old signed prekeys are
    /// kept, so sessions other devices opened with them still work.
    ///
    /// # Errors
    /// [`E2eError::Random`] when the system random source fails.
    pub fn rotate_signed_prekey(&mut self) -> Result<(), E2eError> {
        let id = self.current_signed_prekey.wrapping_add(1);
        self.signed_prekeys.insert(id, StaticSecret::from(*random::<32>(&self.rng)?));
        self.current_signed_prekey = id;
        Ok(())
    }

    /// The body of `PUT /keys/devices/:deviceId`: identity, signing key, the current signed
    /// prekey with its signature, and `one_time` NEW one-time prekeys (kept here).
    ///
    /// # Errors
    /// [`E2eError::Random`] when the system random source fails.
    pub fn publish_request(&mut self, one_time: u32) -> Result<PublishDeviceKeysRequest, E2eError> {
        let identity = self.identity_key();
        let spk_id = self.current_signed_prekey;
        let spk =
            self.signed_prekeys.get(&spk_id).map(|s| PublicKey::from(s).to_bytes()).ok_or(E2eError::UnknownPrekey)?;
        let signature = self.signing.sign(&signed_prekey_message(&identity, spk_id, &spk));
        let mut one_time_prekeys = Vec::with_capacity(one_time as usize);
        for _ in 0..one_time {
            let id = self.next_one_time_id;
            self.next_one_time_id = self.next_one_time_id.wrapping_add(1);
            let secret = StaticSecret::from(*random::<32>(&self.rng)?);
            one_time_prekeys
                .push(OneTimePrekeyBody { key_id: id, public_key: b64(PublicKey::from(&secret).as_bytes()) });
            self.one_time_prekeys.insert(id, secret);
        }
        Ok(PublishDeviceKeysRequest {
            identity_key: b64(&identity),
            signing_key: b64(self.signing.verifying_key().as_bytes()),
            signed_prekey: SignedPrekeyBody {
                key_id: spk_id,
                public_key: b64(&spk),
                signature: b64(&signature.to_bytes()),
            },
            one_time_prekeys,
        })
    }

    /// Publishes this device with `one_time` new one-time prekeys.
    ///
    /// # Errors
    /// [`E2eError::Client`] when the server refuses (409: the id is someone else's).
    pub async fn publish(&mut self, client: &ChatClient, one_time: u32) -> Result<DeviceKeysBody, E2eError> {
        let body = self.publish_request(one_time)?;
        Ok(client.publish_device_keys(&self.id, &body).await?)
    }

    /// Whether this device already has a session with `bundle`'s device under its current
    /// identity key (then no claim is needed to write to it).
    #[must_use]
    pub fn has_session_with(&self, bundle: &Bundle) -> bool {
        self.outbound.get(&bundle.device_id).is_some_and(|s| s.remote_identity == bundle.identity_key)
    }

    fn open_session(&mut self, bundle: &Bundle) -> Result<(), E2eError> {
        let ephemeral = StaticSecret::from(*random::<32>(&self.rng)?);
        let mut dhs = vec![
            dh(&self.identity, &bundle.signed_prekey)?,
            dh(&ephemeral, &bundle.identity_key)?,
            dh(&ephemeral, &bundle.signed_prekey)?,
        ];
        if let Some((_, one_time)) = bundle.one_time_prekey {
            dhs.push(dh(&ephemeral, &one_time)?);
        }
        let root = x3dh_root(&dhs, &self.identity_key(), &bundle.identity_key)?;
        dhs.iter_mut().for_each(|d| *d = [0; 32]);
        self.outbound.insert(
            bundle.device_id.clone(),
            Outbound {
                remote_identity: bundle.identity_key,
                root,
                ephemeral: PublicKey::from(&ephemeral).to_bytes(),
                signed_prekey_id: bundle.signed_prekey_id,
                one_time_prekey_id: bundle.one_time_prekey.map(|(id, _)| id),
                counter: 0,
            },
        );
        Ok(())
    }

    /// Encrypts `plaintext` for every device in `recipients` except this one, for
    /// `conversation`, and returns the envelope as the JSON string to send as `content`.
    /// Devices without a session (or whose identity key changed) get one from their bundle,
    /// with its one-time prekey when it carries one.
    ///
    /// # Errors
    /// [`E2eError::TooLarge`] past 64 KiB; [`E2eError::NonContributory`] for a bad key;
    /// [`E2eError::Malformed`] when no device is left to write to.
    pub fn encrypt(&mut self, conversation: Uuid, plaintext: &[u8], recipients: &[Bundle]) -> Result<String, E2eError> {
        let mut entries = BTreeMap::new();
        let identity = self.identity_key();
        for bundle in recipients {
            if bundle.device_id == self.id {
                continue;
            }
            if !self.has_session_with(bundle) {
                self.open_session(bundle)?;
            }
            let nonce = *random::<12>(&self.rng)?;
            let session = self.outbound.get_mut(&bundle.device_id).ok_or(E2eError::UnknownPrekey)?;
            session.counter = session.counter.checked_add(1).ok_or(E2eError::Malformed("session exhausted"))?;
            let header = Header {
                identity,
                ephemeral: session.ephemeral,
                signed_prekey_id: session.signed_prekey_id,
                one_time_prekey_id: session.one_time_prekey_id,
                counter: session.counter,
                nonce,
            }
            .encode();
            let key = message_key(&session.root, session.counter)?;
            let mut sealed = plaintext.to_vec();
            key.seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(conversation, &self.id, &bundle.device_id, &header)?),
                &mut sealed,
            )
            .map_err(|_| E2eError::Decrypt)?;
            entries.insert(bundle.device_id.clone(), Entry { header: b64(&header), ciphertext: b64(&sealed) });
        }
        if entries.is_empty() {
            return Err(E2eError::Malformed("no recipient device"));
        }
        let envelope = Envelope { v: ENVELOPE_VERSION, sender_device: self.id.clone(), recipients: entries };
        let json = serde_json::to_string(&envelope).map_err(|_| E2eError::Malformed("envelope serialisation"))?;
        if json.len() > MAX_ENVELOPE_BYTES {
            return Err(E2eError::TooLarge(json.len()));
        }
        Ok(json)
    }

    /// Opens this device's entry of `envelope` (the message's `content`) in `conversation`.
    /// `sender_devices` are the sender user's devices as the directory lists them: the header's
    /// identity key must be the one `senderDevice` published.
    ///
    /// # Errors
    /// [`E2eError::NotForThisDevice`], [`E2eError::UnknownSender`], [`E2eError::UnknownPrekey`],
    /// [`E2eError::Replay`], [`E2eError::Decrypt`] or [`E2eError::Malformed`].
    pub fn decrypt(
        &mut self,
        conversation: Uuid,
        envelope: &str,
        sender_devices: &[Bundle],
    ) -> Result<Vec<u8>, E2eError> {
        let envelope: Envelope = serde_json::from_str(envelope).map_err(|_| E2eError::Malformed("not an envelope"))?;
        if envelope.v != ENVELOPE_VERSION {
            return Err(E2eError::Malformed("unknown envelope version"));
        }
        let entry = envelope.recipients.get(&self.id).ok_or(E2eError::NotForThisDevice)?;
        let header_bytes = URL_SAFE_NO_PAD.decode(&entry.header).map_err(|_| E2eError::Malformed("header encoding"))?;
        let header = Header::decode(&header_bytes)?;
        let sender = &envelope.sender_device;
        if !sender_devices.iter().any(|b| &b.device_id == sender && b.identity_key == header.identity) {
            return Err(E2eError::UnknownSender);
        }
        let mut sealed = URL_SAFE_NO_PAD.decode(&entry.ciphertext).map_err(|_| E2eError::Malformed("ciphertext"))?;
        let session_key = (sender.clone(), header.ephemeral);
        let fresh_root = match self.inbound.get(&session_key) {
            Some(session) if session.seen.contains(&header.counter) => return Err(E2eError::Replay),
            Some(_) => None,
            None => Some(self.accept_session(&header)?),
        };
        let root: &[u8; 32] = match (&fresh_root, self.inbound.get(&session_key)) {
            (Some(root), _) => root,
            (None, Some(session)) => &session.root,
            (None, None) => return Err(E2eError::UnknownPrekey),
        };
        let key = message_key(root, header.counter)?;
        let plaintext = key
            .open_in_place(
                Nonce::assume_unique_for_key(header.nonce),
                Aad::from(aad(conversation, sender, &self.id, &header_bytes)?),
                &mut sealed,
            )
            .map_err(|_| E2eError::Decrypt)?
            .to_vec();
        // Only an authenticated message changes state: it spends the one-time prekey and
        // records the session and the counter.
        if let Some(root) = fresh_root {
            if let Some(id) = header.one_time_prekey_id {
                self.one_time_prekeys.remove(&id);
            }
            self.inbound.insert(session_key.clone(), Inbound { root, seen: HashSet::new() });
        }
        if let Some(session) = self.inbound.get_mut(&session_key) {
            session.seen.insert(header.counter);
        }
        Ok(plaintext)
    }

    /// The responder's half of the agreement for a header that opens a new session.
    fn accept_session(&self, header: &Header) -> Result<Zeroizing<[u8; 32]>, E2eError> {
        let spk = self.signed_prekeys.get(&header.signed_prekey_id).ok_or(E2eError::UnknownPrekey)?;
        let mut dhs =
            vec![dh(spk, &header.identity)?, dh(&self.identity, &header.ephemeral)?, dh(spk, &header.ephemeral)?];
        if let Some(id) = header.one_time_prekey_id {
            let one_time = self.one_time_prekeys.get(&id).ok_or(E2eError::UnknownPrekey)?;
            dhs.push(dh(one_time, &header.ephemeral)?);
        }
        let root = x3dh_root(&dhs, &header.identity, &self.identity_key());
        dhs.iter_mut().for_each(|d| *d = [0; 32]);
        root
    }

    /// Encrypts for every device of `users` (pass both members of the DM; this device is
    /// skipped): lists each user's devices, claims a user's bundles when one of their devices
    /// has no session yet, verifies every signed prekey, and sends nothing — the returned
    /// string is the `content` to post.
    ///
    /// # Errors
    /// [`E2eError::Client`] when listing or claiming fails, or any error of
    /// [`Device::encrypt`].
    pub async fn encrypt_for(
        &mut self,
        client: &ChatClient,
        conversation: Uuid,
        plaintext: &[u8],
        users: &[Uuid],
    ) -> Result<String, E2eError> {
        let mut bundles = Vec::new();
        for &user in users {
            let listed = client.device_keys(user).await?.items;
            let listed = listed.iter().map(Bundle::from_listed).collect::<Result<Vec<_>, _>>()?;
            let needs_claim = listed.iter().any(|b| b.device_id != self.id && !self.has_session_with(b));
            if needs_claim {
                let claimed = client.claim_prekeys(user).await?.items;
                bundles.extend(claimed.iter().map(Bundle::from_claimed).collect::<Result<Vec<_>, _>>()?);
            } else {
                bundles.extend(listed);
            }
        }
        self.encrypt(conversation, plaintext, &bundles)
    }

    /// Decrypts a message `sender` sent in `conversation`, checking its sender device against
    /// `sender`'s devices in the directory.
    ///
    /// # Errors
    /// [`E2eError::Client`] when the listing fails, or any error of [`Device::decrypt`].
    pub async fn decrypt_from(
        &mut self,
        client: &ChatClient,
        conversation: Uuid,
        sender: Uuid,
        envelope: &str,
    ) -> Result<Vec<u8>, E2eError> {
        let listed = client.device_keys(sender).await?.items;
        let devices = listed.iter().map(Bundle::from_listed).collect::<Result<Vec<_>, _>>()?;
        self.decrypt(conversation, envelope, &devices)
    }
}

/// One user's half of a safety number: 30 digits from `SHA-512` iterated 5200 times over a
/// version, the user's id and every device's (id, identity key, signing key), devices sorted
/// by id.
fn fingerprint(user: Uuid, devices: &[&Bundle]) -> String {
    let mut sorted: Vec<&&Bundle> = devices.iter().collect();
    sorted.sort_by(|a, b| a.device_id.cmp(&b.device_id));
    let mut keys = Vec::new();
    for device in sorted {
        keys.extend_from_slice(&u32::try_from(device.device_id.len()).unwrap_or(u32::MAX).to_be_bytes());
        keys.extend_from_slice(device.device_id.as_bytes());
        keys.extend_from_slice(&device.identity_key);
        keys.extend_from_slice(&device.signing_key);
    }
    let mut input = Vec::with_capacity(2 + 16 + keys.len());
    input.extend_from_slice(&[0, 1]);
    input.extend_from_slice(user.as_bytes());
    input.extend_from_slice(&keys);
    let mut hash = digest(&SHA512, &input);
    for _ in 1..FINGERPRINT_ITERATIONS {
        let mut next = Vec::with_capacity(64 + keys.len());
        next.extend_from_slice(hash.as_ref());
        next.extend_from_slice(&keys);
        hash = digest(&SHA512, &next);
    }
    hash.as_ref()[..30]
        .chunks(5)
        .map(|chunk| {
            let value = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            format!("{:05}", value % 100_000)
        })
        .collect()
}

/// The safety number of two users: 60 digits (show them as 12 groups of 5) that both see
/// identically whichever of them computes it — the two 30-digit halves are ordered, not
/// assigned. It covers every device of both users, so it changes when either adds, removes
/// or replaces a device. `devices` are both users' bundles as the directory lists them;
/// each is counted for the user it belongs to.
#[must_use]
pub fn safety_number(user_a: Uuid, user_b: Uuid, devices: &[Bundle]) -> String {
    let of = |user: Uuid| devices.iter().filter(|d| d.user_id == user).collect::<Vec<_>>();
    let mut halves = [fingerprint(user_a, &of(user_a)), fingerprint(user_b, &of(user_b))];
    halves.sort();
    halves.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_of(device: &mut Device, user: Uuid, one_time: u32) -> Vec<Bundle> {
        let request = device.publish_request(one_time).unwrap();
        let listed = |one: Option<&OneTimePrekeyBody>| ClaimedDeviceKeys {
            user_id: user,
            device_id: device.id().to_owned(),
            identity_key: request.identity_key.clone(),
            signing_key: request.signing_key.clone(),
            signed_prekey: request.signed_prekey.clone(),
            one_time_prekey: one.cloned(),
        };
        if request.one_time_prekeys.is_empty() {
            vec![Bundle::from_claimed(&listed(None)).unwrap()]
        } else {
            request.one_time_prekeys.iter().map(|k| Bundle::from_claimed(&listed(Some(k))).unwrap()).collect()
        }
    }

    #[test]
    fn a_message_opens_on_each_recipient_device_and_nowhere_else() {
        let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let mut a1 = Device::generate("a1").unwrap();
        let mut a2 = Device::generate("a2").unwrap();
        let mut b1 = Device::generate("b1").unwrap();
        let a2_bundle = bundle_of(&mut a2, alice, 1);
        let b1_bundle = bundle_of(&mut b1, bob, 1);
        let a1_bundle = bundle_of(&mut a1, alice, 0);
        let conversation = Uuid::new_v4();
        let recipients = [a1_bundle.clone(), a2_bundle, b1_bundle].concat();
        let envelope = a1.encrypt(conversation, b"hello", &recipients).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&envelope).unwrap();
        assert_eq!(parsed["v"], 1);
        assert_eq!(parsed["senderDevice"], "a1");
        let addressed: Vec<&String> = parsed["recipients"].as_object().unwrap().keys().collect();
        assert_eq!(addressed, ["a2", "b1"], "every device but the sender's own");
        assert!(!envelope.contains("hello"));

        assert_eq!(b1.decrypt(conversation, &envelope, &a1_bundle).unwrap(), b"hello");
        assert_eq!(a2.decrypt(conversation, &envelope, &a1_bundle).unwrap(), b"hello");
        assert_eq!(b1.unused_one_time_prekeys(), 0, "the one-time prekey is spent");
        assert!(matches!(a1.decrypt(conversation, &envelope, &a1_bundle), Err(E2eError::NotForThisDevice)));
        // Replayed, moved to another conversation, or claimed by another identity: refused.
        assert!(matches!(b1.decrypt(conversation, &envelope, &a1_bundle), Err(E2eError::Replay)));
        let mut c1 = Device::generate("a1").unwrap();
        let impostor = bundle_of(&mut c1, alice, 0);
        assert!(matches!(a2.decrypt(Uuid::new_v4(), &envelope, &a1_bundle), Err(E2eError::Replay | E2eError::Decrypt)));
        assert!(matches!(a2.decrypt(conversation, &envelope, &impostor), Err(E2eError::UnknownSender)));

        // The session is reused: the next message needs no new prekey.
        let second = a1.encrypt(conversation, b"again", &recipients).unwrap();
        assert_eq!(b1.decrypt(conversation, &second, &a1_bundle).unwrap(), b"again");
    }

    #[test]
    fn a_tampered_ciphertext_or_another_conversation_fails_authentication() {
        let bob = Uuid::new_v4();
        let mut a1 = Device::generate("a1").unwrap();
        let mut b1 = Device::generate("b1").unwrap();
        let a1_bundle = bundle_of(&mut a1, Uuid::new_v4(), 0);
        let b1_bundle = bundle_of(&mut b1, bob, 2);
        let conversation = Uuid::new_v4();
        let envelope = a1.encrypt(conversation, b"secret", &b1_bundle[..1]).unwrap();
        let mut value: serde_json::Value = serde_json::from_str(&envelope).unwrap();
        let ct = value["recipients"]["b1"]["ciphertext"].as_str().unwrap().to_owned();
        let mut bytes = URL_SAFE_NO_PAD.decode(&ct).unwrap();
        bytes[0] ^= 1;
        value["recipients"]["b1"]["ciphertext"] = serde_json::Value::String(b64(&bytes));
        let tampered = value.to_string();
        assert!(matches!(b1.decrypt(conversation, &tampered, &a1_bundle), Err(E2eError::Decrypt)));
        assert!(matches!(b1.decrypt(Uuid::new_v4(), &envelope, &a1_bundle), Err(E2eError::Decrypt)));
        // A failed attempt spends nothing: the genuine message still opens.
        assert_eq!(b1.unused_one_time_prekeys(), 2);
        assert_eq!(b1.decrypt(conversation, &envelope, &a1_bundle).unwrap(), b"secret");
        assert_eq!(b1.unused_one_time_prekeys(), 1);
    }

    #[test]
    fn a_bundle_with_a_bad_signature_or_a_small_order_key_is_refused() {
        let mut b1 = Device::generate("b1").unwrap();
        let request = b1.publish_request(0).unwrap();
        let mut keys = ClaimedDeviceKeys {
            user_id: Uuid::new_v4(),
            device_id: "b1".to_owned(),
            identity_key: request.identity_key.clone(),
            signing_key: request.signing_key.clone(),
            signed_prekey: request.signed_prekey.clone(),
            one_time_prekey: None,
        };
        assert!(Bundle::from_claimed(&keys).is_ok());
        keys.identity_key = b64(&[9; 32]);
        assert!(matches!(Bundle::from_claimed(&keys), Err(E2eError::BadBundle { .. })), "signature binds identity");
        // A small-order signed prekey cannot be agreed with, signed or not.
        let mut a1 = Device::generate("a1").unwrap();
        let mut bundle = bundle_of(&mut b1, keys.user_id, 0).remove(0);
        bundle.signed_prekey = [0; 32];
        assert!(matches!(a1.encrypt(Uuid::new_v4(), b"x", &[bundle]), Err(E2eError::NonContributory)));
    }

    #[test]
    fn every_small_order_point_the_server_refuses_gives_a_non_contributory_agreement() {
        // The same list as chat-domain's `is_small_order_x25519` (libsodium's), with the top
        // bit both clear and set: the client refuses what the server refuses.
        let mut points = vec![[0u8; 32]];
        let mut one = [0u8; 32];
        one[0] = 1;
        points.push(one);
        points.push([
            0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09,
            0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00,
        ]);
        points.push([
            0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04, 0x44,
            0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57,
        ]);
        for low in [0xec, 0xed, 0xee] {
            let mut p = [0xff; 32];
            p[0] = low;
            p[31] = 0x7f;
            points.push(p);
        }
        let secret = StaticSecret::from([0x42; 32]);
        for point in points {
            let mut high = point;
            high[31] |= 0x80;
            for p in [point, high] {
                assert!(matches!(dh(&secret, &p), Err(E2eError::NonContributory)), "{p:02x?}");
            }
        }
        assert!(dh(&secret, &[9; 32]).is_ok());
    }

    #[test]
    fn the_safety_number_is_order_independent_and_changes_with_a_new_device() {
        let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let mut a1 = Device::generate("a1").unwrap();
        let mut b1 = Device::generate("b1").unwrap();
        let mut devices = [bundle_of(&mut a1, alice, 0), bundle_of(&mut b1, bob, 0)].concat();
        let number = safety_number(alice, bob, &devices);
        assert_eq!(number.len(), 60);
        assert!(number.chars().all(|c| c.is_ascii_digit()));
        assert_eq!(number, safety_number(bob, alice, &devices));
        devices.reverse();
        assert_eq!(number, safety_number(alice, bob, &devices), "device order does not matter");
        let mut b2 = Device::generate("b2").unwrap();
        devices.extend(bundle_of(&mut b2, bob, 0));
        assert_ne!(number, safety_number(alice, bob, &devices));
    }

    #[test]
    fn a_saved_device_restores_with_its_sessions_prekeys_and_replay_state() {
        let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let mut a1 = Device::generate("a1").unwrap();
        let mut b1 = Device::generate("b1").unwrap();
        let a1_bundle = bundle_of(&mut a1, alice, 0);
        let b1_bundle = bundle_of(&mut b1, bob, 3);
        let conversation = Uuid::new_v4();
        let first = a1.encrypt(conversation, b"before the restart", &b1_bundle[..1]).unwrap();
        assert_eq!(b1.decrypt(conversation, &first, &a1_bundle).unwrap(), b"before the restart");

        let key = [7u8; 32];
        let saved_a = a1.save(&key).unwrap();
        let saved_b = b1.save(&key).unwrap();
        assert!(!String::from_utf8_lossy(&saved_b).contains(&b64(b1.identity.as_bytes())), "sealed, not plain");
        let mut a1 = Device::restore(&saved_a, &key).unwrap();
        let mut b1 = Device::restore(&saved_b, &key).unwrap();
        assert_eq!(b1.unused_one_time_prekeys(), 2, "the spent prekey stays spent");
        assert!(a1.has_session_with(&b1_bundle[0]));
        // The replay record survived; the session continues without a new prekey.
        assert!(matches!(b1.decrypt(conversation, &first, &a1_bundle), Err(E2eError::Replay)));
        let second = a1.encrypt(conversation, b"after", &b1_bundle[..1]).unwrap();
        assert_eq!(b1.decrypt(conversation, &second, &a1_bundle).unwrap(), b"after");
        assert_eq!(b1.unused_one_time_prekeys(), 2);

        // Another key, a flipped bit or another format: refused.
        assert!(matches!(Device::restore(&saved_b, &[8u8; 32]), Err(E2eError::Decrypt)));
        let mut flipped = saved_b.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(Device::restore(&flipped, &key), Err(E2eError::Decrypt)));
        assert!(matches!(Device::restore(b"{}", &key), Err(E2eError::Malformed(_))));
    }
}
