//! Moves as transitions (make before break). The planner's target says where copies should
//! be; this says what to store *now* so that the cluster gets there without ever serving
//! less: a copy that moves is first added `building` on its new node, and the copy it
//! replaces is marked `dropping` and keeps serving until every copy the PIndex keeps is
//! caught up; a new primary takes the role only once it has caught up. Moves start within
//! throttles (per node incoming and outgoing, and cluster-wide), restoring missing copies
//! first and then unloading the busiest nodes first. Pure: the planner service calls it every
//! round with what the Cfg says, so a new leader resumes a move exactly where the Cfg shows it.
//! See README.md, "Transitions".

use std::collections::{BTreeMap, BTreeSet};

use tessera_cfg::schema::{CopyPlan, CopyRole, CopyState, PIndexPlan};

use crate::model::{Plan, TargetPIndex};

/// How many moves may be under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Copies being built on one node because of a move.
    pub incoming_per_node: usize,
    /// Copies of one node dropping because of a move.
    pub outgoing_per_node: usize,
    /// Moves under way in the whole cluster.
    pub cluster: usize,
}

impl Default for Limits {
    fn default() -> Self {
        use crate::defaults;
        Self {
            incoming_per_node: defaults::MOVES_IN_PER_NODE as usize,
            outgoing_per_node: defaults::MOVES_OUT_PER_NODE as usize,
            cluster: defaults::MOVES as usize,
        }
    }
}

/// A stored PIndex as the planner's previous plan: where it is heading. Copies on their way
/// out are left out and copies take the role they are moving to, so the target stays put while
/// moves run.
pub fn heading(index: &str, stored: &PIndexPlan) -> TargetPIndex {
    TargetPIndex {
        name: stored.name.clone(),
        index: index.to_string(),
        source_partitions: stored.source_partitions.clone(),
        copies: stored
            .copies
            .iter()
            .filter(|c| c.state != CopyState::Dropping)
            .map(|c| crate::model::TargetCopy {
                node: c.node.clone(),
                role: c.planned_role(),
            })
            .collect(),
    }
}

/// What a round sees.
pub struct TransitionInput<'a> {
    /// Where the planner wants copies.
    pub target: &'a Plan,
    /// The stored copies per PIndex (what serves now).
    pub current: &'a BTreeMap<String, PIndexPlan>,
    /// Per node, the PIndexes its janitor reports caught up.
    pub caught_up: &'a BTreeMap<String, BTreeSet<String>>,
    /// Nodes whose copies are gone at once: failed over or no longer defined.
    pub gone: &'a BTreeSet<String>,
    pub limits: Limits,
}

/// How far the transition to the target is.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    /// Copies being built to replace or restore a copy (moves under way).
    pub moving: usize,
    /// Copies the target wants that wait for a free slot.
    pub waiting: usize,
    /// Copies serving until their replacements catch up.
    pub dropping: usize,
    /// Per node: (copies incoming, copies outgoing) under way.
    pub per_node: BTreeMap<String, (usize, usize)>,
    /// Moves finished this round: (PIndex, node) of copies that were building while another
    /// copy served and have now caught up.
    pub completed: Vec<(String, String)>,
}

impl Progress {
    /// Moves not finished (started or not).
    pub fn remaining(&self) -> usize {
        self.moving + self.waiting
    }
}

pub struct TransitionOutput {
    /// Per index, the PIndexes to store.
    pub plans: BTreeMap<String, Vec<PIndexPlan>>,
    pub progress: Progress,
}

/// A copy the target wants that is not stored yet.
struct Candidate {
    pindex: usize,
    node: String,
    /// The stored copy it replaces, if any.
    replaces: Option<String>,
    /// Readable copies of its PIndex now: fewer goes first.
    readable: usize,
    /// Copies on the node it unloads: more goes first.
    unloads: usize,
}

/// A copy added this round starts `building` whatever the node's report says: the report was
/// written before the copy was placed there, so it cannot show the copy open (it can only be
/// left over from an earlier hosting); a later round marks it active from a fresh report.
fn copy(node: &str, role: CopyRole, caught_up: bool) -> CopyPlan {
    let state = if caught_up {
        CopyState::Active
    } else {
        CopyState::Building
    };
    CopyPlan {
        node: node.to_string(),
        role,
        state,
        can_read: caught_up,
        can_write: true,
        target_role: None,
    }
}

/// Moves under way now, and copies per node (for "unload the busiest first").
struct UnderWay<'a> {
    load: BTreeMap<&'a str, usize>,
    incoming: BTreeMap<String, usize>,
    outgoing: BTreeMap<String, usize>,
    moves: usize,
}

