//! Planning's inputs as drafts: every PIndex of every index (split from its source
//! partitions, or kept as it is when the index is frozen) with the copies the previous plan
//! gave it on nodes that can still hold them, the nodes holding its files, and the warnings
//! about what the definitions ask that the cluster cannot give.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::model::{self, IndexSpec, Plan, PlanInput, TargetPIndex};
use crate::place::Draft;
use crate::topology::Topology;
use crate::{split, Warnings};

/// Nodes the previous plan names that the input does not define.
pub(crate) fn unknown_nodes(input: &PlanInput, previous: &Plan) -> BTreeSet<String> {
    let known: BTreeSet<&str> = input.nodes.iter().map(|n| n.uuid.as_str()).collect();
    previous
        .pindexes
        .iter()
        .flat_map(|p| &p.copies)
        .filter(|c| !known.contains(c.node.as_str()))
        .map(|c| c.node.clone())
        .collect()
}

/// Every PIndex to place, in index then PIndex order.
pub(crate) fn drafts(
    input: &PlanInput,
    previous: &Plan,
    topo: &Topology,
    unknown: &BTreeSet<String>,
    warnings: &mut Warnings,
) -> Vec<Draft> {
    let by_name: HashMap<&str, &TargetPIndex> = previous
        .pindexes
        .iter()
        .map(|p| (p.name.as_str(), p))
        .collect();
    let mut indexes: Vec<&IndexSpec> = input.indexes.iter().collect();
    indexes.sort_by(|a, b| a.name.cmp(&b.name));
    indexes.dedup_by(|a, b| a.name == b.name);
    let mut drafts = Vec::new();
    let mut lost_to_unknown: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for index in indexes {
        if index.frozen {
            drafts.extend(frozen(index, previous, topo, warnings));
            continue;
        }
        let want = copies_wanted(index, topo.eligible.len(), warnings);
        let pinned = input.pinned.contains(&index.name);
        for part in split::split(index) {
            let (copies, all_kept) = match by_name.get(part.name.as_str()) {
                Some(p) if p.index == index.name => {
                    for c in p.copies.iter().filter(|c| unknown.contains(&c.node)) {
                        lost_to_unknown
                            .entry(index.name.clone())
                            .or_default()
                            .insert(c.node.clone());
                    }
                    let kept = copies_of(p, topo, false);
                    let all = kept.len() == p.copies.len();
                    (kept, all)
                }
                _ => (Vec::new(), false),
            };
            let frozen = pinned && all_kept && copies.len() >= want;
            let on_disk = input
                .on_disk
                .get(&part.name)
                .into_iter()
                .flatten()
                .filter_map(|uuid| topo.index_of(uuid))
                .collect();
            drafts.push(Draft {
                name: part.name,
                index: index.name.clone(),
                partitions: part.partitions,
                want: if frozen { copies.len() } else { want },
                frozen,
                level: index.spread_level,
                copies,
                established: BTreeSet::new(),
                promoted: false,
                on_disk,
            });
        }
    }
    for (index, nodes) in lost_to_unknown {
        let nodes: Vec<String> = nodes.into_iter().collect();
        warnings.add(
            &index,
            format!(
                "previous plan has copies on unknown nodes {}: they are re-placed",
                nodes.join(", ")
            ),
        );
    }
    drafts
}

/// A frozen index keeps its PIndexes and copies as the previous plan has them.
fn frozen(
    index: &IndexSpec,
    previous: &Plan,
    topo: &Topology,
    warnings: &mut Warnings,
) -> Vec<Draft> {
    let kept: Vec<&TargetPIndex> = previous
        .pindexes
        .iter()
        .filter(|p| p.index == index.name)
        .collect();
    if kept.is_empty() {
        warnings.add(
            &index.name,
            "frozen index has no plan yet: nothing is planned until it is unfrozen".into(),
        );
    }
    kept.into_iter()
        .map(|p| Draft {
            name: p.name.clone(),
            index: index.name.clone(),
            partitions: p.source_partitions.clone(),
            want: p.copies.len(),
            frozen: true,
            level: index.spread_level,
            copies: copies_of(p, topo, true),
            established: BTreeSet::new(),
            promoted: false,
            on_disk: BTreeSet::new(),
        })
        .collect()
}

/// Copies per PIndex: 1 + replicas, capped by the nodes that can hold them (with a warning).
fn copies_wanted(index: &IndexSpec, eligible: usize, warnings: &mut Warnings) -> usize {
    let wanted = 1 + index.replicas as usize;
    let want = wanted.min(eligible);
    if eligible == 0 {
        warnings.add(
            &index.name,
            "no node can hold copies (none is tagged pindex, wanted and alive)".into(),
        );
    } else if want < wanted {
        warnings.add(
            &index.name,
            format!(
                "{} replicas wanted, {eligible} nodes can hold copies: planning {} replicas",
                index.replicas,
                want - 1
            ),
        );
    }
    want
}

/// A previous PIndex's copies as node indexes; only eligible nodes unless frozen.
fn copies_of(p: &TargetPIndex, topo: &Topology, frozen: bool) -> Vec<(usize, model::CopyRole)> {
    p.copies
        .iter()
        .filter_map(|c| topo.index_of(&c.node).map(|n| (n, c.role)))
        .filter(|&(n, _)| frozen || topo.nodes[n].eligible)
        .collect()
}
