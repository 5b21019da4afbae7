//! Backup on a cluster of real processes (etcd, a standalone source, three nodes) into a real
//! S3-compatible server and into a directory: online under ingest and queries, incremental by
//! content hash, verified (a flipped byte named by `verify --deep`), a second writer refused,
//! and a job that goes on when a node dies under it or when the planner leader is killed.
//! Repositories are held to the nodes' egress rules on every node, and a hostile one crashes
//! none.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::backup::*;
use common::drill::*;
use common::{http, wait_for};
use tessera_tests::s3::{S3Server, ACCESS_KEY, SECRET_KEY};

#[test]
fn online_incremental_backups_to_s3_are_whole_and_a_second_writer_is_refused() {
    let drill = Drill::start(3, 60_000).with_index();
    let nodes = Arc::new(Mutex::new(drill.addresses.clone()));
    let load = Load::start(drill.source.clone(), nodes);
    let node = drill.addresses[0].clone();
    wait_for("some documents in", Duration::from_secs(30), || {
        (load.written.load(std::sync::atomic::Ordering::Relaxed) >= 2000).then_some(())
    });

    let s3 = S3Server::start("backups");
    let credentials = drill.scratch.path().join("s3-credentials");
    std::fs::write(
        &credentials,
        format!("access_key_id = {ACCESS_KEY}\nsecret_access_key = {SECRET_KEY}\n"),
    )
    .unwrap();
    let endpoint = s3.endpoint();
    let credentials = credentials.display().to_string();
    ok(&ctl(
        &node,
        &[
            "backup",
            "repo",
            "add",
            "remote",
            "--type",
            "s3",
            "--location",
            "backups/tessera",
            "--endpoint",
            &endpoint,
            "--allow-http",
            "--credentials-file",
            &credentials,
        ],
    ));
    let listed = ok(&ctl(&node, &["backup", "repo", "list"]));
    assert!(
        listed.contains("remote") && listed.contains("s3"),
        "{listed}"
    );

    // Online, under ingest and queries.
    let first = backup_now(&node, "remote");
    let first_job = job(&node, &first);
    assert_eq!(first_job["status"], "completed", "{first_job}");
    assert_eq!(first_job["progress"]["pindexes_done"], 16, "{first_job}");
    let first_bytes = first_job["progress"]["bytes_uploaded"].as_u64().unwrap();
    assert!(first_bytes > 0);
    let (written, queries, failures) = load.stop();
    assert!(
        failures.is_empty(),
        "{} of {queries} queries failed during the backup: {failures:?}",
        failures.len()
    );
    assert_exact(&node, written);

    // What the snapshot holds: the definition, 16 PIndexes, each with its checkpoints.
    let (status, shown) = http(
        &node,
        "GET",
        &format!("/api/backup/repos/remote/snapshots/{first}"),
        "",
    );
    assert_eq!(status, 200, "{shown}");
    let snapshot = &shown["snapshot"];
    assert!(snapshot["indexes"]["books"].is_object(), "{snapshot}");
    assert_eq!(
        snapshot["sources"][0]["name"], "docs",
        "the source's log is saved too"
    );
    let pindexes = snapshot["pindexes"].as_array().unwrap();
    assert_eq!(pindexes.len(), 16);
    let saved_docs: u64 = pindexes.iter().map(|p| p["docs"].as_u64().unwrap()).sum();
    assert!(saved_docs >= 2000, "{saved_docs}");
    assert!(pindexes
        .iter()
        .all(|p| p["checkpoints"].as_object().is_some_and(|c| !c.is_empty())));

    // Incremental: a later backup sends only the files whose content no snapshot holds yet
    // (a merge finishing in between is new content too), and after 20 new documents, little.
    let second = backup_now(&node, "remote");
    let body: String = (0..20)
        .map(|i| format!("{{\"key\":\"late{i}\",\"doc\":{{\"title\":\"late {i}\",\"n\":{i}}}}}\n"))
        .collect();
    let (status, answer) = http(&drill.source, "POST", "/api/source/docs/bulk", &body);
    assert_eq!(status, 200, "{answer}");
    assert_exact(&node, written + 20);
    let third = backup_now(&node, "remote");
    let hashes = |id: &str| -> std::collections::BTreeSet<String> {
        let (_, shown) = http(
            &node,
            "GET",
            &format!("/api/backup/repos/remote/snapshots/{id}"),
            "",
        );
        // PIndex files and the source's log chunks alike.
        let snapshot = &shown["snapshot"];
        let parts = snapshot["pindexes"].as_array().unwrap().iter();
        parts
            .chain(snapshot["sources"].as_array().unwrap().iter())
            .flat_map(|p| p["files"].as_array().unwrap().iter())
            .map(|f| f["hash"].as_str().unwrap().to_string())
            .collect()
    };
    for (earlier, later) in [(vec![&first], &second), (vec![&first, &second], &third)] {
        let known: std::collections::BTreeSet<String> =
            earlier.iter().flat_map(|id| hashes(id)).collect();
        let new = hashes(later).difference(&known).count() as u64;
        let later_job = job(&node, later);
        assert_eq!(
            later_job["progress"]["files_uploaded"].as_u64(),
            Some(new),
            "only files of new content are sent: {later_job}"
        );
    }
    let second_total = job(&node, &second)["progress"]["bytes_total"]
        .as_u64()
        .unwrap();
    let third_bytes = job(&node, &third)["progress"]["bytes_uploaded"]
        .as_u64()
        .unwrap();
    assert!(
        third_bytes > 0 && third_bytes * 2 < second_total,
        "a backup after 20 new documents sent {third_bytes} bytes of a {second_total}-byte snapshot"
    );

    let verified = ok(&ctl(&node, &["backup", "verify", &first, "--deep"]));
    assert!(verified.contains("\"ok\": true"), "{verified}");
    let listed = ok(&ctl(&node, &["backup", "list", "--repo", "remote"]));
    for id in [&first, &second, &third] {
        assert!(listed.contains(id.as_str()), "{listed}");
    }

    // Another cluster writing the same repository (this test, through the same library) is
    // refused while it holds the lock, and the repository is left as it was.
    let (_, def) = http(&node, "GET", "/api/backup/repos/remote", "");
    let def: tessera_cfg::schema::RepoDef = serde_json::from_value(def["repo"].clone()).unwrap();
    let repo = tessera_backup::Repository::open(&def, &Default::default()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let other = rt.block_on(repo.lock("other/0000", "backup x")).unwrap();
    let out = ctl(&node, &["backup", "create", "--repo", "remote", "--wait"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("locked by cluster `other/0000`"), "{said}");
    rt.block_on(other.release()).unwrap();
    let ids = rt.block_on(repo.snapshot_ids()).unwrap();
    assert_eq!(
        ids.len(),
        3,
        "the refused backup wrote no snapshot: {ids:?}"
    );
}

#[test]
fn a_flipped_byte_is_named_and_delete_and_gc_keep_what_is_used() {
    let drill = Drill::start(2, 60_000).with_index();
    let node = drill.addresses[0].clone();
    ingest(&drill.source, 500, |i| format!("document {i}"));
    assert_exact(&node, 500);
    let repo_dir = drill.scratch.path().join("repo");
    std::fs::create_dir_all(&repo_dir).unwrap();
    ok(&add_fs_repo(
        &node,
        "local",
        &repo_dir.display().to_string(),
        &[],
    ));
    let one = backup_now(&node, "local");
    let two = backup_now(&node, "local");

    // Flip one byte of the largest blob both snapshots use (the second may hold blobs the
    // first does not: segments merged or committed in between).
    let (_, def) = http(&node, "GET", "/api/backup/repos/local", "");
    let def: tessera_cfg::schema::RepoDef = serde_json::from_value(def["repo"].clone()).unwrap();
    let policy = tessera_backup::RepoPolicy::under(repo_dir.clone());
    let repo = tessera_backup::Repository::open(&def, &policy).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let used_by = |id: &str| -> std::collections::BTreeSet<String> {
        let manifest = rt.block_on(repo.manifest(id)).unwrap();
        manifest.blobs().keys().map(|h| h.to_string()).collect()
    };
    let shared: std::collections::BTreeSet<String> = used_by(&one)
        .intersection(&used_by(&two))
        .cloned()
        .collect();
    let mut blobs: Vec<std::path::PathBuf> = files_under(&repo_dir.join("blobs"))
        .into_iter()
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().to_string());
            name.and_then(|n| n.split('.').next().map(str::to_string))
                .is_some_and(|h| shared.contains(&h))
        })
        .collect();
    assert!(!blobs.is_empty(), "the two snapshots share blobs");
    blobs.sort_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0));
    let victim = blobs.last().unwrap().clone();
    let mut bytes = std::fs::read(&victim).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0x01;
    std::fs::write(&victim, bytes).unwrap();
    let hash = victim
        .file_name()
        .unwrap()
        .to_string_lossy()
        .split('.')
        .next()
        .unwrap()
        .to_string();

    ok(&ctl(&node, &["backup", "verify", &one]));
    let out = ctl(&node, &["backup", "verify", &one, "--deep"]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "verify --deep exits 7 on a damaged snapshot"
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&hash) && said.contains("books_"),
        "names the file: {said}"
    );

    // A restore does not take the damaged blob: the PIndex whose file it is fails to fetch,
    // naming the blob, and is never opened from it.
    ok(&ctl(
        &node,
        &[
            "restore",
            "--repo",
            "local",
            "--snapshot",
            &two,
            "--rename",
            "books=damaged",
        ],
    ));
    wait_for(
        "the damaged blob named by a restored PIndex",
        Duration::from_secs(60),
        || {
            let (_, status) = http(&node, "GET", "/api/index/damaged/status", "");
            status.to_string().contains(&hash).then_some(())
        },
    );
    ok(&ctl(&node, &["index", "delete", "damaged"]));

    // Deleting one snapshot keeps every blob the other uses.
    ok(&ctl(&node, &["backup", "delete", &one]));
    let out = ctl(&node, &["backup", "verify", &two]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gc = ok(&ctl(&node, &["backup", "gc", "--repo", "local"]));
    assert!(gc.contains("\"blobs_removed\": 0"), "{gc}");
    let out = ctl(&node, &["backup", "show", &one]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "a deleted snapshot is not found"
    );
}

