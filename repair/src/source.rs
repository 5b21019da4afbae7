//! Repairs of the reference source's log (`<data-dir>/source.redb`): inspect, check, plan,
//! apply (or its dry run), rollback. The log file is opened alone, so a running node or
//! source refuses the repair; the result is built in a copy beside the original, validated,
//! then renamed over it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use tessera_source::log::repair::{Finding, LogEdit, LogFile, RawEntry, RawPartition};

use crate::edits::EditList;
use crate::workspace::{self, JournalEntry, Workspace};
use crate::RepairError;

/// The log file of a data dir.
pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("source.redb")
}

/// The log read through a copy made under the file's lock (refused while the log is in
/// use): reading never changes the original's bytes.
fn read_copy(
    data_dir: &Path,
    ws: &Workspace,
) -> Result<(LogFile, workspace::Scratch), RepairError> {
    let original = log_path(data_dir);
    if !original.exists() {
        return Err(RepairError::Damaged(format!(
            "no source log at {}",
            original.display()
        )));
    }
    let _held = workspace::FileLock::exclusive(&original)?;
    let scratch = ws.scratch()?;
    let copy = scratch.join("read.redb");
    workspace::copy_synced(&original, &copy)?;
    Ok((LogFile::open(&copy)?, scratch))
}

/// What `inspect` selects.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub source: Option<String>,
    pub partition: Option<u32>,
    pub from: Option<u64>,
    pub to: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct Inspection {
    pub partitions: Vec<RawPartition>,
    pub entries: Vec<RawEntry>,
    /// Entries shown, and how many of them are puts, deletes and unreadable.
    pub counts: BTreeMap<&'static str, u64>,
}

pub fn inspect(data_dir: &Path, filter: &Filter) -> Result<Inspection, RepairError> {
    let ws = Workspace::new(data_dir);
    let _lock = ws.lock("source inspect")?;
    let (file, _scratch) = read_copy(data_dir, &ws)?;
    let mut partitions = file.partitions(filter.source.as_deref())?;
    if let Some(p) = filter.partition {
        partitions.retain(|x| x.partition == p);
    }
    let entries = file.entries(
        filter.source.as_deref(),
        filter.partition,
        filter.from.unwrap_or(0),
        filter.to.unwrap_or(u64::MAX),
    )?;
    let mut counts = BTreeMap::from([("entries", entries.len() as u64)]);
    for e in &entries {
        let kind = if e.problem.is_some() {
            "unreadable_or_inconsistent"
        } else {
            e.op.unwrap_or("?")
        };
        *counts.entry(kind).or_default() += 1;
    }
    Ok(Inspection {
        partitions,
        entries,
        counts,
    })
}

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub file: PathBuf,
    /// Whether the log file opens at all.
    pub opens: bool,
    pub error: Option<String>,
    pub findings: Vec<Finding>,
}

impl CheckReport {
    pub fn clean(&self) -> bool {
        self.opens && self.findings.is_empty()
    }
}

/// Reads every entry; a file that does not open is reported, not an error (a file in use is).
pub fn check(data_dir: &Path) -> Result<CheckReport, RepairError> {
    let path = log_path(data_dir);
    let ws = Workspace::new(data_dir);
    let _lock = ws.lock("source check")?;
    match read_copy(data_dir, &ws) {
        Ok((file, _scratch)) => Ok(CheckReport {
            file: path,
            opens: true,
            error: None,
            findings: file.check()?,
        }),
        Err(RepairError::Damaged(why)) => Ok(CheckReport {
            file: path,
            opens: false,
            error: Some(why),
            findings: Vec::new(),
        }),
        Err(e) => Err(e),
    }
}

