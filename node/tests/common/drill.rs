//! The drill harness: a cluster of real processes (etcd, a standalone source, `tessera` nodes,
//! optionally standalone planners) to run drills on, with the load of `load.rs` (continuous
//! ingest, queries and plan checks); helpers for the supervisor API. `Drill::with_jetstream` makes the drill's index
//! read a NATS JetStream stream instead of the standalone source, the load publishing there.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{free_port, http, serve, wait_for, wait_serving, Proc, BIN};
use tessera_tests::etcd::EtcdCluster;
use tessera_tests::nats::NatsCluster;
use tessera_tests::netns::Net;

pub use super::load::{assert_exact, Ingest, Load};

/// The JetStream stream a drill's index reads, when it reads one.
pub const STREAM: &str = "DOCS";

/// Where the log of the process with data dir `dir` goes: beside it, or under
/// `$TESSERA_DRILL_LOGS` when set (kept after the drill, for a failure to be read).
pub fn log_path(dir: &std::path::Path) -> std::path::PathBuf {
    match std::env::var_os("TESSERA_DRILL_LOGS") {
        Some(root) => {
            let root = std::path::PathBuf::from(root);
            let _ = std::fs::create_dir_all(&root);
            let parent = dir
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            root.join(format!("{parent}-{name}.log"))
        }
        None => dir.with_extension("log"),
    }
}

/// Starts `tessera ARGS...` quietly in host `host` of `net` and waits until it listens.
fn serve_in(net: &Net, host: usize, dir: &std::path::Path, args: &[&str], address: &str) -> Proc {
    // Its log goes beside its data (appended across restarts), for a failing drill to show.
    let _ = std::fs::create_dir_all(dir);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(dir))
        .expect("a log file");
    let child = net
        .command(host, BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("TESSERA_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start tessera in a network namespace");
    wait_serving(address);
    Proc(child)
}

pub struct Drill {
    /// Hosts in network namespaces, when the drill cuts links (`Drill::partitioned`): node
    /// `i` on host `i`, the source on host `nodes`, etcd member `m` on host `nodes + 1 + m`.
    pub net: Option<Arc<Net>>,
    pub etcd: EtcdCluster,
    pub cfg: String,
    pub scratch: tempfile::TempDir,
    pub source: String,
    pub _source_proc: Proc,
    pub addresses: Vec<String>,
    pub nodes: Vec<Option<Proc>>,
    pub failover_delay_ms: u64,
    /// Standalone planners (then nodes do not plan).
    pub planners: Vec<Option<Proc>>,
    /// The NATS servers whose stream the index reads instead of the source (`with_jetstream`).
    pub jetstream: Option<NatsCluster>,
    /// Mutual TLS, auth and a secured etcd (`Drill::secured`).
    pub secure: Option<super::drill_secure::DrillSecurity>,
}

impl Drop for Drill {
    /// A failing drill prints the end of every log it kept, so that a CI failure shows what
    /// the nodes, the planners and the source saw.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let mut dirs = vec![self.scratch.path().join("source")];
        dirs.extend(
            (0..self.addresses.len()).map(|i| self.scratch.path().join(format!("node{i}"))),
        );
        dirs.extend(
            (0..self.planners.len()).map(|i| self.scratch.path().join(format!("planner{i}"))),
        );
        for dir in dirs {
            let log = log_path(&dir);
            let Ok(text) = std::fs::read_to_string(&log) else {
                continue;
            };
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            eprintln!(
                "--- the last {} lines of {} ---\n{}",
                tail.len(),
                log.display(),
                tail.join("\n")
            );
        }
    }
}

impl Drill {
    pub fn start(nodes: usize, failover_delay_ms: u64) -> Self {
        Self::start_with(nodes, failover_delay_ms, 0)
    }

    pub fn start_with(nodes: usize, failover_delay_ms: u64, planners: usize) -> Self {
        Self::start_on(EtcdCluster::single(), nodes, failover_delay_ms, planners)
    }

    pub fn start_on(
        etcd: EtcdCluster,
        nodes: usize,
        failover_delay_ms: u64,
        planners: usize,
    ) -> Self {
        Self::start_placed(None, etcd, nodes, failover_delay_ms, planners)
    }

    /// `nodes` nodes, the source and a 3-member etcd each on a host of its own, in network
    /// namespaces, so that links between them can be cut (root only).
    pub fn partitioned(nodes: usize, failover_delay_ms: u64) -> Self {
        let net = Arc::new(Net::new(nodes + 4));
        let members: Vec<usize> = (nodes + 1..nodes + 4).collect();
        let etcd = EtcdCluster::start_in(&net, &members);
        Self::start_placed(Some(net), etcd, nodes, failover_delay_ms, 0)
    }

