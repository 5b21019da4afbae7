//! Which copy of each PIndex a query reads. A copy can serve when the plan says it can be
//! read (`can_read`: active, not being dropped) and its node is live and not just seen
//! failing. Among those, the primary comes first unless the request prefers `any`; replicas
//! take turns (`turn` rotates them) so that load spreads. A PIndex with no copy that can
//! serve is uncovered, with the reason.

use std::collections::{BTreeMap, BTreeSet};

use tessera_cfg::schema::{CopyRole, IndexPlan, PIndexPlan};

use crate::request::Prefer;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    /// Node → the PIndexes to ask it for.
    pub by_node: BTreeMap<String, Vec<String>>,
    /// PIndex → why no copy can serve it.
    pub uncovered: BTreeMap<String, String>,
}

/// Where the copies stand, as routing sees them.
pub struct Cluster<'a> {
    pub live: &'a BTreeSet<String>,
    /// Nodes that failed a request of this query (or very recently): asked only when nothing
    /// else can serve.
    pub avoid: &'a BTreeSet<String>,
}

/// Routes the PIndexes of `plan` named in `only` (all when `None`).
pub fn route(
    plan: &IndexPlan,
    only: Option<&BTreeSet<String>>,
    cluster: &Cluster<'_>,
    prefer: Prefer,
    turn: u64,
) -> Routing {
    let mut routing = Routing::default();
    for (i, pindex) in plan.pindexes.iter().enumerate() {
        if only.is_some_and(|o| !o.contains(&pindex.name)) {
            continue;
        }
        match choose(pindex, cluster, prefer, turn.wrapping_add(i as u64)) {
            Ok(node) => routing
                .by_node
                .entry(node)
                .or_default()
                .push(pindex.name.clone()),
            Err(reason) => {
                routing.uncovered.insert(pindex.name.clone(), reason);
            }
        }
    }
    routing
}

fn choose(
    pindex: &PIndexPlan,
    cluster: &Cluster<'_>,
    prefer: Prefer,
    turn: u64,
) -> Result<String, String> {
    let readable: Vec<_> = pindex
        .copies
        .iter()
        .filter(|c| c.can_read && cluster.live.contains(&c.node))
        .collect();
    let (fresh, avoided): (Vec<_>, Vec<_>) = readable
        .into_iter()
        .partition(|c| !cluster.avoid.contains(&c.node));
    let pick = |candidates: &[&tessera_cfg::schema::CopyPlan]| -> Option<String> {
        if candidates.is_empty() {
            return None;
        }
        if prefer == Prefer::Primary {
            if let Some(primary) = candidates.iter().find(|c| c.role == CopyRole::Primary) {
                return Some(primary.node.clone());
            }
        }
        let n = candidates.len() as u64;
        Some(candidates[(turn % n) as usize].node.clone())
    };
    if let Some(node) = pick(&fresh).or_else(|| pick(&avoided)) {
        return Ok(node);
    }
    if pindex.copies.is_empty() {
        return Err("no copy is planned yet".into());
    }
    let why: Vec<String> = pindex
        .copies
        .iter()
        .map(|c| {
            let role = match c.role {
                CopyRole::Primary => "primary",
                CopyRole::Replica => "replica",
            };
            let state = if !cluster.live.contains(&c.node) {
                "node down".to_string()
            } else {
                format!("{:?}, not readable", c.state).to_lowercase()
            };
            format!("{role} on {}: {state}", c.node)
        })
        .collect();
    Err(format!("no readable copy ({})", why.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_cfg::schema::{CopyPlan, CopyState, Document};

    fn copy(node: &str, role: CopyRole, can_read: bool) -> CopyPlan {
        CopyPlan {
            node: node.into(),
            role,
            state: if can_read {
                CopyState::Active
            } else {
                CopyState::Building
            },
            can_read,
            can_write: true,
            target_role: None,
        }
    }

    fn plan(pindexes: Vec<Vec<CopyPlan>>) -> IndexPlan {
        IndexPlan {
            format_version: IndexPlan::FORMAT_VERSION,
            index: "i".into(),
            index_uuid: "u".into(),
            pindexes: pindexes
                .into_iter()
                .enumerate()
                .map(|(i, copies)| PIndexPlan {
                    name: format!("p{i}"),
                    source_partitions: vec![i as u32],
                    copies,
                })
                .collect(),
            warnings: vec![],
        }
    }

    fn set(nodes: &[&str]) -> BTreeSet<String> {
        nodes.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn primary_first_then_a_replica_when_the_primary_cannot_serve() {
        let p = plan(vec![
            vec![
                copy("a", CopyRole::Primary, true),
                copy("b", CopyRole::Replica, true),
            ],
            vec![
                copy("a", CopyRole::Primary, false),
                copy("b", CopyRole::Replica, true),
            ],
            vec![
                copy("c", CopyRole::Primary, true),
                copy("b", CopyRole::Replica, true),
            ],
        ]);
        let live = set(&["a", "b"]);
        let none = BTreeSet::new();
        let cluster = Cluster {
            live: &live,
            avoid: &none,
        };
        let r = route(&p, None, &cluster, Prefer::Primary, 0);
        assert_eq!(r.by_node["a"], ["p0"]);
        assert_eq!(r.by_node["b"], ["p1", "p2"]);
        assert!(r.uncovered.is_empty());
    }

    #[test]
    fn avoided_nodes_serve_only_as_a_last_resort() {
        let p = plan(vec![
            vec![
                copy("a", CopyRole::Primary, true),
                copy("b", CopyRole::Replica, true),
            ],
            vec![copy("a", CopyRole::Primary, true)],
        ]);
        let live = set(&["a", "b"]);
        let avoid = set(&["a"]);
        let cluster = Cluster {
            live: &live,
            avoid: &avoid,
        };
        let r = route(&p, None, &cluster, Prefer::Primary, 0);
        assert_eq!(r.by_node["b"], ["p0"]);
        assert_eq!(r.by_node["a"], ["p1"]);
    }

    #[test]
    fn any_spreads_over_replicas_and_uncovered_says_why() {
        let p = plan(vec![
            vec![
                copy("a", CopyRole::Primary, true),
                copy("b", CopyRole::Replica, true),
            ],
            vec![copy("c", CopyRole::Primary, true)],
        ]);
        let live = set(&["a", "b"]);
        let none = BTreeSet::new();
        let cluster = Cluster {
            live: &live,
            avoid: &none,
        };
        let nodes: BTreeSet<String> = (0..4)
            .map(|turn| route(&p, None, &cluster, Prefer::Any, turn))
            .flat_map(|r| r.by_node.into_keys())
            .collect();
        assert_eq!(nodes, set(&["a", "b"]));
        let r = route(&p, None, &cluster, Prefer::Primary, 0);
        assert!(r.uncovered["p1"].contains("node down"), "{:?}", r.uncovered);
        let only = set(&["p1"]);
        assert!(route(&p, Some(&only), &cluster, Prefer::Primary, 0)
            .by_node
            .is_empty());
    }
}
