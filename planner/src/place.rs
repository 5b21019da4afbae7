//! Placement: the state of one planning round and its phases (keep, trim, spread, fill,
//! rebalance). See README.md beside this file for the method and why it moves little.

use std::collections::{BTreeMap, BTreeSet};

use crate::chain::{shortest_chain, Step};
use crate::model::CopyRole;
use crate::topology::Topology;

/// The draft placement of one PIndex: its copies as this round places them (`w` indexes
/// drafts in the placement code).
pub(crate) struct Draft {
    pub name: String,
    pub index: String,
    pub partitions: Vec<u32>,
    /// Copies wanted (1 + replicas, capped by eligible nodes); frozen: what it has.
    pub want: usize,
    pub frozen: bool,
    pub level: Option<u32>,
    pub copies: Vec<(usize, CopyRole)>,
    /// Nodes whose copy was already in the previous plan (filled in by `Placement::new`).
    /// Only these take over as primary while any of them is left: a new copy is still
    /// being built.
    pub established: BTreeSet<usize>,
    /// Its primary was lost and a surviving replica promoted this round: that replica stays
    /// primary (balancing does not hand the role to a copy still being built).
    pub promoted: bool,
    /// Nodes holding its files from before: preferred when placing a copy, all else equal.
    pub on_disk: BTreeSet<usize>,
}

pub(crate) struct Placement {
    pub topo: Topology,
    pub drafts: Vec<Draft>,
    /// Copies and primaries per node (all drafts, frozen ones included).
    pub count: Vec<usize>,
    pub primaries: Vec<usize>,
    /// Drafts each node holds a copy of.
    pub holdings: Vec<BTreeSet<usize>>,
    /// While set, `can_move` keeps a built primary in place when its PIndex is being rebuilt
    /// and no other built copy could take over. Balancing clears it only when nothing else
    /// helps: a plan must be balanced by its own rules, or replanning it would move copies.
    strict: bool,
}

impl Placement {
    pub fn new(topo: Topology, drafts: Vec<Draft>) -> Self {
        let n = topo.nodes.len();
        let mut placement = Self {
            topo,
            drafts: Vec::new(),
            count: vec![0; n],
            primaries: vec![0; n],
            holdings: vec![BTreeSet::new(); n],
            strict: true,
        };
        for (w, mut work) in drafts.into_iter().enumerate() {
            let copies = std::mem::take(&mut work.copies);
            placement.topo.add_level(work.level);
            placement.drafts.push(work);
            for (node, role) in copies {
                if !placement.holdings[node].contains(&w) {
                    placement.add(w, node, role);
                    placement.drafts[w].established.insert(node);
                }
            }
        }
        placement
    }

    pub fn add(&mut self, w: usize, node: usize, role: CopyRole) {
        self.drafts[w].copies.push((node, role));
        self.count[node] += 1;
        if role == CopyRole::Primary {
            self.primaries[node] += 1;
        }
        self.holdings[node].insert(w);
    }

    pub fn remove(&mut self, w: usize, node: usize) -> Option<CopyRole> {
        let at = self.drafts[w].copies.iter().position(|&(n, _)| n == node)?;
        let (_, role) = self.drafts[w].copies.remove(at);
        self.count[node] -= 1;
        if role == CopyRole::Primary {
            self.primaries[node] -= 1;
        }
        self.holdings[node].remove(&w);
        Some(role)
    }

    pub fn set_role(&mut self, w: usize, node: usize, role: CopyRole) {
        if let Some(copy) = self.drafts[w].copies.iter_mut().find(|(n, _)| *n == node) {
            if copy.1 != role {
                match role {
                    CopyRole::Primary => self.primaries[node] += 1,
                    CopyRole::Replica => self.primaries[node] -= 1,
                }
                copy.1 = role;
            }
        }
    }

    pub fn role_of(&self, w: usize, node: usize) -> Option<CopyRole> {
        self.drafts[w]
            .copies
            .iter()
            .find(|(n, _)| *n == node)
            .map(|&(_, r)| r)
    }

    fn group_load(&self, w: usize, group: usize) -> usize {
        let level = self.drafts[w].level;
        self.drafts[w]
            .copies
            .iter()
            .filter(|&&(n, _)| self.topo.group(level, n) == group)
            .count()
    }

    fn bound(&mut self, w: usize) -> usize {
        let (level, want) = (self.drafts[w].level, self.drafts[w].want);
        self.topo.bound(level, want)
    }

