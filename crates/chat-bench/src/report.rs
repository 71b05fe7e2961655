//! The results of a run: what was measured ([`Report`]), the issue-5 targets checked against it
//! ([`evaluate`]), and the human table ([`render_table`]). The JSON written to
//! `docs/bench/results-<profile>.json` is [`Report`] serialised.

use std::fmt::Write as _;

use serde::Serialize;

use crate::procfs::Machine;
use crate::stats::{Latency, Step, capacity, nearest, ratio};
use crate::wire::Protocol;

/// One fan-out shape: `groups` conversations of `size` members, `senders` of them sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Shape {
    /// Conversations (rooms).
    pub groups: usize,
    /// Members online in each.
    pub size: usize,
    /// Senders in each.
    pub senders: usize,
}

impl Shape {
    /// `10x100` style label.
    #[must_use]
    pub fn label(&self) -> String {
        format!("{}x{}", self.groups, self.size)
    }
}

/// Scenario 1 (or 4) for one server.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fanout {
    /// Which server.
    pub target: Protocol,
    /// e.g. `ours (sqlite)`, `ours x2 (postgres+redis)`.
    pub label: String,
    /// The shape.
    pub shape: Shape,
    /// Connections held.
    pub connections: usize,
    /// The ladder, up to the first failing step.
    pub steps: Vec<Step>,
    /// Highest passing offered load.
    pub capacity: Option<f64>,
    /// Set when the generator used ≥ 90 % of its core at the first failing (or last) step.
    pub generator_bound: bool,
    /// Why the ladder stopped early or could not run.
    pub note: Option<String>,
}

impl Fanout {
    /// Builds the summary fields from the steps.
    #[must_use]
    pub fn new(target: Protocol, label: String, shape: Shape, connections: usize, steps: Vec<Step>) -> Self {
        let capacity = capacity(&steps);
        let limiting = steps.iter().find(|s| !s.passes()).or(steps.last());
        let generator_bound = limiting.is_some_and(|s| s.generator_utilisation() >= 0.9);
        Self { target, label, shape, connections, steps, capacity, generator_bound, note: None }
    }
}

/// Scenario 2 on one store.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Durable {
    /// `sqlite` or `postgres`.
    pub store: String,
    /// Conversations.
    pub conversations: usize,
    /// Concurrent senders (connections).
    pub senders: usize,
    /// Unacknowledged sends each sender keeps.
    pub window: usize,
    /// The measured step (acked = committed messages).
    pub step: Step,
    /// Acknowledged (committed) messages per second.
    pub acked_per_sec: f64,
    /// Send → ack latency.
    pub ack_latency: Latency,
    /// PostgreSQL's `synchronous_commit`.
    pub synchronous_commit: Option<String>,
}

/// The naive insert path against ours (`naive::compare`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Naive {
    /// One INSERT per message, each in its own transaction.
    pub naive_per_sec: f64,
    /// Our store's `insert_message`, same schema and concurrency.
    pub ours_per_sec: f64,
    /// Conversations, concurrency, total messages.
    pub conversations: usize,
    /// Concurrent writers.
    pub concurrency: usize,
    /// Messages per side.
    pub total: usize,
    /// The full report of `naive::compare`, as it prints.
    pub detail: String,
}

/// Scenario 3.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Idle {
    /// Connections asked for.
    pub wanted: usize,
    /// Connections open, authenticated and joined at the end.
    pub opened: usize,
    /// Users they belong to.
    pub users: usize,
    /// Source addresses used (127.0.0.2…).
    pub source_addresses: usize,
    /// The open-files limits (soft, hard) of the generator and the server.
    pub fd_limit: u64,
    /// Whether the open-files limit capped the count.
    pub hit_fd_limit: bool,
    /// Why opening stopped early.
    pub error: Option<String>,
    /// Server RSS before, KiB.
    pub server_rss_before_kib: u64,
    /// Server RSS with every connection open, KiB.
    pub server_rss_after_kib: u64,
    /// Server memory per connection, KiB.
    pub server_kib_per_connection: f64,
    /// Generator memory per connection, KiB.
    pub generator_kib_per_connection: f64,
    /// Seconds to open them all.
    pub open_secs: f64,
    /// Projected server RSS for 100,000 connections on one node, MiB.
    pub projected_100k_mib: f64,
}

