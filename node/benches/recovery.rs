//! Recovery of missing PIndexes: three nodes host two identical indexes (`docs` and `twin`) of
//! 1M documents in 16 PIndexes without replicas. After a backup of `docs` and 1% more
//! documents written, ingest is paused and the node holding most copies dies with its data
//! dir; once it is failed over, both indexes have PIndexes missing. Prints, in one run, the
//! time to recover `docs`' missing PIndexes from the snapshot (begin → every PIndex caught up
//! and committed → exact count) against the time for `twin`'s to be rebuilt from the source
//! the planner's normal way. Run: `cargo bench -p tessera-node --bench recovery`
//! (`RECOVERY_DOCS` to change the size).

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{request, Cluster, Proc};
use tessera_tests::etcd::EtcdCluster;

const LONG: Duration = Duration::from_secs(3600);

/// Resumes `index`'s ingest and waits until its stored plan is of the definition that wrote
/// (janitors hold an index whose plan is of an older definition, so the clock starts after).
fn resume(cluster: &Cluster, index: &str) {
    let path = format!("/api/index/{index}/ingestControl/resume");
    let (status, answer) = cluster.call("POST", &path, "");
    assert_eq!(status, 200, "{answer}");
    cluster.wait("the plan of the resumed definition", LONG, |c| {
        let def = c.call("GET", &format!("/api/index/{index}"), "").1;
        let plans = c.call("GET", "/api/plan", "").1;
        let current = plans["plans"]
            .as_array()?
            .iter()
            .any(|p| p["index"] == index && p["index_uuid"] == def["index"]["uuid"]);
        current.then_some(())
    });
}

/// The PIndexes of `index` health names missing.
fn missing(cluster: &Cluster, index: &str) -> usize {
    let health = cluster.call("GET", "/api/cluster/health", "").1;
    health["missing"][index].as_array().map_or(0, Vec::len)
}

