//! How much of an index its stored plan can serve, and which PIndexes are *missing*: the one
//! rule health, status and recovery share.
//!
//! A PIndex is **readable** when some copy the plan marks `can_read` is on a live node. One
//! that is not readable is **unavailable** while some copy of it is on a node that is down but
//! may come back (it has a definition and was not failed over): waiting for the node may be
//! enough. The copy's own flags do not matter there — the planner stops marking a down node's
//! copies readable at its next round (only a running incarnation's word counts), yet the files
//! are still on that node. It is **missing** when no copy is on such a node — every node that
//! held one was failed over or is gone, and what is left (if anything) are copies on live
//! nodes that cannot serve yet, started empty — so the planner has nothing to wait for and
//! only copies that rebuild (or data brought back from elsewhere) can make it readable again.

use std::collections::BTreeSet;

use serde::Serialize;
use tessera_cfg::schema::{IndexPlan, NodeDef, PIndexPlan};

/// What one index's plan covers, by PIndex and by source partition.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Coverage {
    pub pindexes_total: usize,
    pub pindexes_readable: usize,
    pub partitions_total: usize,
    pub partitions_readable: usize,
    /// Readable share of the source partitions, 0 to 1 (1 for an index with none).
    pub fraction: f64,
    /// PIndexes whose readable copies are all on nodes that are down for now.
    pub unavailable: Vec<String>,
    /// PIndexes no copy can serve: every node that held one was failed over or is gone.
    pub missing: Vec<String>,
}

/// How a PIndex stands for reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readability {
    Readable,
    Unavailable,
    Missing,
}

/// The nodes that may come back with their copies: defined and not failed over (the
/// `may_return` of [`readability`] and [`coverage`]).
pub fn may_return<'a>(defs: impl IntoIterator<Item = &'a NodeDef>) -> BTreeSet<String> {
    defs.into_iter()
        .filter(|d| !d.failed_over)
        .map(|d| d.uuid.clone())
        .collect()
}

/// `live`: nodes holding a liveness lease. `may_return`: nodes with a definition that were not
/// failed over (a down one among them may come back with its copies).
pub fn readability(
    pindex: &PIndexPlan,
    live: &BTreeSet<String>,
    may_return: &BTreeSet<String>,
) -> Readability {
    let readable = |c: &&tessera_cfg::schema::CopyPlan| c.can_read && live.contains(&c.node);
    let down_may_return = |c: &&tessera_cfg::schema::CopyPlan| {
        !live.contains(&c.node) && may_return.contains(&c.node)
    };
    if pindex.copies.iter().any(|c| readable(&c)) {
        Readability::Readable
    } else if pindex.copies.iter().any(|c| down_may_return(&c)) {
        Readability::Unavailable
    } else {
        Readability::Missing
    }
}

/// The coverage of `plan` (see the module docs for the words).
pub fn coverage(
    plan: &IndexPlan,
    live: &BTreeSet<String>,
    may_return: &BTreeSet<String>,
) -> Coverage {
    let mut out = Coverage::default();
    for p in &plan.pindexes {
        out.pindexes_total += 1;
        out.partitions_total += p.source_partitions.len();
        match readability(p, live, may_return) {
            Readability::Readable => {
                out.pindexes_readable += 1;
                out.partitions_readable += p.source_partitions.len();
            }
            Readability::Unavailable => out.unavailable.push(p.name.clone()),
            Readability::Missing => out.missing.push(p.name.clone()),
        }
    }
    out.fraction = if out.partitions_total == 0 {
        1.0
    } else {
        out.partitions_readable as f64 / out.partitions_total as f64
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(pindexes: serde_json::Value) -> IndexPlan {
        serde_json::from_value(json!({"format_version": 1, "index": "i", "index_uuid": "u",
            "pindexes": pindexes}))
        .expect("a plan")
    }

    fn copy(node: &str, state: &str, can_read: bool) -> serde_json::Value {
        json!({"node": node, "role": "primary", "state": state, "can_read": can_read, "can_write": true})
    }

    fn set(nodes: &[&str]) -> BTreeSet<String> {
        nodes.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn readable_unavailable_and_missing() {
        let plan = plan(json!([
            {"name": "i_0-1", "source_partitions": [0, 1], "copies": [copy("a", "active", true)]},
            {"name": "i_2-2", "source_partitions": [2], "copies": [copy("b", "active", true)]},
            {"name": "i_3-3", "source_partitions": [3], "copies": [copy("a", "building", false)]},
            {"name": "i_4-4", "source_partitions": [4], "copies": [copy("c", "active", true)]},
            // b's copy no longer marked readable (the planner's round after b went down): b
            // may still come back with its files.
            {"name": "i_5-5", "source_partitions": [5], "copies": [copy("b", "building", false)]},
            // Failed over c's copy gone, re-placed empty on a: nothing to wait for.
            {"name": "i_6-6", "source_partitions": [6], "copies": [copy("a", "building", false), copy("c", "active", true)]},
        ]));
        // a is up; b is down but may return; c was failed over (its copy is a leftover).
        let live = set(&["a"]);
        let may_return = set(&["a", "b"]);
        let covered = coverage(&plan, &live, &may_return);
        assert_eq!(covered.pindexes_total, 6);
        assert_eq!(covered.pindexes_readable, 1);
        assert_eq!(
            (covered.partitions_readable, covered.partitions_total),
            (2, 7)
        );
        assert!((covered.fraction - 2.0 / 7.0).abs() < 1e-9);
        assert_eq!(covered.unavailable, vec!["i_2-2", "i_5-5"]);
        // Only a copy building from empty: nothing can serve it, nothing to wait for.
        assert_eq!(covered.missing, vec!["i_3-3", "i_4-4", "i_6-6"]);
    }

    #[test]
    fn an_empty_plan_is_fully_covered() {
        let covered = coverage(&plan(json!([])), &set(&[]), &set(&[]));
        assert_eq!(covered.fraction, 1.0);
        assert!(covered.missing.is_empty() && covered.unavailable.is_empty());
    }
}
