//! Three nodes on real etcd and a standalone source: an index of 16 PIndexes with one replica
//! fed 100k documents; counts exact through updates, deletes, a source restart mid-stream and
//! a node killed with -9 and restarted (which resumes from its checkpoints, no rebuild).

mod common;

use std::time::{Duration, Instant};

use common::{cluster_node as node, free_port, http, serve, wait_for, Proc};
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

    // The source dies mid-load and comes back: nothing lost, nothing doubled.
    let writer = {
        let source_address = source_address.clone();
        std::thread::spawn(move || bulk(&source_address, DOCS..DOCS + 20_000))
    };
    writer.join().unwrap();
    source_proc.0.kill().unwrap();
    let _ = source_proc.0.wait();
    source_proc = source(&scratch.path().join("source"), &source_address);
    bulk(&source_address, DOCS + 20_000..DOCS + 30_000);
    assert_eq!(
        wait_exact(&a, &source_address, "after the source restart"),
        DOCS as u64 - 100 + 30_000
    );

    // A node killed with -9 and restarted (within the failover delay: no re-plan) resumes
    // every PIndex from its checkpoints: it re-applies only what it had not committed.
    let victim = 2;
    nodes[victim].0.kill().unwrap();
    let _ = nodes[victim].0.wait();
    bulk(&source_address, DOCS + 30_000..DOCS + 31_000);
    nodes[victim] = node(&cfg, &dirs[victim], &addresses[victim], "zone-2");
    let total = wait_exact(&a, &source_address, "after the node restart");
    assert_eq!(total, DOCS as u64 - 100 + 31_000);
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
