//! What a restore will do, PIndex by PIndex: pure, from a snapshot's entries, the PIndexes of
//! the restored index (its definition's split, which may differ from the saved one) and what
//! the source says it holds now (per partition: uuid and high seq).
//!
//! A restored PIndex whose boundaries are those of a saved PIndex downloads it. One whose
//! boundaries differ (the restore asked for another partitioning) is *regrouped*: the saved
//! PIndexes overlapping it are downloaded and the documents of its partitions picked out of
//! them (`tessera_index::regroup`), each partition keeping its saved checkpoint. Either way the
//! data is used only while the source still holds the history the checkpoints point into
//! (same partition uuid, seq not beyond the source's high); its feed then streams only what the
//! source has beyond them. Otherwise, or when the snapshot does not hold every partition, the
//! PIndex is rebuilt from the source. A source that cannot be asked leaves the decision to the
//! feed (it drops and re-streams partitions whose history was replaced), and the plan says so.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::manifest::{PIndexEntry, PartitionPoint};

/// What happens to one restored PIndex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// One saved PIndex with the same partitions, downloaded as it is.
    Download,
    /// Saved PIndexes overlapping it downloaded, the documents of its partitions picked out.
    Regroup,
    /// Built from the source.
    Rebuild,
}

/// A PIndex of the restored index: its name and the source partitions it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub partitions: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PIndexRestore {
    /// The PIndex in the restored index.
    pub restored_as: String,
    pub source_partitions: Vec<u32>,
    pub action: Action,
    /// The saved PIndex downloaded as it is (`download` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pindex: Option<String>,
    /// The saved PIndexes its data comes from (empty when rebuilt).
    pub from: Vec<String>,
    /// Bytes to download (0 when rebuilt).
    pub bytes: u64,
    /// Documents it will hold as saved, when the snapshot says (a regroup that splits a
    /// saved PIndex knows only after picking).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The source's partitions as it answers now: id → (uuid, high seq). `None`: not reachable.
pub type SourceState = Option<BTreeMap<u32, (String, u64)>>;

/// What restoring one PIndex does, and the saved PIndexes it reads.
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    pub restore: PIndexRestore,
    pub from: Vec<&'a PIndexEntry>,
}

/// The restore of the PIndexes `targets` of one index from `entries` (that index's saved
/// PIndexes). `regroupable`: the index type can be regrouped (`fulltext`).
pub fn plan_restore(
    entries: &[&PIndexEntry],
    targets: &[Target],
    regroupable: bool,
    source: &SourceState,
) -> Vec<PIndexRestore> {
    targets
        .iter()
        .map(|t| decide(entries, t, regroupable, source).restore)
        .collect()
}

/// The saved PIndexes `partitions` are restored from: the one with exactly these partitions,
/// else (when `regroupable`) every one overlapping them, provided they hold them all. `Err`
/// says why the PIndex must be rebuilt instead.
pub fn origin<'a>(
    entries: &[&'a PIndexEntry],
    partitions: &[u32],
    regroupable: bool,
) -> Result<Vec<&'a PIndexEntry>, String> {
    if let Some(same) = entries.iter().find(|e| e.source_partitions == partitions) {
        return Ok(vec![*same]);
    }
    let wanted: BTreeSet<u32> = partitions.iter().copied().collect();
    let overlapping: Vec<&PIndexEntry> = entries
        .iter()
        .copied()
        .filter(|e| e.source_partitions.iter().any(|p| wanted.contains(p)))
        .collect();
    let held: BTreeSet<u32> = overlapping
        .iter()
        .flat_map(|e| e.source_partitions.iter().copied())
        .collect();
    if let Some(p) = wanted.iter().find(|p| !held.contains(p)) {
        return Err(format!("the snapshot holds no PIndex with partition {p}"));
    }
    if !regroupable {
        return Err("the snapshot's PIndexes have other boundaries, and this index type cannot be regrouped".into());
    }
    Ok(overlapping)
}

