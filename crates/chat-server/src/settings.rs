//! [`Settings`]: every knob of the server, read once from the environment (names from SPEC.md
//! §5) and an optional `KEY=VALUE` file named by `CONFIG_FILE` (the environment wins). Nothing
//! else in the workspace reads the environment. Secrets are `SecretString`s, so `Debug` never
//! prints them.

use std::collections::HashMap;
use std::path::PathBuf;

use secrecy::SecretString;

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where conversations are stored.
#[derive(Clone, Debug)]
pub enum Store {
    /// Embedded SQLite file.
    Sqlite(String),
    /// PostgreSQL (the URL may hold a password).
    Postgres(SecretString),
}

/// Where sealed file bodies are stored (`FILE_STORE`).
#[derive(Clone, Debug)]
pub enum FileStore {
    /// A local directory (default `$DATA_DIR/files`).
    Local(PathBuf),
    /// An S3-compatible bucket, `FILE_STORE=s3://bucket[/prefix]`.
    S3 {
        /// The `s3://` URL.
        url: String,
        /// Every non-empty `AWS_*` variable (endpoint, credentials, region, `AWS_ALLOW_HTTP`…),
        /// by name, for object_store to interpret. Values are secrets: `Debug` shows names only.
        aws: Vec<(String, SecretString)>,
    },
}

/// The server's configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `DATABASE_URL`: `sqlite://path` or `postgres://…`; default `sqlite://$DATA_DIR/chat.db`.
    pub store: Store,
    /// `DATABASE_POOL_SIZE` (default 16).
    pub database_pool_size: usize,
    /// `REDIS_URL`: cross-node fan-out, presence, rate limits (used by the real-time gateway).
    pub redis_url: Option<SecretString>,
    /// `REDIS_NAMESPACE`: prefix of every Redis key and channel (default `chat`); nodes of one
    /// deployment share it.
    pub redis_namespace: String,
    /// `JWT_SECRET` (HS256, ≥ 32 bytes); default: generated once into `$DATA_DIR/jwt.secret`.
    pub jwt_secret: Option<SecretString>,
    /// `JWT_ISSUER` (default `securerealtime`).
    pub jwt_issuer: String,
    /// `JWT_AUDIENCE` (default `securerealtime-api`).
    pub jwt_audience: String,
    /// `ACCESS_TOKEN_TTL_SECONDS` (default 900, at most 900).
    pub access_token_ttl_secs: i64,
    /// `DATA_DIR` (default `./data`).
    pub data_dir: PathBuf,
    /// `ENCRYPTION_KEY`: 64 hex chars; default: generated once into `$DATA_DIR/master.key`.
    pub encryption_key: Option<SecretString>,
    /// `CORS_ORIGIN`: the browser origin allowed to call the API.
    pub cors_origin: Option<String>,
    /// `MAX_MESSAGE_LENGTH` in characters (default 4000).
    pub max_message_length: usize,
    /// `MAX_PARTICIPANTS` (default 10,000).
    pub max_participants: u32,
    /// `RATE_LIMIT_MESSAGES_PER_MINUTE` (default 60; 0 disables).
    pub rate_limit_messages_per_minute: u32,
    /// `RATE_LIMIT_CONNECTIONS_PER_MINUTE` (default 30; 0 disables).
    pub rate_limit_connections_per_minute: u32,
    /// `RATE_LIMIT_UPLOADS_PER_MINUTE` (default 3; 0 disables).
    pub rate_limit_uploads_per_minute: u32,
    /// `RATE_LIMIT_KEY_CLAIMS_PER_MINUTE`: E2E prekey claims per user (default 30; 0 disables).
    pub rate_limit_key_claims_per_minute: u32,
    /// `BIND` (default `127.0.0.1:8080`; port 0 picks a free port).
    pub bind: String,
    /// `FILE_STORE`: a directory (default `$DATA_DIR/files`) or `s3://bucket[/prefix]`, the
    /// latter configured by the standard `AWS_*` variables.
    pub file_store: FileStore,
    /// `MAX_UPLOAD_BYTES`: the largest file `POST /files` accepts (default 25 MiB).
    pub max_upload_bytes: usize,
    /// `WS_QUEUE_CAPACITY`: pushes a socket may have queued before it is closed as a slow
    /// consumer (default 1024).
    pub ws_queue_capacity: usize,
    /// `WS_HEARTBEAT_SECONDS`: how often a socket is pinged (default 15).
    pub ws_heartbeat_secs: u64,
    /// `WS_IDLE_TIMEOUT_SECONDS`: a socket silent this long — no frame, no pong — is closed
    /// (default 45; more than the heartbeat).
    pub ws_idle_timeout_secs: u64,
    /// `HTTP_WORKERS` (default: one per core).
    pub http_workers: usize,
    /// `KEY_REFRESH_SECONDS`: how long a node trusts its cached workspace keys before
    /// re-checking the store, i.e. how soon it seals with a rotated key and stops opening
    /// with shredded ones (default 300).
    pub key_refresh_secs: u64,
    /// `LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
}

