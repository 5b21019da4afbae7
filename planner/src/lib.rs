//! The planner: index definitions + wanted nodes + the previous plan → the next plan.
//!
//! [`plan`] is a pure function over plain data ([`model`]); no I/O, deterministic, and
//! idempotent (planning its own output again changes nothing). README.md beside this crate's
//! sources explains the algorithm. The elected, fenced service that feeds it from the Cfg and
//! writes its plans lives in [`service`].

mod chain;
pub mod coverage;
pub mod defaults;
mod drafts;
pub mod eligibility;
pub mod model;
pub mod moves;
pub mod orchestrate;
mod place;
mod roles;
pub mod service;
pub mod split;
mod topology;
pub mod validate;

use std::collections::BTreeMap;

use model::{Plan, PlanInput, PlanOutput, Stats, TargetCopy, TargetPIndex, Warning};
use place::Placement;
use topology::Topology;

/// Plans `input`. Never fails: what cannot be met becomes a warning and the best plan possible.
/// Validate untrusted input first with [`validate::validate`]; unvalidated input is planned
/// as well as it can be (e.g. duplicate nodes count once), never panics.
pub fn plan(input: &PlanInput) -> PlanOutput {
    let empty = Plan::default();
    let previous = input.previous_plan.as_ref().unwrap_or(&empty);
    let mut warnings = Warnings::default();
    let unknown = drafts::unknown_nodes(input, previous);
    let topo = Topology::new(&input.nodes, &input.failed_nodes, unknown.iter().cloned());
    let drafts = drafts::drafts(input, previous, &topo, &unknown, &mut warnings);

    let mut placement = Placement::new(topo, drafts);
    let kept_before = kept_counts(&placement);
    placement.settle_primaries(&input.progress);
    placement.trim();
    placement.spread();
    placement.fill();
    placement.settle_primaries(&input.progress);
    placement.rebalance();
    placement.balance_primaries();
    spread_warnings(&mut placement, &mut warnings);

    let next = to_plan(&placement);
    let moves = moves::moves(previous, &next);
    let stats = Stats {
        copies_added: moves::copies_added(&moves),
        min_copies_added: min_copies_added(&placement, &kept_before),
        elapsed_ms: 0.0,
    };
    PlanOutput {
        plan: next,
        moves,
        warnings: warnings.into_vec(),
        stats,
    }
}

/// [`plan`], with `stats.elapsed_ms` filled in: what the service and `what-if` run.
pub fn plan_timed(input: &PlanInput) -> PlanOutput {
    let started = std::time::Instant::now();
    let mut out = plan(input);
    out.stats.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    out
}

/// Per draft, copies kept from the previous plan (before any phase ran), and per node, the
/// copies it held of drafts that still exist.
struct KeptBefore {
    per_work: Vec<usize>,
    per_node: Vec<usize>,
}

fn kept_counts(placement: &Placement) -> KeptBefore {
    KeptBefore {
        per_work: placement
            .drafts
            .iter()
            .map(|w| w.copies.len().min(w.want))
            .collect(),
        per_node: placement.count.clone(),
    }
}

/// A lower bound of the copies any plan must add: every missing copy, and every node's
/// shortfall below its share.
fn min_copies_added(placement: &Placement, kept: &KeptBefore) -> usize {
    let missing: usize = placement
        .drafts
        .iter()
        .zip(&kept.per_work)
        .filter(|(w, _)| !w.frozen)
        .map(|(w, &k)| w.want.saturating_sub(k))
        .sum();
    let total: usize = placement
        .topo
        .eligible
        .iter()
        .map(|&n| placement.count[n])
        .sum();
    let targets = placement.topo.targets(total);
    let shortfall: usize = placement
        .topo
        .eligible
        .iter()
        .map(|&n| targets[n].0.saturating_sub(kept.per_node[n]))
        .sum();
    missing.max(shortfall)
}

fn spread_warnings(placement: &mut Placement, warnings: &mut Warnings) {
    for w in 0..placement.drafts.len() {
        let work = &placement.drafts[w];
        if work.frozen || work.want < 2 {
            continue;
        }
        let groups = placement.topo.eligible_groups(work.level);
        if groups < work.want {
            let level = work.level.map_or("the full group path".to_string(), |l| {
                format!("group level {l}")
            });
            let (index, want) = (work.index.clone(), work.want);
            warnings.add(&index, format!("{want} copies per PIndex but {groups} server groups at {level}: some copies share a group"));
        }
    }
}

fn to_plan(placement: &Placement) -> Plan {
    Plan {
        pindexes: placement
            .drafts
            .iter()
            .map(|w| {
                let mut copies: Vec<TargetCopy> = w
                    .copies
                    .iter()
                    .map(|&(n, role)| TargetCopy {
                        node: placement.topo.nodes[n].uuid.clone(),
                        role,
                    })
                    .collect();
                // Primary first, then by node: a stable, readable order.
                copies.sort_by(|a, b| {
                    (a.role != model::CopyRole::Primary, &a.node)
                        .cmp(&(b.role != model::CopyRole::Primary, &b.node))
                });
                TargetPIndex {
                    name: w.name.clone(),
                    index: w.index.clone(),
                    source_partitions: w.partitions.clone(),
                    copies,
                }
            })
            .collect(),
    }
}

/// Warnings once per (index, message), in index order.
#[derive(Default)]
pub(crate) struct Warnings(BTreeMap<(String, String), ()>);

impl Warnings {
    pub(crate) fn add(&mut self, index: &str, message: String) {
        self.0.insert((index.to_string(), message), ());
    }
    fn into_vec(self) -> Vec<Warning> {
        self.0
            .into_keys()
            .map(|(index, message)| Warning { index, message })
            .collect()
    }
}
