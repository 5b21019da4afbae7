//! `tessera repair source` on a real node's data dir: an entry of the source log damaged while
//! the node is stopped → `check` names it (exit 7), `plan` proposes dropping it, the dry run
//! says exactly what `apply` then does; while the node runs, or while another repair holds the
//! data dir, `apply` is refused (exit 5); after `apply` the node starts, the damaged
//! partition's feed re-reads it under its new uuid and the count matches the repaired log;
//! `rollback` puts the original file back byte for byte.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{free_port, http, serve, wait_for, Proc, BIN};
use redb::ReadableDatabase;

const PARTITIONS: u32 = 8;
const DOCS: usize = 200;
const LOG: redb::TableDefinition<(&str, u32, u64), &[u8]> = redb::TableDefinition::new("log");

fn node(dir: &Path, address: &str) -> Proc {
    let partitions = PARTITIONS.to_string();
    serve(
        dir,
        &[
            "node",
            "--bind",
            address,
            "--source-partitions",
            &partitions,
        ],
        address,
    )
}

const TITLE_MAPPING: &str = r#"{"mapping": {"fields": {"title": {"type": "text"}}}}"#;

/// A node on `dir` with index `docs` (params `params`) over source `docs`, 4 partitions per
/// PIndex, holding `DOCS` documents `doc(i)` keyed `d{i}`, every one indexed.
fn indexed_node(
    dir: &Path,
    address: &str,
    params: &str,
    doc: impl Fn(usize) -> serde_json::Value,
) -> Proc {
    let running = node(dir, address);
    let index = format!(
        r#"{{"type": "fulltext", "source": {{"type": "tessera", "name": "docs", "partitions": {PARTITIONS}}},
            "plan": {{"max_partitions_per_pindex": 4, "replicas": 0}}, "params": {params}}}"#
    );
    let (status, body) = http(address, "PUT", "/api/index/docs", &index);
    assert_eq!(status, 200, "{body}");
    let bulk: String = (0..DOCS)
        .map(|i| {
            format!(
                "{}\n",
                serde_json::json!({"key": format!("d{i}"), "doc": doc(i)})
            )
        })
        .collect();
    let (status, body) = http(address, "POST", "/api/source/docs/bulk", &bulk);
    assert_eq!(status, 200, "{body}");
    wait_for("every document indexed", Duration::from_secs(60), || {
        (count(address) == Some(DOCS as u64)).then_some(())
    });
    running
}

/// `tessera --data-dir DIR repair KIND ARGS...`: the exit status and the JSON answer.
fn repair_kind(dir: &Path, kind: &str, args: &[&str]) -> (Output, serde_json::Value) {
    let out = std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(["repair", kind])
        .args(args)
        .output()
        .expect("tessera runs");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out, json)
}

fn repair(dir: &Path, args: &[&str]) -> (Output, serde_json::Value) {
    repair_kind(dir, "source", args)
}

fn count(address: &str) -> Option<u64> {
    let (status, body) = http(address, "GET", "/api/index/docs/count", "");
    (status == 200 && body["pindexes_counted"] == body["pindexes_total"])
        .then(|| body["count"].as_u64())
        .flatten()
}

/// Overwrites the first entry of `partition` with bytes that do not decode; returns the key
/// it held.
fn damage_first_entry(log: &Path, partition: u32) -> String {
    let db = redb::Database::builder()
        .create(log)
        .expect("the log opens");
    let key = {
        let rtx = db.begin_read().unwrap();
        let table = rtx.open_table(LOG).unwrap();
        let entry = table
            .get(("docs", partition, 1))
            .unwrap()
            .expect("seq 1 exists");
        let bytes = entry.value();
        let len = u32::from_le_bytes(bytes[1..5].try_into().unwrap()) as usize;
        String::from_utf8(bytes[5..5 + len].to_vec()).unwrap()
    };
    let wtx = db.begin_write().unwrap();
    wtx.open_table(LOG)
        .unwrap()
        .insert(("docs", partition, 1), &[0xee, 0xff, 0xff, 0xff, 0x7f][..])
        .unwrap();
    wtx.commit().unwrap();
    key
}

