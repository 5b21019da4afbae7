//! Drills with real network partitions: etcd (three members), the source and three nodes
//! each in a network namespace of its own (`tessera_tests::netns`; root), under continuous
//! ingest and queries. In turn: a node cut off from etcd but reachable by clients and peers;
//! the planner leader cut off from etcd; a node cut off from the source; one etcd member of
//! three isolated. After each the link heals (and a node that stopped on losing its lease is
//! started again, as its supervisor would); at the end every acknowledged write is
//! searchable exactly once, no query failed, and no plan seen held two primaries of a PIndex.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::drill::*;
use common::{http, wait_for};

const NODES: usize = 3;
/// The nodes' and planners' lease TTL in the drill harness.
const TTL: Duration = Duration::from_secs(2);

fn live(drill: &Drill, asked: usize, uuid: &str) -> bool {
    let (_, body) = http(&drill.addresses[asked], "GET", "/api/nodes", "");
    body["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|n| n["node"]["uuid"] == uuid && n["alive"] == true)
}

fn planner_leader(drill: &Drill, asked: usize) -> Option<String> {
    let (_, dump) = http(&drill.addresses[asked], "GET", "/api/cfg", "");
    let leader = dump["keys"]["/tessera/drill/planner/leader"]["value"]["uuid"].as_str()?;
    Some(leader.trim_start_matches("planner-").to_string())
}

/// When the leading planner's term began (unix ms), as its leader record says.
fn leader_since(drill: &Drill, asked: usize) -> Option<u64> {
    let (_, dump) = http(&drill.addresses[asked], "GET", "/api/cfg", "");
    dump["keys"]["/tessera/drill/planner/leader"]["value"]["since_unix_ms"].as_u64()
}

/// Cuts node `i` from every etcd member.
fn cut_from_etcd(drill: &Drill, i: usize) {
    let net = drill.net.as_ref().expect("a partitioned drill");
    for m in 0..3 {
        net.cut(i, NODES + 1 + m);
    }
}

fn heal_from_etcd(drill: &Drill, i: usize) {
    let net = drill.net.as_ref().expect("a partitioned drill");
    for m in 0..3 {
        net.heal(i, NODES + 1 + m);
    }
}

/// Waits until node `i` (seen not live) is live again, starting it again whenever its process
/// has exited (it stops on losing its liveness lease), as its supervisor would.
fn restart_if_stopped(drill: &mut Drill, i: usize, uuid: &str) {
    let asked = (i + 1) % NODES;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !live(drill, asked, uuid) {
        let exited = drill.nodes[i]
            .as_mut()
            .is_none_or(|p| matches!(p.0.try_wait(), Ok(Some(_))));
        if exited {
            drill.nodes[i] = None;
            drill.start_node(i, &[]);
        }
        if Instant::now() > deadline {
            let log = log_path(&drill.scratch.path().join(format!("node{i}")));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            panic!(
                "node {i} not live 30 s after the link healed; its log ends:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn partitions_of_nodes_planner_source_and_etcd() {
    let mut drill = Drill::partitioned(NODES, 60_000).with_index();
    let uuids: Vec<String> = (0..NODES).map(|i| drill.uuid_of(i)).collect();
    let clients = Arc::new(Mutex::new(drill.addresses.clone()));
    let load = Load::start(drill.source.clone(), clients.clone());
    wait_for("some load", Duration::from_secs(10), || {
        (load.queries.load(Ordering::Relaxed) > 5).then_some(())
    });

    // 1. A node cut off from etcd, still reachable by clients and peers. Clients stop asking
    //    it to coordinate (as a load balancer's health check would); its peers go on asking it
    //    for its PIndexes until its liveness lapses, then avoid it.
    let cut = 2;
    clients
        .lock()
        .unwrap()
        .retain(|a| a != &drill.addresses[cut]);
    cut_from_etcd(&drill, cut);
    wait_for("the cut node no longer live", TTL * 5, || {
        (!live(&drill, 0, &uuids[cut])).then_some(())
    });
    let during = load.queries.load(Ordering::Relaxed);
    wait_for(
        "queries while the node is out",
        Duration::from_secs(20),
        || (load.queries.load(Ordering::Relaxed) > during + 10).then_some(()),
    );
    heal_from_etcd(&drill, cut);
    restart_if_stopped(&mut drill, cut, &uuids[cut]);
    clients.lock().unwrap().push(drill.addresses[cut].clone());
    drill.wait_green("green after the node rejoined", Duration::from_secs(60));

    // 2. The planner leader cut off from etcd: another leads within the TTL and a second.
    let leader = planner_leader(&drill, 0).expect("a planner leads");
    let old = uuids
        .iter()
        .position(|u| *u == leader)
        .expect("the leader is a node");
    let asked = (old + 1) % NODES;
    clients
        .lock()
        .unwrap()
        .retain(|a| a != &drill.addresses[old]);
    let cut_at_ms = tessera_cfg::unix_ms();
    cut_from_etcd(&drill, old);
    let next = wait_for("another planner leading", TTL * 5, || {
        planner_leader(&drill, asked).filter(|l| *l != leader)
    });
    // When the new term began, as its leader record says (not when this test's polling of a
    // node's Cfg dump happened to see it).
    let since = leader_since(&drill, asked).expect("the new leader's record");
    let took = Duration::from_millis(since.saturating_sub(cut_at_ms));
    eprintln!("partitions: planner {next} led {took:?} after the leader was cut off");
    assert!(
        took <= TTL + Duration::from_secs(1),
        "a new planner ({next}) led {took:?} after the leader was cut off; at most the TTL and a second"
    );
    // Its liveness lapses too; only then is the link healed (it stops, and is started again).
    wait_for("the old leader no longer live", TTL * 5, || {
        (!live(&drill, asked, &uuids[old])).then_some(())
    });
    heal_from_etcd(&drill, old);
    restart_if_stopped(&mut drill, old, &uuids[old]);
    clients.lock().unwrap().push(drill.addresses[old].clone());
    drill.wait_green(
        "green after the old leader rejoined",
        Duration::from_secs(60),
    );

    // 3. A node cut off from the source: its feeds stall, then resume where they were.
    let net = drill.net.clone().expect("a partitioned drill");
    let fed = 1;
    net.cut(fed, NODES);
    let written = load.written.load(Ordering::Relaxed);
    wait_for(
        "writes while the node cannot read",
        Duration::from_secs(20),
        || (load.written.load(Ordering::Relaxed) >= written + 2_000).then_some(()),
    );
    net.heal(fed, NODES);

    // 4. One etcd member of three isolated (the raft leader, the hardest case): the cluster
    //    goes on, and an index created meanwhile is planned.
    let member = wait_for("an etcd leader", Duration::from_secs(10), || {
        drill.etcd.leader()
    });
    net.isolate(NODES + 1 + member);
    let films = format!(
        r#"{{"type": "blackhole", "source": {{"type": "tessera", "name": "docs", "partitions": 64, "params": {{"url": "http://{}"}}}},
            "plan": {{"index_partitions": 4, "replicas": 1}}}}"#,
        drill.source
    );
    let (status, body) = http(&drill.addresses[0], "PUT", "/api/index/films", &films);
    assert_eq!(
        status, 200,
        "an index created with one etcd member isolated: {body}"
    );
    wait_for("films planned", Duration::from_secs(30), || {
        let (_, plans) = http(&drill.addresses[0], "GET", "/api/plan", "");
        plans["plans"]
            .as_array()?
            .iter()
            .any(|p| {
                p["index"] == "films" && p["pindexes"].as_array().is_some_and(|p| p.len() == 4)
            })
            .then_some(())
    });
    net.rejoin(NODES + 1 + member);

    drill.wait_green("green at the end", Duration::from_secs(90));
    let (written, queries) = load.finish(&drill.addresses[0]);
    eprintln!("partitions: {written} documents written, {queries} queries, none failed or lost");
}
