//! Missing PIndexes are visible: an index with no replicas on three nodes loses one node and
//! its data dir; once the node is failed over, health is red naming the PIndexes it held as
//! missing, `status` says how much of the index is covered, `count` how many PIndexes it
//! counted, and a query says which PIndexes did not answer (or refuses without
//! `allow_partial_results`). Ingest is paused so that the copies re-placed empty cannot catch up
//! meanwhile; resumed, they rebuild from the source and the count is exact again.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::backup::ingest;
use common::drill::*;
use common::http;
use common::missing::{books_without_replicas, lose_the_busiest_node};

#[test]
fn a_failed_over_node_with_the_only_copies_leaves_its_pindexes_missing_and_says_so() {
    let mut drill = Drill::start(3, 2_000);
    books_without_replicas(&drill, 8);
    ingest(&drill.source, 2000, |i| format!("document {i}"));
    assert_exact(&drill.addresses[0], 2000);
    let node = &drill.addresses[0].clone();
    let (status, body) = http(node, "POST", "/api/index/books/ingestControl/pause", "");
    assert_eq!(status, 200, "{body}");

    // The node holding the most PIndexes dies, and its data dir with it; once failed over,
    // exactly the PIndexes it held are missing, and health is red saying so.
    let (_, held) = lose_the_busiest_node(&mut drill, &[1, 2]);
    let health = drill.health();
    assert_eq!(health["status"], "red", "{health}");
    assert!(
        health["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .any(|r| r.as_str().is_some_and(|r| r.starts_with("missing:"))),
        "{health}"
    );

    // Status: the coverage figure and the missing PIndexes.
    let (status, body) = http(node, "GET", "/api/index/books/status", "");
    assert_eq!(status, 200, "{body}");
    let coverage = &body["coverage"];
    assert_eq!(coverage["pindexes_total"], 8, "{coverage}");
    assert_eq!(
        coverage["pindexes_readable"].as_u64(),
        Some(8 - held.len() as u64),
        "{coverage}"
    );
    assert_eq!(coverage["partitions_total"], 64, "{coverage}");
    let fraction = coverage["fraction"].as_f64().expect("a fraction");
    assert!(
        (fraction - (8 - held.len()) as f64 / 8.0).abs() < 1e-9,
        "{coverage}"
    );
    assert_eq!(
        coverage["missing"].as_array().map(Vec::len),
        Some(held.len()),
        "{coverage}"
    );

    // Count and queries say what they could not cover.
    let (status, body) = http(node, "GET", "/api/index/books/count", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["pindexes_counted"].as_u64(),
        Some(8 - held.len() as u64),
        "{body}"
    );
    let query = r#"{"query": {"match_all": {}}, "size": 0}"#;
    let (status, body) = http(node, "POST", "/api/index/books/query", query);
    assert_eq!(status, 503, "a query without allow_partial_results: {body}");
    let partial = r#"{"query": {"match_all": {}}, "size": 0, "allow_partial_results": true}"#;
    let (status, body) = http(node, "POST", "/api/index/books/query", partial);
    assert_eq!(status, 200, "{body}");
    let errors = body["status"]["errors"].as_object().expect("errors");
    let unanswered: BTreeSet<String> = errors.keys().cloned().collect();
    assert_eq!(unanswered, held, "{body}");
    assert!(body["total_hits"].as_u64().expect("hits") < 2000, "{body}");

    // Resumed, the re-placed copies rebuild from the source: nothing missing, exact count.
    let (status, body) = http(node, "POST", "/api/index/books/ingestControl/resume", "");
    assert_eq!(status, 200, "{body}");
    drill.wait_settled("the missing PIndexes rebuilt", Duration::from_secs(60));
    let health = drill.health();
    assert_eq!(health["missing"], serde_json::json!({}), "{health}");
    assert_exact(node, 2000);
}
