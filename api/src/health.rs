//! `GET /api/cluster/health`: green when every planned copy is active on a live node; yellow
//! when copies are missing, down, or moves are under way; red when some PIndex has no copy
//! that can serve reads — *unavailable* while such a copy is on a node that may come back,
//! *missing* when none is left (`tessera_planner::coverage` holds the rule; `missing` names
//! them per index). `reasons` say why, counted per kind with a few examples, so the answer
//! stays small on a big cluster.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tessera_cfg::schema::{ClusterControl, CopyState, IndexDef, IndexPlan};
use tessera_planner::coverage::{readability, Readability};

use crate::problem::cfg_problem;
use crate::AppState;

/// Examples listed per kind of reason.
const EXAMPLES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Green,
    Yellow,
    Red,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Green => "green",
            Status::Yellow => "yellow",
            Status::Red => "red",
        }
    }
}

/// Collects reasons by kind: the status each implies, how many, and a few examples.
#[derive(Default)]
struct Reasons(BTreeMap<&'static str, (Status, usize, Vec<String>)>);

impl Reasons {
    fn add(&mut self, kind: &'static str, status: Status, example: String) {
        let entry = self.0.entry(kind).or_insert((status, 0, Vec::new()));
        entry.1 += 1;
        if entry.2.len() < EXAMPLES {
            entry.2.push(example);
        }
    }
}

/// Per node, its feeds that stalled (PIndex → why), from the nodes' copy reports.
pub type Stalled = BTreeMap<String, BTreeMap<String, String>>;

/// Stored documents that cannot be read: key → why.
pub type Unreadable = BTreeMap<String, String>;

/// What health is judged from, as of one Cfg listing.
pub struct Observed<'a> {
    pub defs: &'a [IndexDef],
    pub plans: &'a BTreeMap<String, IndexPlan>,
    /// Nodes holding a liveness lease.
    pub live: &'a BTreeSet<String>,
    /// Nodes with a definition that were not failed over (a down one may come back).
    pub may_return: &'a BTreeSet<String>,
    pub control: &'a ClusterControl,
    /// Feeds the nodes report stalled.
    pub stalled: &'a Stalled,
    /// Feeds held on a source history replacement.
    pub incidents: &'a Stalled,
    /// Documents no one can read.
    pub unreadable: &'a Unreadable,
}

/// The verdict: a status, the reasons counted by kind, and per index its missing PIndexes
/// (no copy left can serve them: `tessera_planner::coverage`).
pub struct Health {
    pub status: Status,
    pub reasons: Vec<String>,
    pub missing: BTreeMap<String, Vec<String>>,
}

