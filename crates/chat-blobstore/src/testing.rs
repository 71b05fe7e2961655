//! Test support (feature `testing`): an S3-compatible server to run the S3 adapter against,
//! with a fresh bucket per test.
//!
//! The server is the one at env `CHAT_S3_ENDPOINT` (e.g. `http://127.0.0.1:5000`; it must
//! accept unsigned bucket creation, as moto and LocalStack do), or else a `moto_server`
//! (`pip install 'moto[server]'`) started on a free port for the test and killed with it.
//! When neither is available the test is skipped with one line on stderr — unless env
//! `CHAT_REQUIRE_S3=1` (as in CI), which turns that into a failure.
//!
//! Credentials are dummies: moto does not check signatures.

use std::process::Stdio;
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::ObjectBlobStore;

/// A running S3-compatible server (killed on drop when this process started it).
#[derive(Debug)]
pub struct S3Server {
    endpoint: String,
    _child: Option<Child>,
}

impl S3Server {
    /// The server of `CHAT_S3_ENDPOINT`, or a fresh `moto_server`; `None` (after one line on
    /// stderr) when there is neither and `CHAT_REQUIRE_S3` is not `1`.
    ///
    /// # Panics
    /// When there is no server and `CHAT_REQUIRE_S3=1`, or `moto_server` exits before it
    /// listens.
    pub async fn start() -> Option<Self> {
        if let Ok(endpoint) = std::env::var("CHAT_S3_ENDPOINT") {
            return Some(Self { endpoint: endpoint.trim_end_matches('/').to_owned(), _child: None });
        }
        let spawned = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let required = std::env::var("CHAT_REQUIRE_S3").is_ok_and(|v| v == "1");
                assert!(!required, "moto_server cannot be started ({e}) and CHAT_REQUIRE_S3=1");
                eprintln!(
                    "skipped: moto_server cannot be started ({e}); pip install 'moto[server]', or set \
                     CHAT_S3_ENDPOINT, or CHAT_REQUIRE_S3=1 to fail"
                );
                return None;
            }
        };
        // Werkzeug announces the port it bound ("Running on http://127.0.0.1:PORT") on stderr;
        // the rest of stderr (one line per request) is drained so the server never blocks.
        let stderr = child.stderr.take().expect("piped stderr");
        let mut lines = BufReader::new(stderr).lines();
        let endpoint = loop {
            let Some(line) = lines.next_line().await.expect("moto_server's stderr") else {
                panic!("moto_server exited before listening");
            };
            if let Some(at) = line.find("http://127.0.0.1:") {
                break line[at..].trim().to_owned();
            }
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Some(Self { endpoint, _child: Some(child) })
    }

    /// The server's base URL.
    #[must_use]
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The `AWS_*` settings that point the S3 adapter at this server.
    #[must_use]
    pub fn aws_vars(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "chat-test"),
            ("AWS_SECRET_ACCESS_KEY", "chat-test-secret"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Creates a bucket no other test uses (`chat-test-<random>`) and returns its name.
    pub async fn create_bucket(&self) -> String {
        let bucket = format!("chat-test-{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
        let authority = self.endpoint.strip_prefix("http://").expect("an http:// endpoint");
        let mut conn = tokio::net::TcpStream::connect(authority).await.expect("connect to the S3 server");
        let request =
            format!("PUT /{bucket} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        conn.write_all(request.as_bytes()).await.expect("send");
        let mut response = String::new();
        conn.read_to_string(&mut response).await.expect("read");
        assert!(response.starts_with("HTTP/1.1 200"), "creating bucket {bucket}: {response}");
        bucket
    }

    /// The blob store of `s3://bucket/prefix` on this server, configured as `chat-server`
    /// configures it.
    #[must_use]
    pub fn store(&self, bucket: &str, prefix: &str) -> ObjectBlobStore {
        ObjectBlobStore::s3(&format!("s3://{bucket}/{prefix}"), self.aws_vars()).expect("S3 store")
    }

    /// Every object of `bucket` (name and bytes), by name: what an at-rest check scans.
    pub async fn objects(&self, bucket: &str) -> Vec<(String, Vec<u8>)> {
        let store: Arc<dyn ObjectStore> = Arc::new(
            self.aws_vars()
                .iter()
                .fold(AmazonS3Builder::new().with_bucket_name(bucket), |builder, (k, v)| {
                    builder.with_config(k.to_ascii_lowercase().parse().expect("known key"), v)
                })
                .build()
                .expect("S3 client"),
        );
        let mut names: Vec<_> = store.list(None).map_ok(|meta| meta.location).try_collect().await.expect("list");
        names.sort();
        let mut objects = Vec::new();
        for name in names {
            let bytes = store.get(&name).await.expect("get").bytes().await.expect("body");
            objects.push((name.to_string(), bytes.to_vec()));
        }
        objects
    }
}
