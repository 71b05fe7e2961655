//! `chat-bench`: drives the scenarios of `docs/benchmarks.md`.
//!
//! ```text
//! chat-bench [--profile quick|full] [--only startup,fanout,durable,idle,two-nodes]
//!            [--out docs/bench] [--server-binary target/release/chat-server]
//!            [--database-url postgres://postgres@127.0.0.1/postgres] [--redis-url redis://127.0.0.1:6379]
//!            [--shapes 100x10:2,…] [--ladder 12500,…] [--refine N] [--step-secs S]
//! chat-bench bare-server --port N
//! ```
//!
//! `--shapes`, `--ladder`, `--refine` and `--step-secs` replace the profile's fan-out shapes
//! (groups × size : senders), offered loads, refining steps after the first failure and step
//! length — to hold one step long enough to profile the server under it, e.g.
//! `--only fanout --shapes 100x10:2 --ladder 12500 --refine 0 --step-secs 30`.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use chat_bench::procfs::{self, Machine};
use chat_bench::profile::Profile;
use chat_bench::report::{self, Report, Shape};
use chat_bench::scenarios::{Env, Runner};
use chat_bench::server::{RATE_LIMITS, SERVER_LOG};
use chat_bench::{bare, charts};

const USAGE: &str = "usage: chat-bench [--profile quick|full] [--only startup,fanout,durable,idle,two-nodes] \
                     [--out DIR] [--server-binary PATH] [--database-url URL] [--redis-url URL] \
                     [--shapes GxS:K,…] [--ladder LOAD,…] [--refine N] [--step-secs S]\n       \
                     chat-bench bare-server --port N";
const PHASES: [&str; 5] = ["startup", "fanout", "durable", "idle", "two-nodes"];

#[derive(Debug)]
struct Args {
    profile: Profile,
    phases: Vec<String>,
    out: PathBuf,
    binary: Option<PathBuf>,
    database_url: String,
    redis_url: String,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut parsed = Args {
        profile: Profile::named("quick").ok_or("no quick profile")?,
        phases: PHASES.iter().map(|p| (*p).to_owned()).collect(),
        out: root.join("docs/bench"),
        binary: None,
        database_url: "postgres://postgres@127.0.0.1/postgres".to_owned(),
        redis_url: "redis://127.0.0.1:6379".to_owned(),
    };
    let mut overrides = Overrides::default();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--profile" => {
                let name = value()?;
                parsed.profile = Profile::named(&name).ok_or_else(|| format!("unknown profile {name}\n{USAGE}"))?;
            }
            "--only" => {
                let list = value()?;
                parsed.phases = list.split(',').map(str::to_owned).collect();
                if let Some(bad) = parsed.phases.iter().find(|p| !PHASES.contains(&p.as_str())) {
                    return Err(format!("unknown phase {bad}\n{USAGE}"));
                }
            }
            "--out" => parsed.out = PathBuf::from(value()?),
            "--server-binary" => parsed.binary = Some(PathBuf::from(value()?)),
            "--database-url" => parsed.database_url = value()?,
            "--redis-url" => parsed.redis_url = value()?,
            "--shapes" => overrides.shapes = Some(value()?),
            "--ladder" => overrides.ladder = Some(value()?),
            "--refine" => overrides.refine = Some(value()?),
            "--step-secs" => overrides.step_secs = Some(value()?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    overrides.apply(&mut parsed.profile)?;
    Ok(parsed)
}

/// Fan-out settings given on the command line, applied after the profile whatever the order.
#[derive(Default)]
struct Overrides {
    shapes: Option<String>,
    ladder: Option<String>,
    refine: Option<String>,
    step_secs: Option<String>,
}

