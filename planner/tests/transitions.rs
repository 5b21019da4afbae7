//! Transitions (`orchestrate::transition`) over many rounds, with janitors catching up between
//! rounds: every stored state keeps at least as many readable copies per PIndex as before the
//! change (up to what the target wants), exactly one primary wherever a copy can serve, moves
//! within the throttles; the stored plan reaches the target and then stays put. Cases: adding,
//! removing (drain), swapping nodes, more replicas, a failed node, random clusters.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use tessera_cfg::schema::{CopyPlan, CopyRole, CopyState, PIndexPlan};
use tessera_planner::model::{IndexSpec, NodeSpec, NodeTag, Plan, PlanInput};
use tessera_planner::orchestrate::{heading, transition, Limits, TransitionInput};
use tessera_planner::plan;

fn node(i: usize) -> NodeSpec {
    NodeSpec {
        uuid: format!("n{i:02}"),
        group: format!("zone-{}", i % 3),
        weight: 1,
        tags: vec![NodeTag::Pindex],
        wanted: true,
    }
}

fn index(name: &str, pindexes: u32, replicas: u32) -> IndexSpec {
    IndexSpec {
        name: name.into(),
        source_partitions: 64 * pindexes,
        max_partitions_per_pindex: Some(64),
        index_partitions: None,
        replicas,
        frozen: false,
        spread_level: None,
    }
}

/// The stored plans and what janitors report, round after round.
struct Cluster {
    input: PlanInput,
    stored: BTreeMap<String, PIndexPlan>,
    caught_up: BTreeMap<String, BTreeSet<String>>,
    limits: Limits,
    failed: BTreeSet<String>,
}

impl Cluster {
    fn new(nodes: usize, indexes: Vec<IndexSpec>, limits: Limits) -> Self {
        let input = PlanInput {
            nodes: (0..nodes).map(node).collect(),
            indexes,
            ..Default::default()
        };
        let mut cluster = Self {
            input,
            stored: BTreeMap::new(),
            caught_up: BTreeMap::new(),
            limits,
            failed: BTreeSet::new(),
        };
        cluster.settle("initial build", 50);
        cluster
    }

    /// The stored plans as the planner's previous plan (heading view).
    fn heading(&self) -> Plan {
        Plan {
            pindexes: self
                .stored
                .values()
                .map(|p| heading(p.name.split('_').next().unwrap_or_default(), p))
                .collect(),
        }
    }

    fn target(&self) -> Plan {
        let mut input = self.input.clone();
        input.previous_plan = Some(self.heading());
        input.failed_nodes = self.failed.iter().cloned().collect();
        plan(&input).plan
    }

    /// One planner round; returns the target it aimed at.
    fn round(&mut self) -> Plan {
        let target = self.target();
        let out = transition(&TransitionInput {
            target: &target,
            current: &self.stored,
            caught_up: &self.caught_up,
            gone: &self.failed,
            limits: self.limits,
        });
        let before = self.stored.clone();
        self.stored = out
            .plans
            .into_values()
            .flatten()
            .map(|p| (p.name.clone(), p))
            .collect();
        self.check(&before, &target);
        target
    }

    /// Janitors catch up with every copy they host.
    fn catch_up(&mut self) {
        for p in self.stored.values() {
            for c in &p.copies {
                self.caught_up
                    .entry(c.node.clone())
                    .or_default()
                    .insert(p.name.clone());
            }
        }
        // A janitor stops reporting what it no longer hosts.
        let hosted: BTreeSet<(String, String)> = self
            .stored
            .values()
            .flat_map(|p| p.copies.iter().map(|c| (c.node.clone(), p.name.clone())))
            .collect();
        for (node, set) in self.caught_up.iter_mut() {
            set.retain(|p| hosted.contains(&(node.clone(), p.clone())));
        }
    }

    /// Rounds until the stored plan is the target, all active; panics past `max` rounds.
    fn settle(&mut self, what: &str, max: usize) -> usize {
        for rounds in 1..=max {
            let target = self.round();
            if self.is_at(&target) {
                // And it stays put.
                let again = self.round();
                assert!(self.is_at(&again), "{what}: moved again after settling");
                return rounds;
            }
            self.catch_up();
        }
        panic!(
            "{what}: not at the target after {max} rounds: {:#?}",
            self.stored
        );
    }

    fn is_at(&self, target: &Plan) -> bool {
        target.pindexes.iter().all(|t| {
            let Some(stored) = self.stored.get(&t.name) else {
                return false;
            };
            stored.copies.len() == t.copies.len()
                && t.copies.iter().all(|tc| {
                    stored.copies.iter().any(|c| {
                        c.node == tc.node
                            && c.role == tc.role
                            && c.state == CopyState::Active
                            && c.target_role.is_none()
                    })
                })
        })
    }

