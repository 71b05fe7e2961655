//! Server processes under test: our `chat-server` (embedded SQLite in a temporary directory,
//! or a fresh PostgreSQL database with Redis), the bare broadcast server (this binary,
//! `bare-server`), and the Node Socket.IO peer. Each runs as a child process, optionally under
//! `taskset` so it stays on its core; the bench reads its CPU and memory from `/proc`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::error::BenchError;
use crate::procfs::{self, ProcSample};

/// The rate limits the bench raises for its runs (the defaults would refuse a load test after
/// 60 messages a minute). Set high rather than to 0, so the checks still run on the hot path.
pub const RATE_LIMITS: [(&str, &str); 4] = [
    ("RATE_LIMIT_MESSAGES_PER_MINUTE", "100000000"),
    ("RATE_LIMIT_CONNECTIONS_PER_MINUTE", "100000000"),
    ("RATE_LIMIT_UPLOADS_PER_MINUTE", "3"),
    ("RATE_LIMIT_KEY_CLAIMS_PER_MINUTE", "30"),
];

/// Log level of the servers under test.
pub const SERVER_LOG: &str = "warn";

/// A port nobody listens on now (bound to port 0, then released).
///
/// # Errors
/// When no socket can be bound.
pub fn free_port() -> Result<u16, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(BenchError::io("bind port 0"))?;
    Ok(listener.local_addr().map_err(BenchError::io("local_addr"))?.port())
}

/// 32 random bytes as 64 hex characters (JWT secrets, encryption keys, names).
#[must_use]
pub fn random_hex(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes * 2);
    while out.len() < bytes * 2 {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    out.truncate(bytes * 2);
    out
}

/// Pins every thread of `pid` to `cpus` (`taskset -a -p -c`).
///
/// # Errors
/// When `taskset` cannot be run or refuses.
pub fn pin(pid: u32, cpus: &str) -> Result<(), BenchError> {
    let status = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .map_err(BenchError::io("taskset"))?;
    if status.success() { Ok(()) } else { Err(BenchError::setup(format!("taskset -p {pid} failed"))) }
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// What it is, for messages.
    pub name: String,
    child: Child,
    pid: u32,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Spawn → ready, milliseconds.
    pub ready_ms: f64,
    /// Its temporary data directory (kept until the server is dropped).
    _data: Option<tempfile::TempDir>,
    /// A REST client of it when it is ours (`chat-server`), whose `/metrics` the bench reads.
    ours: Option<chat_client::ChatClient>,
}

impl Server {
    /// `/proc` reading of the process.
    #[must_use]
    pub fn sample(&self) -> Option<ProcSample> {
        procfs::sample(&self.pid.to_string())
    }

    /// Its process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its base URL.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its group commit so far — `(transactions, messages)` of message inserts, read from
    /// `/metrics` — or `None` for a baseline or when the scrape fails.
    pub async fn batches(&self) -> Option<(u64, u64)> {
        let text = self.ours.as_ref()?.metrics().await.ok()?;
        Some((counter(&text, "chat_message_batches_total")?, counter(&text, "chat_message_batched_total")?))
    }

    /// Pins it to `cpus`.
    ///
    /// # Errors
    /// As [`pin`].
    pub fn pin(&self, cpus: &str) -> Result<(), BenchError> {
        pin(self.pid, cpus)
    }

