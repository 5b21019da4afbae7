//! Placement: the state of one planning round and its phases (keep, trim, spread, fill,
//! rebalance). See README.md beside this file for the method and why it moves little.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::Role;
use crate::topology::Topology;

/// One PIndex being placed.
pub(crate) struct Work {
    pub name: String,
    pub index: String,
    pub partitions: Vec<u32>,
    /// Copies wanted (1 + replicas, capped by eligible nodes); frozen: what it has.
    pub want: usize,
    pub frozen: bool,
    pub level: Option<u32>,
    pub copies: Vec<(usize, Role)>,
}

pub(crate) struct Placement {
    pub topo: Topology,
    pub works: Vec<Work>,
    /// Copies and primaries per node (all works, frozen ones included).
    pub count: Vec<usize>,
    pub primaries: Vec<usize>,
    /// Works each node holds a copy of.
    pub holdings: Vec<BTreeSet<usize>>,
}

impl Placement {
    pub fn new(topo: Topology, works: Vec<Work>) -> Self {
        let n = topo.nodes.len();
        let mut placement = Self {
            topo,
            works: Vec::new(),
            count: vec![0; n],
            primaries: vec![0; n],
            holdings: vec![BTreeSet::new(); n],
        };
        for (w, mut work) in works.into_iter().enumerate() {
            let copies = std::mem::take(&mut work.copies);
            placement.topo.add_level(work.level);
            placement.works.push(work);
            for (node, role) in copies {
                if !placement.holdings[node].contains(&w) {
                    placement.add(w, node, role);
                }
            }
        }
        placement
    }

    pub fn add(&mut self, w: usize, node: usize, role: Role) {
        self.works[w].copies.push((node, role));
        self.count[node] += 1;
        if role == Role::Primary {
            self.primaries[node] += 1;
        }
        self.holdings[node].insert(w);
    }

    pub fn remove(&mut self, w: usize, node: usize) -> Option<Role> {
        let at = self.works[w].copies.iter().position(|&(n, _)| n == node)?;
        let (_, role) = self.works[w].copies.remove(at);
        self.count[node] -= 1;
        if role == Role::Primary {
            self.primaries[node] -= 1;
        }
        self.holdings[node].remove(&w);
        Some(role)
    }

    pub fn set_role(&mut self, w: usize, node: usize, role: Role) {
        if let Some(copy) = self.works[w].copies.iter_mut().find(|(n, _)| *n == node) {
            if copy.1 != role {
                match role {
                    Role::Primary => self.primaries[node] += 1,
                    Role::Replica => self.primaries[node] -= 1,
                }
                copy.1 = role;
            }
        }
    }

    pub fn role_of(&self, w: usize, node: usize) -> Option<Role> {
        self.works[w]
            .copies
            .iter()
            .find(|(n, _)| *n == node)
            .map(|&(_, r)| r)
    }

    fn group_load(&self, w: usize, group: usize) -> usize {
        let level = self.works[w].level;
        self.works[w]
            .copies
            .iter()
            .filter(|&&(n, _)| self.topo.group(level, n) == group)
            .count()
    }

    fn bound(&mut self, w: usize) -> usize {
        let (level, want) = (self.works[w].level, self.works[w].want);
        self.topo.bound(level, want)
    }

    /// Drops copies beyond `want`: replicas on the most loaded nodes first.
    pub fn trim(&mut self) {
        for w in 0..self.works.len() {
            if self.works[w].frozen {
                continue;
            }
            while self.works[w].copies.len() > self.works[w].want {
                let Some(node) = self.heaviest_copy(w, |_| true) else {
                    break;
                };
                self.remove(w, node);
            }
        }
    }

    /// Drops copies that crowd a group beyond its bound; `fill` puts them back elsewhere.
    pub fn spread(&mut self) {
        for w in 0..self.works.len() {
            if self.works[w].frozen {
                continue;
            }
            let bound = self.bound(w);
            let level = self.works[w].level;
            loop {
                let mut loads: BTreeMap<usize, usize> = BTreeMap::new();
                for &(n, _) in &self.works[w].copies {
                    *loads.entry(self.topo.group(level, n)).or_default() += 1;
                }
                let Some((&crowded, _)) = loads.iter().find(|&(_, &load)| load > bound) else {
                    break;
                };
                let topo = &self.topo;
                let Some(node) = self.heaviest_copy(w, |n| topo.group(level, n) == crowded) else {
                    break;
                };
                self.remove(w, node);
            }
        }
    }

