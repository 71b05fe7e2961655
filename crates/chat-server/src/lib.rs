//! # chat-server
//!
//! The SecureRealTime Chat server: it reads [`Settings`], opens the store the settings name
//! (embedded SQLite by default, PostgreSQL for production), wires the adapters into
//! `chat-domain`'s [`Chat`] services, and serves `chat-http`'s application.
//!
//! **Layer.** The composition root: the only crate that knows every adapter. `main.rs` stays
//! small; [`Application::build`] is what tests call with port 0.

#![forbid(unsafe_code)]

pub mod admin;
pub mod settings;

use std::net::TcpListener;
use std::sync::Arc;

use async_trait::async_trait;
use chat_crypto::{Argon2Hasher, EnvelopeCipher, HmacBlindIndexer, JwtIssuer, MasterKey};
use chat_domain::clock::SystemClock;
use chat_domain::realtime::{ConnectionTracker, RateLimiter};
use chat_domain::{Chat, Limits, Ports};
use chat_http::gateway::GatewaySettings;
use chat_http::metrics::Metrics;
use chat_http::realtime::Realtime;
use chat_http::realtime::local::{LocalConnectionTracker, LocalRateLimiter};
use chat_http::sanitize::AmmoniaSanitizer;
use chat_http::{AppState, HttpSettings, Readiness};
use secrecy::ExposeSecret;
pub use settings::{FileStore, LogFormat, Settings, Store};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened or migrated.
    #[error("opening the store failed")]
    Store(#[source] chat_domain::error::RepoError),
    /// Redis could not be reached.
    #[error("connecting to Redis failed")]
    Redis(#[source] chat_domain::error::RepoError),
    /// A key or secret could not be loaded.
    #[error("loading keys failed: {0}")]
    Keys(String),
    /// The file store could not be opened: its directory not created, or the S3 URL or
    /// `AWS_*` configuration refused.
    #[error("opening the file store failed")]
    FileStore(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The address could not be bound.
    #[error("binding {addr} failed")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Reads the store's group-commit counters (for `/metrics`).
type BatchStats = Box<dyn Fn() -> chat_domain::message::GroupCommitStats + Send + Sync>;

/// Both stores implement every repository port; this turns one into the domain's port bundle.
macro_rules! store_ports {
    ($store:expr) => {{
        let store = $store;
        (
            store.clone() as Arc<dyn chat_domain::user::UserRepository>,
            store.clone() as Arc<dyn chat_domain::user::SessionRepository>,
            store.clone() as Arc<dyn chat_domain::workspace::WorkspaceRepository>,
            store.clone() as Arc<dyn chat_domain::conversation::ConversationRepository>,
            store.clone() as Arc<dyn chat_domain::message::MessageRepository>,
            store.clone() as Arc<dyn chat_domain::presence::PresenceRepository>,
            store.clone() as Arc<dyn chat_domain::cipher::KeyRepository>,
            store.clone() as Arc<dyn chat_domain::search::SearchIndex>,
            store.clone() as Arc<dyn chat_domain::keys::KeyDirectory>,
            store.clone() as Arc<dyn chat_domain::audit::AuditLog>,
            store.clone() as Arc<dyn chat_domain::file::FileRepository>,
            {
                let store = store.clone();
                Box::new(move || store.group_commit_stats()) as BatchStats
            },
            Arc::new(Probe(store)) as Arc<dyn Readiness>,
        )
    }};
}

/// `/readyz` asks the store for a `SELECT 1`.
struct Probe<S>(Arc<S>);

#[async_trait]
impl Readiness for Probe<chat_sqlite::SqliteStore> {
    async fn ready(&self) -> bool {
        self.0.ping().await.is_ok()
    }
}

#[async_trait]
impl Readiness for Probe<chat_postgres::PgStore> {
    async fn ready(&self) -> bool {
        self.0.ping().await.is_ok()
    }
}

/// The real-time parts: single-node, or shared through Redis.
async fn realtime_parts(
    settings: &Settings,
) -> Result<(Realtime, Arc<dyn ConnectionTracker>, Arc<dyn RateLimiter>), StartError> {
    let Some(url) = &settings.redis_url else {
        return Ok((Realtime::local(), Arc::new(LocalConnectionTracker::new()), Arc::new(LocalRateLimiter::new())));
    };
    let url = url.expose_secret();
    let (incoming_tx, incoming) = tokio::sync::mpsc::channel(4096);
    let bus =
        chat_redis::RedisBus::connect(url, &settings.redis_namespace, incoming_tx).await.map_err(StartError::Redis)?;
    let tracker =
        chat_redis::RedisConnectionTracker::connect(url, &settings.redis_namespace).await.map_err(StartError::Redis)?;
    let limiter =
        chat_redis::RedisRateLimiter::connect(url, &settings.redis_namespace).await.map_err(StartError::Redis)?;
    Ok((Realtime::clustered(Arc::new(bus), incoming), Arc::new(tracker), Arc::new(limiter)))
}

/// The blob store `FILE_STORE` names: a local directory, or an S3-compatible bucket.
fn blob_store(store: &FileStore) -> Result<Arc<dyn chat_domain::file::BlobStore>, StartError> {
    Ok(match store {
        FileStore::Local(dir) => {
            Arc::new(chat_blobstore::LocalBlobStore::open(dir).map_err(|e| StartError::FileStore(Box::new(e)))?)
        }
        FileStore::S3 { url, aws } => {
            let vars = aws.iter().map(|(name, value)| (name.as_str(), value.expose_secret().to_owned()));
            Arc::new(chat_blobstore::ObjectBlobStore::s3(url, vars).map_err(|e| StartError::FileStore(Box::new(e)))?)
        }
    })
}

/// A built, bound server.
#[allow(missing_debug_implementations)]
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    realtime: Realtime,
    housekeeping: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Opens the store, loads or generates keys, wires the services and binds `settings.bind`.
    ///
    /// # Errors
    /// [`StartError`] when the store, the keys or the address fail.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let (
            users,
            sessions,
            workspaces,
            conversations,
            messages,
            presence,
            keys,
            search_index,
            key_directory,
            audit_log,
            file_rows,
            batch_stats,
            readiness,
        ) = match &settings.store {
            Store::Sqlite(url) => store_ports!(Arc::new(
                chat_sqlite::SqliteStore::open(url, settings.database_pool_size).await.map_err(StartError::Store)?
            )),
            Store::Postgres(url) => store_ports!(Arc::new(
                chat_postgres::PgStore::connect(url.expose_secret(), settings.database_pool_size)
                    .await
                    .map_err(StartError::Store)?
            )),
        };
        let master = match &settings.encryption_key {
            Some(hex) => MasterKey::from_hex(hex.expose_secret())
                .map_err(|e| StartError::Keys(format!("ENCRYPTION_KEY: {e}")))?,
            None => MasterKey::load_or_generate(&settings.data_dir).map_err(|e| StartError::Keys(e.to_string()))?,
        };
        let jwt_secret: Vec<u8> = match &settings.jwt_secret {
            Some(secret) => secret.expose_secret().as_bytes().to_vec(),
            None => chat_crypto::load_or_generate_secret(&settings.data_dir.join("jwt.secret"), 32)
                .map_err(|e| StartError::Keys(e.to_string()))?
                .expose_secret()
                .to_vec(),
        };
        let tokens = JwtIssuer::hs256(
            &jwt_secret,
            settings.jwt_issuer.clone(),
            settings.jwt_audience.clone(),
            chrono::Duration::seconds(settings.access_token_ttl_secs),
        )
        .map_err(|e| StartError::Keys(format!("JWT_SECRET: {e}")))?;
        let hasher = Argon2Hasher::new().map_err(|e| StartError::Keys(e.to_string()))?;
        let (realtime, tracker, limiter) = realtime_parts(&settings).await?;
        let blobs = blob_store(&settings.file_store)?;
        // The search key is derived from the master key before the cipher consumes it.
        let blind_indexer = Arc::new(HmacBlindIndexer::new(&master));
        let cipher = Arc::new(
            EnvelopeCipher::new(master, keys)
                .with_key_refresh(std::time::Duration::from_secs(settings.key_refresh_secs)),
        );
        let ports = Ports {
            users,
            sessions,
            workspaces,
            conversations,
            messages,
            presence,
            key_directory,
            signatures: Arc::new(chat_crypto::Ed25519Verifier),
            blind_indexer,
            search_index,
            cipher: cipher.clone(),
            sanitizer: Arc::new(AmmoniaSanitizer::default()),
            hasher: Arc::new(hasher),
            tokens: Arc::new(tokens),
            events: Arc::new(realtime.clone()),
            tracker,
            limiter: limiter.clone(),
            // Entries get the client IP of the request or socket that caused them.
            audit: Arc::new(chat_http::audit::ClientIpAudit::new(audit_log)),
            clock: Arc::new(SystemClock),
            files: file_rows,
            blobs,
            file_cipher: Arc::new(chat_crypto::ChunkedFileCipher::new(cipher)),
        };
        let limits = Limits {
            max_message_chars: settings.max_message_length,
            max_participants: settings.max_participants,
            messages_per_minute: settings.rate_limit_messages_per_minute,
            key_claims_per_minute: settings.rate_limit_key_claims_per_minute,
            uploads_per_minute: settings.rate_limit_uploads_per_minute,
            max_upload_bytes: settings.max_upload_bytes,
            ..Limits::default()
        };
        let chat = Chat::new(ports, limits);
        let gateway = GatewaySettings {
            cors_origin: settings.cors_origin.clone(),
            connections_per_minute: settings.rate_limit_connections_per_minute,
            queue_capacity: settings.ws_queue_capacity,
            heartbeat: std::time::Duration::from_secs(settings.ws_heartbeat_secs),
            idle_timeout: std::time::Duration::from_secs(settings.ws_idle_timeout_secs),
            ..GatewaySettings::default()
        };
        let housekeeping = tokio::spawn(expire_typing(chat.clone()));
        let mut metrics = Metrics::new(realtime.hub());
        metrics.count_batches(batch_stats);
        let metrics = Arc::new(metrics);
        let state = AppState { chat, readiness, realtime: realtime.clone(), limiter, gateway, metrics };
        let listener = TcpListener::bind(&settings.bind)
            .map_err(|source| StartError::Bind { addr: settings.bind.clone(), source })?;
        let port =
            listener.local_addr().map_err(|source| StartError::Bind { addr: settings.bind.clone(), source })?.port();
        let http = HttpSettings { workers: settings.http_workers, ..HttpSettings::default() };
        let server = chat_http::serve(state, listener, http)
            .map_err(|source| StartError::Bind { addr: settings.bind.clone(), source })?;
        Ok(Self { port, server, realtime, housekeeping })
    }

    /// The bound port (useful with `BIND=127.0.0.1:0`).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM, then stops gracefully: every socket is closed with 1001
    /// (clients reconnect elsewhere and `resume`), and in-flight requests finish.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let realtime = self.realtime.clone();
        let mut server = tokio::spawn(self.server);
        tokio::select! {
            finished = &mut server => {
                self.housekeeping.abort();
                return finished.map_err(std::io::Error::other)?;
            }
            () = shutdown_signal() => {}
        }
        tracing::info!(sockets = realtime.hub().connections(), "shutting down: closing sockets");
        realtime.close_all();
        handle.stop(true).await;
        self.housekeeping.abort();
        server.await.map_err(std::io::Error::other)?
    }
}

/// Ends typing indicators that were not renewed in time, announcing `typing:stop`.
async fn expire_typing(chat: Chat) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tick.tick().await;
        chat.typing.expire().await;
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
