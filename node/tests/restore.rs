//! Restore onto another cluster: a snapshot of a three-node cluster restored into a new
//! cluster of two nodes (other node names, a new etcd) answers the same queries with the same
//! hits, scores and counts; its PIndexes are downloaded, not rebuilt; `--dry-run` says so
//! first; an existing index is refused unless renamed or replaced; `--missing-only` skips it.
//! Restored into another partitioning, the saved PIndexes are regrouped by source partition
//! (nothing streamed again from the source) with the same answers.

mod common;

use std::time::Duration;

use common::backup::*;
use common::drill::*;
use common::{http, wait_for};

const QUERIES: &[&str] = &[
    r#"{"query": {"match": {"field": "title", "query": "document"}}, "size": 10}"#,
    r#"{"query": {"match": {"field": "title", "query": "rare words"}}, "size": 10}"#,
    r#"{"query": {"range": {"field": "n", "gte": 100, "lt": 400}}, "size": 10}"#,
];

/// Per query: total hits, the top 10 scores, and the ids of the top 10 above the lowest of
/// those scores. (Hits tied at the cut may differ between two copies of a PIndex: within one,
/// ties are in the order of its segments, which each copy builds on its own.)
fn answers(node: &str, index: &str) -> Vec<(u64, Vec<String>, Vec<String>)> {
    QUERIES
        .iter()
        .map(|q| {
            let (status, body) = http(node, "POST", &format!("/api/index/{index}/query"), q);
            assert_eq!(status, 200, "{body}");
            let hits = body["hits"].as_array().unwrap();
            let scores: Vec<String> = hits.iter().map(|h| h["score"].to_string()).collect();
            let cut = hits
                .last()
                .map(|h| h["score"].as_f64().unwrap())
                .unwrap_or(0.0);
            let above: Vec<String> = hits
                .iter()
                .filter(|h| h["score"].as_f64().unwrap() > cut)
                .map(|h| h["id"].as_str().unwrap().to_string())
                .collect();
            (body["total_hits"].as_u64().unwrap(), scores, above)
        })
        .collect()
}

/// Skewed words, so scores depend on index-wide statistics.
fn skewed(i: usize) -> String {
    let extra = if i.is_multiple_of(97) {
        " rare words"
    } else if i.is_multiple_of(5) {
        " words"
    } else {
        ""
    };
    format!("document {i}{extra}{}", " more".repeat(i % 11))
}

#[test]
fn a_snapshot_restores_onto_a_cluster_of_another_size_with_the_same_answers() {
    let mut old = Drill::start(3, 60_000).with_index();
    ingest(&old.source, 3000, skewed);
    assert_exact(&old.addresses[0], 3000);
    let before = answers(&old.addresses[0], "books");

    let repo = tempfile::tempdir().unwrap();
    let location = repo.path().display().to_string();
    let node = old.addresses[0].clone();
    ok(&add_fs_repo(&node, "vault", &location, &[]));
    let snapshot = backup_now(&node, "vault");

    // The old cluster is gone: every node and etcd. Its source stays (the data of record).
    for i in 0..3 {
        old.kill(i);
    }
    old.etcd.kill(0);

    let new = Drill::start(2, 60_000);
    let node = new.addresses[0].clone();
    ok(&ctl(
        &node,
        &[
            "backup",
            "repo",
            "add",
            "vault",
            "--type",
            "fs",
            "--location",
            &location,
            "--readonly",
        ],
    ));
    let dry = ok(&ctl(
        &node,
        &[
            "restore",
            "--repo",
            "vault",
            "--snapshot",
            &snapshot,
            "--dry-run",
        ],
    ));
    let dry: serde_json::Value = serde_json::from_str(&dry).unwrap();
    let index = &dry["indexes"][0];
    assert_eq!(index["pindexes_downloaded"], 16, "{dry}");
    assert_eq!(index["pindexes_rebuilt"], 0, "{dry}");
    assert!(index["download_bytes"].as_u64().unwrap() > 0, "{dry}");
    let (status, _) = http(&node, "GET", "/api/index/books", "");
    assert_eq!(status, 404, "a dry run changes nothing");

    ok(&ctl(
        &node,
        &[
            "restore",
            "--repo",
            "vault",
            "--snapshot",
            &snapshot,
            "--wait",
        ],
    ));
    assert_exact(&node, 3000);
    assert_eq!(
        answers(&node, "books"),
        before,
        "same hits, scores and counts"
    );
    assert_eq!(
        answers(&new.addresses[1], "books"),
        before,
        "from either node"
    );

    // Every copy's files came from the snapshot.
    let mut restored = 0;
    for address in &new.addresses {
        let (_, status) = http(address, "GET", "/api/index/books/status", "");
        for p in status["pindexes"].as_array().unwrap() {
            if p["local"].is_object() {
                assert!(
                    p["local"]["restored_from"]
                        .as_str()
                        .is_some_and(|s| s.contains(&snapshot)),
                    "{p}"
                );
                restored += 1;
            }
        }
    }
    assert!(restored >= 16, "{restored} local copies seen restored");

    // The same name again: refused, unless renamed; --missing-only skips it.
    let out = ctl(
        &node,
        &["restore", "--repo", "vault", "--snapshot", &snapshot],
    );
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(&ctl(
        &node,
        &[
            "restore",
            "--repo",
            "vault",
            "--snapshot",
            &snapshot,
            "--missing-only",
        ],
    ));
    ok(&ctl(
        &node,
        &[
            "restore",
            "--repo",
            "vault",
            "--snapshot",
            &snapshot,
            "--rename",
            "books=books2",
            "--wait",
        ],
    ));
    assert_eq!(
        answers(&node, "books2"),
        before,
        "the renamed copy answers the same"
    );
    new.wait_green("both restored indexes serving", Duration::from_secs(60));
}

