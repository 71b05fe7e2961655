//! `TestApp`: a real server on port 0 over a fresh store — a temp-file SQLite database or a
//! brand-new PostgreSQL database — and a typed little client for the scenarios.

use std::any::Any;
use std::path::PathBuf;

use chat_protocol::{AuthResponse, Conversation, Message, Page, Workspace};
use chat_server::{Application, Settings};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

/// Which deployment a scenario runs on: embedded (SQLite, in-process fan-out) or
/// production (PostgreSQL and Redis).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// Where the data lives, so at-rest tests can read it raw.
pub(crate) enum Storage {
    Sqlite {
        path: PathBuf,
    },
    Postgres {
        url: String,
    },
    /// Owned by another process.
    Remote,
}

pub(crate) struct TestApp {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    pub(crate) storage: Storage,
    /// The server's `DATA_DIR` (`None` for a remote server), for at-rest scans.
    pub(crate) data_dir: Option<PathBuf>,
    /// `(REDIS_URL, REDIS_NAMESPACE)` when the server uses Redis, for at-rest scans.
    pub(crate) redis: Option<(String, String)>,
    _guards: Vec<Box<dyn Any + Send>>,
}

/// A registered user with a live access token.
#[derive(Clone, Debug)]
pub(crate) struct TestUser {
    pub(crate) id: Uuid,
    pub(crate) email: String,
    pub(crate) token: String,
    pub(crate) refresh: String,
}

/// A response, with its status and parsed JSON body (Null when empty).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
}

impl Reply {
    pub(crate) fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.body.clone()).unwrap_or_else(|e| panic!("unexpected body {}: {e}", self.body))
    }

    /// Asserts the status and SPEC's error code, with a readable failure.
    #[track_caller]
    pub(crate) fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["error"]["code"], code, "body: {}", self.body);
        assert!(self.body["error"]["requestId"].as_str().is_some_and(|id| !id.is_empty()), "body: {}", self.body);
    }

    #[track_caller]
    pub(crate) fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        self
    }
}

/// `bytes` random bytes as hex (secrets and keys for a test server).
pub(crate) fn random_hex(bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", Uuid::new_v4().as_bytes()[0])).collect()
}

