//! Repairs of a `fulltext` PIndex directory (`<data-dir>/pindexes/<name>`): inspect, check,
//! plan, apply (or its dry run), rollback. The node must be stopped: its source log's lock
//! (`<data-dir>/source.redb`, held by every running node) is taken for the whole repair.
//! Edits run on a copy of the directory, which is validated and then exchanged with the
//! original in one step; `rebuild` sets the directory aside so the node builds it anew.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tessera_index::fulltext::repair::{self as format, Inspection, PIndexEdit};

use crate::edits::EditList;
use crate::workspace::{self, FileLock, JournalEntry, Workspace};
use crate::RepairError;

/// The directory of PIndex `name` in `data_dir`.
pub fn pindex_dir(data_dir: &Path, name: &str) -> Result<PathBuf, RepairError> {
    let ok = !name.is_empty() && !name.contains('/') && !name.starts_with('.') && name.len() <= 255;
    if !ok {
        return Err(RepairError::Invalid(format!(
            "`{name}` is not a PIndex name"
        )));
    }
    Ok(data_dir.join("pindexes").join(name))
}

/// The data dir and PIndex name a command line names: a PIndex directory
/// (`<data-dir>/pindexes/<name>`, any path with a `/`) or a name under `data_dir`.
pub fn locate(data_dir: &Path, target: &str) -> Result<(PathBuf, String), RepairError> {
    if !target.contains('/') {
        return Ok((data_dir.to_path_buf(), target.to_string()));
    }
    let dir = Path::new(target.trim_end_matches('/'));
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| RepairError::Invalid(format!("`{target}` is not a PIndex directory")))?;
    let pindexes = dir
        .parent()
        .filter(|p| p.file_name().is_some_and(|n| n == "pindexes"));
    let data = pindexes.and_then(Path::parent).ok_or_else(|| {
        RepairError::Invalid(format!(
            "`{target}` is not under a data dir's `pindexes/`: the node that owns it cannot be told"
        ))
    })?;
    let data = if data.as_os_str().is_empty() {
        Path::new(".")
    } else {
        data
    };
    Ok((data.to_path_buf(), name.to_string()))
}

/// The node's own lock, held for a repair: refused while the node runs.
fn node_stopped(data_dir: &Path) -> Result<Option<FileLock>, RepairError> {
    let log = crate::source::log_path(data_dir);
    if log.exists() {
        Ok(Some(FileLock::exclusive(&log).map_err(|e| match e {
            RepairError::InUse(_) => RepairError::InUse(format!(
                "the node of {} runs (it holds {}): stop it first",
                data_dir.display(),
                log.display()
            )),
            other => other,
        })?))
    } else {
        Ok(None)
    }
}

fn existing(data_dir: &Path, name: &str) -> Result<PathBuf, RepairError> {
    let dir = pindex_dir(data_dir, name)?;
    if !dir.is_dir() {
        return Err(RepairError::Invalid(format!(
            "no PIndex directory {}",
            dir.display()
        )));
    }
    Ok(dir)
}

fn read(dir: &Path) -> Result<Inspection, RepairError> {
    format::inspect(dir).map_err(|e| RepairError::Damaged(e.to_string()))
}

pub fn inspect(data_dir: &Path, name: &str) -> Result<Inspection, RepairError> {
    let _held = node_stopped(data_dir)?;
    read(&existing(data_dir, name)?)
}

/// The edits that repair what `inspection` shows: orphans dropped, damaged segments dropped
/// (with the partitions they held); a directory whose commit does not read is rebuilt.
pub fn plan(inspection: &Inspection) -> Option<EditList<PIndexEdit>> {
    if !inspection.problems.is_empty() {
        return Some(EditList {
            edits: vec![PIndexEdit::Rebuild],
        });
    }
    let mut edits = Vec::new();
    if !inspection.orphans.is_empty() {
        edits.push(PIndexEdit::DropOrphans);
    }
    for s in inspection.damaged_segments() {
        edits.push(PIndexEdit::DropSegment {
            segment: s.id.clone(),
        });
    }
    (!edits.is_empty()).then_some(EditList { edits })
}