fn main() {
    let docs = support::docs_from_env("RECOVERY_DOCS", 1_000_000);
    let scratch = tempfile::tempdir().expect("tempdir");
    let etcd = EtcdCluster::single();
    let cfg = etcd.cfg_spec("bench");
    let (source, _source) = support::start_source(scratch.path());
    let repo_dir = scratch.path().join("repo");
    std::fs::create_dir_all(&repo_dir).expect("repo dir");
    let backup_root = scratch.path().display().to_string();
    let flags = [
        "--max-backfills",
        "8",
        "--lease-ttl-ms",
        "2000",
        "--failover-delay-ms",
        "2000",
        "--backup-path",
        &backup_root,
    ];
    let (addresses, mut nodes): (Vec<String>, Vec<Option<Proc>>) = (0..3)
        .map(|i| {
            let (address, proc) = support::start_node(scratch.path(), &cfg, i, &flags);
            (address, Some(proc))
        })
        .unzip();
    let cluster = Cluster::new(&addresses[0]);
    cluster.wait("three nodes", Duration::from_secs(30), |c| {
        let nodes = c.call("GET", "/api/nodes", "").1;
        (nodes["nodes"].as_array().map(Vec::len) == Some(3)).then_some(())
    });
    let definition = format!(
        r#"{{"type": "fulltext", "source": {{"type": "tessera", "name": "docs", "partitions": 64, "params": {{"url": "http://{source}"}}}},
            "plan": {{"index_partitions": 16, "replicas": 0}},
            "params": {{"mapping": {{"fields": {{"title": {{"type": "text"}}, "n": {{"type": "i64"}}}}}}}}}}"#
    );
    for index in ["docs", "twin"] {
        let (status, answer) = cluster.call("PUT", &format!("/api/index/{index}"), &definition);
        assert_eq!(status, 200, "{answer}");
    }
    let load = |from: usize, to: usize| {
        for start in (from..to).step_by(50_000) {
            let body: String = (start..(start + 50_000).min(to))
                .map(|i| format!("{{\"key\":\"d{i}\",\"doc\":{{\"title\":\"document number {i} of the recovery benchmark\",\"n\":{i}}}}}\n"))
                .collect();
            let url = format!("http://{source}/api/source/docs/bulk");
            let (status, answer) =
                cluster
                    .runtime
                    .block_on(request(&cluster.client, "POST", &url, body));
            assert_eq!(status, 200, "{answer}");
        }
    };
    let loading = Instant::now();
    load(0, docs);
    cluster.wait_count("docs", docs);
    cluster.wait_count("twin", docs);
    println!(
        "{docs} documents in each of two indexes, 16 PIndexes without replicas on 3 nodes, built in {:.1} s",
        loading.elapsed().as_secs_f64()
    );
    let repo = format!(r#"{{"type": "fs", "location": "{}"}}"#, repo_dir.display());
    let (status, answer) = cluster.call("PUT", "/api/backup/repos/bench", &repo);
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = cluster.call(
        "POST",
        "/api/backup/repos/bench/snapshots",
        r#"{"indexes": ["docs"]}"#,
    );
    assert_eq!(status, 202, "{answer}");
    let job = answer["id"].as_str().expect("job id").to_string();
    cluster.wait("the backup", LONG, |c| {
        let job = c.call("GET", &format!("/api/backup/jobs/{job}"), "").1["job"].clone();
        (job["status"] == "completed").then_some(())
    });
    // 1% more after the backup: the recovered PIndexes stream these from the source.
    let total = docs + docs / 100;
    load(docs, total);
    cluster.wait_count("docs", total);
    cluster.wait_count("twin", total);
    for index in ["docs", "twin"] {
        let path = format!("/api/index/{index}/ingestControl/pause");
        let (status, answer) = cluster.call("POST", &path, "");
        assert_eq!(status, 200, "{answer}");
    }

    // The node holding most copies dies with its data dir (never node 0, which is asked).
    let plans = cluster.call("GET", "/api/plan", "").1;
    let holds = |i: usize| {
        let (_, ping) = cluster.runtime.block_on(request(
            &cluster.client,
            "GET",
            &format!("http://{}/api/ping", addresses[i]),
            String::new(),
        ));
        let uuid = ping["node"].as_str().unwrap_or_default().to_string();
        plans
            .to_string()
            .matches(&format!("\"node\":\"{uuid}\""))
            .count()
    };
    let victim = if holds(1) >= holds(2) { 1 } else { 2 };
    nodes[victim] = None;
    std::fs::remove_dir_all(scratch.path().join(format!("node{victim}"))).expect("data dir");
    // Failed over (after the lease and the failover delay): the planner has re-placed the
    // missing PIndexes, so the clocks below start with every PIndex placed.
    cluster.wait("the lost node failed over", Duration::from_secs(60), |c| {
        let topology = c.call("GET", "/api/ctl/topology", "").1;
        let failed = topology["nodes"]
            .as_array()?
            .iter()
            .any(|n| n["host_port"] == addresses[victim].as_str() && n["failed_over"] == true);
        failed.then_some(())
    });
    let (lost_docs, lost_twin) = cluster.wait("PIndexes missing", Duration::from_secs(60), |c| {
        let (d, t) = (missing(c, "docs"), missing(c, "twin"));
        (d > 0 && t > 0).then_some((d, t))
    });

    // Recovery of docs' missing PIndexes from the snapshot. Ingest resumes first, as in a
    // cluster that never paused: the copies the planner re-placed empty start rebuilding, and
    // the recovery replaces them with the snapshot's files.
    resume(&cluster, "docs");
    let started = Instant::now();
    let begin = r#"{"indexes": ["docs"], "from": {"snapshot": {"repo": "bench", "id": "latest"}}}"#;
    let (status, begun) = cluster.call("POST", "/api/ctl/recovery", begin);
    assert_eq!(status, 202, "{begun}");
    let id = begun["id"].as_str().expect("recovery id").to_string();
    let bytes = begun["progress"]["bytes_total"].as_u64().unwrap_or(0);
    let t_begun = started.elapsed().as_secs_f64();
    let lost_docs = begun["progress"]["pindexes_total"]
        .as_u64()
        .unwrap_or(lost_docs as u64) as usize;
    // Each PIndex's steps as seen by polling, for the timeline printed at the end.
    let mut seen: std::collections::BTreeMap<(String, String), f64> = Default::default();
    loop {
        let r = cluster
            .call("GET", &format!("/api/ctl/recovery/{id}"), "")
            .1;
        for p in r["missing"]["docs"].as_array().into_iter().flatten() {
            let key = (
                p["pindex"].as_str().unwrap_or("?").to_string(),
                p["state"].as_str().unwrap_or("?").to_string(),
            );
            seen.entry(key)
                .or_insert_with(|| started.elapsed().as_secs_f64());
        }
        let states = &r["progress"]["states"];
        let on_the_way = ["missing", "fetching", "verifying"]
            .iter()
            .any(|s| states[*s].as_u64().unwrap_or(0) > 0);
        if !on_the_way {
            break;
        }
        assert!(started.elapsed() < LONG, "fetching took an hour: {r}");
        std::thread::sleep(Duration::from_millis(20));
    }
    for ((pindex, state), at) in &seen {
        println!("  {pindex} {state} first seen at {at:.2} s");
    }
    let t_fetched = started.elapsed().as_secs_f64();
    cluster.wait("every PIndex recovered", LONG, |c| {
        let r = c.call("GET", &format!("/api/ctl/recovery/{id}"), "").1;
        let states = &r["progress"]["states"];
        assert!(states["failed"].is_null(), "a PIndex failed: {r}");
        (states["recovered"].as_u64() == Some(lost_docs as u64)).then_some(())
    });
    let t_recovered = started.elapsed().as_secs_f64();
    let (status, answer) = cluster.call("POST", &format!("/api/ctl/recovery/{id}/commit"), "");
    assert_eq!(status, 200, "{answer}");
    cluster.wait("docs readable", LONG, |c| {
        (missing(c, "docs") == 0).then_some(())
    });
    let t_readable = started.elapsed().as_secs_f64();
    cluster.wait_count("docs", total);
    let recovered = started.elapsed().as_secs_f64();
    let (status, answer) = cluster.call("POST", &format!("/api/ctl/recovery/{id}/end"), "");
    assert_eq!(status, 200, "{answer}");

    // twin's missing PIndexes rebuilt from the source, the planner's normal way.
    resume(&cluster, "twin");
    let started = Instant::now();
    cluster.wait("twin readable", LONG, |c| {
        (missing(c, "twin") == 0).then_some(())
    });
    cluster.wait_count("twin", total);
    let rebuilt = started.elapsed().as_secs_f64();

    let per = |s: f64, n: usize| s / n.max(1) as f64;
    println!(
        "recovered {lost_docs} missing PIndexes from the snapshot ({:.1} MB fetched, then {} documents written after the backup streamed): {recovered:.1} s, {:.2} s per PIndex",
        bytes as f64 / 1e6,
        docs / 100,
        per(recovered, lost_docs)
    );
    println!(
        "  phases: begin answered {t_begun:.2} s, every PIndex fetched and open {t_fetched:.2} s, caught up {t_recovered:.2} s, committed and readable {t_readable:.2} s"
    );
    println!(
        "rebuilt {lost_twin} missing PIndexes of the twin index from the source: {rebuilt:.1} s, {:.2} s per PIndex; recovery {:.1}× faster per PIndex",
        per(rebuilt, lost_twin),
        per(rebuilt, lost_twin) / per(recovered, lost_docs)
    );
}
