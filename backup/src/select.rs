//! Which copy of each PIndex a backup reads: pure, over the plans, the nodes' copy reports and
//! liveness as read from the Cfg.
//!
//! A copy qualifies when the plan marks it readable, its node is live, and its node's report
//! says it has caught up. Replicas come first (a backup should load the copy queries prefer
//! least), then primaries; within a role, the node with the fewest copies chosen so far, so the
//! reading is spread over the cluster. Every qualifying copy is kept, in order: when the node
//! of the first dies mid-backup, the next is asked.

use std::collections::{BTreeMap, BTreeSet};

use tessera_cfg::schema::{CopyReport, CopyRole, IndexPlan};

/// One PIndex to save and the nodes to ask, best first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PIndexSource {
    pub index: String,
    pub pindex: String,
    pub source_partitions: Vec<u32>,
    pub nodes: Vec<String>,
}

/// The PIndexes of `plans` with the copies to read them from. A PIndex without a qualifying
/// copy has an empty `nodes` (the caller reports it as not savable now).
pub fn choose_copies(
    plans: &[IndexPlan],
    reports: &BTreeMap<String, CopyReport>,
    live: &BTreeSet<String>,
) -> Vec<PIndexSource> {
    let mut load: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for plan in plans {
        for p in &plan.pindexes {
            let mut candidates: Vec<(u8, &str)> = p
                .copies
                .iter()
                .filter(|c| c.can_read && live.contains(&c.node))
                .filter(|c| {
                    reports
                        .get(&c.node)
                        .is_some_and(|r| r.caught_up.contains(&p.name))
                })
                .map(|c| (u8::from(c.role == CopyRole::Primary), c.node.as_str()))
                .collect();
            candidates.sort_by_key(|(primary, node)| {
                (*primary, load.get(*node).copied().unwrap_or(0), *node)
            });
            if let Some((_, first)) = candidates.first() {
                *load.entry(first.to_string()).or_default() += 1;
            }
            out.push(PIndexSource {
                index: plan.index.clone(),
                pindex: p.name.clone(),
                source_partitions: p.source_partitions.clone(),
                nodes: candidates.iter().map(|(_, n)| n.to_string()).collect(),
            });
        }
    }
    out
}

/// Whether `name` matches one of `globs` (`*` matches any run of characters).
pub fn matches_any(name: &str, globs: &[String]) -> bool {
    globs
        .iter()
        .any(|g| glob_match(g.as_bytes(), name.as_bytes()))
}

fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob_match(rest, &text[i..])),
        Some((c, rest)) => text.first() == Some(c) && glob_match(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_cfg::schema::{CopyPlan, CopyState, PIndexPlan};

    fn copy(node: &str, role: CopyRole, can_read: bool) -> CopyPlan {
        CopyPlan {
            node: node.into(),
            role,
            state: CopyState::Active,
            can_read,
            can_write: true,
            target_role: None,
        }
    }

    fn report(node: &str, caught_up: &[&str]) -> (String, CopyReport) {
        (
            node.into(),
            CopyReport {
                format_version: 1,
                node: node.into(),
                incarnation: "i".into(),
                caught_up: caught_up.iter().map(|s| s.to_string()).collect(),
                docs: BTreeMap::new(),
                on_disk: BTreeSet::new(),
                stalled: BTreeMap::new(),
                plans_seen: 0,
                incidents: BTreeMap::new(),
                copied_bytes: BTreeMap::new(),
            },
        )
    }

    fn plan(pindexes: Vec<(&str, Vec<CopyPlan>)>) -> IndexPlan {
        IndexPlan {
            format_version: 1,
            index: "books".into(),
            index_uuid: "u".into(),
            pindexes: pindexes
                .into_iter()
                .map(|(name, copies)| PIndexPlan {
                    name: name.into(),
                    source_partitions: vec![0],
                    copies,
                })
                .collect(),
            warnings: vec![],
        }
    }

    #[test]
    fn replicas_first_then_primaries_and_only_caught_up_live_readable_copies() {
        let plans = vec![plan(vec![
            (
                "p1",
                vec![
                    copy("a", CopyRole::Primary, true),
                    copy("b", CopyRole::Replica, true),
                ],
            ),
            (
                "p2",
                vec![
                    copy("a", CopyRole::Primary, true),
                    copy("c", CopyRole::Replica, true),
                ],
            ),
            (
                "p3",
                vec![
                    copy("b", CopyRole::Primary, true),
                    copy("c", CopyRole::Replica, false),
                ],
            ),
        ])];
        let reports: BTreeMap<_, _> = [
            report("a", &["p1", "p2"]),
            report("b", &["p1", "p3"]),
            report("c", &["p2", "p3"]),
        ]
        .into();
        let live: BTreeSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let chosen = choose_copies(&plans, &reports, &live);
        let nodes: Vec<Vec<String>> = chosen.iter().map(|c| c.nodes.clone()).collect();
        assert_eq!(
            nodes,
            vec![
                vec!["b".to_string(), "a".to_string()], // the replica first
                vec!["a".to_string()],                  // c is not live
                vec!["b".to_string()],                  // c's copy is not readable
            ]
        );
    }

    #[test]
    fn no_qualifying_copy_leaves_the_pindex_without_nodes() {
        let plans = vec![plan(vec![("p1", vec![copy("a", CopyRole::Primary, true)])])];
        let reports: BTreeMap<_, _> = [report("a", &[])].into();
        let live: BTreeSet<String> = ["a".to_string()].into();
        assert!(choose_copies(&plans, &reports, &live)[0].nodes.is_empty());
    }

    #[test]
    fn globs() {
        let g = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(matches_any("books", &g(&["*"])));
        assert!(matches_any("books-2024", &g(&["books-*"])));
        assert!(!matches_any("films", &g(&["books*", "b*s"])));
        assert!(matches_any("bus", &g(&["b*s"])));
    }
}
