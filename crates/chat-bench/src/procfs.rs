//! What `/proc` says about a process and the machine: CPU seconds (`utime + stime` of
//! `/proc/<pid>/stat` over `CLK_TCK`), resident and peak memory (`VmRSS`, `VmHWM` of
//! `/proc/<pid>/status`), the open-files limit (`/proc/<pid>/limits`), and the machine's
//! cores, memory and kernel. Parsers are pure functions over the file's text.

use std::process::Command;
use std::sync::OnceLock;

use serde::Serialize;

/// One reading of a process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ProcSample {
    /// User + system CPU seconds since the process started (all threads).
    pub cpu_secs: f64,
    /// Resident memory now, KiB.
    pub rss_kib: u64,
    /// Peak resident memory, KiB.
    pub hwm_kib: u64,
}

/// `utime + stime` in clock ticks from the text of `/proc/<pid>/stat`. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after the last `)`.
#[must_use]
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After `)`: state(3) ppid(4) … utime(14) stime(15): utime is the 12th field from here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The KiB value of `key` (`VmRSS`, `VmHWM`, `MemTotal`…) in a `/proc` `Key:   123 kB` file.
#[must_use]
pub fn parse_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_ascii_whitespace().next()?.parse().ok()
    })
}

/// The soft and hard `Max open files` of a `/proc/<pid>/limits` text (`None` for unlimited).
#[must_use]
pub fn parse_nofile_limits(limits: &str) -> Option<(Option<u64>, Option<u64>)> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line["Max open files".len()..].split_ascii_whitespace();
    let parse = |v: &str| if v == "unlimited" { Some(None) } else { v.parse().ok().map(Some) };
    Some((parse(values.next()?)?, parse(values.next()?)?))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 when it cannot be asked).
#[must_use]
pub fn clk_tck() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// Reads `/proc/<pid>` (`"self"` for this process); `None` once the process is gone.
#[must_use]
pub fn sample(pid: &str) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    #[allow(clippy::cast_precision_loss)]
    let cpu_secs = parse_stat_ticks(&stat)? as f64 / clk_tck() as f64;
    Some(ProcSample {
        cpu_secs,
        rss_kib: parse_kib(&status, "VmRSS").unwrap_or(0),
        hwm_kib: parse_kib(&status, "VmHWM").unwrap_or(0),
    })
}

/// This process's CPU seconds so far.
#[must_use]
pub fn self_cpu_secs() -> f64 {
    sample("self").map_or(0.0, |s| s.cpu_secs)
}

/// The `Max open files` limits of a process.
#[must_use]
pub fn nofile_limits(pid: &str) -> Option<(Option<u64>, Option<u64>)> {
    parse_nofile_limits(&std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?)
}

/// The machine a run was measured on.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    /// Online cores.
    pub cores: usize,
    /// CPU model name.
    pub cpu_model: String,
    /// `MemTotal`, MiB.
    pub memory_mib: u64,
    /// `uname -r`-style kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads `/proc/cpuinfo`, `/proc/meminfo` and `/proc/sys/kernel/osrelease`.
    #[must_use]
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cores = cpuinfo.lines().filter(|l| l.starts_with("processor")).count().max(1);
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim()))
            .unwrap_or("unknown")
            .to_owned();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
        Self { cores, cpu_model, memory_mib: parse_kib(&meminfo, "MemTotal").unwrap_or(0) / 1024, kernel }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_are_utime_plus_stime_even_with_a_strange_command_name() {
        let stat = "4242 (chat (server) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    150 25 0 0 20 0 9 0 77 123456 789 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(175));
        assert_eq!(parse_stat_ticks("garbage"), None);
        assert_eq!(parse_stat_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn status_values_are_read_in_kib_by_key() {
        let status = "Name:\tchat-server\nVmPeak:\t  900 kB\nVmHWM:\t   25600 kB\nVmRSS:\t   24000 kB\n";
        assert_eq!(parse_kib(status, "VmHWM"), Some(25_600));
        assert_eq!(parse_kib(status, "VmRSS"), Some(24_000));
        assert_eq!(parse_kib(status, "VmSwap"), None);
        // A key that is a prefix of another is not confused with it.
        assert_eq!(parse_kib("VmRSSx:\t1 kB\n", "VmRSS"), None);
    }

    #[test]
    fn open_files_limits_are_parsed_with_unlimited() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 20000                files     \n";
        assert_eq!(parse_nofile_limits(limits), Some((Some(1024), Some(20_000))));
        let unlimited = "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_nofile_limits(unlimited), Some((None, None)));
        assert_eq!(parse_nofile_limits("Max processes 10 10 processes\n"), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let own = sample("self").expect("/proc/self exists on Linux");
        assert!(own.rss_kib > 0);
        assert!(own.hwm_kib >= own.rss_kib);
        assert!(Machine::read().cores >= 1);
    }
}
