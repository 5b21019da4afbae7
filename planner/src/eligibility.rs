//! Which nodes may hold copies, and each node's weighted share of copies: the rules placement
//! uses, offered to whoever must explain or check a plan (plan explain, the supervisor's
//! refusals). Nothing outside the planner decides eligibility or shares.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::NodeSpec;
use crate::topology::Topology;

pub use crate::topology::{eligibility, Ineligible};

/// Per eligible node, its `[lo, hi]` share of `total` copies by weight (the ideal share
/// rounded down and up), as placement balances them.
pub fn shares(
    nodes: &[NodeSpec],
    failed: &BTreeSet<String>,
    total: usize,
) -> BTreeMap<String, (usize, usize)> {
    let failed: Vec<String> = failed.iter().cloned().collect();
    let topo = Topology::new(nodes, &failed, std::iter::empty());
    let targets = topo.targets(total);
    topo.eligible
        .iter()
        .map(|&n| (topo.nodes[n].uuid.clone(), targets[n]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NodeTag;

    fn node(uuid: &str, weight: u32) -> NodeSpec {
        NodeSpec {
            uuid: uuid.into(),
            group: String::new(),
            weight,
            tags: vec![NodeTag::Pindex],
            wanted: true,
        }
    }

    #[test]
    fn rules_and_shares() {
        assert_eq!(eligibility(&node("a", 1), false), Ok(()));
        assert_eq!(
            eligibility(&node("a", 1), true),
            Err(Ineligible::FailedOver)
        );
        assert_eq!(
            eligibility(&node("a", 0), false),
            Err(Ineligible::ZeroWeight)
        );
        let mut drained = node("a", 1);
        drained.wanted = false;
        assert_eq!(eligibility(&drained, false), Err(Ineligible::NotWanted));
        let nodes = [node("a", 1), node("b", 2), node("c", 1)];
        let failed = BTreeSet::from(["c".to_string()]);
        let s = shares(&nodes, &failed, 10);
        assert_eq!(s.get("a"), Some(&(3, 4)));
        assert_eq!(s.get("b"), Some(&(6, 7)));
        assert!(!s.contains_key("c"));
    }
}