/// The health of the indexes in `seen`.
pub fn health(seen: &Observed<'_>) -> Health {
    let Observed {
        defs,
        plans,
        live,
        may_return,
        control,
        stalled,
        incidents,
        unreadable,
    } = *seen;
    let mut missing = BTreeMap::new();
    let mut reasons = Reasons::default();
    for (node, held) in incidents {
        for (pindex, why) in held {
            reasons.add(
                "source history replaced: feeds held, nothing dropped (POST /api/index/{name}/ingestControl/accept-rollback)",
                Status::Red,
                format!("{pindex} on {node}: {why}"),
            );
        }
    }
    for (key, why) in unreadable {
        reasons.add(
            "unreadable Cfg documents (skipped; repair or rewrite them)",
            Status::Red,
            format!("{key}: {why}"),
        );
    }
    for (index, why) in &control.held.plan_errors {
        reasons.add(
            "plans not written (retried every round)",
            Status::Yellow,
            format!("{index}: {why}"),
        );
    }
    if control.frozen {
        reasons.add(
            "cluster frozen",
            Status::Yellow,
            control.frozen_reason.clone(),
        );
    }
    for node in &control.held.failovers {
        reasons.add(
            "absent nodes the failover cap holds (acknowledge with POST /api/ctl/failover/ack)",
            Status::Yellow,
            node.clone(),
        );
    }
    if control.frozen && control.held.moves_frozen > 0 {
        reasons.add(
            "copies frozen out",
            Status::Yellow,
            format!(
                "{} copies to build once unfrozen",
                control.held.moves_frozen
            ),
        );
    }
    for node in &control.auto_failed_nodes {
        reasons.add(
            "automatic failovers to acknowledge (POST /api/ctl/failover/ack)",
            Status::Yellow,
            node.clone(),
        );
    }
    for def in defs {
        let Some(plan) = plans.get(&def.name).filter(|p| p.index_uuid == def.uuid) else {
            reasons.add("not planned", Status::Yellow, def.name.clone());
            continue;
        };
        let wanted = 1 + def.plan.replicas as usize;
        for p in &plan.pindexes {
            let readable = p
                .copies
                .iter()
                .filter(|c| c.can_read && live.contains(&c.node))
                .count();
            match readability(p, live, may_return) {
                Readability::Readable => {}
                Readability::Unavailable => reasons.add(
                    "no readable copy: its copies are on down nodes",
                    Status::Red,
                    p.name.clone(),
                ),
                Readability::Missing => {
                    reasons.add(
                        "missing: no copy left can serve (its nodes failed over or gone)",
                        Status::Red,
                        p.name.clone(),
                    );
                    missing
                        .entry(def.name.clone())
                        .or_insert_with(Vec::new)
                        .push(p.name.clone());
                }
            }
            let staying = p
                .copies
                .iter()
                .filter(|c| c.state != CopyState::Dropping)
                .count();
            if staying < wanted {
                reasons.add(
                    "missing copies",
                    Status::Yellow,
                    format!("{} has {staying} of {wanted}", p.name),
                );
            }
            for c in &p.copies {
                if let Some(why) = stalled.get(&c.node).and_then(|s| s.get(&p.name)) {
                    reasons.add(
                        "feed stalled",
                        Status::Yellow,
                        format!("{} on {} ({why})", p.name, c.node),
                    );
                }
                if !live.contains(&c.node) {
                    reasons.add(
                        "copy on a down node",
                        Status::Yellow,
                        format!("{} on {}", p.name, c.node),
                    );
                } else if c.state == CopyState::Building && readable > 0 {
                    reasons.add(
                        "copy moving in",
                        Status::Yellow,
                        format!("{} to {}", p.name, c.node),
                    );
                } else if c.state == CopyState::Building {
                    reasons.add(
                        "copy building",
                        Status::Yellow,
                        format!("{} on {}", p.name, c.node),
                    );
                } else if c.state == CopyState::Dropping {
                    reasons.add(
                        "copy moving out",
                        Status::Yellow,
                        format!("{} from {}", p.name, c.node),
                    );
                }
            }
        }
    }
    let status = reasons
        .0
        .values()
        .map(|(s, ..)| *s)
        .max()
        .unwrap_or(Status::Green);
    let lines = reasons
        .0
        .into_iter()
        .map(|(kind, (_, count, examples))| {
            let more = if count > examples.len() { ", ..." } else { "" };
            format!("{kind}: {count} ({}{more})", examples.join(", "))
        })
        .collect();
    Health {
        status,
        reasons: lines,
        missing,
    }
}

