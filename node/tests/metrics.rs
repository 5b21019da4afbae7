//! `GET /metrics` of a real node, parsed with a Prometheus text parser: after ingest and
//! queries it says what happened (queries by outcome and phase, documents, lag, copies,
//! feeds, rounds, Cfg operations, requests, process figures); with 200 indexes the series
//! count stays within the bound the README states.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use common::{free_port, http, serve, wait_for};
use prometheus_parse::{Scrape, Value};

/// The node's `/metrics`, parsed.
fn scrape(address: &str) -> Scrape {
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{answer}"
    );
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let lines = body.lines().map(|l| Ok(l.to_string()));
    Scrape::parse(lines).unwrap_or_else(|e| panic!("not Prometheus text ({e}): {body}"))
}

/// The value of the sample `name` whose labels include `labels` (counters and gauges).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .and_then(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(*v),
            Value::Histogram(h) => h.last().map(|b| b.count),
            Value::Summary(_) => None,
        })
}

fn definition(source: &str, partitions: u32) -> String {
    format!(
        r#"{{"type": "fulltext", "source": {{"type": "tessera", "name": "{source}", "partitions": {partitions}}},
            "plan": {{"max_partitions_per_pindex": 4, "replicas": 0}},
            "params": {{"mapping": {{"fields": {{"title": {{"type": "text"}}}}}}}}}}"#
    )
}

fn ingest(address: &str, source: &str, docs: usize) {
    let bulk: String = (0..docs)
        .map(|i| format!("{{\"key\":\"d{i}\",\"doc\":{{\"title\":\"{source} document {i}\"}}}}\n"))
        .collect();
    let (status, body) = http(
        address,
        "POST",
        &format!("/api/source/{source}/bulk"),
        &bulk,
    );
    assert_eq!(status, 200, "{body}");
}

fn query(address: &str, index: &str, body: &str) -> u16 {
    http(address, "POST", &format!("/api/index/{index}/query"), body).0
}

#[test]
fn metrics_after_ingest_and_queries_say_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let _node = serve(
        dir.path(),
        &["node", "--bind", &address, "--source-partitions", "16"],
        &address,
    );
    let (status, body) = http(&address, "PUT", "/api/index/docs", &definition("docs", 16));
    assert_eq!(status, 200, "{body}");
    ingest(&address, "docs", 500);
    let at_plus = r#"{"query": {"match": {"field": "title", "query": "document"}}, "size": 3,
        "consistency": {"level": "at_plus"}}"#;
    assert_eq!(query(&address, "docs", at_plus), 200);
    assert_eq!(
        query(
            &address,
            "docs",
            r#"{"query": {"match": {"field": "title", "query": "document"}}}"#
        ),
        200
    );
    assert_eq!(
        query(
            &address,
            "docs",
            r#"{"query": {"term": {"field": "nope", "value": "x"}}}"#
        ),
        400
    );
    assert_eq!(
        query(&address, "no-such-index", r#"{"query": {"match_all": {}}}"#),
        404
    );

    let docs = [("index", "docs")];
    let m = wait_for(
        "documents and lag in the metrics",
        Duration::from_secs(60),
        || {
            let m = scrape(&address);
            let counted = value(&m, "tessera_index_documents", &docs) == Some(500.0);
            let caught_up = value(&m, "tessera_ingest_lag_seqs", &docs) == Some(0.0);
            (counted && caught_up).then_some(m)
        },
    );
    let at_least = |name: &str, labels: &[(&str, &str)], least: f64| {
        let got = value(&m, name, labels);
        assert!(
            got.is_some_and(|v| v >= least),
            "{name}{labels:?} = {got:?}, wanted at least {least}"
        );
    };
    at_least(
        "tessera_queries_total",
        &[("index", "docs"), ("outcome", "ok")],
        2.0,
    );
    at_least(
        "tessera_queries_total",
        &[("index", "docs"), ("outcome", "rejected")],
        1.0,
    );
    // An index that does not exist does not become a label value.
    at_least(
        "tessera_queries_total",
        &[("index", "-"), ("outcome", "rejected")],
        1.0,
    );
    assert!(
        !m.samples
            .iter()
            .any(|s| s.labels.get("index") == Some("no-such-index")),
        "a made-up index name became a label"
    );
    for phase in ["statistics", "search", "merge", "whole"] {
        at_least(
            "tessera_query_duration_seconds",
            &[("index", "docs"), ("phase", phase)],
            2.0,
        );
    }
    at_least("tessera_feed_changes_total", &docs, 500.0);
    at_least("tessera_feed_commits_total", &docs, 1.0);
    // 16 partitions, 4 per PIndex: 4 primaries, all active and running here.
    at_least(
        "tessera_pindex_copies",
        &[("index", "docs"), ("role", "primary"), ("state", "active")],
        4.0,
    );
    at_least("tessera_pindex_copies_running", &docs, 4.0);
    at_least("tessera_ingest_lag_seconds", &docs, 0.0);
    at_least("tessera_planner_leader", &[], 1.0);
    at_least("tessera_planner_rounds_total", &[("outcome", "ok")], 1.0);
    at_least("tessera_planner_round_duration_seconds", &[], 1.0);
    at_least("tessera_janitor_reconcile_duration_seconds", &[], 1.0);
    at_least("tessera_janitor_backlog", &[], 0.0);
    at_least(
        "tessera_cfg_operation_duration_seconds",
        &[("op", "list")],
        1.0,
    );
    at_least(
        "tessera_http_requests_total",
        &[
            ("route", "/api/index/:name/query"),
            ("method", "POST"),
            ("status", "200"),
        ],
        2.0,
    );
    at_least(
        "tessera_http_requests_total",
        &[
            ("route", "/api/index/:name"),
            ("method", "PUT"),
            ("status", "200"),
        ],
        1.0,
    );
    // The feeds stream from the node's own source over gRPC.
    at_least(
        "tessera_grpc_requests_total",
        &[("method", "/tessera.v1.Source/Stream"), ("code", "0")],
        4.0,
    );
    at_least("tessera_build_info", &[], 1.0);
    at_least("process_resident_memory_bytes", &[], 1.0);
    at_least("process_open_fds", &[], 3.0);
    at_least("process_threads", &[], 1.0);
    at_least("process_start_time_seconds", &[], 1.0);

    // A deleted index stops being exported.
    let (status, body) = http(&address, "DELETE", "/api/index/docs", "");
    assert_eq!(status, 200, "{body}");
    wait_for(
        "the deleted index's series to go",
        Duration::from_secs(30),
        || {
            let m = scrape(&address);
            (!m.samples
                .iter()
                .any(|s| s.labels.get("index") == Some("docs")))
            .then_some(())
        },
    );
}

