//! Property tests of the planning rules over random clusters: 1–64 nodes in 1–8 groups with
//! weights 1–4, 1–50 indexes of 1–1024 source partitions with 0–3 replicas.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use tessera_cfg::schema::{CopyPlan, CopyState, PIndexPlan};
use tessera_planner::model::{
    Action, CopyRole, IndexSpec, NodeSpec, NodeTag, Plan, PlanInput, PlanOutput,
};
use tessera_planner::orchestrate::{transition, Limits, TransitionInput};
use tessera_planner::plan;

#[derive(Debug, Clone)]
struct Cluster {
    nodes: Vec<NodeSpec>,
    indexes: Vec<IndexSpec>,
}

fn node_strategy(groups: usize, weighted: bool) -> impl Strategy<Value = (usize, u32, bool, bool)> {
    let weight = if weighted {
        (1u32..=4).boxed()
    } else {
        Just(1u32).boxed()
    };
    (
        0..groups,
        weight,
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.9),
    )
}

fn index_strategy() -> impl Strategy<Value = (u32, u32, bool, u32)> {
    // partitions, PIndexes wanted (1..=32, as a maximum or an exact count), exact?, replicas
    (1u32..=1024, 1u32..=32, any::<bool>(), 0u32..=3)
}

fn cluster_strategy(
    max_groups: usize,
    weighted: bool,
    all_eligible: bool,
) -> impl Strategy<Value = Cluster> {
    (1usize..=max_groups)
        .prop_flat_map(move |groups| {
            (
                prop::collection::vec(node_strategy(groups, weighted), 1..=64),
                prop::collection::vec(index_strategy(), 1..=50),
                Just(groups),
            )
        })
        .prop_map(move |(nodes, indexes, _)| Cluster {
            nodes: nodes
                .into_iter()
                .enumerate()
                .map(|(i, (group, weight, pindex, wanted))| NodeSpec {
                    uuid: format!("n{i:02}"),
                    group: format!("zone-{group}/rack-{}", i % 2),
                    weight,
                    tags: if pindex || all_eligible {
                        vec![NodeTag::Pindex, NodeTag::Queryer]
                    } else {
                        vec![NodeTag::Queryer]
                    },
                    wanted: wanted || all_eligible,
                })
                .collect(),
            indexes: indexes
                .into_iter()
                .enumerate()
                .map(|(i, (partitions, count, exact, replicas))| IndexSpec {
                    name: format!("idx{i:02}"),
                    source_partitions: partitions,
                    max_partitions_per_pindex: (!exact).then(|| partitions.div_ceil(count)),
                    index_partitions: exact.then_some(count),
                    replicas,
                    frozen: false,
                    spread_level: Some(1),
                })
                .collect(),
        })
}

fn input(c: &Cluster) -> PlanInput {
    PlanInput {
        nodes: c.nodes.clone(),
        indexes: c.indexes.clone(),
        ..Default::default()
    }
}

fn eligible(c: &Cluster, failed: &[String]) -> BTreeMap<String, (String, u32)> {
    c.nodes
        .iter()
        .filter(|n| n.wanted && n.tags.contains(&NodeTag::Pindex) && !failed.contains(&n.uuid))
        .map(|n| {
            (
                n.uuid.clone(),
                (
                    n.group.split('/').next().unwrap_or("").to_string(),
                    n.weight,
                ),
            )
        })
        .collect()
}

/// The most copies of one PIndex a zone may hold, given zone sizes (water-filling).
fn spread_bound(zone_sizes: &BTreeMap<String, usize>, copies: usize) -> usize {
    (1..=copies.max(1))
        .find(|&b| zone_sizes.values().map(|&s| s.min(b)).sum::<usize>() >= copies)
        .unwrap_or(copies)
}

