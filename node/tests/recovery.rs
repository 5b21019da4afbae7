//! Recovery of missing PIndexes, on real etcd and processes: an index without replicas on
//! three nodes is backed up, takes more writes, then loses the node holding most of its
//! copies together with its data dir. Ingest is paused before, so the copies the planner
//! re-places empty cannot catch up from the source on their own and the PIndexes stay missing
//! until something brings their data back.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::backup::{add_fs_repo, backup_now, ingest, ok};
use common::drill::*;
use common::missing::{
    books_without_replicas, define_books, define_books_with, lose_the_busiest_node, missing_of,
};
use common::{http, wait_for};
use serde_json::Value;

/// Three nodes (and `planners` standalone planners); `books` with 8 PIndexes and no replicas
/// holding 2500 documents, 2000 of them in a snapshot of repository `local`; ingest paused;
/// then the busiest node lost. Returns the drill, a surviving node and the missing PIndexes.
/// Also returns the lost node's uuid.
fn lose_pindexes_after_a_backup(planners: usize) -> (Drill, String, BTreeSet<String>, String) {
    let mut drill = Drill::start_with(3, 2_000, planners);
    books_without_replicas(&drill, 8);
    let node = drill.addresses[0].clone();
    ingest(&drill.source, 2000, |i| format!("document {i}"));
    assert_exact(&node, 2000);
    add_local_repo(&drill, &node);
    backup_now(&node, "local");
    // Written after the backup: a recovered PIndex gets these from the source.
    ingest_500_more(&drill.source);
    assert_exact(&node, 2500);
    let (status, body) = http(&node, "POST", "/api/index/books/ingestControl/pause", "");
    assert_eq!(status, 200, "{body}");
    let (lost, missing) = lose_the_busiest_node(&mut drill, &[1, 2]);
    (drill, node, missing, lost)
}

/// Documents d2000..d2499 written to the source.
fn ingest_500_more(source: &str) {
    let body: String = (2000..2500)
        .map(|i| format!("{{\"key\":\"d{i}\",\"doc\":{{\"title\":\"document {i}\",\"n\":{i}}}}}\n"))
        .collect();
    let (status, answer) = http(source, "POST", "/api/source/docs/bulk", &body);
    assert_eq!(status, 200, "{answer}");
}

/// The PIndexes of `books` (on any node answering) whose files came from where `from` accepts.
fn restored_from(drill: &Drill, from: impl Fn(&str) -> bool) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for address in &drill.addresses {
        let Some((_, status)) = common::try_http(address, "GET", "/api/index/books/status", "")
        else {
            continue;
        };
        for p in status["pindexes"].as_array().into_iter().flatten() {
            if p["local"]["restored_from"].as_str().is_some_and(&from) {
                found.insert(p["name"].as_str().unwrap_or("?").to_string());
            }
        }
    }
    found
}

/// Waits for automatic recovery `id` to end with every `missing` PIndex committed, then for
/// them to be readable with `docs` documents exactly.
fn automatic_recovery_ends_exact(
    drill: &Drill,
    node: &str,
    id: &str,
    missing: &BTreeSet<String>,
    docs: u64,
) {
    let ended = wait_for(
        "the automatic recovery ended",
        Duration::from_secs(90),
        || {
            let r = recovery(node, id);
            (r["status"] == "ended").then_some(r)
        },
    );
    assert_eq!(ended["progress"]["committed"], missing.len(), "{ended}");
    drill.wait_settled("the recovered PIndexes readable", Duration::from_secs(60));
    assert!(missing_of(drill).is_empty());
    assert_exact(node, docs);
}

/// Repository `local`, in the drill's scratch dir.
fn add_local_repo(drill: &Drill, node: &str) {
    let location = drill.scratch.path().join("repo");
    std::fs::create_dir_all(&location).expect("a repository dir");
    ok(&add_fs_repo(
        node,
        "local",
        &location.display().to_string(),
        &[],
    ));
}

fn recovery(node: &str, id: &str) -> Value {
    let (status, body) = http(node, "GET", &format!("/api/ctl/recovery/{id}"), "");
    assert_eq!(status, 200, "{body}");
    body
}

/// The recovery's PIndexes with their state.
fn states(r: &Value) -> Vec<(String, String)> {
    r["missing"]["books"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let name = p["pindex"].as_str().unwrap_or("?").to_string();
            (name, p["state"].as_str().unwrap_or("?").to_string())
        })
        .collect()
}

