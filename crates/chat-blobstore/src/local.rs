//! [`LocalBlobStore`]: sealed file bodies in a local directory.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chat_domain::error::RepoError;
use chat_domain::file::{BlobStore, BlobStream};
use futures_util::stream::{self, StreamExt};
use tokio::io::AsyncReadExt;

use crate::{READ_PIECE, check_key};

/// Sealed file bodies in a local directory, one file per object, named by its storage key.
///
/// The directory is created with mode 0700, objects with 0600; an object is written to a
/// temporary name, synced, and renamed into place (never seen half-written), and an existing
/// object is never overwritten.
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
        check_key(key).map(|key| self.dir.join(key))
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
    #[tracing::instrument(skip_all, fields(size = bytes.len()))]
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), RepoError> {
        let path = self.path(key)?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || write_new(&dir, &path, &bytes))
            .await
            .map_err(|e| RepoError::new("blob write task failed", e))?
            .map_err(|e| RepoError::new("writing a blob failed", e))
    }

    #[tracing::instrument(skip_all)]
    async fn read(&self, key: &str) -> Result<Option<BlobStream>, RepoError> {
        let path = self.path(key)?;
        let file = match tokio::fs::File::open(path).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RepoError::new("opening a blob failed", e)),
        };
        // One piece per read of up to READ_PIECE bytes; the file closes when the stream ends
        // or is dropped.
        let pieces = stream::unfold(Some(file), |file| async move {
            let mut file = file?;
            let mut piece = Vec::with_capacity(READ_PIECE);
            match (&mut file).take(READ_PIECE as u64).read_to_end(&mut piece).await {
                Ok(0) => None,
                Ok(_) => Some((Ok(piece), Some(file))),
                Err(e) => Some((Err(RepoError::new("reading a blob failed", e)), None)),
            }
        });
        Ok(Some(pieces.boxed()))
    }

    #[tracing::instrument(skip_all)]
    async fn delete(&self, key: &str) -> Result<(), RepoError> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(path).await {
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
    use crate::behaviour::{self, KEY};

    fn store() -> (tempfile::TempDir, LocalBlobStore) {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(tmp.path().join("files")).unwrap();
        (tmp, store)
    }

    #[tokio::test]
    async fn blobs_are_written_streamed_back_and_deleted_under_their_keys() {
        let (_tmp, store) = store();
        behaviour::blobs_are_written_streamed_back_and_deleted_under_their_keys(&store).await;
        // Nothing but the objects themselves: no temporary file is left behind.
        assert_eq!(fs::read_dir(store.dir()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_key_that_is_not_32_lowercase_hex_characters_is_refused() {
        let (tmp, store) = store();
        behaviour::a_key_that_is_not_32_lowercase_hex_characters_is_refused(&store).await;
        assert_eq!(fs::read_dir(store.dir()).unwrap().count(), 0);
        assert!(!tmp.path().join("escape").exists());
    }

    #[tokio::test]
    async fn an_existing_object_is_never_overwritten_and_only_objects_are_left() {
        let (_tmp, store) = store();
        store.put(KEY, b"sealed".to_vec()).await.unwrap();
        assert!(store.put(KEY, b"other".to_vec()).await.is_err());
        assert_eq!(behaviour::read_all(&store, KEY).await.as_deref(), Some(&b"sealed"[..]));
        let names: Vec<_> = fs::read_dir(store.dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(KEY)]);
    }

    #[tokio::test]
    async fn a_large_object_is_read_back_in_pieces_of_64_kib() {
        let (_tmp, store) = store();
        let body: Vec<u8> = (0..(READ_PIECE * 5 / 2)).map(|i| (i % 251) as u8).collect();
        store.put(KEY, body.clone()).await.unwrap();
        let pieces = behaviour::pieces(&store, KEY).await;
        let sizes: Vec<usize> = pieces.iter().map(Vec::len).collect();
        assert_eq!(sizes, [READ_PIECE, READ_PIECE, READ_PIECE / 2]);
        assert_eq!(pieces.concat(), body);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_directory_is_private_and_objects_are_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let (_tmp, store) = store();
        store.put(KEY, b"sealed".to_vec()).await.unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.dir()), 0o700);
        assert_eq!(mode(&store.dir().join(KEY)), 0o600);
    }
}