    /// Stops it (SIGKILL; nothing of it is kept).
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Where our server keeps its data.
#[derive(Clone, Debug)]
pub enum Store {
    /// Embedded SQLite in a fresh temporary directory.
    Sqlite,
    /// A PostgreSQL database, with Redis when `redis` is set (URL, namespace).
    Postgres {
        /// `postgres://…` of a fresh database.
        url: String,
        /// `REDIS_URL` and `REDIS_NAMESPACE`.
        redis: Option<(String, String)>,
    },
}

/// How to start our server.
#[derive(Clone, Debug)]
pub struct OursConfig {
    /// `target/release/chat-server`.
    pub binary: PathBuf,
    /// Its store.
    pub store: Store,
    /// `JWT_SECRET` (nodes of one deployment share it).
    pub jwt_secret: String,
    /// `ENCRYPTION_KEY` (idem).
    pub encryption_key: String,
    /// CPUs it may run on from the start (`taskset -c` list, e.g. `0` or `0-1`).
    pub cpus: String,
}

/// `program` under `taskset -c cpus`. Always through taskset: a child inherits the
/// generator's own pinning otherwise.
fn command(program: &Path, cpus: &str) -> Command {
    let mut c = Command::new("taskset");
    c.arg("-c").arg(cpus).arg(program);
    c
}

/// Starts our server and waits until `/readyz` answers 200.
///
/// # Errors
/// When it cannot be spawned or is not ready within a minute.
pub async fn spawn_ours(name: &str, config: &OursConfig) -> Result<Server, BenchError> {
    let data = tempfile::Builder::new().prefix("chat-bench-").tempdir().map_err(BenchError::io("temp dir"))?;
    let port = free_port()?;
    let log = std::fs::File::create(data.path().join("server.log")).map_err(BenchError::io("server log"))?;
    let mut cmd = command(&config.binary, &config.cpus);
    cmd.env("BIND", format!("127.0.0.1:{port}"))
        .env("DATA_DIR", data.path())
        .env("JWT_SECRET", &config.jwt_secret)
        .env("ENCRYPTION_KEY", &config.encryption_key)
        .env("RUST_LOG", SERVER_LOG)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("CONFIG_FILE");
    for (k, v) in RATE_LIMITS {
        cmd.env(k, v);
    }
    if let Store::Postgres { url, redis } = &config.store {
        cmd.env("DATABASE_URL", url);
        if let Some((redis_url, namespace)) = redis {
            cmd.env("REDIS_URL", redis_url).env("REDIS_NAMESPACE", namespace);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().map_err(BenchError::io("server log"))?)
        .stderr(log)
        .kill_on_drop(true);
    let started = Instant::now();
    let child = cmd.spawn().map_err(BenchError::io(format!("spawn {}", config.binary.display())))?;
    let pid = child.id().ok_or_else(|| BenchError::setup("server exited at once"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut server = Server { name: name.to_owned(), child, pid, addr, ready_ms: 0.0, _data: Some(data), ours: None };
    let client = chat_client::ChatClient::new(server.base_url());
    loop {
        if client.readyz().await.is_ok() {
            break;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            let log = server._data.as_ref().map(|d| d.path().join("server.log"));
            let tail = log.and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
            return Err(BenchError::setup(format!("{name} exited ({status}): {}", last_lines(&tail, 5))));
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err(BenchError::setup(format!("{name} not ready after 60 s")));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.ready_ms = started.elapsed().as_secs_f64() * 1000.0;
    server.ours = Some(client);
    Ok(server)
}

/// The value of an unlabelled counter in an OpenMetrics text.
fn counter(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// Starts `chat-bench bare-server` (this executable) and waits until it accepts connections.
///
/// # Errors
/// When it cannot be spawned or never listens.
pub async fn spawn_bare(cpus: &str) -> Result<Server, BenchError> {
    let exe = std::env::current_exe().map_err(BenchError::io("current_exe"))?;
    let port = free_port()?;
    let mut cmd = command(&exe, cpus);
    cmd.arg("bare-server").arg("--port").arg(port.to_string()).stdin(Stdio::null()).kill_on_drop(true);
    let started = Instant::now();
    let child = cmd.spawn().map_err(BenchError::io("spawn bare-server"))?;
    let pid = child.id().ok_or_else(|| BenchError::setup("bare-server exited at once"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while TcpStream::connect(addr).is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            return Err(BenchError::setup("bare-server did not listen within 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(Server { name: "bare".to_owned(), child, pid, addr, ready_ms, _data: None, ours: None })
}

/// Starts the Node Socket.IO peer (`node server.js` in `dir`), installing it with `npm ci`
/// first when `node_modules` is absent. `Ok(Err(reason))` when the peer cannot be run here.
///
/// # Errors
/// When it starts but never prints `listening <port>`.
pub async fn spawn_socketio(
    dir: &Path,
    database_url: &str,
    jwt_secret: &str,
    cpus: &str,
) -> Result<Result<Server, String>, BenchError> {
    if !dir.join("server.js").exists() {
        return Ok(Err(format!("{} has no server.js", dir.display())));
    }
    if std::process::Command::new("node").arg("--version").output().is_err() {
        return Ok(Err("node is not on PATH".to_owned()));
    }
    if !dir.join("node_modules").exists() {
        let install = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match install {
            Ok(status) if status.success() => {}
            Ok(status) => return Ok(Err(format!("npm ci failed ({status})"))),
            Err(e) => return Ok(Err(format!("npm could not run: {e}"))),
        }
    }
    let port = free_port()?;
    let log_path = std::env::temp_dir().join(format!("chat-bench-socketio-{port}.log"));
    let log = std::fs::File::create(&log_path).map_err(BenchError::io("socket.io log"))?;
    let mut cmd = command(Path::new("node"), cpus);
    cmd.arg("server.js")
        .current_dir(dir)
        .env("PORT", port.to_string())
        .env("DATABASE_URL", database_url)
        .env("JWT_SECRET", jwt_secret)
        .env("NODE_ENV", "production")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(BenchError::io("spawn node"))?;
    let pid = child.id().ok_or_else(|| BenchError::setup("node exited at once"))?;
    let stdout = child.stdout.take().ok_or_else(|| BenchError::setup("node stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let wanted = format!("listening {port}");
    let waited = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.trim() == wanted {
                return true;
            }
        }
        false
    })
    .await;
    if waited != Ok(true) {
        let _ = child.kill().await;
        let stderr = std::fs::read_to_string(&log_path).unwrap_or_default();
        return Ok(Err(format!(
            "the Socket.IO peer did not print `listening <port>` within 30 s (stderr: {})",
            last_lines(&stderr, 3)
        )));
    }
    // Keep draining its stdout so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    Ok(Ok(Server { name: "socketio".to_owned(), child, pid, addr, ready_ms, _data: None, ours: None }))
}

/// A fresh PostgreSQL database for one run, dropped by [`FreshDb::drop_db`].
#[derive(Debug)]
pub struct FreshDb {
    admin_url: String,
    name: String,
    /// `postgres://…/<name>`.
    pub url: String,
}

impl FreshDb {
    /// Creates `bench_<random>` on the server of `admin_url` (a URL of an existing database).
    ///
    /// # Errors
    /// When PostgreSQL cannot be reached or refuses.
    pub async fn create(admin_url: &str) -> Result<Self, BenchError> {
        let name = format!("bench_{}", random_hex(6));
        execute(admin_url, &format!("CREATE DATABASE \"{name}\"")).await?;
        Ok(Self { admin_url: admin_url.to_owned(), url: with_database(admin_url, &name), name })
    }

    /// Drops the database (closing what is still connected).
    pub async fn drop_db(self) {
        let _ = execute(&self.admin_url, &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)).await;
    }
}

/// `url` with its database (the path) replaced by `database`, everything else kept; `url`
/// unchanged when it does not parse (connecting to it will say why).
pub(crate) fn with_database(url: &str, database: &str) -> String {
    url::Url::parse(url).map_or_else(
        |_| url.to_owned(),
        |mut parsed| {
            parsed.set_path(&format!("/{database}"));
            parsed.into()
        },
    )
}

/// `url` without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    url::Url::parse(url).map_or_else(
        |_| "<unparseable URL>".to_owned(),
        |mut parsed| {
            let _ = parsed.set_password(None);
            parsed.into()
        },
    )
}

async fn execute(url: &str, sql: &str) -> Result<(), BenchError> {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    let mut conn = AsyncPgConnection::establish(url).await.map_err(|e| BenchError::setup(format!("postgres: {e}")))?;
    diesel::sql_query(sql).execute(&mut conn).await.map_err(|e| BenchError::setup(format!("postgres: {e}")))?;
    Ok(())
}

/// `SHOW synchronous_commit` of the server at `url`.
///
/// # Errors
/// When PostgreSQL cannot be reached.
pub async fn synchronous_commit(url: &str) -> Result<String, BenchError> {
    use diesel::QueryableByName;
    use diesel::sql_types::Text;
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = Text)]
        synchronous_commit: String,
    }
    let mut conn = AsyncPgConnection::establish(url).await.map_err(|e| BenchError::setup(format!("postgres: {e}")))?;
    let rows: Vec<Setting> = diesel::sql_query("SHOW synchronous_commit")
        .load(&mut conn)
        .await
        .map_err(|e| BenchError::setup(format!("postgres: {e}")))?;
    Ok(rows.into_iter().next().map_or_else(|| "unknown".to_owned(), |s| s.synchronous_commit))
}

/// Whether something accepts TCP connections at `addr` (is Redis up?).
#[must_use]
pub fn reachable(addr: &str) -> bool {
    addr.parse::<SocketAddr>().is_ok_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok())
}

#[cfg(test)]
mod tests {
    use super::counter;

    #[test]
    fn a_counter_is_read_by_its_exact_name() {
        let text = "# TYPE chat_message_batches counter\nchat_message_batches_total 12\n\
                    chat_message_batched_total 40\nchat_message_batched_total_other 7\n# EOF\n";
        assert_eq!(counter(text, "chat_message_batches_total"), Some(12));
        assert_eq!(counter(text, "chat_message_batched_total"), Some(40));
        assert_eq!(counter(text, "chat_message_batch"), None);
    }
}
