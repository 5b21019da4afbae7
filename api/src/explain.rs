//! `GET /api/plan/explain?pindex=NAME`: why each copy of a PIndex is where it is, in the state
//! it is in, why other nodes hold none, and why copies are missing. The facts come from the
//! stored plans, the index definition and the node definitions (`explain` is a plain function
//! over them); eligibility and weighted shares are the planner's own (`planner::eligibility`),
//! so explain says what the planner decides. The rules are in planner/README.md.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tessera_cfg::schema::{CopyRole, CopyState, IndexDef, IndexPlan, NodeDef};

use crate::problem::{cfg_problem, problem};
use crate::AppState;

/// Copies per node over every plan.
fn load(plans: &[IndexPlan]) -> BTreeMap<String, usize> {
    let mut load = BTreeMap::new();
    for p in plans.iter().flat_map(|p| &p.pindexes) {
        for c in &p.copies {
            *load.entry(c.node.clone()).or_default() += 1;
        }
    }
    load
}

/// Why a node cannot hold a copy, if it cannot: the planner's rule, and for an eligible node
/// that is down, that it keeps its copies but serves none until it is back or failed over.
fn ineligible(node: &NodeDef, live: &BTreeSet<String>) -> Option<String> {
    let spec = tessera_planner::service::inputs::node_spec(node);
    match tessera_planner::eligibility::eligibility(&spec, node.failed_over) {
        Err(why) => Some(why.reason().to_string()),
        Ok(()) if !live.contains(&node.uuid) => {
            Some("down (no liveness key); its copies stay until the failover delay runs out".into())
        }
        Ok(()) => None,
    }
}

/// Each eligible node's `[lo, hi]` share of the copies the eligible nodes hold, by the
/// planner's rule.
fn shares(
    nodes: &BTreeMap<String, NodeDef>,
    load: &BTreeMap<String, usize>,
) -> BTreeMap<String, (usize, usize)> {
    use tessera_planner::service::inputs::{eligible, node_spec};
    let specs: Vec<_> = nodes.values().map(node_spec).collect();
    let failed: BTreeSet<String> = nodes
        .values()
        .filter(|n| n.failed_over)
        .map(|n| n.uuid.clone())
        .collect();
    let total = nodes
        .values()
        .filter(|n| eligible(n))
        .map(|n| load.get(&n.uuid).copied().unwrap_or(0))
        .sum();
    tessera_planner::eligibility::shares(&specs, &failed, total)
}

