//! Roles: exactly one primary per PIndex that has copies, a lost primary replaced by promoting
//! the most caught-up replica, and primaries balanced over nodes by weight through role swaps
//! (a swap moves no data).

use std::collections::BTreeMap;

use crate::chain::{shortest_chain, Step};
use crate::model::CopyRole;
use crate::place::{tiers, Placement};

/// Progress of copies: PIndex name → node uuid → how far it got.
pub(crate) type Progress = BTreeMap<String, BTreeMap<String, u64>>;

/// Which PIndexes a primary swap may take the role from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Handover {
    /// Not from a survivor promoted this round.
    Unpromoted,
    /// From a promoted survivor too, but only to another survivor.
    ToSurvivor,
    /// From anyone to anyone.
    Any,
}

impl Placement {
    /// One primary per PIndex with copies. With none (lost with its node, or a new PIndex), the
    /// replica that is most caught up (when known), then on the node with the fewest primaries
    /// by weight, is promoted. With several, the one on the lightest node stays.
    pub fn settle_primaries(&mut self, progress: &Progress) {
        for w in 0..self.drafts.len() {
            if self.drafts[w].frozen || self.drafts[w].copies.is_empty() {
                continue;
            }
            let primaries: Vec<usize> = self.drafts[w]
                .copies
                .iter()
                .filter(|&&(_, r)| r == CopyRole::Primary)
                .map(|&(n, _)| n)
                .collect();
            if primaries.len() == 1 {
                continue;
            }
            let candidates: Vec<usize> = if primaries.is_empty() {
                let all: Vec<usize> = self.drafts[w].copies.iter().map(|&(n, _)| n).collect();
                let established: Vec<usize> = all
                    .iter()
                    .copied()
                    .filter(|n| self.drafts[w].established.contains(n))
                    .collect();
                if established.is_empty() {
                    all
                } else {
                    self.drafts[w].promoted = true;
                    established
                }
            } else {
                primaries
            };
            let seen = progress.get(&self.drafts[w].name);
            let caught_up = |n: usize| {
                seen.and_then(|p| p.get(&self.topo.nodes[n].uuid))
                    .copied()
                    .unwrap_or(0)
            };
            let Some(keep) = candidates.iter().copied().min_by(|&a, &b| {
                caught_up(b).cmp(&caught_up(a)).then_with(|| {
                    self.topo
                        .lighter((a, self.primaries[a]), (b, self.primaries[b]))
                })
            }) else {
                continue;
            };
            for n in candidates {
                let role = if n == keep {
                    CopyRole::Primary
                } else {
                    CopyRole::Replica
                };
                self.set_role(w, n, role);
            }
        }
    }

    /// Swaps primary and replica roles within PIndexes (directly, or along a chain of nodes
    /// each passing one primary on) until every node's primaries are within `[lo, hi]` of its
    /// weighted share; when no swap helps, exchanges copies of a single-copy PIndex.
    pub fn balance_primaries(&mut self) {
        let total: usize = self.topo.eligible.iter().map(|&n| self.primaries[n]).sum();
        let targets = self.topo.targets(total);
        let copies: usize = self.topo.eligible.iter().map(|&n| self.count[n]).sum();
        let copy_targets = self.topo.targets(copies);
        loop {
            let eligible = self.topo.eligible.clone();
            let Some(tiers) = tiers(&eligible, |n| self.primaries[n], &targets) else {
                return;
            };
            // Cheapest first: role swaps that leave promoted survivors alone, then moving a
            // primary copy, then swaps handing a promoted survivor's role to another survivor,
            // then to any copy. Balance must be reached by the plan's own rules, or replanning
            // it would change it.
            if let Some(chain) = tiers
                .iter()
                .find_map(|(d, r)| self.find_swap_chain(d, r, Handover::Unpromoted))
            {
                self.swap_along(chain);
            } else if let Some((u, back, from, to)) = tiers
                .iter()
                .find_map(|(d, r)| self.find_exchange(d, r, &copy_targets))
            {
                // One primary goes from `from` to `to`; copy counts stay within their targets.
                self.move_copy(u, from, to);
                if let Some(v) = back {
                    self.move_copy(v, to, from);
                }
            } else if let Some(chain) =
                [Handover::ToSurvivor, Handover::Any]
                    .into_iter()
                    .find_map(|h| {
                        tiers
                            .iter()
                            .find_map(|(d, r)| self.find_swap_chain(d, r, h))
                    })
            {
                self.swap_along(chain);
            } else {
                return;
            }
        }
    }

    fn swap_along(&mut self, chain: Vec<Step>) {
        for (w, from, to) in chain {
            self.set_role(w, from, CopyRole::Replica);
            self.set_role(w, to, CopyRole::Primary);
        }
    }

    /// The shortest chain donor → … → receiver where each step is a PIndex whose primary is on
    /// the first node and a replica on the second (a new copy may be the target primary: the
    /// plan is the goal, and handing over waits until the copy is built). Works on a chain are
    /// distinct (a PIndex has one primary), so the swaps are independent.
    fn find_swap_chain(
        &self,
        donors: &[usize],
        receivers: &[usize],
        handover: Handover,
    ) -> Option<Vec<Step>> {
        shortest_chain(self.topo.nodes.len(), donors, receivers, |x, seen| {
            let mut out = Vec::new();
            for &w in &self.holdings[x] {
                let work = &self.drafts[w];
                if work.frozen
                    || (work.promoted && handover == Handover::Unpromoted)
                    || self.role_of(w, x) != Some(CopyRole::Primary)
                {
                    continue;
                }
                for &(y, role) in &work.copies {
                    let built = !work.promoted
                        || handover == Handover::Any
                        || work.established.contains(&y);
                    if role == CopyRole::Replica && !seen[y] && built {
                        out.push((y, w));
                    }
                }
            }
            out
        })
    }

    /// When no swap helps (the donor's primaries have no replica on a receiver, as with
    /// single-copy PIndexes), the primary copy of a PIndex `u` moves from the donor to the
    /// receiver;
    /// if that would take either node's copy count out of its target, a replica of some `v`
    /// moves back in exchange.
    fn find_exchange(
        &mut self,
        donors: &[usize],
        receivers: &[usize],
        copy_targets: &[(usize, usize)],
    ) -> Option<(usize, Option<usize>, usize, usize)> {
        for &from in donors {
            for &to in receivers {
                if from == to {
                    continue;
                }
                // PIndexes whose primary moves along with its copy: single-copy ones, and ones
                // with no built copy to hand the role to.
                let singles: Vec<usize> = self.holdings[from]
                    .iter()
                    .copied()
                    .filter(|&u| {
                        let work = &self.drafts[u];
                        !work.frozen
                            && !work.promoted
                            && self.role_of(u, from) == Some(CopyRole::Primary)
                            && (work.copies.len() == 1 || work.established.is_empty())
                    })
                    .collect();
                let Some(u) = singles.into_iter().find(|&u| self.can_move(u, from, to)) else {
                    continue;
                };
                if self.count[from] > copy_targets[from].0 && self.count[to] < copy_targets[to].1 {
                    return Some((u, None, from, to));
                }
                let back: Vec<usize> = self.holdings[to]
                    .iter()
                    .copied()
                    .filter(|&v| self.role_of(v, to) == Some(CopyRole::Replica))
                    .collect();
                for v in back {
                    if v != u && self.can_move(v, to, from) {
                        return Some((u, Some(v), from, to));
                    }
                }
            }
        }
        None
    }
}
