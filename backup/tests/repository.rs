//! The repository on both backends — a directory and a real S3-compatible server process —
//! with the same cases: blobs stored once by hash and checked on read, manifests sealed and
//! written once, the writer lock refusing a second writer.

use std::collections::BTreeMap;

use tessera_backup::manifest::{content_hash, MANIFEST_FORMAT};
use tessera_backup::{BackupError, Manifest, RepoPolicy, Repository};
use tessera_cfg::schema::RepoDef;
use tessera_tests::s3::{S3Server, ACCESS_KEY, SECRET_KEY};

/// Any endpoint but metadata addresses, any file, `fs` repositories under `dir`.
fn policy(dir: &std::path::Path) -> RepoPolicy {
    RepoPolicy::under(dir.to_path_buf())
}

fn fs_def(dir: &std::path::Path) -> RepoDef {
    RepoDef {
        format_version: 1,
        name: "local".into(),
        repo_type: "fs".into(),
        location: dir.display().to_string(),
        readonly: false,
        options: BTreeMap::new(),
    }
}

fn s3_def(server: &S3Server, dir: &std::path::Path) -> RepoDef {
    let credentials = dir.join("credentials");
    std::fs::write(
        &credentials,
        format!("[default]\naccess_key_id = {ACCESS_KEY}\nsecret_access_key = {SECRET_KEY}\n"),
    )
    .unwrap();
    let mut options = BTreeMap::new();
    options.insert("endpoint".into(), server.endpoint());
    options.insert("allow_http".into(), "true".into());
    options.insert("credentials_file".into(), credentials.display().to_string());
    RepoDef {
        format_version: 1,
        name: "remote".into(),
        repo_type: "s3".into(),
        location: "backups/cluster-a".into(),
        readonly: false,
        options,
    }
}

fn manifest(id: &str) -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT,
        id: id.into(),
        cluster: "a".into(),
        created_ms: 1,
        indexes: BTreeMap::new(),
        pindexes: vec![],
        sources: vec![],
        encoding: vec!["zstd".into()],
    }
}

async fn blobs_are_stored_once_and_checked(repo: &Repository) {
    let content = b"segment bytes ".repeat(1000);
    let first = repo.put_blob(content.clone()).await.unwrap();
    assert_eq!(first.hash, content_hash(&content));
    assert!(
        first.uploaded > 0 && first.uploaded < content.len() as u64,
        "compressed"
    );
    let again = repo.put_blob(content.clone()).await.unwrap();
    assert_eq!(again.uploaded, 0, "the same content is not sent twice");
    assert_eq!(
        repo.get_blob(&first.hash, first.size).await.unwrap(),
        content
    );
    assert!(repo.has_blob(&first.hash, first.size).await.unwrap());
    assert!(!repo.has_blob(&content_hash(b"other"), 5).await.unwrap());
    let listed = repo.blobs().await.unwrap();
    assert_eq!(listed.get(&first.hash), Some(&first.size));
    let missing = repo.get_blob(&content_hash(b"other"), 5).await.unwrap_err();
    assert!(matches!(missing, BackupError::NotFound(_)), "{missing}");
}

async fn manifests_are_written_once(repo: &Repository) {
    repo.put_manifest(&manifest("s1")).await.unwrap();
    let twice = repo.put_manifest(&manifest("s1")).await.unwrap_err();
    assert!(twice.to_string().contains("exists already"), "{twice}");
    repo.put_manifest(&manifest("s2")).await.unwrap();
    assert_eq!(repo.snapshot_ids().await.unwrap(), vec!["s1", "s2"]);
    assert_eq!(repo.manifest("s1").await.unwrap(), manifest("s1"));
    repo.delete_manifest("s1").await.unwrap();
    assert_eq!(repo.snapshot_ids().await.unwrap(), vec!["s2"]);
}

async fn a_second_writer_is_refused(repo: &Repository) {
    let lock = repo.lock("cluster-a/u1", "backup s3").await.unwrap();
    let other = repo.lock("cluster-b/u2", "backup x").await.unwrap_err();
    match &other {
        BackupError::Locked {
            cluster, operation, ..
        } => {
            assert_eq!(
                (cluster.as_str(), operation.as_str()),
                ("cluster-a/u1", "backup s3")
            )
        }
        e => panic!("expected Locked, got {e}"),
    }
    let same_cluster = repo.lock("cluster-a/u1", "gc").await.unwrap_err();
    assert!(
        matches!(same_cluster, BackupError::Locked { .. }),
        "{same_cluster}"
    );
    // The same operation resumed (after its node restarted) takes its own lock back.
    let mut resumed = repo.lock("cluster-a/u1", "backup s3").await.unwrap();
    resumed.renew().await.unwrap();
    drop(lock);
    resumed.release().await.unwrap();
    let next = repo.lock("cluster-b/u2", "backup x").await.unwrap();
    next.release().await.unwrap();
}

async fn staging_is_kept_per_job(repo: &Repository) {
    repo.put_staged("j1", "books_0-3", b"{}".to_vec())
        .await
        .unwrap();
    repo.put_staged("j1", "books_4-7", b"[]".to_vec())
        .await
        .unwrap();
    repo.put_staged("j2", "books_0-3", b"1".to_vec())
        .await
        .unwrap();
    let staged = repo.staged("j1").await.unwrap();
    assert_eq!(
        staged.keys().collect::<Vec<_>>(),
        vec!["books_0-3", "books_4-7"]
    );
    repo.clear_staged("j1").await.unwrap();
    assert!(repo.staged("j1").await.unwrap().is_empty());
    assert_eq!(repo.staged("j2").await.unwrap().len(), 1);
}

