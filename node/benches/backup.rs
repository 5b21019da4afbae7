//! Backup and restore: three nodes host 1M documents in 16 PIndexes with one replica each.
//! Prints, in one run: the backup's MB/s (online, with queries running), query p50/p99 during
//! the backup against without, the bytes a second backup sends after 1% of the documents
//! changed, and the time to restore the index (downloading its PIndexes, and regrouping them
//! into another partitioning) against rebuilding it from its source. Run:
//! `cargo bench -p tessera-node --bench backup` (`BACKUP_DOCS` to change the size).

#[path = "support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{request, Cluster};
use tessera_tests::etcd::EtcdCluster;

/// What the backup benchmark asks of the cluster beyond the shared calls.
trait Backups {
    fn backup(&self) -> (f64, serde_json::Value);
}

impl Backups for Cluster {
    /// Runs a backup to its end; returns seconds and the finished job.
    fn backup(&self) -> (f64, serde_json::Value) {
        let started = Instant::now();
        let (status, answer) = self.call("POST", "/api/backup/repos/bench/snapshots", "{}");
        assert_eq!(status, 202, "{answer}");
        let id = answer["id"].as_str().expect("job id").to_string();
        let job = self.wait("the backup", Duration::from_secs(3600), |c| {
            let job = c.call("GET", &format!("/api/backup/jobs/{id}"), "").1["job"].clone();
            (job["status"] != "running").then_some(job)
        });
        assert_eq!(job["status"], "completed", "{job}");
        (started.elapsed().as_secs_f64(), job)
    }
}

fn percentiles(mut samples: Vec<f64>) -> (f64, f64, usize) {
    samples.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.5), at(0.99), samples.len())
}

/// Queries `node` in a loop until `stop`; returns each query's milliseconds.
fn query_load(node: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<f64>> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let client = support::client();
        let url = format!("http://{node}/api/index/docs/query");
        let mut times = Vec::new();
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let body = format!(
                r#"{{"query": {{"match": {{"field": "title", "query": "number {}"}}}}, "size": 10}}"#,
                i % 1000
            );
            let started = Instant::now();
            let (status, _) = runtime.block_on(request(&client, "POST", &url, body));
            if status == 200 {
                times.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            i += 1;
        }
        times
    })
}

