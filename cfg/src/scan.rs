//! What is wrong in a cluster's Cfg, key by key: documents that do not decode, carry a format
//! version this build does not know, fail validation or name another object than their key;
//! and references that lead nowhere — plans of unknown indexes or naming unknown nodes, tasks
//! naming unknown nodes, a topology lock naming a finished or missing task, a recovery lock
//! naming an ended one. A plain function over one listing (`tessera repair cfg scan` reads
//! it); it changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::keys::{KeyKind, KeySpace};
use crate::schema::{self, Document};
use crate::store::{KeyValue, Revision};
use crate::CfgError;

/// One problem, at one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanFinding {
    pub key: String,
    pub revision: Revision,
    /// `undecodable`, `unknown_format`, `invalid` or `dangling`.
    pub kind: &'static str,
    pub what: String,
}

/// The documents that decoded, for the reference checks.
#[derive(Default)]
struct Known {
    indexes: BTreeSet<String>,
    nodes: BTreeSet<String>,
    plans: Vec<(String, Revision, schema::IndexPlan)>,
    tasks: BTreeMap<String, (Revision, schema::TopologyTask)>,
    topology_lock: Option<(String, Revision, schema::TopologyLock)>,
    recoveries: BTreeMap<String, schema::Recovery>,
    recovery_lock: Option<(String, Revision, schema::RecoveryLock)>,
}

/// Decodes a stored document of type `T`, validates it and checks it names `expected`.
fn check<T: Document>(
    kv: &KeyValue,
    name_of: impl Fn(&T) -> &str,
    expected: Option<&str>,
) -> Result<T, ScanFinding> {
    let finding = |kind, what: String| ScanFinding {
        key: kv.key.clone(),
        revision: kv.mod_revision,
        kind,
        what,
    };
    let doc: T = schema::decode(&kv.key, &kv.value).map_err(|e| match e {
        CfgError::UnknownFormatVersion {
            found, supported, ..
        } => finding(
            "unknown_format",
            format!("format version {found}; this build reads 1..={supported}"),
        ),
        other => finding("undecodable", other.to_string()),
    })?;
    doc.validate()
        .map_err(|e| finding("invalid", format!("field `{}`: {}", e.field, e.reason)))?;
    if let Some(expected) = expected {
        let named = name_of(&doc);
        if named != expected {
            return Err(finding(
                "invalid",
                format!("the document names `{named}`, the key `{expected}`"),
            ));
        }
    }
    Ok(doc)
}

