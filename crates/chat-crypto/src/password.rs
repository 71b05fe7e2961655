//! Password hashing with argon2id: [`Argon2Hasher`].

use std::fmt;
use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHash as PhcString, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use chat_domain::error::RepoError;
use chat_domain::user::{Password, PasswordHash, PasswordHasher};
use ring::rand::SystemRandom;
use secrecy::zeroize::Zeroizing;

use crate::{RandomError, fill_random};

/// Salt length, in bytes (the PHC recommendation).
const SALT_LEN: usize = 16;

/// The password behind the dummy hash. It need not be secret: the dummy path answers `false`
/// whatever it computes (and a test proves it does so even for this very password).
const DUMMY_PASSWORD: &[u8] = b"chat-crypto: no such account";

/// Why a hasher could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HasherError {
    /// The cost parameters are outside argon2's limits.
    #[error("invalid argon2 parameters")]
    Params(#[source] argon2::Error),
    /// Hashing the dummy password failed. No longer returned by the constructors: the
    /// dummy hash is made on first use, and a failure there makes that login `false`.
    #[error("hashing the dummy password failed")]
    Hash(#[source] argon2::password_hash::Error),
    /// The random source failed.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// argon2id (version 0x13) password hashing into PHC strings, run on Tokio's blocking pool.
///
/// Verifying against no hash (an unknown account) verifies against a dummy hash made with
/// the same parameters, and answers `false`, so it costs the same time as a wrong password.
/// The dummy hash is made on the first such verification, not at construction (a hash takes
/// ~19 MiB of memory and as much time as a login; a server that never sees an unknown
/// account never pays it): that first call does the hashing as its one full hash and skips
/// the comparison, every later one verifies against the stored dummy. Clones share it.
/// Stored hashes carry their own parameters, so raising the cost later keeps old hashes
/// verifiable.
#[derive(Clone)]
pub struct Argon2Hasher {
    argon2: Argon2<'static>,
    dummy: Arc<Dummy>,
    rng: SystemRandom,
}

/// The dummy hash of an unknown account: its salt, drawn at construction, and the PHC string,
/// made on first use.
struct Dummy {
    salt: [u8; SALT_LEN],
    phc: OnceLock<Arc<str>>,
}

impl Dummy {
    /// The cost of verifying a password against no account: one full argon2 hash with the
    /// hasher's parameters. Always `false`.
    fn verify_blocking(&self, argon2: &Argon2<'_>, password: &[u8]) -> bool {
        if let Some(phc) = self.phc.get() {
            let _ = verify_blocking(argon2, password, phc);
            return false;
        }
        // First use: hashing the dummy password is this call's full hash. Two first calls at
        // once both hash; either result is a valid dummy.
        match hash_blocking(argon2, DUMMY_PASSWORD, &self.salt) {
            Ok(phc) => {
                let _ = self.phc.set(phc.into());
            }
            Err(e) => tracing::error!(error = %e, "hashing the dummy password failed"),
        }
        false
    }
}

impl Argon2Hasher {
    /// OWASP's recommended memory cost for argon2id, in KiB (19 MiB).
    pub const OWASP_M_COST_KIB: u32 = 19_456;
    /// OWASP's recommended number of passes.
    pub const OWASP_T_COST: u32 = 2;
    /// OWASP's recommended parallelism.
    pub const OWASP_P_COST: u32 = 1;

    /// A hasher with OWASP's argon2id parameters (m = 19456 KiB, t = 2, p = 1). Cheap: the
    /// dummy hash is made on first use.
    ///
    /// # Errors
    /// [`HasherError`] when the random source fails.
    pub fn new() -> Result<Self, HasherError> {
        Self::with_params(Self::OWASP_M_COST_KIB, Self::OWASP_T_COST, Self::OWASP_P_COST)
    }

    /// A hasher with explicit argon2id costs: memory in KiB, passes, lanes (cheap ones make
    /// tests fast; production uses [`Argon2Hasher::new`]).
    ///
    /// # Errors
    /// [`HasherError::Params`] when argon2 refuses the parameters; [`HasherError::Random`]
    /// when the dummy's salt cannot be drawn.
    pub fn with_params(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<Self, HasherError> {
        let params = Params::new(m_cost_kib, t_cost, p_cost, None).map_err(HasherError::Params)?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let rng = SystemRandom::new();
        let mut salt = [0_u8; SALT_LEN];
        fill_random(&rng, &mut salt)?;
        Ok(Self { argon2, dummy: Arc::new(Dummy { salt, phc: OnceLock::new() }), rng })
    }
}

impl fmt::Debug for Argon2Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Argon2Hasher").field("argon2", &self.argon2).finish_non_exhaustive()
    }
}

fn hash_blocking(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &[u8; SALT_LEN],
) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(salt)?;
    Ok(argon2.hash_password(password, &salt)?.to_string())
}

