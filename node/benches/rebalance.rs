//! Rebalance time: three nodes host 1M documents in 16 PIndexes with one replica each; a fourth
//! (managed) node is added with `rebalance`, for per-node move limits 1, 2 and 4 (a standalone
//! planner restarted with each limit; between runs the fourth node is drained again), once
//! with new copies built from the source (a fourth node started with `--no-peer-copy`) and
//! once copied from peers' files (another fourth node, default flags), side by side. Prints
//! the time from the change to the task's completion, copies moved, documents placed per
//! second, the ratio, and the failover time (kill -9 → replicas promoted, delay 0). Run:
//! `cargo bench -p tessera-node --bench rebalance` (`REBALANCE_DOCS` to change the size).

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{request, spawn, Cluster, Proc};
use tessera_tests::etcd::EtcdCluster;

const LIMITS: &[u32] = &[1, 2, 4];

/// What the rebalance benchmark asks of the cluster beyond the shared calls.
trait Changes {
    fn change(&self, body: &str) -> (f64, u64);
}

impl Changes for Cluster {
    /// Runs a topology change to completion; returns seconds and copies moved.
    fn change(&self, body: &str) -> (f64, u64) {
        let started = Instant::now();
        let (status, answer) = self.call("POST", "/api/ctl/topology-change", body);
        assert_eq!(status, 202, "{answer}");
        let id = answer["task"].as_str().expect("task id").to_string();
        let task = self.wait("the task", Duration::from_secs(1800), |c| {
            let task = c.call("GET", &format!("/api/ctl/tasks/{id}"), "").1["task"].clone();
            (task["status"] != "running").then_some(task)
        });
        assert_eq!(task["status"], "completed", "{task}");
        (
            started.elapsed().as_secs_f64(),
            task["progress"]["moves_total"].as_u64().unwrap_or(0),
        )
    }
}