impl TransitionInput<'_> {
    fn reported(&self, node: &str, pindex: &str) -> bool {
        self.caught_up.get(node).is_some_and(|s| s.contains(pindex))
    }

    /// The stored copies of `pindex` that are not gone.
    fn stored(&self, pindex: &str) -> Vec<&CopyPlan> {
        self.current
            .get(pindex)
            .map(|p| {
                p.copies
                    .iter()
                    .filter(|c| !self.gone.contains(&c.node))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The copies to store this round: the stored copies each target PIndex keeps, the moves the
/// throttles let start, then dropped copies and roles settled per PIndex.
pub fn transition(input: &TransitionInput<'_>) -> TransitionOutput {
    let mut under_way = under_way(input);
    let mut next = Vec::new();
    let mut candidates = Vec::new();
    for (i, target) in input.target.pindexes.iter().enumerate() {
        let (copies, wanted) = keep(input, i, target, &under_way.load);
        next.push((i, copies));
        candidates.extend(wanted);
    }
    let waiting = start_moves(input, candidates, &mut next, &mut under_way);
    assemble(input, next, waiting)
}

fn under_way<'a>(input: &TransitionInput<'a>) -> UnderWay<'a> {
    let mut out = UnderWay {
        load: BTreeMap::new(),
        incoming: BTreeMap::new(),
        outgoing: BTreeMap::new(),
        moves: 0,
    };
    for p in input.current.values() {
        let serving = p
            .copies
            .iter()
            .any(|c| c.can_read && !input.gone.contains(&c.node));
        for c in p.copies.iter().filter(|c| !input.gone.contains(&c.node)) {
            *out.load.entry(&c.node).or_default() += 1;
            if c.state == CopyState::Dropping {
                *out.outgoing.entry(c.node.clone()).or_default() += 1;
            } else if serving && !input.reported(&c.node, &p.name) {
                // Building while another copy serves: a move under way.
                *out.incoming.entry(c.node.clone()).or_default() += 1;
                out.moves += 1;
            }
        }
    }
    out
}

/// For target PIndex `i`: the stored copies it keeps (states from the janitors' reports; those
/// not wanted and serving nothing go at once), and the copies it still needs as candidate
/// moves — or, when nothing serves, every missing copy built at once.
fn keep(
    input: &TransitionInput<'_>,
    i: usize,
    target: &TargetPIndex,
    load: &BTreeMap<&str, usize>,
) -> (Vec<CopyPlan>, Vec<Candidate>) {
    let stored = input.stored(&target.name);
    let wanted: BTreeSet<&str> = target.copies.iter().map(|c| c.node.as_str()).collect();
    let readable = stored.iter().filter(|c| c.can_read).count();
    let mut copies = Vec::new();
    // Stored copies the target no longer wants, not yet dropping: each can be replaced.
    let mut replaceable: Vec<String> = Vec::new();
    for c in &stored {
        let mut c = (*c).clone();
        let caught_up = input.reported(&c.node, &target.name);
        if !wanted.contains(c.node.as_str()) && !caught_up {
            // Not wanted and serving nothing: it goes at once.
            continue;
        }
        c.can_read = caught_up;
        if wanted.contains(c.node.as_str()) {
            c.state = if caught_up {
                CopyState::Active
            } else {
                CopyState::Building
            };
        } else if c.state != CopyState::Dropping {
            replaceable.push(c.node.clone());
            c.state = if caught_up {
                CopyState::Active
            } else {
                CopyState::Building
            };
        }
        copies.push(c);
    }
    let missing: Vec<&str> = target
        .copies
        .iter()
        .map(|c| c.node.as_str())
        .filter(|n| !stored.iter().any(|c| c.node == *n))
        .collect();
    let mut candidates = Vec::new();
    if readable == 0 {
        // Nothing serves (a new PIndex, or every copy lost): build everything now.
        for node in missing {
            copies.push(copy(node, CopyRole::Replica, false));
        }
        for c in copies.iter_mut() {
            if !wanted.contains(c.node.as_str()) {
                c.state = CopyState::Dropping;
            }
        }
        return (copies, candidates);
    }
    // Busiest replaced node first.
    replaceable.sort_by_key(|n| std::cmp::Reverse(load.get(n.as_str()).copied().unwrap_or(0)));
    let mut replaceable = replaceable.into_iter();
    for node in missing {
        let replaces = replaceable.next();
        let unloads = replaces
            .as_deref()
            .and_then(|r| load.get(r).copied())
            .unwrap_or(0);
        candidates.push(Candidate {
            pindex: i,
            node: node.to_string(),
            replaces,
            readable,
            unloads,
        });
    }
    // Copies no longer wanted and not replaced by anything (fewer replicas): they just go,
    // once the rest has caught up.
    let unpaired: BTreeSet<String> = replaceable.collect();
    for c in copies.iter_mut() {
        if unpaired.contains(&c.node) {
            c.state = CopyState::Dropping;
        }
    }
    (copies, candidates)
}

/// Starts what the throttles allow — restoring missing copies first, then unloading the
/// busiest nodes — and returns how many candidates wait for a slot.
fn start_moves(
    input: &TransitionInput<'_>,
    mut candidates: Vec<Candidate>,
    next: &mut [(usize, Vec<CopyPlan>)],
    under_way: &mut UnderWay<'_>,
) -> usize {
    candidates.sort_by(|a, b| {
        a.readable
            .cmp(&b.readable)
            .then(b.unloads.cmp(&a.unloads))
            .then(a.pindex.cmp(&b.pindex))
            .then(a.node.cmp(&b.node))
    });
    let mut waiting = 0;
    for cand in candidates {
        let free_in = under_way.incoming.get(&cand.node).copied().unwrap_or(0)
            < input.limits.incoming_per_node;
        let free_out = cand.replaces.as_ref().is_none_or(|r| {
            under_way.outgoing.get(r).copied().unwrap_or(0) < input.limits.outgoing_per_node
        });
        if !(free_in && free_out && under_way.moves < input.limits.cluster) {
            waiting += 1;
            continue;
        }
        under_way.moves += 1;
        *under_way.incoming.entry(cand.node.clone()).or_default() += 1;
        let copies = &mut next[cand.pindex].1;
        copies.push(copy(&cand.node, CopyRole::Replica, false));
        if let Some(r) = &cand.replaces {
            *under_way.outgoing.entry(r.clone()).or_default() += 1;
            if let Some(c) = copies.iter_mut().find(|c| &c.node == r) {
                c.state = CopyState::Dropping;
            }
        }
    }
    waiting
}

/// The PIndexes to store per index, each finished (dropped copies gone, roles settled), and
/// the progress figures.
fn assemble(
    input: &TransitionInput<'_>,
    next: Vec<(usize, Vec<CopyPlan>)>,
    waiting: usize,
) -> TransitionOutput {
    let mut plans: BTreeMap<String, Vec<PIndexPlan>> = BTreeMap::new();
    let mut progress = Progress {
        waiting,
        ..Progress::default()
    };
    for (i, mut copies) in next {
        let target = &input.target.pindexes[i];
        if let Some(before) = input.current.get(&target.name) {
            let serving = before.copies.iter().any(|c| c.can_read);
            for c in &copies {
                let was_building = before
                    .copies
                    .iter()
                    .any(|b| b.node == c.node && b.state == CopyState::Building);
                if serving && was_building && c.can_read {
                    progress
                        .completed
                        .push((target.name.clone(), c.node.clone()));
                }
            }
        }
        finish_pindex(target, &mut copies);
        for c in &copies {
            let entry = progress.per_node.entry(c.node.clone()).or_default();
            if c.state == CopyState::Dropping {
                progress.dropping += 1;
                entry.1 += 1;
            } else if c.state == CopyState::Building && copies.iter().any(|o| o.can_read) {
                progress.moving += 1;
                entry.0 += 1;
            }
        }
        progress.per_node.retain(|_, v| *v != (0, 0));
        plans
            .entry(target.index.clone())
            .or_default()
            .push(PIndexPlan {
                name: target.name.clone(),
                source_partitions: target.source_partitions.clone(),
                copies,
            });
    }
    TransitionOutput { plans, progress }
}

/// Drops what may go and settles roles: one primary, the target's once it has caught up.
fn finish_pindex(target: &TargetPIndex, copies: &mut Vec<CopyPlan>) {
    // Dropping copies go once every copy staying has caught up (or nothing stays readable
    // anyway, e.g. the index shrank to copies not built yet: then they keep serving).
    let staying_ready = copies
        .iter()
        .filter(|c| c.state != CopyState::Dropping)
        .all(|c| c.can_read);
    if staying_ready {
        copies.retain(|c| c.state != CopyState::Dropping);
    }
    let target_role = |node: &str| {
        target
            .copies
            .iter()
            .find(|c| c.node == node)
            .map(|c| c.role)
    };
    let wanted_primary = target
        .copies
        .iter()
        .find(|c| c.role == CopyRole::Primary)
        .map(|c| c.node.clone());
    let current_primary = copies
        .iter()
        .find(|c| c.role == CopyRole::Primary && c.can_read)
        .map(|c| c.node.clone());
    let ready = wanted_primary
        .as_ref()
        .is_some_and(|w| copies.iter().any(|c| &c.node == w && c.can_read));
    // The target's primary once it can serve; until then the serving primary, or failing that
    // any copy that can serve (staying copies first), so reads always have a primary.
    let interim = || {
        let readable = |dropping: bool| {
            copies
                .iter()
                .find(|c| c.can_read && (c.state == CopyState::Dropping) == dropping)
                .map(|c| c.node.clone())
        };
        readable(false).or_else(|| readable(true))
    };
    let primary = if ready {
        wanted_primary
    } else {
        current_primary.or_else(interim).or(wanted_primary)
    };
    for c in copies.iter_mut() {
        c.role = if Some(&c.node) == primary.as_ref() {
            CopyRole::Primary
        } else {
            CopyRole::Replica
        };
        let heading = if c.state == CopyState::Dropping {
            None
        } else {
            target_role(&c.node)
        };
        c.target_role = heading.filter(|r| *r != c.role);
    }
    copies.sort_by(|a, b| {
        (a.role != CopyRole::Primary, &a.node).cmp(&(b.role != CopyRole::Primary, &b.node))
    });
}