async fn every_case(repo: &Repository) {
    blobs_are_stored_once_and_checked(repo).await;
    manifests_are_written_once(repo).await;
    a_second_writer_is_refused(repo).await;
    staging_is_kept_per_job(repo).await;
}

#[tokio::test]
async fn fs_repository() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open(&fs_def(dir.path()), &policy(dir.path())).unwrap();
    every_case(&repo).await;
}

#[tokio::test]
async fn s3_repository_on_a_real_server() {
    let server = S3Server::start("backups");
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open(&s3_def(&server, dir.path()), &RepoPolicy::default()).unwrap();
    every_case(&repo).await;
}

#[tokio::test]
async fn a_flipped_byte_in_a_blob_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open(&fs_def(dir.path()), &policy(dir.path())).unwrap();
    let content = b"segment bytes ".repeat(1000);
    let blob = repo.put_blob(content).await.unwrap();
    let path = dir
        .path()
        .join("blobs")
        .join(&blob.hash[..2])
        .join(format!("{}.{}", blob.hash, blob.size));
    let mut stored = std::fs::read(&path).unwrap();
    let at = stored.len() / 2;
    stored[at] ^= 1;
    std::fs::write(&path, stored).unwrap();
    let err = repo.get_blob(&blob.hash, blob.size).await.unwrap_err();
    assert!(err.to_string().contains(&blob.hash), "{err}");
}

#[tokio::test]
async fn a_readonly_repository_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut def = fs_def(dir.path());
    def.readonly = true;
    let repo = Repository::open(&def, &policy(dir.path())).unwrap();
    assert!(matches!(
        repo.put_blob(b"x".to_vec()).await,
        Err(BackupError::ReadOnly)
    ));
    assert!(matches!(
        repo.lock("a", "gc").await,
        Err(BackupError::ReadOnly)
    ));
}

fn entry(
    name: &str,
    files: &[(&str, &tessera_backup::repo::StoredBlob)],
) -> tessera_backup::PIndexEntry {
    tessera_backup::PIndexEntry {
        name: name.into(),
        index: "books".into(),
        source_partitions: vec![0],
        read_from: "n1".into(),
        checkpoints: BTreeMap::new(),
        docs: 1,
        files: files
            .iter()
            .map(|(f, b)| tessera_backup::FileEntry {
                name: f.to_string(),
                hash: b.hash.clone(),
                size: b.size,
            })
            .collect(),
    }
}

#[tokio::test]
async fn verify_delete_and_gc_keep_what_is_referenced() {
    use tessera_backup::maintain::{delete_snapshot, gc, verify};
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open(&fs_def(dir.path()), &policy(dir.path())).unwrap();
    let shared = repo.put_blob(b"shared segment".repeat(100)).await.unwrap();
    let only1 = repo.put_blob(b"first only".repeat(100)).await.unwrap();
    let only2 = repo.put_blob(b"second only".repeat(100)).await.unwrap();
    let staged = repo.put_blob(b"a job under way".repeat(100)).await.unwrap();
    let _stray = repo.put_blob(b"left by nobody".repeat(100)).await.unwrap();
    let mut s1 = manifest("s1");
    s1.pindexes = vec![entry("books_0-0", &[("a.idx", &shared), ("b.idx", &only1)])];
    let mut s2 = manifest("s2");
    s2.pindexes = vec![entry("books_0-0", &[("a.idx", &shared), ("c.idx", &only2)])];
    repo.put_manifest(&s1).await.unwrap();
    repo.put_manifest(&s2).await.unwrap();
    let job = serde_json::to_vec(&entry("books_0-0", &[("d.idx", &staged)])).unwrap();
    repo.put_staged("s3", "books_0-0", job).await.unwrap();

    let shallow = verify(&repo, "s1", false).await.unwrap();
    assert!(shallow.ok && shallow.blobs_checked == 2, "{shallow:?}");

    // A flipped byte: the shallow check sees the blob there, the deep one names the file.
    let path = dir
        .path()
        .join("blobs")
        .join(&only1.hash[..2])
        .join(format!("{}.{}", only1.hash, only1.size));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
    assert!(verify(&repo, "s1", false).await.unwrap().ok);
    let deep = verify(&repo, "s1", true).await.unwrap();
    assert!(!deep.ok);
    assert!(deep.damaged[0].starts_with("books_0-0/b.idx"), "{deep:?}");

    // Deleting s1 removes only what s1 alone referenced.
    let pruned = delete_snapshot(&repo, "a/u", "s1").await.unwrap();
    let left = repo.blobs().await.unwrap();
    assert!(left.contains_key(&shared.hash) && left.contains_key(&only2.hash));
    assert!(!left.contains_key(&only1.hash));
    assert!(
        left.contains_key(&staged.hash),
        "a staged job's blobs are kept"
    );
    assert_eq!(pruned.blobs_removed, 2, "s1's own blob and the stray one");
    assert!(verify(&repo, "s2", true).await.unwrap().ok);

    // gc is refused while another operation holds the lock.
    let held = repo.lock("b/u", "backup x").await.unwrap();
    assert!(matches!(
        gc(&repo, "a/u").await,
        Err(BackupError::Locked { .. })
    ));
    held.release().await.unwrap();
    assert_eq!(gc(&repo, "a/u").await.unwrap().blobs_removed, 0);
}
