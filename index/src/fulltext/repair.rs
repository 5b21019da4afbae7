//! A `fulltext` PIndex directory as a repair sees it: its segments (documents, deletes, files,
//! the source partitions their documents come from), its commit's checkpoints, files no
//! segment owns, and files whose checksums fail ([`inspect`]); and the edits a repair applies
//! to a copy of the directory ([`apply`]): drop orphan files, or drop damaged segments and the
//! documents and checkpoints of the partitions they held, so the feed re-reads exactly those
//! partitions. The workflow around it (lock, backup, validation, swap) is `tessera-repair`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use tantivy::schema::Field;
use tantivy::{Index, IndexWriter, Term};

use super::PARTITION_FIELD;
use crate::checkpoint::{self, Checkpoints};
use crate::IndexError;

/// Files a tantivy directory keeps besides its segments'.
const INDEX_FILES: [&str; 2] = ["meta.json", ".managed.json"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileInfo {
    pub name: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentInfo {
    /// The segment id, as its files are named.
    pub id: String,
    pub docs: u32,
    pub deleted: u32,
    pub files: Vec<FileInfo>,
    /// The source partitions its documents come from; `None` when the segment does not read.
    pub partitions: Option<Vec<u32>>,
    /// Its files whose checksum fails.
    pub damaged: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspection {
    pub segments: Vec<SegmentInfo>,
    pub docs: u64,
    pub deleted: u64,
    pub checkpoints: Checkpoints,
    /// Files no segment of the last commit owns (left by a crash mid-merge, say).
    pub orphans: Vec<FileInfo>,
    /// Why the directory, its commit or its payload does not read, if it does not.
    pub problems: Vec<String>,
}

impl Inspection {
    pub fn damaged_segments(&self) -> Vec<&SegmentInfo> {
        self.segments
            .iter()
            .filter(|s| !s.damaged.is_empty())
            .collect()
    }

    pub fn clean(&self) -> bool {
        self.problems.is_empty() && self.orphans.is_empty() && self.damaged_segments().is_empty()
    }
}

/// One edit of a PIndex directory (the `--edits` file's items).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum PIndexEdit {
    /// Removes the files no segment owns.
    DropOrphans,
    /// Drops the segment and every document of the partitions it held (from the other
    /// segments too), and those partitions' checkpoints: the feed re-reads them from the start.
    DropSegment { segment: String },
    /// Sets the whole directory aside: the node builds the PIndex anew from its source.
    Rebuild,
}

/// What [`apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub dropped_segments: Vec<String>,
    pub removed_files: Vec<String>,
    /// Partitions whose documents and checkpoints were dropped.
    pub lowered: Vec<u32>,
}

fn storage(e: impl std::fmt::Display) -> IndexError {
    IndexError::Storage(e.to_string())
}

fn files_of(dir: &Path) -> Result<Vec<FileInfo>, IndexError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(storage)? {
        let entry = entry.map_err(storage)?;
        if entry.file_type().map_err(storage)?.is_file() {
            out.push(FileInfo {
                name: entry.file_name().to_string_lossy().into_owned(),
                size: entry.metadata().map_err(storage)?.len(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The source partitions the documents of `segment` come from (its `_partition` terms).
fn partitions_of(
    index: &Index,
    meta: &tantivy::index::SegmentMeta,
    field: Field,
) -> Option<Vec<u32>> {
    let reader = tantivy::SegmentReader::open(&index.segment(meta.clone())).ok()?;
    let inverted = reader.inverted_index(field).ok()?;
    let mut stream = inverted.terms().stream().ok()?;
    let mut out = Vec::new();
    while stream.advance() {
        let bytes: [u8; 8] = stream.key().try_into().ok()?;
        out.push(u32::try_from(u64::from_be_bytes(bytes)).ok()?);
    }
    Some(out)
}

/// Reads `dir` without changing it.
pub fn inspect(dir: &Path) -> Result<Inspection, IndexError> {
    let files = files_of(dir)?;
    let mut problems = Vec::new();
    let index = match Index::open_in_dir(dir) {
        Ok(index) => index,
        Err(e) => {
            problems.push(format!("the index does not open: {e}"));
            return Ok(Inspection {
                segments: Vec::new(),
                docs: 0,
                deleted: 0,
                checkpoints: Checkpoints::new(),
                orphans: Vec::new(),
                problems,
            });
        }
    };
    let metas = index.load_metas().map_err(storage)?;
    let checkpoints = match metas.payload.as_deref() {
        None => Checkpoints::new(),
        Some(p) => checkpoint::decode(p).unwrap_or_else(|| {
            problems.push("the commit payload's checkpoints do not decode".into());
            Checkpoints::new()
        }),
    };
    let damaged: BTreeSet<String> = match index.validate_checksum() {
        Ok(set) => set.iter().map(|p| p.display().to_string()).collect(),
        Err(e) => {
            problems.push(format!("checksum validation failed: {e}"));
            BTreeSet::new()
        }
    };
    let field = index.schema().get_field(PARTITION_FIELD).ok();
    let mut owned = BTreeSet::new();
    let mut segments = Vec::new();
    for meta in &metas.segments {
        let id = meta.id().uuid_string();
        let mine: Vec<FileInfo> = files
            .iter()
            .filter(|f| f.name.starts_with(&id))
            .cloned()
            .collect();
        owned.extend(mine.iter().map(|f| f.name.clone()));
        segments.push(SegmentInfo {
            docs: meta.num_docs(),
            deleted: meta.num_deleted_docs(),
            partitions: field.and_then(|f| partitions_of(&index, meta, f)),
            damaged: mine
                .iter()
                .filter(|f| damaged.contains(&f.name))
                .map(|f| f.name.clone())
                .collect(),
            files: mine,
            id,
        });
    }
    let orphans = files
        .into_iter()
        .filter(|f| {
            !owned.contains(&f.name)
                && !INDEX_FILES.contains(&f.name.as_str())
                && !f.name.starts_with('.')
        })
        .collect();
    Ok(Inspection {
        docs: segments.iter().map(|s| u64::from(s.docs)).sum(),
        deleted: segments.iter().map(|s| u64::from(s.deleted)).sum(),
        segments,
        checkpoints,
        orphans,
        problems,
    })
}

/// Applies `edits` to the directory `dir` in place (a repair's copy). `Rebuild` is the
/// workflow's (it sets the whole directory aside) and is refused here.
pub fn apply(dir: &Path, edits: &[PIndexEdit]) -> Result<Applied, IndexError> {
    let before = inspect(dir)?;
    let mut applied = Applied::default();
    let mut drop: BTreeSet<String> = BTreeSet::new();
    for edit in edits {
        match edit {
            PIndexEdit::DropOrphans => {
                for f in &before.orphans {
                    std::fs::remove_file(dir.join(&f.name)).map_err(storage)?;
                    applied.removed_files.push(f.name.clone());
                }
            }
            PIndexEdit::DropSegment { segment } => {
                let id = segment.replace('-', "");
                if !before.segments.iter().any(|s| s.id == id) {
                    return Err(IndexError::Storage(format!(
                        "drop_segment: no segment `{segment}` in the last commit"
                    )));
                }
                drop.insert(id);
            }
            PIndexEdit::Rebuild => {
                return Err(IndexError::Storage(
                    "rebuild sets the whole directory aside; it is not an edit of it".into(),
                ))
            }
        }
    }
    if drop.is_empty() {
        return Ok(applied);
    }
    // The partitions the dropped segments held; every partition when one does not read.
    let all: BTreeSet<u32> = before.checkpoints.keys().copied().collect();
    let mut lowered = BTreeSet::new();
    for s in before.segments.iter().filter(|s| drop.contains(&s.id)) {
        match &s.partitions {
            Some(list) => lowered.extend(list.iter().copied()),
            None => lowered.extend(all.iter().copied()),
        }
    }
    // The commit without the dropped segments...
    let meta_path = dir.join("meta.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).map_err(storage)?).map_err(storage)?;
    if let Some(list) = meta["segments"].as_array_mut() {
        list.retain(|s| {
            let id = s["segment_id"]
                .as_str()
                .unwrap_or_default()
                .replace('-', "");
            !drop.contains(&id)
        });
    }
    std::fs::write(&meta_path, serde_json::to_vec(&meta).map_err(storage)?).map_err(storage)?;
    for s in before.segments.iter().filter(|s| drop.contains(&s.id)) {
        for f in &s.files {
            std::fs::remove_file(dir.join(&f.name)).map_err(storage)?;
            applied.removed_files.push(f.name.clone());
        }
    }
    // ...then the lowered partitions' documents and checkpoints go in one more commit.
    let index = Index::open_in_dir(dir).map_err(storage)?;
    let field = index.schema().get_field(PARTITION_FIELD).map_err(storage)?;
    let mut writer: IndexWriter = index
        .writer_with_num_threads(1, 15_000_000)
        .map_err(storage)?;
    for p in &lowered {
        writer.delete_term(Term::from_field_u64(field, u64::from(*p)));
    }
    let mut checkpoints = before.checkpoints.clone();
    checkpoints.retain(|p, _| !lowered.contains(p));
    let mut prepared = writer.prepare_commit().map_err(storage)?;
    prepared.set_payload(&checkpoint::encode(&checkpoints));
    prepared.commit().map_err(storage)?;
    writer.wait_merging_threads().map_err(storage)?;
    applied.dropped_segments = drop.into_iter().collect();
    applied.lowered = lowered.into_iter().collect();
    Ok(applied)
}

/// Documents of each partition in `dir` (for validating a repair).
pub fn docs_by_partition(dir: &Path, partitions: &[u32]) -> Result<BTreeMap<u32, u64>, IndexError> {
    let index = Index::open_in_dir(dir).map_err(storage)?;
    let field = index.schema().get_field(PARTITION_FIELD).map_err(storage)?;
    let searcher = index.reader().map_err(storage)?.searcher();
    let mut out = BTreeMap::new();
    for p in partitions {
        let query = tantivy::query::TermQuery::new(
            Term::from_field_u64(field, u64::from(*p)),
            tantivy::schema::IndexRecordOption::Basic,
        );
        let n = searcher
            .search(&query, &tantivy::collector::Count)
            .map_err(storage)?;
        out.insert(*p, n as u64);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
