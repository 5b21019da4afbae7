//! PIndexes keep data and checkpoints together: what was committed survives a reopen,
//! what was not is gone, documents that do not fit are skipped and counted, corrupt
//! directories are moved aside and rebuilt.

use serde_json::json;
use tessera_index::fulltext::FulltextPIndex;
use tessera_index::mapping::Mapping;
use tessera_index::{open, open_or_rebuild, Change, IndexError, PIndex};

fn mapping() -> serde_json::Value {
    json!({"mapping": {"default_analyzer": "en", "fields": {
        "title": {"type": "text"}, "year": {"type": "i64"}, "tag": {"type": "keyword"},
        "price": {"type": "f64"}, "published": {"type": "date"}, "in_print": {"type": "bool"}}}})
}

fn put<'a>(key: &'a str, doc: &'a [u8]) -> Change<'a> {
    Change::Put { key, doc }
}

#[test]
fn fulltext_commits_data_with_checkpoints_and_reopens_from_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("books_0-15");
    {
        let mut p = open("fulltext", &path, &mapping()).unwrap();
        let doc = br#"{"title": "Running with Rust", "year": 2021, "tag": "prog", "price": 9.5, "published": "2021-03-01T00:00:00Z", "in_print": true, "extra": "ignored"}"#;
        p.apply(3, "uuid-a", 1, put("b1", doc)).unwrap();
        p.apply(
            3,
            "uuid-a",
            2,
            put("b2", br#"{"title": "Gardening", "year": 1999}"#),
        )
        .unwrap();
        p.apply(4, "uuid-b", 7, put("b3", br#"{"title": "Cooking"}"#))
            .unwrap();
        p.apply(
            3,
            "uuid-a",
            3,
            put(
                "b2",
                br#"{"title": "Gardening, 2nd edition", "year": 2005}"#,
            ),
        )
        .unwrap();
        p.apply(4, "uuid-b", 8, Change::Delete { key: "b3" })
            .unwrap();
        p.commit().unwrap();
        assert_eq!(p.doc_count().unwrap(), 2, "b1 and b2 (updated), b3 deleted");
        assert_eq!(p.committed()[&3].seq, 3);
        assert_eq!(
            (
                p.committed()[&4].seq,
                p.committed()[&4].partition_uuid.as_str()
            ),
            (8, "uuid-b")
        );
        // Applied but never committed: lost with the process.
        p.apply(3, "uuid-a", 4, put("b4", br#"{"title": "Lost"}"#))
            .unwrap();
        assert_eq!(p.applied()[&3].seq, 4);
    }
    let p = open("fulltext", &path, &mapping()).unwrap();
    assert_eq!(p.committed()[&3].seq, 3, "resume from the last commit");
    assert_eq!(p.doc_count().unwrap(), 2);
}

#[test]
fn stemming_and_updates_are_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mapping::from_params(&mapping()).unwrap();
    let mut p = FulltextPIndex::open(&dir.path().join("p"), &m).unwrap();
    p.apply(0, "u", 1, put("k", br#"{"title": "Running fast"}"#))
        .unwrap();
    p.commit().unwrap();
    let index = p.index();
    let title = index.schema().get_field("title").unwrap();
    let parser = tantivy::query::QueryParser::for_index(index, vec![title]);
    let searcher = index.reader().unwrap().searcher();
    let hits = searcher
        .search(
            &parser.parse_query("run").unwrap(),
            &tantivy::collector::Count,
        )
        .unwrap();
    assert_eq!(hits, 1, "the en analyzer stems running → run");
}

#[test]
fn documents_that_do_not_fit_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = open("fulltext", &dir.path().join("p"), &mapping()).unwrap();
    p.apply(0, "u", 1, put("ok", br#"{"title": "Fine", "year": 2000}"#))
        .unwrap();
    p.apply(
        0,
        "u",
        2,
        put("bad", br#"{"title": "Bad", "year": "two thousand"}"#),
    )
    .unwrap();
    p.apply(0, "u", 3, put("ok", br#"{"year": "still not a number"}"#))
        .unwrap();
    p.apply(0, "u", 4, put("junk", b"not json")).unwrap();
    p.commit().unwrap();
    let stats = p.stats();
    assert_eq!(stats.skipped_docs, 3);
    assert!(stats.last_skip.unwrap().starts_with("junk"));
    assert_eq!(p.committed()[&0].seq, 4, "skips never stall the checkpoint");
    assert_eq!(
        p.doc_count().unwrap(),
        0,
        "an update that does not fit removes the old version"
    );
}

#[test]
fn dynamic_mapping_indexes_whole_documents() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = open("fulltext", &dir.path().join("p"), &serde_json::Value::Null).unwrap();
    p.apply(
        0,
        "u",
        1,
        put("a", br#"{"anything": {"nested": "goes"}, "n": 3}"#),
    )
    .unwrap();
    p.commit().unwrap();
    assert_eq!(p.doc_count().unwrap(), 1);
}

#[test]
fn corrupt_or_remapped_directories_are_moved_aside_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join("meta.json"), b"{ not tantivy").unwrap();
    assert!(matches!(
        open("fulltext", &path, &mapping()),
        Err(IndexError::Corrupt { .. })
    ));
    let (mut p, aside) = open_or_rebuild("fulltext", &path, &mapping(), None).unwrap();
    let aside = aside.expect("moved aside");
    assert!(
        aside.join("meta.json").exists(),
        "the corrupt copy is kept for inspection"
    );
    assert!(p.committed().is_empty());
    p.apply(0, "u", 1, put("a", br#"{"title": "x"}"#)).unwrap();
    p.commit().unwrap();
    drop(p);
    // A changed mapping cannot reuse the index: rebuilt from scratch.
    let other = json!({"mapping": {"fields": {"title": {"type": "keyword"}}}});
    let (p, aside) = open_or_rebuild("fulltext", &path, &other, None).unwrap();
    assert!(aside.is_some());
    assert_eq!(p.doc_count().unwrap(), 0);
}

#[test]
fn a_damaged_segment_file_fails_the_checksum_and_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    {
        let mut p = open("fulltext", &path, &mapping()).unwrap();
        for i in 0..50 {
            let doc = format!(r#"{{"title": "book {i}"}}"#);
            p.apply(0, "u", i + 1, put(&format!("k{i}"), doc.as_bytes()))
                .unwrap();
        }
        p.commit().unwrap();
    }
    // Flip one byte in the middle of the largest segment file (as a bad disk would).
    let victim = std::fs::read_dir(&path)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e != "json" && e != "lock"))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a segment file");
    let mut bytes = std::fs::read(&victim).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    match open("fulltext", &path, &mapping()) {
        Err(IndexError::Corrupt { reason, .. }) => {
            assert!(reason.contains("checksum"), "{reason}")
        }
        Err(other) => panic!("a damaged file is corruption, not {other:?}"),
        Ok(_) => panic!("a damaged file opened as if whole ({})", victim.display()),
    }
    let (p, aside) = open_or_rebuild("fulltext", &path, &mapping(), None).unwrap();
    assert!(aside.is_some(), "moved aside for inspection");
    assert_eq!(p.doc_count().unwrap(), 0, "rebuilt empty, to be fed again");
}

#[test]
fn blackhole_counts_and_keeps_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bh");
    {
        let mut p = open("blackhole", &path, &serde_json::Value::Null).unwrap();
        for seq in 1..=10 {
            p.apply(seq as u32 % 2, "u", seq, put("k", b"{}")).unwrap();
        }
        p.commit().unwrap();
        p.apply(0, "u", 11, put("k", b"{}")).unwrap();
    }
    let p = open("blackhole", &path, &serde_json::Value::Null).unwrap();
    assert_eq!(p.doc_count().unwrap(), 10);
    assert_eq!(p.committed()[&0].seq, 10);
    assert!(matches!(
        open("vector", &path, &serde_json::Value::Null),
        Err(IndexError::UnknownType(_))
    ));
}

#[test]
fn dropping_a_partition_removes_its_documents_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = open("fulltext", &dir.path().join("p"), &mapping()).unwrap();
    p.apply(1, "u1", 1, put("a", br#"{"title": "a"}"#)).unwrap();
    p.apply(2, "u2", 1, put("b", br#"{"title": "b"}"#)).unwrap();
    p.commit().unwrap();
    p.drop_partition(1).unwrap();
    p.commit().unwrap();
    assert_eq!(p.doc_count().unwrap(), 1);
    assert!(!p.committed().contains_key(&1));
    assert_eq!(p.committed()[&2].seq, 1);
}
