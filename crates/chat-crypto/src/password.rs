//! Password hashing with argon2id: [`Argon2Hasher`].

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use argon2::password_hash::{Output, ParamsString, PasswordHash as PhcString, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use async_trait::async_trait;
use chat_domain::error::RepoError;
use chat_domain::user::{Password, PasswordHash, PasswordHasher};
use ring::rand::SystemRandom;
use secrecy::zeroize::{Zeroize, Zeroizing};
use tokio::sync::Semaphore;

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
///
/// **Memory.** A hash needs its memory cost in working memory (19 MiB with OWASP's costs).
/// At most one hash per core runs at once (more would only queue on the CPU, and each would
/// hold its memory meanwhile), and their working memory is kept and reused ([`Memory`]):
/// a burst of logins costs a fixed few buffers, where allocating one per hash left the
/// process holding hundreds of MiB after the burst (glibc keeps freed blocks of that size in
/// its per-thread arenas once its mmap threshold has risen past them; 200 registrations, four
/// at a time, left 800 MiB resident).
#[derive(Clone)]
pub struct Argon2Hasher {
    argon2: Argon2<'static>,
    dummy: Arc<Dummy>,
    memory: Arc<Memory>,
    rng: SystemRandom,
}

/// The working memory of the hashes under way: a permit per hash that may run at once, and
/// the buffers of those hashes, made on first use (an idle server holds none) and kept.
struct Memory {
    permits: Semaphore,
    free: Mutex<Vec<Vec<Block>>>,
}

impl Memory {
    fn new(hashes_at_once: usize) -> Self {
        Self { permits: Semaphore::new(hashes_at_once), free: Mutex::new(Vec::new()) }
    }

    fn free(&self) -> std::sync::MutexGuard<'_, Vec<Vec<Block>>> {
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `work` on the blocking pool with a buffer of its own, once a permit is free. A
    /// buffer is taken only under a permit, so there are never more buffers than permits.
    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        // The semaphore is never closed.
        let permit = self.permits.acquire().await.ok();
        let memory = Arc::clone(self);
        let done = tokio::task::spawn_blocking(move || {
            let mut buffer = memory.free().pop().unwrap_or_default();
            let out = work(&mut buffer);
            // What a hash leaves in its working memory is derived from the password: wiped
            // before the buffer waits for the next (a memset, small beside the hash).
            buffer.iter_mut().for_each(Zeroize::zeroize);
            memory.free().push(buffer);
            out
        })
        .await;
        drop(permit);
        done
    }
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
    fn verify_blocking(&self, argon2: &Argon2<'_>, memory: &mut Vec<Block>, password: &[u8]) -> bool {
        if let Some(phc) = self.phc.get() {
            let _ = verify_blocking(memory, password, phc);
            return false;
        }
        // First use: hashing the dummy password is this call's full hash. Two first calls at
        // once both hash; either result is a valid dummy.
        match hash_blocking(argon2, memory, DUMMY_PASSWORD, &self.salt) {
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
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let memory = Arc::new(Memory::new(cores));
        Ok(Self { argon2, dummy: Arc::new(Dummy { salt, phc: OnceLock::new() }), memory, rng })
    }
}

impl fmt::Debug for Argon2Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Argon2Hasher").field("argon2", &self.argon2).finish_non_exhaustive()
    }
}

/// `memory` holding at least `blocks` blocks (it grows to the largest cost it has served).
fn fit(memory: &mut Vec<Block>, blocks: usize) -> &mut [Block] {
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    &mut memory[..blocks]
}

