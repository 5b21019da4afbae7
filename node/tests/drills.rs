//! Drills with real processes: etcd, a standalone source and `tessera` nodes, under continuous
//! ingest and queries. Each ends with exact counts (every written document searchable, none
//! lost), no failed query, and at most one primary per PIndex in every plan seen.
//!
//! - add a node: copies move to it within the throttles, make before break;
//! - hard failover: a node with copies killed -9 (failover delay 0): survivors serve at once,
//!   lost copies are rebuilt on the remaining nodes;
//! - through the supervisor API: refusals that change nothing, a dry run, drain with
//!   `tessera ctl rebalance --wait`, a second change refused while one runs, swap (a managed
//!   node in, one out), cancel (node definitions restored), graceful failover;
//! - the planner leader (a standalone `tessera planner`) killed mid-rebalance: the other
//!   planner takes over and finishes the task.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{free_port, http, serve, wait_for, Proc, BIN};
use tessera_tests::etcd::EtcdCluster;

struct Drill {
    etcd: EtcdCluster,
    cfg: String,
    scratch: tempfile::TempDir,
    source: String,
    _source_proc: Proc,
    addresses: Vec<String>,
    nodes: Vec<Option<Proc>>,
    failover_delay_ms: u64,
    /// Standalone planners (then nodes do not plan).
    planners: Vec<Option<Proc>>,
}

impl Drill {
    fn start(nodes: usize, failover_delay_ms: u64) -> Self {
        Self::start_with(nodes, failover_delay_ms, 0)
    }

    fn start_with(nodes: usize, failover_delay_ms: u64, planners: usize) -> Self {
        Self::start_on(EtcdCluster::single(), nodes, failover_delay_ms, planners)
    }

    fn start_on(etcd: EtcdCluster, nodes: usize, failover_delay_ms: u64, planners: usize) -> Self {
        let cfg = etcd.cfg_spec("drill");
        let scratch = tempfile::tempdir().unwrap();
        let source = format!("127.0.0.1:{}", free_port());
        let source_proc = serve(
            &scratch.path().join("source"),
            &["source", "--bind", &source, "--partitions", "64"],
            &source,
        );
        let mut drill = Self {
            etcd,
            cfg,
            scratch,
            source,
            _source_proc: source_proc,
            addresses: Vec::new(),
            nodes: Vec::new(),
            failover_delay_ms,
            planners: Vec::new(),
        };
        for i in 0..planners {
            drill.start_planner(i);
        }
        for _ in 0..nodes {
            drill.add_node();
        }
        drill
    }

    fn start_planner(&mut self, i: usize) {
        let child = std::process::Command::new(BIN)
            .arg("--data-dir")
            .arg(self.scratch.path().join(format!("planner{i}")))
            .args(["--cfg", &self.cfg, "planner", "--name", &format!("p{i}")])
            .args(["--planner-lease-ttl-ms", "2000", "--failover-delay-ms"])
            .arg(self.failover_delay_ms.to_string())
            .env("TESSERA_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start a planner");
        self.planners.push(Some(Proc(child)));
    }

    /// The standalone planner leading now (`p<i>` → i).
    fn planner_leader(&self) -> Option<usize> {
        let (_, dump) = http(self.a_live_node(), "GET", "/api/cfg", "");
        let key = "/tessera/drill/planner/leader";
        let uuid = dump["keys"][key]["value"]["uuid"].as_str()?;
        uuid.strip_prefix("planner-p")?.parse().ok()
    }

    fn add_node(&mut self) -> usize {
        self.add_node_with(&[])
    }

