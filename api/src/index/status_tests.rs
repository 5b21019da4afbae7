//! `status` and `count` ask the nodes holding copies at once, under one deadline: two nodes
//! that accept connections and never answer cost the budget once, not once each (nor once per
//! retry round).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use serde_json::json;
use tessera_cfg::local::LocalStore;
use tessera_cfg::schema::{Document, IndexDef, IndexPlan, NodeDef, NodeLiveness};
use tessera_cfg::{Cfg, KeySpace};

/// A peer that takes connections and never says anything.
async fn silent_peer() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (address, task)
}

async fn cluster_with_two_silent_nodes() -> (crate::AppState, Vec<tokio::task::JoinHandle<()>>) {
    let cfg = Cfg::new(
        Arc::new(LocalStore::open_memory().expect("store")),
        KeySpace::new("t").expect("keys"),
    );
    let def: IndexDef = serde_json::from_value(json!({"format_version": 1, "name": "books",
        "uuid": "u1", "type": "fulltext", "source": {"type": "tessera", "name": "s",
        "partitions": 2, "params": {"url": "http://127.0.0.1:1"}}}))
    .expect("a definition");
    cfg.put_index_def(&def, 0).await.expect("definition");
    let lease = cfg
        .store()
        .grant_lease(Duration::from_secs(60))
        .await
        .expect("lease");
    let mut tasks = Vec::new();
    for node in ["h1", "h2"] {
        let (address, task) = silent_peer().await;
        tasks.push(task);
        let def: NodeDef = serde_json::from_value(json!({"format_version": 1, "uuid": node,
            "incarnation": "i", "host_port": address, "tags": ["pindex"], "weight": 1}))
        .expect("a node");
        cfg.put_node_def(&def, 0).await.expect("node");
        let live = NodeLiveness {
            format_version: NodeLiveness::FORMAT_VERSION,
            uuid: node.into(),
            incarnation: "i".into(),
            host_port: address,
            started_at_unix_ms: 0,
        };
        cfg.create_liveness(&live, lease).await.expect("liveness");
    }
    let copy = |node: &str| {
        json!({"node": node, "role": "primary", "state": "active",
        "can_read": true, "can_write": true})
    };
    let plan: IndexPlan = serde_json::from_value(json!({"format_version": 1, "index": "books",
        "index_uuid": "u1", "pindexes": [
            {"name": "books_0-0", "source_partitions": [0], "copies": [copy("h1")]},
            {"name": "books_1-1", "source_partitions": [1], "copies": [copy("h2")]}]}))
    .expect("a plan");
    cfg.put_plan(&plan, 0).await.expect("plan");
    let state = crate::state::tests::state(cfg, "me", Default::default());
    (state, tasks)
}

/// Two budgets would mean the nodes were asked one after the other.
const ONE_BUDGET_AND_SLACK: Duration =
    Duration::from_millis(tessera_coord::shard::PEER_LIST_BUDGET.as_millis() as u64 * 3 / 2);

#[tokio::test]
async fn status_asks_every_node_at_once_within_one_deadline() {
    let (state, _peers) = cluster_with_two_silent_nodes().await;
    let started = Instant::now();
    let answer = super::status(State(state), Path("books".into())).await;
    let took = started.elapsed();
    assert_eq!(answer.status(), 200);
    assert!(
        took < ONE_BUDGET_AND_SLACK,
        "status took {took:?} with two silent nodes: they were not asked at once"
    );
    let body = axum::body::to_bytes(answer.into_body(), 1 << 20)
        .await
        .expect("body");
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("deadline"),
        "the silent nodes are named: {text}"
    );
}

#[tokio::test]
async fn count_asks_every_node_at_once_within_one_deadline() {
    let (state, _peers) = cluster_with_two_silent_nodes().await;
    let started = Instant::now();
    let answer = super::count(State(state), Path("books".into()), None).await;
    let took = started.elapsed();
    assert_eq!(answer.status(), 200);
    assert!(
        took < ONE_BUDGET_AND_SLACK,
        "count took {took:?} with two silent nodes: they were not asked at once, or each round had its own deadline"
    );
    let body = axum::body::to_bytes(answer.into_body(), 1 << 20)
        .await
        .expect("body");
    let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(body["pindexes_counted"], 0, "{body}");
    assert_eq!(
        body["errors"].as_object().map(|e| e.len()),
        Some(2),
        "{body}"
    );
}
