//! Repairs of a cluster's Cfg documents (etcd or embedded): `scan` names what is wrong
//! ([`tessera_cfg::scan`]); edits delete a key or replace its value, each on the revision it
//! must still have, in one transaction; the old values go to the repair's backup (in the data
//! dir of the machine running the repair) and the journal entry to both the data dir and the
//! Cfg (`repairs/<id>`). Unlike the other repairs the cluster may be running: the revisions
//! are what keep a repair from overwriting a newer write.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tessera_cfg::scan::ScanFinding;
use tessera_cfg::{Cfg, CfgError, Compare, Op, Revision, Txn};

use crate::edits::EditList;
use crate::workspace::{self, JournalEntry, Workspace};
use crate::RepairError;

/// One edit of the Cfg (the `--edits` file's items). Keys are relative to the cluster's root
/// (`indexes/books`) or absolute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum CfgEdit {
    /// Deletes the key, if it is still at `revision`.
    Delete { key: String, revision: Revision },
    /// Writes `value`, or the JSON in `value_file`, (checked against the key's schema) if the
    /// key is still at `revision`.
    Replace {
        key: String,
        revision: Revision,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<serde_json::Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value_file: Option<std::path::PathBuf>,
    },
}

impl CfgEdit {
    fn key(&self) -> &str {
        match self {
            CfgEdit::Delete { key, .. } | CfgEdit::Replace { key, .. } => key,
        }
    }

    fn revision(&self) -> Revision {
        match self {
            CfgEdit::Delete { revision, .. } | CfgEdit::Replace { revision, .. } => *revision,
        }
    }
}

fn cfg_error(e: CfgError) -> RepairError {
    match e {
        CfgError::Invalid { .. } => RepairError::Invalid(e.to_string()),
        CfgError::Unavailable { .. } => RepairError::Damaged(e.to_string()),
        other => RepairError::Damaged(other.to_string()),
    }
}

#[derive(Debug, Serialize)]
pub struct ScanReport {
    pub revision: Revision,
    pub keys: usize,
    pub findings: Vec<ScanFinding>,
}

pub async fn scan(cfg: &Cfg) -> Result<ScanReport, RepairError> {
    let listing = cfg
        .store()
        .list(cfg.keys().root())
        .await
        .map_err(cfg_error)?;
    Ok(ScanReport {
        revision: listing.revision,
        keys: listing.kvs.len(),
        findings: tessera_cfg::scan::scan(cfg.keys(), &listing.kvs),
    })
}

/// A key's value before and after.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    pub key: String,
    pub revision: Revision,
    /// The stored value (as text), `None` when absent.
    pub before: Option<String>,
    pub after: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub dry_run: bool,
    pub backup: Option<String>,
    pub changes: Vec<Change>,
    /// The store revision of the write.
    pub revision: Option<Revision>,
    /// What a scan finds once the edits are in.
    pub findings_after: Vec<ScanFinding>,
}

/// Checks every edit against the Cfg now (revision, schema) and returns the changes.
async fn changes(cfg: &Cfg, edits: &EditList<CfgEdit>) -> Result<Vec<Change>, RepairError> {
    let mut out: Vec<Change> = Vec::new();
    for edit in &edits.edits {
        let key = cfg.keys().resolve(edit.key());
        if !key.starts_with(cfg.keys().root()) {
            return Err(RepairError::Invalid(format!(
                "`{key}` is not a key of cluster `{}`",
                cfg.keys().cluster()
            )));
        }
        if out.iter().any(|c| c.key == key) {
            return Err(RepairError::Invalid(format!("`{key}` is edited twice")));
        }
        let now = cfg.store().get(&key).await.map_err(cfg_error)?;
        let current = now.as_ref().map_or(0, |kv| kv.mod_revision);
        if current != edit.revision() {
            return Err(RepairError::InUse(format!(
                "`{key}` is at revision {current}, the edit expects {}: read it again (`scan`) and edit that",
                edit.revision()
            )));
        }
        let after = match edit {
            CfgEdit::Delete { .. } => None,
            CfgEdit::Replace {
                value, value_file, ..
            } => {
                let offered = match (value, value_file) {
                    (Some(v), None) => v.to_string().into_bytes(),
                    (None, Some(path)) => std::fs::read(path)
                        .map_err(RepairError::io(format!("reading {}", path.display())))?,
                    _ => {
                        return Err(RepairError::Invalid(format!(
                            "replace of `{key}`: give exactly one of `value` and `value_file`"
                        )))
                    }
                };
                let bytes = cfg
                    .normalize_input(&key, &offered, false)
                    .map_err(cfg_error)?;
                Some(String::from_utf8_lossy(&bytes).into_owned())
            }
        };
        out.push(Change {
            key,
            revision: current,
            before: now.map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
            after,
        });
    }
    Ok(out)
}

/// The scan of the Cfg as it would be with `changes` in.
async fn scan_with(cfg: &Cfg, changes: &[Change]) -> Result<Vec<ScanFinding>, RepairError> {
    let mut listing = cfg
        .store()
        .list(cfg.keys().root())
        .await
        .map_err(cfg_error)?;
    for c in changes {
        listing.kvs.retain(|kv| kv.key != c.key);
        if let Some(after) = &c.after {
            listing.kvs.push(tessera_cfg::KeyValue {
                key: c.key.clone(),
                value: after.clone().into_bytes(),
                mod_revision: listing.revision + 1,
                create_revision: listing.revision + 1,
                lease: None,
            });
        }
    }
    listing.kvs.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(tessera_cfg::scan::scan(cfg.keys(), &listing.kvs))
}