/// The PHC string of `password` hashed with `salt`: what `argon2`'s own `hash_password` makes
/// (a test holds them equal), with the working memory given.
fn hash_blocking(
    argon2: &Argon2<'_>,
    memory: &mut Vec<Block>,
    password: &[u8],
    salt: &[u8; SALT_LEN],
) -> Result<String, argon2::password_hash::Error> {
    let params = argon2.params();
    let mut out = Zeroizing::new([0_u8; Params::DEFAULT_OUTPUT_LEN]);
    argon2.hash_password_into_with_memory(password, salt, &mut out[..], fit(memory, params.block_count()))?;
    let salt = SaltString::encode_b64(salt)?;
    let phc = PhcString {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out[..])?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `phc`, hashed with the algorithm, version and
/// costs `phc` names.
fn verify_blocking(memory: &mut Vec<Block>, password: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PhcString::new(phc) else {
        tracing::warn!("stored password hash is not a valid PHC string");
        return false;
    };
    matches(memory, password, &parsed).unwrap_or(false)
}

fn matches(
    memory: &mut Vec<Block>,
    password: &[u8],
    phc: &PhcString<'_>,
) -> Result<bool, argon2::password_hash::Error> {
    let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else { return Ok(false) };
    let algorithm = Algorithm::try_from(phc.algorithm)?;
    let version = phc.version.map(Version::try_from).transpose()?.unwrap_or_default();
    // The output length is the stored hash's.
    let params = Params::try_from(phc)?;
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut salt_bytes = [0_u8; Salt::MAX_LENGTH];
    let salt = salt.decode_b64(&mut salt_bytes)?;
    let mut out = Zeroizing::new([0_u8; Output::MAX_LENGTH]);
    let out = &mut out[..expected.len()];
    argon2.hash_password_into_with_memory(password, salt, out, fit(memory, blocks))?;
    // `Output`'s equality is constant-time.
    Ok(Output::new(out)? == expected)
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    #[tracing::instrument(skip_all)]
    async fn hash_password(&self, password: &Password) -> Result<PasswordHash, RepoError> {
        let mut salt = [0_u8; SALT_LEN];
        fill_random(&self.rng, &mut salt).map_err(|e| RepoError::new("generating a salt failed", e))?;
        let argon2 = self.argon2.clone();
        let password = Zeroizing::new(password.expose().to_owned());
        self.memory
            .run(move |memory| hash_blocking(&argon2, memory, password.as_bytes(), &salt))
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
        self.memory
            .run(move |memory| match hash {
                Some(hash) => verify_blocking(memory, password.as_bytes(), &hash.0),
                None => dummy.verify_blocking(&argon2, memory, password.as_bytes()),
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
    fn our_phc_strings_are_argon2s_own_and_argon2s_verify() {
        use argon2::password_hash::PasswordHasher as _;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(64, 2, 1, None).unwrap());
        let salt = [7_u8; SALT_LEN];
        let mut memory = Vec::new();
        let ours = hash_blocking(&argon2, &mut memory, b"pa55word", &salt).unwrap();
        let theirs = argon2.hash_password(b"pa55word", &SaltString::encode_b64(&salt).unwrap()).unwrap().to_string();
        assert_eq!(ours, theirs);
        // One argon2 made with another output length and costs verifies too, by its own terms.
        let other = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(32, 1, 1, Some(16)).unwrap());
        let short = other.hash_password(b"pa55word", &SaltString::encode_b64(&salt).unwrap()).unwrap().to_string();
        assert!(verify_blocking(&mut memory, b"pa55word", &short));
        assert!(!verify_blocking(&mut memory, b"pa55wore", &short));
        assert!(verify_blocking(&mut memory, b"pa55word", &theirs));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_hashes_holds_one_buffer_per_hash_allowed_at_once() {
        let mut hasher = cheap();
        hasher.memory = Arc::new(Memory::new(2));
        let pw = password("the same burst");
        let burst: Vec<_> = (0..8)
            .map(|_| {
                let (hasher, pw) = (hasher.clone(), pw.clone());
                tokio::spawn(async move { hasher.hash_password(&pw).await })
            })
            .collect();
        for hash in burst {
            assert!(hasher.verify_password(&pw, Some(hash.await.unwrap().unwrap())).await);
        }
        let buffers = hasher.memory.free().len();
        assert!((1..=2).contains(&buffers), "{buffers} buffers for 2 hashes at once");
        assert!(hasher.memory.free().iter().all(|b| b.len() == 64), "64 blocks of 1 KiB each");
        let zero = format!("{:?}", Block::new());
        let wiped = hasher.memory.free().iter().flatten().all(|block| format!("{block:?}") == zero);
        assert!(wiped, "a kept buffer holds nothing of the last hash");
    }

    #[test]
    fn invalid_parameters_are_refused() {
        assert!(matches!(Argon2Hasher::with_params(64, 0, 1), Err(HasherError::Params(_))));
        assert!(matches!(Argon2Hasher::with_params(64, 1, 0), Err(HasherError::Params(_))));
    }
}