pub fn explain(
    pindex: &str,
    def: &IndexDef,
    plan: &IndexPlan,
    plans: &[IndexPlan],
    nodes: &BTreeMap<String, NodeDef>,
    live: &BTreeSet<String>,
) -> Option<Value> {
    let p = plan.pindexes.iter().find(|p| p.name == pindex)?;
    let load = load(plans);
    let eligible: Vec<&NodeDef> = nodes
        .values()
        .filter(|n| ineligible(n, live).is_none())
        .collect();
    let shares = shares(nodes, &load);
    let share = |n: &NodeDef| match shares.get(&n.uuid) {
        Some((lo, hi)) if lo == hi => format!("{lo}"),
        Some((lo, hi)) => format!("{lo}–{hi}"),
        None => "0 (it cannot hold copies)".to_string(),
    };
    let groups_used: BTreeSet<&str> = p
        .copies
        .iter()
        .filter_map(|c| nodes.get(&c.node).map(|n| n.group.as_str()))
        .collect();
    let copies: Vec<Value> = p
        .copies
        .iter()
        .map(|c| {
            let node = nodes.get(&c.node);
            let mut why = Vec::new();
            match node {
                None => why.push("its node is not defined any more: the copy goes at the next planning round".to_string()),
                Some(n) => {
                    if let Some(reason) = ineligible(n, live) {
                        why.push(format!("its node is {reason}"));
                    }
                    let held = load.get(&n.uuid).copied().unwrap_or(0);
                    why.push(format!(
                        "its node holds {held} copies against a weighted share of {} (weight {}, group `{}`); the planner keeps copies where they are unless balance or spread needs a move",
                        share(n), n.weight, n.group
                    ));
                }
            }
            why.push(match c.role {
                CopyRole::Primary => "primary: the copy queries read first; primaries are balanced across nodes".into(),
                CopyRole::Replica => "replica: read when the primary cannot serve".into(),
            });
            if let Some(target) = c.target_role {
                why.push(format!("becomes {target:?} once caught up (make before break)").to_lowercase());
            }
            why.push(match c.state {
                CopyState::Building => "building: catching up with the source; not readable yet".into(),
                CopyState::Active => "active: caught up and serving".into(),
                CopyState::Dropping => "dropping: replaced by a copy elsewhere; serves until every staying copy has caught up".into(),
            });
            json!({"node": c.node, "role": c.role, "state": c.state, "can_read": c.can_read,
                   "target_role": c.target_role, "why": why})
        })
        .collect();
    let holders: BTreeSet<&str> = p.copies.iter().map(|c| c.node.as_str()).collect();
    let others: Vec<Value> = nodes
        .values()
        .filter(|n| !holders.contains(n.uuid.as_str()))
        .map(|n| {
            let why = match ineligible(n, live) {
                Some(reason) => reason,
                None if groups_used.contains(n.group.as_str()) && !n.group.is_empty() => format!(
                    "group `{}` already holds a copy; copies spread over groups first",
                    n.group
                ),
                None => format!(
                    "holds {} copies against a weighted share of {}; copies go to the least loaded nodes",
                    load.get(&n.uuid).copied().unwrap_or(0),
                    share(n)
                ),
            };
            json!({"node": n.uuid, "why": why})
        })
        .collect();
    let wanted = 1 + def.plan.replicas as usize;
    let staying = p
        .copies
        .iter()
        .filter(|c| c.state != CopyState::Dropping)
        .count();
    let mut unassigned = Vec::new();
    if staying < wanted {
        let room = eligible
            .iter()
            .filter(|n| !holders.contains(n.uuid.as_str()))
            .count();
        let why = if room == 0 {
            format!(
                "{wanted} copies wanted but no other eligible node (eligible: {})",
                eligible.len()
            )
        } else {
            "waiting for a move slot (per-node and cluster move limits) or for the next planning round".to_string()
        };
        unassigned.push(json!({"missing": wanted - staying, "why": why}));
    }
    Some(
        json!({"pindex": p.name, "index": plan.index, "source_partitions": p.source_partitions,
                "copies_wanted": wanted, "copies": copies, "other_nodes": others,
                "unassigned": unassigned, "plan_warnings": plan.warnings}),
    )
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainQuery {
    pub pindex: String,
}

pub async fn plan_explain(
    State(state): State<AppState>,
    query: Result<Query<ExplainQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return problem(
            StatusCode::BAD_REQUEST,
            "give the PIndex: ?pindex=NAME",
            Some("pindex"),
        );
    };
    let (plans, defs, nodes, live) = match tokio::try_join!(
        state.cfg.plans(),
        state.cfg.index_defs(),
        state.cfg.node_defs(),
        state.cfg.live_nodes()
    ) {
        Ok(read) => read,
        Err(e) => return cfg_problem(e),
    };
    let plans: Vec<IndexPlan> = plans.items.into_iter().map(|p| p.value).collect();
    let nodes: BTreeMap<String, NodeDef> = nodes
        .items
        .into_iter()
        .map(|n| (n.value.uuid.clone(), n.value))
        .collect();
    let live: BTreeSet<String> = live.items.into_iter().map(|l| l.value.uuid).collect();
    let found = plans.iter().find_map(|plan| {
        let def = defs.items.iter().find(|d| d.value.name == plan.index)?;
        explain(&query.pindex, &def.value, plan, &plans, &nodes, &live)
    });
    match found {
        Some(answer) => Json(answer).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            format!("no PIndex `{}` in any plan", query.pindex),
            Some("pindex"),
        ),
    }
}