/// Embedded-mode start-up.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Startup {
    /// Spawn → `/readyz` 200, ms (fresh data directory: includes key generation).
    pub ready_ms: f64,
    /// RSS when idle after start, KiB.
    pub idle_rss_kib: u64,
    /// Peak RSS when idle after start, KiB.
    pub idle_hwm_kib: u64,
}

/// One issue-5 target and how the run did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetCheck {
    /// What is measured.
    pub name: String,
    /// The target, in words.
    pub target: String,
    /// The figure, in words.
    pub measured: String,
    /// Measured ÷ target, oriented so that ≥ 1 meets it (0 when not measurable).
    pub ratio: f64,
    /// Met, missed, or not measured (`None`).
    pub met: Option<bool>,
    /// What limits the figure.
    pub note: String,
}

/// Everything a run measured.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `quick` or `full`.
    pub profile: String,
    /// Unix time of the start.
    pub started_unix: u64,
    /// Wall time of the run, seconds.
    pub total_secs: f64,
    /// The machine.
    pub machine: Machine,
    /// Settings of the servers and the generator, as `KEY=value` lines.
    pub settings: Vec<String>,
    /// Embedded start-up.
    pub startup: Option<Startup>,
    /// Scenario 1 (ours, bare, Socket.IO).
    pub fanout: Vec<Fanout>,
    /// Scenario 2.
    pub durable: Vec<Durable>,
    /// Naive path comparison.
    pub naive: Option<Naive>,
    /// Scenario 3.
    pub idle: Option<Idle>,
    /// Scenario 4.
    pub two_nodes: Option<Fanout>,
    /// Targets of issue 5.
    pub targets: Vec<TargetCheck>,
    /// Phases that did not run, and why.
    pub notes: Vec<String>,
}

/// The offered load at which CPU per delivery is compared.
pub const EQUAL_LOAD: f64 = 50_000.0;

fn check(name: &str, target: &str, measured: String, ratio: f64, met: Option<bool>, note: String) -> TargetCheck {
    TargetCheck { name: name.to_owned(), target: target.to_owned(), measured, ratio, met, note }
}

fn missing(name: &str, target: &str, why: &str) -> TargetCheck {
    check(name, target, "not measured".to_owned(), 0.0, None, why.to_owned())
}

fn limit_note(f: &Fanout) -> String {
    let failing = f.steps.iter().find(|s| !s.passes());
    let mut note = match failing {
        None => "never failed: the ladder ended first".to_owned(),
        Some(s) if s.closed > 0 => format!("{} sockets closed at {:.0}/s", s.closed, s.offered_per_sec),
        Some(s) if s.delivered_ratio() < crate::stats::MIN_DELIVERED => {
            format!("{:.2}% delivered at {:.0}/s", s.delivered_ratio() * 100.0, s.offered_per_sec)
        }
        Some(s) => format!("p99 {:.1} ms at {:.0}/s", s.latency.p99_us as f64 / 1000.0, s.offered_per_sec),
    };
    if f.generator_bound {
        note.push_str("; generator CPU saturated (generator-bound)");
    }
    note
}

fn fmt_load(v: Option<f64>) -> String {
    v.map_or_else(|| "none passed".to_owned(), |v| format!("{v:.0}/s"))
}

