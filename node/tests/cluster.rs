//! Three nodes on real etcd and a standalone source: an index of 16 PIndexes with one replica
//! fed 100k documents; counts exact through updates, deletes, the source killed with -9 while
//! writes are in flight (every acknowledged write kept, revised documents show their new
//! content) and a node killed with -9 and restarted (which resumes from its checkpoints, no
//! rebuild).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cluster_node as node, free_port, http, serve, try_http, wait_for, Proc};
use tessera_tests::etcd::EtcdCluster;

const DOCS: usize = 100_000;

fn source(dir: &std::path::Path, address: &str) -> Proc {
    serve(
        dir,
        &["source", "--bind", address, "--partitions", "64"],
        address,
    )
}

fn bulk(source: &str, range: std::ops::Range<usize>) {
    for chunk in range.collect::<Vec<_>>().chunks(20_000) {
        let body: String = chunk
            .iter()
            .map(|i| {
                format!("{{\"key\":\"d{i}\",\"doc\":{{\"title\":\"document {i}\",\"n\":{i}}}}}\n")
            })
            .collect();
        let (status, answer) = http(source, "POST", "/api/source/docs/bulk", &body);
        assert_eq!(
            (status, answer["accepted"].as_u64()),
            (200, Some(chunk.len() as u64)),
            "{answer}"
        );
    }
}

/// Batches the writer sends while the source is killed: each adds new documents and revises
/// existing ones.
const BATCHES: usize = 60;
const NEW_PER_BATCH: usize = 300;
const REVISED_PER_BATCH: usize = 50;
const BATCH_LINES: usize = NEW_PER_BATCH + REVISED_PER_BATCH;
/// Revised documents are `d{REVISED_FROM + k}` (none of them deleted before).
const REVISED_FROM: usize = 1_000;

fn batch_body(batch: usize) -> String {
    let new = (0..NEW_PER_BATCH).map(|k| {
        let i = DOCS + batch * NEW_PER_BATCH + k;
        format!("{{\"key\":\"d{i}\",\"doc\":{{\"title\":\"document {i}\",\"n\":{i}}}}}\n")
    });
    let revised = (0..REVISED_PER_BATCH).map(|k| {
        let i = REVISED_FROM + batch * REVISED_PER_BATCH + k;
        format!("{{\"key\":\"d{i}\",\"doc\":{{\"title\":\"revised {i}\",\"n\":{i}}}}}\n")
    });
    new.chain(revised).collect()
}

/// Every revised document is searchable with its new content, and nothing else says `revised`.
fn check_revised(node: &str) {
    let want = BATCHES * REVISED_PER_BATCH;
    let body = format!(
        r#"{{"query": {{"match": {{"field": "title", "query": "revised"}}}}, "size": {want}, "fields": ["title"]}}"#
    );
    let (status, answer) = http(node, "POST", "/api/index/books/query", &body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["total_hits"].as_u64(),
        Some(want as u64),
        "{}",
        answer["status"]
    );
    let hits = answer["hits"].as_array().expect("hits");
    let mut seen = std::collections::BTreeSet::new();
    for hit in hits {
        let id = hit["id"].as_str().expect("an id");
        let i: usize = id.trim_start_matches('d').parse().expect("a numbered id");
        assert!(
            (REVISED_FROM..REVISED_FROM + want).contains(&i),
            "{id} was never revised: {hit}"
        );
        assert_eq!(hit["fields"]["title"], format!("revised {i}"), "{hit}");
        seen.insert(i);
    }
    assert_eq!(seen.len(), want, "a revised document is missing or doubled");
}

fn source_docs(source: &str) -> u64 {
    http(source, "GET", "/api/source/docs", "").1["docs"]
        .as_u64()
        .unwrap_or(0)
}

