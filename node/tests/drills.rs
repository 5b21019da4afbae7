//! Drills with real processes: etcd, a standalone source and `tessera` nodes, under continuous
//! ingest and queries (harness in `common/drill.rs`). Each ends with exact counts (every
//! written document searchable, none lost), no failed query, and at most one primary per
//! PIndex in every plan seen. Membership and failure drills: add a node (and explain), hard
//! failover with delay 0, a node killed -9 mid-rebalance, the planner leader killed
//! mid-rebalance, one etcd member of three killed mid-rebalance, SIGSTOP past the failover
//! delay then SIGCONT.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::drill::*;
use common::{http, serve, wait_for};
use tessera_tests::etcd::EtcdCluster;

#[test]
fn drill_add_a_node() {
    let mut drill = Drill::start(3, 30_000).with_index();
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
    let (written, queries) = load.finish(&drill.addresses[0]);
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
    for address in &drill.addresses[1..] {
        assert_exact(address, written);
    }
}

#[test]
fn drill_hard_failover_of_a_node_with_one_replica() {
    let mut drill = Drill::start(3, 0).with_index();
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
    let (written, queries) = load.finish(&drill.addresses[0]);
    assert_exact(&survivors[1], written);
    eprintln!(
        "hard failover: replicas promoted {:.1} s after kill -9 (lease 2 s, delay 0), copies rebuilt after {:.1} s, {written} documents written, {queries} queries, 0 failed",
        promoted.as_secs_f64(),
        rebuilt.as_secs_f64()
    );
}

#[test]
fn drill_kill_a_node_mid_rebalance() {
    let mut drill = Drill::start(4, 0).with_index();
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
    load.finish(&a);
}

#[test]
fn drill_kill_the_planner_leader_mid_rebalance() {
    let mut drill = Drill::start_with(3, 30_000, 2).with_index();
    let a = drill.addresses[0].clone();
    let nodes = Arc::new(Mutex::new(drill.addresses.clone()));
    let load = Load::start(drill.source.clone(), nodes);
    let victim = drill.uuid_of(2);
    let id = start_drain_of_and_wait_midway(&drill, 2);
    let leader = drill.kill_planner_leader();
    let task = wait_task(&a, &id, Duration::from_secs(120));
    assert_eq!(task["status"], "completed", "{task}");
    let now = drill.planner_leader();
    assert!(
        now.is_some_and(|l| l != leader),
        "the other planner did not take over: {now:?}"
    );
    assert_eq!(drill.copies_on(&victim), 0);
    load.finish(&a);
}

#[test]
fn drill_one_etcd_member_of_three_killed_mid_rebalance() {
    let mut drill = Drill::start_on(EtcdCluster::start(3), 3, 30_000, 0).with_index();
    let a = drill.addresses[1].clone();
    let nodes = Arc::new(Mutex::new(drill.addresses[1..].to_vec()));
    let load = Load::start(drill.source.clone(), nodes);
    let id = start_drain_and_wait_midway(&drill);
    let leader = wait_for("an etcd leader", Duration::from_secs(10), || {
        drill.etcd.leader()
    });
    drill.etcd.kill(leader);
    let task = wait_task(&a, &id, Duration::from_secs(120));
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(drill.copies_on(&drill.uuid_of(0)), 0);
    load.finish(&a);
}

#[test]
fn drill_sigstop_past_the_failover_delay_then_sigcont() {
    let mut drill = Drill::start(3, 0).with_index();
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
    load.finish(&a);
}