/// What an apply (or its dry run) did.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub dry_run: bool,
    pub backup: Option<String>,
    pub rebuilt: bool,
    pub dropped_segments: Vec<String>,
    pub removed_files: Vec<String>,
    /// Partitions whose documents and checkpoints were dropped.
    pub lowered: Vec<u32>,
    pub docs_before: u64,
    pub docs_after: u64,
    /// What the node does about it when it starts.
    pub node: String,
}

pub fn apply(
    data_dir: &Path,
    name: &str,
    edits: &EditList<PIndexEdit>,
    dry_run: bool,
) -> Result<Outcome, RepairError> {
    let ws = Workspace::new(data_dir);
    let _lock = ws.lock(if dry_run {
        "pindex dry run"
    } else {
        "pindex apply"
    })?;
    let _held = node_stopped(data_dir)?;
    let dir = existing(data_dir, name)?;
    let before = read(&dir)?;
    if edits.edits.contains(&PIndexEdit::Rebuild) {
        if edits.edits.len() > 1 {
            return Err(RepairError::Invalid(
                "`rebuild` replaces every other edit: give it alone".into(),
            ));
        }
        let mut outcome = Outcome {
            dry_run,
            backup: None,
            rebuilt: true,
            dropped_segments: Vec::new(),
            removed_files: Vec::new(),
            lowered: before.checkpoints.keys().copied().collect(),
            docs_before: before.docs,
            docs_after: 0,
            node: "the node finds no directory for the PIndex and builds it from its source (a backfill)".into(),
        };
        if !dry_run {
            let backup = back_up(&ws, &dir)?;
            std::fs::remove_dir_all(&dir)
                .map_err(RepairError::io(format!("removing {}", dir.display())))?;
            journal(&ws, "apply", &backup, edits, &outcome)?;
            outcome.backup = Some(backup);
        }
        return Ok(outcome);
    }
    let scratch = ws.scratch()?;
    let work = if dry_run {
        scratch.join(name)
    } else {
        dir.with_extension("repairing")
    };
    workspace::copy_dir(&dir, &work)?;
    let built = build(&work, edits, &before);
    let mut outcome = match built {
        Ok(o) => o,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work);
            return Err(e);
        }
    };
    outcome.dry_run = dry_run;
    if dry_run {
        return Ok(outcome);
    }
    let backup = back_up(&ws, &dir)?;
    workspace::exchange(&work, &dir)?;
    std::fs::remove_dir_all(&work)
        .map_err(RepairError::io(format!("removing {}", work.display())))?;
    journal(&ws, "apply", &backup, edits, &outcome)?;
    outcome.backup = Some(backup);
    Ok(outcome)
}

fn build(
    work: &Path,
    edits: &EditList<PIndexEdit>,
    before: &Inspection,
) -> Result<Outcome, RepairError> {
    let applied =
        format::apply(work, &edits.edits).map_err(|e| RepairError::Invalid(e.to_string()))?;
    let after = read(work)?;
    let fail = |why: String| Err(RepairError::Validation(why));
    if !after.problems.is_empty() {
        return fail(after.problems.join("; "));
    }
    if let Some(s) = after.damaged_segments().first() {
        return fail(format!(
            "segment {} still has damaged files {:?}",
            s.id, s.damaged
        ));
    }
    if edits.edits.contains(&PIndexEdit::DropOrphans) && !after.orphans.is_empty() {
        return fail(format!("orphans left: {:?}", after.orphans));
    }
    let lowered: BTreeSet<u32> = applied.lowered.iter().copied().collect();
    for (p, c) in &before.checkpoints {
        match after.checkpoints.get(p) {
            Some(_) if lowered.contains(p) => {
                return fail(format!("partition {p} kept its checkpoint"))
            }
            Some(now) if now != c => return fail(format!("partition {p}'s checkpoint changed")),
            None if !lowered.contains(p) => {
                return fail(format!("partition {p} lost its checkpoint"))
            }
            _ => {}
        }
    }
    let left = format::docs_by_partition(work, &applied.lowered)
        .map_err(|e| RepairError::Damaged(e.to_string()))?;
    if let Some((p, n)) = left.iter().find(|(_, n)| **n > 0) {
        return fail(format!("partition {p} still has {n} documents"));
    }
    Ok(Outcome {
        dry_run: true,
        backup: None,
        rebuilt: false,
        dropped_segments: applied.dropped_segments,
        removed_files: applied.removed_files,
        node: if lowered.is_empty() {
            "nothing more: no partition's documents were dropped".into()
        } else {
            format!("the feed re-reads partitions {:?} from the start; the PIndex serves with exact counts once caught up", applied.lowered)
        },
        lowered: applied.lowered,
        docs_before: before.docs,
        docs_after: after.docs,
    })
}