/// Waits until every PIndex of recovery `id` is in a state `done` accepts; on timeout, fails
/// showing the recovery as last read.
fn wait_states(node: &str, id: &str, what: &str, done: impl Fn(&str) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let r = recovery(node, id);
        if states(&r).iter().all(|(_, s)| done(s)) {
            return r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after 90 s waiting for {what}: {r}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn begin(node: &str, body: &str) -> (u16, Value) {
    http(node, "POST", "/api/ctl/recovery", body)
}

const FROM_LATEST: &str = r#"{"from": {"snapshot": {"repo": "local", "id": "latest"}}}"#;

#[test]
fn missing_pindexes_come_back_from_the_latest_snapshot_exactly() {
    let (mut drill, node, missing, lost) = lose_pindexes_after_a_backup(2);
    let pindex_names =
        |r: &Value| -> BTreeSet<String> { states(r).into_iter().map(|(p, _)| p).collect() };

    // The dry run says what is missing, where it is placed and where its data comes from.
    let out = ok(&ctl(
        &node,
        &[
            "--json",
            "recover",
            "--from",
            "snapshot:local/latest",
            "--dry-run",
        ],
    ));
    let dry: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(pindex_names(&dry), missing, "{dry}");
    for p in dry["missing"]["books"].as_array().expect("books") {
        assert_ne!(p["node"], lost.as_str(), "never the lost node: {p}");
        assert!(
            p["from"]
                .as_str()
                .is_some_and(|f| f.starts_with("snapshot local/s")),
            "{p}"
        );
        assert_eq!(p["rebuild"], false, "{p}");
        assert!(p["bytes"].as_u64().unwrap_or(0) > 0, "{p}");
    }
    let (_, listed) = http(&node, "GET", "/api/ctl/recovery", "");
    assert_eq!(
        listed["recoveries"],
        serde_json::json!([]),
        "a dry run writes nothing"
    );

    // Begin; a second begin answers the same recovery.
    let (status, begun) = begin(&node, FROM_LATEST);
    assert_eq!(status, 202, "{begun}");
    let id = begun["id"].as_str().expect("an id").to_string();
    assert_eq!(pindex_names(&begun), missing);
    let other = [&drill.addresses[1], &drill.addresses[2]]
        .into_iter()
        .find(|a| common::try_http(a, "GET", "/api/ping", "").is_some())
        .expect("a survivor besides node 0")
        .clone();
    let (status, again) = begin(&other, "{}");
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["id"], id.as_str(), "one recovery: {again}");
    assert_eq!(again["already_running"], true, "{again}");

    // A topology change that would move the recovering index's copies is refused.
    let survivor = drill.uuid_of(0);
    let drain = format!(r#"{{"type": "drain", "eject_nodes": ["{survivor}"]}}"#);
    let (status, refused) = http(&node, "POST", "/api/ctl/topology-change", &drain);
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["recovery"], id.as_str(), "{refused}");

    // The planner leader dies mid-recovery; the recovery goes on.
    drill.kill_planner_leader();
    let fetched = wait_states(&node, &id, "every missing PIndex fetched", |s| {
        s == "catching_up"
    });
    // Ingest is paused: the snapshot's data is all they have, and it is not readable.
    assert_eq!(missing_of(&drill), missing);
    assert!(
        fetched["progress"]["bytes_done"].as_u64() > Some(0),
        "{fetched}"
    );
    // Queries meanwhile: partial only when allowed, saying which PIndexes did not answer.
    let partial = r#"{"query": {"match_all": {}}, "size": 0, "allow_partial_results": true}"#;
    let (status, body) = http(&node, "POST", "/api/index/books/query", partial);
    assert_eq!(status, 200, "{body}");
    let unanswered: BTreeSet<String> = body["status"]["errors"]
        .as_object()
        .expect("errors")
        .keys()
        .cloned()
        .collect();
    assert_eq!(unanswered, missing, "{body}");
    let whole = r#"{"query": {"match_all": {}}, "size": 0}"#;
    let (status, body) = http(&node, "POST", "/api/index/books/query", whole);
    assert_eq!(status, 503, "{body}");

    // Ingest resumed: they catch up with what the source has beyond the snapshot, and stay
    // unreadable until committed.
    let (status, body) = http(&node, "POST", "/api/index/books/ingestControl/resume", "");
    assert_eq!(status, 200, "{body}");
    wait_states(&node, &id, "every missing PIndex recovered", |s| {
        s == "recovered"
    });
    assert_eq!(
        missing_of(&drill),
        missing,
        "not readable before the commit"
    );
    let committed = ok(&ctl(&node, &["--json", "recovery", "commit", &id]));
    let committed: Value = serde_json::from_str(&committed).expect("JSON");
    let newly: BTreeSet<String> = committed["committed"]
        .as_array()
        .expect("committed")
        .iter()
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect();
    assert_eq!(newly, missing, "{committed}");
    let again = ok(&ctl(&node, &["--json", "recovery", "commit", &id]));
    assert!(again.contains("\"committed\": []"), "idempotent: {again}");
    drill.wait_settled("the recovered PIndexes readable", Duration::from_secs(60));
    assert!(missing_of(&drill).is_empty());
    assert_exact(&node, 2500);

    // Their files came from the snapshot.
    let from_snapshot = restored_from(&drill, |f| f.contains("local"));
    assert_eq!(from_snapshot, missing);

    // End: nothing left to hand over; ending again answers the same.
    let (status, ended) = http(&node, "POST", &format!("/api/ctl/recovery/{id}/end"), "");
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["status"], "ended", "{ended}");
    assert_eq!(ended["handed_to_planner"], serde_json::json!([]), "{ended}");
    let (status, _) = http(&node, "POST", &format!("/api/ctl/recovery/{id}/end"), "");
    assert_eq!(status, 200);
    let (status, body) = http(&node, "POST", &format!("/api/ctl/recovery/{id}/abort"), "");
    assert_eq!(status, 409, "an ended recovery cannot be aborted: {body}");
    let (status, body) = begin(&node, FROM_LATEST);
    assert_eq!(
        (status, &body["missing"]),
        (200, &serde_json::json!({})),
        "{body}"
    );
}