/// Checks the run against the targets of issue 5.
#[must_use]
pub fn evaluate(r: &Report) -> Vec<TargetCheck> {
    let mut out = Vec::new();
    let find = |p: Protocol, shape: Shape| r.fanout.iter().find(|f| f.target == p && f.shape == shape);
    let shapes: Vec<Shape> = r.fanout.iter().filter(|f| f.target == Protocol::Ours).map(|f| f.shape).collect();
    for shape in shapes {
        let Some(ours) = find(Protocol::Ours, shape) else { continue };
        let label = shape.label();
        let cap = ours.capacity.unwrap_or(0.0);
        for (peer, factor, name) in [(Protocol::Bare, 0.5, "bare"), (Protocol::SocketIo, 5.0, "Socket.IO")] {
            let title = format!("fan-out capacity {label} vs {name}");
            let target = format!("≥ {factor}× {name}");
            match find(peer, shape) {
                Some(p) if p.capacity.is_some() => {
                    let theirs = p.capacity.unwrap_or(0.0);
                    let x = ratio(cap, theirs);
                    let note = format!("ours: {}; {name}: {}", limit_note(ours), limit_note(p));
                    let measured = format!("{} vs {} = {x:.2}×", fmt_load(ours.capacity), fmt_load(p.capacity));
                    out.push(check(&title, &target, measured, x / factor, Some(x >= factor), note));
                }
                Some(p) => out.push(missing(&title, &target, p.note.as_deref().unwrap_or("peer never passed a step"))),
                None => out.push(missing(&title, &target, &format!("{name} not run"))),
            }
        }
        let title = format!("server CPU per delivery {label} at equal load");
        let target = "≤ 1.5× bare";
        // At EQUAL_LOAD when both ran it, else at the highest load both ran below it.
        let bare_steps = find(Protocol::Bare, shape).map_or(&[][..], |b| &b.steps[..]);
        let common = ours
            .steps
            .iter()
            .map(|s| s.offered_per_sec)
            .filter(|&l| bare_steps.iter().any(|b| (b.offered_per_sec - l).abs() < 1.0))
            .filter(|&l| l <= EQUAL_LOAD)
            .reduce(f64::max)
            .unwrap_or(EQUAL_LOAD);
        match (nearest(&ours.steps, common), nearest(bare_steps, common)) {
            (Some(o), Some(b)) if (o.offered_per_sec - b.offered_per_sec).abs() < 1.0 && b.delivered > 0 => {
                let (ou, bu) = (o.server_cpu_us_per_delivery(), b.server_cpu_us_per_delivery());
                let x = ratio(ou, bu);
                let measured = format!("{ou:.2} µs vs {bu:.2} µs = {x:.2}× (at {:.0}/s)", o.offered_per_sec);
                let note = "includes the SQLite insert of every message; bare does no storage".to_owned();
                out.push(check(&title, target, measured, ratio(1.5, x), Some(x <= 1.5), note));
            }
            _ => out.push(missing(&title, target, "no step at an equal offered load for both")),
        }
        let bound_us = if shape.size <= 100 { 10_000 } else { 25_000 };
        let title = format!("p99 at half the max load, {label}");
        let target = format!("≤ {} ms", bound_us / 1000);
        let half = ours.capacity.map(|c| c / 2.0);
        match half.and_then(|h| ours.steps.iter().rfind(|s| s.offered_per_sec <= h * 1.01)) {
            Some(s) => {
                let p99 = s.latency.p99_us;
                let measured = format!("{:.2} ms at {:.0}/s", p99 as f64 / 1000.0, s.offered_per_sec);
                let met = p99 <= bound_us;
                let note = format!("generator at {:.0}% of its core", s.generator_utilisation() * 100.0);
                out.push(check(&title, &target, measured, ratio(bound_us as f64, p99.max(1) as f64), Some(met), note));
            }
            None => out.push(missing(&title, &target, "no step at or below half the capacity")),
        }
    }
    let pg = r.durable.iter().find(|d| d.store == "postgres");
    let target = "≥ 10,000/s (synchronous_commit=on)";
    match pg {
        Some(d) => {
            let sc = d.synchronous_commit.clone().unwrap_or_else(|| "?".to_owned());
            let measured = format!("{:.0}/s", d.acked_per_sec);
            let note = format!(
                "{} senders × window {}, synchronous_commit={sc}; p99 ack {:.1} ms",
                d.senders,
                d.window,
                d.ack_latency.p99_us as f64 / 1000.0
            );
            out.push(check(
                "durable messages/s on PostgreSQL",
                target,
                measured,
                d.acked_per_sec / 10_000.0,
                Some(d.acked_per_sec >= 10_000.0),
                note,
            ));
        }
        None => out.push(missing("durable messages/s on PostgreSQL", target, "not run")),
    }
    match &r.naive {
        Some(n) => {
            let x = ratio(n.ours_per_sec, n.naive_per_sec);
            let measured = format!("{:.0}/s vs {:.0}/s = {x:.1}×", n.ours_per_sec, n.naive_per_sec);
            let note = format!("store level, {} writers, {} messages", n.concurrency, n.total);
            out.push(check("durable vs the naive path", "≥ 10×", measured, x / 10.0, Some(x >= 10.0), note));
        }
        None => out.push(missing("durable vs the naive path", "≥ 10×", "naive comparison not run")),
    }
    match &r.idle {
        Some(i) => {
            let measured = format!("{:.1} KiB × {} connections", i.server_kib_per_connection, i.opened);
            let note = if i.hit_fd_limit {
                format!("stopped by the open-files limit ({})", i.fd_limit)
            } else {
                i.error.clone().unwrap_or_else(|| format!("profile asked for {}", i.wanted))
            };
            let kib = i.server_kib_per_connection;
            out.push(check(
                "idle memory per connection",
                "≤ 12 KiB",
                measured,
                ratio(12.0, kib.max(0.001)),
                Some(kib <= 12.0),
                format!("{note}; 100k projected at {:.0} MiB", i.projected_100k_mib),
            ));
        }
        None => out.push(missing("idle memory per connection", "≤ 12 KiB", "not run")),
    }
    match &r.startup {
        Some(s) => {
            let mib = s.idle_rss_kib as f64 / 1024.0;
            out.push(check(
                "embedded idle RSS",
                "< 30 MB",
                format!("{mib:.1} MiB"),
                ratio(30.0, mib),
                Some(mib < 30.0),
                "fresh data directory, no connections".to_owned(),
            ));
            out.push(check(
                "embedded ready after start",
                "≤ 300 ms",
                format!("{:.0} ms", s.ready_ms),
                ratio(300.0, s.ready_ms),
                Some(s.ready_ms <= 300.0),
                "spawn → /readyz 200, first start (generates keys, migrates)".to_owned(),
            ));
        }
        None => out.push(missing("embedded start-up", "< 30 MB, ≤ 300 ms", "not run")),
    }
    out
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// The human-readable report.
#[must_use]
pub fn render_table(r: &Report) -> String {
    let mut o = String::new();
    let m = &r.machine;
    let _ = writeln!(o, "chat-bench — profile {} ({:.0} s)", r.profile, r.total_secs);
    let _ = writeln!(o, "machine: {} cores ({}), {} MiB, kernel {}", m.cores, m.cpu_model, m.memory_mib, m.kernel);
    for s in &r.settings {
        let _ = writeln!(o, "  {s}");
    }
    if let Some(s) = &r.startup {
        let _ = writeln!(
            o,
            "\nembedded start-up: ready in {:.0} ms, idle RSS {:.1} MiB (peak {:.1} MiB)",
            s.ready_ms,
            s.idle_rss_kib as f64 / 1024.0,
            s.idle_hwm_kib as f64 / 1024.0
        );
    }
    let mut fanouts: Vec<&Fanout> = r.fanout.iter().collect();
    fanouts.extend(r.two_nodes.iter());
    if !fanouts.is_empty() {
        let _ = writeln!(o, "\nfan-out (capacity = highest offered load with ≥ 99.9% delivered and p99 ≤ 100 ms)");
        let _ = writeln!(
            o,
            "{:<28} {:>8} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>6} {:>6} {:>9}",
            "server",
            "shape",
            "offered/s",
            "deliv/s",
            "deliv%",
            "p50ms",
            "p99ms",
            "maxms",
            "srvµs/d",
            "srvCPU",
            "genCPU",
            "msg/commit"
        );
        for f in fanouts {
            for s in &f.steps {
                let _ = writeln!(
                    o,
                    "{:<28} {:>8} {:>10.0} {:>10.0} {:>8.3} {:>8} {:>8} {:>8} {:>9.2} {:>5.0}% {:>5.0}% {:>9}{}",
                    f.label,
                    f.shape.label(),
                    s.offered_per_sec,
                    s.delivered_per_sec(),
                    s.delivered_ratio() * 100.0,
                    ms(s.latency.p50_us),
                    ms(s.latency.p99_us),
                    ms(s.latency.max_us),
                    s.server_cpu_us_per_delivery(),
                    ratio(s.server_cpu_secs, s.wall_secs) * 100.0,
                    s.generator_utilisation() * 100.0,
                    s.messages_per_batch.map(|b| format!("{b:.2}")).unwrap_or_else(|| "-".to_owned()),
                    if s.passes() { "" } else { "  FAIL" }
                );
            }
            let _ = writeln!(
                o,
                "{:<28} {:>8} capacity {}{}{}",
                f.label,
                f.shape.label(),
                fmt_load(f.capacity),
                if f.generator_bound { " (generator-bound)" } else { "" },
                f.note.as_deref().map(|n| format!(" — {n}")).unwrap_or_default()
            );
        }
    }
    if !r.durable.is_empty() {
        let _ = writeln!(o, "\ndurable (acknowledged = committed messages)");
        for d in &r.durable {
            let _ = writeln!(
                o,
                "  {:<9} {:>4} conversations, {:>4} senders × window {:>2}: {:>8.0} msg/s, ack p50 {} ms p99 {} ms max {} ms, server CPU {:.0}%, generator {:.0}%{}",
                d.store,
                d.conversations,
                d.senders,
                d.window,
                d.acked_per_sec,
                ms(d.ack_latency.p50_us),
                ms(d.ack_latency.p99_us),
                ms(d.ack_latency.max_us),
                ratio(d.step.server_cpu_secs, d.step.wall_secs) * 100.0,
                d.step.generator_utilisation() * 100.0,
                d.synchronous_commit.as_deref().map(|s| format!(", synchronous_commit={s}")).unwrap_or_default()
            );
        }
    }
    if let Some(n) = &r.naive {
        let _ = writeln!(
            o,
            "  naive path: {:.0}/s vs ours {:.0}/s ({} writers, {} messages)",
            n.naive_per_sec, n.ours_per_sec, n.concurrency, n.total
        );
    }
    if let Some(i) = &r.idle {
        let _ = writeln!(
            o,
            "\nidle: {} of {} connections ({} users, {} source addresses) in {:.1} s; server {:.1} KiB/conn (RSS {:.1} → {:.1} MiB), generator {:.1} KiB/conn; 100k projected {:.0} MiB{}{}",
            i.opened,
            i.wanted,
            i.users,
            i.source_addresses,
            i.open_secs,
            i.server_kib_per_connection,
            i.server_rss_before_kib as f64 / 1024.0,
            i.server_rss_after_kib as f64 / 1024.0,
            i.generator_kib_per_connection,
            i.projected_100k_mib,
            if i.hit_fd_limit { format!("; hit the open-files limit ({})", i.fd_limit) } else { String::new() },
            i.error.as_deref().map(|e| format!("; stopped: {e}")).unwrap_or_default()
        );
    }
    if !r.targets.is_empty() {
        let _ = writeln!(o, "\ntargets (issue 5)");
        for t in &r.targets {
            let verdict = match t.met {
                Some(true) => "MET",
                Some(false) => "MISSED",
                None => "n/a",
            };
            let _ = writeln!(o, "  [{verdict:>6}] {}: {} (target {}) — {}", t.name, t.measured, t.target, t.note);
        }
    }
    for n in &r.notes {
        let _ = writeln!(o, "note: {n}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(offered: f64, ok: bool, p99_us: u64, cpu: f64, gen_cpu: f64) -> Step {
        Step {
            offered_per_sec: offered,
            sent: 100,
            seconds: 1.0,
            wall_secs: 1.0,
            delivered: if ok { 1000 } else { 500 },
            expected: 1000,
            latency: Latency { p99_us, ..Latency::default() },
            server_cpu_secs: cpu,
            generator_cpu_secs: gen_cpu,
            ..Step::default()
        }
    }

    fn report(fanout: Vec<Fanout>) -> Report {
        Report {
            profile: "quick".to_owned(),
            started_unix: 0,
            total_secs: 1.0,
            machine: Machine { cores: 2, cpu_model: "test".to_owned(), memory_mib: 1024, kernel: "6".to_owned() },
            settings: vec![],
            startup: Some(Startup { ready_ms: 120.0, idle_rss_kib: 20 * 1024, idle_hwm_kib: 21 * 1024 }),
            fanout,
            durable: vec![],
            naive: Some(Naive {
                naive_per_sec: 1000.0,
                ours_per_sec: 12_000.0,
                conversations: 1,
                concurrency: 1,
                total: 1,
                detail: String::new(),
            }),
            idle: None,
            two_nodes: None,
            targets: vec![],
            notes: vec![],
        }
    }

    const SHAPE: Shape = Shape { groups: 10, size: 100, senders: 5 };

    #[test]
    fn fanout_summaries_find_capacity_and_a_saturated_generator() {
        let steps = vec![step(25_000.0, true, 5_000, 0.1, 0.3), step(50_000.0, false, 5_000, 0.2, 0.95)];
        let f = Fanout::new(Protocol::Ours, "ours".to_owned(), SHAPE, 1000, steps);
        assert_eq!(f.capacity, Some(25_000.0));
        assert!(f.generator_bound);
        let calm = Fanout::new(Protocol::Ours, "ours".to_owned(), SHAPE, 1000, vec![step(1.0, false, 1, 0.1, 0.2)]);
        assert_eq!(calm.capacity, None);
        assert!(!calm.generator_bound);
    }

    #[test]
    fn targets_compare_ours_with_the_baselines_in_the_same_run() {
        let ours = Fanout::new(
            Protocol::Ours,
            "ours".to_owned(),
            SHAPE,
            1000,
            vec![step(25_000.0, true, 4_000, 0.1, 0.2), step(50_000.0, true, 8_000, 0.2, 0.4)],
        );
        let bare = Fanout::new(
            Protocol::Bare,
            "bare".to_owned(),
            SHAPE,
            1000,
            vec![step(50_000.0, true, 1_000, 0.1, 0.4), step(100_000.0, true, 1_000, 0.2, 0.9)],
        );
        let sio =
            Fanout::new(Protocol::SocketIo, "sio".to_owned(), SHAPE, 1000, vec![step(25_000.0, false, 1, 1.0, 0.1)]);
        let checks = evaluate(&report(vec![ours, bare, sio]));
        let by = |prefix: &str| checks.iter().find(|c| c.name.starts_with(prefix)).expect(prefix);
        let vs_bare = by("fan-out capacity 10x100 vs bare");
        assert_eq!(vs_bare.met, Some(true), "{vs_bare:?}");
        assert!((vs_bare.ratio - 1.0).abs() < 1e-9, "50k / 100k = 0.5× = exactly the target");
        assert_eq!(by("fan-out capacity 10x100 vs Socket.IO").met, None, "the peer never passed a step");
        let cpu = by("server CPU per delivery");
        // 0.2 s / 1000 deliveries vs 0.1 s / 1000: 2× > 1.5×.
        assert_eq!(cpu.met, Some(false), "{cpu:?}");
        let p99 = by("p99 at half the max load");
        assert!(p99.measured.contains("25000"), "{p99:?}");
        assert_eq!(p99.met, Some(true));
        assert_eq!(by("durable vs the naive path").met, Some(true));
        assert_eq!(by("durable messages/s").met, None);
        assert_eq!(by("embedded idle RSS").met, Some(true));
        assert_eq!(by("embedded ready").met, Some(true));
        let table = render_table(&report(vec![]));
        assert!(table.contains("profile quick"));
    }
}