    fn add_node_with(&mut self, extra: &[&str]) -> usize {
        let i = self.addresses.len();
        let address = format!("127.0.0.1:{}", free_port());
        let dir = self.scratch.path().join(format!("node{i}"));
        let delay = self.failover_delay_ms.to_string();
        let zone = format!("zone-{i}");
        let mut args = vec![
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
        if !self.planners.is_empty() {
            args.extend(["--tags", "feed,janitor,pindex,queryer"]);
        }
        args.extend_from_slice(extra);
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

    /// Green but for automatic failovers waiting to be acknowledged.
    fn wait_settled(&self, what: &str, timeout: Duration) {
        wait_for(what, timeout, || {
            let health = self.health();
            let only_ack = health["reasons"].as_array().is_some_and(|r| {
                r.iter().all(|r| {
                    r.as_str()
                        .is_some_and(|r| r.starts_with("automatic failovers"))
                })
            });
            (health["status"] == "green" || only_ack).then_some(())
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
    // Explain says why each copy is where it is.
    let pindex = drill.plan()["pindexes"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, why) = http(
        &drill.addresses[0],
        "GET",
        &format!("/api/plan/explain?pindex={pindex}"),
        "",
    );
    assert_eq!(status, 200, "{why}");
    assert_eq!(why["copies"].as_array().map(Vec::len), Some(2), "{why}");
    assert!(
        why["copies"][0]["why"]
            .as_array()
            .is_some_and(|w| w.len() >= 3),
        "{why}"
    );
    assert_eq!(
        why["other_nodes"].as_array().map(Vec::len),
        Some(2),
        "{why}"
    );
    let (status, _) = http(
        &drill.addresses[0],
        "GET",
        "/api/plan/explain?pindex=nope",
        "",
    );
    assert_eq!(status, 404);
    let (status, _) = http(&drill.addresses[0], "GET", "/api/plan/explain", "");
    assert_eq!(status, 400);
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

fn change(node: &str, body: &str) -> (u16, serde_json::Value) {
    http(node, "POST", "/api/ctl/topology-change", body)
}

fn task_of(node: &str, id: &str) -> serde_json::Value {
    http(node, "GET", &format!("/api/ctl/tasks/{id}"), "").1["task"].clone()
}

fn wait_task(node: &str, id: &str, timeout: Duration) -> serde_json::Value {
    wait_for(&format!("task {id} to end"), timeout, || {
        let task = task_of(node, id);
        (task["status"] != "running" && task["status"].is_string()).then_some(task)
    })
}

fn ctl(node: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(["ctl", "--node", node])
        .args(args)
        .output()
        .expect("run tessera ctl")
}

#[test]
fn drill_supervisor_api_drain_swap_cancel_graceful() {
    let mut drill = Drill::start(3, 30_000);
    drill.create_index();
    drill.wait_green("the index built on three nodes", Duration::from_secs(60));
    let a = drill.addresses[0].clone();
    let uuids: Vec<String> = (0..3).map(|i| drill.uuid_of(i)).collect();

    // Refusals change nothing.
    let topology_before = http(&a, "GET", "/api/ctl/topology", "").1["nodes"].clone();
    for (body, field) in [
        (
            r#"{"type": "drain", "eject_nodes": ["nope"]}"#.to_string(),
            "eject_nodes[0]",
        ),
        (
            format!(r#"{{"type": "drain", "eject_nodes": {:?}}}"#, uuids),
            "eject_nodes",
        ),
        (
            format!(
                r#"{{"type": "failover-hard", "eject_nodes": ["{}", "{}"]}}"#,
                uuids[0], uuids[1]
            ),
            "eject_nodes",
        ),
        (r#"{"type": "teleport"}"#.to_string(), "type"),
        (
            r#"{"type": "rebalance", "force": true}"#.to_string(),
            "force",
        ),
    ] {
        let (status, answer) = change(&a, &body);
        assert_eq!(
            (status, answer["field"].as_str()),
            (400, Some(field)),
            "{body}: {answer}"
        );
    }
    let (status, dry) = change(
        &a,
        &format!(
            r#"{{"type": "drain", "eject_nodes": ["{}"], "dry_run": true}}"#,
            uuids[0]
        ),
    );
    assert_eq!(status, 200, "{dry}");
    assert!(dry["copies_to_build"].as_u64() > Some(0), "{dry}");
    assert_eq!(
        http(&a, "GET", "/api/ctl/topology", "").1["nodes"],
        topology_before,
        "a refusal or dry run changed nodes"
    );

    // The same API over gRPC answers the same JSON and maps refusals to statuses.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use tessera_proto::v1::supervisor_client::SupervisorClient;
        use tessera_proto::v1::{JsonRequest, SupervisorEmpty, TaskId};
        let mut client = SupervisorClient::connect(format!("http://{a}"))
            .await
            .unwrap();
        let topology = client
            .topology(SupervisorEmpty {})
            .await
            .unwrap()
            .into_inner();
        let topology: serde_json::Value = serde_json::from_str(&topology.json).unwrap();
        assert_eq!(topology["nodes"], topology_before);
        let refused = client
            .topology_change(JsonRequest {
                json: r#"{"type": "drain", "eject_nodes": ["nope"]}"#.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        let missing = client
            .get_task(TaskId {
                id: "t-nope".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound);
        let health = client
            .health(SupervisorEmpty {})
            .await
            .unwrap()
            .into_inner();
        assert!(
            health.json.contains("\"status\":\"green\""),
            "{}",
            health.json
        );
    });

    let nodes = Arc::new(Mutex::new(drill.addresses.clone()));
    let load = Load::start(drill.source.clone(), nodes.clone());

    // Drain node 0 with ctl --wait; a second change meanwhile is refused.
    let drain = {
        let (a, u) = (a.clone(), uuids[0].clone());
        std::thread::spawn(move || {
            ctl(
                &a,
                &[
                    "rebalance",
                    "--type",
                    "drain",
                    "--eject",
                    &u,
                    "--wait",
                    "--timeout-s",
                    "120",
                ],
            )
        })
    };
    // (The probe is refused either way: 409 while the drain runs, 400 before.)
    let lock = wait_for("the drain running", Duration::from_secs(10), || {
        let (status, answer) = change(&a, r#"{"type": "drain", "eject_nodes": ["nope"]}"#);
        (status == 409).then_some(answer)
    });
    assert!(
        lock["error"]
            .as_str()
            .unwrap_or_default()
            .contains("is running"),
        "{lock}"
    );
    let out = drain.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("completed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(drill.copies_on(&uuids[0]), 0);

    // Swap: a managed node comes in (known, not wanted: it gets nothing by itself), node 1 goes.
    let new = drill.add_node_with(&["--managed"]);
    let new_uuid = drill.uuid_of(new);
    let (_, topology) = http(&a, "GET", "/api/ctl/topology", "");
    let state = |t: &serde_json::Value, u: &str| {
        t["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["uuid"] == u)
            .map(|n| n["state"].clone())
    };
    assert_eq!(
        state(&topology, &new_uuid),
        Some(serde_json::json!("known")),
        "{topology}"
    );
    let (status, started) = change(
        &a,
        &format!(
            r#"{{"type": "swap", "keep_nodes": ["{new_uuid}"], "eject_nodes": ["{}"]}}"#,
            uuids[1]
        ),
    );
    assert_eq!(status, 202, "{started}");
    let task = wait_task(
        &a,
        started["task"].as_str().unwrap(),
        Duration::from_secs(120),
    );
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["progress"]["percent"], 100.0, "{task}");
    assert_eq!(drill.copies_on(&uuids[1]), 0);
    assert!(drill.copies_on(&new_uuid) > 0);
    nodes.lock().unwrap().push(drill.addresses[new].clone());

    // Cancel: bring node 0 back, cancel at once: node 0 is unwanted again and ends with nothing.
    let (status, started) = change(
        &a,
        &format!(r#"{{"type": "rebalance", "keep_nodes": ["{}"]}}"#, uuids[0]),
    );
    assert_eq!(status, 202, "{started}");
    let id = started["task"].as_str().unwrap().to_string();
    let (status, cancelled) = http(&a, "POST", &format!("/api/ctl/tasks/{id}/cancel"), "");
    assert_eq!(
        (status, cancelled["task"]["status"].as_str()),
        (200, Some("cancelled")),
        "{cancelled}"
    );
    let (status, _) = http(&a, "POST", &format!("/api/ctl/tasks/{id}/cancel"), "");
    assert_eq!(status, 409, "cancelling twice");
    drill.wait_green("settled after the cancel", Duration::from_secs(60));
    wait_for(
        "node 0 empty after the cancel",
        Duration::from_secs(60),
        || (drill.copies_on(&uuids[0]) == 0).then_some(()),
    );

    // Node 0 back for good (a rebalance that runs to the end).
    let (status, started) = change(
        &a,
        &format!(r#"{{"type": "rebalance", "keep_nodes": ["{}"]}}"#, uuids[0]),
    );
    assert_eq!(status, 202, "{started}");
    let task = wait_task(
        &a,
        started["task"].as_str().unwrap(),
        Duration::from_secs(120),
    );
    assert_eq!(task["status"], "completed", "{task}");
    assert!(drill.copies_on(&uuids[0]) > 0);

    // Graceful failover of node 2: reads leave it, then it is failed over; queries never fail.
    let (status, started) = change(
        &a,
        &format!(
            r#"{{"type": "failover-graceful", "eject_nodes": ["{}"]}}"#,
            uuids[2]
        ),
    );
    assert_eq!(status, 202, "{started}");
    let task = wait_task(
        &a,
        started["task"].as_str().unwrap(),
        Duration::from_secs(120),
    );
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(drill.copies_on(&uuids[2]), 0);
    let (_, topology) = http(&a, "GET", "/api/ctl/topology", "");
    assert_eq!(
        state(&topology, &uuids[2]),
        Some(serde_json::json!("failed"))
    );
    drill.wait_green(
        "copies rebuilt after the graceful failover",
        Duration::from_secs(90),
    );

    let (written, queries, failures) = load.stop();
    assert!(
        failures.is_empty(),
        "{} of {queries} queries failed: {failures:?}",
        failures.len()
    );
    assert_exact(&a, written);
    let (_, tasks) = http(&a, "GET", "/api/ctl/tasks", "");
    assert_eq!(tasks["tasks"].as_array().map(Vec::len), Some(5), "{tasks}");
}

#[test]
fn drill_kill_the_planner_leader_mid_rebalance() {
    let mut drill = Drill::start_with(3, 30_000, 2);
    drill.create_index();
    drill.wait_green("the index built on three nodes", Duration::from_secs(60));
    let a = drill.addresses[0].clone();
    let nodes = Arc::new(Mutex::new(drill.addresses.clone()));
    let load = Load::start(drill.source.clone(), nodes);
    let victim = drill.uuid_of(2);
    let (status, started) = change(
        &a,
        &format!(r#"{{"type": "drain", "eject_nodes": ["{victim}"]}}"#),
    );
    assert_eq!(status, 202, "{started}");
    let id = started["task"].as_str().unwrap().to_string();
    let leader = wait_for("a planner leading", Duration::from_secs(10), || {
        drill.planner_leader()
    });
    let mut proc = drill.planners[leader].take().expect("the leader runs");
    proc.0.kill().expect("kill -9 the planner leader");
    proc.0.wait().expect("reaped");
    let task = wait_task(&a, &id, Duration::from_secs(120));
    assert_eq!(task["status"], "completed", "{task}");
    let now = drill.planner_leader();
    assert!(
        now.is_some_and(|l| l != leader),
        "the other planner did not take over: {now:?}"
    );
    assert_eq!(drill.copies_on(&victim), 0);
    let (written, queries, failures) = load.stop();
    assert!(
        failures.is_empty(),
        "{} of {queries} queries failed: {failures:?}",
        failures.len()
    );
    assert_exact(&a, written);
}

#[test]
fn drill_freeze_holds_moves_and_the_failover_cap_waits_for_an_acknowledgement() {
    let mut drill = Drill::start(4, 0);
    drill.create_index();
    drill.wait_green("the index built on four nodes", Duration::from_secs(60));
    let a = drill.addresses[0].clone();
    let nodes = Arc::new(Mutex::new(drill.addresses[..2].to_vec()));
    let load = Load::start(drill.source.clone(), nodes);

    // Frozen: a new node gets nothing (observed over a few planner rounds' worth of time).
    let (status, _) = http(&a, "POST", "/api/ctl/freeze", r#"{"reason": "disk swap"}"#);
    assert_eq!(status, 200);
    let new = drill.add_node();
    let new_uuid = drill.uuid_of(new);
    let health = drill.health();
    assert!(
        health["reasons"].to_string().contains("cluster frozen"),
        "{health}"
    );
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < until {
        assert_eq!(drill.copies_on(&new_uuid), 0, "a copy moved while frozen");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, _) = http(&a, "POST", "/api/ctl/unfreeze", "");
    assert_eq!(status, 200);
    wait_for(
        "copies moving to the new node after unfreezing",
        Duration::from_secs(30),
        || (drill.copies_on(&new_uuid) > 0).then_some(()),
    );
    drill.wait_green("settled after unfreezing", Duration::from_secs(90));

    // The first absent node is failed over automatically (cap 1, delay 0); the second waits.
    let (first, second) = (drill.uuid_of(3), drill.uuid_of(2));
    drill.kill(3);
    wait_for("the first failover", Duration::from_secs(30), || {
        (drill.copies_on(&first) == 0).then_some(())
    });
    drill.wait_settled(
        "copies rebuilt after the first failover",
        Duration::from_secs(90),
    );
    drill.kill(2);
    wait_for(
        "health naming the failover to acknowledge",
        Duration::from_secs(30),
        || {
            let h = drill.health();
            (h["reasons"].to_string().contains("copy on a down node")).then_some(h)
        },
    );
    // Not failed over while the count is unacknowledged (observed for a while).
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < until {
        assert!(drill.copies_on(&second) > 0, "failed over past the cap");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, _) = http(&a, "POST", "/api/ctl/failover/ack", "");
    assert_eq!(status, 200);
    wait_for(
        "the second failover after the acknowledgement",
        Duration::from_secs(30),
        || (drill.copies_on(&second) == 0).then_some(()),
    );
    let (written, queries, failures) = load.stop();
    assert!(
        failures.is_empty(),
        "{} of {queries} queries failed: {failures:?}",
        failures.len()
    );
    assert_exact(&a, written);
}

#[test]
fn drill_sigstop_past_the_failover_delay_then_sigcont() {
    let mut drill = Drill::start(3, 0);
    drill.create_index();
    drill.wait_green("the index built on three nodes", Duration::from_secs(60));
    let a = drill.addresses[0].clone();
    let victim = drill.uuid_of(2);
    let nodes = Arc::new(Mutex::new(drill.addresses[..2].to_vec()));
    let load = Load::start(drill.source.clone(), nodes);
    let pid = drill.nodes[2].as_ref().expect("runs").0.id().to_string();
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    signal("-STOP");
    wait_for(
        "the stopped node failed over",
        Duration::from_secs(30),
        || (drill.copies_on(&victim) == 0).then_some(()),
    );
    let (status, _) = http(&a, "POST", "/api/ctl/failover/ack", "");
    assert_eq!(status, 200);
    signal("-CONT");
    // It finds its lease gone and exits non-zero (fenced), for its supervisor to restart it.
    let code = wait_for("the fenced node to exit", Duration::from_secs(30), || {
        drill.nodes[2]
            .as_mut()
            .and_then(|p| p.0.try_wait().ok().flatten())
    });
    assert!(!code.success(), "a fenced node must exit non-zero");
    drill.nodes[2] = None;
    // Restarted with its data dir, it rejoins and gets copies again.
    let address = drill.addresses[2].clone();
    let dir = drill.scratch.path().join("node2");
    let delay = drill.failover_delay_ms.to_string();
    let args = [
        "--cfg",
        &drill.cfg,
        "node",
        "--bind",
        &address,
        "--group",
        "zone-2",
        "--lease-ttl-ms",
        "2000",
        "--planner-lease-ttl-ms",
        "2000",
        "--failover-delay-ms",
        &delay,
    ];
    drill.nodes[2] = Some(serve(&dir, &args, &address));
    wait_for(
        "the node rejoined with copies",
        Duration::from_secs(60),
        || (drill.copies_on(&victim) > 0).then_some(()),
    );
    drill.wait_green("settled after the rejoin", Duration::from_secs(90));
    let (written, queries, failures) = load.stop();
    assert!(
        failures.is_empty(),
        "{} of {queries} queries failed: {failures:?}",
        failures.len()
    );
    assert_exact(&a, written);
}

/// Drains node 0 and waits until the task has moved some copies but not all.
fn start_drain_and_wait_midway(drill: &Drill) -> String {
    let a = drill.addresses[0].clone();
    let ejected = drill.uuid_of(0);
    let (status, started) = change(
        &a,
        &format!(r#"{{"type": "drain", "eject_nodes": ["{ejected}"]}}"#),
    );
    assert_eq!(status, 202, "{started}");
    let id = started["task"].as_str().unwrap().to_string();
    wait_for("the drain under way", Duration::from_secs(30), || {
        let t = task_of(&a, &id);
        (t["status"] == "running" && t["progress"]["moves_total"].as_u64() > Some(0)).then_some(())
    });
    id
}

#[test]
fn drill_kill_a_node_mid_rebalance() {
    let mut drill = Drill::start(4, 0);
    drill.create_index();
    drill.wait_green("the index built on four nodes", Duration::from_secs(60));
    let a = drill.addresses[0].clone();
    let nodes = Arc::new(Mutex::new(drill.addresses[..2].to_vec()));
    let load = Load::start(drill.source.clone(), nodes);
    let id = start_drain_and_wait_midway(&drill);
    let victim = drill.uuid_of(3);
    drill.kill(3);
    let task = wait_task(&a, &id, Duration::from_secs(120));
    assert_eq!(task["status"], "completed", "{task}");
    wait_for(
        "the killed node failed over",
        Duration::from_secs(30),
        || (drill.copies_on(&victim) == 0).then_some(()),
    );
    drill.wait_settled(
        "copies rebuilt on the two nodes left",
        Duration::from_secs(90),
    );
    assert_eq!(drill.copies_on(&drill.uuid_of(0)), 0);
    let (written, queries, failures) = load.stop();
    assert!(
        failures.is_empty(),
        "{} of {queries} queries failed: {failures:?}",
        failures.len()
    );
    assert_exact(&a, written);
}

#[test]
fn drill_one_etcd_member_of_three_killed_mid_rebalance() {
    let mut drill = Drill::start_on(EtcdCluster::start(3), 3, 30_000, 0);
    drill.create_index();
    drill.wait_green("the index built on three nodes", Duration::from_secs(60));
    let a = drill.addresses[1].clone();
    let nodes = Arc::new(Mutex::new(drill.addresses[1..].to_vec()));
    let load = Load::start(drill.source.clone(), nodes);
    let id = start_drain_and_wait_midway(&drill);
    drill.etcd.kill(0);
    let task = wait_task(&a, &id, Duration::from_secs(120));
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(drill.copies_on(&drill.uuid_of(0)), 0);
    let (written, queries, failures) = load.stop();
    assert!(
        failures.is_empty(),
        "{} of {queries} queries failed: {failures:?}",
        failures.len()
    );
    assert_exact(&a, written);
}

#[test]
fn tessera_drill_against_a_running_cluster_reports_nothing_lost() {
    let drill = Drill::start(3, 30_000);
    let out = std::process::Command::new(BIN)
        .args([
            "drill",
            "drain",
            "--cluster",
            &drill.addresses[0],
            "--source",
            &drill.source,
            "--timeout-s",
            "120",
        ])
        .output()
        .expect("run tessera drill");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains("lost 0") && report.contains("failed 0"),
        "{report}"
    );
    assert!(
        report.contains("drain: ") && report.contains("node back: "),
        "{report}"
    );
    // The scratch index is gone.
    let (_, indexes) = http(&drill.addresses[0], "GET", "/api/index", "");
    assert_eq!(
        indexes["indexes"].as_array().map(Vec::len),
        Some(0),
        "{indexes}"
    );
}