/// Three nodes holding 3000 documents; a backup asked of node 0, slow enough (a small rate
/// per node) that the kill of node `victim` lands once two PIndexes are saved. Returns the
/// drill, the ended job as a survivor tells it, that survivor's address and the dead node's
/// uuid; the snapshot is checked whole and exact.
fn backup_with_a_node_killed_midway(victim: usize) -> (Drill, serde_json::Value, String, String) {
    let mut drill = Drill::start(3, 60_000).with_index();
    ingest(&drill.source, 3000, |i| {
        format!("document {i} of the drill")
    });
    let asked = drill.addresses[0].clone();
    assert_exact(&asked, 3000);
    let location = drill.scratch.path().join("repo");
    std::fs::create_dir_all(&location).unwrap();
    ok(&add_fs_repo(
        &asked,
        "local",
        &location.display().to_string(),
        &[],
    ));
    let (status, started) = http(
        &asked,
        "POST",
        "/api/backup/repos/local/snapshots",
        r#"{"rate_limit_mb": 0.05}"#,
    );
    assert_eq!(status, 202, "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    wait_for("the backup midway", Duration::from_secs(60), || {
        let p = &job(&asked, &id)["progress"];
        (p["pindexes_done"].as_u64().unwrap_or(0) >= 2).then_some(())
    });
    let dead = drill.uuid_of(victim);
    drill.kill(victim);
    let survivor = drill.addresses[if victim == 0 { 1 } else { 0 }].clone();
    let ended = wait_job(&survivor, &id, Duration::from_secs(180));
    assert_eq!(ended["status"], "completed", "{ended}");
    // The job began at the source's seqs after the 3000 writes; every copy saved reached them.
    let seqs = ended["source_seqs"]["docs"]
        .as_object()
        .expect("the source's seqs");
    assert_eq!(seqs.len(), 64, "{ended}");
    let writes: u64 = seqs.values().filter_map(|s| s.as_u64()).sum();
    assert_eq!(writes, 3000, "{ended}");
    let verified = ok(&ctl(&survivor, &["backup", "verify", &id, "--deep"]));
    assert!(verified.contains("\"ok\": true"), "{verified}");
    assert_eq!(
        snapshot_docs(&survivor, "local", &id),
        3000,
        "every document in the snapshot exactly once"
    );
    (drill, ended, survivor, dead)
}

