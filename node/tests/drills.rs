//! Drills with real processes: etcd, a standalone source and `tessera` nodes, under continuous
//! ingest and queries. Each ends with exact counts (every written document searchable, none
//! lost), no failed query, and at most one primary per PIndex in every plan seen.
//!
//! - add a node: copies move to it within the throttles, make before break;
//! - hard failover: a node with copies killed -9 (failover delay 0): survivors serve at once,
//!   lost copies are rebuilt on the remaining nodes.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{free_port, http, serve, wait_for, Proc};
use tessera_tests::etcd::EtcdCluster;

struct Drill {
    _etcd: EtcdCluster,
    cfg: String,
    scratch: tempfile::TempDir,
    source: String,
    _source_proc: Proc,
    addresses: Vec<String>,
    nodes: Vec<Option<Proc>>,
    failover_delay_ms: u64,
}

impl Drill {
    fn start(nodes: usize, failover_delay_ms: u64) -> Self {
        let etcd = EtcdCluster::single();
        let cfg = etcd.cfg_spec("drill");
        let scratch = tempfile::tempdir().unwrap();
        let source = format!("127.0.0.1:{}", free_port());
        let source_proc = serve(
            &scratch.path().join("source"),
            &["source", "--bind", &source, "--partitions", "64"],
            &source,
        );
        let mut drill = Self {
            _etcd: etcd,
            cfg,
            scratch,
            source,
            _source_proc: source_proc,
            addresses: Vec::new(),
            nodes: Vec::new(),
            failover_delay_ms,
        };
        for _ in 0..nodes {
            drill.add_node();
        }
        drill
    }

    fn add_node(&mut self) -> usize {
        let i = self.addresses.len();
        let address = format!("127.0.0.1:{}", free_port());
        let dir = self.scratch.path().join(format!("node{i}"));
        let delay = self.failover_delay_ms.to_string();
        let zone = format!("zone-{i}");
        let args = [
            "--cfg",
            &self.cfg,
            "node",
            "--bind",
            &address,
            "--group",
            &zone,
            "--lease-ttl-ms",
            "2000",
            "--planner-lease-ttl-ms",
            "2000",
            "--failover-delay-ms",
            &delay,
        ];
        self.nodes.push(Some(serve(&dir, &args, &address)));
        self.addresses.push(address);
        i
    }

    fn kill(&mut self, i: usize) {
        let mut proc = self.nodes[i].take().expect("the node runs");
        proc.0.kill().expect("kill -9");
        proc.0.wait().expect("reaped");
    }

    fn a_live_node(&self) -> &str {
        let i = self
            .nodes
            .iter()
            .position(Option::is_some)
            .expect("a node runs");
        &self.addresses[i]
    }

    fn create_index(&self) {
        let index = format!(
            r#"{{"type": "fulltext", "source": {{"type": "tessera", "name": "docs", "partitions": 64, "params": {{"url": "http://{}"}}}},
                "plan": {{"index_partitions": 16, "replicas": 1}},
                "params": {{"mapping": {{"fields": {{"title": {{"type": "text"}}, "n": {{"type": "i64"}}}}}}}}}}"#,
            self.source
        );
        let (status, body) = http(self.a_live_node(), "PUT", "/api/index/books", &index);
        assert_eq!(status, 200, "{body}");
    }

    fn health(&self) -> serde_json::Value {
        http(self.a_live_node(), "GET", "/api/cluster/health", "").1
    }

    fn wait_green(&self, what: &str, timeout: Duration) {
        wait_for(what, timeout, || {
            (self.health()["status"] == "green").then_some(())
        });
    }

    fn plan(&self) -> serde_json::Value {
        let (_, body) = http(self.a_live_node(), "GET", "/api/plan", "");
        body["plans"][0].clone()
    }

    fn copies_on(&self, node_uuid: &str) -> usize {
        self.plan()["pindexes"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| p["copies"].as_array().cloned().unwrap_or_default())
            .filter(|c| c["node"] == node_uuid)
            .count()
    }

    fn uuid_of(&self, i: usize) -> String {
        let (_, body) = http(&self.addresses[i], "GET", "/api/ping", "");
        body["node"]
            .as_str()
            .expect("ping names the node")
            .to_string()
    }
}

/// Continuous ingest, queries and plan checks while a drill runs.
struct Load {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    queries: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(source: String, nodes: Arc<Mutex<Vec<String>>>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let queries = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        {
            let (stop, written) = (stop.clone(), written.clone());
            threads.push(std::thread::spawn(move || {
                let mut next = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let body: String = (next..next + 200)
                        .map(|i| format!("{{\"key\":\"d{i}\",\"doc\":{{\"title\":\"document {i}\",\"n\":{i}}}}}\n"))
                        .collect();
                    let (status, answer) = http(&source, "POST", "/api/source/docs/bulk", &body);
                    assert_eq!(status, 200, "ingest: {answer}");
                    next += 200;
                    written.store(next, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                }
            }));
        }
        {
            let (stop, queries, failures) = (stop.clone(), queries.clone(), failures.clone());
            threads.push(std::thread::spawn(move || {
                let mut turn = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let list = nodes.lock().unwrap().clone();
                    let node = &list[turn % list.len()];
                    turn += 1;
                    let (status, body) = http(
                        node,
                        "POST",
                        "/api/index/books/query",
                        r#"{"query": {"match": {"field": "title", "query": "document"}}, "size": 3}"#,
                    );
                    queries.fetch_add(1, Ordering::Relaxed);
                    if status != 200 || body["status"]["failed"] != 0 {
                        failures.lock().unwrap().push(format!("{node}: {status} {body}"));
                    }
                    // Every plan seen has at most one primary per PIndex.
                    let (_, plans) = http(node, "GET", "/api/plan", "");
                    for p in plans["plans"][0]["pindexes"].as_array().into_iter().flatten() {
                        let primaries = p["copies"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter(|c| c["role"] == "primary")
                            .count();
                        if primaries > 1 {
                            failures.lock().unwrap().push(format!("two primaries: {p}"));
                        }
                    }
                }
            }));
        }
        Self {
            stop,
            written,
            queries,
            failures,
            threads,
        }
    }