/// A setting that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value did not parse.
    #[error("{name}: {problem}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// `CONFIG_FILE` could not be read.
    #[error("CONFIG_FILE {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: dotenvy::Error,
    },
}

fn invalid(name: &'static str, problem: impl Into<String>) -> SettingsError {
    SettingsError::Invalid { name, problem: problem.into() }
}

struct Vars(HashMap<String, String>);

impl Vars {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).map(str::trim).filter(|v| !v.is_empty())
    }

    fn number<T: std::str::FromStr>(&self, name: &'static str, default: T) -> Result<T, SettingsError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|_| invalid(name, format!("not a valid number: {raw:?}"))),
        }
    }

    fn secret(&self, name: &str) -> Option<SecretString> {
        self.get(name).map(|v| SecretString::from(v.to_owned()))
    }
}

impl Settings {
    /// Reads the process environment (and `CONFIG_FILE`, when set).
    ///
    /// # Errors
    /// When a value is malformed or the file cannot be read.
    pub fn from_env() -> Result<Self, SettingsError> {
        let mut vars: HashMap<String, String> = HashMap::new();
        if let Ok(path) = std::env::var("CONFIG_FILE") {
            let iter =
                dotenvy::from_path_iter(&path).map_err(|source| SettingsError::File { path: path.clone(), source })?;
            for item in iter {
                let (k, v) = item.map_err(|source| SettingsError::File { path: path.clone(), source })?;
                vars.insert(k, v);
            }
        }
        vars.extend(std::env::vars());
        Self::from_vars(vars)
    }