#[test]
fn after_losing_everything_sources_and_indexes_come_back_from_the_snapshot() {
    let old = Drill::start(3, 60_000).with_index();
    ingest(&old.source, 2000, |i| {
        format!("document {i}{}", " more".repeat(i % 7))
    });
    // Overwrites and deletes are history too.
    ingest(&old.source, 100, |i| format!("revised {i}"));
    for i in 100..110 {
        let (status, answer) = http(
            &old.source,
            "DELETE",
            &format!("/api/source/docs/doc/d{i}"),
            "",
        );
        assert_eq!(status, 200, "{answer}");
    }
    assert_exact(&old.addresses[0], 1990);
    let before = answers(&old.addresses[0], "books");

    // An encrypted repository (the passphrase in a file every node reads).
    let repo = tempfile::tempdir().unwrap();
    let location = repo.path().display().to_string();
    let keys = tempfile::tempdir().unwrap();
    let passphrase = keys.path().join("passphrase").display().to_string();
    let wrong = keys.path().join("wrong").display().to_string();
    std::fs::write(&passphrase, "tessera drill passphrase\n").unwrap();
    std::fs::write(&wrong, "not the passphrase\n").unwrap();
    let add = |node: &str, key: Option<&str>| match key {
        Some(key) => add_fs_repo(node, "vault", &location, &["--passphrase-file", key]),
        None => add_fs_repo(node, "vault", &location, &[]),
    };
    let node = old.addresses[0].clone();
    ok(&add(&node, Some(&passphrase)));
    let snapshot = backup_now(&node, "vault");
    // Nothing readable at rest: no document text or PIndex name in any stored file.
    let stored = files_under(repo.path());
    assert!(!stored.is_empty());
    for path in stored {
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).to_string();
        assert!(
            !text.contains("revised") && !text.contains("books_0"),
            "{} is readable",
            path.display()
        );
    }
    // Everything is lost: nodes, etcd, and the source with its logs.
    drop(old);

    let new = Drill::start(2, 60_000);
    let node = new.addresses[0].clone();
    let source_url = format!("http://{}", new.source);
    let out = add(&node, Some(&wrong));
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(3),
        "a wrong passphrase is refused: {said}"
    );
    assert!(said.contains("does not match"), "{said}");
    let out = add(&node, None);
    assert_eq!(
        out.status.code(),
        Some(3),
        "an encrypted repository without its passphrase is refused"
    );
    ok(&add(&node, Some(&passphrase)));
    let dry = ok(&ctl(
        &node,
        &[
            "restore",
            "--repo",
            "vault",
            "--snapshot",
            &snapshot,
            "--restore-sources",
            "--source-url",
            &source_url,
            "--dry-run",
        ],
    ));
    let dry: serde_json::Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(dry["indexes"][0]["pindexes_downloaded"], 16, "{dry}");
    ok(&ctl(
        &node,
        &[
            "restore",
            "--repo",
            "vault",
            "--snapshot",
            &snapshot,
            "--restore-sources",
            "--source-url",
            &source_url,
            "--wait",
        ],
    ));
    assert_exact(&node, 1990);
    assert_eq!(
        answers(&node, "books"),
        before,
        "same hits, scores and counts"
    );
    let revised = r#"{"query": {"match": {"field": "title", "query": "revised"}}, "size": 0}"#;
    let (_, found) = http(&node, "POST", "/api/index/books/query", revised);
    assert_eq!(found["total_hits"], 100, "overwrites restored: {found}");

    // The restored source takes new writes, and the restored index follows them.
    let (status, answer) = http(
        &new.source,
        "POST",
        "/api/source/docs/bulk",
        "{\"key\":\"after\",\"doc\":{\"title\":\"after the restore\",\"n\":1}}\n",
    );
    assert_eq!(status, 200, "{answer}");
    assert_exact(&node, 1991);
}

