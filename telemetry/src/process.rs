//! The process figures (`process_*`, Prometheus' standard names) read from Linux's `/proc`
//! at each scrape; [`figures`] also serves `/api/node/status`. Elsewhere the figures are
//! absent rather than wrong.

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge};

/// What `/proc` says about this process; `None` where it cannot be read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub threads: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
    pub start_time_seconds: Option<f64>,
}

/// Reads this process's figures now.
pub fn figures() -> Figures {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    let (cpu_seconds, start_time_seconds) = stat_times().unzip();
    Figures {
        threads: field("Threads:"),
        open_fds,
        max_fds: max_open_files(),
        resident_bytes: field("VmRSS:").map(|kb| kb * 1024),
        virtual_bytes: field("VmSize:").map(|kb| kb * 1024),
        cpu_seconds,
        start_time_seconds,
    }
}

/// (user + system CPU seconds, start time in unix seconds) from `/proc/self/stat`.
fn stat_times() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after it follow its `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime 15, starttime 22.
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let start_ticks: f64 = fields.get(19)?.parse().ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: f64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(((utime + stime) / ticks, btime + start_ticks / ticks))
}

/// The soft limit on open files from `/proc/self/limits`.
fn max_open_files() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The names of the process families.
pub const NAMES: &[&str] = &[
    "process_cpu_seconds_total",
    "process_max_fds",
    "process_open_fds",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_threads",
    "process_virtual_memory_bytes",
];

/// The figures as `process_*` families.
pub(crate) fn families() -> Vec<MetricFamily> {
    let f = figures();
    let mut out = Vec::new();
    let mut gauge = |name: &str, help: &str, value: Option<f64>| {
        if let (Some(v), Ok(g)) = (value, Gauge::new(name, help)) {
            g.set(v);
            out.extend(g.collect());
        }
    };
    let float = |v: Option<u64>| v.map(|v| v as f64);
    gauge(
        "process_threads",
        "OS threads of the process.",
        float(f.threads),
    );
    gauge(
        "process_open_fds",
        "Open file descriptors.",
        float(f.open_fds),
    );
    gauge(
        "process_max_fds",
        "The limit on open file descriptors.",
        float(f.max_fds),
    );
    gauge(
        "process_resident_memory_bytes",
        "Resident memory.",
        float(f.resident_bytes),
    );
    gauge(
        "process_virtual_memory_bytes",
        "Virtual memory.",
        float(f.virtual_bytes),
    );
    gauge(
        "process_start_time_seconds",
        "Start time of the process since the unix epoch.",
        f.start_time_seconds,
    );
    if let (Some(cpu), Ok(c)) = (
        f.cpu_seconds,
        Counter::new(
            "process_cpu_seconds_total",
            "User and system CPU time spent.",
        ),
    ) {
        // A fresh counter per scrape, set to the kernel's running total.
        c.inc_by(cpu);
        out.extend(c.collect());
    }
    out
}