    fn start_placed(
        net: Option<Arc<Net>>,
        etcd: EtcdCluster,
        nodes: usize,
        failover_delay_ms: u64,
        planners: usize,
    ) -> Self {
        Self::start_secured(net, etcd, nodes, failover_delay_ms, planners, None)
    }

    /// [`Self::start_placed`], with the source and the nodes secured as `secure` says.
    pub(super) fn start_secured(
        net: Option<Arc<Net>>,
        etcd: EtcdCluster,
        nodes: usize,
        failover_delay_ms: u64,
        planners: usize,
        secure: Option<super::drill_secure::DrillSecurity>,
    ) -> Self {
        let cfg = etcd.cfg_spec("drill");
        let scratch = tempfile::tempdir().unwrap();
        let host = net
            .as_ref()
            .map_or("127.0.0.1".to_string(), |n| n.ip(nodes));
        let source = format!("{host}:{}", free_port());
        let mut args = vec!["source", "--bind", &source, "--partitions", "64"];
        let source_tls = secure.as_ref().map(|s| s.source_flags(&source));
        if let Some(flags) = &source_tls {
            args.extend(flags.iter().map(String::as_str));
        }
        let dir = scratch.path().join("source");
        let source_proc = match &net {
            Some(net) => serve_in(net, nodes, &dir, &args, &source),
            None => serve(&dir, &args, &source),
        };
        let mut drill = Self {
            net,
            etcd,
            cfg,
            scratch,
            source,
            _source_proc: source_proc,
            addresses: Vec::new(),
            nodes: Vec::new(),
            failover_delay_ms,
            planners: Vec::new(),
            jetstream: None,
            secure,
        };
        for i in 0..planners {
            drill.start_planner(i);
        }
        for _ in 0..nodes {
            drill.add_node();
        }
        drill
    }

    pub fn start_planner(&mut self, i: usize) {
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
    pub fn planner_leader(&self) -> Option<usize> {
        let (_, dump) = http(self.a_live_node(), "GET", "/api/cfg", "");
        let key = "/tessera/drill/planner/leader";
        let uuid = dump["keys"][key]["value"]["uuid"].as_str()?;
        uuid.strip_prefix("planner-p")?.parse().ok()
    }

    pub fn add_node(&mut self) -> usize {
        self.add_node_with(&[])
    }

    pub fn add_node_with(&mut self, extra: &[&str]) -> usize {
        let i = self.addresses.len();
        let host = self
            .net
            .as_ref()
            .map_or("127.0.0.1".to_string(), |n| n.ip(i));
        let address = format!("{host}:{}", free_port());
        self.addresses.push(address);
        self.nodes.push(None);
        self.start_node(i, extra);
        i
    }

    /// Starts node `i` (again: same address, data dir and flags), as a supervisor would.
    pub fn start_node(&mut self, i: usize, extra: &[&str]) {
        let address = self.addresses[i].clone();
        let dir = self.scratch.path().join(format!("node{i}"));
        let delay = self.failover_delay_ms.to_string();
        let zone = format!("zone-{i}");
        // Tests keep their backup repositories in temp dirs.
        let backup_root = std::env::temp_dir().display().to_string();
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
            "--backup-path",
            &backup_root,
        ];
        if !self.planners.is_empty() {
            args.extend(["--tags", "feed,janitor,pindex,queryer"]);
        }
        args.extend_from_slice(extra);
        // Nodes in network namespaces bind addresses other hosts reach: auth off is said.
        if self.net.is_some() && self.secure.is_none() {
            args.extend(["--auth", "off"]);
        }
        let secured = self.secure.as_ref().map(|s| s.node_flags(&dir, &address));
        if let Some(flags) = &secured {
            args.extend(flags.iter().map(String::as_str));
        }
        let proc = match &self.net {
            Some(net) => serve_in(net, i, &dir, &args, &address),
            None => serve(&dir, &args, &address),
        };
        self.nodes[i] = Some(proc);
        if let Some(secure) = &self.secure {
            secure.after_start(&dir, &self.addresses);
        }
    }

    /// Kills the standalone planner leading now (kill -9); returns which it was.
    pub fn kill_planner_leader(&mut self) -> usize {
        let leader = wait_for("a planner leading", Duration::from_secs(10), || {
            self.planner_leader()
        });
        let mut proc = self.planners[leader].take().expect("the leader runs");
        proc.0.kill().expect("kill -9 the planner leader");
        proc.0.wait().expect("reaped");
        leader
    }

