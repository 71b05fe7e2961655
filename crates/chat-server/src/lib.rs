//! # chat-server
//!
//! The SecureRealTime Chat server: it reads [`Settings`], opens the store the settings name
//! (embedded SQLite by default, PostgreSQL for production), wires the adapters into
//! `chat-domain`'s [`Chat`] services, and serves `chat-http`'s application.
//!
//! **Layer.** The composition root: the only crate that knows every adapter. `main.rs` stays
//! small; [`Application::build`] is what tests call with port 0.

#![forbid(unsafe_code)]

pub mod settings;

use std::net::TcpListener;
use std::sync::Arc;

use async_trait::async_trait;
use chat_crypto::{Argon2Hasher, EnvelopeCipher, JwtIssuer, MasterKey};
use chat_domain::clock::SystemClock;
use chat_domain::{Chat, Limits, Ports};
use chat_http::events::InProcessPublisher;
use chat_http::sanitize::AmmoniaSanitizer;
use chat_http::{AppState, HttpSettings, Readiness};
use secrecy::ExposeSecret;
pub use settings::{LogFormat, Settings, Store};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened or migrated.
    #[error("opening the store failed")]
    Store(#[source] chat_domain::error::RepoError),
    /// A key or secret could not be loaded.
    #[error("loading keys failed: {0}")]
    Keys(String),
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

/// A built, bound server.
#[allow(missing_debug_implementations)]
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    /// Live event stream (for the gateway and tests).
    pub events: InProcessPublisher,
}

impl Application {
    /// Opens the store, loads or generates keys, wires the services and binds `settings.bind`.
    ///
    /// # Errors
    /// [`StartError`] when the store, the keys or the address fail.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let (users, sessions, workspaces, conversations, messages, presence, keys, readiness) = match &settings.store {
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
        let events = InProcessPublisher::new(4096);
        let ports = Ports {
            users,
            sessions,
            workspaces,
            conversations,
            messages,
            presence,
            cipher: Arc::new(EnvelopeCipher::new(master, keys)),
            sanitizer: Arc::new(AmmoniaSanitizer::default()),
            hasher: Arc::new(hasher),
            tokens: Arc::new(tokens),
            events: Arc::new(events.clone()),
            clock: Arc::new(SystemClock),
        };
        let limits = Limits {
            max_message_chars: settings.max_message_length,
            max_participants: settings.max_participants,
            ..Limits::default()
        };
        let state = AppState { chat: Chat::new(ports, limits), readiness };
        let listener = TcpListener::bind(&settings.bind)
            .map_err(|source| StartError::Bind { addr: settings.bind.clone(), source })?;
        let port =
            listener.local_addr().map_err(|source| StartError::Bind { addr: settings.bind.clone(), source })?.port();
        let http = HttpSettings { workers: settings.http_workers, ..HttpSettings::default() };
        let server = chat_http::serve(state, listener, http)
            .map_err(|source| StartError::Bind { addr: settings.bind.clone(), source })?;
        Ok(Self { port, server, events })
    }

    /// The bound port (useful with `BIND=127.0.0.1:0`).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM, then stops gracefully (in-flight requests finish).
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
