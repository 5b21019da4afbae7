//! The cluster as placement sees it: nodes in uuid order (eligible or not), server groups at
//! each spread level, per-node targets from weights, and how many copies of one PIndex a
//! group may hold.

use std::collections::{BTreeMap, HashMap};

use crate::model::{NodeSpec, NodeTag};

pub(crate) struct Node {
    pub uuid: String,
    pub weight: u64,
    /// Tagged `pindex`, wanted and not failed: may hold copies.
    pub eligible: bool,
    path: Vec<String>,
}

/// Group ids of every node at one spread level, and the sizes of the eligible groups.
struct Grouping {
    group_of: Vec<usize>,
    /// Eligible nodes per group id.
    sizes: Vec<usize>,
}

pub(crate) struct Topology {
    pub nodes: Vec<Node>,
    by_uuid: HashMap<String, usize>,
    /// Eligible node indexes, in uuid order.
    pub eligible: Vec<usize>,
    /// Keyed by spread level (`None`: the whole path).
    groupings: BTreeMap<Option<u32>, Grouping>,
    /// Cache of `bound` by (level, copies).
    bounds: HashMap<(Option<u32>, usize), usize>,
}

impl Topology {
    /// `extra` are uuids known only from the previous plan: kept as ineligible nodes.
    pub fn new(
        specs: &[NodeSpec],
        failed: &[String],
        extra: impl IntoIterator<Item = String>,
    ) -> Self {
        let mut nodes: Vec<Node> = specs
            .iter()
            .map(|s| Node {
                uuid: s.uuid.clone(),
                weight: u64::from(s.weight),
                eligible: eligibility(s, failed.contains(&s.uuid)).is_ok(),
                path: s
                    .group
                    .split('/')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
            .collect();
        for uuid in extra {
            if !nodes.iter().any(|n| n.uuid == uuid) {
                nodes.push(Node {
                    uuid,
                    weight: 1,
                    eligible: false,
                    path: Vec::new(),
                });
            }
        }
        nodes.sort_by(|a, b| a.uuid.cmp(&b.uuid));
        nodes.dedup_by(|a, b| a.uuid == b.uuid);
        let by_uuid = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.uuid.clone(), i))
            .collect();
        let eligible = (0..nodes.len()).filter(|&i| nodes[i].eligible).collect();
        Self {
            nodes,
            by_uuid,
            eligible,
            groupings: BTreeMap::new(),
            bounds: HashMap::new(),
        }
    }

    pub fn index_of(&self, uuid: &str) -> Option<usize> {
        self.by_uuid.get(uuid).copied()
    }

    /// Prepares the grouping of a spread level; call before `group` / `bound` with it.
    pub fn add_level(&mut self, level: Option<u32>) {
        if self.groupings.contains_key(&level) {
            return;
        }
        let mut ids: BTreeMap<Vec<String>, usize> = BTreeMap::new();
        let keys: Vec<Vec<String>> = self
            .nodes
            .iter()
            .map(|n| match level {
                Some(l) => n.path.iter().take(l as usize).cloned().collect(),
                None => n.path.clone(),
            })
            .collect();
        for key in &keys {
            let next = ids.len();
            ids.entry(key.clone()).or_insert(next);
        }
        let group_of: Vec<usize> = keys.iter().map(|k| ids[k]).collect();
        let mut sizes = vec![0; ids.len()];
        for &n in &self.eligible {
            sizes[group_of[n]] += 1;
        }
        self.groupings.insert(level, Grouping { group_of, sizes });
    }

    pub fn group(&self, level: Option<u32>, node: usize) -> usize {
        self.groupings.get(&level).map_or(0, |g| g.group_of[node])
    }

    /// Groups that have at least one eligible node, at `level`.
    pub fn eligible_groups(&self, level: Option<u32>) -> usize {
        self.groupings
            .get(&level)
            .map_or(1, |g| g.sizes.iter().filter(|&&s| s > 0).count().max(1))
    }

    /// The most copies of one PIndex (of `copies` copies) any group may hold: the smallest `b`
    /// with `Σ min(b, eligible nodes of group) ≥ copies`, so that the spread is as even as the
    /// groups' sizes allow and always achievable.
    pub fn bound(&mut self, level: Option<u32>, copies: usize) -> usize {
        if let Some(&b) = self.bounds.get(&(level, copies)) {
            return b;
        }
        let sizes = self
            .groupings
            .get(&level)
            .map(|g| g.sizes.clone())
            .unwrap_or_default();
        let mut b = 1;
        while b < copies && sizes.iter().map(|&s| s.min(b)).sum::<usize>() < copies {
            b += 1;
        }
        self.bounds.insert((level, copies), b);
        b
    }

    /// Per-node `[lo, hi]` share of `total` items by weight over the eligible nodes: each
    /// node's ideal share rounded down and up.
    pub fn targets(&self, total: usize) -> Vec<(usize, usize)> {
        let weight_sum: u64 = self.eligible.iter().map(|&n| self.nodes[n].weight).sum();
        let mut out = vec![(0, 0); self.nodes.len()];
        if weight_sum == 0 {
            return out;
        }
        for &n in &self.eligible {
            let share = total as u64 * self.nodes[n].weight;
            let lo = (share / weight_sum) as usize;
            let hi = share.div_ceil(weight_sum) as usize;
            out[n] = (lo, hi);
        }
        out
    }

    /// Orders two eligible nodes by the load they would have with one more item:
    /// `(count + 1) / weight`, then uuid. Smaller is the better place for the item.
    pub fn lighter(&self, a: (usize, usize), b: (usize, usize)) -> std::cmp::Ordering {
        let (na, ca) = a;
        let (nb, cb) = b;
        let left = (ca as u64 + 1) * self.nodes[nb].weight;
        let right = (cb as u64 + 1) * self.nodes[na].weight;
        left.cmp(&right).then(na.cmp(&nb))
    }
}

/// Why a node may not hold copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ineligible {
    NotTaggedPindex,
    FailedOver,
    NotWanted,
    ZeroWeight,
}

impl Ineligible {
    pub fn reason(self) -> &'static str {
        match self {
            Ineligible::NotTaggedPindex => "not tagged `pindex`",
            Ineligible::FailedOver => "failed over",
            Ineligible::NotWanted => {
                "not wanted (drained, ejected or a managed node not added yet)"
            }
            Ineligible::ZeroWeight => "of weight 0",
        }
    }
}

/// Whether `node` may hold copies; `failed`: it is failed over (by a supervisor, or by the
/// planner after the failover delay). A node that is merely down stays eligible: its copies
/// stay until it is failed over.
pub fn eligibility(node: &NodeSpec, failed: bool) -> Result<(), Ineligible> {
    if !node.tags.contains(&NodeTag::Pindex) {
        Err(Ineligible::NotTaggedPindex)
    } else if failed {
        Err(Ineligible::FailedOver)
    } else if !node.wanted {
        Err(Ineligible::NotWanted)
    } else if node.weight == 0 {
        Err(Ineligible::ZeroWeight)
    } else {
        Ok(())
    }
}
