use super::*;
use crate::fulltext::FulltextPIndex;
use crate::mapping::Mapping;
use crate::{Change, PIndex};

/// A PIndex with three commits (three segments), each over its own partitions (0–1, 2–3, 4–5),
/// 10 documents per partition.
fn three_segments(dir: &Path) {
    let mapping = Mapping::from_params(
        &serde_json::json!({"mapping": {"fields": {"title": {"type": "text"}}}}),
    )
    .unwrap();
    let mut p = FulltextPIndex::open(dir, &mapping).unwrap();
    for round in 0..3u32 {
        for partition in [round * 2, round * 2 + 1] {
            for i in 0..10u64 {
                let key = format!("p{partition}-{i}");
                let doc = format!(r#"{{"title": "doc {key}"}}"#);
                p.apply(
                    partition,
                    "u",
                    i + 1,
                    Change::Put {
                        key: &key,
                        doc: doc.as_bytes(),
                    },
                )
                .unwrap();
            }
        }
        p.commit().unwrap();
    }
}

/// Flips bytes in the middle of the segment file with extension `ext` (a damaged disk).
fn damage(dir: &Path, segment: &str, ext: &str) {
    let path = dir.join(format!("{segment}.{ext}"));
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 4] {
        *b ^= 0xff;
    }
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn a_damaged_segment_is_named_with_its_partitions_and_dropped_with_them() {
    let dir = tempfile::tempdir().unwrap();
    three_segments(dir.path());
    let before = inspect(dir.path()).unwrap();
    assert!(before.clean(), "{before:?}");
    assert_eq!(before.segments.len(), 3, "{before:?}");
    assert_eq!(before.docs, 60);
    assert_eq!(before.checkpoints.len(), 6);
    let victim = before
        .segments
        .iter()
        .find(|s| s.partitions.as_deref() == Some(&[2, 3][..]))
        .expect("the segment of partitions 2 and 3")
        .id
        .clone();
    damage(dir.path(), &victim, "store");
    std::fs::write(dir.path().join("left-over.tmp"), b"x").unwrap();

    let found = inspect(dir.path()).unwrap();
    assert!(!found.clean());
    let damaged = found.damaged_segments();
    assert_eq!(damaged.len(), 1, "{found:?}");
    assert_eq!(damaged[0].id, victim);
    assert_eq!(damaged[0].damaged, vec![format!("{victim}.store")]);
    assert_eq!(
        found
            .orphans
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        ["left-over.tmp"]
    );

    let applied = apply(
        dir.path(),
        &[
            PIndexEdit::DropOrphans,
            PIndexEdit::DropSegment {
                segment: victim.clone(),
            },
        ],
    )
    .unwrap();
    assert_eq!(applied.lowered, [2, 3]);
    let after = inspect(dir.path()).unwrap();
    assert!(after.clean(), "{after:?}");
    assert_eq!(after.docs, 40);
    assert_eq!(
        after.checkpoints.keys().copied().collect::<Vec<_>>(),
        [0, 1, 4, 5]
    );
    let by_partition = docs_by_partition(dir.path(), &[0, 2, 3, 5]).unwrap();
    assert_eq!(by_partition, [(0, 10), (2, 0), (3, 0), (5, 10)].into());
    // The PIndex opens again (checksums clean), with the lowered partitions to re-read.
    let mapping = Mapping::from_params(
        &serde_json::json!({"mapping": {"fields": {"title": {"type": "text"}}}}),
    )
    .unwrap();
    let reopened = FulltextPIndex::open(dir.path(), &mapping).unwrap();
    assert!(!reopened.committed().contains_key(&2));
    assert_eq!(reopened.doc_count().unwrap(), 40);
}

#[test]
fn a_segment_that_is_not_in_the_commit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    three_segments(dir.path());
    let refused = apply(
        dir.path(),
        &[PIndexEdit::DropSegment {
            segment: "nope".into(),
        }],
    );
    assert!(refused.is_err());
    assert_eq!(inspect(dir.path()).unwrap().docs, 60, "nothing changed");
}
