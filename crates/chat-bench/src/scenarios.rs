//! The scenarios of issue 5, driven against real server processes: fan-out (ours, bare,
//! Socket.IO), durable (SQLite, PostgreSQL, plus the naive path), idle connections, and two
//! nodes. Each phase starts its own server so one phase's state never skews another's figures;
//! the server runs on [`Env::server_cpus`] while measured, the generator on its own core.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::conn::{self, Command, Conn, ConnSpec, Join, Shared, take_all};
use crate::error::BenchError;
use crate::procfs::{self, ProcSample};
use crate::profile::Profile;
use crate::provision::{self, World};
use crate::report::{Durable, Fanout, Idle, Naive, Report, Shape, Startup};
use crate::server::{self, FreshDb, OursConfig, Server, Store};
use crate::stats::{Latency, Step, capacity, refinement};
use crate::wire::Protocol;

/// Refining stops once the capacity and the failure above it are this close (5 %).
const MIN_REFINEMENT: f64 = 1.05;

/// The longest a step waits, after its senders' time is up, for their last sends and for
/// the deliveries still under way.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Where things are and which cores to use.
#[derive(Clone, Debug)]
pub struct Env {
    /// The profile.
    pub profile: Profile,
    /// `target/release/chat-server`.
    pub binary: PathBuf,
    /// A PostgreSQL URL to create databases from (`postgres://postgres@127.0.0.1/postgres`).
    pub pg_admin: String,
    /// Redis for the two-node scenario.
    pub redis_url: String,
    /// `bench/peers/socketio`.
    pub socketio_dir: PathBuf,
    /// CPUs the servers run on while measured (`0`).
    pub server_cpus: String,
    /// CPUs servers may use while being provisioned (all).
    pub all_cpus: String,
    /// Phases to run (`fanout`, `durable`, `idle`, `two-nodes`, `startup`).
    pub phases: Vec<String>,
}

impl Env {
    fn runs(&self, phase: &str) -> bool {
        self.phases.iter().any(|p| p == phase)
    }
}

enum Drive {
    Pace { per_sender: f64 },
    Closed { window: usize },
}

/// Runs the phases and fills a [`Report`].
#[derive(Debug)]
pub struct Runner {
    env: Env,
    shared: Arc<Shared>,
    next_step: u32,
    jwt_secret: String,
    encryption_key: String,
}

fn log(message: &str) {
    tracing::info!("{message}");
}

impl Runner {
    /// A runner for `env`.
    #[must_use]
    pub fn new(env: Env) -> Self {
        Self {
            env,
            shared: Arc::new(Shared::default()),
            next_step: 0,
            jwt_secret: server::random_hex(32),
            encryption_key: server::random_hex(32),
        }
    }

    fn ours_config(&self, store: Store) -> OursConfig {
        OursConfig {
            binary: self.env.binary.clone(),
            store,
            jwt_secret: self.jwt_secret.clone(),
            encryption_key: self.encryption_key.clone(),
            cpus: self.env.all_cpus.clone(),
        }
    }

    /// Runs every selected phase; a phase that fails is noted and the others still run.
    pub async fn run(&mut self, report: &mut Report) {
        if self.env.runs("startup") {
            match self.startup().await {
                Ok(s) => report.startup = Some(s),
                Err(e) => report.notes.push(format!("startup: {e}")),
            }
        }
        if self.env.runs("fanout") {
            self.fanout(report).await;
        }
        if self.env.runs("durable") {
            self.durable(report).await;
        }
        if self.env.runs("idle") {
            match self.idle().await {
                Ok(i) => report.idle = Some(i),
                Err(e) => report.notes.push(format!("idle: {e}")),
            }
        }
        if self.env.runs("two-nodes") {
            match self.two_nodes().await {
                Ok(f) => report.two_nodes = Some(f),
                Err(e) => report.notes.push(format!("two nodes: {e}")),
            }
        }
    }

    // ------------------------------------------------------------------ steps