/// The edits that repair what `report` found: each run of unreadable or inconsistent entries
/// of a partition deleted. `None` when there is nothing an edit can repair (a clean log, or
/// one that does not open — its salvage is not automated yet).
pub fn plan(report: &CheckReport) -> Option<EditList<LogEdit>> {
    let mut runs: BTreeMap<(String, u32), Vec<(u64, u64)>> = BTreeMap::new();
    for f in &report.findings {
        let (Some(p), Some(seq)) = (f.partition, f.seq) else {
            continue;
        };
        let list = runs.entry((f.source.clone(), p)).or_default();
        match list.last_mut() {
            Some((_, to)) if *to + 1 == seq => *to = seq,
            _ => list.push((seq, seq)),
        }
    }
    let edits: Vec<LogEdit> = runs
        .into_iter()
        .flat_map(|((source, partition), list)| {
            list.into_iter()
                .map(move |(from_seq, to_seq)| LogEdit::Delete {
                    source: source.clone(),
                    partition,
                    from_seq,
                    to_seq,
                })
        })
        .collect();
    (!edits.is_empty()).then_some(EditList { edits })
}

/// Entries per partition (`source/partition`) and documents present per source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub entries: BTreeMap<String, u64>,
    pub documents: BTreeMap<String, u64>,
}

fn counts(file: &LogFile) -> Result<Counts, RepairError> {
    let mut out = Counts::default();
    for p in file.partitions(None)? {
        out.documents.entry(p.source.clone()).or_default();
        out.entries
            .insert(format!("{}/{}", p.source, p.partition), p.entries);
    }
    for (source, docs) in out.documents.iter_mut() {
        *docs = file.present_keys(source)?;
    }
    Ok(out)
}

/// What an apply (or its dry run) did.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub dry_run: bool,
    /// The backup of the original (not for a dry run).
    pub backup: Option<String>,
    pub deleted: BTreeMap<String, u64>,
    pub replaced: BTreeMap<String, u64>,
    pub added: BTreeMap<String, u64>,
    /// Partitions with a new uuid: `source/partition` → (old, new).
    pub new_uuids: BTreeMap<String, (String, String)>,
    pub before: Counts,
    pub after: Counts,
    /// What the cluster does about it once the source runs again.
    pub cluster: String,
}

fn by_name<T: Clone>(m: &BTreeMap<(String, u32), T>) -> BTreeMap<String, T> {
    m.iter()
        .map(|((s, p), v)| (format!("{s}/{p}"), v.clone()))
        .collect()
}

/// Applies `edits` to a copy of the log, validates it, and (unless `dry_run`) backs the
/// original up and swaps the copy in.
pub fn apply(
    data_dir: &Path,
    edits: &EditList<LogEdit>,
    dry_run: bool,
) -> Result<Outcome, RepairError> {
    let ws = Workspace::new(data_dir);
    let _lock = ws.lock(if dry_run {
        "source dry run"
    } else {
        "source apply"
    })?;
    let original = log_path(data_dir);
    // Held until the swap: no node opens the log meanwhile, and the original's bytes (the
    // backup's) are those it had when the repair began.
    let _held = workspace::FileLock::exclusive(&original)?;
    let scratch = ws.scratch()?;
    let (before, findings_before) = {
        let copy = scratch.join("before.redb");
        workspace::copy_synced(&original, &copy)?;
        let file = LogFile::open(&copy)?;
        (counts(&file)?, file.check()?)
    };
    let result = if dry_run {
        scratch.join("source.redb")
    } else {
        original.with_extension("redb.repairing")
    };
    workspace::copy_synced(&original, &result)?;
    let outcome = match build(&result, edits, &before, &findings_before) {
        Ok(o) => o,
        Err(e) => {
            let _ = std::fs::remove_file(&result);
            return Err(e);
        }
    };
    let mut outcome = Outcome { dry_run, ..outcome };
    if dry_run {
        return Ok(outcome);
    }
    let backup = ws.back_up("source", &[("source.redb", &original)])?;
    workspace::swap_in(&result, &original)?;
    outcome.backup = Some(backup.id.clone());
    ws.journal(&JournalEntry {
        at_ms: workspace::now_ms(),
        action: "apply".into(),
        kind: "source".into(),
        backup: backup.id,
        what: serde_json::to_value(edits).unwrap_or_default(),
        before: serde_json::to_value(&outcome.before).unwrap_or_default(),
        after: serde_json::to_value(&outcome.after).unwrap_or_default(),
    })?;
    Ok(outcome)
}

