//! Regrouping: `fulltext` PIndexes built under one partitioning turned into a PIndex of
//! another, by source partition, without indexing anything again.
//!
//! Every document carries the source partition it came from (the indexed `_partition` field),
//! so the documents of a set of partitions can be picked out of any PIndex that holds them.
//! A restore into other PIndex boundaries needs exactly that: the new PIndex covering
//! partitions 0–12 is made of the saved PIndexes 0–3, 4–7, 8–11 whole and of the documents of
//! partition 12 from the saved 12–15. The documents are carried over by tantivy's filtered
//! merge (postings, norms, stored and fast fields copied segment by segment), so their terms
//! and therefore their scores are those of the saved index. The new commit's checkpoints are
//! given by the caller (per source partition, as saved), so the feed resumes exactly.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tantivy::directory::{MmapDirectory, OwnedBytes};
use tantivy::fastfield::{write_alive_bitset, AliveBitSet};
use tantivy::schema::{Field, IndexRecordOption, Schema};
use tantivy::{BitSet, DocSet, Index, Segment, SegmentReader, Term, TERMINATED};

use crate::checkpoint::{self, Checkpoints};
use crate::fulltext::PARTITION_FIELD;
use crate::IndexError;

/// The writer memory of the one commit that records the checkpoints (tantivy's minimum).
const COMMIT_MEMORY: usize = 15_000_000;

/// Builds in `out` (which must not exist) a `fulltext` PIndex holding the documents of
/// `partitions` found in the PIndexes in `parts`, committed with `checkpoints`. Returns the
/// number of documents it holds. The PIndexes in `parts` are only read.
pub fn regroup(
    parts: &[PathBuf],
    partitions: &BTreeSet<u32>,
    checkpoints: &Checkpoints,
    out: &Path,
) -> Result<u64, IndexError> {
    if out.exists() {
        return Err(IndexError::Storage(format!(
            "regrouping into {}: it exists",
            out.display()
        )));
    }
    let mut schema: Option<Schema> = None;
    let mut settings = None;
    let mut segments = Vec::new();
    let mut filters = Vec::new();
    let mut docs = 0u64;
    for dir in parts {
        let corrupt = |reason: String| IndexError::Corrupt {
            path: dir.clone(),
            reason,
        };
        let index = Index::open_in_dir(dir).map_err(|e| corrupt(e.to_string()))?;
        match &schema {
            None => {
                schema = Some(index.schema());
                settings = Some(index.settings().clone());
            }
            Some(first) if *first != index.schema() => {
                return Err(corrupt(
                    "its schema is not that of the other PIndexes regrouped with it".into(),
                ))
            }
            Some(_) => {}
        }
        let field = index
            .schema()
            .get_field(PARTITION_FIELD)
            .map_err(|e| corrupt(format!("not a fulltext PIndex: {e}")))?;
        for segment in index
            .searchable_segments()
            .map_err(|e| corrupt(e.to_string()))?
        {
            let (kept, alive) = kept_docs(&segment, field, partitions).map_err(corrupt)?;
            if alive > 0 {
                docs += alive;
                segments.push(segment);
                filters.push(Some(kept));
            }
        }
    }
    let Some(schema) = schema else {
        return Err(IndexError::Storage("regrouping: no PIndex given".into()));
    };
    std::fs::create_dir_all(out).map_err(IndexError::storage)?;
    let index = if segments.is_empty() {
        Index::create_in_dir(out, schema).map_err(IndexError::storage)?
    } else {
        let directory = MmapDirectory::open(out).map_err(IndexError::storage)?;
        let settings = settings.unwrap_or_default();
        tantivy::indexer::merge_filtered_segments(&segments, settings, filters, directory)
            .map_err(IndexError::storage)?
    };
    // The merge's own commit carries tantivy's note, not checkpoints: commit once more with them.
    let mut writer = index
        .writer_with_num_threads::<tantivy::TantivyDocument>(1, COMMIT_MEMORY)
        .map_err(IndexError::storage)?;
    let mut prepared = writer.prepare_commit().map_err(IndexError::storage)?;
    prepared.set_payload(&checkpoint::encode(checkpoints));
    prepared.commit().map_err(IndexError::storage)?;
    writer.wait_merging_threads().map_err(IndexError::storage)?;
    Ok(docs)
}