    /// The copy of `w` (among nodes passing `filter`) to give up first: a replica before the
    /// primary, then the most loaded node by weight, then the highest uuid.
    fn heaviest_copy(&self, w: usize, filter: impl Fn(usize) -> bool) -> Option<usize> {
        self.works[w]
            .copies
            .iter()
            .filter(|&&(n, _)| filter(n))
            .max_by(|&&(a, ra), &&(b, rb)| {
                (ra == Role::Replica)
                    .cmp(&(rb == Role::Replica))
                    .then_with(|| self.topo.lighter((a, self.count[a]), (b, self.count[b])))
            })
            .map(|&(n, _)| n)
    }

    /// Adds missing copies: each to the eligible node that keeps the spread, then has the
    /// lowest load by weight. A PIndex left without a primary gets one among its copies.
    pub fn fill(&mut self) {
        for w in 0..self.works.len() {
            if self.works[w].frozen {
                continue;
            }
            let bound = self.bound(w);
            let level = self.works[w].level;
            while self.works[w].copies.len() < self.works[w].want {
                let best = self
                    .topo
                    .eligible
                    .iter()
                    .copied()
                    .filter(|&n| !self.holdings[n].contains(&w))
                    .filter(|&n| self.group_load(w, self.topo.group(level, n)) < bound)
                    .min_by(|&a, &b| self.topo.lighter((a, self.count[a]), (b, self.count[b])));
                let Some(node) = best else { break };
                self.add(w, node, Role::Replica);
            }
        }
    }

    /// Moves copies from nodes above their share to nodes below it until every node is within
    /// `[lo, hi]` of its weighted share, or no move keeps the rules. Replicas move first.
    pub fn rebalance(&mut self) {
        let total: usize = self.topo.eligible.iter().map(|&n| self.count[n]).sum();
        let targets = self.topo.targets(total);
        loop {
            let eligible = self.topo.eligible.clone();
            let over: Vec<usize> =
                by_excess(&eligible, |n| self.count[n].saturating_sub(targets[n].1));
            let under: Vec<usize> =
                by_excess(&eligible, |n| targets[n].0.saturating_sub(self.count[n]));
            if over.is_empty() && under.is_empty() {
                return;
            }
            let donors = if over.is_empty() {
                by_excess(&eligible, |n| self.count[n].saturating_sub(targets[n].0))
            } else {
                over
            };
            let receivers = if under.is_empty() {
                by_excess(&eligible, |n| targets[n].1.saturating_sub(self.count[n]))
            } else {
                under
            };
            let Some((w, from, to)) = self.find_move(&donors, &receivers) else {
                return;
            };
            let role = self.remove(w, from).unwrap_or(Role::Replica);
            self.add(w, to, role);
        }
    }

    fn find_move(
        &mut self,
        donors: &[usize],
        receivers: &[usize],
    ) -> Option<(usize, usize, usize)> {
        for &from in donors {
            for &to in receivers {
                if from == to {
                    continue;
                }
                for pass in [Role::Replica, Role::Primary] {
                    let held: Vec<usize> = self.holdings[from].iter().copied().collect();
                    for w in held {
                        if self.works[w].frozen
                            || self.holdings[to].contains(&w)
                            || self.role_of(w, from) != Some(pass)
                        {
                            continue;
                        }
                        let level = self.works[w].level;
                        let (gf, gt) = (self.topo.group(level, from), self.topo.group(level, to));
                        if gf != gt && self.group_load(w, gt) + 1 > self.bound(w) {
                            continue;
                        }
                        return Some((w, from, to));
                    }
                }
            }
        }
        None
    }
}

/// Nodes with a positive `excess`, largest first, then in uuid order.
pub(crate) fn by_excess(nodes: &[usize], excess: impl Fn(usize) -> usize) -> Vec<usize> {
    let mut out: Vec<(usize, usize)> = nodes
        .iter()
        .map(|&n| (n, excess(n)))
        .filter(|&(_, e)| e > 0)
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out.into_iter().map(|(n, _)| n).collect()
}