#[test]
fn a_restore_goes_on_when_a_node_dies_under_it() {
    let mut old = Drill::start(3, 60_000).with_index();
    ingest(&old.source, 3000, |i| format!("document {i}"));
    assert_exact(&old.addresses[0], 3000);
    let repo = tempfile::tempdir().unwrap();
    let location = repo.path().display().to_string();
    let node = old.addresses[0].clone();
    ok(&add_fs_repo(&node, "vault", &location, &[]));
    let snapshot = backup_now(&node, "vault");
    let source = old.source.clone();
    drop(std::mem::take(&mut old.nodes));

    // A new cluster whose planner fails a dead node over after 2 s.
    let mut new = Drill::start(3, 2_000);
    let node = new.addresses[0].clone();
    ok(&add_fs_repo(&node, "vault", &location, &[]));
    let url = format!("http://{source}");
    ok(&ctl(
        &node,
        &[
            "restore",
            "--repo",
            "vault",
            "--snapshot",
            &snapshot,
            "--source-url",
            &url,
        ],
    ));
    // A node dies while the copies are being fetched; the survivors take its copies over and
    // fetch them too.
    new.kill(2);
    assert_exact(&node, 3000);
    new.wait_settled(
        "the restored index on the two survivors",
        Duration::from_secs(120),
    );
    assert_exact(&new.addresses[1], 3000);
}

/// Every document of `index` searchable from `node`, exactly.
fn assert_exact_in(node: &str, index: &str, written: u64) {
    let body = r#"{"query": {"match_all": {}}, "size": 0, "consistency": {"level": "at_plus"}, "timeout_ms": 30000}"#;
    let (status, answer) = http(node, "POST", &format!("/api/index/{index}/query"), body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["total_hits"].as_u64(), Some(written), "{answer}");
}