/// The rules every plan keeps, whatever the cluster.
fn check_valid(c: &Cluster, failed: &[String], out: &PlanOutput) -> Result<(), TestCaseError> {
    let elig = eligible(c, failed);
    let mut zone_sizes: BTreeMap<String, usize> = BTreeMap::new();
    for (zone, _) in elig.values() {
        *zone_sizes.entry(zone.clone()).or_default() += 1;
    }
    let mut covered: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    for p in &out.plan.pindexes {
        let index = c
            .indexes
            .iter()
            .find(|i| i.name == p.index)
            .expect("plan names a known index");
        let want = (1 + index.replicas as usize).min(elig.len());
        prop_assert_eq!(p.copies.len(), want, "{}: copies", &p.name);
        let nodes: BTreeSet<&str> = p.copies.iter().map(|c| c.node.as_str()).collect();
        prop_assert_eq!(
            nodes.len(),
            p.copies.len(),
            "{}: two copies on one node",
            &p.name
        );
        for copy in &p.copies {
            prop_assert!(
                elig.contains_key(&copy.node),
                "{} on ineligible node {}",
                &p.name,
                &copy.node
            );
        }
        let primaries = p
            .copies
            .iter()
            .filter(|c| c.role == CopyRole::Primary)
            .count();
        prop_assert_eq!(primaries, usize::from(want > 0), "{}: primaries", &p.name);
        let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
        for copy in &p.copies {
            *per_zone.entry(elig[&copy.node].0.as_str()).or_default() += 1;
        }
        let bound = spread_bound(&zone_sizes, want);
        prop_assert!(
            per_zone.values().all(|&n| n <= bound),
            "{}: zones {:?} over bound {}",
            &p.name,
            per_zone,
            bound
        );
        let set = covered.entry(p.index.as_str()).or_default();
        for part in &p.source_partitions {
            prop_assert!(set.insert(*part), "{}: partition {} twice", &p.index, part);
        }
    }
    for index in &c.indexes {
        let set = covered
            .get(index.name.as_str())
            .cloned()
            .unwrap_or_default();
        prop_assert_eq!(
            set.len() as u32,
            index.source_partitions,
            "{}: partitions covered",
            &index.name
        );
    }
    Ok(())
}

/// Counts per node within [floor, ceil] of the weighted share, when no per-node capacity binds.
fn check_balanced(
    c: &Cluster,
    out: &PlanOutput,
    role: Option<CopyRole>,
) -> Result<(), TestCaseError> {
    let elig = eligible(c, &[]);
    let mut counts: BTreeMap<&str, u64> = elig.keys().map(|k| (k.as_str(), 0)).collect();
    for p in &out.plan.pindexes {
        for copy in p.copies.iter().filter(|c| role.is_none_or(|r| c.role == r)) {
            *counts.entry(copy.node.as_str()).or_default() += 1;
        }
    }
    let total: u64 = counts.values().sum();
    let weights: u64 = elig.values().map(|(_, w)| u64::from(*w)).sum();
    let pindexes = out.plan.pindexes.len() as u64;
    let share = |node: &str| {
        let w = u64::from(elig[node].1);
        (total * w / weights, (total * w).div_ceil(weights))
    };
    // A node holds at most one copy of a PIndex, and every node holds a PIndex that wants as
    // many copies as there are nodes: when either bounds a node's share, the share is moot.
    let nodes = counts.len();
    let forced = out
        .plan
        .pindexes
        .iter()
        .filter(|p| p.copies.len() == nodes)
        .count() as u64;
    if role.is_none()
        && counts
            .keys()
            .any(|n| share(n).1 > pindexes || share(n).1 < forced)
    {
        return Ok(());
    }
    for (node, &count) in &counts {
        let (lo, hi) = share(node);
        prop_assert!(
            lo <= count && count <= hi,
            "{} ({:?}): {} copies, share [{}, {}]",
            node,
            role,
            count,
            lo,
            hi
        );
    }
    Ok(())
}