    /// Builds settings from explicit variables (tests use this; nothing is read from the
    /// process environment).
    ///
    /// # Errors
    /// When a value is malformed.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, SettingsError> {
        let vars = Vars(vars.into_iter().collect());
        let data_dir = PathBuf::from(vars.get("DATA_DIR").unwrap_or("./data"));
        let store = match vars.get("DATABASE_URL") {
            None => Store::Sqlite(format!("sqlite://{}", data_dir.join("chat.db").display())),
            Some(url) if url.starts_with("sqlite:") => Store::Sqlite(url.to_owned()),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Store::Postgres(SecretString::from(url.to_owned()))
            }
            Some(_) => return Err(invalid("DATABASE_URL", "must start with sqlite:// or postgres://")),
        };
        let access_token_ttl_secs = vars.number("ACCESS_TOKEN_TTL_SECONDS", 900_i64)?;
        if !(30..=900).contains(&access_token_ttl_secs) {
            return Err(invalid("ACCESS_TOKEN_TTL_SECONDS", "must be between 30 and 900"));
        }
        let max_message_length = vars.number("MAX_MESSAGE_LENGTH", 4000_usize)?;
        if max_message_length == 0 {
            return Err(invalid("MAX_MESSAGE_LENGTH", "must be positive"));
        }
        let max_participants = vars.number("MAX_PARTICIPANTS", 10_000_u32)?;
        if max_participants < 2 {
            return Err(invalid("MAX_PARTICIPANTS", "must be at least 2"));
        }
        let ws_heartbeat_secs = vars.number("WS_HEARTBEAT_SECONDS", 15_u64)?;
        if ws_heartbeat_secs == 0 {
            return Err(invalid("WS_HEARTBEAT_SECONDS", "must be positive"));
        }
        let ws_idle_timeout_secs = vars.number("WS_IDLE_TIMEOUT_SECONDS", 45_u64)?;
        if ws_idle_timeout_secs <= ws_heartbeat_secs {
            // A socket that answers every ping could still be taken for idle.
            return Err(invalid("WS_IDLE_TIMEOUT_SECONDS", "must be more than WS_HEARTBEAT_SECONDS"));
        }
        let file_store = match vars.get("FILE_STORE") {
            None => FileStore::Local(data_dir.join("files")),
            Some(url) if url.starts_with("s3://") => {
                let mut aws: Vec<(String, SecretString)> = vars
                    .0
                    .keys()
                    .filter(|name| name.starts_with("AWS_"))
                    .filter_map(|name| vars.secret(name).map(|value| (name.clone(), value)))
                    .collect();
                aws.sort_by(|a, b| a.0.cmp(&b.0));
                FileStore::S3 { url: url.to_owned(), aws }
            }
            Some(other) if other.contains("://") => {
                return Err(invalid("FILE_STORE", "must be a directory or s3://bucket[/prefix]"));
            }
            Some(dir) => FileStore::Local(PathBuf::from(dir)),
        };
        let log_format = match vars.get("LOG_FORMAT").map(str::to_ascii_lowercase).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(invalid("LOG_FORMAT", format!("must be text or json, not {other:?}"))),
        };
        Ok(Self {
            store,
            database_pool_size: vars.number("DATABASE_POOL_SIZE", 16_usize)?.max(1),
            redis_url: vars.secret("REDIS_URL"),
            redis_namespace: vars.get("REDIS_NAMESPACE").unwrap_or("chat").to_owned(),
            jwt_secret: vars.secret("JWT_SECRET"),
            jwt_issuer: vars.get("JWT_ISSUER").unwrap_or("securerealtime").to_owned(),
            jwt_audience: vars.get("JWT_AUDIENCE").unwrap_or("securerealtime-api").to_owned(),
            access_token_ttl_secs,
            data_dir,
            encryption_key: vars.secret("ENCRYPTION_KEY"),
            cors_origin: vars.get("CORS_ORIGIN").map(str::to_owned),
            max_message_length,
            max_participants,
            rate_limit_messages_per_minute: vars.number("RATE_LIMIT_MESSAGES_PER_MINUTE", 60)?,
            rate_limit_connections_per_minute: vars.number("RATE_LIMIT_CONNECTIONS_PER_MINUTE", 30)?,
            rate_limit_uploads_per_minute: vars.number("RATE_LIMIT_UPLOADS_PER_MINUTE", 3)?,
            rate_limit_key_claims_per_minute: vars.number("RATE_LIMIT_KEY_CLAIMS_PER_MINUTE", 30)?,
            bind: vars.get("BIND").unwrap_or("127.0.0.1:8080").to_owned(),
            file_store,
            max_upload_bytes: vars.number("MAX_UPLOAD_BYTES", 25 * 1024 * 1024_usize)?,
            http_workers: vars.number("HTTP_WORKERS", 0_usize)?,
            key_refresh_secs: vars.number("KEY_REFRESH_SECONDS", 300_u64)?,
            ws_queue_capacity: vars.number("WS_QUEUE_CAPACITY", 1024_usize)?.max(1),
            ws_heartbeat_secs,
            ws_idle_timeout_secs,
            log_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::from_vars(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    #[test]
    fn defaults_are_the_embedded_mode() {
        let s = settings(&[]).unwrap();
        assert!(matches!(s.store, Store::Sqlite(ref url) if url == "sqlite://./data/chat.db"));
        assert_eq!(s.bind, "127.0.0.1:8080");
        assert_eq!(s.jwt_issuer, "securerealtime");
        assert_eq!(s.jwt_audience, "securerealtime-api");
        assert_eq!(s.max_message_length, 4000);
        assert_eq!(s.max_participants, 10_000);
        assert_eq!(s.rate_limit_messages_per_minute, 60);
        assert_eq!(s.key_refresh_secs, 300);
        assert_eq!((s.ws_heartbeat_secs, s.ws_idle_timeout_secs), (15, 45));
        assert!(s.redis_url.is_none());
    }

    #[test]
    fn a_postgres_url_selects_postgres_and_is_never_printed() {
        let s = settings(&[("DATABASE_URL", "postgres://u:hunter2@db/chat"), ("JWT_SECRET", "s3cret-s3cret")]).unwrap();
        assert!(matches!(s.store, Store::Postgres(_)));
        let printed = format!("{s:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("s3cret"), "{printed}");
    }

    #[test]
    fn malformed_values_are_refused_with_their_name() {
        let err = settings(&[("MAX_MESSAGE_LENGTH", "lots")]).unwrap_err();
        assert!(err.to_string().starts_with("MAX_MESSAGE_LENGTH"));
        assert!(settings(&[("DATABASE_URL", "mysql://x")]).is_err());
        assert!(settings(&[("ACCESS_TOKEN_TTL_SECONDS", "3600")]).is_err());
        assert!(settings(&[("WS_HEARTBEAT_SECONDS", "0")]).is_err());
        assert!(settings(&[("WS_HEARTBEAT_SECONDS", "30"), ("WS_IDLE_TIMEOUT_SECONDS", "30")]).is_err());
        assert!(settings(&[("LOG_FORMAT", "xml")]).is_err());
        let err = settings(&[("FILE_STORE", "gs://bucket")]).unwrap_err();
        assert!(err.to_string().starts_with("FILE_STORE"), "{err}");
    }

    #[test]
    fn the_file_store_is_a_directory_by_default_or_an_s3_bucket_whose_credentials_are_never_printed() {
        let s = settings(&[("DATA_DIR", "/srv/chat")]).unwrap();
        assert!(matches!(s.file_store, FileStore::Local(ref dir) if dir == std::path::Path::new("/srv/chat/files")));
        let s = settings(&[("FILE_STORE", "/mnt/blobs")]).unwrap();
        assert!(matches!(s.file_store, FileStore::Local(ref dir) if dir == std::path::Path::new("/mnt/blobs")));

        let s = settings(&[
            ("FILE_STORE", "s3://chat-files/prod"),
            ("AWS_ENDPOINT", "http://minio:9000"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-hunter2"),
            ("AWS_SESSION_TOKEN", ""),
            ("DATABASE_URL", "sqlite://x.db"),
        ])
        .unwrap();
        let FileStore::S3 { ref url, ref aws } = s.file_store else { panic!("expected S3: {:?}", s.file_store) };
        assert_eq!(url, "s3://chat-files/prod");
        let names: Vec<&str> = aws.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            ["AWS_ACCESS_KEY_ID", "AWS_ENDPOINT", "AWS_SECRET_ACCESS_KEY"],
            "AWS_* only, empty ones dropped"
        );
        let printed = format!("{s:?}");
        assert!(printed.contains("AWS_SECRET_ACCESS_KEY"), "{printed}");
        assert!(!printed.contains("hunter2") && !printed.contains("AKIDEXAMPLE"), "{printed}");
    }
}
