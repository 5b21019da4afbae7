//! A commit's files set apart while the PIndex goes on: later commits, deletes and merges do
//! not change what was set apart, and the set opens as the PIndex it was at that commit.

use tessera_index::fileset;
use tessera_index::{open, Change};

fn put<'a>(key: &'a str, doc: &'a [u8]) -> Change<'a> {
    Change::Put { key, doc }
}

#[test]
fn a_set_apart_commit_survives_later_commits_and_merges() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("books_0-3");
    let mut p = open("fulltext", &path, &serde_json::Value::Null).unwrap();
    for batch in 0..4u64 {
        for i in 0..50u64 {
            let key = format!("k{batch}-{i}");
            p.apply(1, "u1", batch * 50 + i + 1, put(&key, br#"{"t": "x"}"#))
                .unwrap();
        }
        p.commit().unwrap();
    }
    p.apply(1, "u1", 201, Change::Delete { key: "k0-0" })
        .unwrap();
    p.commit().unwrap();
    let set = fileset::take("fulltext", &path, &dir.path().join("set")).unwrap();
    assert_eq!(set.docs, 199);
    assert_eq!(set.checkpoints[&1].seq, 201);
    assert!(set.files.contains(&"meta.json".to_string()));
    assert!(
        set.files.iter().any(|f| f.ends_with(".del")),
        "{:?}",
        set.files
    );

    // The PIndex goes on: more documents, deletes, and its segments merged away.
    for i in 0..100u64 {
        let key = format!("k9-{i}");
        p.apply(1, "u1", 300 + i, put(&key, br#"{"t": "y"}"#))
            .unwrap();
    }
    p.apply(1, "u1", 400, Change::Delete { key: "k1-1" })
        .unwrap();
    p.commit().unwrap();
    drop(p);
    let index = tantivy::Index::open_in_dir(&path).unwrap();
    let mut writer: tantivy::IndexWriter<tantivy::TantivyDocument> =
        index.writer_with_num_threads(1, 15_000_000).unwrap();
    let ids = index.searchable_segment_ids().unwrap();
    writer.merge(&ids).wait().unwrap();
    writer.garbage_collect_files().wait().unwrap();
    drop(writer);
    for f in &set.files {
        if f != "meta.json" {
            assert!(!path.join(f).exists(), "{f} should have been merged away");
        }
    }

    // The set is the PIndex as it was at the commit.
    let restored = open("fulltext", &set.dir, &serde_json::Value::Null).unwrap();
    assert_eq!(restored.doc_count().unwrap(), 199);
    assert_eq!(restored.committed()[&1].seq, 201);
}

#[test]
fn a_blackhole_set_is_its_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b_0-0");
    let mut p = open("blackhole", &path, &serde_json::Value::Null).unwrap();
    p.apply(0, "u", 5, put("a", b"{}")).unwrap();
    p.commit().unwrap();
    let set = fileset::take("blackhole", &path, &dir.path().join("set")).unwrap();
    assert_eq!(set.checkpoints[&0].seq, 5);
    assert_eq!(set.files, vec!["blackhole.json".to_string()]);
}