#[test]
fn a_restore_into_another_partitioning_regroups_the_saved_pindexes_with_the_same_answers() {
    // Saved: 64 source partitions in 16 PIndexes of 4.
    let drill = Drill::start(3, 60_000).with_index();
    ingest(&drill.source, 3000, skewed);
    assert_exact(&drill.addresses[0], 3000);
    let before = answers(&drill.addresses[0], "books");
    let repo = tempfile::tempdir().unwrap();
    let location = repo.path().display().to_string();
    let node = drill.addresses[0].clone();
    ok(&add_fs_repo(&node, "vault", &location, &[]));
    let snapshot = backup_now(&node, "vault");

    // 5 PIndexes of 13 or 12 partitions: whole saved PIndexes merged, and saved ones split
    // across the new boundaries. 32 PIndexes of 2: every saved PIndex split in two.
    let layouts: [(&str, &[&str], usize, u64); 2] = [
        ("five", &["--index-partitions", "5"], 5, 1),
        (
            "pairs",
            &["--max-partitions-per-pindex", "2", "--replicas", "0"],
            32,
            0,
        ),
    ];
    for (name, flags, pindexes, replicas) in layouts {
        let rename = format!("books={name}");
        let mut args = vec![
            "restore",
            "--repo",
            "vault",
            "--snapshot",
            &snapshot,
            "--rename",
            &rename,
        ];
        args.extend_from_slice(flags);
        let mut dry = args.clone();
        dry.push("--dry-run");
        let dry: serde_json::Value = serde_json::from_str(&ok(&ctl(&node, &dry))).unwrap();
        let index = &dry["indexes"][0];
        assert_eq!(index["pindexes_regrouped"], pindexes, "{dry}");
        assert_eq!(index["pindexes_downloaded"], 0, "{dry}");
        assert_eq!(index["pindexes_rebuilt"], 0, "{dry}");
        for p in index["pindexes"].as_array().unwrap() {
            assert!(p["restored_as"].as_str().unwrap().starts_with(name), "{p}");
            assert!(!p["from"].as_array().unwrap().is_empty(), "{p}");
        }
        let (status, _) = http(&node, "GET", &format!("/api/index/{name}"), "");
        assert_eq!(status, 404, "a dry run changes nothing");

        args.push("--wait");
        ok(&ctl(&node, &args));
        assert_exact_in(&node, name, 3000);
        assert_eq!(
            answers(&node, name),
            before,
            "{name}: same hits, scores and counts"
        );
        let (_, def) = http(&node, "GET", &format!("/api/index/{name}"), "");
        assert_eq!(def["index"]["plan"]["replicas"], replicas, "{def}");

        // Every copy was regrouped from the snapshot, and its feed resumed from the saved
        // checkpoints: nothing was streamed from the source again.
        let mut regrouped = 0;
        for address in &drill.addresses {
            let (_, status) = http(address, "GET", &format!("/api/index/{name}/status"), "");
            let listed = status["pindexes"].as_array().unwrap();
            assert_eq!(listed.len(), pindexes, "{status}");
            for p in listed.iter().filter(|p| p["local"].is_object()) {
                let local = &p["local"];
                assert!(
                    local["restored_from"]
                        .as_str()
                        .is_some_and(|s| s.contains(&snapshot) && s.contains("regrouped")),
                    "{p}"
                );
                assert_eq!(local["feed"]["applied"], 0, "streamed again: {p}");
                regrouped += 1;
            }
        }
        assert!(
            regrouped >= pindexes,
            "{regrouped} local copies seen regrouped"
        );
    }
    // An update of a restored index keeps its snapshot: repartitioned again by a PUT, its new
    // PIndexes are regrouped from the snapshot too.
    let (_, current) = http(&node, "GET", "/api/index/five", "");
    let mut update = current["index"].clone();
    let uuid = update["uuid"].clone();
    for field in ["name", "uuid", "format_version", "controls", "restore"] {
        update.as_object_mut().unwrap().remove(field);
    }
    update["plan"] = serde_json::json!({"index_partitions": 4, "replicas": 1});
    update["prev_index_uuid"] = uuid;
    let (status, answer) = http(&node, "PUT", "/api/index/five", &update.to_string());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["index"]["restore"]["snapshot"],
        snapshot.as_str(),
        "{answer}"
    );
    wait_for(
        "five planned in 4 PIndexes",
        Duration::from_secs(60),
        || {
            let (_, status) = http(&node, "GET", "/api/index/five/status", "");
            (status["pindexes"].as_array().map(Vec::len) == Some(4)).then_some(())
        },
    );
    drill.wait_green("five in 4 PIndexes serving", Duration::from_secs(120));
    assert_exact_in(&node, "five", 3000);
    assert_eq!(
        answers(&node, "five"),
        before,
        "five in 4: the same answers"
    );
    let (_, status) = http(&node, "GET", "/api/index/five/status", "");
    let listed = status["pindexes"].as_array().unwrap();
    assert_eq!(listed.len(), 4, "{status}");
    for p in listed.iter().filter(|p| p["local"].is_object()) {
        let from = p["local"]["restored_from"].as_str().unwrap_or_default();
        assert!(from.contains("regrouped"), "{p}");
    }

    // The regrouped indexes follow new writes like any other.
    let (status, answer) = http(
        &drill.source,
        "POST",
        "/api/source/docs/bulk",
        "{\"key\":\"after\",\"doc\":{\"title\":\"after the restore\",\"n\":1}}\n",
    );
    assert_eq!(status, 200, "{answer}");
    assert_exact_in(&node, "five", 3001);
    assert_exact_in(&node, "pairs", 3001);
    drill.wait_green("the regrouped indexes serving", Duration::from_secs(60));
}