/// With weights, a share can be out of reach (a PIndex wanting copies on most nodes pins them
/// there), so the rule is: no single copy move brings a node closer to its share, i.e. for a
/// node above its share and one below, everything the first holds the second holds too.
fn check_no_improving_move(c: &Cluster, out: &PlanOutput) -> Result<(), TestCaseError> {
    let elig = eligible(c, &[]);
    let mut held: BTreeMap<&str, BTreeSet<&str>> =
        elig.keys().map(|k| (k.as_str(), BTreeSet::new())).collect();
    for p in &out.plan.pindexes {
        for copy in &p.copies {
            held.entry(copy.node.as_str())
                .or_default()
                .insert(p.name.as_str());
        }
    }
    let total: u64 = held.values().map(|h| h.len() as u64).sum();
    let weights: u64 = elig.values().map(|(_, w)| u64::from(*w)).sum();
    let share = |node: &str| {
        let w = u64::from(elig[node].1);
        (total * w / weights, (total * w).div_ceil(weights))
    };
    for (a, from) in &held {
        for (b, to) in &held {
            let (count_a, count_b) = (from.len() as u64, to.len() as u64);
            let helps = (count_a > share(a).1 && count_b < share(b).1)
                || (count_a > share(a).0 && count_b < share(b).0);
            if a != b && helps {
                let movable: Vec<_> = from.difference(to).collect();
                prop_assert!(
                    movable.is_empty(),
                    "{} ({}, share {:?}) could give {:?} to {} ({}, share {:?})",
                    a,
                    count_a,
                    share(a),
                    movable.first(),
                    b,
                    count_b,
                    share(b)
                );
            }
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// The plan stored in the round that fails `victim` over: the planner's target reached through
/// a transition from `before` (every copy caught up, the victim's copies gone at once).
fn stored_after_failure(
    before: &Plan,
    target: &Plan,
    victim: &str,
) -> BTreeMap<String, PIndexPlan> {
    let current: BTreeMap<String, PIndexPlan> = before
        .pindexes
        .iter()
        .map(|p| {
            let copies = p
                .copies
                .iter()
                .map(|c| CopyPlan {
                    node: c.node.clone(),
                    role: c.role,
                    state: CopyState::Active,
                    can_read: true,
                    can_write: true,
                    target_role: None,
                })
                .collect();
            let stored = PIndexPlan {
                name: p.name.clone(),
                source_partitions: p.source_partitions.clone(),
                copies,
            };
            (p.name.clone(), stored)
        })
        .collect();
    let mut caught_up: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in &before.pindexes {
        for c in &p.copies {
            caught_up
                .entry(c.node.clone())
                .or_default()
                .insert(p.name.clone());
        }
    }
    let gone = BTreeSet::from([victim.to_string()]);
    let out = transition(&TransitionInput {
        target,
        current: &current,
        caught_up: &caught_up,
        gone: &gone,
        limits: Limits::default(),
    });
    out.plans
        .into_values()
        .flatten()
        .map(|p| (p.name.clone(), p))
        .collect()
}

/// When a node fails, every PIndex whose primary it held and that has a surviving copy gets a
/// surviving, caught-up copy as primary in the plan stored in the same round, whatever the
/// weights. The target may want the role elsewhere (primary balance); it gets there through
/// the transition, once its new holder has caught up.
fn check_lost_primaries_taken_over(
    before: &Plan,
    target: &Plan,
    victim: &str,
) -> Result<(), TestCaseError> {
    let stored = stored_after_failure(before, target, victim);
    let mut not_taken_over = Vec::new();
    let mut lost = 0;
    for old in &before.pindexes {
        let lost_primary = old
            .copies
            .iter()
            .any(|c| c.node == victim && c.role == CopyRole::Primary);
        let survivors: Vec<&str> = old
            .copies
            .iter()
            .filter(|c| c.node != victim)
            .map(|c| c.node.as_str())
            .collect();
        if !lost_primary || survivors.is_empty() {
            continue;
        }
        lost += 1;
        let primary = stored.get(&old.name).and_then(|p| {
            p.copies
                .iter()
                .find(|c| c.role == CopyRole::Primary && c.can_read)
                .map(|c| c.node.as_str())
        });
        if !primary.is_some_and(|p| survivors.contains(&p)) {
            not_taken_over.push(old.name.clone());
        }
    }
    prop_assert!(
        not_taken_over.is_empty(),
        "{} of {} lost primaries not taken over by a survivor: {:?}",
        not_taken_over.len(),
        lost,
        not_taken_over
    );
    Ok(())
}

proptest! {
    // `PROPTEST_CASES=10000` for a long local run; CI runs the default.
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn plans_keep_every_rule_and_are_deterministic_and_idempotent(c in cluster_strategy(8, true, false)) {
        let first = plan(&input(&c));
        check_valid(&c, &[], &first)?;
        prop_assert_eq!(&plan(&input(&c)).plan, &first.plan, "same input, same plan");

        let mut shuffled = input(&c);
        shuffled.nodes.reverse();
        shuffled.indexes.reverse();
        prop_assert_eq!(&plan(&shuffled).plan, &first.plan, "input order must not matter");

        let mut again = input(&c);
        again.previous_plan = Some(first.plan.clone());
        let second = plan(&again);
        prop_assert_eq!(&second.plan, &first.plan, "replanning a plan changes it");
        prop_assert!(second.moves.is_empty(), "replanning moves: {:?}", &second.moves[..second.moves.len().min(5)]);
    }

    #[test]
    fn copies_and_primaries_are_balanced_without_group_constraints(c in cluster_strategy(1, false, true)) {
        let out = plan(&input(&c));
        check_balanced(&c, &out, None)?;
        check_balanced(&c, &out, Some(CopyRole::Primary))?;
    }

    #[test]
    fn weights_are_honoured(c in cluster_strategy(1, true, true)) {
        let out = plan(&input(&c));
        check_no_improving_move(&c, &out)?;
    }

    #[test]
    fn drained_and_failed_nodes_lose_copies_and_failed_primaries_are_promoted(
        c in cluster_strategy(4, true, true),
        victim in any::<prop::sample::Index>(),
        drain in any::<bool>(),
    ) {
        let before = plan(&input(&c));
        let victim = c.nodes[victim.index(c.nodes.len())].uuid.clone();
        let mut next = input(&c);
        next.previous_plan = Some(before.plan.clone());
        let failed = if drain {
            next.nodes.iter_mut().filter(|n| n.uuid == victim).for_each(|n| n.wanted = false);
            Vec::new()
        } else {
            next.failed_nodes = vec![victim.clone()];
            vec![victim.clone()]
        };
        let mut effective = c.clone();
        if drain {
            effective.nodes = next.nodes.clone();
        }
        let after = plan(&next);
        check_valid(&effective, &failed, &after)?;
        let mut again = next.clone();
        again.previous_plan = Some(after.plan.clone());
        let replanned = plan(&again);
        prop_assert!(replanned.moves.is_empty(), "replanning after the change moved {:?}", &replanned.moves[..replanned.moves.len().min(4)]);
        prop_assert!(after.plan.pindexes.iter().all(|p| p.copies.iter().all(|c| c.node != victim)));
        if !drain {
            check_lost_primaries_taken_over(&before.plan, &after.plan, &victim)?;
            let first_add = after.moves.iter().position(|m| m.action == Action::Add).unwrap_or(usize::MAX);
            let last_promote = after.moves.iter().rposition(|m| m.action == Action::Promote);
            prop_assert!(last_promote.is_none_or(|p| p < first_add), "promotions come before adds");
        }
    }

    #[test]
    fn a_frozen_index_keeps_its_plan(c in cluster_strategy(4, true, true), grow in 1usize..4) {
        let before = plan(&input(&c));
        let mut next = input(&c);
        next.previous_plan = Some(before.plan.clone());
        next.indexes[0].frozen = true;
        next.indexes[0].replicas = 3; // ignored while frozen
        let extra = next.nodes.len();
        for i in 0..grow {
            next.nodes.push(NodeSpec { uuid: format!("new{}", extra + i), group: "zone-9".into(), weight: 1, tags: vec![NodeTag::Pindex], wanted: true });
        }
        let after = plan(&next);
        let frozen = &next.indexes[0].name;
        let old: Vec<_> = before.plan.pindexes.iter().filter(|p| &p.index == frozen).collect();
        let new: Vec<_> = after.plan.pindexes.iter().filter(|p| &p.index == frozen).collect();
        prop_assert_eq!(old, new);
    }

    #[test]
    fn never_panics_on_unvalidated_input(
        weights in prop::collection::vec(0u32..=3, 0..8),
        partitions in prop::collection::vec((0u32..=40, 0u32..=5, 0u32..=6), 0..5),
    ) {
        let nodes = weights.iter().enumerate().map(|(i, &w)| NodeSpec {
            uuid: format!("n{}", i % 5), group: String::new(), weight: w, tags: vec![NodeTag::Pindex], wanted: true,
        }).collect();
        let indexes = partitions.iter().enumerate().map(|(i, &(p, m, r))| IndexSpec {
            name: format!("i{}", i % 3), source_partitions: p, max_partitions_per_pindex: Some(m),
            index_partitions: None, replicas: r, frozen: false, spread_level: Some(0),
        }).collect();
        let out = plan(&PlanInput { nodes, indexes, ..Default::default() });
        plan(&PlanInput { previous_plan: Some(out.plan), ..Default::default() });
    }
}

/// The case the property found (issue 10): 4 nodes with weights 4/2/1/3 in one zone, nine
/// indexes of mixed sizes and replicas; whichever node fails, every primary it held is taken
/// over by a survivor in the same stored plan (three of four were not, before).
#[test]
fn lost_primaries_are_taken_over_with_uneven_weights() {
    let weights = [4, 2, 1, 3];
    let nodes: Vec<NodeSpec> = weights
        .iter()
        .enumerate()
        .map(|(i, &weight)| NodeSpec {
            uuid: format!("n{i:02}"),
            group: format!("zone-0/rack-{}", i % 2),
            weight,
            tags: vec![NodeTag::Pindex, NodeTag::Queryer],
            wanted: true,
        })
        .collect();
    let specs = [
        (1, 1, 0),
        (24, 1, 0),
        (267, 14, 0),
        (401, 16, 0),
        (16, 1, 0),
        (9, 3, 2),
        (358, 33, 0),
        (20, 1, 3),
        (2, 1, 1),
    ];
    let indexes: Vec<IndexSpec> = specs
        .iter()
        .enumerate()
        .map(|(i, &(partitions, max, replicas))| IndexSpec {
            name: format!("idx{i:02}"),
            source_partitions: partitions,
            max_partitions_per_pindex: Some(max),
            index_partitions: None,
            replicas,
            frozen: false,
            spread_level: Some(1),
        })
        .collect();
    let c = Cluster { nodes, indexes };
    let before = plan(&input(&c));
    for victim in c.nodes.iter().map(|n| n.uuid.clone()) {
        let mut next = input(&c);
        next.previous_plan = Some(before.plan.clone());
        next.failed_nodes = vec![victim.clone()];
        let after = plan(&next);
        if let Err(e) = check_lost_primaries_taken_over(&before.plan, &after.plan, &victim) {
            panic!("victim {victim}: {e}");
        }
    }
}
