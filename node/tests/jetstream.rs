//! Indexes fed from NATS JetStream (real nats-server processes): the quickstart path through
//! `tessera ctl source create-stream` and `ctl load --jetstream`; updates, deletes and
//! `at_plus`; definitions checked at create; a stream deleted and made again held as an
//! incident, then rolled back on accept; an R3 stream on 3 servers with one killed -9
//! mid-feed; and the drills (add a node, hard failover) with a JetStream source.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::drill::*;
use common::{free_port, http, serve, wait_for, Proc, BIN};
use tessera_tests::nats::NatsCluster;

fn ctl_ok(args: &[&str]) -> String {
    let out = std::process::Command::new(BIN)
        .arg("ctl")
        .args(args)
        .env("TESSERA_LOG", "warn")
        .output()
        .expect("run tessera ctl");
    assert!(
        out.status.success(),
        "tessera ctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn write_lines(path: &Path, lines: impl Iterator<Item = String>) {
    let text: String = lines.map(|l| l + "\n").collect();
    std::fs::write(path, text).expect("write NDJSON");
}

fn docs(range: std::ops::Range<u32>, title: &str) -> impl Iterator<Item = String> + '_ {
    range.map(move |i| format!(r#"{{"key": "d{i}", "doc": {{"title": "{title} {i}", "n": {i}}}}}"#))
}

/// Creates the stream DOCS on `url` with `partitions` and loads `file` into it.
fn load(url: &str, file: &Path) -> String {
    ctl_ok(&[
        "load",
        "--jetstream",
        url,
        "--stream",
        "DOCS",
        "--subject-prefix",
        "docs",
        &file.display().to_string(),
    ])
}

fn definition(url: &str, partitions: u32) -> String {
    format!(
        r#"{{"type": "fulltext", "source": {{"type": "jetstream", "name": "docs", "params": {{"servers": ["{url}"], "stream": "DOCS", "subject_prefix": "docs", "partitions": {partitions}}}}},
            "plan": {{"index_partitions": 4}},
            "params": {{"mapping": {{"fields": {{"title": {{"type": "text"}}, "n": {{"type": "i64"}}}}}}}}}}"#
    )
}

