use super::*;

fn put(key: &str) -> Append {
    Append::Put {
        key: key.into(),
        doc: format!(r#"{{"k":"{key}"}}"#).into_bytes(),
    }
}

/// A log of source `docs` (4 partitions) with 40 documents and a deletion; returns its path.
fn logged(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("source.redb");
    let log = SourceLog::open(&path, 4).unwrap();
    let items: Vec<Append> = (0..40).map(|i| put(&format!("k{i}"))).collect();
    log.append("docs", &items).unwrap();
    log.append("docs", &[Append::Delete { key: "k3".into() }])
        .unwrap();
    path
}

/// Overwrites the stored bytes of an entry (what a damaged disk would leave).
fn damage(path: &Path, partition: u32, seq: u64, bytes: &[u8]) {
    let db = Database::builder().create(path).unwrap();
    let wtx = db.begin_write().unwrap();
    {
        let mut log = wtx.open_table(LOG).unwrap();
        log.insert(("docs", partition, seq), bytes).unwrap();
    }
    wtx.commit().unwrap();
}

#[test]
fn check_names_a_damaged_entry_by_position_and_apply_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = logged(&dir);
    let p = partition_of("k7", 4);
    damage(&path, p, 2, &[7, 0xff, 0xff, 0xff, 0xff]);
    let file = LogFile::open(&path).unwrap();
    let findings = file.check().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(
        (findings[0].partition, findings[0].seq),
        (Some(p), Some(2)),
        "{findings:?}"
    );
    let before = file.partitions(Some("docs")).unwrap();
    let applied = file
        .apply(&[LogEdit::Delete {
            source: "docs".into(),
            partition: p,
            from_seq: 2,
            to_seq: 2,
        }])
        .unwrap();
    assert_eq!(applied.deleted[&("docs".to_string(), p)], 1);
    assert!(file.check().unwrap().is_empty());
    let after = file.partitions(Some("docs")).unwrap();
    for (b, a) in before.iter().zip(&after) {
        if b.partition == p {
            assert_eq!(a.entries, b.entries - 1);
            assert_ne!(a.uuid, b.uuid, "a changed history has a new uuid");
            assert_eq!(a.high_seq, b.high_seq);
        } else {
            assert_eq!(a, b, "other partitions are untouched");
        }
    }
}

#[test]
fn appends_and_replacements_keep_routing_and_rebuild_the_present_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = logged(&dir);
    let file = LogFile::open(&path).unwrap();
    assert_eq!(file.present_keys("docs").unwrap(), 39);
    let p = partition_of("new-key", 4);
    let wrong = (p + 1) % 4;
    let refused = file.apply(&[LogEdit::Append {
        source: "docs".into(),
        partition: wrong,
        entries: vec![NewEntry {
            key: "new-key".into(),
            doc: Some(serde_json::json!({"a": 1})),
        }],
    }]);
    assert!(matches!(refused, Err(LogError::Refused(_))), "{refused:?}");
    assert_eq!(
        file.present_keys("docs").unwrap(),
        39,
        "a refused edit writes nothing"
    );
    let high = file.partitions(Some("docs")).unwrap()[p as usize].high_seq;
    file.apply(&[LogEdit::Append {
        source: "docs".into(),
        partition: p,
        entries: vec![NewEntry {
            key: "new-key".into(),
            doc: Some(serde_json::json!({"a": 1})),
        }],
    }])
    .unwrap();
    assert_eq!(file.present_keys("docs").unwrap(), 40);
    // Replacing the appended document by a deletion removes the key.
    file.apply(&[LogEdit::Replace {
        source: "docs".into(),
        partition: p,
        seq: high + 1,
        key: "new-key".into(),
        doc: None,
    }])
    .unwrap();
    assert_eq!(file.present_keys("docs").unwrap(), 39);
    assert!(file.check().unwrap().is_empty());
}

#[test]
fn the_file_does_not_open_for_a_repair_while_a_source_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("source.redb");
    let _running = SourceLog::open(&path, 4).unwrap();
    let refused = LogFile::open(&path);
    assert!(
        matches!(&refused, Err(LogError::Storage(m)) if m.contains("in use")),
        "{:?}",
        refused.err()
    );
}