fn main() {
    let docs = support::docs_from_env("BACKUP_DOCS", 1_000_000);
    let scratch = tempfile::tempdir().expect("tempdir");
    let etcd = EtcdCluster::single();
    let cfg = etcd.cfg_spec("bench");
    let (source, _source) = support::start_source(scratch.path());
    let repo_dir = scratch.path().join("repo");
    std::fs::create_dir_all(&repo_dir).expect("repo dir");
    let backup_root = scratch.path().display().to_string();
    let flags = [
        "--max-backfills",
        "8",
        "--lease-ttl-ms",
        "2000",
        "--backup-path",
        &backup_root,
    ];
    let (addresses, _nodes): (Vec<String>, Vec<_>) = (0..3)
        .map(|i| support::start_node(scratch.path(), &cfg, i, &flags))
        .unzip();
    let cluster = Cluster::new(&addresses[0]);
    let definition = format!(
        r#"{{"type": "fulltext", "source": {{"type": "tessera", "name": "docs", "partitions": 64, "params": {{"url": "http://{source}"}}}},
            "plan": {{"index_partitions": 16, "replicas": 1}},
            "params": {{"mapping": {{"fields": {{"title": {{"type": "text"}}, "n": {{"type": "i64"}}}}}}}}}}"#
    );
    let (status, answer) = cluster.call("PUT", "/api/index/docs", &definition);
    assert_eq!(status, 200, "{answer}");
    let load = |from: usize, to: usize, word: &str| {
        for start in (from..to).step_by(50_000) {
            let body: String = (start..(start + 50_000).min(to))
                .map(|i| format!("{{\"key\":\"d{i}\",\"doc\":{{\"title\":\"{word} number {i} of the backup benchmark\",\"n\":{i}}}}}\n"))
                .collect();
            let url = format!("http://{source}/api/source/docs/bulk");
            let (status, answer) =
                cluster
                    .runtime
                    .block_on(request(&cluster.client, "POST", &url, body));
            assert_eq!(status, 200, "{answer}");
        }
    };
    let loading = Instant::now();
    load(0, docs, "document");
    cluster.wait_count("docs", docs);
    cluster.wait("every copy built", Duration::from_secs(1800), |c| {
        (c.call("GET", "/api/cluster/health", "").1["status"] == "green").then_some(())
    });
    println!(
        "{docs} documents, 16 PIndexes × 2 copies on 3 nodes, built in {:.1} s",
        loading.elapsed().as_secs_f64()
    );
    let repo = format!(r#"{{"type": "fs", "location": "{}"}}"#, repo_dir.display());
    let (status, answer) = cluster.call("PUT", "/api/backup/repos/bench", &repo);
    assert_eq!(status, 200, "{answer}");

    // Queries alone, then queries during the first backup.
    let stop = Arc::new(AtomicBool::new(false));
    let quiet = query_load(addresses[1].clone(), stop.clone());
    std::thread::sleep(Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    let (q50, q99, n) = percentiles(quiet.join().expect("queries"));
    println!("queries without a backup: p50 {q50:.2} ms, p99 {q99:.2} ms ({n} queries)");
    let stop = Arc::new(AtomicBool::new(false));
    let during = query_load(addresses[1].clone(), stop.clone());
    let (seconds, first) = cluster.backup();
    stop.store(true, Ordering::Relaxed);
    let (b50, b99, n) = percentiles(during.join().expect("queries"));
    let bytes = first["progress"]["bytes_total"].as_u64().unwrap_or(0);
    let sent = first["progress"]["bytes_uploaded"].as_u64().unwrap_or(0);
    println!(
        "first backup: {:.1} MB of files ({:.1} MB stored) in {seconds:.1} s: {:.1} MB/s",
        bytes as f64 / 1e6,
        sent as f64 / 1e6,
        bytes as f64 / 1e6 / seconds
    );
    println!("queries during the backup: p50 {b50:.2} ms, p99 {b99:.2} ms ({n} queries)");

    // 1% of the documents changed: what the next backup sends.
    load(0, docs / 100, "changed");
    let changed = r#"{"query": {"match": {"field": "title", "query": "changed"}}, "size": 0, "consistency": {"level": "at_plus"}, "timeout_ms": 30000}"#;
    cluster.wait("the changes searchable", Duration::from_secs(600), |c| {
        let (status, answer) = c.call("POST", "/api/index/docs/query", changed);
        (status == 200 && answer["total_hits"].as_u64() == Some((docs / 100) as u64)).then_some(())
    });
    let (seconds, second) = cluster.backup();
    let id = second["id"].as_str().unwrap_or_default().to_string();
    println!(
        "second backup after 1% changed: sent {:.2} MB ({} files) of {:.1} MB in {seconds:.1} s",
        second["progress"]["bytes_uploaded"].as_u64().unwrap_or(0) as f64 / 1e6,
        second["progress"]["files_uploaded"],
        second["progress"]["bytes_total"].as_u64().unwrap_or(0) as f64 / 1e6,
    );

    // Restore (download) against rebuild from the source, same cluster, same source.
    let started = Instant::now();
    let body =
        format!(r#"{{"repo": "bench", "snapshot": "{id}", "rename": {{"docs": "restored"}}}}"#);
    let (status, answer) = cluster.call("POST", "/api/backup/restore", &body);
    assert_eq!(status, 202, "{answer}");
    cluster.wait_count("restored", docs);
    let restore = started.elapsed().as_secs_f64();
    // Into another partitioning: 5 PIndexes of 13 or 12 source partitions, each regrouped out
    // of the 4 or 5 saved PIndexes overlapping it.
    let started = Instant::now();
    let body = format!(
        r#"{{"repo": "bench", "snapshot": "{id}", "rename": {{"docs": "regrouped"}}, "index_partitions": 5}}"#
    );
    let (status, answer) = cluster.call("POST", "/api/backup/restore", &body);
    assert_eq!(status, 202, "{answer}");
    cluster.wait_count("regrouped", docs);
    let regroup = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let (status, answer) = cluster.call("PUT", "/api/index/rebuilt", &definition);
    assert_eq!(status, 200, "{answer}");
    cluster.wait_count("rebuilt", docs);
    let rebuild = started.elapsed().as_secs_f64();
    println!(
        "restore (download 16 PIndexes, 2 copies each): {restore:.1} s; rebuild from the source: {rebuild:.1} s; {:.1}× faster",
        rebuild / restore
    );
    println!(
        "restore into 5 PIndexes (regrouped from the 16 saved, 2 copies each): {regroup:.1} s; {:.1}× faster than the rebuild",
        rebuild / regroup
    );
}