    pub fn kill(&mut self, i: usize) {
        let mut proc = self.nodes[i].take().expect("the node runs");
        proc.0.kill().expect("kill -9");
        proc.0.wait().expect("reaped");
    }

    pub fn a_live_node(&self) -> &str {
        let i = self
            .nodes
            .iter()
            .position(Option::is_some)
            .expect("a node runs");
        &self.addresses[i]
    }

    /// Makes the index read a stream (R3 when `servers` ≥ 3) on `servers` new NATS servers,
    /// made with `tessera ctl source create-stream`; call before `with_index`.
    pub fn with_jetstream(mut self, servers: usize) -> Self {
        let nats = NatsCluster::start(servers);
        let urls = nats.urls().join(",");
        let replicas = servers.min(3).to_string();
        let out = ctl(
            self.a_live_node(),
            &[
                "source",
                "create-stream",
                "--jetstream",
                &urls,
                "--stream",
                STREAM,
                "--subject-prefix",
                "docs",
                "--partitions",
                "64",
                "--replicas",
                &replicas,
            ],
        );
        assert!(
            out.status.success(),
            "create-stream: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.jetstream = Some(nats);
        self
    }

    /// Where this drill's load writes.
    pub fn ingest(&self) -> Ingest {
        match &self.jetstream {
            Some(nats) => Ingest::JetStream(nats.urls()),
            None => Ingest::Source(self.source.clone()),
        }
    }

    pub fn create_index(&self) {
        let source = match &self.jetstream {
            Some(nats) => format!(
                r#"{{"type": "jetstream", "name": "docs", "params": {{"servers": {}, "stream": "{STREAM}", "subject_prefix": "docs", "partitions": 64}}}}"#,
                serde_json::json!(nats.urls())
            ),
            None => format!(
                r#"{{"type": "tessera", "name": "docs", "partitions": 64, "params": {{"url": "http://{}"}}}}"#,
                self.source
            ),
        };
        let index = format!(
            r#"{{"type": "fulltext", "source": {source},
                "plan": {{"index_partitions": 16, "replicas": 1}},
                "params": {{"mapping": {{"fields": {{"title": {{"type": "text"}}, "n": {{"type": "i64"}}}}}}}}}}"#
        );
        let (status, body) = http(self.a_live_node(), "PUT", "/api/index/books", &index);
        assert_eq!(status, 200, "{body}");
    }

    /// Creates the drill index and waits until every copy is built.
    pub fn with_index(self) -> Self {
        self.create_index();
        let what = format!("the index built on {} nodes", self.addresses.len());
        self.wait_green(&what, Duration::from_secs(60));
        self
    }

    pub fn health(&self) -> serde_json::Value {
        http(self.a_live_node(), "GET", "/api/cluster/health", "").1
    }

    pub fn wait_green(&self, what: &str, timeout: Duration) {
        wait_for(what, timeout, || {
            (self.health()["status"] == "green").then_some(())
        });
    }

    /// Green but for automatic failovers waiting to be acknowledged.
    pub fn wait_settled(&self, what: &str, timeout: Duration) {
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

    pub fn plan(&self) -> serde_json::Value {
        let (_, body) = http(self.a_live_node(), "GET", "/api/plan", "");
        body["plans"][0].clone()
    }

    pub fn copies_on(&self, node_uuid: &str) -> usize {
        self.plan()["pindexes"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| p["copies"].as_array().cloned().unwrap_or_default())
            .filter(|c| c["node"] == node_uuid)
            .count()
    }

    pub fn uuid_of(&self, i: usize) -> String {
        let (_, body) = http(&self.addresses[i], "GET", "/api/ping", "");
        body["node"]
            .as_str()
            .expect("ping names the node")
            .to_string()
    }
}

pub fn change(node: &str, body: &str) -> (u16, serde_json::Value) {
    http(node, "POST", "/api/ctl/topology-change", body)
}

pub fn task_of(node: &str, id: &str) -> serde_json::Value {
    http(node, "GET", &format!("/api/ctl/tasks/{id}"), "").1["task"].clone()
}

/// Runs a topology change to completion through `node`; returns the finished task.
pub fn run_change(node: &str, body: &str) -> serde_json::Value {
    let (status, started) = change(node, body);
    assert_eq!(status, 202, "{body}: {started}");
    let id = started["task"].as_str().expect("a task id");
    let task = wait_task(node, id, Duration::from_secs(120));
    assert_eq!(task["status"], "completed", "{task}");
    task
}