impl Overrides {
    fn apply(self, profile: &mut Profile) -> Result<(), String> {
        if let Some(list) = self.shapes {
            profile.shapes = list.split(',').map(parse_shape).collect::<Result<_, _>>()?;
        }
        if let Some(list) = self.ladder {
            profile.ladder = list
                .split(',')
                .map(|l| l.parse::<f64>().ok().filter(|l| *l > 0.0).ok_or_else(|| format!("bad offered load {l}")))
                .collect::<Result<_, _>>()?;
        }
        if let Some(n) = self.refine {
            profile.refine = n.parse::<u32>().map_err(|_| format!("bad number of refining steps {n}"))?;
        }
        if let Some(secs) = self.step_secs {
            profile.step_secs =
                secs.parse::<f64>().ok().filter(|s| *s > 0.0).ok_or_else(|| format!("bad step length {secs}"))?;
        }
        Ok(())
    }
}

/// `100x10:2`: 100 groups of 10 members, 2 of whom send.
fn parse_shape(text: &str) -> Result<Shape, String> {
    let bad = || format!("bad shape {text} (want GROUPSxSIZE:SENDERS, e.g. 100x10:2)");
    let (groups, rest) = text.split_once('x').ok_or_else(bad)?;
    let (size, senders) = rest.split_once(':').ok_or_else(bad)?;
    let number = |n: &str| n.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(bad);
    let shape = Shape { groups: number(groups)?, size: number(size)?, senders: number(senders)? };
    if shape.senders > shape.size {
        return Err(bad());
    }
    Ok(shape)
}