/// Everything the stream holds now, counted (`at_plus` waits for it).
fn count_at_plus(address: &str, query: &str) -> u64 {
    let body = format!(
        r#"{{"query": {query}, "size": 0, "consistency": {{"level": "at_plus"}}, "timeout_ms": 30000}}"#
    );
    let (status, answer) = http(address, "POST", "/api/index/books/query", &body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"]["failed"], 0, "{answer}");
    answer["total_hits"].as_u64().expect("a count")
}

const ALL: &str = r#"{"match_all": {}}"#;

fn node(dir: &Path) -> (Proc, String) {
    let address = format!("127.0.0.1:{}", free_port());
    (serve(dir, &["node", "--bind", &address], &address), address)
}

#[test]
fn an_index_reads_jetstream_with_updates_deletes_and_at_plus() {
    let nats = NatsCluster::single();
    let url = nats.url(0);
    let scratch = tempfile::tempdir().unwrap();
    let made = ctl_ok(&[
        "source",
        "create-stream",
        "--jetstream",
        &url,
        "--stream",
        "DOCS",
        "--subject-prefix",
        "docs",
        "--partitions",
        "16",
    ]);
    assert!(made.contains("16 partitions"), "{made}");
    let file = scratch.path().join("docs.ndjson");
    write_lines(&file, docs(0..2000, "document"));
    let loaded = load(&url, &file);
    assert!(loaded.contains("published 2000 documents"), "{loaded}");

    let (_node, address) = node(&scratch.path().join("node"));
    // Definitions are checked before anything is saved, naming the field.
    for (def, field) in [
        (
            definition(&url, 16).replace(r#""servers": [""#, r#""servers": ["tcp://"#),
            "source.params.servers[0]",
        ),
        (
            definition(&url, 16).replace(r#""stream": "DOCS""#, r#""stream": "DO.CS""#),
            "source.params.stream",
        ),
        (
            definition(&url, 16).replace(r#""type": "jetstream""#, r#""type": "kafka""#),
            "source.type",
        ),
        // The stream says 16 partitions.
        (definition(&url, 8), "source.partitions"),
    ] {
        let (status, body) = http(&address, "PUT", "/api/index/books", &def);
        assert_eq!(status, 400, "{def}: {body}");
        assert_eq!(body["field"], field, "{body}");
    }
    let (status, body) = http(&address, "GET", "/api/index/books", "");
    assert_eq!(status, 404, "nothing saved: {body}");

    let (status, body) = http(&address, "PUT", "/api/index/books", &definition(&url, 16));
    assert_eq!(status, 200, "{body}");
    assert_eq!(count_at_plus(&address, ALL), 2000);

    // Updates and deletes, then at once (at_plus) the new state.
    let changes = scratch.path().join("changes.ndjson");
    let deletes = (500..700).map(|i| format!(r#"{{"key": "d{i}", "delete": true}}"#));
    write_lines(&changes, docs(0..500, "changed").chain(deletes));
    load(&url, &changes);
    assert_eq!(count_at_plus(&address, ALL), 1800);
    let changed = r#"{"match": {"field": "title", "query": "changed"}}"#;
    assert_eq!(count_at_plus(&address, changed), 500);
    let gone = r#"{"term": {"field": "_id", "value": "d600"}}"#;
    assert_eq!(count_at_plus(&address, gone), 0);

    // A message without a key is skipped: nothing indexed, and the partition's position moves
    // past it (at_plus, which waits for it, answers; the last error says why).
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = async_nats::connect(&url).await.expect("connect");
        let js = async_nats::jetstream::new(client);
        let ack = js.publish("docs.0", "{}".into()).await.expect("publish");
        ack.await.expect("acknowledged");
    });
    assert_eq!(count_at_plus(&address, ALL), 1800);

    // The status shows each partition caught up with the stream's high seq.
    let (_, status) = http(&address, "GET", "/api/index/books/status", "");
    assert!(status["source_error"].is_null(), "{status}");
    let mut partitions = 0;
    for p in status["pindexes"].as_array().expect("pindexes") {
        for (id, seqs) in p["copies"][0]["partitions"]
            .as_object()
            .expect("partitions")
        {
            assert_eq!(seqs["seq"], seqs["high_seq"], "partition {id}: {status}");
            partitions += 1;
        }
    }
    assert_eq!(partitions, 16);

    // A bad line publishes nothing: exit 3, the count unchanged.
    let bad = scratch.path().join("bad.ndjson");
    write_lines(
        &bad,
        docs(5000..5010, "new").chain(["{\"key\": \"x\"}".to_string()]),
    );
    let out = std::process::Command::new(BIN)
        .args([
            "ctl",
            "load",
            "--jetstream",
            &url,
            &bad.display().to_string(),
        ])
        .output()
        .expect("run ctl");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 11"));
    assert_eq!(count_at_plus(&address, ALL), 1800);
    // No server at all: exit 6.
    let nowhere = format!("nats://127.0.0.1:{}", free_port());
    let out = std::process::Command::new(BIN)
        .args([
            "ctl",
            "load",
            "--jetstream",
            &nowhere,
            &file.display().to_string(),
        ])
        .output()
        .expect("run ctl");
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_stream_made_again_is_held_until_accepted_then_read_from_the_start() {
    let nats = NatsCluster::single();
    let url = nats.url(0);
    let scratch = tempfile::tempdir().unwrap();
    let create = [
        "source",
        "create-stream",
        "--jetstream",
        &url,
        "--partitions",
        "16",
    ];
    ctl_ok(&create);
    let file = scratch.path().join("docs.ndjson");
    write_lines(&file, docs(0..1000, "document"));
    load(&url, &file);
    let (_node, address) = node(&scratch.path().join("node"));
    let (status, body) = http(&address, "PUT", "/api/index/books", &definition(&url, 16));
    assert_eq!(status, 200, "{body}");
    assert_eq!(count_at_plus(&address, ALL), 1000);

    // The stream is deleted and made again with other documents.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(&url).await.expect("connect");
        let js = async_nats::jetstream::new(client);
        js.delete_stream("DOCS").await.expect("delete the stream");
    });
    ctl_ok(&create);
    let again = scratch.path().join("again.ndjson");
    write_lines(&again, docs(5000..5300, "again"));
    load(&url, &again);

    // Every feed holds: nothing dropped until an operator accepts.
    wait_for(
        "every feed held by the incident",
        Duration::from_secs(60),
        || {
            let (_, status) = http(&address, "GET", "/api/index/books/status", "");
            let held = status["pindexes"]
                .as_array()?
                .iter()
                .filter(|p| !p["local"]["feed"]["incident"].is_null())
                .count();
            (held == 4).then_some(())
        },
    );
    let (_, counted) = http(&address, "GET", "/api/index/books/count", "");
    assert_eq!(
        counted["count"], 1000,
        "nothing dropped while held: {counted}"
    );
    let (status, body) = http(
        &address,
        "POST",
        "/api/index/books/ingestControl/accept-rollback",
        "",
    );
    assert_eq!(status, 200, "{body}");
    wait_for(
        "the new stream's documents, only",
        Duration::from_secs(60),
        || {
            let (_, counted) = http(&address, "GET", "/api/index/books/count", "");
            (counted["count"] == 300).then_some(())
        },
    );
    assert_eq!(
        count_at_plus(
            &address,
            r#"{"match": {"field": "title", "query": "again"}}"#
        ),
        300
    );
}

#[test]
fn an_r3_stream_with_a_server_killed_mid_feed_keeps_counts_exact() {
    let mut drill = Drill::start(2, 30_000).with_jetstream(3).with_index();
    let nodes = Arc::new(Mutex::new(drill.addresses.clone()));
    let load = Load::start_with(drill.ingest(), nodes);
    let written_past = |n: u64| {
        let written = load.written.clone();
        wait_for(
            &format!("{n} documents published"),
            Duration::from_secs(60),
            move || (written.load(Ordering::Relaxed) >= n).then_some(()),
        );
    };
    written_past(2000);
    let nats = drill.jetstream.as_mut().expect("NATS");
    nats.kill(0);
    let at_kill = load.written.load(Ordering::Relaxed);
    written_past(at_kill + 2000);
    drill.jetstream.as_mut().expect("NATS").restart(0);
    let at_restart = load.written.load(Ordering::Relaxed);
    written_past(at_restart + 2000);
    let (written, queries) = load.finish(&drill.addresses[0]);
    assert!(written >= at_restart + 2000, "{written} documents");
    assert_exact(&drill.addresses[1], written);
    eprintln!(
        "R3 stream, one of 3 servers killed -9 after {at_kill} documents and restarted after {at_restart}: {written} documents, {queries} queries, exact on both nodes"
    );
}

#[test]
fn drills_with_a_jetstream_source_add_a_node_then_fail_one_over() {
    let drill = Drill::start(3, 0).with_jetstream(1).with_index();
    let (written, queries) = add_a_node_then_fail_one_over(drill);
    eprintln!("JetStream drills: add a node, hard failover; {written} documents, {queries} queries, 0 failed");
}
