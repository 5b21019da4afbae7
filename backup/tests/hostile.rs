//! A hostile repository — objects written straight into an `fs` repository by whoever can
//! write it — cannot make a node allocate what it says: a blob declaring a terabyte, a blob
//! that decompresses past its size, a manifest past the manifest limit are each refused with
//! an error naming the object, and the process goes on.

use std::collections::BTreeMap;
use std::path::Path;

use tessera_backup::limits::{MAX_BLOB_BYTES, MAX_MANIFEST_BYTES};
use tessera_backup::manifest::MANIFEST_FORMAT;
use tessera_backup::{BackupError, FileEntry, Manifest, PIndexEntry, RepoPolicy, Repository};
use tessera_cfg::schema::RepoDef;

fn open(dir: &Path) -> Repository {
    let def = RepoDef {
        format_version: 1,
        name: "hostile".into(),
        repo_type: "fs".into(),
        location: dir.display().to_string(),
        readonly: false,
        options: BTreeMap::new(),
    };
    Repository::open(&def, &RepoPolicy::under(dir.to_path_buf())).unwrap()
}

/// Writes `stored` as blob `hash` of declared `size`, as the repository lays blobs out.
fn put_raw_blob(dir: &Path, hash: &str, size: u64, stored: &[u8]) {
    let shard = dir.join("blobs").join(&hash[..2]);
    std::fs::create_dir_all(&shard).unwrap();
    std::fs::write(shard.join(format!("{hash}.{size}")), stored).unwrap();
}

/// A stored blob: the codec's header with the zstd flag, then `content` compressed.
fn zstd_blob(content: &[u8]) -> Vec<u8> {
    let mut out = b"TSB1\x01".to_vec();
    out.extend(zstd::bulk::compress(content, 3).unwrap());
    out
}

#[tokio::test]
async fn a_blob_declaring_a_terabyte_is_refused_not_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let repo = open(dir.path());
    let hash = "ab".repeat(32);
    // Before the limit, `zstd::bulk::decompress` reserved the declared 2^40 bytes and the
    // process aborted.
    put_raw_blob(dir.path(), &hash, 1 << 40, &zstd_blob(b"tiny"));
    let err = repo.get_blob(&hash, 1 << 40).await.unwrap_err();
    assert!(matches!(err, BackupError::TooLarge { .. }), "{err}");
    assert!(
        err.to_string().contains(&hash) && err.to_string().contains("limit"),
        "{err}"
    );
    // Within the limit but more than the blob holds: read as it is, and named damaged.
    put_raw_blob(dir.path(), &hash, MAX_BLOB_BYTES, &zstd_blob(b"tiny"));
    let err = repo.get_blob(&hash, MAX_BLOB_BYTES).await.unwrap_err();
    assert!(matches!(err, BackupError::Damaged { .. }), "{err}");
}

#[tokio::test]
async fn a_decompression_bomb_stops_at_the_declared_size() {
    let dir = tempfile::tempdir().unwrap();
    let repo = open(dir.path());
    let hash = "cd".repeat(32);
    // 64 MiB of zeros compress to a few KiB; the manifest says 1000 bytes.
    put_raw_blob(dir.path(), &hash, 1000, &zstd_blob(&vec![0u8; 64 << 20]));
    let err = repo.get_blob(&hash, 1000).await.unwrap_err();
    assert!(
        err.to_string().contains("more than the 1000 bytes"),
        "{err}"
    );
}

#[tokio::test]
async fn a_manifest_past_the_limit_or_naming_a_huge_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let repo = open(dir.path());
    std::fs::create_dir_all(dir.path().join("snapshots")).unwrap();
    let big = std::fs::File::create(dir.path().join("snapshots/s-big.json")).unwrap();
    big.set_len(MAX_MANIFEST_BYTES + 1).unwrap();
    let err = repo.manifest("s-big").await.unwrap_err();
    assert!(matches!(err, BackupError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("snapshot s-big"), "{err}");

    // A well-formed, sealed manifest naming a file of 2^40 bytes: refused on open, so no
    // verify, restore or recovery ever asks for it.
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        id: "s-huge".into(),
        cluster: "elsewhere".into(),
        created_ms: 1,
        indexes: BTreeMap::new(),
        pindexes: vec![PIndexEntry {
            name: "books_0-0".into(),
            index: "books".into(),
            source_partitions: vec![0],
            read_from: "n1".into(),
            checkpoints: BTreeMap::new(),
            docs: 1,
            files: vec![FileEntry {
                name: "seg.idx".into(),
                hash: "ef".repeat(32),
                size: 1 << 40,
            }],
        }],
        sources: vec![],
        encoding: vec!["zstd".into()],
    };
    std::fs::write(
        dir.path().join("snapshots/s-huge.json"),
        manifest.seal().unwrap(),
    )
    .unwrap();
    let err = tessera_backup::maintain::verify(&repo, "s-huge", true)
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("books_0-0/seg.idx"), "{err}");
}
