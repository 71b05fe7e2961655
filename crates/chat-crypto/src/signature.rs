//! [`Ed25519Verifier`]: the domain's [`SignatureVerifier`] port, with `ed25519-dalek`'s strict
//! verification (it refuses non-canonical signatures and small-order public keys, so a
//! signature cannot be made to verify under a weak key or be malleated into a second valid
//! one).

use chat_domain::keys::{Ed25519Key, Signature, SignatureVerifier};
use ed25519_dalek::VerifyingKey;

/// Verifies Ed25519 signatures (signed prekeys of the E2E key directory).
#[derive(Clone, Copy, Debug, Default)]
pub struct Ed25519Verifier;

impl SignatureVerifier for Ed25519Verifier {
    fn verify_ed25519(&self, key: &Ed25519Key, message: &[u8], signature: &Signature) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(key.as_bytes()) else {
            return false;
        };
        let signature = ed25519_dalek::Signature::from_bytes(signature.as_bytes());
        key.verify_strict(message, &signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    fn keys() -> (SigningKey, Ed25519Key) {
        let signing = SigningKey::from_bytes(&[42; 32]);
        let public = Ed25519Key::from_stored(signing.verifying_key().to_bytes());
        (signing, public)
    }

    #[test]
    fn a_signature_verifies_only_for_its_message_and_key() {
        let (signing, public) = keys();
        let signature = Signature::from_stored(signing.sign(b"prekey").to_bytes());
        assert!(Ed25519Verifier.verify_ed25519(&public, b"prekey", &signature));
        assert!(!Ed25519Verifier.verify_ed25519(&public, b"prekey!", &signature));
        let other = Ed25519Key::from_stored(SigningKey::from_bytes(&[43; 32]).verifying_key().to_bytes());
        assert!(!Ed25519Verifier.verify_ed25519(&other, b"prekey", &signature));
        let mut flipped = *signature.as_bytes();
        flipped[10] ^= 1;
        assert!(!Ed25519Verifier.verify_ed25519(&public, b"prekey", &Signature::from_stored(flipped)));
    }

    #[test]
    fn small_order_and_invalid_keys_never_verify() {
        let (signing, _) = keys();
        let signature = Signature::from_stored(signing.sign(b"prekey").to_bytes());
        // The identity point (small order) and a y-coordinate that decodes to no point.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        for key in [identity, [0xff; 32]] {
            assert!(!Ed25519Verifier.verify_ed25519(&Ed25519Key::from_stored(key), b"prekey", &signature));
        }
        // An all-zero "signature" under the identity key would verify without strictness.
        let zero = Signature::from_stored([0; 64]);
        assert!(!Ed25519Verifier.verify_ed25519(&Ed25519Key::from_stored(identity), b"prekey", &zero));
    }
}