#[test]
fn a_backup_goes_on_when_a_node_dies_under_it() {
    // The owner dies: another node takes the job over and finishes it from what is staged.
    let (_drill, ended, _, owner) = backup_with_a_node_killed_midway(0);
    assert_ne!(ended["owner"], owner.as_str(), "{ended}");
}

#[test]
fn a_backup_reads_another_copy_when_a_hosting_node_dies_mid_save() {
    // A node holding copies (not the job's owner) dies: what it was saving, and what was to
    // be read from it, is read from the other copies.
    let (drill, ended, _, _) = backup_with_a_node_killed_midway(2);
    assert_eq!(ended["owner"], drill.uuid_of(0).as_str(), "{ended}");
}

#[test]
fn a_planner_leader_killed_mid_backup_and_mid_restore_changes_nothing() {
    // Standalone planners: the leader can be killed without killing a node.
    let mut drill = Drill::start_with(3, 60_000, 3).with_index();
    ingest(&drill.source, 3000, |i| {
        format!("document {i} of the drill")
    });
    let node = drill.addresses[0].clone();
    assert_exact(&node, 3000);
    let location = drill.scratch.path().join("repo");
    std::fs::create_dir_all(&location).unwrap();
    ok(&add_fs_repo(
        &node,
        "local",
        &location.display().to_string(),
        &[],
    ));

    // Mid-backup: the job is its owner node's, so it goes on to a whole snapshot.
    let (status, started) = http(
        &node,
        "POST",
        "/api/backup/repos/local/snapshots",
        r#"{"rate_limit_mb": 0.05}"#,
    );
    assert_eq!(status, 202, "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    wait_for("the backup midway", Duration::from_secs(60), || {
        let p = &job(&node, &id)["progress"];
        (p["pindexes_done"].as_u64().unwrap_or(0) >= 2).then_some(())
    });
    let first = drill.kill_planner_leader();
    let ended = wait_job(&node, &id, Duration::from_secs(180));
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(snapshot_docs(&node, "local", &id), 3000);
    let verified = ok(&ctl(&node, &["backup", "verify", &id, "--deep"]));
    assert!(verified.contains("\"ok\": true"), "{verified}");
    wait_for("another planner leading", Duration::from_secs(30), || {
        drill.planner_leader().filter(|l| *l != first)
    });

    // Mid-restore: the restored index is defined, and the leader that would place it dies;
    // the next leader places it, and every copy is still fetched from the snapshot.
    let (status, answer) = http(
        &node,
        "POST",
        "/api/backup/restore",
        &format!(r#"{{"repo": "local", "snapshot": "{id}", "rename": {{"books": "restored"}}}}"#),
    );
    assert_eq!(status, 202, "{answer}");
    let second = drill.kill_planner_leader();
    assert_ne!(first, second);
    let body = r#"{"query": {"match_all": {}}, "size": 0, "consistency": {"level": "at_plus"}, "timeout_ms": 30000}"#;
    let counted = wait_for(
        "the restored index answering",
        Duration::from_secs(120),
        || {
            let (status, answer) = http(&node, "POST", "/api/index/restored/query", body);
            (status == 200).then_some(answer)
        },
    );
    assert_eq!(counted["total_hits"], 3000, "{counted}");
    let now = drill.planner_leader();
    assert!(
        now.is_some_and(|l| l != first && l != second),
        "the third planner did not take over: {now:?}"
    );
    drill.wait_green("the restored index serving", Duration::from_secs(60));
    for address in &drill.addresses {
        let (_, status) = http(address, "GET", "/api/index/restored/status", "");
        for p in status["pindexes"].as_array().unwrap() {
            if p["local"].is_object() {
                let from = p["local"]["restored_from"].as_str().unwrap_or_default();
                assert!(from.contains(&id), "{p}");
            }
        }
    }
}