    /// Stops the load; returns (documents written, queries run, failures).
    fn stop(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("load thread");
        }
        let failures = self.failures.lock().unwrap().clone();
        (
            self.written.load(Ordering::Relaxed),
            self.queries.load(Ordering::Relaxed),
            failures,
        )
    }
}

/// Every written document is searchable from `node`, exactly.
fn assert_exact(node: &str, written: u64) {
    let body = r#"{"query": {"match_all": {}}, "size": 0, "consistency": {"level": "at_plus"}, "timeout_ms": 30000}"#;
    let (status, answer) = http(node, "POST", "/api/index/books/query", body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["total_hits"].as_u64(),
        Some(written),
        "documents lost or doubled: {answer}"
    );
}

#[test]
fn drill_add_a_node() {
    let mut drill = Drill::start(3, 30_000);
    drill.create_index();
    drill.wait_green("the index built on three nodes", Duration::from_secs(60));
    let nodes = Arc::new(Mutex::new(drill.addresses.clone()));
    let load = Load::start(drill.source.clone(), nodes.clone());
    wait_for("some load", Duration::from_secs(10), || {
        (load.queries.load(Ordering::Relaxed) > 5).then_some(())
    });

    let started = std::time::Instant::now();
    let new = drill.add_node();
    let uuid = drill.uuid_of(new);
    wait_for(
        "copies moving to the new node",
        Duration::from_secs(30),
        || (drill.copies_on(&uuid) > 0).then_some(()),
    );
    drill.wait_green("the rebalance finished", Duration::from_secs(90));
    nodes.lock().unwrap().push(drill.addresses[new].clone());
    let (written, queries, failures) = load.stop();
    assert!(
        failures.is_empty(),
        "{} of {queries} queries failed: {failures:?}",
        failures.len()
    );
    assert!(
        drill.copies_on(&uuid) >= 6,
        "the new node holds {} copies",
        drill.copies_on(&uuid)
    );
    eprintln!(
        "add a node: rebalanced in {:.1} s, {} copies moved, {written} documents written, {queries} queries, 0 failed",
        started.elapsed().as_secs_f64(),
        drill.copies_on(&uuid)
    );
    for address in &drill.addresses {
        assert_exact(address, written);
    }
}

#[test]
fn drill_hard_failover_of_a_node_with_one_replica() {
    let mut drill = Drill::start(3, 0);
    drill.create_index();
    drill.wait_green("the index built on three nodes", Duration::from_secs(60));
    let victim_uuid = drill.uuid_of(2);
    let survivors: Vec<String> = drill.addresses[..2].to_vec();
    let nodes = Arc::new(Mutex::new(survivors.clone()));
    let load = Load::start(drill.source.clone(), nodes);
    wait_for("some load", Duration::from_secs(10), || {
        (load.queries.load(Ordering::Relaxed) > 5).then_some(())
    });

    let killed = std::time::Instant::now();
    drill.kill(2);
    wait_for(
        "the dead node's copies gone from the plan",
        Duration::from_secs(30),
        || (drill.copies_on(&victim_uuid) == 0).then_some(()),
    );
    let promoted = killed.elapsed();
    wait_for(
        "copies rebuilt on the survivors",
        Duration::from_secs(90),
        || {
            let health = drill.health();
            // The dead node is defined but down; only its absence keeps the cluster from green.
            let plan = drill.plan();
            let full = plan["pindexes"].as_array().is_some_and(|ps| {
                ps.iter().all(|p| {
                    p["copies"]
                        .as_array()
                        .is_some_and(|c| c.len() == 2 && c.iter().all(|c| c["state"] == "active"))
                })
            });
            (full && health["status"] != "red").then_some(())
        },
    );
    let rebuilt = killed.elapsed();
    let (written, queries, failures) = load.stop();
    assert!(
        failures.is_empty(),
        "{} of {queries} queries failed: {failures:?}",
        failures.len()
    );
    for address in &survivors {
        assert_exact(address, written);
    }
    eprintln!(
        "hard failover: replicas promoted {:.1} s after kill -9 (lease 2 s, delay 0), copies rebuilt after {:.1} s, {written} documents written, {queries} queries, 0 failed",
        promoted.as_secs_f64(),
        rebuilt.as_secs_f64()
    );
}