/// What restoring `target` does, by the rules above.
pub fn decide<'a>(
    entries: &[&'a PIndexEntry],
    target: &Target,
    regroupable: bool,
    source: &SourceState,
) -> Decision<'a> {
    let rebuild = |reason: String| Decision {
        restore: PIndexRestore {
            restored_as: target.name.clone(),
            source_partitions: target.partitions.clone(),
            action: Action::Rebuild,
            pindex: None,
            from: Vec::new(),
            bytes: 0,
            docs: None,
            reason: Some(reason),
        },
        from: Vec::new(),
    };
    let from = match origin(entries, &target.partitions, regroupable) {
        Ok(from) => from,
        Err(reason) => return rebuild(reason),
    };
    let points = regrouped_checkpoints(&from, &target.partitions);
    let reason = match source {
        None => Some("the source did not answer; its feed checks the history on start".to_string()),
        Some(partitions) => {
            if let Some(gone) = history_gone(&points, partitions) {
                return rebuild(gone);
            }
            None
        }
    };
    let whole = from.len() == 1 && from[0].source_partitions == target.partitions;
    let inside = |e: &&PIndexEntry| {
        e.source_partitions
            .iter()
            .all(|p| target.partitions.contains(p))
    };
    Decision {
        restore: PIndexRestore {
            restored_as: target.name.clone(),
            source_partitions: target.partitions.clone(),
            action: if whole {
                Action::Download
            } else {
                Action::Regroup
            },
            pindex: whole.then(|| from[0].name.clone()),
            from: from.iter().map(|e| e.name.clone()).collect(),
            bytes: from.iter().map(|e| e.bytes()).sum(),
            docs: from
                .iter()
                .all(inside)
                .then(|| from.iter().map(|e| e.docs).sum()),
            reason,
        },
        from,
    }
}

/// The checkpoints of `partitions` as saved in `from` (each partition is in one saved PIndex):
/// what a PIndex restored from them commits, so its feed resumes where each partition's data
/// ends.
pub fn regrouped_checkpoints(
    from: &[&PIndexEntry],
    partitions: &[u32],
) -> BTreeMap<u32, PartitionPoint> {
    from.iter()
        .flat_map(|e| &e.checkpoints)
        .filter(|(p, _)| partitions.contains(p))
        .map(|(p, point)| (*p, point.clone()))
        .collect()
}

/// Why the source (`partitions`: id → uuid and high seq, as it answers now) no longer holds
/// the history a PIndex's `checkpoints` point into, if it does not: the same rule for a PIndex
/// fetched from anywhere else (another cluster) as for a saved one.
pub fn checkpoints_gone(
    checkpoints: &tessera_index::checkpoint::Checkpoints,
    partitions: &BTreeMap<u32, (String, u64)>,
) -> Option<String> {
    let points = checkpoints
        .iter()
        .map(|(p, c)| {
            let point = PartitionPoint {
                seq: c.seq,
                partition_uuid: c.partition_uuid.clone(),
            };
            (*p, point)
        })
        .collect();
    history_gone(&points, partitions)
}

