//! The repository on both backends — a directory and a real S3-compatible server process —
//! with the same cases: blobs stored once by hash and checked on read, manifests sealed and
//! written once, the writer lock refusing a second writer.

use std::collections::BTreeMap;

use tessera_backup::manifest::{content_hash, MANIFEST_FORMAT};
use tessera_backup::{BackupError, Manifest, RepoConfig, Repository};
use tessera_cfg::schema::RepoDef;
use tessera_tests::s3::{S3Server, ACCESS_KEY, SECRET_KEY};

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

fn s3_def(server: &S3Server, dir: &std::path::Path) -> RepoConfig {
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
    let repo = Repository::open(&fs_def(dir.path())).unwrap();
    every_case(&repo).await;
}

#[tokio::test]
async fn s3_repository_on_a_real_server() {
    let server = S3Server::start("backups");
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open(&s3_def(&server, dir.path())).unwrap();
    every_case(&repo).await;
}

#[tokio::test]
async fn a_flipped_byte_in_a_blob_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open(&fs_def(dir.path())).unwrap();
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
    let repo = Repository::open(&def).unwrap();
    assert!(matches!(
        repo.put_blob(b"x".to_vec()).await,
        Err(BackupError::ReadOnly)
    ));
    assert!(matches!(
        repo.lock("a", "gc").await,
        Err(BackupError::ReadOnly)
    ));
}
