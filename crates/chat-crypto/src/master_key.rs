//! The master key (`ENCRYPTION_KEY`, 64 hex characters) and the secret files the embedded
//! default generates once and keeps: `DATA_DIR/master.key` and `DATA_DIR/jwt.secret`.
//!
//! A generated file holds the secret as lower-case hex followed by a newline. It is created
//! with mode `0600` from its first byte (`create_new` + `mode(0o600)` on a temporary name in
//! the same directory), filled and synced, then published under its final name with a hard
//! link, which fails if the name exists. So no process ever sees a half-written file or a file
//! readable by others, and of two processes starting at once on the same directory, one
//! generates and the other reads what it generated.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretBox, SecretSlice};

use crate::{RandomError, fill_random};

/// Length of the master key, in bytes.
pub const MASTER_KEY_LEN: usize = 32;

/// File name of the generated master key inside `DATA_DIR`.
pub const MASTER_KEY_FILE: &str = "master.key";

/// File name of the generated JWT secret inside `DATA_DIR`.
pub const JWT_SECRET_FILE: &str = "jwt.secret";

/// Length of a generated JWT secret, in bytes (the HS256 minimum [`crate::JwtIssuer`] accepts).
pub const GENERATED_JWT_SECRET_LEN: usize = 32;

/// The key that wraps every workspace data key. Held in a zeroise-on-drop box; `Debug` never
/// shows it and nothing else in this crate exposes it.
pub struct MasterKey(SecretBox<[u8; MASTER_KEY_LEN]>);

/// Why a master key string was refused. Neither variant carries any of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MasterKeyError {
    /// Not exactly 64 characters.
    #[error("the master key must be exactly 64 hex characters (got {0})")]
    WrongLength(usize),
    /// 64 characters, but not all hex digits.
    #[error("the master key must contain only hex digits")]
    NotHex,
}

/// Why a secret file could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading, creating, writing or linking the file (or creating its directory) failed.
    #[error("cannot read or create the secret file {}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },
    /// The file exists but is not `expected` bytes written as hex.
    #[error("the secret file {} does not hold {expected} bytes as hex", path.display())]
    Malformed {
        /// The file concerned.
        path: PathBuf,
        /// How many bytes it should hold.
        expected: usize,
    },
    /// A secret of zero bytes was asked for.
    #[error("a secret must be at least one byte long")]
    EmptySecret,
    /// The random source failed while generating a new secret.
    #[error(transparent)]
    Random(#[from] RandomError),
}

impl MasterKey {
    /// Parses a key given as exactly 64 hex characters (either case, no surrounding
    /// whitespace).
    ///
    /// # Errors
    /// [`MasterKeyError::WrongLength`] or [`MasterKeyError::NotHex`].
    pub fn from_hex(hex_key: &str) -> Result<Self, MasterKeyError> {
        if hex_key.len() != 2 * MASTER_KEY_LEN {
            return Err(MasterKeyError::WrongLength(hex_key.chars().count()));
        }
        let mut key = SecretBox::new(Box::new([0_u8; MASTER_KEY_LEN]));
        // Decodes straight into the zeroise-on-drop box: no copy of the key is left behind.
        hex::decode_to_slice(hex_key, secrecy::ExposeSecretMut::expose_secret_mut(&mut key))
            .map_err(|_| MasterKeyError::NotHex)?;
        Ok(Self(key))
    }

    /// A fresh random key (for tests and tools; production keys come from
    /// `ENCRYPTION_KEY` or [`MasterKey::load_or_generate`]).
    ///
    /// # Errors
    /// [`RandomError`] when the system random source fails.
    pub fn generate() -> Result<Self, RandomError> {
        let mut key = SecretBox::new(Box::new([0_u8; MASTER_KEY_LEN]));
        fill_random(&SystemRandom::new(), secrecy::ExposeSecretMut::expose_secret_mut(&mut key))?;
        Ok(Self(key))
    }

    /// Reads `data_dir/master.key`, or — when it does not exist — creates `data_dir` (mode
    /// `0700` for directories it creates), generates a random key and writes it there with
    /// mode `0600` (see the module documentation for how the file is created atomically).
    ///
    /// # Errors
    /// [`KeyFileError`] when the file cannot be read or created, or does not hold 32 bytes
    /// as hex.
    pub fn load_or_generate(data_dir: &Path) -> Result<Self, KeyFileError> {
        let secret = load_or_generate_secret(&data_dir.join(MASTER_KEY_FILE), MASTER_KEY_LEN)?;
        let mut key = SecretBox::new(Box::new([0_u8; MASTER_KEY_LEN]));
        secrecy::ExposeSecretMut::expose_secret_mut(&mut key).copy_from_slice(secret.expose_secret());
        Ok(Self(key))
    }

