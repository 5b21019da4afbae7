//! Move counts when the cluster changes: adding, removing and swapping nodes moves close to
//! the minimum number of copies, and replanning the result moves nothing.

use tessera_planner::model::{IndexSpec, NodeSpec, NodeTag, PlanInput, PlanOutput};
use tessera_planner::plan;

fn node(i: usize, groups: usize) -> NodeSpec {
    NodeSpec {
        uuid: format!("n{i:03}"),
        group: format!("zone-{}", i % groups),
        weight: 1,
        tags: vec![NodeTag::Pindex],
        wanted: true,
    }
}

fn cluster(nodes: usize, groups: usize, indexes: usize) -> PlanInput {
    PlanInput {
        nodes: (0..nodes).map(|i| node(i, groups)).collect(),
        indexes: (0..indexes)
            .map(|i| IndexSpec {
                name: format!("idx{i:02}"),
                source_partitions: 1024,
                max_partitions_per_pindex: Some(64),
                index_partitions: None,
                replicas: 2,
                frozen: false,
                spread_level: None,
            })
            .collect(),
        ..Default::default()
    }
}

/// Copies a plan puts on `node`.
fn copies_on(out: &PlanOutput, node: &str) -> usize {
    out.plan
        .pindexes
        .iter()
        .flat_map(|p| &p.copies)
        .filter(|c| c.node == node)
        .count()
}

fn replan(mut input: PlanInput, previous: &PlanOutput) -> PlanOutput {
    input.previous_plan = Some(previous.plan.clone());
    plan(&input)
}

fn assert_near_minimum(case: &str, out: &PlanOutput) {
    let (added, min) = (out.stats.copies_added, out.stats.min_copies_added);
    assert!(min > 0, "{case}: the change needs copies");
    assert!(
        added as f64 <= (min as f64 * 1.05).ceil(),
        "{case}: {added} copies added, lower bound {min}"
    );
}

fn assert_stable(case: &str, input: PlanInput, out: &PlanOutput) {
    let again = replan(input, out);
    assert!(
        again.moves.is_empty(),
        "{case}: replanning moved {:?}",
        &again.moves[..again.moves.len().min(3)]
    );
}

#[test]
fn adding_a_node_moves_about_its_share() {
    let base = cluster(20, 4, 10);
    let first = plan(&base);
    let grown = cluster(21, 4, 10);
    let out = replan(grown.clone(), &first);
    assert_near_minimum("add", &out);
    let on_new = copies_on(&out, "n020");
    assert_eq!(
        on_new, out.stats.copies_added,
        "every added copy lands on the new node"
    );
    assert_stable("add", grown, &out);
}

#[test]
fn removing_a_node_moves_only_its_copies() {
    let base = cluster(20, 4, 10);
    let first = plan(&base);
    let held = copies_on(&first, "n007");
    let mut shrunk = base.clone();
    shrunk.nodes.retain(|n| n.uuid != "n007");
    let out = replan(shrunk.clone(), &first);
    assert_near_minimum("remove", &out);
    assert_eq!(
        out.stats.copies_added, held,
        "exactly the lost copies are re-placed"
    );
    assert_stable("remove", shrunk, &out);
}

#[test]
fn swapping_a_node_moves_about_one_nodes_worth() {
    let base = cluster(20, 4, 10);
    let first = plan(&base);
    let held = copies_on(&first, "n003");
    let mut swapped = base.clone();
    swapped.nodes.retain(|n| n.uuid != "n003");
    swapped.nodes.push(NodeSpec {
        uuid: "n100".into(),
        ..node(3, 4)
    });
    let out = replan(swapped.clone(), &first);
    assert_near_minimum("swap", &out);
    assert!(
        out.stats.copies_added <= held + 1,
        "{} added for a node holding {held}",
        out.stats.copies_added
    );
    assert_stable("swap", swapped, &out);
}

#[test]
fn draining_a_node_and_changing_replicas() {
    let base = cluster(12, 3, 6);
    let first = plan(&base);
    let mut drained = base.clone();
    drained.nodes[5].wanted = false;
    let out = replan(drained.clone(), &first);
    assert!(out
        .plan
        .pindexes
        .iter()
        .all(|p| p.copies.iter().all(|c| c.node != drained.nodes[5].uuid)));
    assert_near_minimum("drain", &out);
    assert_stable("drain", drained.clone(), &out);

    let mut fewer = drained;
    fewer.indexes[0].replicas = 1;
    let trimmed = replan(fewer, &out);
    // Dropping a replica frees space unevenly (the dropped copies sit where that index's
    // replicas were); evening it out may move a few copies, never many.
    let copies: usize = trimmed.plan.pindexes.iter().map(|p| p.copies.len()).sum();
    assert!(
        trimmed.stats.copies_added * 20 <= copies,
        "dropping a replica added {} of {copies} copies",
        trimmed.stats.copies_added
    );
    assert!(trimmed
        .plan
        .pindexes
        .iter()
        .filter(|p| p.index == "idx00")
        .all(|p| p.copies.len() == 2));
}

#[test]
fn impossible_constraints_warn_and_plan_the_best() {
    let mut input = cluster(2, 1, 1);
    input.indexes[0].replicas = 2;
    let out = plan(&input);
    assert!(
        out.warnings
            .iter()
            .any(|w| w.index == "idx00" && w.message.contains("2 replicas wanted, 2 nodes")),
        "{:?}",
        out.warnings
    );
    assert!(out.plan.pindexes.iter().all(|p| p.copies.len() == 2));
    let none = plan(&PlanInput {
        nodes: Vec::new(),
        ..cluster(0, 1, 1)
    });
    assert!(none.plan.pindexes.iter().all(|p| p.copies.is_empty()));
    assert!(none
        .warnings
        .iter()
        .any(|w| w.message.contains("no node can hold copies")));
}