/// Applies the edits to the copy at `path` and validates it.
fn build(
    path: &Path,
    edits: &EditList<LogEdit>,
    before: &Counts,
    findings_before: &[Finding],
) -> Result<Outcome, RepairError> {
    let file = LogFile::open(path)?;
    let applied = file.apply(&edits.edits)?;
    let after = counts(&file)?;
    let (added, deleted) = (by_name(&applied.added), by_name(&applied.deleted));
    // Entries: before + added − deleted, partition by partition.
    for (name, was) in &before.entries {
        let added = added.get(name).copied().unwrap_or(0);
        let deleted = deleted.get(name).copied().unwrap_or(0);
        let now = after.entries.get(name).copied().unwrap_or(0);
        if now + deleted != was + added {
            return Err(RepairError::Validation(format!(
                "partition {name}: {now} entries, expected {was} + {added} added - {deleted} deleted"
            )));
        }
    }
    // Nothing new is wrong, and nothing is wrong where an edit went.
    let edited: BTreeSet<(String, u32)> = edits
        .edits
        .iter()
        .map(|e| (e.source().to_string(), e.partition()))
        .collect();
    for f in file.check()? {
        let in_edited = f
            .partition
            .is_some_and(|p| edited.contains(&(f.source.clone(), p)));
        if in_edited || !findings_before.contains(&f) {
            return Err(RepairError::Validation(format!(
                "{} partition {:?} seq {:?}: {}",
                f.source, f.partition, f.seq, f.what
            )));
        }
    }
    let new_uuids = by_name(&applied.uuids);
    let cluster = if new_uuids.is_empty() {
        "nothing: no partition's history changed".to_string()
    } else {
        format!(
            "when the source runs again, the feeds of partitions {} see new partition uuids, roll back and re-read them from the start; a PIndex whose every partition changed is held as an incident until `ingestControl/accept-rollback`",
            new_uuids.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    };
    Ok(Outcome {
        dry_run: true,
        backup: None,
        deleted,
        replaced: by_name(&applied.replaced),
        added,
        new_uuids,
        before: before.clone(),
        after,
        cluster,
    })
}

#[derive(Debug, Serialize)]
pub struct RolledBack {
    pub backup: String,
    pub file: PathBuf,
    pub crc32: u32,
}

/// Puts backup `id`'s log back, byte for byte (checked against the backup's CRC-32).
pub fn rollback(data_dir: &Path, id: &str) -> Result<RolledBack, RepairError> {
    let ws = Workspace::new(data_dir);
    let _lock = ws.lock("source rollback")?;
    let (backup, dir) = ws.backup(id)?;
    if backup.kind != "source" {
        return Err(RepairError::Invalid(format!(
            "backup {id} is a {} backup, not a source one",
            backup.kind
        )));
    }
    let saved = backup
        .files
        .iter()
        .find(|f| f.name == "source.redb")
        .ok_or_else(|| RepairError::Damaged(format!("backup {id} holds no source.redb")))?;
    let original = log_path(data_dir);
    // Refused while the log is in use; held until the swap.
    let _held = if original.exists() {
        Some(workspace::FileLock::exclusive(&original)?)
    } else {
        None
    };
    let staged = original.with_extension("redb.rollback");
    workspace::copy_synced(&dir.join(&saved.name), &staged)?;
    let (crc32, size) = workspace::crc_of(&staged)?;
    if (crc32, size) != (saved.crc32, saved.size) {
        let _ = std::fs::remove_file(&staged);
        return Err(RepairError::Damaged(format!(
            "backup {id}: source.redb has CRC-32 {crc32:08x} and {size} bytes, its manifest says {:08x} and {}",
            saved.crc32, saved.size
        )));
    }
    workspace::swap_in(&staged, &original)?;
    ws.journal(&JournalEntry {
        at_ms: workspace::now_ms(),
        action: "rollback".into(),
        kind: "source".into(),
        backup: id.to_string(),
        what: serde_json::json!({"restored": original}),
        before: serde_json::Value::Null,
        after: serde_json::json!({"crc32": crc32, "size": size}),
    })?;
    Ok(RolledBack {
        backup: id.to_string(),
        file: original,
        crc32,
    })
}

#[cfg(test)]
mod tests;
