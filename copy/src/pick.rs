//! Which node serves the files of a PIndex: pure, from the serving cluster's plan. The PIndex
//! is the one covering exactly the partitions asked for (a cluster partitioning the index
//! otherwise cannot serve it whole); its copies that can serve are the readable ones on live
//! nodes, this node's first (no forwarding), then the primary's, then by node uuid.

use std::collections::BTreeSet;

use tessera_cfg::schema::{CopyRole, IndexPlan};

/// The PIndex to copy and the nodes holding a readable copy of it, in the order to ask them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holders {
    pub pindex: String,
    /// Empty when no readable copy is on a live node.
    pub nodes: Vec<String>,
}

/// The holders of the PIndex of `plan` covering exactly `partitions` (in any order); `None`
/// when the plan has no such PIndex.
pub fn holders(
    plan: &IndexPlan,
    partitions: &[u32],
    live: &BTreeSet<String>,
    me: &str,
) -> Option<Holders> {
    let wanted: BTreeSet<u32> = partitions.iter().copied().collect();
    let p = plan.pindexes.iter().find(|p| {
        p.source_partitions.len() == wanted.len()
            && p.source_partitions.iter().all(|x| wanted.contains(x))
    })?;
    let mut copies: Vec<_> = p
        .copies
        .iter()
        .filter(|c| c.can_read && live.contains(&c.node))
        .collect();
    copies.sort_by_key(|c| (c.node != me, c.role != CopyRole::Primary, c.node.clone()));
    Some(Holders {
        pindex: p.name.clone(),
        nodes: copies.into_iter().map(|c| c.node.clone()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_cfg::schema::{CopyPlan, CopyState, PIndexPlan};

    fn copy(node: &str, role: CopyRole, can_read: bool) -> CopyPlan {
        CopyPlan {
            node: node.into(),
            role,
            state: CopyState::Active,
            can_read,
            can_write: true,
            target_role: None,
        }
    }

    fn plan() -> IndexPlan {
        IndexPlan {
            format_version: 1,
            index: "books".into(),
            index_uuid: "u".into(),
            pindexes: vec![
                PIndexPlan {
                    name: "books_a".into(),
                    source_partitions: vec![0, 1],
                    copies: vec![
                        copy("n3", CopyRole::Replica, true),
                        copy("n2", CopyRole::Primary, true),
                        copy("n1", CopyRole::Replica, false),
                        copy("n4", CopyRole::Replica, true),
                    ],
                },
                PIndexPlan {
                    name: "books_b".into(),
                    source_partitions: vec![2, 3],
                    copies: vec![copy("n9", CopyRole::Primary, true)],
                },
            ],
            warnings: vec![],
        }
    }

    fn live(nodes: &[&str]) -> BTreeSet<String> {
        nodes.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn readable_copies_on_live_nodes_mine_first_then_the_primary() {
        let all = live(&["n1", "n2", "n3", "n4"]);
        let h = holders(&plan(), &[1, 0], &all, "n4").expect("books_a");
        assert_eq!(h.pindex, "books_a");
        assert_eq!(h.nodes, ["n4", "n2", "n3"], "n1's copy is not readable");
        let h = holders(&plan(), &[0, 1], &live(&["n1", "n3"]), "n1").expect("books_a");
        assert_eq!(h.nodes, ["n3"], "n2 and n4 are down");
    }

    #[test]
    fn no_readable_copy_and_no_such_pindex() {
        let h = holders(&plan(), &[2, 3], &live(&["n1"]), "n1").expect("books_b");
        assert!(h.nodes.is_empty(), "its only copy is on a dead node");
        assert_eq!(holders(&plan(), &[0], &live(&["n1"]), "n1"), None);
        assert_eq!(holders(&plan(), &[0, 1, 2], &live(&["n1"]), "n1"), None);
    }
}