fn main() {
    let docs = support::docs_from_env("REBALANCE_DOCS", 1_000_000);
    let scratch = tempfile::tempdir().expect("tempdir");
    let etcd = EtcdCluster::single();
    let cfg = etcd.cfg_spec("bench");
    let (source, _source) = support::start_source(scratch.path());
    let planner = |limit: u32, i: usize| {
        let limit = limit.to_string();
        spawn(
            &scratch.path().join(format!("planner{i}")),
            &[
                "--cfg",
                &cfg,
                "planner",
                "--name",
                &format!("bench{i}"),
                "--max-moves-in-per-node",
                &limit,
                "--max-moves-out-per-node",
                &limit,
                "--failover-delay-ms",
                "0",
            ],
            None,
        )
    };
    let mut current_planner = planner(LIMITS[0], 0);
    let (addresses, mut nodes): (Vec<String>, Vec<Option<Proc>>) = (0..5)
        .map(|i| {
            let mut flags = vec![
                "--tags",
                "feed,janitor,pindex,queryer",
                "--max-backfills",
                "8",
                "--lease-ttl-ms",
                "2000",
            ];
            if i >= 3 {
                flags.push("--managed");
            }
            if i == 3 {
                flags.push("--no-peer-copy");
            }
            let (address, proc) = support::start_node(scratch.path(), &cfg, i, &flags);
            (address, Some(proc))
        })
        .unzip();
    let cluster = Cluster::new(&addresses[0]);
    let uuid = |i: usize| -> String {
        let url = format!("http://{}/api/ping", addresses[i]);
        let (_, ping) =
            cluster
                .runtime
                .block_on(request(&cluster.client, "GET", &url, String::new()));
        ping["node"].as_str().expect("ping").to_string()
    };
    // The fourth node twice: building from the source, and copying from peers.
    let fourths = [("source", uuid(3)), ("peer copy", uuid(4))];

    let definition = format!(
        r#"{{"type": "fulltext", "source": {{"type": "tessera", "name": "docs", "partitions": 64, "params": {{"url": "http://{source}"}}}},
            "plan": {{"index_partitions": 16, "replicas": 1}},
            "params": {{"mapping": {{"fields": {{"title": {{"type": "text"}}, "n": {{"type": "i64"}}}}}}}}}}"#
    );
    let (status, answer) = cluster.call("PUT", "/api/index/docs", &definition);
    assert_eq!(status, 200, "{answer}");
    let loading = Instant::now();
    for start in (0..docs).step_by(50_000) {
        let body: String = (start..(start + 50_000).min(docs))
            .map(|i| format!("{{\"key\":\"d{i}\",\"doc\":{{\"title\":\"document number {i} of the rebalance benchmark\",\"n\":{i}}}}}\n"))
            .collect();
        let url = format!("http://{source}/api/source/docs/bulk");
        let (status, answer) =
            cluster
                .runtime
                .block_on(request(&cluster.client, "POST", &url, body));
        assert_eq!(status, 200, "{answer}");
    }
    cluster.wait("every copy built", Duration::from_secs(1800), |c| {
        (c.call("GET", "/api/cluster/health", "").1["status"] == "green").then_some(())
    });
    println!(
        "{docs} documents, 16 PIndexes × 2 copies on 3 nodes, built in {:.1} s",
        loading.elapsed().as_secs_f64()
    );

    println!(
        "{:<20} {:<10} {:>8} {:>13} {:>15} {:>8}",
        "move limit per node", "new copies", "seconds", "copies moved", "docs placed/s", "ratio"
    );
    for (i, limit) in LIMITS.iter().enumerate() {
        if i > 0 {
            // SIGTERM: the planner resigns (revokes its lease), so the next leads at once.
            let pid = current_planner.0.id().to_string();
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status();
            let _ = current_planner.0.wait();
            current_planner = planner(*limit, i);
            let name = format!("planner-bench{i}");
            cluster.wait("the new planner leading", Duration::from_secs(60), |c| {
                let (_, dump) = c.call("GET", "/api/cfg", "");
                let leader = &dump["keys"]["/tessera/bench/planner/leader"]["value"]["uuid"];
                (leader == name.as_str()).then_some(())
            });
        }
        let mut from_source = None;
        for (how, fourth) in &fourths {
            let (seconds, moved) = cluster.change(&format!(
                r#"{{"type": "rebalance", "keep_nodes": ["{fourth}"]}}"#
            ));
            let placed = moved as f64 * docs as f64 / 16.0;
            let ratio = from_source.map_or(String::from("1.0×"), |s: f64| {
                format!("{:.1}×", s / seconds)
            });
            from_source.get_or_insert(seconds);
            println!(
                "{limit:<20} {how:<10} {seconds:>8.2} {moved:>13} {:>15.0} {ratio:>8}",
                placed / seconds
            );
            cluster.change(&format!(
                r#"{{"type": "drain", "eject_nodes": ["{fourth}"]}}"#
            ));
        }
    }

    // Failover: kill -9 a node holding primaries, delay 0: time until its copies are gone and
    // every PIndex has a readable primary again.
    let victim = uuid(2);
    let killed = Instant::now();
    if let Some(mut p) = nodes[2].take() {
        let _ = p.0.kill();
        let _ = p.0.wait();
    }
    cluster.wait("replicas promoted", Duration::from_secs(120), |c| {
        let (_, plans) = c.call("GET", "/api/plan", "");
        let pindexes = plans["plans"][0]["pindexes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let promoted = !pindexes.is_empty()
            && pindexes.iter().all(|p| {
                let copies = p["copies"].as_array().cloned().unwrap_or_default();
                copies.iter().all(|c| c["node"] != victim.as_str())
                    && copies
                        .iter()
                        .any(|c| c["role"] == "primary" && c["can_read"] == true)
            });
        promoted.then_some(())
    });
    println!(
        "kill -9 → replicas promoted (lease TTL 2 s, failover delay 0): {:.2} s",
        killed.elapsed().as_secs_f64()
    );
    drop(current_planner);
}