pub async fn cluster_health(State(state): State<AppState>) -> Response {
    // One listing: definitions, plans, liveness and reports as of one revision.
    let snapshot = match state.cfg.snapshot().await {
        Ok(snapshot) => snapshot,
        Err(e) => return cfg_problem(e),
    };
    let control = match state
        .cfg
        .get_doc::<ClusterControl>(&state.cfg.keys().control())
        .await
    {
        Ok(c) => c.map(|c| c.value).unwrap_or_default(),
        Err(e) => return cfg_problem(e),
    };
    // Recoveries under way, so that one begun by the cluster itself is seen where red is.
    let recovering: Vec<serde_json::Value> = snapshot
        .recoveries
        .iter()
        .filter(|r| r.value.status == tessera_cfg::schema::RecoveryStatus::Running)
        .map(|r| json!({"id": r.value.id, "indexes": r.value.indexes, "auto": r.value.auto}))
        .collect();
    let defs: Vec<IndexDef> = snapshot.index_defs.into_iter().map(|d| d.value).collect();
    let plans = snapshot
        .plans
        .into_iter()
        .map(|p| (p.value.index.clone(), p.value))
        .collect();
    let live = snapshot
        .liveness
        .into_iter()
        .map(|l| l.value.uuid)
        .collect();
    let incidents = snapshot
        .reports
        .iter()
        .map(|r| (r.value.node.clone(), r.value.incidents.clone()))
        .collect();
    let stalled = snapshot
        .reports
        .into_iter()
        .map(|r| (r.value.node, r.value.stalled))
        .collect();
    let unreadable = snapshot
        .skipped
        .into_iter()
        .map(|u| (u.key, u.error.to_string()))
        .collect();
    let may_return =
        tessera_planner::coverage::may_return(snapshot.node_defs.iter().map(|n| &n.value));
    let verdict = health(&Observed {
        defs: &defs,
        plans: &plans,
        live: &live,
        may_return: &may_return,
        control: &control,
        stalled: &stalled,
        incidents: &incidents,
        unreadable: &unreadable,
    });
    Json(
        json!({"status": verdict.status.as_str(), "reasons": verdict.reasons,
                "missing": verdict.missing, "recovering": recovering}),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(replicas: u32) -> IndexDef {
        serde_json::from_value(
            json!({"format_version": 1, "name": "i", "uuid": "u", "type": "fulltext",
            "source": {"type": "tessera", "name": "s"}, "plan": {"replicas": replicas}}),
        )
        .expect("a definition")
    }

    fn plan(copies: &[(&str, &str, bool)]) -> BTreeMap<String, IndexPlan> {
        let copies: Vec<_> = copies
            .iter()
            .enumerate()
            .map(|(i, (node, state, can_read))| {
                json!({"node": node, "role": if i == 0 {"primary"} else {"replica"},
                       "state": state, "can_read": can_read, "can_write": true})
            })
            .collect();
        let plan =
            serde_json::from_value(json!({"format_version": 1, "index": "i", "index_uuid": "u",
            "pindexes": [{"name": "i_0-1", "source_partitions": [0, 1], "copies": copies}]}))
            .expect("a plan");
        BTreeMap::from([("i".to_string(), plan)])
    }

    fn live(nodes: &[&str]) -> BTreeSet<String> {
        nodes.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn green_yellow_red() {
        let none = ClusterControl::default();
        let all = live(&["a", "b"]);
        let ok = plan(&[("a", "active", true), ("b", "active", true)]);
        assert_eq!(
            health(&Observed {
                defs: &[def(1)],
                plans: &ok,
                live: &all,
                may_return: &all,
                control: &none,
                stalled: &Stalled::new(),
                incidents: &Stalled::new(),
                unreadable: &Unreadable::new()
            })
            .status,
            Status::Green
        );
        let Health {
            status, reasons, ..
        } = health(&Observed {
            defs: &[def(2)],
            plans: &ok,
            live: &all,
            may_return: &all,
            control: &none,
            stalled: &Stalled::new(),
            incidents: &Stalled::new(),
            unreadable: &Unreadable::new(),
        });
        assert_eq!(status, Status::Yellow);
        assert!(reasons[0].starts_with("missing copies: 1"), "{reasons:?}");
        let moving = plan(&[("a", "dropping", true), ("b", "building", false)]);
        assert_eq!(
            health(&Observed {
                defs: &[def(0)],
                plans: &moving,
                live: &all,
                may_return: &all,
                control: &none,
                stalled: &Stalled::new(),
                incidents: &Stalled::new(),
                unreadable: &Unreadable::new()
            })
            .status,
            Status::Yellow
        );
        let Health {
            status, reasons, ..
        } = health(&Observed {
            defs: &[def(1)],
            plans: &ok,
            live: &live(&[]),
            may_return: &all,
            control: &none,
            stalled: &Stalled::new(),
            incidents: &Stalled::new(),
            unreadable: &Unreadable::new(),
        });
        assert_eq!(status, Status::Red);
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("no readable copy: its copies are on down nodes: 1 (i_0-1)")),
            "{reasons:?}"
        );
        // Both nodes failed over: nothing to wait for, the PIndex is missing.
        let verdict = health(&Observed {
            defs: &[def(1)],
            plans: &ok,
            live: &live(&[]),
            may_return: &live(&[]),
            control: &none,
            stalled: &Stalled::new(),
            incidents: &Stalled::new(),
            unreadable: &Unreadable::new(),
        });
        assert_eq!(verdict.status, Status::Red);
        assert_eq!(
            verdict.missing,
            BTreeMap::from([("i".to_string(), vec!["i_0-1".to_string()])])
        );
        assert!(
            verdict.reasons.iter().any(|r| r.starts_with("missing: ")),
            "{:?}",
            verdict.reasons
        );
        assert_eq!(
            health(&Observed {
                defs: &[def(0)],
                plans: &BTreeMap::new(),
                live: &all,
                may_return: &all,
                control: &none,
                stalled: &Stalled::new(),
                incidents: &Stalled::new(),
                unreadable: &Unreadable::new()
            })
            .status,
            Status::Yellow
        );
        let frozen = ClusterControl {
            frozen: true,
            ..ClusterControl::default()
        };
        assert_eq!(
            health(&Observed {
                defs: &[def(1)],
                plans: &ok,
                live: &all,
                may_return: &all,
                control: &frozen,
                stalled: &Stalled::new(),
                incidents: &Stalled::new(),
                unreadable: &Unreadable::new()
            })
            .status,
            Status::Yellow
        );
        let stalled = Stalled::from([(
            "b".to_string(),
            BTreeMap::from([("i_0-1".to_string(), "feed stalled: ...".to_string())]),
        )]);
        let Health {
            status, reasons, ..
        } = health(&Observed {
            defs: &[def(1)],
            plans: &ok,
            live: &all,
            may_return: &all,
            control: &none,
            stalled: &stalled,
            incidents: &Stalled::new(),
            unreadable: &Unreadable::new(),
        });
        assert_eq!(status, Status::Yellow);
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("feed stalled: 1 (i_0-1 on b")),
            "{reasons:?}"
        );
    }

    #[test]
    fn unreadable_documents_are_red_and_plan_errors_yellow_naming_them() {
        let all = live(&["a", "b"]);
        let ok = plan(&[("a", "active", true), ("b", "active", true)]);
        let mut control = ClusterControl::default();
        control
            .held
            .plan_errors
            .insert("big".into(), "value too large".into());
        let Health {
            status, reasons, ..
        } = health(&Observed {
            defs: &[def(1)],
            plans: &ok,
            live: &all,
            may_return: &all,
            control: &control,
            stalled: &Stalled::new(),
            incidents: &Stalled::new(),
            unreadable: &Unreadable::new(),
        });
        assert_eq!(status, Status::Yellow);
        assert!(
            reasons.iter().any(|r| r.contains("big: value too large")),
            "{reasons:?}"
        );
        let unreadable = Unreadable::from([(
            "/tessera/t/indexes/x".to_string(),
            "corrupt value".to_string(),
        )]);
        let Health {
            status, reasons, ..
        } = health(&Observed {
            defs: &[def(1)],
            plans: &ok,
            live: &all,
            may_return: &all,
            control: &control,
            stalled: &Stalled::new(),
            incidents: &Stalled::new(),
            unreadable: &unreadable,
        });
        assert_eq!(status, Status::Red);
        assert!(
            reasons.iter().any(|r| r.contains("/tessera/t/indexes/x")),
            "{reasons:?}"
        );
    }

    #[test]
    fn a_held_source_history_replacement_is_red_naming_the_pindex() {
        let all = live(&["a", "b"]);
        let ok = plan(&[("a", "active", true), ("b", "active", true)]);
        let incidents = Stalled::from([(
            "a".to_string(),
            BTreeMap::from([("i_0-1".to_string(), "history replaced".to_string())]),
        )]);
        let Health {
            status, reasons, ..
        } = health(&Observed {
            defs: &[def(1)],
            plans: &ok,
            live: &all,
            may_return: &all,
            control: &ClusterControl::default(),
            stalled: &Stalled::new(),
            incidents: &incidents,
            unreadable: &Unreadable::new(),
        });
        assert_eq!(status, Status::Red);
        assert!(
            reasons.iter().any(|r| r.contains("i_0-1 on a")),
            "{reasons:?}"
        );
    }
}
