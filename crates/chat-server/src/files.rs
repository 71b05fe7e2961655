//! The blob store of sealed file bodies: [`LocalBlobStore`], a directory on local disk
//! (`FILE_STORE`, default `$DATA_DIR/files`).
//!
//! Objects are named by the domain's random storage keys (32 lowercase hex characters) and
//! nothing else: a key of any other shape is refused before the file system is touched, so no
//! client-supplied text ever reaches a path. The directory is created with mode 0700, objects
//! with 0600, written to a temporary name, synced and renamed into place (never half-written).
//! Bodies are sealed before they get here (`chat_crypto::file_cipher`): the directory holds no
//! plaintext.
//!
//! An S3-compatible store is the other `FILE_STORE` option in SPEC.md; it is not implemented
//! yet. It would be a second adapter of the same `BlobStore` port (e.g. `object_store` with its
//! `aws` feature, configured from `FILE_STORE=s3://bucket/prefix` and the usual AWS variables),
//! left out for now to keep its dependency tree out of the build.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chat_domain::error::RepoError;
use chat_domain::file::BlobStore;

/// Sealed file bodies in a local directory.
#[derive(Clone, Debug)]
pub struct LocalBlobStore {
    dir: PathBuf,
}

impl LocalBlobStore {
    /// Opens (creating with mode 0700 when missing) the directory `dir`.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        builder.mode(0o700);
        builder.create(&dir)?;
        Ok(Self { dir })
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The object's path, for a well-formed key only.
    fn path(&self, key: &str) -> Result<PathBuf, RepoError> {
        let well_formed = key.len() == 32 && key.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if well_formed { Ok(self.dir.join(key)) } else { Err(RepoError::msg("malformed blob key")) }
    }
}

fn write_new(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".tmp-{}", path.file_name().and_then(|n| n.to_str()).unwrap_or_default()));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        if path.exists() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "blob key already used"));
        }
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), RepoError> {
        let path = self.path(key)?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || write_new(&dir, &path, &bytes))
            .await
            .map_err(|e| RepoError::new("blob write task failed", e))?
            .map_err(|e| RepoError::new("writing a blob failed", e))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RepoError> {
        let path = self.path(key)?;
        let read = tokio::task::spawn_blocking(move || fs::read(path))
            .await
            .map_err(|e| RepoError::new("blob read task failed", e))?;
        match read {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RepoError::new("reading a blob failed", e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), RepoError> {
        let path = self.path(key)?;
        let removed = tokio::task::spawn_blocking(move || fs::remove_file(path))
            .await
            .map_err(|e| RepoError::new("blob delete task failed", e))?;
        match removed {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RepoError::new("deleting a blob failed", e)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[tokio::test]
    async fn blobs_are_written_read_and_deleted_under_their_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(tmp.path().join("files")).unwrap();
        assert_eq!(store.get(KEY).await.unwrap(), None);
        store.put(KEY, b"sealed".to_vec()).await.unwrap();
        assert_eq!(store.get(KEY).await.unwrap().as_deref(), Some(&b"sealed"[..]));
        // Keys are fresh: an existing object is never overwritten.
        assert!(store.put(KEY, b"other".to_vec()).await.is_err());
        assert_eq!(store.get(KEY).await.unwrap().as_deref(), Some(&b"sealed"[..]));
        let names: Vec<_> = fs::read_dir(store.dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(KEY)]);
        store.delete(KEY).await.unwrap();
        store.delete(KEY).await.unwrap();
        assert_eq!(store.get(KEY).await.unwrap(), None);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_directory_is_private_and_objects_are_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(tmp.path().join("files")).unwrap();
        store.put(KEY, b"sealed".to_vec()).await.unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.dir()), 0o700);
        assert_eq!(mode(&store.dir().join(KEY)), 0o600);
    }

    #[tokio::test]
    async fn a_key_that_is_not_32_hex_characters_never_reaches_the_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(tmp.path().join("files")).unwrap();
        for key in ["../escape", "/etc/passwd", "", "0123456789ABCDEF0123456789ABCDEF", &format!("{KEY}0"), "..", "a/b"]
        {
            assert!(store.put(key, b"x".to_vec()).await.is_err(), "{key}");
            assert!(store.get(key).await.is_err(), "{key}");
            assert!(store.delete(key).await.is_err(), "{key}");
        }
        assert_eq!(fs::read_dir(store.dir()).unwrap().count(), 0);
        assert!(!tmp.path().join("escape").exists());
    }
}
