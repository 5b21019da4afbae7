//! A node hosting a thousand PIndexes (10 indexes × 100, one per source partition) with a
//! small indexing pool: every PIndex serves, counts are exact, the node's threads stay bounded
//! and `/api/node/status` shows its figures; after a restart every PIndex serves again with
//! the same counts.

mod common;

use std::time::Duration;

use common::{free_port, http, serve, wait_for, Proc};

const INDEXES: usize = 10;
const PINDEXES: u64 = 100;
const DOCS_PER_INDEX: usize = 300;

fn start(dir: &std::path::Path, address: &str) -> Proc {
    let args = [
        "node",
        "--bind",
        address,
        "--source-partitions",
        "100",
        "--indexing-memory",
        "128M",
        "--indexing-writers",
        "4",
        "--indexing-threads",
        "2",
        "--writer-idle-ms",
        "200",
    ];
    serve(dir, &args, address)
}

fn definition(source: &str) -> String {
    format!(
        r#"{{"type": "fulltext", "source": {{"type": "tessera", "name": "{source}", "partitions": 100}},
            "plan": {{"max_partitions_per_pindex": 1, "replicas": 0}},
            "params": {{"mapping": {{"fields": {{"title": {{"type": "text"}}}}}}}}}}"#
    )
}

/// Waits until the node (process `pid`) runs at most `most` threads; past `timeout`, fails
/// with its threads counted by name (from `/proc`), so that a failure says what they are.
fn wait_for_threads(address: &str, pid: u32, most: u64, timeout: Duration) -> u64 {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let (_, body) = http(address, "GET", "/api/node/status", "");
        let threads = body["process"]["threads"].as_u64().unwrap_or(u64::MAX);
        if threads <= most {
            return threads;
        }
        if std::time::Instant::now() >= deadline {
            let mut names = std::collections::BTreeMap::<String, u32>::new();
            let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten();
            for task in tasks.flatten() {
                let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
                *names.entry(name.trim().to_string()).or_default() += 1;
            }
            panic!("{threads} threads after {timeout:?}, more than {most}: {names:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until every index counts `docs` over all its PIndexes.
fn all_serving(address: &str, names: &[String], docs: Option<u64>, what: &str) {
    let mut pending: Vec<&String> = names.iter().collect();
    // Generous: beside other tests on two cores the whole test has taken 270 s.
    wait_for(what, Duration::from_secs(600), || {
        pending.retain(|name| {
            let (status, body) = http(address, "GET", &format!("/api/index/{name}/count"), "");
            let counted = body["pindexes_counted"].as_u64() == Some(PINDEXES);
            let exact = docs.is_none_or(|d| body["count"].as_u64() == Some(d));
            !(status == 200 && counted && exact)
        });
        pending.is_empty().then_some(())
    });
}

#[test]
fn a_thousand_pindexes_serve_with_bounded_threads_and_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let mut node = start(dir.path(), &address);
    let names: Vec<String> = (0..INDEXES).map(|i| format!("tenant{i}")).collect();
    for name in &names {
        let (status, body) = http(
            &address,
            "PUT",
            &format!("/api/index/{name}"),
            &definition(name),
        );
        assert_eq!(status, 200, "{body}");
    }
    all_serving(&address, &names, None, "1,000 PIndexes serving");
    for name in &names {
        let bulk: String = (0..DOCS_PER_INDEX)
            .map(|i| {
                format!("{{\"key\":\"d{i}\",\"doc\":{{\"title\":\"{name} document {i}\"}}}}\n")
            })
            .collect();
        let (status, body) = http(&address, "POST", &format!("/api/source/{name}/bulk"), &bulk);
        assert_eq!(status, 200, "{body}");
    }
    all_serving(
        &address,
        &names,
        Some(DOCS_PER_INDEX as u64),
        "every document indexed",
    );

    // Idle again: writers close, and the node's figures say so.
    let status = wait_for("the writers to close", Duration::from_secs(60), || {
        let (code, body) = http(&address, "GET", "/api/node/status", "");
        assert_eq!(code, 200, "{body}");
        (body["indexing"]["usage"]["writers_open"] == 0).then_some(body)
    });
    assert_eq!(status["pindexes"]["running"], 1000, "{status}");
    assert_eq!(status["indexing"]["usage"]["writers_limit"], 4, "{status}");
    assert_eq!(status["indexing"]["usage"]["buffered_bytes"], 0, "{status}");
    // Tokio's workers and blocking threads, the pool's (4 writers × 3 at most), the Cfg and
    // the source: nothing per PIndex once idle. Blocking threads that served the source's
    // reads during the catch-up of 1,000 streams outlive it by tokio's 10 s keep-alive.
    let threads = wait_for_threads(&address, node.0.id(), 64, Duration::from_secs(60));
    assert!(threads <= 64, "{threads} threads for 1,000 PIndexes");
    assert!(
        status["process"]["open_files"].as_u64().is_some(),
        "{status}"
    );

    assert_eq!(node.terminate(Duration::from_secs(60)), 0, "a clean stop");
    let mut node = start(dir.path(), &address);
    all_serving(
        &address,
        &names,
        Some(DOCS_PER_INDEX as u64),
        "every PIndex serving again after the restart",
    );
    assert_eq!(node.terminate(Duration::from_secs(60)), 0);
}