/// Everything wrong in `kvs` (a listing of the cluster's root).
pub fn scan(keys: &KeySpace, kvs: &[KeyValue]) -> Vec<ScanFinding> {
    let mut out = Vec::new();
    let mut known = Known::default();
    for kv in kvs {
        let result = match keys.kind(&kv.key) {
            KeyKind::ClusterMeta => {
                check::<schema::ClusterMeta>(kv, |m| &m.name, Some(keys.cluster())).map(drop)
            }
            KeyKind::IndexDef(name) => {
                check::<schema::IndexDef>(kv, |d| &d.name, Some(&name)).map(|_| {
                    known.indexes.insert(name);
                })
            }
            KeyKind::NodeDef(uuid) => {
                check::<schema::NodeDef>(kv, |d| &d.uuid, Some(&uuid)).map(|_| {
                    known.nodes.insert(uuid);
                })
            }
            KeyKind::Liveness(uuid) => {
                check::<schema::NodeLiveness>(kv, |d| &d.uuid, Some(&uuid)).map(drop)
            }
            KeyKind::Plan(index) => check::<schema::IndexPlan>(kv, |p| &p.index, Some(&index))
                .map(|p| known.plans.push((kv.key.clone(), kv.mod_revision, p))),
            KeyKind::CopyReport(node) => {
                check::<schema::CopyReport>(kv, |r| &r.node, Some(&node)).map(drop)
            }
            KeyKind::PlannerLeader => check::<schema::PlannerLeader>(kv, |_| "", None).map(drop),
            KeyKind::Task(id) => check::<schema::TopologyTask>(kv, |t| &t.id, Some(&id))
                .map(|t| drop(known.tasks.insert(kv.key.clone(), (kv.mod_revision, t)))),
            KeyKind::TopologyLock => check::<schema::TopologyLock>(kv, |_| "", None)
                .map(|l| known.topology_lock = Some((kv.key.clone(), kv.mod_revision, l))),
            KeyKind::Control => check::<schema::ClusterControl>(kv, |_| "", None).map(drop),
            KeyKind::BackupRepo(name) => {
                check::<schema::RepoDef>(kv, |r| &r.name, Some(&name)).map(drop)
            }
            KeyKind::BackupJob(id) => {
                check::<schema::BackupJob>(kv, |j| &j.id, Some(&id)).map(drop)
            }
            KeyKind::Recovery(id) => check::<schema::Recovery>(kv, |r| &r.id, Some(&id))
                .map(|r| drop(known.recoveries.insert(id, r))),
            KeyKind::RecoveryLock => check::<schema::RecoveryLock>(kv, |_| "", None)
                .map(|l| known.recovery_lock = Some((kv.key.clone(), kv.mod_revision, l))),
            KeyKind::RecoveryAuto => check::<schema::RecoveryAuto>(kv, |_| "", None).map(drop),
            KeyKind::ApiKey(id) => {
                check::<tessera_auth::key::KeyRecord>(kv, |k| &k.id, Some(&id)).map(drop)
            }
            KeyKind::RepairRecord(_) => serde_json::from_slice::<serde_json::Value>(&kv.value)
                .map(drop)
                .map_err(|e| ScanFinding {
                    key: kv.key.clone(),
                    revision: kv.mod_revision,
                    kind: "undecodable",
                    what: format!("not JSON: {e}"),
                }),
            KeyKind::Unknown | KeyKind::Foreign => Ok(()),
        };
        if let Err(f) = result {
            out.push(f);
        }
    }
    dangling(&known, &mut out);
    out
}

fn dangling(known: &Known, out: &mut Vec<ScanFinding>) {
    let mut push = |key: &str, revision, what: String| {
        out.push(ScanFinding {
            key: key.to_string(),
            revision,
            kind: "dangling",
            what,
        })
    };
    for (key, revision, plan) in &known.plans {
        if !known.indexes.contains(&plan.index) {
            push(
                key,
                *revision,
                format!("a plan of index `{}`, which is not defined", plan.index),
            );
        }
        let named: BTreeSet<&String> = plan
            .pindexes
            .iter()
            .flat_map(|p| p.copies.iter().map(|c| &c.node))
            .collect();
        for node in named.into_iter().filter(|n| !known.nodes.contains(*n)) {
            push(
                key,
                *revision,
                format!("places copies on node `{node}`, which is not defined"),
            );
        }
    }
    for (key, (revision, task)) in &known.tasks {
        if task.status != schema::TaskStatus::Running {
            continue;
        }
        for node in task
            .keep_nodes
            .iter()
            .chain(&task.eject_nodes)
            .filter(|n| !known.nodes.contains(*n))
        {
            push(
                key,
                *revision,
                format!("a running task naming node `{node}`, which is not defined"),
            );
        }
    }
    if let Some((key, revision, lock)) = &known.topology_lock {
        let task = known.tasks.values().find(|(_, t)| t.id == lock.task);
        match task {
            None => push(
                key,
                *revision,
                format!("names task `{}`, which does not exist", lock.task),
            ),
            Some((_, t)) if t.status != schema::TaskStatus::Running => push(
                key,
                *revision,
                format!(
                    "names task `{}`, which is {:?}: no change can start",
                    lock.task, t.status
                ),
            ),
            Some(_) => {}
        }
    }
    if let Some((key, revision, lock)) = &known.recovery_lock {
        match known.recoveries.get(&lock.recovery) {
            None => push(
                key,
                *revision,
                format!("names recovery `{}`, which does not exist", lock.recovery),
            ),
            Some(r) if r.status != schema::RecoveryStatus::Running => push(
                key,
                *revision,
                format!(
                    "names recovery `{}`, which is {:?}",
                    lock.recovery, r.status
                ),
            ),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