/// Why the source no longer holds what `points` point into, if it does not.
fn history_gone(
    points: &BTreeMap<u32, PartitionPoint>,
    partitions: &BTreeMap<u32, (String, u64)>,
) -> Option<String> {
    for (p, point) in points {
        match partitions.get(p) {
            None => return Some(format!("the source has no partition {p}")),
            Some((uuid, _)) if *uuid != point.partition_uuid => {
                return Some(format!(
                    "partition {p}'s history was replaced (uuid {uuid}, saved {})",
                    point.partition_uuid
                ))
            }
            Some((_, high)) if *high < point.seq => {
                return Some(format!(
                    "partition {p} ends at seq {high}, before the saved {}",
                    point.seq
                ))
            }
            Some(_) => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::FileEntry;

    fn entry(name: &str, points: &[(u32, &str, u64)]) -> PIndexEntry {
        PIndexEntry {
            name: name.into(),
            index: "books".into(),
            source_partitions: points.iter().map(|p| p.0).collect(),
            read_from: "n".into(),
            checkpoints: points
                .iter()
                .map(|(p, u, s)| {
                    (
                        *p,
                        PartitionPoint {
                            seq: *s,
                            partition_uuid: u.to_string(),
                        },
                    )
                })
                .collect(),
            docs: 7,
            files: vec![FileEntry {
                name: "meta.json".into(),
                hash: "h".into(),
                size: 100,
            }],
        }
    }

    fn target(name: &str, partitions: std::ops::RangeInclusive<u32>) -> Target {
        Target {
            name: name.into(),
            partitions: partitions.collect(),
        }
    }

    fn source(points: &[(u32, &str, u64)]) -> SourceState {
        Some(
            points
                .iter()
                .map(|(p, u, high)| (*p, (u.to_string(), *high)))
                .collect(),
        )
    }

    #[test]
    fn download_while_the_source_holds_the_history_else_rebuild() {
        let kept = entry("books_0-1", &[(0, "u0", 5), (1, "u1", 9)]);
        let replaced = entry("books_2-2", &[(2, "old", 3)]);
        let ahead = entry("books_3-3", &[(3, "u3", 50)]);
        let now = source(&[(0, "u0", 10), (1, "u1", 9), (2, "new", 4), (3, "u3", 40)]);
        let targets = [
            target("novels_0-1", 0..=1),
            target("novels_2-2", 2..=2),
            target("novels_3-3", 3..=3),
        ];
        let plan = plan_restore(&[&kept, &replaced, &ahead], &targets, true, &now);
        assert_eq!(plan[0].action, Action::Download);
        assert_eq!(
            (plan[0].bytes, plan[0].restored_as.as_str()),
            (100, "novels_0-1")
        );
        assert_eq!(plan[0].pindex.as_deref(), Some("books_0-1"));
        assert_eq!(plan[0].docs, Some(7));
        assert_eq!(plan[1].action, Action::Rebuild);
        assert!(plan[1].reason.as_ref().unwrap().contains("replaced"));
        assert_eq!(plan[2].action, Action::Rebuild);
        assert_eq!(plan[2].bytes, 0);
    }

    #[test]
    fn an_unreachable_source_leaves_it_to_the_feed() {
        let e = entry("books_0-0", &[(0, "u0", 5)]);
        let plan = plan_restore(&[&e], &[target("books_0-0", 0..=0)], true, &None);
        assert_eq!(plan[0].action, Action::Download);
        assert!(plan[0].reason.is_some());
    }

    #[test]
    fn other_boundaries_regroup_the_overlapping_pindexes_with_their_checkpoints() {
        let a = entry("books_0-1", &[(0, "u0", 5), (1, "u1", 9)]);
        let b = entry("books_2-3", &[(2, "u2", 3), (3, "u3", 4)]);
        let c = entry("books_4-5", &[(4, "u4", 1), (5, "u5", 2)]);
        let now = source(&[(0, "u0", 5), (1, "u1", 9), (2, "u2", 3), (3, "u3", 4)]);
        let saved = [&a, &b, &c];
        // Two whole PIndexes merged: the documents are known.
        let merged = decide(&saved, &target("books_0-3", 0..=3), true, &now);
        assert_eq!(merged.restore.action, Action::Regroup);
        assert_eq!(merged.restore.from, ["books_0-1", "books_2-3"]);
        assert_eq!(merged.restore.bytes, 200);
        assert_eq!(merged.restore.docs, Some(14));
        assert_eq!(merged.restore.pindex, None);
        // Across a boundary: part of each, so how many documents is known only after.
        let across = decide(&saved, &target("books_1-2", 1..=2), true, &now);
        assert_eq!(across.restore.action, Action::Regroup);
        assert_eq!(across.restore.docs, None);
        let points = regrouped_checkpoints(&across.from, &[1, 2]);
        assert_eq!(points.keys().copied().collect::<Vec<_>>(), [1, 2]);
        assert_eq!((points[&1].seq, points[&2].seq), (9, 3));
        // Only the kept partitions' history counts: partition 4's is gone, 3's is not.
        let partly = decide(&saved, &target("books_3-4", 3..=4), true, &now);
        assert_eq!(partly.restore.action, Action::Rebuild);
        assert!(partly.restore.reason.unwrap().contains("partition 4"));
    }

    #[test]
    fn regrouping_needs_every_partition_saved_and_a_type_that_can_be_regrouped() {
        let a = entry("books_0-1", &[(0, "u0", 5), (1, "u1", 9)]);
        let now = source(&[(0, "u0", 5), (1, "u1", 9), (2, "u2", 0)]);
        let short = decide(&[&a], &target("books_0-2", 0..=2), true, &now);
        assert_eq!(short.restore.action, Action::Rebuild);
        assert!(short.restore.reason.unwrap().contains("partition 2"));
        let blackhole = decide(&[&a], &target("books_0-0", 0..=0), false, &now);
        assert_eq!(blackhole.restore.action, Action::Rebuild);
        // The same boundaries download whatever the type.
        let same = decide(&[&a], &target("books_0-1", 0..=1), false, &now);
        assert_eq!(same.restore.action, Action::Download);
    }
}