#[test]
fn a_damaged_source_entry_is_found_dropped_re_read_and_rolled_back() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("node");
    let address = format!("127.0.0.1:{}", free_port());
    let mut running = indexed_node(
        &dir,
        &address,
        TITLE_MAPPING,
        |i| serde_json::json!({"title": format!("doc {i}")}),
    );

    // While the node runs, its log is in use.
    let (out, _) = repair(&dir, &["check"]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(running.terminate(Duration::from_secs(30)), 0);

    let log = dir.join("source.redb");
    let damaged_partition = 3;
    let lost_key = damage_first_entry(&log, damaged_partition);
    let before_repair = std::fs::read(&log).unwrap();

    let (out, report) = repair(&dir, &["check"]);
    assert_eq!(out.status.code(), Some(7), "{report}");
    let findings = report["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{report}");
    assert_eq!(findings[0]["partition"], damaged_partition, "{report}");
    assert_eq!(findings[0]["seq"], 1, "{report}");

    let edits = scratch.path().join("edits.json");
    let (out, _) = repair(&dir, &["plan", "--out", edits.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let planned: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&edits).unwrap()).unwrap();
    assert_eq!(
        planned["edits"],
        serde_json::json!([{"op": "delete", "source": "docs", "partition": damaged_partition, "from_seq": 1, "to_seq": 1}])
    );

    let (out, dry) = repair(
        &dir,
        &["apply", "--edits", edits.to_str().unwrap(), "--dry-run"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read(&log).unwrap() == before_repair,
        "a dry run changes nothing"
    );

    // Another repair in progress (a live process holds the repair lock): refused.
    std::fs::create_dir_all(dir.join("repair")).unwrap();
    std::fs::write(
        dir.join("repair/lock"),
        format!(r#"{{"pid": {}, "what": "another"}}"#, std::process::id()),
    )
    .unwrap();
    let (out, _) = repair(&dir, &["apply", "--edits", edits.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(dir.join("repair/lock")).unwrap();

    let (out, applied) = repair(&dir, &["apply", "--edits", edits.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = format!("docs/{damaged_partition}");
    for field in ["deleted", "replaced", "added", "after"] {
        assert_eq!(applied[field], dry[field], "the dry run said {field}");
    }
    assert_eq!(applied["deleted"][&name], 1, "{applied}");
    assert!(applied["new_uuids"][&name].is_array(), "{applied}");
    assert_eq!(
        applied["after"]["documents"]["docs"],
        (DOCS - 1) as u64,
        "{applied}"
    );
    let backup = applied["backup"].as_str().expect("a backup id").to_string();
    let (out, _) = repair(&dir, &["check"]);
    assert!(out.status.success(), "the repaired log checks clean");

    // The node again: the partition's feed rolls back and re-reads it; the lost key is gone.
    let mut running = node(&dir, &address);
    wait_for(
        "the count of the repaired log",
        Duration::from_secs(60),
        || (count(&address) == Some(DOCS as u64 - 1)).then_some(()),
    );
    let query = format!(r#"{{"query": {{"term": {{"field": "_id", "value": "{lost_key}"}}}}}}"#);
    let (status, body) = http(&address, "POST", "/api/index/docs/query", &query);
    assert_eq!(
        (status, body["total_hits"].as_u64()),
        (200, Some(0)),
        "{body}"
    );
    assert_eq!(running.terminate(Duration::from_secs(30)), 0);

    let (out, listed) = repair(&dir, &["list"]);
    assert!(out.status.success());
    assert_eq!(listed["backups"][0]["id"], backup.as_str(), "{listed}");
    assert_eq!(listed["journal"][0]["action"], "apply", "{listed}");

    let (out, back) = repair(&dir, &["rollback", &backup]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read(&log).unwrap() == before_repair,
        "rolled back byte for byte: {back}"
    );
    let (out, _) = repair(&dir, &["rollback", "no-such-backup"]);
    assert_eq!(out.status.code(), Some(4));
}

fn repair_pindex(dir: &Path, args: &[&str]) -> (Output, serde_json::Value) {
    repair_kind(dir, "pindex", args)
}

/// Flips bytes in the middle of `path`.
fn flip(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 4] {
        *b ^= 0xff;
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_pindex_with_a_damaged_segment_file_serves_again_with_the_exact_count() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("node");
    let address = format!("127.0.0.1:{}", free_port());
    let mut running = indexed_node(
        &dir,
        &address,
        TITLE_MAPPING,
        |i| serde_json::json!({"title": format!("doc {i}")}),
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.join("pindexes"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("docs"))
        .collect();
    names.sort();
    let name = names.first().expect("a PIndex directory").clone();
    let (out, _) = repair_pindex(&dir, &["check", &name]);
    assert_eq!(out.status.code(), Some(5), "refused while the node runs");
    assert_eq!(running.terminate(Duration::from_secs(30)), 0);

    let (out, inspected) = repair_pindex(&dir, &["inspect", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let segment = inspected["segments"]
        .as_array()
        .and_then(|s| s.iter().max_by_key(|s| s["docs"].as_u64()))
        .expect("a segment")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let damaged_file = format!("{segment}.store");
    flip(&dir.join("pindexes").join(&name).join(&damaged_file));

    // Named by its directory, as well as by its name under --data-dir.
    let path = dir.join("pindexes").join(&name);
    let (out, checked) = repair_pindex(
        Path::new("/nonexistent"),
        &["check", path.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(7), "{checked}");
    let named: Vec<&str> = checked["segments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["damaged"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|f| f.as_str())
        })
        .collect();
    assert_eq!(named, [damaged_file.as_str()], "{checked}");

    let edits = scratch.path().join("pindex-edits.yaml");
    let (out, plan) = repair_pindex(&dir, &["plan", &name]);
    assert!(out.status.success());
    assert_eq!(plan["edits"][0]["op"], "drop_segment", "{plan}");
    // The same edit list, written as YAML.
    std::fs::write(
        &edits,
        format!("edits:\n  - op: drop_segment\n    segment: {segment}\n"),
    )
    .unwrap();
    let (out, dry) = repair_pindex(
        &dir,
        &[
            "apply",
            &name,
            "--edits",
            edits.to_str().unwrap(),
            "--dry-run",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (out, applied) = repair_pindex(&dir, &["apply", &name, "--edits", edits.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for field in ["dropped_segments", "lowered", "docs_after"] {
        assert_eq!(applied[field], dry[field], "the dry run said {field}");
    }
    assert!(
        !applied["lowered"].as_array().unwrap().is_empty(),
        "{applied}"
    );
    let (out, _) = repair_pindex(&dir, &["check", &name]);
    assert!(out.status.success(), "the repaired PIndex checks clean");

    // The node re-reads the lowered partitions; the PIndex opens as repaired (not rebuilt).
    let mut running = node(&dir, &address);
    wait_for(
        "the exact count after re-ingest",
        Duration::from_secs(60),
        || (count(&address) == Some(DOCS as u64)).then_some(()),
    );
    let (_, status) = http(&address, "GET", "/api/index/docs/status", "");
    for p in status["pindexes"].as_array().unwrap() {
        assert!(p["local"]["rebuilt_from"].is_null(), "{p}");
    }
    assert_eq!(running.terminate(Duration::from_secs(30)), 0);

    let backup = applied["backup"].as_str().unwrap();
    let (out, _) = repair_pindex(&dir, &["rollback", backup]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (out, _) = repair_pindex(&dir, &["check", &name]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "the rolled-back directory is the damaged one again"
    );
    let (out, listed) = repair_pindex(&dir, &["list"]);
    assert!(out.status.success());
    let actions: Vec<&str> = listed["journal"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|j| j["action"].as_str())
        .collect();
    assert_eq!(actions, ["apply", "rollback"], "{listed}");
}

#[test]
fn a_corrupt_index_definition_and_a_future_node_definition_in_etcd_are_scanned_and_repaired() {
    use tessera_cfg::CfgSpec;
    let etcd = tessera_tests::etcd::EtcdCluster::single();
    let spec = etcd.cfg_spec("repaired");
    let scratch = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cfg = runtime
        .block_on(spec.parse::<CfgSpec>().unwrap().open(scratch.path()))
        .unwrap();
    let (index_rev, node_rev) = runtime.block_on(async {
        let index = cfg.keys().resolve("indexes/books");
        let node = cfg.keys().resolve("nodes/n1");
        let a = cfg
            .store()
            .set(&index, b"{\"format_version\": 1, \"na".to_vec(), 0)
            .await
            .unwrap();
        let future = serde_json::json!({"format_version": 7, "uuid": "n1"}).to_string();
        let b = cfg
            .store()
            .set(&node, future.into_bytes(), 0)
            .await
            .unwrap();
        (a, b)
    });
    let run = |args: &[&str]| -> (Output, serde_json::Value) {
        let out = std::process::Command::new(BIN)
            .arg("--data-dir")
            .arg(scratch.path())
            .args(["--cfg", &spec, "repair", "cfg"])
            .args(args)
            .output()
            .expect("tessera runs");
        let json = serde_json::from_slice(&out.stdout).unwrap_or_default();
        (out, json)
    };
    let (out, report) = run(&["scan"]);
    assert_eq!(out.status.code(), Some(7), "{report}");
    let found: Vec<(String, String, u64)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let key = f["key"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .take(2)
                .collect::<Vec<_>>();
            (
                format!("{}/{}", key[1], key[0]),
                f["kind"].as_str().unwrap().to_string(),
                f["revision"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                "indexes/books".to_string(),
                "undecodable".to_string(),
                index_rev as u64
            ),
            (
                "nodes/n1".to_string(),
                "unknown_format".to_string(),
                node_rev as u64
            ),
        ],
        "{report}"
    );

    let edits = scratch.path().join("cfg-edits.json");
    std::fs::write(
        &edits,
        serde_json::json!({"edits": [
            {"op": "replace", "key": "indexes/books", "revision": index_rev,
             "value": {"name": "books", "uuid": "u1", "type": "fulltext", "source": {"type": "tessera", "name": "books"}}},
            {"op": "delete", "key": "nodes/n1", "revision": node_rev}]})
        .to_string(),
    )
    .unwrap();
    let (out, dry) = run(&["apply", "--edits", edits.to_str().unwrap(), "--dry-run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(dry["findings_after"], serde_json::json!([]), "{dry}");
    let (out, applied) = run(&["apply", "--edits", edits.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        applied["changes"], dry["changes"],
        "the dry run said what apply did"
    );
    let (out, _) = run(&["scan"]);
    assert!(out.status.success(), "the Cfg scans clean");
    // The same edits again: the revisions moved on, so they are refused.
    let (out, _) = run(&["apply", "--edits", edits.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5));
    let (out, _) = run(&["rollback", applied["backup"].as_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (out, _) = run(&["scan"]);
    assert_eq!(out.status.code(), Some(7), "the originals are back");
}

#[test]
fn a_source_log_that_does_not_open_is_salvaged_from_the_pindexes() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("node");
    let address = format!("127.0.0.1:{}", free_port());
    // The dynamic mapping stores whole documents.
    let mut running = indexed_node(
        &dir,
        &address,
        "null",
        |i| serde_json::json!({"title": format!("doc {i}"), "n": i}),
    );
    assert_eq!(running.terminate(Duration::from_secs(30)), 0);

    // The file's first pages overwritten: redb cannot open it.
    let log = dir.join("source.redb");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[..8192].fill(0x5a);
    std::fs::write(&log, &bytes).unwrap();
    let (out, report) = repair(&dir, &["check"]);
    assert_eq!(out.status.code(), Some(7), "{report}");
    assert_eq!(report["opens"], false, "{report}");
    let (out, plan) = repair(&dir, &["plan"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let candidates: Vec<String> = plan["salvage"]["candidates"]
        .as_array()
        .expect("salvage candidates")
        .iter()
        .map(|c| c["pindex"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(candidates.len(), 2, "{plan}");
    let mut args = vec!["salvage", "--source", "docs", "--partitions", "8"];
    for c in &candidates {
        args.extend(["--from-pindex", c.as_str()]);
    }
    let (out, dry) = repair(&dir, &[&args[..], &["--dry-run"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(dry["documents"], DOCS as u64, "{dry}");
    assert!(
        std::fs::read(&log).unwrap() == bytes,
        "a dry run changes nothing"
    );
    let (out, salvaged) = repair(&dir, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(salvaged["new_log"], true, "{salvaged}");
    let (out, _) = repair(&dir, &["check"]);
    assert!(out.status.success(), "the salvaged log checks clean");

    // Every partition has a new history: the feeds hold until the operator accepts, then read
    // the salvaged documents.
    let running = node(&dir, &address);
    wait_for(
        "both feeds held by the incident",
        Duration::from_secs(60),
        || {
            let (_, status) = http(&address, "GET", "/api/index/docs/status", "");
            let held = status["pindexes"]
                .as_array()?
                .iter()
                .filter(|p| !p["local"]["feed"]["incident"].is_null())
                .count();
            (held == 2).then_some(())
        },
    );
    let (status, body) = http(
        &address,
        "POST",
        "/api/index/docs/ingestControl/accept-rollback",
        "",
    );
    assert_eq!(status, 200, "{body}");
    wait_for(
        "the salvaged documents indexed",
        Duration::from_secs(60),
        || (count(&address) == Some(DOCS as u64)).then_some(()),
    );
    let query = r#"{"query": {"term": {"field": "_id", "value": "d7"}}}"#;
    let (status, body) = http(&address, "POST", "/api/index/docs/query", query);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hits"][0]["fields"]["title"], "doc 7", "{body}");
    drop(running);
    // The unreadable file is in the backup.
    let backup = salvaged["backup"].as_str().expect("a backup");
    let saved = dir.join("repair/backups").join(backup).join("source.redb");
    assert!(std::fs::read(saved).unwrap() == bytes);
}