pub fn wait_task(node: &str, id: &str, timeout: Duration) -> serde_json::Value {
    wait_for(&format!("task {id} to end"), timeout, || {
        let task = task_of(node, id);
        (task["status"] != "running" && task["status"].is_string()).then_some(task)
    })
}

/// `tessera drill drain` ran to the end, and its report says nothing was lost, no query
/// failed, and both the drain and the node's return happened.
pub fn assert_drain_report(out: &std::process::Output) {
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains("missing 0, duplicated 0") && report.contains("failed 0"),
        "{report}"
    );
    assert!(
        report.contains("drain: ") && report.contains("node back: "),
        "{report}"
    );
}

pub fn ctl(node: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(["ctl", "--node", node])
        .args(args)
        .output()
        .expect("run tessera ctl")
}

/// Drains node 0 and waits until the task has moved some copies but not all.
pub fn start_drain_and_wait_midway(drill: &Drill) -> String {
    start_drain_of_and_wait_midway(drill, 0)
}

/// Drains node `i` (asking node 0; a node being drained still answers) and waits until the
/// task has finished some moves but not all: the fault that follows lands mid-change.
pub fn start_drain_of_and_wait_midway(drill: &Drill, i: usize) -> String {
    let asked = drill.addresses[0].clone();
    let ejected = drill.uuid_of(i);
    let (status, started) = change(
        &asked,
        &format!(r#"{{"type": "drain", "eject_nodes": ["{ejected}"]}}"#),
    );
    assert_eq!(status, 202, "{started}");
    let id = started["task"].as_str().unwrap().to_string();
    wait_for(
        "the drain midway (some moves done, not all)",
        Duration::from_secs(60),
        || {
            let t = task_of(&asked, &id);
            let done = t["progress"]["moves_done"].as_u64().unwrap_or(0);
            let total = t["progress"]["moves_total"].as_u64().unwrap_or(0);
            assert_ne!(
                t["status"], "completed",
                "the drain completed before it was seen midway: {t}"
            );
            (t["status"] == "running" && done > 0 && done < total).then_some(())
        },
    );
    id
}

/// Two drills in a row under continuous ingest (wherever `drill` ingests) and queries: a node
/// added (rebalance to green), then a hard failover of node 2 (delay 0: its copies promoted
/// and rebuilt on the survivors). Ends with exact counts; returns the documents written and
/// the queries made, none failed.
pub fn add_a_node_then_fail_one_over(mut drill: Drill) -> (u64, u64) {
    let nodes = Arc::new(Mutex::new(drill.addresses.clone()));
    let load = Load::start_with(drill.ingest(), nodes.clone());
    wait_for("some load", Duration::from_secs(10), || {
        (load.queries.load(Ordering::Relaxed) > 5).then_some(())
    });

    // Rebalance onto a new node.
    let new = drill.add_node();
    let uuid = drill.uuid_of(new);
    wait_for(
        "copies moving to the new node",
        Duration::from_secs(30),
        || (drill.copies_on(&uuid) > 0).then_some(()),
    );
    drill.wait_green("the rebalance finished", Duration::from_secs(90));
    nodes.lock().unwrap().push(drill.addresses[new].clone());

    // Hard failover of node 2 (delay 0): its copies promoted and rebuilt elsewhere.
    let victim = drill.uuid_of(2);
    nodes.lock().unwrap().retain(|a| *a != drill.addresses[2]);
    // Queries already sent to node 2 finish before it dies.
    let asked = load.queries.load(Ordering::Relaxed);
    wait_for(
        "queries to the survivors only",
        Duration::from_secs(10),
        || (load.queries.load(Ordering::Relaxed) > asked + 2).then_some(()),
    );
    drill.kill(2);
    wait_for(
        "the dead node's copies gone from the plan",
        Duration::from_secs(30),
        || (drill.copies_on(&victim) == 0).then_some(()),
    );
    wait_for(
        "copies rebuilt on the survivors",
        Duration::from_secs(90),
        || {
            let plan = drill.plan();
            plan["pindexes"]
                .as_array()
                .is_some_and(|ps| {
                    ps.iter().all(|p| {
                        p["copies"].as_array().is_some_and(|c| {
                            c.len() == 2 && c.iter().all(|c| c["state"] == "active")
                        })
                    })
                })
                .then_some(())
        },
    );
    let (written, queries) = load.finish(&drill.addresses[0]);
    assert!(
        written >= 1000,
        "the load published only {written} documents"
    );
    assert_exact(&drill.addresses[new], written);
    (written, queries)
}
