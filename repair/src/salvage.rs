//! Salvage of a source whose log cannot be read (the file does not open, or the source is
//! missing from it): a new history built from the documents this node's PIndexes of it store.
//! It holds each document present in those PIndexes once, as one entry at a fresh seq of the
//! partition its key routes to, in partitions with new uuids. What it cannot hold: deleted
//! documents' history, and fields an explicit mapping does not store (a dynamic mapping stores
//! the whole document). The unreadable file is backed up first, like every apply.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use tessera_source::log::repair::LogFile;
use tessera_source::{Append, SourceLog};

use crate::workspace::{self, FileLock, JournalEntry, Workspace};
use crate::RepairError;

/// What to salvage, and from which PIndexes (directories under `<data-dir>/pindexes`).
#[derive(Debug, Clone, Serialize)]
pub struct SalvageSpec {
    pub source: String,
    pub partitions: u32,
    pub pindexes: Vec<String>,
}

/// A PIndex a salvage could read.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub pindex: String,
    pub docs: u64,
}

/// The PIndexes of this data dir that read, with their documents.
pub fn candidates(data_dir: &Path) -> Vec<Candidate> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(data_dir.join("pindexes")) else {
        return out;
    };
    for dir in dirs.flatten() {
        let Some(name) = dir.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if let Ok(docs) = tessera_index::fulltext::stored::document_count(&dir.path()) {
            out.push(Candidate { pindex: name, docs });
        }
    }
    out.sort_by(|a, b| a.pindex.cmp(&b.pindex));
    out
}

#[derive(Debug, Serialize)]
pub struct Salvaged {
    pub dry_run: bool,
    pub backup: Option<String>,
    /// Documents the new history holds, and how many each PIndex gave.
    pub documents: u64,
    pub from: BTreeMap<String, u64>,
    /// Whether the log it went into was a new one (the old file did not open).
    pub new_log: bool,
    pub cluster: String,
}

pub fn salvage(
    data_dir: &Path,
    spec: &SalvageSpec,
    dry_run: bool,
) -> Result<Salvaged, RepairError> {
    if spec.partitions == 0 || spec.pindexes.is_empty() {
        return Err(RepairError::Invalid(
            "salvage: give --partitions and at least one --from-pindex".into(),
        ));
    }
    let ws = Workspace::new(data_dir);
    let _lock = ws.lock(if dry_run {
        "source salvage dry run"
    } else {
        "source salvage"
    })?;
    let original = crate::source::log_path(data_dir);
    let _held = if original.exists() {
        Some(FileLock::exclusive(&original)?)
    } else {
        None
    };
    // Every document once, by key (copies of one partition in several PIndexes agree).
    let mut docs: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut from = BTreeMap::new();
    for name in &spec.pindexes {
        let dir = crate::pindex::pindex_dir(data_dir, name)?;
        let read = tessera_index::fulltext::stored::stored_documents(&dir)
            .map_err(|e| RepairError::Damaged(format!("PIndex {name}: {e}")))?;
        from.insert(name.clone(), read.len() as u64);
        docs.extend(read);
    }
    let scratch = ws.scratch()?;
    let result = if dry_run {
        scratch.join("source.redb")
    } else {
        original.with_extension("redb.repairing")
    };
    let _ = std::fs::remove_file(&result);
    // Into the old log when it reads (it then must not have the source), else a new one.
    let opens = original.exists()
        && {
            let probe = scratch.join("probe.redb");
            workspace::copy_synced(&original, &probe)?;
            match LogFile::open(&probe) {
                Ok(file) => {
                    if !file.partitions(Some(&spec.source))?.is_empty() {
                        return Err(RepairError::Invalid(format!(
                        "the log reads and has source `{}`: repair it with `check`/`plan`/`apply`, salvage is for what cannot be read",
                        spec.source
                    )));
                    }
                    drop(file);
                    // The copy becomes the result (the scratch dir is in the data dir).
                    std::fs::rename(&probe, &result).map_err(RepairError::io(format!(
                        "renaming {} to {}",
                        probe.display(),
                        result.display()
                    )))?;
                    true
                }
                Err(_) => false,
            }
        };
    let written = write(&result, spec, &docs);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&result);
        return Err(e);
    }
    let mut outcome = Salvaged {
        dry_run,
        backup: None,
        documents: docs.len() as u64,
        from,
        new_log: !opens,
        cluster: format!(
            "every partition of `{}` has a new uuid: feeds of its indexes find their whole history replaced and hold (an incident) until `POST /api/index/NAME/ingestControl/accept-rollback`; then they drop their documents and read the salvaged ones",
            spec.source
        ),
    };
    if dry_run {
        return Ok(outcome);
    }
    let backup = if original.exists() {
        ws.back_up("source", &[("source.redb", &original)])?.id
    } else {
        String::new()
    };
    workspace::swap_in(&result, &original)?;
    ws.journal(&JournalEntry {
        at_ms: workspace::now_ms(),
        action: "salvage".into(),
        kind: "source".into(),
        backup: backup.clone(),
        what: serde_json::to_value(spec).unwrap_or_default(),
        before: serde_json::json!({"opens": opens}),
        after: serde_json::json!({"documents": outcome.documents}),
    })?;
    outcome.backup = (!backup.is_empty()).then_some(backup);
    Ok(outcome)
}

/// Writes the documents as a new history of the source into the log at `path`, and checks it.
fn write(
    path: &Path,
    spec: &SalvageSpec,
    docs: &BTreeMap<String, serde_json::Value>,
) -> Result<(), RepairError> {
    {
        let log = SourceLog::open(path, spec.partitions)?;
        let items: Vec<Append> = docs
            .iter()
            .map(|(key, doc)| Append::Put {
                key: key.clone(),
                doc: doc.to_string().into_bytes(),
            })
            .collect();
        for chunk in items.chunks(1000) {
            log.append(&spec.source, chunk)?;
        }
    }
    let file = LogFile::open(path)?;
    let present = file.present_keys(&spec.source)?;
    if present != docs.len() as u64 {
        return Err(RepairError::Validation(format!(
            "the salvaged log holds {present} documents of `{}`, {} were read",
            spec.source,
            docs.len()
        )));
    }
    if let Some(f) = file.check()?.first() {
        return Err(RepairError::Validation(f.what.clone()));
    }
    Ok(())
}