    /// Drops copies beyond `want`: replicas first, from the nodes furthest above their share of
    /// what remains, so that fewer copies have to move afterwards to even out.
    pub fn trim(&mut self) {
        let remaining: usize = self
            .drafts
            .iter()
            .map(|w| {
                let on_eligible = w
                    .copies
                    .iter()
                    .filter(|&&(n, _)| self.topo.nodes[n].eligible)
                    .count();
                if w.frozen {
                    on_eligible
                } else {
                    on_eligible.min(w.want)
                }
            })
            .sum();
        let targets = self.topo.targets(remaining);
        for w in 0..self.drafts.len() {
            if self.drafts[w].frozen {
                continue;
            }
            while self.drafts[w].copies.len() > self.drafts[w].want {
                let drop = self.drafts[w]
                    .copies
                    .iter()
                    .max_by(|&&(a, ra), &&(b, rb)| {
                        let excess = |n: usize| self.count[n] as i64 - targets[n].1 as i64;
                        (ra == CopyRole::Replica)
                            .cmp(&(rb == CopyRole::Replica))
                            .then(excess(a).cmp(&excess(b)))
                            .then(b.cmp(&a))
                    })
                    .map(|&(n, _)| n);
                let Some(node) = drop else { break };
                self.remove(w, node);
            }
        }
    }

