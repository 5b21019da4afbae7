//! A PIndex's files at one commit, set apart while the PIndex keeps running: what a backup
//! reads (and what copying a copy to another node will read).
//!
//! A commit's files never change, but the PIndex goes on: a merge or the next commit rewrites
//! `meta.json` and deletes files no commit needs any more. So the set is taken by hard links
//! (a link keeps a file's data when the PIndex deletes its own name) into a directory of the
//! caller's, together with the bytes of the `meta.json` that lists them; if a listed file is
//! deleted before it is linked, the whole set is taken again from the newer `meta.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::checkpoint::{self, Checkpoints};
use crate::IndexError;

/// How many times a set is retaken when the PIndex moves on under it.
const ATTEMPTS: usize = 20;

/// A PIndex's files at one commit, in `dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSet {
    pub dir: PathBuf,
    /// File names (relative to `dir`), sorted.
    pub files: Vec<String>,
    /// The commit's checkpoints.
    pub checkpoints: Checkpoints,
    /// Live documents in the commit.
    pub docs: u64,
}

#[derive(Deserialize)]
struct Meta {
    segments: Vec<SegmentMeta>,
    #[serde(default)]
    payload: Option<String>,
}

#[derive(Deserialize)]
struct SegmentMeta {
    segment_id: String,
    max_doc: u64,
    #[serde(default)]
    deletes: Option<Deletes>,
}

#[derive(Deserialize)]
struct Deletes {
    num_deleted_docs: u64,
    opstamp: u64,
}

/// Sets apart the files of `kind`'s PIndex in `pindex_dir` at its last commit, linking them
/// into `into` (created; must not exist, and must be on the same file system to link — else
/// the files are copied).
pub fn take(kind: &str, pindex_dir: &Path, into: &Path) -> Result<FileSet, IndexError> {
    match kind {
        "fulltext" => take_fulltext(pindex_dir, into),
        "blackhole" => take_whole_dir(pindex_dir, into),
        other => Err(IndexError::UnknownType(other.to_string())),
    }
}

fn take_fulltext(pindex_dir: &Path, into: &Path) -> Result<FileSet, IndexError> {
    let mut last_error = String::new();
    for _ in 0..ATTEMPTS {
        if into.exists() {
            std::fs::remove_dir_all(into).map_err(IndexError::storage)?;
        }
        std::fs::create_dir_all(into).map_err(IndexError::storage)?;
        let meta_bytes =
            std::fs::read(pindex_dir.join("meta.json")).map_err(IndexError::storage)?;
        let meta: Meta = serde_json::from_slice(&meta_bytes).map_err(|e| IndexError::Corrupt {
            path: pindex_dir.to_path_buf(),
            reason: format!("meta.json: {e}"),
        })?;
        let wanted = segment_files(pindex_dir, &meta)?;
        match link_all(pindex_dir, into, &wanted) {
            Ok(()) => {
                std::fs::write(into.join("meta.json"), &meta_bytes).map_err(IndexError::storage)?;
                let checkpoints = match &meta.payload {
                    Some(p) => checkpoint::decode(p).ok_or_else(|| IndexError::Corrupt {
                        path: pindex_dir.to_path_buf(),
                        reason: "unreadable checkpoints in the commit payload".into(),
                    })?,
                    None => Checkpoints::new(),
                };
                let docs = meta
                    .segments
                    .iter()
                    .map(|s| s.max_doc - s.deletes.as_ref().map_or(0, |d| d.num_deleted_docs))
                    .sum();
                let mut files = wanted;
                files.push("meta.json".into());
                files.sort();
                return Ok(FileSet {
                    dir: into.to_path_buf(),
                    files,
                    checkpoints,
                    docs,
                });
            }
            // A merge or a commit removed a file after `meta.json` was read: read it again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => last_error = e.to_string(),
            Err(e) => return Err(IndexError::storage(e)),
        }
    }
    Err(IndexError::Storage(format!(
        "the PIndex at {} changed under every one of {ATTEMPTS} attempts to set its files apart: {last_error}",
        pindex_dir.display()
    )))
}

/// The files of the segments `meta` lists: every file named `<segment id>.<ext>` but the
/// delete files of other opstamps.
fn segment_files(pindex_dir: &Path, meta: &Meta) -> Result<Vec<String>, IndexError> {
    let mut by_segment: BTreeMap<String, Option<u64>> = BTreeMap::new();
    for s in &meta.segments {
        by_segment.insert(
            s.segment_id.replace('-', ""),
            s.deletes.as_ref().map(|d| d.opstamp),
        );
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(pindex_dir).map_err(IndexError::storage)? {
        let name = entry.map_err(IndexError::storage)?.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((id, rest)) = name.split_once('.') else {
            continue;
        };
        let Some(deletes) = by_segment.get(id) else {
            continue;
        };
        if let Some(opstamp) = rest.strip_suffix(".del") {
            if deletes.map(|o| o.to_string()).as_deref() != Some(opstamp) {
                continue;
            }
        }
        files.push(name.to_string());
    }
    Ok(files)
}

fn link_all(from: &Path, into: &Path, names: &[String]) -> std::io::Result<()> {
    for name in names {
        let (src, dst) = (from.join(name), into.join(name));
        if let Err(e) = std::fs::hard_link(&src, &dst) {
            if e.kind() == std::io::ErrorKind::NotFound {
                return Err(e);
            }
            // Another file system (or links not allowed): copy instead.
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

/// Small PIndex types that rewrite their files whole: copy everything.
fn take_whole_dir(pindex_dir: &Path, into: &Path) -> Result<FileSet, IndexError> {
    if into.exists() {
        std::fs::remove_dir_all(into).map_err(IndexError::storage)?;
    }
    std::fs::create_dir_all(into).map_err(IndexError::storage)?;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(pindex_dir).map_err(IndexError::storage)? {
        let entry = entry.map_err(IndexError::storage)?;
        if !entry.file_type().map_err(IndexError::storage)?.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_string();
        std::fs::copy(entry.path(), into.join(&name)).map_err(IndexError::storage)?;
        files.push(name);
    }
    files.sort();
    let pindex = crate::blackhole::BlackholePIndex::open(into)?;
    let checkpoints = crate::PIndex::committed(&pindex).clone();
    let docs = crate::PIndex::doc_count(&pindex)?;
    Ok(FileSet {
        dir: into.to_path_buf(),
        files,
        checkpoints,
        docs,
    })
}