#[test]
fn missing_pindexes_come_back_from_a_second_cluster() {
    let mut drill = Drill::start(3, 2_000);
    books_without_replicas(&drill, 8);
    let node = drill.addresses[0].clone();
    // A second cluster (one node, its own key space in the Cfg) hosting the same definition
    // over the same source.
    let replica = format!("127.0.0.1:{}", common::free_port());
    let replica_cfg = drill.etcd.cfg_spec("replica");
    let dir = drill.scratch.path().join("replica");
    let _replica = common::cluster_node(&replica_cfg, &dir, &replica, "zone-r");
    define_books(&replica, &drill.source, 8);
    ingest(&drill.source, 2000, |i| format!("document {i}"));
    assert_exact(&node, 2000);
    // Written while this cluster's ingest is paused: only the second cluster has them.
    let (status, body) = http(&node, "POST", "/api/index/books/ingestControl/pause", "");
    assert_eq!(status, 200, "{body}");
    ingest_500_more(&drill.source);
    assert_exact(&replica, 2500);
    let (_, missing) = lose_the_busiest_node(&mut drill, &[1, 2]);

    // Not a node URL, and a URL nobody answers at: refused naming the field.
    let unused = format!(
        r#"{{"from": {{"cluster": "http://127.0.0.1:{}"}}}}"#,
        common::free_port()
    );
    for bad in [r#"{"from": {"cluster": "replica"}}"#, unused.as_str()] {
        let (status, body) = begin(&node, bad);
        assert_eq!(
            (status, &body["field"]),
            (400, &serde_json::json!("from.cluster")),
            "{body}"
        );
    }

    // The dry run names the other cluster's copy of each and the bytes to fetch.
    let from = format!("cluster:http://{replica}");
    let out = ok(&ctl(
        &node,
        &["--json", "recover", "--from", &from, "--dry-run"],
    ));
    let dry: Value = serde_json::from_str(&out).expect("JSON");
    for p in dry["missing"]["books"].as_array().expect("books") {
        let f = p["from"].as_str().unwrap_or("");
        assert!(
            f.starts_with(&format!("cluster http://{replica}: books_")),
            "{p}"
        );
        assert_eq!(p["rebuild"], false, "{p}");
        assert!(p["bytes"].as_u64().unwrap_or(0) > 0, "{p}");
    }

    let body = format!(r#"{{"from": {{"cluster": "http://{replica}"}}}}"#);
    let (status, begun) = begin(&node, &body);
    assert_eq!(status, 202, "{begun}");
    let id = begun["id"].as_str().expect("an id").to_string();
    let names: BTreeSet<String> = states(&begun).into_iter().map(|(p, _)| p).collect();
    assert_eq!(names, missing);
    // The second cluster has everything the source has: a fetched copy may have nothing left
    // to catch up with.
    wait_states(&node, &id, "every missing PIndex fetched", |s| {
        s == "catching_up" || s == "recovered"
    });
    let (status, body) = http(&node, "POST", "/api/index/books/ingestControl/resume", "");
    assert_eq!(status, 200, "{body}");
    wait_states(&node, &id, "every missing PIndex recovered", |s| {
        s == "recovered"
    });
    let out = ok(&ctl(&node, &["--json", "recovery", "commit", &id]));
    assert!(out.contains("\"committed\""), "{out}");
    drill.wait_settled("the recovered PIndexes readable", Duration::from_secs(60));
    assert!(missing_of(&drill).is_empty());
    assert_exact(&node, 2500);
    let prefix = format!("cluster http://{replica}");
    let from_replica = restored_from(&drill, |f| f.starts_with(&prefix));
    assert_eq!(
        from_replica, missing,
        "their files came from the second cluster"
    );
}

#[test]
fn an_aborted_recovery_leaves_the_cluster_as_without_it() {
    let (drill, node, missing, _) = lose_pindexes_after_a_backup(0);
    let (status, begun) = begin(&node, FROM_LATEST);
    assert_eq!(status, 202, "{begun}");
    let id = begun["id"].as_str().expect("an id").to_string();
    wait_for("a PIndex fetched", Duration::from_secs(60), || {
        let r = recovery(&node, &id);
        states(&r)
            .iter()
            .any(|(_, s)| s == "catching_up")
            .then_some(())
    });

    let out = ok(&ctl(&node, &["--json", "recovery", "abort", &id]));
    let aborted: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(aborted["status"], "aborted", "{aborted}");
    let (status, body) = http(&node, "POST", &format!("/api/ctl/recovery/{id}/abort"), "");
    assert_eq!(status, 200, "aborting again is fine: {body}");
    let (status, body) = http(&node, "POST", &format!("/api/ctl/recovery/{id}/commit"), "");
    assert_eq!(status, 200, "nothing recovered to commit: {body}");
    wait_for("everything undone", Duration::from_secs(60), || {
        let r = recovery(&node, &id);
        (r["progress"]["undo_pending"] == 0).then_some(())
    });

    // As without the recovery: resumed, the re-placed copies rebuild from the source.
    let (status, body) = http(&node, "POST", "/api/index/books/ingestControl/resume", "");
    assert_eq!(status, 200, "{body}");
    drill.wait_settled("the missing PIndexes rebuilt", Duration::from_secs(60));
    assert!(missing_of(&drill).is_empty());
    assert_exact(&node, 2500);
    for address in &drill.addresses {
        let Some((_, status)) = common::try_http(address, "GET", "/api/index/books/status", "")
        else {
            continue;
        };
        for p in status["pindexes"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap_or("?");
            if missing.contains(name) {
                assert!(
                    p["local"]["restored_from"].is_null(),
                    "rebuilt, not fetched: {p}"
                );
            }
        }
    }
}

#[test]
fn the_automatic_recovery_brings_missing_pindexes_back_by_itself() {
    let mut drill = Drill::start(3, 2_000);
    let node = drill.addresses[0].clone();
    add_local_repo(&drill, &node);
    let (status, body) = http(&node, "PUT", "/api/ctl/recovery/auto", FROM_LATEST);
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(
        &node,
        "PUT",
        "/api/ctl/recovery/auto",
        r#"{"from": {"snapshot": {"repo": "nope", "id": "latest"}}}"#,
    );
    assert_eq!(
        (status, &body["field"]),
        (404, &serde_json::json!("from.snapshot.repo")),
        "{body}"
    );
    let (_, shown) = http(&node, "GET", "/api/ctl/recovery/auto", "");
    assert_eq!(shown["from"]["snapshot"]["repo"], "local", "{shown}");
    books_without_replicas(&drill, 8);
    ingest(&drill.source, 2000, |i| format!("document {i}"));
    assert_exact(&node, 2000);
    backup_now(&node, "local");
    let (status, body) = http(&node, "POST", "/api/index/books/ingestControl/pause", "");
    assert_eq!(status, 200, "{body}");
    let (_, missing) = lose_the_busiest_node(&mut drill, &[1, 2]);
    // Begun by the cluster itself, with the same visibility as an operator's.
    let begun = wait_for("an automatic recovery", Duration::from_secs(30), || {
        let (_, listed) = http(&node, "GET", "/api/ctl/recovery", "");
        listed["recoveries"].as_array()?.first().cloned()
    });
    assert_eq!(begun["auto"], true, "begun by the setting: {begun}");
    let health = drill.health();
    let shown = health["recovering"]
        .as_array()
        .and_then(|r| r.first())
        .cloned();
    assert!(
        shown.is_some_and(|r| r["id"] == begun["id"] && r["auto"] == true)
            || recovery(&node, begun["id"].as_str().unwrap_or("?"))["status"] != "running",
        "health names the running recovery: {health}"
    );
    let id = begun["id"].as_str().expect("an id").to_string();
    let names: BTreeSet<String> = states(&begun).into_iter().map(|(p, _)| p).collect();
    assert_eq!(names, missing);
    let (status, body) = http(&node, "POST", "/api/index/books/ingestControl/resume", "");
    assert_eq!(status, 200, "{body}");
    automatic_recovery_ends_exact(&drill, &node, &id, &missing, 2000);
    let (status, body) = http(&node, "PUT", "/api/ctl/recovery/auto", r#"{"from": null}"#);
    assert_eq!((status, &body["from"]), (200, &Value::Null), "{body}");
}

#[test]
fn an_index_recovers_by_its_own_setting_from_the_newest_snapshot() {
    let mut drill = Drill::start(3, 2_000);
    let node = drill.addresses[0].clone();
    add_local_repo(&drill, &node);
    // Settings that cannot work are refused naming the field, and nothing is defined.
    for (more, status, field) in [
        (
            r#", "recovery": {"auto_from": {"snapshot": "newest"}}"#,
            400,
            "recovery.auto_from.snapshot",
        ),
        (
            r#", "recovery": {"auto_from": {"snapshot": {"repo": "nope", "id": "latest"}}}"#,
            404,
            "recovery.auto_from.snapshot.repo",
        ),
        (
            r#", "recovery": {"auto_from": {"cluster": "replica:1"}}"#,
            400,
            "recovery.auto_from.cluster",
        ),
    ] {
        let (got, body) = define_books_with(&node, &drill.source, 8, more);
        assert_eq!(
            (got, &body["field"]),
            (status, &serde_json::json!(field)),
            "{body}"
        );
    }
    let (status, _) = http(&node, "GET", "/api/index/books", "");
    assert_eq!(status, 404);

    // No cluster setting: the index's own.
    let own = r#", "recovery": {"auto_from": {"snapshot": "latest"}}"#;
    let (status, body) = define_books_with(&node, &drill.source, 8, own);
    assert_eq!(status, 200, "{body}");
    drill.wait_green("the index built", Duration::from_secs(60));
    let (_, shown) = http(&node, "GET", "/api/index/books", "");
    assert_eq!(
        shown["index"]["recovery"]["auto_from"]["snapshot"], "latest",
        "{shown}"
    );
    let (_, auto) = http(&node, "GET", "/api/ctl/recovery/auto", "");
    assert_eq!(auto["from"], Value::Null, "{auto}");
    ingest(&drill.source, 2000, |i| format!("document {i}"));
    assert_exact(&node, 2000);
    backup_now(&node, "local");
    let (status, body) = http(&node, "POST", "/api/index/books/ingestControl/pause", "");
    assert_eq!(status, 200, "{body}");
    let (_, missing) = lose_the_busiest_node(&mut drill, &[1, 2]);
    let begun = wait_for("an automatic recovery", Duration::from_secs(30), || {
        let (_, listed) = http(&node, "GET", "/api/ctl/recovery", "");
        listed["recoveries"].as_array()?.first().cloned()
    });
    assert_eq!(begun["auto"], true, "{begun}");
    assert_eq!(begun["from"]["snapshot"]["repo"], "local", "{begun}");
    let id = begun["id"].as_str().expect("an id").to_string();
    let (status, body) = http(&node, "POST", "/api/index/books/ingestControl/resume", "");
    assert_eq!(status, 200, "{body}");
    automatic_recovery_ends_exact(&drill, &node, &id, &missing, 2000);
}