    #[allow(clippy::too_many_arguments)]
    async fn step(
        &mut self,
        conns: &[Conn],
        senders: &[usize],
        drive: &Drive,
        seconds: f64,
        recipients: u64,
        servers: &[&Server],
        offered: f64,
    ) -> (Step, Latency) {
        self.next_step += 1;
        let id = self.next_step;
        let _ = take_all(conns);
        self.shared.set_step(id);
        let batches_before = batches(servers).await;
        let before: Vec<Option<ProcSample>> = servers.iter().map(|s| s.sample()).collect();
        let gen_before = procfs::self_cpu_secs();
        let start = tokio::time::Instant::now();
        let until = start + Duration::from_secs_f64(seconds);
        for &i in senders {
            conns[i].command(match *drive {
                Drive::Pace { per_sender } => Command::Pace { step: id, per_sec: per_sender, until },
                Drive::Closed { window } => Command::ClosedLoop { step: id, window, until },
            });
        }
        tokio::time::sleep_until(until).await;
        let sent_end = Instant::now();
        let mut last = (u64::MAX, Instant::now());
        loop {
            if senders.iter().any(|&i| conns[i].stats.is_pacing()) && sent_end.elapsed() < DRAIN_LIMIT {
                // A sender's last tick is still to run: what it sends belongs to this step.
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            let sent: u64 = senders.iter().map(|&i| conns[i].stats.sent()).sum();
            let (done, wanted) = match drive {
                Drive::Pace { .. } => (conns.iter().map(|c| c.stats.delivered()).sum::<u64>(), sent * recipients),
                Drive::Closed { .. } => (conns.iter().map(|c| c.stats.acked()).sum::<u64>(), sent),
            };
            if done >= wanted {
                break;
            }
            if done == last.0 {
                if last.1.elapsed() > Duration::from_millis(500) {
                    break;
                }
            } else {
                last = (done, Instant::now());
            }
            if sent_end.elapsed() > DRAIN_LIMIT {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let wall_secs = start.elapsed().as_secs_f64();
        let after: Vec<Option<ProcSample>> = servers.iter().map(|s| s.sample()).collect();
        let generator_cpu_secs = procfs::self_cpu_secs() - gen_before;
        let messages_per_batch = match (batches_before, batches(servers).await) {
            (Some((b0, m0)), Some((b1, m1))) if b1 > b0 => Some((m1 - m0) as f64 / (b1 - b0) as f64),
            _ => None,
        };
        self.shared.set_step(0);
        let t = take_all(conns);
        let server_cpu_secs = before
            .iter()
            .zip(&after)
            .map(|(b, a)| match (b, a) {
                (Some(b), Some(a)) => a.cpu_secs - b.cpu_secs,
                _ => 0.0,
            })
            .sum();
        let step = Step {
            offered_per_sec: offered,
            sent: t.sent,
            seconds,
            wall_secs,
            delivered: t.delivered,
            expected: t.sent * recipients,
            acked: t.acked,
            errors: t.errors,
            closed: t.closed,
            latency: t.latency.as_ref().map(Latency::from_histogram).unwrap_or_default(),
            server_cpu_secs,
            generator_cpu_secs,
            server_hwm_kib: after.iter().flatten().map(|s| s.hwm_kib).max().unwrap_or(0),
            messages_per_batch,
        };
        (step, t.ack_latency.as_ref().map(Latency::from_histogram).unwrap_or_default())
    }

    /// One step of the ladder at `offered` deliveries/s (each sender paced to `per_sender`
    /// messages/s), logged with `note`.
    #[allow(clippy::too_many_arguments)]
    async fn paced(
        &mut self,
        conns: &[Conn],
        senders: &[usize],
        per_sender: f64,
        recipients: u64,
        servers: &[&Server],
        offered: f64,
        note: &str,
    ) -> Step {
        let drive = Drive::Pace { per_sender };
        let (step, _) =
            self.step(conns, senders, &drive, self.env.profile.step_secs, recipients, servers, offered).await;
        let batch = step.messages_per_batch.map(|b| format!(", {b:.1} msg/commit")).unwrap_or_default();
        log(&format!(
            "  {:>9.0}/s offered{note}: {:.3}% delivered, p99 {:.1} ms, generator {:.0}%{batch}",
            offered,
            step.delivered_ratio() * 100.0,
            step.latency.p99_us as f64 / 1000.0,
            step.generator_utilisation() * 100.0
        ));
        step
    }

    /// Steps up `ladder` until a step fails, refines the capacity found between its last pass
    /// and that failure (`Profile::refine` steps), then measures half that capacity if no step
    /// did (the latency targets are read there).
    async fn ladder(
        &mut self,
        conns: &[Conn],
        senders: &[usize],
        shape: Shape,
        ladder: &[f64],
        servers: &[&Server],
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        let recipients = shape.size as u64;
        let per_sender = |offered: f64| offered / (shape.groups * shape.size * shape.senders) as f64;
        // Warm-up, not recorded: connections, caches and prepared statements settle.
        let warm = Drive::Pace { per_sender: per_sender(ladder.first().copied().unwrap_or(1000.0) / 4.0) };
        let _ = self.step(conns, senders, &warm, 0.5, recipients, servers, 0.0).await;
        // When the lowest step fails, halve it (up to three times) to find a passing load.
        let mut ladder = ladder.to_vec();
        let mut halvings = 0;
        let mut i = 0;
        while i < ladder.len() {
            let offered = ladder[i];
            i += 1;
            let step = self.paced(conns, senders, per_sender(offered), recipients, servers, offered, "").await;
            let passed = step.passes();
            let lowest = steps.iter().all(|s: &Step| s.offered_per_sec > offered);
            steps.push(step);
            if !passed {
                if lowest && halvings < 3 {
                    halvings += 1;
                    ladder = vec![(offered / 2.0).round()];
                    i = 0;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                break;
            }
            if halvings > 0 {
                // A halved load passed: that is the capacity found; stop.
                break;
            }
            // Let queues settle between steps.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Narrow the capacity down between the last pass and the first failure above it.
        for _ in 0..self.env.profile.refine {
            let Some(offered) = refinement(&steps, MIN_REFINEMENT) else { break };
            tokio::time::sleep(Duration::from_millis(500)).await;
            let step =
                self.paced(conns, senders, per_sender(offered), recipients, servers, offered, " (refining)").await;
            steps.push(step);
        }
        // Latency targets are read at half the capacity: measure that load when no step did.
        if let Some(half) = capacity(&steps).map(|c| (c / 2.0).round())
            && !steps.iter().any(|s| (s.offered_per_sec - half).abs() <= half * 0.01)
        {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let step =
                self.paced(conns, senders, per_sender(half), recipients, servers, half, " (half the capacity)").await;
            steps.push(step);
        }
        steps.sort_by(|a, b| a.offered_per_sec.total_cmp(&b.offered_per_sec));
        steps
    }

    // ------------------------------------------------------------------ startup

    async fn startup(&mut self) -> Result<Startup, BenchError> {
        log("startup: embedded mode, fresh data directory, pinned");
        let mut config = self.ours_config(Store::Sqlite);
        config.cpus = self.env.server_cpus.clone();
        let s = server::spawn_ours("embedded", &config).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let sample = s.sample().unwrap_or_default();
        let startup = Startup { ready_ms: s.ready_ms, idle_rss_kib: sample.rss_kib, idle_hwm_kib: sample.hwm_kib };
        s.stop().await;
        Ok(startup)
    }

    // ------------------------------------------------------------------ fan-out

    async fn fanout(&mut self, report: &mut Report) {
        let shapes = self.env.profile.shapes.clone();
        match self.fanout_ours(&shapes).await {
            Ok(mut f) => report.fanout.append(&mut f),
            Err(e) => report.notes.push(format!("fan-out (ours): {e}")),
        }
        match self.fanout_bare(&shapes).await {
            Ok(mut f) => report.fanout.append(&mut f),
            Err(e) => report.notes.push(format!("fan-out (bare): {e}")),
        }
        match self.fanout_socketio(&shapes).await {
            Ok(Ok(mut f)) => report.fanout.append(&mut f),
            Ok(Err(reason)) => report.notes.push(format!("Socket.IO peer skipped: {reason}")),
            Err(e) => report.notes.push(format!("fan-out (Socket.IO): {e}")),
        }
    }

    /// Opens the connections of `specs`, runs the ladder, closes them.
    async fn drive_shape(
        &mut self,
        label: &str,
        target: Protocol,
        shape: Shape,
        specs: Vec<ConnSpec>,
        ladder: &[f64],
        servers: &[&Server],
    ) -> Fanout {
        log(&format!("fan-out {label} {}: opening {} connections", shape.label(), specs.len()));
        let senders: Vec<usize> =
            specs.iter().enumerate().filter(|(_, s)| s.send_to.is_some()).map(|(i, _)| i).collect();
        let wanted = specs.len();
        let (conns, error) = conn::open_many(specs, &self.shared, 32).await;
        let mut fanout = if let Some(e) = error {
            let mut f = Fanout::new(target, label.to_owned(), shape, conns.len(), vec![]);
            f.note = Some(format!("only {} of {wanted} connections opened: {e}", conns.len()));
            f
        } else {
            let steps = self.ladder(&conns, &senders, shape, ladder, servers).await;
            Fanout::new(target, label.to_owned(), shape, conns.len(), steps)
        };
        if fanout.note.is_none() && fanout.steps.last().is_some_and(Step::passes) {
            fanout.note = Some("every step passed: capacity is at least the top of the ladder".to_owned());
        }
        conn::close_all(conns).await;
        fanout
    }

    async fn fanout_ours(&mut self, shapes: &[Shape]) -> Result<Vec<Fanout>, BenchError> {
        let s = server::spawn_ours("ours", &self.ours_config(Store::Sqlite)).await?;
        let users = self.env.profile.fanout_users();
        log(&format!("fan-out ours: registering {users} users"));
        let world = provision::world(&s.base_url(), users, self.env.profile.register_parallel).await?;
        let mut out = Vec::new();
        for &shape in shapes {
            s.pin(&self.env.all_cpus)?;
            let groups = provision::groups(&world, 0, shape.groups, shape.size).await?;
            s.pin(&self.env.server_cpus)?;
            let mut specs = Vec::new();
            for g in &groups {
                for (k, &u) in g.members.iter().enumerate() {
                    specs.push(ours_spec(&s, &world, u, (k < shape.senders).then(|| g.conversation.to_string())));
                }
            }
            let ladder = self.env.profile.ladder.clone();
            out.push(self.drive_shape("ours (sqlite)", Protocol::Ours, shape, specs, &ladder, &[&s]).await);
        }
        s.stop().await;
        Ok(out)
    }

    async fn fanout_bare(&mut self, shapes: &[Shape]) -> Result<Vec<Fanout>, BenchError> {
        let s = server::spawn_bare(&self.env.server_cpus).await?;
        let mut out = Vec::new();
        for &shape in shapes {
            let mut specs = Vec::new();
            for g in 0..shape.groups {
                let room = format!("{}-{g}", shape.label());
                for k in 0..shape.size {
                    specs.push(ConnSpec {
                        protocol: Protocol::Bare,
                        addr: s.addr,
                        path: format!("/ws?room={room}"),
                        join: Join::Nothing,
                        send_to: (k < shape.senders).then(|| room.clone()),
                        source: None,
                        idle: false,
                    });
                }
            }
            let ladder = self.env.profile.ladder.clone();
            out.push(self.drive_shape("bare", Protocol::Bare, shape, specs, &ladder, &[&s]).await);
        }
        s.stop().await;
        Ok(out)
    }

    async fn fanout_socketio(&mut self, shapes: &[Shape]) -> Result<Result<Vec<Fanout>, String>, BenchError> {
        let db = match FreshDb::create(&self.env.pg_admin).await {
            Ok(db) => db,
            Err(e) => return Ok(Err(format!("PostgreSQL unavailable: {e}"))),
        };
        let secret = server::random_hex(32);
        let s = match server::spawn_socketio(&self.env.socketio_dir, &db.url, &secret, &self.env.server_cpus).await {
            Ok(Ok(s)) => s,
            Ok(Err(reason)) => {
                db.drop_db().await;
                return Ok(Err(reason));
            }
            Err(e) => {
                db.drop_db().await;
                return Err(e);
            }
        };
        let mut out = Vec::new();
        for &shape in shapes {
            let mut specs = Vec::new();
            for _ in 0..shape.groups {
                let conversation = uuid::Uuid::new_v4().to_string();
                for k in 0..shape.size {
                    let token = peer_token(&secret, uuid::Uuid::new_v4())?;
                    specs.push(ConnSpec {
                        protocol: Protocol::SocketIo,
                        addr: s.addr,
                        path: "/socket.io/?EIO=4&transport=websocket".to_owned(),
                        join: Join::SocketIo { token, conversations: vec![conversation.clone()] },
                        send_to: (k < shape.senders).then(|| conversation.clone()),
                        source: None,
                        idle: false,
                    });
                }
            }
            let ladder = self.env.profile.ladder.clone();
            out.push(self.drive_shape("socket.io (node+pg)", Protocol::SocketIo, shape, specs, &ladder, &[&s]).await);
        }
        s.stop().await;
        db.drop_db().await;
        Ok(Ok(out))
    }

    // ------------------------------------------------------------------ durable

    async fn durable(&mut self, report: &mut Report) {
        match self.durable_on(Store::Sqlite, "sqlite").await {
            Ok(d) => report.durable.push(d),
            Err(e) => report.notes.push(format!("durable (sqlite): {e}")),
        }
        match FreshDb::create(&self.env.pg_admin).await {
            Ok(db) => {
                let store = Store::Postgres { url: db.url.clone(), redis: None };
                match self.durable_on(store, "postgres").await {
                    Ok(mut d) => {
                        d.synchronous_commit = server::synchronous_commit(&db.url).await.ok();
                        report.durable.push(d);
                    }
                    Err(e) => report.notes.push(format!("durable (postgres): {e}")),
                }
                db.drop_db().await;
            }
            Err(e) => report.notes.push(format!("durable (postgres) skipped: {e}")),
        }
        let (conversations, concurrency, total) = self.env.profile.naive;
        log(&format!("naive path: {total} messages, {concurrency} writers"));
        match crate::naive::compare(&self.env.pg_admin, conversations, concurrency, total).await {
            Ok(n) => {
                report.naive = Some(Naive {
                    naive_per_sec: n.naive_per_sec,
                    ours_per_sec: n.ours_per_sec,
                    conversations,
                    concurrency,
                    total,
                    detail: serde_json::to_string(&n).unwrap_or_default(),
                });
            }
            Err(e) => report.notes.push(format!("naive comparison: {e}")),
        }
    }

    async fn durable_on(&mut self, store: Store, name: &str) -> Result<Durable, BenchError> {
        let p = self.env.profile.clone();
        let s = server::spawn_ours(name, &self.ours_config(store)).await?;
        log(&format!("durable {name}: {} conversations", p.durable_conversations));
        let world = provision::world(&s.base_url(), 2 * p.durable_conversations, p.register_parallel).await?;
        let groups = provision::groups(&world, 0, p.durable_conversations, 2).await?;
        s.pin(&self.env.server_cpus)?;
        let specs: Vec<ConnSpec> = groups
            .iter()
            .flat_map(|g| g.members.iter().map(|&u| ours_spec(&s, &world, u, Some(g.conversation.to_string()))))
            .collect();
        let (conns, error) = conn::open_many(specs, &self.shared, 32).await;
        if let Some(e) = error {
            conn::close_all(conns).await;
            s.stop().await;
            return Err(e);
        }
        let senders: Vec<usize> = (0..conns.len()).collect();
        // A short warm-up (prepared statements, pool), then the measured step.
        let drive = Drive::Closed { window: p.durable_window };
        let _ = self.step(&conns, &senders, &drive, 0.5, 2, &[&s], 0.0).await;
        let (step, ack_latency) = self.step(&conns, &senders, &drive, p.durable_secs, 2, &[&s], 0.0).await;
        conn::close_all(conns).await;
        s.stop().await;
        let acked_per_sec = step.acked as f64 / step.seconds;
        log(&format!("  {acked_per_sec:.0} acknowledged messages/s"));
        Ok(Durable {
            store: name.to_owned(),
            conversations: p.durable_conversations,
            senders: senders.len(),
            window: p.durable_window,
            step,
            acked_per_sec,
            ack_latency,
            synchronous_commit: None,
        })
    }

    // ------------------------------------------------------------------ idle

    async fn idle(&mut self) -> Result<Idle, BenchError> {
        let p = self.env.profile.clone();
        let own_limit = procfs::nofile_limits("self").and_then(|(soft, _)| soft).unwrap_or(1024);
        let s = server::spawn_ours("idle", &self.ours_config(Store::Sqlite)).await?;
        let server_limit = procfs::nofile_limits(&s.pid().to_string()).and_then(|(soft, _)| soft).unwrap_or(1024);
        let fd_limit = own_limit.min(server_limit);
        // Keep room for the processes' other descriptors (logs, database, listeners).
        let cap = usize::try_from(fd_limit.saturating_sub(150)).unwrap_or(usize::MAX);
        let wanted = p.idle_connections.min(cap);
        let hit_fd_limit = p.idle_connections > cap;
        log(&format!("idle: registering {} users; {wanted} connections (open-files limit {fd_limit})", p.idle_users));
        let world = provision::world(&s.base_url(), p.idle_users, p.register_parallel).await?;
        s.pin(&self.env.server_cpus)?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = s.sample().unwrap_or_default();
        let gen_before = procfs::sample("self").unwrap_or_default();
        let specs: Vec<ConnSpec> = (0..wanted)
            .map(|i| {
                let mut spec = ours_spec(&s, &world, i % world.users.len(), None);
                spec.source = Some(source_address(i / p.idle_per_address));
                spec.idle = true;
                spec
            })
            .collect();
        let addresses = wanted.div_ceil(p.idle_per_address);
        let started = Instant::now();
        let (conns, error) = conn::open_many(specs, &self.shared, 64).await;
        let open_secs = started.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = s.sample().unwrap_or_default();
        let gen_after = procfs::sample("self").unwrap_or_default();
        let opened = conns.iter().filter(|c| !c.stats.is_closed()).count();
        log(&format!("  {opened} open in {open_secs:.1} s"));
        conn::close_all(conns).await;
        s.stop().await;
        let per = |a: u64, b: u64| if opened == 0 { 0.0 } else { a.saturating_sub(b) as f64 / opened as f64 };
        let server_kib_per_connection = per(after.rss_kib, before.rss_kib);
        let error = error.map(|e| e.to_string());
        let hit_fd_limit = hit_fd_limit || error.as_deref().is_some_and(|e| e.contains("Too many open files"));
        Ok(Idle {
            wanted: p.idle_connections,
            opened,
            users: world.users.len(),
            source_addresses: addresses,
            fd_limit,
            hit_fd_limit,
            error,
            server_rss_before_kib: before.rss_kib,
            server_rss_after_kib: after.rss_kib,
            server_kib_per_connection,
            generator_kib_per_connection: per(gen_after.rss_kib, gen_before.rss_kib),
            open_secs,
            projected_100k_mib: (before.rss_kib as f64 + 100_000.0 * server_kib_per_connection) / 1024.0,
        })
    }

    // ------------------------------------------------------------------ two nodes

    async fn two_nodes(&mut self) -> Result<Fanout, BenchError> {
        let redis_addr = self.env.redis_url.trim_start_matches("redis://").trim_end_matches('/').to_owned();
        if !server::reachable(&redis_addr) {
            return Err(BenchError::setup(format!("Redis not reachable at {redis_addr}")));
        }
        let db = FreshDb::create(&self.env.pg_admin).await?;
        let namespace = format!("bench-{}", server::random_hex(4));
        let store = Store::Postgres { url: db.url.clone(), redis: Some((self.env.redis_url.clone(), namespace)) };
        let result = async {
            let a = server::spawn_ours("node-a", &self.ours_config(store.clone())).await?;
            let b = server::spawn_ours("node-b", &self.ours_config(store)).await?;
            let shape = self.env.profile.two_nodes;
            log(&format!("two nodes: registering {} users", shape.groups * shape.size));
            let world =
                provision::world(&a.base_url(), shape.groups * shape.size, self.env.profile.register_parallel).await?;
            let groups = provision::groups(&world, 0, shape.groups, shape.size).await?;
            a.pin(&self.env.server_cpus)?;
            b.pin(&self.env.server_cpus)?;
            let mut specs = Vec::new();
            for g in &groups {
                for (k, &u) in g.members.iter().enumerate() {
                    // Senders on node A; receivers alternate between A and B.
                    let node = if k < shape.senders || k % 2 == 0 { &a } else { &b };
                    specs.push(ours_spec(node, &world, u, (k < shape.senders).then(|| g.conversation.to_string())));
                }
            }
            let ladder = self.env.profile.two_nodes_ladder.clone();
            let f =
                self.drive_shape("ours x2 (postgres+redis)", Protocol::Ours, shape, specs, &ladder, &[&a, &b]).await;
            a.stop().await;
            b.stop().await;
            Ok::<_, BenchError>(f)
        }
        .await;
        db.drop_db().await;
        result
    }
}

/// The group commit of `servers` so far, summed: `(transactions, messages)`; `None` unless
/// every one of them is ours and answered.
async fn batches(servers: &[&Server]) -> Option<(u64, u64)> {
    let mut sum = (0, 0);
    for server in servers {
        let (b, m) = server.batches().await?;
        sum = (sum.0 + b, sum.1 + m);
    }
    Some(sum)
}

fn ours_spec(s: &Server, world: &World, user: usize, send_to: Option<String>) -> ConnSpec {
    ConnSpec {
        protocol: Protocol::Ours,
        addr: s.addr,
        path: format!("/chat/ws?token={}", world.users[user].token()),
        join: Join::Workspace(world.workspace),
        send_to,
        source: None,
        idle: false,
    }
}

/// `127.0.0.2`, `127.0.0.3`, … for the `n`-th block of idle connections.
#[must_use]
pub fn source_address(n: usize) -> IpAddr {
    let n = u32::try_from(n).unwrap_or(0) + 2;
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 0)) + n))
}

#[derive(Serialize)]
struct PeerClaims {
    sub: String,
    iat: u64,
    exp: u64,
}

/// An HS256 token for the Socket.IO peer (`sub` = the user id).
///
/// # Errors
/// When signing fails.
pub fn peer_token(secret: &str, user: uuid::Uuid) -> Result<String, BenchError> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let claims = PeerClaims { sub: user.to_string(), iat: now, exp: now + 3600 };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| BenchError::setup(format!("signing a peer token: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_source_addresses_start_at_127_0_0_2() {
        assert_eq!(source_address(0), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(source_address(3), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5)));
        assert_eq!(source_address(300), IpAddr::V4(Ipv4Addr::new(127, 0, 1, 46)));
    }

    #[test]
    fn peer_tokens_carry_the_user_as_subject() {
        let user = uuid::Uuid::new_v4();
        let token = peer_token("s3cret-s3cret-s3cret-s3cret-s3cret", user).expect("signs");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_secret(b"s3cret-s3cret-s3cret-s3cret-s3cret"),
            &validation,
        )
        .expect("verifies");
        assert_eq!(data.claims["sub"], user.to_string());
    }
}