#[test]
fn the_most_caught_up_replica_is_promoted() {
    let mut input = cluster(4, 1, 1);
    input.indexes[0].replicas = 2;
    input.indexes[0].max_partitions_per_pindex = Some(1024);
    let first = plan(&input);
    let pindex = &first.plan.pindexes[0];
    let primary = pindex
        .copies
        .iter()
        .find(|c| c.role == tessera_planner::model::CopyRole::Primary)
        .unwrap()
        .node
        .clone();
    let replicas: Vec<String> = pindex
        .copies
        .iter()
        .filter(|c| c.node != primary)
        .map(|c| c.node.clone())
        .collect();
    // The replica listed last is the furthest along.
    for (ahead, behind) in [(1, 0), (0, 1)] {
        let mut next = input.clone();
        next.previous_plan = Some(first.plan.clone());
        next.failed_nodes = vec![primary.clone()];
        next.progress.insert(
            pindex.name.clone(),
            [
                (replicas[ahead].clone(), 900),
                (replicas[behind].clone(), 100),
            ]
            .into(),
        );
        let out = plan(&next);
        let new_primary = out.plan.pindexes[0]
            .copies
            .iter()
            .find(|c| c.role == tessera_planner::model::CopyRole::Primary)
            .unwrap();
        assert_eq!(
            new_primary.node, replicas[ahead],
            "the replica at seq 900 must win"
        );
        assert_eq!(
            out.moves[0].action,
            tessera_planner::model::Action::Promote,
            "promotion comes first"
        );
    }
}

/// A node that comes back with PIndex files on its disk gets those PIndexes back when the
/// balance sends copies its way (delta recovery streams only what it missed).
#[test]
fn a_returning_node_gets_back_the_pindexes_it_still_has() {
    let mut input = cluster(2, 1, 1);
    input.indexes[0].replicas = 0;
    let before = plan(&input);
    let on_node1: Vec<String> = before
        .plan
        .pindexes
        .iter()
        .filter(|p| p.copies.iter().any(|c| c.node == "n001"))
        .map(|p| p.name.clone())
        .collect();
    let on_node0: Vec<String> = before
        .plan
        .pindexes
        .iter()
        .filter(|p| p.copies.iter().any(|c| c.node == "n000"))
        .map(|p| p.name.clone())
        .collect();
    // n002 comes back holding files of two PIndexes of each node.
    let on_disk: Vec<String> = on_node0
        .iter()
        .rev()
        .take(2)
        .chain(on_node1.iter().rev().take(2))
        .cloned()
        .collect();
    let mut grown = cluster(3, 1, 1);
    grown.indexes[0].replicas = 0;
    for p in &on_disk {
        grown
            .on_disk
            .entry(p.clone())
            .or_default()
            .insert("n002".into());
    }
    let after = replan(grown, &before);
    let moved: Vec<&str> = after
        .plan
        .pindexes
        .iter()
        .filter(|p| p.copies.iter().any(|c| c.node == "n002"))
        .map(|p| p.name.as_str())
        .collect();
    assert!(moved.len() >= 4, "only {moved:?} moved");
    let warm_moved = moved
        .iter()
        .filter(|m| on_disk.iter().any(|w| w == *m))
        .count();
    assert_eq!(
        warm_moved, 4,
        "the PIndexes with files on n002 ({on_disk:?}) should go there first; moved {moved:?}"
    );
}

#[test]
fn a_pinned_index_keeps_its_copies_unless_it_lost_one() {
    let base = cluster(6, 3, 4);
    let first = plan(&base);
    let index_of = |pindex: &str| pindex.split('_').next().unwrap_or("").to_string();
    // A new node: the other indexes rebalance onto it, the pinned one does not move.
    let mut grown = cluster(7, 3, 4);
    grown.pinned.insert("idx01".into());
    let out = replan(grown.clone(), &first);
    assert!(out.stats.copies_added > 0, "the others rebalance");
    assert!(
        out.moves.iter().all(|m| index_of(&m.pindex) != "idx01"),
        "a pinned PIndex moved: {:?}",
        out.moves.iter().find(|m| index_of(&m.pindex) == "idx01")
    );
    assert_stable("pinned", grown.clone(), &out);
    // Every index pinned: the new node gets nothing until a recovery ends.
    grown.pinned = (0..4).map(|i| format!("idx{i:02}")).collect();
    let all_pinned = replan(grown, &first);
    assert!(all_pinned.moves.is_empty(), "{:?}", &all_pinned.moves[..1]);

    // A node gone: the pinned index's PIndexes that had a copy there are re-placed as usual;
    // the others of that index stay.
    let mut shrunk = base.clone();
    shrunk.nodes.retain(|n| n.uuid != "n002");
    shrunk.pinned.insert("idx01".into());
    let out = replan(shrunk, &first);
    let lost: std::collections::BTreeSet<&str> = first
        .plan
        .pindexes
        .iter()
        .filter(|p| p.index == "idx01" && p.copies.iter().any(|c| c.node == "n002"))
        .map(|p| p.name.as_str())
        .collect();
    assert!(!lost.is_empty());
    for m in out.moves.iter().filter(|m| index_of(&m.pindex) == "idx01") {
        assert!(
            lost.contains(m.pindex.as_str()),
            "{m:?} moves a PIndex that lost nothing"
        );
    }
    for p in out
        .plan
        .pindexes
        .iter()
        .filter(|p| lost.contains(p.name.as_str()))
    {
        assert_eq!(p.copies.len(), 3, "re-placed: {p:?}");
    }
}
