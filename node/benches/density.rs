//! Density: many small PIndexes on one node. A node on the embedded defaults hosts
//! `DENSITY_INDEXES` indexes (50) of `DENSITY_PINDEXES` PIndexes (20) each, one per tenant
//! source, `DENSITY_DOCS` documents per PIndex (200). Prints, in one run:
//! - resident memory and threads of the idle node, once every PIndex serves empty, peak and
//!   after loading, and once idle again;
//! - the time from creating the indexes to every PIndex serving;
//! - documents indexed per second into all those PIndexes at once, against the same documents
//!   into 16 PIndexes on a fresh node (the ratio is the target's "within 80%");
//! - a restart (SIGTERM, start again): time until every PIndex serves with exact counts.
//!
//! `cargo bench -p tessera-node --bench density`.

#[path = "support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{free_port, request, spawn, Cluster, Proc};

/// Resident memory (MB), peak resident memory (MB), threads and open files of a process.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    rss_mb: f64,
    peak_mb: f64,
    threads: u64,
    files: u64,
}

fn usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let files = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    Usage {
        rss_mb: field("VmRSS:") as f64 / 1024.0,
        peak_mb: field("VmHWM:") as f64 / 1024.0,
        threads: field("Threads:"),
        files,
    }
}

fn show(what: &str, u: Usage) {
    println!(
        "{what:<34} {:>9.0} MB resident {:>6} threads {:>6} open files",
        u.rss_mb, u.threads, u.files
    );
}

/// Samples a process every 50 ms, keeping the most threads seen, until dropped.
struct Sampler {
    most: Arc<Mutex<Usage>>,
    stop: Arc<AtomicBool>,
}

