//! Which PIndexes are missing (no copy left can serve them, by the rule of
//! `tessera_planner::coverage`) and the node each is to be recovered on: the node of a copy
//! the plan already places it on (after a failover the planner re-places a missing PIndex at
//! once, as a copy that starts empty), a live one, the primary first.

use std::collections::BTreeSet;

use serde::Serialize;
use tessera_cfg::schema::{CopyRole, IndexPlan};
use tessera_planner::coverage::{readability, Readability};

/// A PIndex of an index that no copy can serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingPIndex {
    pub index: String,
    pub pindex: String,
    pub partitions: Vec<u32>,
    /// The live node holding a (not yet readable) copy of it in the plan, if any.
    pub node: Option<String>,
}

/// The missing PIndexes of `plans` (only the indexes `wanted` accepts). `live`: nodes holding a
/// liveness lease; `may_return`: defined nodes not failed over.
pub fn missing(
    plans: &[&IndexPlan],
    live: &BTreeSet<String>,
    may_return: &BTreeSet<String>,
    wanted: impl Fn(&str) -> bool,
) -> Vec<MissingPIndex> {
    let mut out = Vec::new();
    for plan in plans.iter().filter(|p| wanted(&p.index)) {
        for p in &plan.pindexes {
            if readability(p, live, may_return) != Readability::Missing {
                continue;
            }
            let node = p
                .copies
                .iter()
                .filter(|c| live.contains(&c.node))
                .min_by_key(|c| (c.planned_role() != CopyRole::Primary, c.node.clone()))
                .map(|c| c.node.clone());
            out.push(MissingPIndex {
                index: plan.index.clone(),
                pindex: p.name.clone(),
                partitions: p.source_partitions.clone(),
                node,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_cfg::schema::{CopyPlan, CopyState, PIndexPlan};

    fn copy(node: &str, role: CopyRole, can_read: bool) -> CopyPlan {
        CopyPlan {
            node: node.into(),
            role,
            state: if can_read {
                CopyState::Active
            } else {
                CopyState::Building
            },
            can_read,
            can_write: true,
            target_role: None,
        }
    }

    fn plan(index: &str, pindexes: Vec<(&str, Vec<CopyPlan>)>) -> IndexPlan {
        IndexPlan {
            format_version: 1,
            index: index.into(),
            index_uuid: "u".into(),
            pindexes: pindexes
                .into_iter()
                .map(|(name, copies)| PIndexPlan {
                    name: name.into(),
                    source_partitions: vec![0, 1],
                    copies,
                })
                .collect(),
            warnings: vec![],
        }
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn missing_pindexes_and_where_they_are_placed() {
        let books = plan(
            "books",
            vec![
                // readable on a live node
                ("b1", vec![copy("n1", CopyRole::Primary, true)]),
                // re-placed empty on n2 after its only node was failed over
                ("b2", vec![copy("n2", CopyRole::Primary, false)]),
                // its readable copy is on n3, down but not failed over: unavailable
                ("b3", vec![copy("n3", CopyRole::Primary, true)]),
                // no copy placed at all
                ("b4", vec![]),
                // on n3, down but not failed over, no longer marked readable: it may come back
                // with its files, so it is not missing (a recovery would wipe them)
                ("b6", vec![copy("n3", CopyRole::Primary, false)]),
                // copies on a dead node and a live replica: the live one is named
                (
                    "b5",
                    vec![
                        copy("n9", CopyRole::Primary, false),
                        copy("n1", CopyRole::Replica, false),
                    ],
                ),
            ],
        );
        let films = plan("films", vec![("f1", vec![])]);
        let live = set(&["n1", "n2"]);
        let may_return = set(&["n1", "n2", "n3"]);
        let found = missing(&[&books, &films], &live, &may_return, |i| i == "books");
        let named: Vec<(&str, Option<&str>)> = found
            .iter()
            .map(|m| (m.pindex.as_str(), m.node.as_deref()))
            .collect();
        assert_eq!(
            named,
            [("b2", Some("n2")), ("b4", None), ("b5", Some("n1"))],
            "readable and unavailable PIndexes are not missing; films was not asked for"
        );
    }
}
