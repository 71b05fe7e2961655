//! [`ObjectBlobStore`]: sealed file bodies in an [`ObjectStore`], in production an
//! S3-compatible bucket.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chat_domain::error::RepoError;
use chat_domain::file::{BlobStore, BlobStream};
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::check_key;

/// Why an S3 store could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL is not `s3://…`.
    #[error("FILE_STORE: expected a directory or s3://bucket[/prefix]")]
    NotS3,
    /// The URL does not parse.
    #[error("FILE_STORE: not a valid URL")]
    Url(#[source] url::ParseError),
    /// `object_store` refused the URL or the `AWS_*` configuration.
    #[error("configuring the S3 store failed")]
    Config(#[source] object_store::Error),
}

/// Sealed file bodies as objects named `<prefix>/<storage key>` of an [`ObjectStore`].
///
/// Objects are written whole with one conditional `PUT` (`PutMode::Create`: S3's
/// `If-None-Match: *`), so an existing object is not overwritten where the server supports
/// conditional writes (servers that ignore the header overwrite, which random keys make
/// moot). They are read back as the HTTP body streams in.
#[derive(Clone)]
pub struct ObjectBlobStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

impl fmt::Debug for ObjectBlobStore {
    // The store's `Display` names its kind and bucket; its `Debug` could show credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectBlobStore")
            .field("store", &format_args!("{}", self.store))
            .field("prefix", &self.prefix.as_ref())
            .finish()
    }
}

