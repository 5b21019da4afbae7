//! What a restore will do, PIndex by PIndex: pure, from a snapshot's entries and what the
//! source says it holds now (per partition: uuid and high seq).
//!
//! A saved PIndex is downloaded when the source still holds the history its checkpoints point
//! into (same partition uuid, seq not beyond the source's high); its feed then streams only
//! what the source has beyond them. Otherwise it is rebuilt from the source. A source that
//! cannot be asked leaves the decision to the feed (it drops and re-streams partitions whose
//! history was replaced), and the plan says so.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::manifest::PIndexEntry;

/// What happens to one saved PIndex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Download,
    Rebuild,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PIndexRestore {
    /// The PIndex in the snapshot.
    pub pindex: String,
    /// Its name in the restored index.
    pub restored_as: String,
    pub source_partitions: Vec<u32>,
    pub action: Action,
    /// Bytes to download (0 when rebuilt).
    pub bytes: u64,
    pub docs: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The source's partitions as it answers now: id → (uuid, high seq). `None`: not reachable.
pub type SourceState = Option<BTreeMap<u32, (String, u64)>>;

/// The restore of `entries` (one index's saved PIndexes) under the name `restored_index`.
pub fn plan_pindexes(
    entries: &[&PIndexEntry],
    saved_index: &str,
    restored_index: &str,
    source: &SourceState,
) -> Vec<PIndexRestore> {
    entries
        .iter()
        .map(|e| {
            let reason = match source {
                None => Some(
                    "the source did not answer; its feed checks the history on start".to_string(),
                ),
                Some(partitions) => history_gone(e, partitions),
            };
            let rebuild = source.is_some() && reason.is_some();
            PIndexRestore {
                pindex: e.name.clone(),
                restored_as: renamed(&e.name, saved_index, restored_index),
                source_partitions: e.source_partitions.clone(),
                action: if rebuild {
                    Action::Rebuild
                } else {
                    Action::Download
                },
                bytes: if rebuild { 0 } else { e.bytes() },
                docs: e.docs,
                reason,
            }
        })
        .collect()
}

/// Why the source no longer holds what `entry`'s checkpoints point into, if it does not.
fn history_gone(entry: &PIndexEntry, partitions: &BTreeMap<u32, (String, u64)>) -> Option<String> {
    for (p, point) in &entry.checkpoints {
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

/// `books_0-15` saved from `books`, restored as `novels`: `novels_0-15`.
pub fn renamed(pindex: &str, saved_index: &str, restored_index: &str) -> String {
    match pindex.strip_prefix(saved_index) {
        Some(rest) if rest.starts_with('_') => format!("{restored_index}{rest}"),
        _ => pindex.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{FileEntry, PartitionPoint};

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

    #[test]
    fn download_while_the_source_holds_the_history_else_rebuild() {
        let kept = entry("books_0-1", &[(0, "u0", 5), (1, "u1", 9)]);
        let replaced = entry("books_2-2", &[(2, "old", 3)]);
        let ahead = entry("books_3-3", &[(3, "u3", 50)]);
        let source: SourceState = Some(BTreeMap::from([
            (0, ("u0".to_string(), 10)),
            (1, ("u1".to_string(), 9)),
            (2, ("new".to_string(), 4)),
            (3, ("u3".to_string(), 40)),
        ]));
        let plan = plan_pindexes(&[&kept, &replaced, &ahead], "books", "novels", &source);
        assert_eq!(plan[0].action, Action::Download);
        assert_eq!(
            (plan[0].bytes, plan[0].restored_as.as_str()),
            (100, "novels_0-1")
        );
        assert_eq!(plan[1].action, Action::Rebuild);
        assert!(plan[1].reason.as_ref().unwrap().contains("replaced"));
        assert_eq!(plan[2].action, Action::Rebuild);
        assert_eq!(plan[2].bytes, 0);
    }

    #[test]
    fn an_unreachable_source_leaves_it_to_the_feed() {
        let e = entry("books_0-0", &[(0, "u0", 5)]);
        let plan = plan_pindexes(&[&e], "books", "books", &None);
        assert_eq!(plan[0].action, Action::Download);
        assert!(plan[0].reason.is_some());
    }
}