    /// The rules every stored state keeps.
    fn check(&self, before: &BTreeMap<String, PIndexPlan>, target: &Plan) {
        let mut incoming: BTreeMap<&str, usize> = BTreeMap::new();
        let mut outgoing: BTreeMap<&str, usize> = BTreeMap::new();
        for t in &target.pindexes {
            let p = &self.stored[&t.name];
            let readable = |copies: &[CopyPlan]| {
                copies
                    .iter()
                    .filter(|c| c.can_read && !self.failed.contains(&c.node))
                    .count()
            };
            let nodes: BTreeSet<&str> = p.copies.iter().map(|c| c.node.as_str()).collect();
            assert_eq!(nodes.len(), p.copies.len(), "two copies on one node: {p:?}");
            let primaries = p
                .copies
                .iter()
                .filter(|c| c.role == CopyRole::Primary)
                .count();
            assert!(primaries <= 1, "{primaries} primaries: {p:?}");
            if readable(&p.copies) > 0 {
                let primary = p.copies.iter().find(|c| c.role == CopyRole::Primary);
                assert!(
                    primary.is_some_and(|c| c.can_read),
                    "no readable primary: {p:?}"
                );
            }
            if let Some(b) = before.get(&t.name) {
                let floor = readable(&b.copies).min(t.copies.len());
                assert!(
                    readable(&p.copies) >= floor,
                    "readable copies fell below {floor}: {b:?} -> {p:?}"
                );
                let serving = b.copies.iter().any(|c| c.can_read);
                for c in &p.copies {
                    if c.state == CopyState::Building && serving {
                        *incoming.entry(&c.node).or_default() += 1;
                    }
                    if c.state == CopyState::Dropping {
                        *outgoing.entry(&c.node).or_default() += 1;
                    }
                }
            }
        }
        for (node, n) in incoming {
            assert!(
                n <= self.limits.incoming_per_node,
                "{node} builds {n} copies at once"
            );
        }
        for (node, n) in outgoing {
            assert!(
                n <= self.limits.outgoing_per_node,
                "{node} hands over {n} copies at once"
            );
        }
    }

    fn copies_on(&self, node: &str) -> usize {
        self.stored
            .values()
            .flat_map(|p| &p.copies)
            .filter(|c| c.node == node)
            .count()
    }
}

#[test]
fn adding_a_node_moves_copies_within_the_throttles() {
    let mut c = Cluster::new(
        3,
        vec![index("a", 12, 1), index("b", 6, 1)],
        Limits::default(),
    );
    c.input.nodes.push(node(3));
    let rounds = c.settle("add a node", 60);
    assert!(
        c.copies_on("n03") >= 8,
        "the new node got {} copies",
        c.copies_on("n03")
    );
    // 2 at a time into one node: it takes several rounds.
    assert!(
        rounds >= 4,
        "settled in {rounds} rounds: the throttle did not bite"
    );
}

#[test]
fn draining_and_swapping_keep_reads() {
    let mut c = Cluster::new(4, vec![index("a", 16, 1)], Limits::default());
    c.input.nodes[0].wanted = false;
    c.settle("drain", 80);
    assert_eq!(c.copies_on("n00"), 0);
    c.input.nodes.retain(|n| n.uuid != "n00");
    c.input.nodes.push(node(7));
    c.settle("swap in", 80);
    assert!(c.copies_on("n07") > 0);
}

#[test]
fn more_replicas_then_fewer() {
    let mut c = Cluster::new(4, vec![index("a", 8, 0)], Limits::default());
    c.input.indexes[0].replicas = 2;
    c.settle("replicas 0 -> 2", 60);
    assert_eq!(c.stored.values().map(|p| p.copies.len()).sum::<usize>(), 24);
    c.input.indexes[0].replicas = 1;
    c.settle("replicas 2 -> 1", 60);
    assert_eq!(c.stored.values().map(|p| p.copies.len()).sum::<usize>(), 16);
}

#[test]
fn a_failed_nodes_copies_go_at_once_and_survivors_serve() {
    let mut c = Cluster::new(3, vec![index("a", 9, 1)], Limits::default());
    c.failed.insert("n01".into());
    c.input.nodes.retain(|n| n.uuid != "n01");
    c.round();
    for p in c.stored.values() {
        assert!(p.copies.iter().all(|c| c.node != "n01"), "{p:?}");
        let primary = p.copies.iter().find(|c| c.role == CopyRole::Primary);
        assert!(
            primary.is_some_and(|c| c.can_read),
            "no serving primary right after the failure: {p:?}"
        );
    }
    c.catch_up();
    c.settle("rebuild after failover", 60);
    assert!(c.stored.values().all(|p| p.copies.len() == 2));
}

#[test]
fn a_new_primary_takes_the_role_only_once_caught_up() {
    let mut c = Cluster::new(1, vec![index("a", 4, 0)], Limits::default());
    c.input.nodes.push(node(1));
    let target = c.round();
    let moving: Vec<&PIndexPlan> = c
        .stored
        .values()
        .filter(|p| p.copies.iter().any(|c| c.node == "n01"))
        .collect();
    assert!(
        !moving.is_empty(),
        "nothing moved to the new node: {target:?}"
    );
    for p in moving {
        let new = p.copies.iter().find(|c| c.node == "n01").unwrap();
        let old = p.copies.iter().find(|c| c.node == "n00").unwrap();
        assert_eq!(
            (new.role, new.state, new.target_role),
            (
                CopyRole::Replica,
                CopyState::Building,
                Some(CopyRole::Primary)
            )
        );
        assert_eq!(
            (old.role, old.state, old.can_read),
            (CopyRole::Primary, CopyState::Dropping, true)
        );
    }
    c.catch_up();
    c.settle("primary moves", 10);
}

proptest! {
    // `PROPTEST_CASES=10000` for a long local run; CI runs 48.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48)
    ))]

    #[test]
    fn random_changes_settle_without_losing_reads(
        nodes in 2usize..7,
        pindexes in 1u32..12,
        replicas in 0u32..3,
        added in 0usize..3,
        drained in 0usize..2,
        limit in 1usize..3,
    ) {
        let limits = Limits { incoming_per_node: limit, outgoing_per_node: limit, cluster: 2 * limit + 1 };
        let mut c = Cluster::new(nodes, vec![index("a", pindexes, replicas), index("b", 3, 1)], limits);
        for i in 0..added {
            c.input.nodes.push(node(10 + i));
        }
        for n in c.input.nodes.iter_mut().take(drained.min(nodes - 1)) {
            n.wanted = false;
        }
        c.settle("random change", 200);
    }
}
