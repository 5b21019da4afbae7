//! A real tantivy PIndex set apart, served over a real gRPC server on a loopback port, and
//! fetched: the copy opens with the same documents and checkpoints; a file changed on the
//! serving side after it was set apart is caught by its checksum and leaves nothing behind.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tessera_index::{Change, PIndex};
use tessera_proto::peers::Peers;
use tessera_proto::v1::copy_client::CopyClient;
use tessera_proto::v1::{FileEntry, FileSet, ReadFileRequest};

use super::*;
use crate::fetch::Meter;
use crate::pace::Pace;
use crate::serve::CopyService;

/// A fulltext PIndex in `dir` holding `docs` documents of partition 3, committed.
fn pindex_with(dir: &Path, docs: u64) -> Box<dyn PIndex> {
    let mut p = tessera_index::open("fulltext", dir, &serde_json::Value::Null).expect("open");
    for i in 0..docs {
        let doc = format!(r#"{{"title": "document {i}"}}"#);
        let key = format!("d{i}");
        let change = Change::Put {
            key: &key,
            doc: doc.as_bytes(),
        };
        p.apply(3, "uuid-3", i + 1, change).expect("apply");
    }
    p.commit().expect("commit");
    p
}

/// The service over `held` on a free loopback port; returns its URL.
async fn serve(held: Arc<HeldSets>, pindex_dir: PathBuf) -> String {
    let cfg = "memory"
        .parse::<tessera_cfg::CfgSpec>()
        .expect("spec")
        .open(&pindex_dir)
        .await
        .expect("an in-memory cfg");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let service = CopyService {
        cfg,
        node: "n1".into(),
        url: url.clone(),
        pindex_dir,
        held,
        peers: Peers::default(),
    };
    let app = crate::serve::router(service);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn described(set: &TakenSet, url: &str) -> FileSet {
    FileSet {
        id: set.id.clone(),
        url: url.into(),
        files: set
            .files
            .iter()
            .map(|f| FileEntry {
                name: f.name.clone(),
                size: f.size,
                crc32: f.crc32,
            })
            .collect(),
        ..FileSet::default()
    }
}

#[tokio::test]
async fn a_set_fetched_opens_with_the_same_documents_and_checkpoints() {
    let scratch = tempfile::tempdir().expect("a temp dir");
    let pindexes = scratch.path().join("pindexes");
    let source = pindexes.join("books_1");
    let mut running = pindex_with(&source, 120);
    let held = Arc::new(HeldSets::new(scratch.path().join("staging")));
    let set = held.take("fulltext", &source, false).await.expect("taken");
    assert_eq!(set.docs, 120);
    assert_eq!(set.checkpoints[&3].seq, 120);
    assert!(set.files.iter().any(|f| f.name == "meta.json"), "{set:?}");
    assert!(set.files.iter().all(|f| f.crc32 != 0 || f.size == 0));
    // The PIndex goes on meanwhile: the set stays at its commit.
    running
        .apply(3, "uuid-3", 121, Change::Delete { key: "d0" })
        .expect("apply");
    running.commit().expect("commit");

    let url = serve(held.clone(), pindexes).await;
    let into = scratch.path().join("fetched");
    let (done, pace) = (AtomicU64::new(0), Pace::unlimited());
    let meter = Meter {
        done: &done,
        pace: &pace,
    };
    let bytes = crate::fetch::download(&Peers::default(), &described(&set, &url), &into, meter)
        .await
        .expect("downloaded");
    assert_eq!(bytes, set.files.iter().map(|f| f.size).sum::<u64>());
    assert_eq!(
        done.into_inner(),
        bytes,
        "the progress counter saw every byte"
    );
    let copy = tessera_index::open("fulltext", &into, &serde_json::Value::Null).expect("opens");
    assert_eq!(copy.doc_count().expect("a count"), 120);
    assert_eq!(copy.committed(), &set.checkpoints);
    assert!(held.is_empty(), "the fetcher released the set");
    assert!(!scratch.path().join("fetched.fetching").exists());
}

#[tokio::test]
async fn a_file_read_from_an_offset_and_a_changed_file_refused() {
    let scratch = tempfile::tempdir().expect("a temp dir");
    let pindexes = scratch.path().join("pindexes");
    let source = pindexes.join("books_1");
    let _running = pindex_with(&source, 50);
    let held = Arc::new(HeldSets::new(scratch.path().join("staging")));
    let set = held.take("fulltext", &source, false).await.expect("taken");
    let url = serve(held.clone(), pindexes).await;

    // A stream asked from an offset (how a broken one resumes) sends the rest of the file.
    let meta = set
        .files
        .iter()
        .find(|f| f.name == "meta.json")
        .expect("meta.json");
    let (path, size) = held.file(&set.id, "meta.json").expect("held");
    assert_eq!(size, meta.size);
    let whole = std::fs::read(&path).expect("read");
    let mut client = CopyClient::connect(url.clone()).await.expect("connect");
    let request = ReadFileRequest {
        set_id: set.id.clone(),
        name: "meta.json".into(),
        offset: 10,
    };
    let mut stream = client
        .read_file(request)
        .await
        .expect("a stream")
        .into_inner();
    let mut rest = Vec::new();
    while let Some(chunk) = stream.message().await.expect("a chunk") {
        rest.extend_from_slice(&chunk.data);
    }
    assert_eq!(rest, whole[10..]);
    // Only the set's own files are served.
    let request = ReadFileRequest {
        set_id: set.id.clone(),
        name: "../books_1/meta.json".into(),
        offset: 0,
    };
    let refused = client.read_file(request).await.expect_err("not in the set");
    assert_eq!(refused.code(), tonic::Code::NotFound, "{refused}");

    // A byte changed after the set was taken: the checksum says so, nothing is left.
    let mut changed = whole.clone();
    changed[5] ^= 0x20;
    std::fs::remove_file(&path).expect("unlink the held link");
    std::fs::write(&path, &changed).expect("write");
    let into = scratch.path().join("fetched");
    let (done, pace) = (AtomicU64::new(0), Pace::unlimited());
    let meter = Meter {
        done: &done,
        pace: &pace,
    };
    let e = crate::fetch::download(&Peers::default(), &described(&set, &url), &into, meter)
        .await
        .expect_err("refused");
    assert!(
        matches!(&e, CopyError::Corrupt { file, .. } if file == "meta.json"),
        "{e}"
    );
    assert!(!into.exists() && !scratch.path().join("fetched.fetching").exists());
}

#[tokio::test]
async fn sets_are_released_and_dropped_when_idle() {
    let scratch = tempfile::tempdir().expect("a temp dir");
    let source = scratch.path().join("books_1");
    let _running = pindex_with(&source, 5);
    let held = HeldSets::new(scratch.path().join("staging"));
    let described = held
        .take("fulltext", &source, true)
        .await
        .expect("described");
    assert!(described.id.is_empty() && held.is_empty(), "nothing held");
    assert!(described.files.iter().all(|f| f.crc32 == 0));
    let a = held.take("fulltext", &source, false).await.expect("taken");
    let b = held.take("fulltext", &source, false).await.expect("taken");
    assert_eq!(held.len(), 2);
    held.release(&a.id);
    assert!(!scratch.path().join("staging").join(&a.id).exists());
    assert!(matches!(
        held.file(&a.id, "meta.json"),
        Err(CopyError::NotFound(_))
    ));
    held.sweep_idle_for(Duration::ZERO);
    assert!(held.is_empty());
    assert!(!scratch.path().join("staging").join(&b.id).exists());
    // What a previous run left is cleared at start.
    let _c = held.take("fulltext", &source, false).await.expect("taken");
    let again = HeldSets::new(scratch.path().join("staging"));
    assert!(again.is_empty());
    assert!(!scratch.path().join("staging").exists());
}
