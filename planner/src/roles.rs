//! Roles: exactly one primary per PIndex that has copies, a lost primary replaced by promoting
//! the most caught-up replica, and primaries balanced over nodes by weight through role swaps
//! (a swap moves no data).

use std::collections::BTreeMap;

use crate::model::Role;
use crate::place::{by_excess, Placement};

/// Progress of copies: PIndex name → node uuid → how far it got.
pub(crate) type Progress = BTreeMap<String, BTreeMap<String, u64>>;

impl Placement {
    /// One primary per PIndex with copies. With none (lost with its node, or a new PIndex), the
    /// replica that is most caught up (when known), then on the node with the fewest primaries
    /// by weight, is promoted. With several, the one on the lightest node stays.
    pub fn settle_primaries(&mut self, progress: &Progress) {
        for w in 0..self.works.len() {
            if self.works[w].frozen || self.works[w].copies.is_empty() {
                continue;
            }
            let primaries: Vec<usize> = self.works[w]
                .copies
                .iter()
                .filter(|&&(_, r)| r == Role::Primary)
                .map(|&(n, _)| n)
                .collect();
            if primaries.len() == 1 {
                continue;
            }
            let candidates: Vec<usize> = if primaries.is_empty() {
                self.works[w].copies.iter().map(|&(n, _)| n).collect()
            } else {
                primaries
            };
            let seen = progress.get(&self.works[w].name);
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
                    Role::Primary
                } else {
                    Role::Replica
                };
                self.set_role(w, n, role);
            }
        }
    }

    /// Swaps primary and replica roles within PIndexes until every node's primaries are within
    /// `[lo, hi]` of its weighted share, or no swap helps.
    pub fn balance_primaries(&mut self) {
        let total: usize = self.topo.eligible.iter().map(|&n| self.primaries[n]).sum();
        let targets = self.topo.targets(total);
        loop {
            let eligible = self.topo.eligible.clone();
            let over = by_excess(&eligible, |n| {
                self.primaries[n].saturating_sub(targets[n].1)
            });
            let under = by_excess(&eligible, |n| {
                targets[n].0.saturating_sub(self.primaries[n])
            });
            if over.is_empty() && under.is_empty() {
                return;
            }
            let donors = if over.is_empty() {
                by_excess(&eligible, |n| {
                    self.primaries[n].saturating_sub(targets[n].0)
                })
            } else {
                over
            };
            let receivers = if under.is_empty() {
                by_excess(&eligible, |n| {
                    targets[n].1.saturating_sub(self.primaries[n])
                })
            } else {
                under
            };
            let Some((w, from, to)) = self.find_swap(&donors, &receivers) else {
                return;
            };
            self.set_role(w, from, Role::Replica);
            self.set_role(w, to, Role::Primary);
        }
    }

    fn find_swap(&self, donors: &[usize], receivers: &[usize]) -> Option<(usize, usize, usize)> {
        let mut receiving = vec![false; self.topo.nodes.len()];
        for &r in receivers {
            receiving[r] = true;
        }
        for &from in donors {
            for &w in &self.holdings[from] {
                if self.works[w].frozen || self.role_of(w, from) != Some(Role::Primary) {
                    continue;
                }
                let best = self.works[w]
                    .copies
                    .iter()
                    .filter(|&&(n, r)| r == Role::Replica && receiving[n] && n != from)
                    .map(|&(n, _)| n)
                    .min_by(|&a, &b| {
                        self.topo
                            .lighter((a, self.primaries[a]), (b, self.primaries[b]))
                    });
                if let Some(to) = best {
                    return Some((w, from, to));
                }
            }
        }
        None
    }
}
