//! Downloading a held file set over `tessera.v1.Copy`: whole and identical when the bytes
//! arrive as they were set apart; refused, naming the file, when a byte changed after the
//! serving node checksummed it — with nothing left in place (no directory, no `.fetching`).

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tessera_copy::fetch::{download, Meter};
use tessera_copy::held::{HeldSets, TakenSet};
use tessera_copy::pace::Pace;
use tessera_copy::serve::{router, CopyService};
use tessera_copy::CopyError;
use tessera_index::Change;
use tessera_proto::peers::Peers;
use tessera_proto::v1::{FileEntry, FileSet};

fn mapping() -> serde_json::Value {
    serde_json::json!({"mapping": {"fields": {"title": {"type": "text"}}}})
}

/// A committed fulltext PIndex of `docs` documents in `dir`.
fn build_pindex(dir: &Path, docs: usize) {
    let mut p = tessera_index::open("fulltext", dir, &mapping()).expect("open a PIndex");
    for i in 0..docs {
        let key = format!("d{i}");
        let doc = format!("{{\"title\": \"document number {i}\"}}");
        let change = Change::Put {
            key: &key,
            doc: doc.as_bytes(),
        };
        p.apply(0, "uuid-0", i as u64 + 1, change).expect("apply");
    }
    p.commit().expect("commit");
}

/// The copy service of a node whose PIndexes are under `pindexes`, serving on a free port.
async fn serve(root: &Path) -> (String, Arc<HeldSets>) {
    let cfg = "memory"
        .parse::<tessera_cfg::spec::CfgSpec>()
        .expect("the memory spec")
        .open(root)
        .await
        .expect("a memory Cfg");
    let held = Arc::new(HeldSets::new(root.join("copy-staging")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    let service = CopyService {
        cfg,
        node: "server".into(),
        url: url.clone(),
        pindex_dir: root.join("pindexes"),
        held: held.clone(),
        peers: Peers::default(),
    };
    tokio::spawn(async move { axum::serve(listener, router(service)).await });
    (url, held)
}

/// What a fetcher is told of a taken set.
fn file_set(url: &str, taken: &TakenSet) -> FileSet {
    FileSet {
        id: taken.id.clone(),
        url: url.to_string(),
        node: "server".into(),
        pindex: "p".into(),
        bytes: taken.files.iter().map(|f| f.size).sum(),
        files: taken
            .files
            .iter()
            .map(|f| FileEntry {
                name: f.name.clone(),
                size: f.size,
                crc32: f.crc32,
            })
            .collect(),
        docs: taken.docs,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_set_arrives_and_a_changed_byte_is_named_and_leaves_nothing() {
    let root = tempfile::tempdir().expect("a temp dir");
    let pindex_dir = root.path().join("pindexes").join("p");
    build_pindex(&pindex_dir, 2000);
    let (url, held) = serve(root.path()).await;
    let peers = Peers::default();
    let pace = Pace::unlimited();

    // Untouched: every file arrives, and the copy opens with every document.
    let taken = held
        .take("fulltext", &pindex_dir, false)
        .await
        .expect("take");
    assert_eq!(taken.docs, 2000);
    let done = AtomicU64::new(0);
    let meter = Meter {
        done: &done,
        pace: &pace,
    };
    let good = root.path().join("good");
    let bytes = download(&peers, &file_set(&url, &taken), &good, meter)
        .await
        .expect("an untouched set downloads");
    assert_eq!(bytes, taken.files.iter().map(|f| f.size).sum::<u64>());
    let copy = tessera_index::open("fulltext", &good, &mapping()).expect("opens");
    assert_eq!(copy.doc_count().expect("counted"), 2000);
    assert_eq!(held.len(), 0, "the set was released after the download");

    // One byte of the largest file changes after the set was checksummed (a disk or a
    // network flipping a bit): the download says which file and keeps nothing.
    let taken = held
        .take("fulltext", &pindex_dir, false)
        .await
        .expect("take");
    let largest = taken
        .files
        .iter()
        .max_by_key(|f| f.size)
        .expect("a file")
        .name
        .clone();
    let held_path = root
        .path()
        .join("copy-staging")
        .join(&taken.id)
        .join(&largest);
    let mut bytes = std::fs::read(&held_path).expect("the held file");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    // Written through a new file: the held file is a link to the PIndex's own.
    std::fs::remove_file(&held_path).expect("unlink");
    std::fs::write(&held_path, &bytes).expect("write the changed file");
    let bad = root.path().join("bad");
    let failed = download(&peers, &file_set(&url, &taken), &bad, meter)
        .await
        .expect_err("a changed byte is caught");
    match failed {
        CopyError::Corrupt { file, reason } => {
            assert_eq!(file, largest, "{reason}");
            assert!(reason.contains("CRC-32"), "{reason}");
        }
        other => panic!("expected a corrupt file, got {other}"),
    }
    assert!(!bad.exists(), "no directory in place");
    assert!(
        !root.path().join("bad.fetching").exists(),
        "the partial download is removed"
    );
}