impl Sampler {
    fn start(pid: u32) -> Self {
        let most = Arc::new(Mutex::new(Usage::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (most.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let now = usage(pid);
                if let Ok(mut most) = m.lock() {
                    most.threads = most.threads.max(now.threads);
                    most.files = most.files.max(now.files);
                    most.rss_mb = most.rss_mb.max(now.rss_mb);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Self { most, stop }
    }

    fn most(&self) -> Usage {
        self.most.lock().map(|m| *m).unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn node(dir: &std::path::Path, partitions: u32, extra: &[&str]) -> (String, Proc) {
    let address = format!("127.0.0.1:{}", free_port());
    let partitions = partitions.to_string();
    let mut args = vec![
        "node",
        "--bind",
        &address,
        "--source-partitions",
        &partitions,
    ];
    args.extend_from_slice(extra);
    let proc = spawn(dir, &args, Some(&address));
    (address, proc)
}

fn definition(source: &str, partitions: u32) -> String {
    format!(
        r#"{{"type": "fulltext", "source": {{"type": "tessera", "name": "{source}", "partitions": {partitions}}},
            "plan": {{"max_partitions_per_pindex": 1, "replicas": 0}},
            "params": {{"mapping": {{"fields": {{"title": {{"type": "text"}}, "body": {{"type": "text"}}, "n": {{"type": "i64"}}}}}}}}}}"#
    )
}

fn documents(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|i| {
            format!(
                "{{\"key\":\"d{i}\",\"doc\":{{\"title\":\"tenant document {i}\",\"body\":\"a small document of a tenant: words that repeat across tenants and partitions {}\",\"n\":{i}}}}}\n",
                i % 97
            )
        })
        .collect()
}

/// The count and the PIndexes counted of `index`.
fn count(cluster: &Cluster, index: &str) -> (u64, u64) {
    let (status, answer) = cluster.call("GET", &format!("/api/index/{index}/count"), "");
    if status != 200 {
        return (0, 0);
    }
    (
        answer["count"].as_u64().unwrap_or(0),
        answer["pindexes_counted"].as_u64().unwrap_or(0),
    )
}

/// Waits until every index of `names` counts `docs` over `pindexes` PIndexes.
fn wait_all(cluster: &Cluster, names: &[String], pindexes: u64, docs: Option<u64>, what: &str) {
    let mut pending: Vec<&String> = names.iter().collect();
    cluster.wait(what, Duration::from_secs(3600), |c| {
        pending.retain(|name| {
            let (n, counted) = count(c, name);
            !(counted == pindexes && docs.is_none_or(|d| n == d))
        });
        pending.is_empty().then_some(())
    });
}

fn load(cluster: &Cluster, source: &str, docs: usize) {
    let url = format!("http://{}/api/source/{source}/bulk", cluster.node);
    for start in (0..docs).step_by(20_000) {
        let body = documents(start, 20_000.min(docs - start));
        let (status, answer) =
            cluster
                .runtime
                .block_on(request(&cluster.client, "POST", &url, body));
        assert_eq!(status, 200, "{answer}");
    }
}

/// Documents per second into one index of 16 PIndexes on a fresh node.
fn baseline(scratch: &std::path::Path, docs: usize, extra: &[&str]) -> f64 {
    let (address, proc) = node(&scratch.join("baseline"), 16, extra);
    let cluster = Cluster::new(&address);
    let (status, answer) = cluster.call("PUT", "/api/index/all", &definition("all", 16));
    assert_eq!(status, 200, "{answer}");
    wait_all(&cluster, &["all".into()], 16, None, "16 PIndexes serving");
    let started = Instant::now();
    load(&cluster, "all", docs);
    wait_all(
        &cluster,
        &["all".into()],
        16,
        Some(docs as u64),
        "the baseline loaded",
    );
    let rate = docs as f64 / started.elapsed().as_secs_f64();
    show("16 PIndexes, loaded", usage(proc.0.id()));
    rate
}

fn main() {
    let indexes = support::docs_from_env("DENSITY_INDEXES", 50);
    let pindexes = support::docs_from_env("DENSITY_PINDEXES", 20) as u32;
    let per_pindex = support::docs_from_env("DENSITY_DOCS", 200);
    let flags = std::env::var("DENSITY_NODE_FLAGS").unwrap_or_default();
    let extra: Vec<&str> = flags.split_whitespace().collect();
    let per_index = per_pindex * pindexes as usize;
    let total = per_index * indexes;
    let scratch = tempfile::tempdir().expect("tempdir");
    println!(
        "{indexes} indexes × {pindexes} PIndexes = {} PIndexes, {total} documents ({per_index} per index)",
        indexes * pindexes as usize
    );

    let baseline_rate = baseline(scratch.path(), total, &extra);

    let dir = scratch.path().join("dense");
    let (address, mut proc) = node(&dir, pindexes, &extra);
    let cluster = Cluster::new(&address);
    let names: Vec<String> = (0..indexes).map(|i| format!("t{i}")).collect();
    show("idle, no PIndex", usage(proc.0.id()));

    let sampler = Sampler::start(proc.0.id());
    let created = Instant::now();
    for name in &names {
        let (status, answer) = cluster.call(
            "PUT",
            &format!("/api/index/{name}"),
            &definition(name, pindexes),
        );
        assert_eq!(status, 200, "{answer}");
    }
    wait_all(
        &cluster,
        &names,
        u64::from(pindexes),
        None,
        "every PIndex serving",
    );
    let serving = created.elapsed();
    show("every PIndex serving, empty", usage(proc.0.id()));

    let started = Instant::now();
    for name in &names {
        load(&cluster, name, per_index);
    }
    wait_all(
        &cluster,
        &names,
        u64::from(pindexes),
        Some(per_index as u64),
        "every index loaded",
    );
    let dense_rate = total as f64 / started.elapsed().as_secs_f64();
    let loaded = usage(proc.0.id());
    let most = sampler.most();
    show("loaded", loaded);
    show("most seen while creating/loading", most);
    println!("{:<34} {:>9.0} MB", "peak resident (VmHWM)", loaded.peak_mb);

    // Idle: writers close after their idle period; give them time, then look.
    std::thread::sleep(Duration::from_secs(
        support::docs_from_env("DENSITY_IDLE_SECS", 15) as u64,
    ));
    show("idle after loading", usage(proc.0.id()));

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &proc.0.id().to_string()])
        .status();
    let _ = proc.0.wait();
    let restarted = Instant::now();
    let (address, again) = node(&dir, pindexes, &extra);
    proc = again;
    let cluster = Cluster::new(&address);
    wait_all(
        &cluster,
        &names,
        u64::from(pindexes),
        Some(per_index as u64),
        "every PIndex serving after the restart",
    );
    let restart = restarted.elapsed();
    show("restarted, every PIndex serving", usage(proc.0.id()));

    println!(
        "create {indexes} indexes → {} PIndexes serving: {:.2} s",
        indexes * pindexes as usize,
        serving.as_secs_f64()
    );
    println!(
        "ingest: {:.0} docs/s into {} PIndexes vs {:.0} docs/s into 16 ({:.2}×)",
        dense_rate,
        indexes * pindexes as usize,
        baseline_rate,
        dense_rate / baseline_rate
    );
    println!(
        "restart → every PIndex serving, counts exact: {:.2} s",
        restart.as_secs_f64()
    );
}