fn back_up(ws: &Workspace, dir: &Path) -> Result<String, RepairError> {
    let entries =
        std::fs::read_dir(dir).map_err(RepairError::io(format!("reading {}", dir.display())))?;
    let mut names = Vec::new();
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            names.push((
                format!("pindex/{}", entry.file_name().to_string_lossy()),
                entry.path(),
            ));
        }
    }
    let files: Vec<(&str, &Path)> = names
        .iter()
        .map(|(n, p)| (n.as_str(), p.as_path()))
        .collect();
    Ok(ws.back_up("pindex", &files)?.id)
}

fn journal(
    ws: &Workspace,
    action: &str,
    backup: &str,
    edits: &EditList<PIndexEdit>,
    outcome: &Outcome,
) -> Result<(), RepairError> {
    ws.journal(&JournalEntry {
        at_ms: workspace::now_ms(),
        action: action.into(),
        kind: "pindex".into(),
        backup: backup.into(),
        what: serde_json::to_value(edits).unwrap_or_default(),
        before: serde_json::json!({"docs": outcome.docs_before}),
        after: serde_json::json!({"docs": outcome.docs_after, "lowered": outcome.lowered}),
    })
}

#[derive(Debug, Serialize)]
pub struct RolledBack {
    pub backup: String,
    pub dir: PathBuf,
    pub files: usize,
}

/// Puts the directory of backup `id` back, every file checked against its CRC-32.
pub fn rollback(data_dir: &Path, id: &str) -> Result<RolledBack, RepairError> {
    let ws = Workspace::new(data_dir);
    let _lock = ws.lock("pindex rollback")?;
    let _held = node_stopped(data_dir)?;
    let (backup, saved) = ws.backup(id)?;
    if backup.kind != "pindex" {
        return Err(RepairError::Invalid(format!(
            "backup {id} is a {} backup, not a pindex one",
            backup.kind
        )));
    }
    let dir = backup
        .files
        .first()
        .and_then(|f| f.original.parent())
        .map(Path::to_path_buf)
        .ok_or_else(|| RepairError::Damaged(format!("backup {id} holds no file")))?;
    let staged = dir.with_extension("rollback");
    let _ = std::fs::remove_dir_all(&staged);
    std::fs::create_dir_all(&staged)
        .map_err(RepairError::io(format!("creating {}", staged.display())))?;
    for f in &backup.files {
        let Some(file_name) = f.original.file_name() else {
            continue;
        };
        let to = staged.join(file_name);
        workspace::copy_synced(&saved.join(&f.name), &to)?;
        if workspace::crc_of(&to)? != (f.crc32, f.size) {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(RepairError::Damaged(format!(
                "backup {id}: {} does not match its manifest",
                f.name
            )));
        }
    }
    if dir.exists() {
        workspace::exchange(&staged, &dir)?;
        std::fs::remove_dir_all(&staged)
            .map_err(RepairError::io(format!("removing {}", staged.display())))?;
    } else {
        workspace::swap_in(&staged, &dir)?;
    }
    ws.journal(&JournalEntry {
        at_ms: workspace::now_ms(),
        action: "rollback".into(),
        kind: "pindex".into(),
        backup: id.into(),
        what: serde_json::json!({"restored": dir}),
        before: serde_json::Value::Null,
        after: serde_json::json!({"files": backup.files.len()}),
    })?;
    Ok(RolledBack {
        backup: id.into(),
        dir,
        files: backup.files.len(),
    })
}

#[cfg(test)]
mod tests;