    /// Drops copies that crowd a group beyond its bound; `fill` puts them back elsewhere.
    pub fn spread(&mut self) {
        for w in 0..self.drafts.len() {
            if self.drafts[w].frozen {
                continue;
            }
            let bound = self.bound(w);
            let level = self.drafts[w].level;
            loop {
                let mut loads: BTreeMap<usize, usize> = BTreeMap::new();
                for &(n, _) in &self.drafts[w].copies {
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
        self.drafts[w]
            .copies
            .iter()
            .filter(|&&(n, _)| filter(n))
            .max_by(|&&(a, ra), &&(b, rb)| {
                (ra == CopyRole::Replica)
                    .cmp(&(rb == CopyRole::Replica))
                    .then_with(|| self.topo.lighter((a, self.count[a]), (b, self.count[b])))
            })
            .map(|&(n, _)| n)
    }

    /// Adds missing copies: each to the eligible node that keeps the spread, then has the
    /// lowest load by weight. A PIndex left without a primary gets one among its copies.
    pub fn fill(&mut self) {
        for w in 0..self.drafts.len() {
            if self.drafts[w].frozen {
                continue;
            }
            let bound = self.bound(w);
            let level = self.drafts[w].level;
            while self.drafts[w].copies.len() < self.drafts[w].want {
                let best = self
                    .topo
                    .eligible
                    .iter()
                    .copied()
                    .filter(|&n| !self.holdings[n].contains(&w))
                    .filter(|&n| self.group_load(w, self.topo.group(level, n)) < bound)
                    .min_by(|&a, &b| {
                        self.topo
                            .lighter((a, self.count[a]), (b, self.count[b]))
                            .then_with(|| {
                                let on_disk = &self.drafts[w].on_disk;
                                on_disk.contains(&b).cmp(&on_disk.contains(&a))
                            })
                    });
                let Some(node) = best else { break };
                self.add(w, node, CopyRole::Replica);
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
            let Some(tiers) = tiers(&eligible, |n| self.count[n], &targets) else {
                return;
            };
            let mut found = None;
            for strict in [true, false] {
                self.strict = strict;
                found = tiers
                    .iter()
                    .find_map(|(d, r)| self.find_move(d, r))
                    .map(|step| vec![step])
                    .or_else(|| tiers.iter().find_map(|(d, r)| self.find_chain(d, r)));
                if found.is_some() {
                    break;
                }
            }
            self.strict = true;
            let Some(chain) = found else {
                return;
            };
            // Last step first: each node on the way gives before it takes, so no step
            // depends on another.
            for (w, from, to) in chain.into_iter().rev() {
                self.move_copy(w, from, to);
            }
        }
    }

    /// Moves the copy of `w` on `from` to `to`. A moved primary hands its role to an
    /// established replica when there is one, since the new copy still has to be built.
    pub fn move_copy(&mut self, w: usize, from: usize, to: usize) {
        let role = self.remove(w, from).unwrap_or(CopyRole::Replica);
        self.add(w, to, role);
        if role == CopyRole::Primary {
            let heir = self.drafts[w]
                .copies
                .iter()
                .filter(|&&(n, r)| {
                    r == CopyRole::Replica && self.drafts[w].established.contains(&n)
                })
                .map(|&(n, _)| n)
                .min_by(|&a, &b| {
                    self.topo
                        .lighter((a, self.primaries[a]), (b, self.primaries[b]))
                });
            if let Some(heir) = heir {
                self.set_role(w, to, CopyRole::Replica);
                self.set_role(w, heir, CopyRole::Primary);
            }
        }
    }

    /// A work whose copy may move from `from` to `to`: not frozen, not already on `to`, and
    /// keeping the spread. Replicas are preferred to primaries.
    fn movable(&mut self, from: usize, to: usize) -> Option<usize> {
        if from == to {
            return None;
        }
        // Works whose files `to` still has first: moving them there streams only the delta.
        let held: Vec<usize> = self.holdings[from].iter().copied().collect();
        for pass in [CopyRole::Replica, CopyRole::Primary] {
            for on_disk_only in [true, false] {
                for &w in &held {
                    if on_disk_only && !self.drafts[w].on_disk.contains(&to) {
                        continue;
                    }
                    if self.role_of(w, from) == Some(pass) && self.can_move(w, from, to) {
                        return Some(w);
                    }
                }
            }
        }
        None
    }

    /// Whether the copy of `w` on `from` may move to `to`: not frozen, `to` does not hold it,
    /// and the spread holds after the move.
    pub fn can_move(&mut self, w: usize, from: usize, to: usize) -> bool {
        if from == to
            || self.drafts[w].frozen
            || self.holdings[to].contains(&w)
            || !self.holdings[from].contains(&w)
        {
            return false;
        }
        let work = &self.drafts[w];
        if self.strict
            && self.role_of(w, from) == Some(CopyRole::Primary)
            && work.established.contains(&from)
        {
            // Keep a built primary in place while its PIndex is being rebuilt around it and no
            // other built copy could take over.
            let heir = work
                .copies
                .iter()
                .any(|&(n, _)| n != from && work.established.contains(&n));
            let rebuilding = work
                .copies
                .iter()
                .any(|(n, _)| !work.established.contains(n));
            if !heir && rebuilding {
                return false;
            }
        }
        let level = work.level;
        let (gf, gt) = (self.topo.group(level, from), self.topo.group(level, to));
        gf == gt || self.group_load(w, gt) < self.bound(w)
    }

    fn find_move(
        &mut self,
        donors: &[usize],
        receivers: &[usize],
    ) -> Option<(usize, usize, usize)> {
        for &from in donors {
            for &to in receivers {
                if let Some(w) = self.movable(from, to) {
                    return Some((w, from, to));
                }
            }
        }
        None
    }

    /// When no direct move exists (every receiver already holds what donors could give), a
    /// shortest chain donor → … → receiver in which each node passes one copy on.
    fn find_chain(&mut self, donors: &[usize], receivers: &[usize]) -> Option<Vec<Step>> {
        let eligible = self.topo.eligible.clone();
        let chain = shortest_chain(self.topo.nodes.len(), donors, receivers, |x, seen| {
            eligible
                .iter()
                .filter(|&&y| !seen[y])
                .filter_map(|&y| self.movable(x, y).map(|w| (y, w)))
                .collect()
        })?;
        // Two steps moving copies of one work could crowd a group together.
        let drafts: BTreeSet<usize> = chain.iter().map(|&(w, _, _)| w).collect();
        (drafts.len() == chain.len()).then_some(chain)
    }
}

/// Pairs (donors, receivers) to try, in order, when some node is outside its `[lo, hi]`
/// target; `None` when all are within. One item from a donor to a receiver of any tier brings
/// the total distance to the targets down by at least one, which is why balancing ends.
pub(crate) fn tiers(
    nodes: &[usize],
    count: impl Fn(usize) -> usize,
    targets: &[(usize, usize)],
) -> Option<Vec<(Vec<usize>, Vec<usize>)>> {
    let over = by_excess(nodes, |n| count(n).saturating_sub(targets[n].1));
    let under = by_excess(nodes, |n| targets[n].0.saturating_sub(count(n)));
    if over.is_empty() && under.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    if !over.is_empty() && !under.is_empty() {
        out.push((over.clone(), under.clone()));
    }
    if !over.is_empty() {
        out.push((
            over,
            by_excess(nodes, |n| targets[n].1.saturating_sub(count(n))),
        ));
    }
    if !under.is_empty() {
        out.push((
            by_excess(nodes, |n| count(n).saturating_sub(targets[n].0)),
            under,
        ));
    }
    Some(out)
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