/// Writes `manifest` as snapshot `manifest.id` straight into the `fs` repository at `dir`.
fn plant_snapshot(dir: &std::path::Path, manifest: &tessera_backup::Manifest) {
    std::fs::create_dir_all(dir.join("snapshots")).unwrap();
    let path = dir.join(format!("snapshots/{}.json", manifest.id));
    std::fs::write(path, manifest.seal().unwrap()).unwrap();
}

fn planted(
    id: &str,
    index: serde_json::Value,
    files: Vec<tessera_backup::FileEntry>,
) -> tessera_backup::Manifest {
    tessera_backup::Manifest {
        format: tessera_backup::manifest::MANIFEST_FORMAT,
        id: id.into(),
        cluster: "elsewhere/1".into(),
        created_ms: 1,
        indexes: [("books".to_string(), index)].into(),
        pindexes: vec![tessera_backup::PIndexEntry {
            name: "books_0-63".into(),
            index: "books".into(),
            source_partitions: (0..64).collect(),
            read_from: "n1".into(),
            checkpoints: Default::default(),
            docs: 1,
            files,
        }],
        sources: vec![],
        encoding: vec!["zstd".into()],
    }
}

#[test]
fn repositories_are_held_to_the_egress_rules_on_every_node_and_a_hostile_one_crashes_none() {
    let drill = Drill::start(2, 60_000);
    let (a, b) = (drill.addresses[0].clone(), drill.addresses[1].clone());

    // An endpoint at the cloud metadata address: refused, naming the field.
    let meta = r#"{"type": "s3", "location": "bucket", "options": {"endpoint": "http://169.254.169.254",
        "allow_http": "true", "credentials": "anonymous"}}"#;
    let (status, answer) = http(&a, "PUT", "/api/backup/repos/meta", meta);
    assert_eq!(
        (status, answer["field"].as_str()),
        (400, Some("options.endpoint")),
        "{answer}"
    );

    // A definition no node accepted (written straight into the Cfg) naming a directory
    // outside every node's --backup-path: every node refuses to open it, and a backup into
    // it fails without writing there (it once took the lock, a file, in that directory).
    let temp = std::env::temp_dir();
    let base = [env!("CARGO_TARGET_TMPDIR"), "/var/tmp", "/dev/shm"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_dir() && !p.starts_with(&temp))
        .expect("a directory outside the nodes' --backup-path");
    let outside_dir = tempfile::Builder::new()
        .prefix("outside-backup-path")
        .tempdir_in(base)
        .unwrap();
    let outside = outside_dir.path().to_path_buf();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cfg = rt
        .block_on(
            drill
                .cfg
                .parse::<tessera_cfg::CfgSpec>()
                .unwrap()
                .open(drill.scratch.path()),
        )
        .unwrap();
    let def = tessera_cfg::schema::RepoDef {
        format_version: 1,
        name: "planted".into(),
        repo_type: "fs".into(),
        location: outside.display().to_string(),
        readonly: false,
        options: Default::default(),
    };
    rt.block_on(cfg.put_repo_def(&def, 0)).unwrap();
    for node in [&a, &b] {
        let (status, answer) = http(node, "GET", "/api/backup/repos/planted/snapshots", "");
        assert_eq!(
            (status, answer["field"].as_str()),
            (400, Some("location")),
            "{answer}"
        );
    }
    let (status, started) = http(&b, "POST", "/api/backup/repos/planted/snapshots", "");
    assert_eq!(status, 202, "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    let ended = wait_job(&b, &id, Duration::from_secs(60));
    assert_eq!(ended["status"], "failed", "{ended}");
    assert!(
        ended["error"]
            .as_str()
            .unwrap_or_default()
            .contains("--backup-path"),
        "{ended}"
    );
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written there"
    );

    // A hostile repository (anyone who can write its directory): a manifest naming a file of
    // 2^40 bytes once aborted the node verifying it; now it is refused and the node answers.
    let hostile = drill.scratch.path().join("hostile");
    std::fs::create_dir_all(&hostile).unwrap();
    ok(&add_fs_repo(
        &a,
        "hostile",
        &hostile.display().to_string(),
        &[],
    ));
    let hash = "ab".repeat(32);
    let huge = tessera_backup::FileEntry {
        name: "seg.idx".into(),
        hash: hash.clone(),
        size: 1 << 40,
    };
    let blobs = hostile.join("blobs").join(&hash[..2]);
    std::fs::create_dir_all(&blobs).unwrap();
    // The codec's header (zstd flag), then a zstd frame of one raw block holding "tiny".
    let mut stored = b"TSB1\x01".to_vec();
    stored.extend([0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x04, 0x21, 0x00, 0x00]);
    stored.extend(b"tiny");
    std::fs::write(blobs.join(format!("{hash}.{}", 1u64 << 40)), stored).unwrap();
    let books = serde_json::json!({"format_version": 1, "name": "books", "uuid": "u1",
        "type": "blackhole", "source": {"type": "tessera", "name": "docs",
        "params": {"url": format!("http://{}", drill.source)}},
        "plan": {"index_partitions": 1, "replicas": 0}});
    plant_snapshot(&hostile, &planted("s-huge", books.clone(), vec![huge]));
    for node in [&a, &b] {
        let (status, answer) = http(
            node,
            "POST",
            "/api/backup/repos/hostile/snapshots/s-huge/verify?deep=true",
            "",
        );
        assert_eq!(status, 422, "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap_or_default()
                .contains("limit"),
            "{answer}"
        );
        assert_eq!(http(node, "GET", "/api/ping", "").0, 200, "the node lives");
    }

    // A restored definition is checked as a new one: a source at the metadata address is
    // refused (422 naming the field) and nothing is defined.
    let mut metadata = books;
    metadata["source"]["params"]["url"] = "http://169.254.169.254/latest/".into();
    plant_snapshot(&hostile, &planted("s-meta", metadata, vec![]));
    let (status, answer) = http(
        &a,
        "POST",
        "/api/backup/restore",
        r#"{"repo": "hostile", "snapshot": "s-meta"}"#,
    );
    assert_eq!(
        (status, answer["field"].as_str()),
        (422, Some("source.params.url")),
        "{answer}"
    );
    assert_eq!(http(&a, "GET", "/api/index/books", "").0, 404);
}