/// The README's bound: at most this many series per index queried, plus a fixed number for the
/// node.
const SERIES_PER_INDEX: usize = 90;
const SERIES_PER_NODE: usize = 1_500;

#[test]
fn two_hundred_indexes_stay_within_the_series_bound() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let _node = serve(
        dir.path(),
        &[
            "node",
            "--bind",
            &address,
            "--source-partitions",
            "4",
            "--max-backfills",
            "64",
        ],
        &address,
    );
    let names: Vec<String> = (0..200).map(|i| format!("t{i:03}")).collect();
    for name in &names {
        let (status, body) = http(
            &address,
            "PUT",
            &format!("/api/index/{name}"),
            &definition(name, 4),
        );
        assert_eq!(status, 200, "{body}");
    }
    for name in &names {
        ingest(&address, name, 5);
    }
    let at_plus =
        r#"{"query": {"match_all": {}}, "consistency": {"level": "at_plus"}, "timeout_ms": 60000}"#;
    for name in &names {
        assert_eq!(query(&address, name, at_plus), 200, "{name}");
        // Every outcome a query can have, for the worst case.
        assert_eq!(
            query(
                &address,
                name,
                r#"{"query": {"term": {"field": "nope", "value": "x"}}}"#
            ),
            400
        );
    }
    let m = wait_for("every index's documents", Duration::from_secs(120), || {
        let m = scrape(&address);
        let counted = names
            .iter()
            .all(|n| value(&m, "tessera_index_documents", &[("index", n)]) == Some(5.0));
        counted.then_some(m)
    });
    let mut per_index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut node = 0;
    for s in &m.samples {
        let series = match &s.value {
            Value::Histogram(h) => h.len() + 2,
            _ => 1,
        };
        match s.labels.get("index") {
            Some(index) => *per_index.entry(index).or_default() += series,
            None => node += series,
        }
    }
    let total: usize = per_index.values().sum::<usize>() + node;
    assert_eq!(per_index.len(), 200, "{:?}", per_index.keys());
    let worst = per_index
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(i, n)| (*i, *n));
    assert!(
        worst.is_some_and(|(_, n)| n <= SERIES_PER_INDEX),
        "most series for one index: {worst:?}"
    );
    assert!(
        node <= SERIES_PER_NODE,
        "{node} series without an index label"
    );
    assert!(
        total <= 200 * SERIES_PER_INDEX + SERIES_PER_NODE,
        "{total} series in all"
    );
    eprintln!("series: {total} in all, {node} for the node, at most {worst:?} for one index");
}