impl TestApp {
    /// Spawns a server on `backend`; `None` when that backend's service is unavailable and
    /// not required (see `CHAT_REQUIRE_SERVICES`).
    pub(crate) async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, &[]).await
    }

    /// [`Self::spawn`] with extra settings (`(NAME, value)`, overriding the test defaults).
    pub(crate) async fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut guards: Vec<Box<dyn Any + Send>> = Vec::new();
        let (database_url, storage) = match backend {
            Backend::Sqlite => {
                let path = dir.path().join("chat.db");
                (format!("sqlite://{}", path.display()), Storage::Sqlite { path })
            }
            Backend::Postgres => {
                let db = chat_postgres::testing::fresh_database().await?;
                let url = db.url().to_owned();
                guards.push(Box::new(db));
                (url.clone(), Storage::Postgres { url })
            }
        };
        // Production mode is PostgreSQL *and* Redis: the real-time parts go through Redis too.
        let redis = match backend {
            Backend::Sqlite => Vec::new(),
            Backend::Postgres => {
                let url = chat_redis::testing::redis_url().await?;
                vec![("REDIS_URL", url), ("REDIS_NAMESPACE", chat_redis::testing::namespace())]
            }
        };
        let redis_target = match redis.as_slice() {
            [(_, url), (_, namespace)] => Some((url.clone(), namespace.clone())),
            _ => None,
        };
        let data_dir = dir.path().to_path_buf();
        let vars = [
            ("DATABASE_URL", database_url),
            ("DATA_DIR", dir.path().display().to_string()),
            ("BIND", "127.0.0.1:0".to_owned()),
            ("JWT_SECRET", random_hex(32)),
            ("ENCRYPTION_KEY", random_hex(32)),
            ("HTTP_WORKERS", "2".to_owned()),
            ("DATABASE_POOL_SIZE", "8".to_owned()),
            // Scenarios send in bursts; the limits have tests of their own.
            ("RATE_LIMIT_MESSAGES_PER_MINUTE", "0".to_owned()),
            ("RATE_LIMIT_CONNECTIONS_PER_MINUTE", "0".to_owned()),
            ("RATE_LIMIT_UPLOADS_PER_MINUTE", "0".to_owned()),
        ];
        let vars = vars
            .into_iter()
            .chain(redis)
            .map(|(k, v)| (k.to_owned(), v))
            .chain(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let settings = Settings::from_vars(vars).expect("settings");
        let app = Application::build(settings).await.expect("server starts");
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        guards.push(Box::new(dir));
        Some(Self {
            base,
            client: reqwest::Client::new(),
            storage,
            data_dir: Some(data_dir),
            redis: redis_target,
            _guards: guards,
        })
    }

    /// A client for a server started elsewhere (another process) at `base`.
    pub(crate) fn attach(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            client: reqwest::Client::new(),
            storage: Storage::Remote,
            data_dir: None,
            redis: None,
            _guards: Vec::new(),
        }
    }

    /// Any request; `body` is sent as JSON when given.
    pub(crate) async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let text = res.text().await.expect("body read");
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Reply { status, body }
    }

    pub(crate) async fn get(&self, path: &str, user: &TestUser) -> Reply {
        self.call(Method::GET, path, Some(&user.token), None).await
    }

    pub(crate) async fn post(&self, path: &str, user: &TestUser, body: impl Serialize) -> Reply {
        self.call(Method::POST, path, Some(&user.token), Some(serde_json::to_value(body).expect("json"))).await
    }

    pub(crate) async fn put(&self, path: &str, user: &TestUser, body: impl Serialize) -> Reply {
        self.call(Method::PUT, path, Some(&user.token), Some(serde_json::to_value(body).expect("json"))).await
    }

    pub(crate) async fn delete(&self, path: &str, user: &TestUser) -> Reply {
        self.call(Method::DELETE, path, Some(&user.token), None).await
    }

    /// Registers `name@example.test`.
    pub(crate) async fn register(&self, name: &str) -> TestUser {
        let email = format!("{name}@example.test");
        let reply = self
            .call(
                Method::POST,
                "/auth/register",
                None,
                Some(json!({"email": email, "password": "correct horse battery", "displayName": name})),
            )
            .await;
        reply.assert_status(201);
        let auth: AuthResponse = reply.json();
        TestUser { id: auth.user.id, email, token: auth.access_token, refresh: auth.refresh_token }
    }

    pub(crate) async fn create_workspace(&self, owner: &TestUser, name: &str) -> Workspace {
        let reply = self.post("/workspaces", owner, json!({"name": name})).await;
        reply.assert_status(201);
        reply.json()
    }

    pub(crate) async fn add_to_workspace(&self, admin: &TestUser, workspace: Uuid, user: &TestUser, role: &str) {
        self.post(&format!("/workspaces/{workspace}/members"), admin, json!({"userId": user.id, "role": role}))
            .await
            .assert_status(201);
    }

    pub(crate) async fn create_conversation(&self, user: &TestUser, body: Value) -> Reply {
        self.post("/chat/conversations", user, body).await
    }

    /// Creates a named conversation of `kind` (`CHANNEL` or `GROUP`) with `members` besides `user`.
    async fn named(
        &self,
        kind: &str,
        user: &TestUser,
        workspace: Uuid,
        name: &str,
        members: &[&TestUser],
    ) -> Conversation {
        let ids: Vec<Uuid> = members.iter().map(|m| m.id).collect();
        let reply = self
            .create_conversation(user, json!({"type": kind, "workspaceId": workspace, "name": name, "memberIds": ids}))
            .await;
        reply.assert_status(201);
        reply.json()
    }

    pub(crate) async fn channel(
        &self,
        user: &TestUser,
        workspace: Uuid,
        name: &str,
        members: &[&TestUser],
    ) -> Conversation {
        self.named("CHANNEL", user, workspace, name, members).await
    }

    pub(crate) async fn group(
        &self,
        user: &TestUser,
        workspace: Uuid,
        name: &str,
        members: &[&TestUser],
    ) -> Conversation {
        self.named("GROUP", user, workspace, name, members).await
    }

    pub(crate) async fn send(&self, user: &TestUser, conversation: Uuid, content: &str) -> Message {
        let reply =
            self.post(&format!("/chat/conversations/{conversation}/messages"), user, json!({"content": content})).await;
        reply.assert_status(201);
        reply.json()
    }

    pub(crate) async fn messages(&self, user: &TestUser, conversation: Uuid, query: &str) -> Page<Message> {
        let reply = self.get(&format!("/chat/conversations/{conversation}/messages{query}"), user).await;
        reply.assert_status(200);
        reply.json()
    }

    /// A workspace with an owner, an extra member, and a stranger in another workspace.
    pub(crate) async fn cast(&self) -> Cast {
        let alice = self.register("alice").await;
        let bob = self.register("bob").await;
        let mallory = self.register("mallory").await;
        let workspace = self.create_workspace(&alice, "Acme").await;
        self.add_to_workspace(&alice, workspace.id, &bob, "member").await;
        let elsewhere = self.create_workspace(&mallory, "Elsewhere").await;
        Cast { alice, bob, mallory, workspace: workspace.id, elsewhere: elsewhere.id }
    }

    /// Every byte the store holds, as text where it can be read, for at-rest scans.
    pub(crate) async fn raw_storage_dump(&self) -> Vec<u8> {
        match &self.storage {
            Storage::Sqlite { path } => {
                let mut bytes = Vec::new();
                for suffix in ["", "-wal", "-shm"] {
                    let file = PathBuf::from(format!("{}{suffix}", path.display()));
                    if let Ok(mut content) = std::fs::read(&file) {
                        bytes.append(&mut content);
                    }
                }
                bytes
            }
            Storage::Remote => panic!("the storage of a remote server is not readable from here"),
            Storage::Postgres { url } => {
                use diesel::QueryableByName;
                use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
                #[derive(QueryableByName)]
                struct Dump {
                    #[diesel(sql_type = diesel::sql_types::Text)]
                    dump: String,
                }
                let mut conn = AsyncPgConnection::establish(url).await.expect("connect");
                // Every table of the database as XML, bytea columns as hex.
                diesel::sql_query("SET xmlbinary = 'hex'").execute(&mut conn).await.expect("set");
                let dump: Dump = diesel::sql_query("SELECT database_to_xml(true, true, '')::text AS dump")
                    .get_result(&mut conn)
                    .await
                    .expect("dump");
                dump.dump.into_bytes()
            }
        }
    }
}

pub(crate) struct Cast {
    pub(crate) alice: TestUser,
    pub(crate) bob: TestUser,
    pub(crate) mallory: TestUser,
    pub(crate) workspace: Uuid,
    pub(crate) elsewhere: Uuid,
}

/// Runs each named scenario (`async fn name(app: TestApp)`) once on SQLite and once on
/// PostgreSQL, as `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let app = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await.expect("sqlite");
                    super::$name(app).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some(app) = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Postgres).await else {
                        return;
                    };
                    super::$name(app).await;
                }
            }
        )*
    };
}