pub async fn apply(
    cfg: &Cfg,
    data_dir: &Path,
    edits: &EditList<CfgEdit>,
    dry_run: bool,
) -> Result<Outcome, RepairError> {
    let ws = Workspace::new(data_dir);
    let _lock = ws.lock(if dry_run { "cfg dry run" } else { "cfg apply" })?;
    let changes = changes(cfg, edits).await?;
    let findings_after = scan_with(cfg, &changes).await?;
    if dry_run {
        return Ok(Outcome {
            dry_run,
            backup: None,
            changes,
            revision: None,
            findings_after,
        });
    }
    let scratch = ws.scratch()?;
    let values = scratch.join("values.json");
    let saved =
        serde_json::to_vec_pretty(&changes).map_err(|e| RepairError::Invalid(e.to_string()))?;
    std::fs::write(&values, saved)
        .map_err(RepairError::io(format!("writing {}", values.display())))?;
    let backup = ws.back_up("cfg", &[("values.json", &values)])?;
    drop(scratch);
    let mut txn = Txn::new();
    for c in &changes {
        txn = txn.when(Compare::ModRevision {
            key: c.key.clone(),
            revision: c.revision,
        });
        txn = txn.then(match &c.after {
            Some(value) => Op::Put {
                key: c.key.clone(),
                value: value.clone().into_bytes(),
                lease: None,
            },
            None => Op::Delete { key: c.key.clone() },
        });
    }
    let record = JournalEntry {
        at_ms: workspace::now_ms(),
        action: "apply".into(),
        kind: "cfg".into(),
        backup: backup.id.clone(),
        what: serde_json::to_value(edits).unwrap_or_default(),
        before: serde_json::to_value(
            changes
                .iter()
                .map(|c| (&c.key, c.revision))
                .collect::<Vec<_>>(),
        )
        .unwrap_or_default(),
        after: serde_json::Value::Null,
    };
    // The journal entry goes in with the edits, in the same transaction.
    txn = txn.then(Op::Put {
        key: cfg.keys().repair_record(&backup.id),
        value: serde_json::to_vec(&record).unwrap_or_default(),
        lease: None,
    });
    let done = cfg.store().txn(txn).await.map_err(cfg_error)?;
    if !done.succeeded {
        let _ = ws.purge(&backup.id);
        return Err(RepairError::InUse(
            "a key changed between the check and the write; nothing was written: scan again".into(),
        ));
    }
    ws.journal(&JournalEntry {
        after: serde_json::json!({"revision": done.revision}),
        ..record
    })?;
    Ok(Outcome {
        dry_run,
        backup: Some(backup.id),
        changes,
        revision: Some(done.revision),
        findings_after,
    })
}

/// Puts the values backup `id` saved back, on the keys as the repair left them (refused when a
/// key changed since).
pub async fn rollback(cfg: &Cfg, data_dir: &Path, id: &str) -> Result<Outcome, RepairError> {
    let ws = Workspace::new(data_dir);
    let _lock = ws.lock("cfg rollback")?;
    let (backup, dir) = ws.backup(id)?;
    if backup.kind != "cfg" {
        return Err(RepairError::Invalid(format!(
            "backup {id} is a {} backup, not a cfg one",
            backup.kind
        )));
    }
    let text = std::fs::read(dir.join("values.json"))
        .map_err(RepairError::io(format!("reading backup {id}")))?;
    let saved: Vec<Change> = serde_json::from_slice(&text)
        .map_err(|e| RepairError::Damaged(format!("backup {id}: {e}")))?;
    let mut txn = Txn::new();
    let mut changes = Vec::new();
    for c in &saved {
        let now = cfg.store().get(&c.key).await.map_err(cfg_error)?;
        let bytes_now = now
            .as_ref()
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
        if bytes_now != c.after {
            return Err(RepairError::InUse(format!(
                "`{}` changed since the repair; nothing was rolled back",
                c.key
            )));
        }
        let revision = now.map_or(0, |kv| kv.mod_revision);
        txn = txn.when(Compare::ModRevision {
            key: c.key.clone(),
            revision,
        });
        txn = txn.then(match &c.before {
            Some(value) => Op::Put {
                key: c.key.clone(),
                value: value.clone().into_bytes(),
                lease: None,
            },
            None => Op::Delete { key: c.key.clone() },
        });
        changes.push(Change {
            key: c.key.clone(),
            revision,
            before: c.after.clone(),
            after: c.before.clone(),
        });
    }
    let record = JournalEntry {
        at_ms: workspace::now_ms(),
        action: "rollback".into(),
        kind: "cfg".into(),
        backup: id.into(),
        what: serde_json::json!({"restored": saved.iter().map(|c| &c.key).collect::<Vec<_>>()}),
        before: serde_json::Value::Null,
        after: serde_json::Value::Null,
    };
    txn = txn.then(Op::Put {
        key: cfg.keys().repair_record(&format!("{id}-rollback")),
        value: serde_json::to_vec(&record).unwrap_or_default(),
        lease: None,
    });
    let done = cfg.store().txn(txn).await.map_err(cfg_error)?;
    if !done.succeeded {
        return Err(RepairError::InUse(
            "a key changed meanwhile; nothing was rolled back".into(),
        ));
    }
    ws.journal(&record)?;
    Ok(Outcome {
        dry_run: false,
        backup: Some(id.into()),
        changes,
        revision: Some(done.revision),
        findings_after: scan(cfg).await?.findings,
    })
}

#[cfg(test)]
mod tests;