    /// The key bytes, for building the wrapping cipher inside this crate only.
    pub(crate) fn expose(&self) -> &[u8; MASTER_KEY_LEN] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Reads the secret of `len` bytes kept as hex in `path`, or — when the file does not exist —
/// generates one with ring's `SystemRandom` and writes it there with mode `0600` (parent
/// directories are created with mode `0700`). Used for `DATA_DIR/master.key` and
/// `DATA_DIR/jwt.secret`. Surrounding whitespace in the file is ignored. An existing file
/// readable by group or others is still used, with a warning in the log.
///
/// # Errors
/// [`KeyFileError::Io`] when the file or its directory cannot be read or created,
/// [`KeyFileError::Malformed`] when it does not hold `len` bytes as hex,
/// [`KeyFileError::EmptySecret`] when `len` is 0, [`KeyFileError::Random`] when the random
/// source fails.
#[tracing::instrument(skip_all, fields(path = %path.display()))]
pub fn load_or_generate_secret(path: &Path, len: usize) -> Result<SecretSlice<u8>, KeyFileError> {
    if len == 0 {
        return Err(KeyFileError::EmptySecret);
    }
    match read_secret(path, len) {
        Err(KeyFileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        loaded => return loaded,
    }
    match create_secret(path, len)? {
        Some(created) => {
            tracing::info!("generated a new secret file with mode 0600");
            Ok(created)
        }
        // Another process published the file between our read and our link: use theirs.
        None => read_secret(path, len),
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io { path: path.to_owned(), source }
}

fn read_secret(path: &Path, len: usize) -> Result<SecretSlice<u8>, KeyFileError> {
    let text = Zeroizing::new(fs::read_to_string(path).map_err(io_error(path))?);
    warn_if_exposed(path);
    let hex_text = text.trim();
    let malformed = || KeyFileError::Malformed { path: path.to_owned(), expected: len };
    if hex_text.len() != 2 * len {
        return Err(malformed());
    }
    let mut bytes = Zeroizing::new(vec![0_u8; len]);
    hex::decode_to_slice(hex_text, &mut bytes).map_err(|_| malformed())?;
    Ok(SecretSlice::from(std::mem::take(&mut *bytes)))
}

#[cfg(unix)]
fn warn_if_exposed(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
            "secret file is readable by others; chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_exposed(_path: &Path) {}

/// Generates and publishes the secret; `None` when `path` appeared meanwhile.
fn create_secret(path: &Path, len: usize) -> Result<Option<SecretSlice<u8>>, KeyFileError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    create_private_dir(dir).map_err(io_error(dir))?;

    let rng = SystemRandom::new();
    let mut bytes = Zeroizing::new(vec![0_u8; len]);
    fill_random(&rng, &mut bytes)?;
    let mut text = Zeroizing::new(hex::encode(&*bytes));
    text.push('\n');

    let mut tag = [0_u8; 8];
    fill_random(&rng, &mut tag)?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.{}.tmp", hex::encode(tag)));

    let published =
        write_private_file(&tmp, text.as_bytes()).map_err(io_error(&tmp)).and_then(|()| {
            match fs::hard_link(&tmp, path) {
                Ok(()) => Ok(true),
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(err) => Err(io_error(path)(err)),
            }
        });
    // The temporary name goes whatever happened; the published name keeps the content.
    let _ = fs::remove_file(&tmp);
    if !published? {
        return Ok(None);
    }
    // Make the new directory entry durable too (best effort: not every platform allows it).
    if let Ok(dir_handle) = File::open(dir) {
        let _ = dir_handle.sync_all();
    }
    Ok(Some(SecretSlice::from(std::mem::take(&mut *bytes))))
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

/// Creates `path` (which must not exist) already restricted to its owner, writes `content`
/// and syncs it.
fn write_private_file(path: &Path, content: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(content)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static COUNTER: AtomicU32 = AtomicU32::new(0);
            let mut tag = [0_u8; 8];
            fill_random(&SystemRandom::new(), &mut tag).unwrap();
            let path = std::env::temp_dir().join(format!(
                "chat-crypto-test-{}-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed),
                hex::encode(tag)
            ));
            Self(path)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn from_hex_accepts_64_hex_characters_of_either_case() {
        let lower = MasterKey::from_hex(HEX).unwrap();
        let upper = MasterKey::from_hex(&HEX.to_uppercase()).unwrap();
        assert_eq!(lower.expose(), upper.expose());
        assert_eq!(lower.expose()[31], 0x1f);
    }

    #[test]
    fn from_hex_rejects_bad_input() {
        assert_eq!(MasterKey::from_hex("").unwrap_err(), MasterKeyError::WrongLength(0));
        assert_eq!(MasterKey::from_hex(&HEX[..62]).unwrap_err(), MasterKeyError::WrongLength(62));
        assert_eq!(MasterKey::from_hex(&format!("{HEX}00")).unwrap_err(), MasterKeyError::WrongLength(66));
        assert_eq!(MasterKey::from_hex(&format!(" {}", &HEX[1..])).unwrap_err(), MasterKeyError::NotHex);
        assert_eq!(MasterKey::from_hex(&format!("{}g", &HEX[..63])).unwrap_err(), MasterKeyError::NotHex);
        // 64 bytes but fewer characters: counted as characters, never decoded.
        let multibyte = "é".repeat(32);
        assert_eq!(MasterKey::from_hex(&multibyte).unwrap_err(), MasterKeyError::NotHex);
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = MasterKey::from_hex(HEX).unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, "MasterKey(<redacted>)");
        assert!(!shown.contains("0102"));
    }

    #[test]
    fn generated_keys_differ() {
        let a = MasterKey::generate().unwrap();
        let b = MasterKey::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
    }

    #[cfg(unix)]
    #[test]
    fn the_master_key_file_is_created_with_mode_0600_and_reloaded_identically() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = TempDir::new();
        let data_dir = tmp.path().join("nested").join("data");

        let first = MasterKey::load_or_generate(&data_dir).unwrap();
        let file = data_dir.join(MASTER_KEY_FILE);
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(&data_dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode & 0o077, 0, "created directories are private");

        let text = fs::read_to_string(&file).unwrap();
        assert_eq!(text.trim().len(), 64);
        assert_eq!(MasterKey::from_hex(text.trim()).unwrap().expose(), first.expose());

        let again = MasterKey::load_or_generate(&data_dir).unwrap();
        assert_eq!(first.expose(), again.expose());
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(&data_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(MASTER_KEY_FILE)]);
    }

    #[test]
    fn an_existing_key_file_is_used_as_is() {
        let tmp = TempDir::new();
        fs::create_dir_all(tmp.path()).unwrap();
        fs::write(tmp.path().join(MASTER_KEY_FILE), format!("{HEX}\n")).unwrap();
        let key = MasterKey::load_or_generate(tmp.path()).unwrap();
        assert_eq!(key.expose(), MasterKey::from_hex(HEX).unwrap().expose());
    }

    #[test]
    fn a_malformed_key_file_is_an_error_and_is_not_replaced() {
        let tmp = TempDir::new();
        fs::create_dir_all(tmp.path()).unwrap();
        let file = tmp.path().join(MASTER_KEY_FILE);
        fs::write(&file, "not a key").unwrap();
        let err = MasterKey::load_or_generate(tmp.path()).unwrap_err();
        assert!(matches!(err, KeyFileError::Malformed { expected: 32, .. }), "{err:?}");
        assert_eq!(fs::read_to_string(&file).unwrap(), "not a key");
    }

    #[cfg(unix)]
    #[test]
    fn generic_secrets_have_the_requested_length_and_persist() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = TempDir::new();
        let path = tmp.path().join(JWT_SECRET_FILE);
        let first = load_or_generate_secret(&path, 48).unwrap();
        assert_eq!(first.expose_secret().len(), 48);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = load_or_generate_secret(&path, 48).unwrap();
        assert_eq!(first.expose_secret(), again.expose_secret());
        // The same file read as a different length is malformed, not silently truncated.
        assert!(matches!(load_or_generate_secret(&path, 32), Err(KeyFileError::Malformed { expected: 32, .. })));
        assert!(matches!(load_or_generate_secret(&path, 0), Err(KeyFileError::EmptySecret)));
    }

    #[test]
    fn concurrent_first_starts_agree_on_one_secret() {
        let tmp = TempDir::new();
        let path = tmp.path().join(JWT_SECRET_FILE);
        let secrets: Vec<Vec<u8>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_generate_secret(&path, 32).unwrap().expose_secret().to_vec()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(secrets.windows(2).all(|w| w[0] == w[1]));
    }
}