fn verify_blocking(argon2: &Argon2<'_>, password: &[u8], phc: &str) -> bool {
    match PhcString::new(phc) {
        Ok(parsed) => argon2.verify_password(password, &parsed).is_ok(),
        Err(_) => {
            tracing::warn!("stored password hash is not a valid PHC string");
            false
        }
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    #[tracing::instrument(skip_all)]
    async fn hash_password(&self, password: &Password) -> Result<PasswordHash, RepoError> {
        let mut salt = [0_u8; SALT_LEN];
        fill_random(&self.rng, &mut salt).map_err(|e| RepoError::new("generating a salt failed", e))?;
        let argon2 = self.argon2.clone();
        let password = Zeroizing::new(password.expose().to_owned());
        tokio::task::spawn_blocking(move || hash_blocking(&argon2, password.as_bytes(), &salt))
            .await
            .map_err(|e| RepoError::new("the password hashing task failed", e))?
            .map(PasswordHash)
            .map_err(|e| RepoError::new("hashing a password failed", e))
    }

    #[tracing::instrument(skip_all)]
    async fn verify_password(&self, password: &Password, hash: Option<PasswordHash>) -> bool {
        let argon2 = self.argon2.clone();
        let password = Zeroizing::new(password.expose().to_owned());
        let dummy = Arc::clone(&self.dummy);
        // The dummy path does the same work but can never succeed.
        tokio::task::spawn_blocking(move || match hash {
            Some(hash) => verify_blocking(&argon2, password.as_bytes(), &hash.0),
            None => dummy.verify_blocking(&argon2, password.as_bytes()),
        })
        .await
        .unwrap_or_else(|err| {
            tracing::error!(error = %err, "the password verification task failed");
            false
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Argon2Hasher {
        Argon2Hasher::with_params(64, 1, 1).unwrap()
    }

    fn password(raw: &str) -> Password {
        Password::parse(raw.to_owned()).unwrap()
    }

    #[tokio::test]
    async fn a_hashed_password_verifies_and_a_wrong_one_does_not() {
        let hasher = cheap();
        let right = password("correct horse battery staple");
        let hash = hasher.hash_password(&right).await.unwrap();
        assert!(hash.0.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{}", hash.0);
        assert!(!hash.0.contains("correct horse"));
        assert!(hasher.verify_password(&right, Some(hash.clone())).await);
        assert!(!hasher.verify_password(&password("correct horse battery stapler"), Some(hash.clone())).await);
    }

    #[tokio::test]
    async fn the_same_password_hashes_differently_each_time() {
        let hasher = cheap();
        let pw = password("same password twice");
        let a = hasher.hash_password(&pw).await.unwrap();
        let b = hasher.hash_password(&pw).await.unwrap();
        assert_ne!(a, b, "fresh salt");
        assert!(hasher.verify_password(&pw, Some(a.clone())).await);
        assert!(hasher.verify_password(&pw, Some(b)).await);
    }

    fn dummy_phc(hasher: &Argon2Hasher) -> Option<String> {
        hasher.dummy.phc.get().map(ToString::to_string)
    }

    #[tokio::test]
    async fn the_dummy_path_does_the_work_but_is_always_false() {
        let hasher = cheap();
        let dummy_password = password(std::str::from_utf8(DUMMY_PASSWORD).unwrap());
        // An unknown account never matches, not even with the dummy password …
        assert!(!hasher.verify_password(&dummy_password, None).await);
        // … and that first unknown account made the dummy: a real hash of the dummy password
        // with the same costs, which later unknown accounts verify against.
        let dummy = dummy_phc(&hasher).expect("made on first use");
        assert!(dummy.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{dummy}");
        assert!(hasher.verify_password(&dummy_password, Some(PasswordHash(dummy.clone()))).await);
        assert!(!hasher.verify_password(&dummy_password, None).await);
        assert!(!hasher.verify_password(&password("any password at all"), None).await);
        assert_eq!(dummy_phc(&hasher), Some(dummy), "made once");
    }

    #[tokio::test]
    async fn the_dummy_hash_is_made_on_first_use_and_shared_by_clones() {
        let hasher = cheap();
        let clone = hasher.clone();
        assert_eq!(dummy_phc(&hasher), None, "not made at construction");
        // A known account does not need it.
        let pw = password("a real account");
        let hash = hasher.hash_password(&pw).await.unwrap();
        assert!(hasher.verify_password(&pw, Some(hash)).await);
        assert_eq!(dummy_phc(&hasher), None);
        assert!(!clone.verify_password(&pw, None).await);
        assert!(dummy_phc(&hasher).is_some(), "the clone made it for both");
    }

    #[tokio::test]
    async fn a_malformed_stored_hash_is_false() {
        let hasher = cheap();
        let pw = password("whatever it is");
        assert!(!hasher.verify_password(&pw, Some(PasswordHash("not a phc string".into()))).await);
        assert!(!hasher.verify_password(&pw, Some(PasswordHash(String::new()))).await);
    }

    #[tokio::test]
    async fn hashes_made_with_other_costs_still_verify() {
        let old = Argon2Hasher::with_params(32, 2, 1).unwrap();
        let pw = password("made before the upgrade");
        let hash = old.hash_password(&pw).await.unwrap();
        assert!(cheap().verify_password(&pw, Some(hash.clone())).await);
    }

    #[tokio::test]
    async fn the_default_hasher_uses_owasp_parameters() {
        let hasher = Argon2Hasher::new().unwrap();
        assert!(!hasher.verify_password(&password("no such account here"), None).await);
        let dummy = dummy_phc(&hasher).unwrap();
        assert!(dummy.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{dummy}");
        assert!(!format!("{hasher:?}").contains(&dummy));
    }

    #[test]
    fn invalid_parameters_are_refused() {
        assert!(matches!(Argon2Hasher::with_params(64, 0, 1), Err(HasherError::Params(_))));
        assert!(matches!(Argon2Hasher::with_params(64, 1, 0), Err(HasherError::Params(_))));
    }
}