fn bare_server(mut args: impl Iterator<Item = String>) -> Result<(), String> {
    let port: u16 = match (args.next().as_deref(), args.next()) {
        (Some("--port"), Some(port)) => port.parse().map_err(|_| format!("bad port {port}"))?,
        _ => return Err(USAGE.to_owned()),
    };
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|e| format!("bind {port}: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(bare::serve(listener)).map_err(|e| e.to_string())
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("bare-server") {
        args.next();
        if let Err(e) = bare_server(args) {
            eprintln!("{e}");
            std::process::exit(2);
        }
        return;
    }
    let args = parse(args).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("chat_bench=info,warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(args) {
        eprintln!("chat-bench: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), String> {
    let started = Instant::now();
    let machine = Machine::read();
    // Raise the soft open-files limit to the hard one; servers started later inherit it.
    let (_, hard) = rlimit::Resource::NOFILE.get().map_err(|e| e.to_string())?;
    let soft = rlimit::increase_nofile_limit(hard).map_err(|e| e.to_string())?;
    // Server on core 0, generator on the last core (chosen before the runtime's threads
    // exist, so they inherit it).
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let (server_cpus, all_cpus, generator_core) = match cores.as_slice() {
        [first, .., last] => {
            let pinned = core_affinity::set_for_current(*last);
            (first.id.to_string(), format!("{}-{}", first.id, last.id), pinned.then_some(last.id))
        }
        _ => ("0".to_owned(), "0".to_owned(), None),
    };
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let binary = args.binary.clone().unwrap_or_else(|| exe.with_file_name("chat-server"));
    if !binary.exists() {
        return Err(format!(
            "{} not found: build it first (cargo build --release -p chat-server -p chat-bench)",
            binary.display()
        ));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let env = Env {
        profile: args.profile.clone(),
        binary: binary.clone(),
        pg_admin: args.database_url.clone(),
        redis_url: args.redis_url.clone(),
        socketio_dir: root.join("bench/peers/socketio"),
        server_cpus: server_cpus.clone(),
        all_cpus,
        phases: args.phases.clone(),
    };
    let p = &args.profile;
    let mut settings = vec![
        format!("server: {} (release), pinned to CPU {server_cpus} while measured (taskset -a)", binary.display()),
        format!(
            "generator: this process, {} (current-thread tokio runtime)",
            generator_core.map_or_else(|| "not pinned".to_owned(), |c| format!("pinned to CPU {c}"))
        ),
        format!("server env: RUST_LOG={SERVER_LOG}, WS_QUEUE_CAPACITY=1024 (default), DATABASE_POOL_SIZE=16 (default)"),
        format!(
            "rate limits: {}",
            RATE_LIMITS.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
        ),
        format!("open files: soft limit raised to {soft} (hard {hard})"),
        "stores: fan-out and idle on embedded SQLite; durable on SQLite and PostgreSQL; two nodes on PostgreSQL + Redis"
            .to_owned(),
        format!("messages: {} bytes of content", chat_bench::wire::CONTENT_LEN),
        format!(
            "fan-out shapes {}; ladder {} deliveries/s, {} s per step; stop at the first failing step, \
             then {} refining step(s) between the capacity and that failure",
            p.shapes.iter().map(|s| format!("{} (senders {})", s.label(), s.senders)).collect::<Vec<_>>().join(", "),
            p.ladder.iter().map(|l| format!("{:.0}k", l / 1000.0)).collect::<Vec<_>>().join("/"),
            p.step_secs,
            p.refine
        ),
        format!(
            "durable: {} conversations × 2 senders, window {}, {} s; naive: {:?} (conversations, writers, messages)",
            p.durable_conversations, p.durable_window, p.durable_secs, p.naive
        ),
        format!(
            "idle: up to {} connections of {} users, {} per source address; two nodes: {}",
            p.idle_connections,
            p.idle_users,
            p.idle_per_address,
            p.two_nodes.label()
        ),
    ];
    if let Some((s, h)) = procfs::nofile_limits("self") {
        settings.push(format!("generator open-files limits now: soft {s:?}, hard {h:?}"));
    }
    let mut report = Report {
        profile: p.name.clone(),
        started_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        total_secs: 0.0,
        machine,
        settings,
        startup: None,
        fanout: vec![],
        durable: vec![],
        naive: None,
        idle: None,
        two_nodes: None,
        targets: vec![],
        notes: vec![],
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let mut runner = Runner::new(env);
        runner.run(&mut report).await;
    });
    report.total_secs = started.elapsed().as_secs_f64();
    report.targets = report::evaluate(&report);
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let json_path = args.out.join(format!("results-{}.json", report.profile));
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&json_path, json + "\n").map_err(|e| format!("{}: {e}", json_path.display()))?;
    let charts = charts::draw(&report, &args.out).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{}", report::render_table(&report));
    let _ = writeln!(out, "\nwrote {}", json_path.display());
    for c in charts {
        let _ = writeln!(out, "wrote {}", c.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse(list.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn arguments_select_the_profile_and_phases() {
        let a = args(&["--profile", "full", "--only", "fanout,idle"]).expect("valid");
        assert_eq!(a.profile.name, "full");
        assert_eq!(a.phases, vec!["fanout", "idle"]);
        assert!(args(&["--profile", "huge"]).is_err());
        assert!(args(&["--only", "fanout,nap"]).is_err());
        assert!(args(&["--out"]).is_err());
        assert_eq!(args(&[]).expect("defaults").profile.name, "quick");
    }

    #[test]
    fn fan_out_settings_override_the_profile_in_any_order() {
        let a = args(&[
            "--ladder",
            "12500,25000",
            "--shapes",
            "100x10:2,1x1000:20",
            "--profile",
            "full",
            "--step-secs",
            "30",
            "--refine",
            "0",
        ])
        .expect("valid");
        assert_eq!(
            a.profile.shapes,
            vec![Shape { groups: 100, size: 10, senders: 2 }, Shape { groups: 1, size: 1000, senders: 20 }]
        );
        assert_eq!(a.profile.ladder, vec![12_500.0, 25_000.0]);
        assert!((a.profile.step_secs - 30.0).abs() < f64::EPSILON);
        assert_eq!(a.profile.refine, 0);
        assert_eq!(a.profile.durable_conversations, 50, "the rest of the full profile stays");
        for bad in [
            &["--shapes", "10x5:6"][..],
            &["--shapes", "10by5"],
            &["--ladder", "0"],
            &["--step-secs", "-1"],
            &["--refine", "-1"],
        ] {
            assert!(args(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