impl ObjectBlobStore {
    /// Objects of `store`, under `prefix` (the root when empty).
    #[must_use]
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path) -> Self {
        Self { store, prefix }
    }

    /// The S3-compatible bucket of `url` (`s3://bucket[/prefix]`), configured from `vars` the
    /// way `AmazonS3Builder::from_env` reads the environment: every `AWS_*` variable that
    /// object_store knows (`AWS_ENDPOINT` or `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ALLOW_HTTP`, …); other
    /// names are ignored. Parsing is object_store's own (`parse_url_opts`). No request is made.
    ///
    /// # Errors
    /// [`OpenError`] when the URL is not an `s3://` URL or object_store refuses it or the
    /// configuration.
    pub fn s3<K, V>(url: &str, vars: impl IntoIterator<Item = (K, V)>) -> Result<Self, OpenError>
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        if !url.starts_with("s3://") {
            return Err(OpenError::NotS3);
        }
        let url = url::Url::parse(url).map_err(OpenError::Url)?;
        let aws = vars.into_iter().filter(|(name, _)| name.as_ref().starts_with("AWS_"));
        let (store, prefix) = object_store::parse_url_opts(&url, aws).map_err(OpenError::Config)?;
        Ok(Self::new(Arc::from(store), prefix))
    }

    /// The prefix objects are stored under.
    #[must_use]
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// Where the object of a well-formed key lives.
    fn location(&self, key: &str) -> Result<Path, RepoError> {
        check_key(key).map(|key| self.prefix.clone().join(key))
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    #[tracing::instrument(skip_all, fields(size = bytes.len()))]
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), RepoError> {
        let location = self.location(key)?;
        let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        match self.store.put_opts(&location, PutPayload::from(bytes), options).await {
            Ok(_) => Ok(()),
            Err(e @ object_store::Error::AlreadyExists { .. }) => Err(RepoError::new("blob key already used", e)),
            Err(e) => Err(RepoError::new("writing a blob failed", e)),
        }
    }

    #[tracing::instrument(skip_all)]
    async fn read(&self, key: &str) -> Result<Option<BlobStream>, RepoError> {
        let location = self.location(key)?;
        match self.store.get(&location).await {
            Ok(found) => Ok(Some(
                found.into_stream().map_ok(Vec::from).map_err(|e| RepoError::new("reading a blob failed", e)).boxed(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(RepoError::new("reading a blob failed", e)),
        }
    }

    #[tracing::instrument(skip_all)]
    async fn delete(&self, key: &str) -> Result<(), RepoError> {
        let location = self.location(key)?;
        match self.store.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(RepoError::new("deleting a blob failed", e)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;
    use crate::behaviour::{self, KEY, LARGE};
    use crate::testing::S3Server;

    /// Every object name under the store's root, in order.
    async fn names(store: &dyn ObjectStore) -> Vec<String> {
        let mut names: Vec<String> =
            store.list(None).map_ok(|meta| meta.location.to_string()).try_collect().await.unwrap();
        names.sort();
        names
    }

    fn in_memory(prefix: &str) -> (Arc<InMemory>, ObjectBlobStore) {
        let memory = Arc::new(InMemory::new());
        (memory.clone(), ObjectBlobStore::new(memory, Path::from(prefix)))
    }

    #[tokio::test]
    async fn in_memory_blobs_are_written_streamed_back_and_deleted_under_their_keys() {
        let (memory, store) = in_memory("files");
        behaviour::blobs_are_written_streamed_back_and_deleted_under_their_keys(&store).await;
        assert!(names(&*memory).await.is_empty());
    }

    #[tokio::test]
    async fn in_memory_objects_are_named_prefix_slash_key_and_never_overwritten() {
        let (memory, store) = in_memory("tenant/files");
        store.put(KEY, b"sealed".to_vec()).await.unwrap();
        assert!(store.put(KEY, b"other".to_vec()).await.is_err());
        assert_eq!(behaviour::read_all(&store, KEY).await.as_deref(), Some(&b"sealed"[..]));
        assert_eq!(names(&*memory).await, [format!("tenant/files/{KEY}")]);
        behaviour::a_key_that_is_not_32_lowercase_hex_characters_is_refused(&store).await;
        assert_eq!(names(&*memory).await.len(), 1, "no malformed key reached the store");
    }

    #[test]
    fn an_s3_store_is_configured_from_the_url_and_aws_variables_only() {
        let vars = [
            ("AWS_ENDPOINT", "http://127.0.0.1:9"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-very-secret"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ALLOW_HTTP", "true"),
            ("DATABASE_URL", "postgres://ignored"),
        ];
        let store = ObjectBlobStore::s3("s3://chat-files/prod/eu", vars).unwrap();
        assert_eq!(store.prefix().as_ref(), "prod/eu");
        let printed = format!("{store:?}");
        assert!(printed.contains("chat-files"), "{printed}");
        assert!(!printed.contains("very-secret") && !printed.contains("AKIDEXAMPLE"), "{printed}");
        assert_eq!(ObjectBlobStore::s3("s3://chat-files", vars).unwrap().prefix().as_ref(), "");

        assert!(matches!(ObjectBlobStore::s3("/var/lib/chat/files", vars), Err(OpenError::NotS3)));
        assert!(matches!(ObjectBlobStore::s3("gs://bucket/x", vars), Err(OpenError::NotS3)));
        assert!(matches!(ObjectBlobStore::s3("s3://", vars), Err(OpenError::Config(_) | OpenError::Url(_))));
        // A malformed value of a variable object_store parses is refused, not ignored.
        let bad = [("AWS_ALLOW_HTTP", "perhaps")];
        assert!(matches!(ObjectBlobStore::s3("s3://chat-files", bad), Err(OpenError::Config(_))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_blobs_are_written_streamed_back_and_deleted_under_their_keys() {
        let Some(server) = S3Server::start().await else { return };
        let bucket = server.create_bucket().await;
        let store = server.store(&bucket, "files");
        behaviour::blobs_are_written_streamed_back_and_deleted_under_their_keys(&store).await;
        assert!(server.objects(&bucket).await.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_objects_are_named_prefix_slash_key_and_malformed_keys_never_reach_the_bucket() {
        let Some(server) = S3Server::start().await else { return };
        let bucket = server.create_bucket().await;
        let store = server.store(&bucket, "tenant/files");
        store.put(KEY, b"sealed bytes".to_vec()).await.unwrap();
        behaviour::a_key_that_is_not_32_lowercase_hex_characters_is_refused(&store).await;
        let objects = server.objects(&bucket).await;
        assert_eq!(objects, [(format!("tenant/files/{KEY}"), b"sealed bytes".to_vec())], "only the good key's object");
        // Keys are fresh: the conditional PUT refuses to replace an object.
        assert!(store.put(KEY, b"other".to_vec()).await.is_err());
        assert_eq!(behaviour::read_all(&store, KEY).await.as_deref(), Some(&b"sealed bytes"[..]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_s3_object_streams_back_in_several_pieces() {
        let Some(server) = S3Server::start().await else { return };
        let bucket = server.create_bucket().await;
        let store = server.store(&bucket, "");
        let body: Vec<u8> = (0..2 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
        store.put(LARGE, body.clone()).await.unwrap();
        let pieces = behaviour::pieces(&store, LARGE).await;
        assert!(pieces.len() > 1, "2 MiB arrived as {} piece(s)", pieces.len());
        assert_eq!(pieces.concat(), body);
        assert_eq!(server.objects(&bucket).await.into_iter().map(|(name, _)| name).collect::<Vec<_>>(), [LARGE]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writing_to_a_missing_bucket_fails() {
        let Some(server) = S3Server::start().await else { return };
        let store = server.store("chat-no-such-bucket", "files");
        assert!(store.put(KEY, b"x".to_vec()).await.is_err());
    }
}