/// Of `segment`, the documents of `partitions` (as a filter for the merge, which also drops
/// the segment's deleted ones), and how many of them are not deleted.
fn kept_docs(
    segment: &Segment,
    field: Field,
    partitions: &BTreeSet<u32>,
) -> Result<(AliveBitSet, u64), String> {
    let reader = SegmentReader::open(segment).map_err(|e| e.to_string())?;
    let postings = reader.inverted_index(field).map_err(|e| e.to_string())?;
    let mut kept = BitSet::with_max_value(reader.max_doc());
    let mut alive = 0u64;
    for &p in partitions {
        let term = Term::from_field_u64(field, u64::from(p));
        let Some(mut docs) = postings
            .read_postings(&term, IndexRecordOption::Basic)
            .map_err(|e| e.to_string())?
        else {
            continue;
        };
        let mut doc = docs.doc();
        while doc != TERMINATED {
            kept.insert(doc);
            if reader.alive_bitset().is_none_or(|a| a.is_alive(doc)) {
                alive += 1;
            }
            doc = docs.advance();
        }
    }
    let mut bytes = Vec::new();
    write_alive_bitset(&kept, &mut bytes).map_err(|e| e.to_string())?;
    Ok((AliveBitSet::open(OwnedBytes::new(bytes)), alive))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fulltext::FulltextPIndex;
    use crate::mapping::Mapping;
    use crate::{Change, PIndex};

    fn dynamic() -> Mapping {
        Mapping::from_params(&serde_json::Value::Null).unwrap()
    }

    /// A PIndex in `dir` with documents `p<partition>-<i>` (`per` per partition) of each of
    /// `partitions`, each partition's checkpoint at seq `per`; `deleted` keys deleted after.
    fn build(dir: &Path, partitions: std::ops::Range<u32>, per: u64, deleted: &[&str]) {
        let mut pindex = FulltextPIndex::open(dir, &dynamic()).unwrap();
        for p in partitions {
            for i in 0..per {
                let doc = format!(r#"{{"title": "document {i} of partition {p}"}}"#);
                let key = format!("p{p}-{i}");
                let put = Change::Put {
                    key: &key,
                    doc: doc.as_bytes(),
                };
                pindex.apply(p, &format!("u{p}"), i + 1, put).unwrap();
            }
            // One commit per partition: several segments per PIndex.
            pindex.commit().unwrap();
        }
        for key in deleted {
            let p: u32 = key[1..key.find('-').unwrap()].parse().unwrap();
            pindex
                .apply(p, &format!("u{p}"), per + 1, Change::Delete { key })
                .unwrap();
        }
        pindex.commit().unwrap();
    }

    fn points(partitions: std::ops::Range<u32>, seq: u64) -> Checkpoints {
        partitions
            .map(|p| {
                let point = crate::Checkpoint {
                    seq,
                    partition_uuid: format!("u{p}"),
                };
                (p, point)
            })
            .collect()
    }

    /// Live document keys of the PIndex in `dir`.
    fn keys(dir: &Path) -> BTreeSet<String> {
        let pindex = FulltextPIndex::open(dir, &dynamic()).unwrap();
        let searcher = pindex.index().reader().unwrap().searcher();
        let id = pindex.index().schema().get_field("_id").unwrap();
        let mut out = BTreeSet::new();
        for segment in searcher.segment_readers() {
            let store = segment.get_store_reader(1).unwrap();
            for doc in segment.doc_ids_alive() {
                let doc: tantivy::TantivyDocument = store.get(doc).unwrap();
                use tantivy::schema::Value;
                let key = doc.get_first(id).and_then(|v| v.as_str()).unwrap();
                out.insert(key.to_string());
            }
        }
        out
    }

    #[test]
    fn documents_of_the_asked_partitions_are_carried_over_with_the_given_checkpoints() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        build(&a, 0..4, 5, &["p1-3"]);
        build(&b, 4..8, 5, &[]);
        // 2..6: half of each, across the old boundary.
        let wanted: BTreeSet<u32> = (2..6).collect();
        let out = tmp.path().join("out");
        let docs = regroup(&[a, b], &wanted, &points(2..6, 5), &out).unwrap();
        assert_eq!(docs, 20);
        let expected: BTreeSet<String> = (2..6)
            .flat_map(|p| (0..5).map(move |i| format!("p{p}-{i}")))
            .collect();
        assert_eq!(keys(&out), expected);
        let pindex = FulltextPIndex::open(&out, &dynamic()).unwrap();
        assert_eq!(pindex.committed(), &points(2..6, 5));
        assert_eq!(pindex.doc_count().unwrap(), 20);
    }

    #[test]
    fn deleted_documents_stay_deleted_and_a_merge_of_whole_pindexes_keeps_all() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        build(&a, 0..2, 3, &["p0-1"]);
        build(&b, 2..4, 3, &["p3-0", "p3-2"]);
        let out = tmp.path().join("out");
        let wanted: BTreeSet<u32> = (0..4).collect();
        let docs = regroup(&[a, b], &wanted, &points(0..4, 4), &out).unwrap();
        assert_eq!(docs, 12 - 3);
        let got = keys(&out);
        assert_eq!(got.len(), 9);
        for gone in ["p0-1", "p3-0", "p3-2"] {
            assert!(!got.contains(gone), "{gone} came back");
        }
        // The regrouped PIndex takes new changes like any other.
        let mut pindex = FulltextPIndex::open(&out, &dynamic()).unwrap();
        let put = Change::Put {
            key: "p0-9",
            doc: br#"{"title": "new"}"#,
        };
        pindex.apply(0, "u0", 5, put).unwrap();
        pindex.commit().unwrap();
        assert_eq!(pindex.doc_count().unwrap(), 10);
    }

    #[test]
    fn partitions_with_no_document_make_an_empty_pindex_with_checkpoints() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        build(&a, 0..2, 2, &[]);
        let out = tmp.path().join("out");
        let wanted = BTreeSet::from([7]);
        assert_eq!(regroup(&[a], &wanted, &points(7..8, 3), &out).unwrap(), 0);
        let pindex = FulltextPIndex::open(&out, &dynamic()).unwrap();
        assert_eq!(pindex.doc_count().unwrap(), 0);
        assert_eq!(pindex.committed(), &points(7..8, 3));
    }

    #[test]
    fn an_existing_target_or_a_damaged_part_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        build(&a, 0..1, 1, &[]);
        let wanted = BTreeSet::from([0]);
        let err = regroup(std::slice::from_ref(&a), &wanted, &Checkpoints::new(), &a).unwrap_err();
        assert!(err.to_string().contains("exists"), "{err}");
        let junk = tmp.path().join("junk");
        std::fs::create_dir_all(&junk).unwrap();
        std::fs::write(junk.join("meta.json"), b"not json").unwrap();
        let out = tmp.path().join("out");
        let err = regroup(&[junk], &wanted, &Checkpoints::new(), &out).unwrap_err();
        assert!(matches!(err, IndexError::Corrupt { .. }), "{err}");
    }
}