fn wait_exact(node: &str, source: &str, what: &str) -> u64 {
    let want = source_docs(source);
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let (status, body) = http(node, "GET", "/api/index/books/count", "");
        if status == 200 && body["count"].as_u64() == Some(want) && body["pindexes_counted"] == 16 {
            return want;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: count never reached {want}; last answer {body}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn three_nodes_host_an_index_exactly_through_restarts() {
    let etcd = EtcdCluster::single();
    let cfg = etcd.cfg_spec("cluster");
    let scratch = tempfile::tempdir().unwrap();
    let source_address = format!("127.0.0.1:{}", free_port());
    let mut source_proc = source(&scratch.path().join("source"), &source_address);
    let addresses: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let dirs: Vec<_> = (0..3)
        .map(|i| scratch.path().join(format!("node{i}")))
        .collect();
    let mut nodes: Vec<Proc> = (0..3)
        .map(|i| node(&cfg, &dirs[i], &addresses[i], &format!("zone-{i}")))
        .collect();
    let a = addresses[0].clone();

    let index = format!(
        r#"{{"type": "fulltext", "source": {{"type": "tessera", "name": "docs", "partitions": 64, "params": {{"url": "http://{source_address}"}}}},
            "plan": {{"index_partitions": 16, "replicas": 1}},
            "params": {{"mapping": {{"fields": {{"title": {{"type": "text"}}, "n": {{"type": "i64"}}}}}}}}}}"#
    );
    let (status, body) = http(&a, "PUT", "/api/index/books", &index);
    assert_eq!(status, 200, "{body}");
    let plan = wait_for(
        "a plan with 16 PIndexes × 2 copies",
        Duration::from_secs(30),
        || {
            let (_, body) = http(&a, "GET", "/api/plan", "");
            let plan = body["plans"].as_array()?.first()?.clone();
            let pindexes = plan["pindexes"].as_array()?;
            (pindexes.len() == 16
                && pindexes
                    .iter()
                    .all(|p| p["copies"].as_array().is_some_and(|c| c.len() == 2)))
            .then_some(plan)
        },
    );
    assert!(plan["warnings"].as_array().unwrap().is_empty(), "{plan}");

    bulk(&source_address, 0..DOCS);
    assert_eq!(wait_exact(&a, &source_address, "initial load"), DOCS as u64);

    // Updates keep the count, deletes lower it; every node answers the same.
    http(
        &source_address,
        "PUT",
        "/api/source/docs/doc/d5",
        r#"{"title": "updated"}"#,
    );
    for i in 0..100 {
        http(
            &source_address,
            "DELETE",
            &format!("/api/source/docs/doc/d{}", i * 7),
            "",
        );
    }
    let after_deletes = wait_exact(&a, &source_address, "deletes");
    assert_eq!(after_deletes, DOCS as u64 - 100);
    for other in &addresses[1..] {
        assert_eq!(
            wait_exact(other, &source_address, "the same count from another node"),
            after_deletes
        );
    }

    // The source dies with -9 while writes are in flight and comes back: every write it
    // acknowledged is kept (the writer retries the ones that failed, as a client would),
    // nothing is lost or doubled, and updated documents show their new content.
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let writer = {
        let source_address = source_address.clone();
        let (acknowledged, failed) = (acknowledged.clone(), failed.clone());
        std::thread::spawn(move || {
            for batch in 0..BATCHES {
                let body = batch_body(batch);
                loop {
                    match try_http(&source_address, "POST", "/api/source/docs/bulk", &body) {
                        Some((200, answer)) => {
                            assert_eq!(
                                answer["accepted"].as_u64(),
                                Some(BATCH_LINES as u64),
                                "batch {batch}: {answer}"
                            );
                            acknowledged.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        Some((status, answer)) if status != 0 => {
                            panic!("batch {batch}: the source answered {status} {answer}")
                        }
                        // Cut off or refused: the source is down; try again.
                        _ => {
                            failed.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
            }
        })
    };
    wait_for("some batches written", Duration::from_secs(60), || {
        (acknowledged.load(Ordering::SeqCst) >= 5).then_some(())
    });
    source_proc.0.kill().unwrap();
    let _ = source_proc.0.wait();
    wait_for(
        "a write refused while the source is down",
        Duration::from_secs(30),
        || (failed.load(Ordering::SeqCst) > 0).then_some(()),
    );
    assert!(
        acknowledged.load(Ordering::SeqCst) < BATCHES,
        "the writer finished before the source was killed"
    );
    source_proc = source(&scratch.path().join("source"), &source_address);
    writer.join().unwrap();
    assert_eq!(acknowledged.load(Ordering::SeqCst), BATCHES);
    assert_eq!(
        wait_exact(&a, &source_address, "after the source restart"),
        DOCS as u64 - 100 + (BATCHES * NEW_PER_BATCH) as u64
    );
    check_revised(&a);

    // A node killed with -9 and restarted (within the failover delay: no re-plan) resumes
    // every PIndex from its checkpoints: it re-applies only what it had not committed.
    let victim = 2;
    nodes[victim].0.kill().unwrap();
    let _ = nodes[victim].0.wait();
    let written = DOCS + BATCHES * NEW_PER_BATCH;
    bulk(&source_address, written..written + 1_000);
    nodes[victim] = node(&cfg, &dirs[victim], &addresses[victim], "zone-2");
    let total = wait_exact(&a, &source_address, "after the node restart");
    assert_eq!(
        total,
        DOCS as u64 - 100 + (BATCHES * NEW_PER_BATCH) as u64 + 1_000
    );
    let (_, status) = http(&addresses[victim], "GET", "/api/index/books/status", "");
    let mut hosted_docs = 0;
    let mut applied = 0;
    for p in status["pindexes"].as_array().unwrap() {
        if p["local"].is_object() {
            hosted_docs += p["local"]["docs"].as_u64().unwrap_or(0);
            applied += p["local"]["feed"]["applied"].as_u64().unwrap_or(0);
            assert!(
                p["local"]["rebuilt_from"].is_null(),
                "a PIndex was rebuilt: {p}"
            );
        }
    }
    assert!(hosted_docs > 0, "the restarted node hosts PIndexes");
    assert!(applied < hosted_docs / 2, "restart re-applied {applied} changes for {hosted_docs} hosted docs: a rebuild, not a resume");

    // Status from any node shows every copy: its docs and, per source partition, the seq it
    // reached against the source's high seq.
    wait_for(
        "every copy caught up in the status",
        Duration::from_secs(60),
        || {
            let (_, status) = http(&a, "GET", "/api/index/books/status", "");
            let pindexes = status["pindexes"].as_array()?;
            let all = pindexes.len() == 16
                && pindexes.iter().all(|p| {
                    p["copies"].as_array().is_some_and(|copies| {
                        copies.len() == 2
                            && copies.iter().all(|c| {
                                c["docs"].as_u64().is_some_and(|d| d > 0)
                                    && c["partitions"].as_object().is_some_and(|parts| {
                                        parts.len() == 4
                                            && parts.values().all(|v| {
                                                v["seq"] == v["high_seq"]
                                                    && v["seq"].as_u64().is_some()
                                            })
                                    })
                            })
                    })
                });
            all.then_some(())
        },
    );
    drop(nodes);
    drop(source_proc);
}
