//! The supervisor API: `GET /api/ctl/topology`, `POST /api/ctl/topology-change` (rebalance,
//! failover-hard, failover-graceful, drain, swap; `dry_run` answers what would move), `GET
//! /api/ctl/tasks[/{id}]` and `POST /api/ctl/tasks/{id}/cancel`. A change is accepted by
//! writing, in one transaction, the task, the lock naming it (a second change is refused while
//! it runs) and the node definitions it changes; the planner leader carries it out and reports
//! progress in the task. Cancelling puts the node definitions back, so moves under way roll
//! back to where they came from.

mod change;
mod grpc;

pub use grpc::SupervisorService;

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tessera_cfg::schema::Document;
use tessera_cfg::schema::{
    self, ClusterControl, CopyRole, NodeDef, RecoveryStatus, TaskProgress, TaskStatus,
    TopologyLock, TopologyTask,
};
use tessera_cfg::store::{Compare, Op, Txn};

use crate::problem::{cfg_problem, parse_body, problem, refused};
use crate::AppState;
use change::ChangeRequest;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/ctl/topology", get(topology))
        .route("/api/ctl/topology-change", post(topology_change))
        .route("/api/ctl/tasks", get(tasks))
        .route("/api/ctl/tasks/{id}", get(task))
        .route("/api/ctl/tasks/{id}/cancel", post(cancel))
        .route("/api/ctl/freeze", post(freeze))
        .route("/api/ctl/unfreeze", post(unfreeze))
        .route("/api/ctl/failover/ack", post(acknowledge))
}

/// `known` (defined, not wanted), `wanted`, or `failed` (failed over, or not live).
fn node_state(def: &NodeDef, live: bool) -> &'static str {
    if def.failed_over || !live {
        "failed"
    } else if def.wanted {
        "wanted"
    } else {
        "known"
    }
}

pub async fn topology(State(state): State<AppState>) -> Response {
    let (nodes, live, plans) = match tokio::try_join!(
        state.cfg.node_defs(),
        state.cfg.live_nodes(),
        state.cfg.plans()
    ) {
        Ok(read) => read,
        Err(e) => return cfg_problem(e),
    };
    let live: std::collections::BTreeSet<String> =
        live.items.iter().map(|l| l.value.uuid.clone()).collect();
    let mut copies: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for plan in &plans.items {
        for p in &plan.value.pindexes {
            for c in &p.copies {
                let entry = copies.entry(c.node.as_str()).or_default();
                entry.0 += 1;
                if c.role == CopyRole::Primary {
                    entry.1 += 1;
                }
            }
        }
    }
    let control = match state
        .cfg
        .get_doc::<ClusterControl>(&state.cfg.keys().control())
        .await
    {
        Ok(c) => c.map(|c| c.value).unwrap_or_default(),
        Err(e) => return cfg_problem(e),
    };
    let rev = nodes.revision.max(plans.revision);
    let list: Vec<Value> = nodes
        .items
        .iter()
        .map(|n| {
            let d = &n.value;
            let (held, primaries) = copies.get(d.uuid.as_str()).copied().unwrap_or_default();
            json!({"uuid": d.uuid, "host_port": d.host_port, "state": node_state(d, live.contains(&d.uuid)),
                   "live": live.contains(&d.uuid), "wanted": d.wanted, "failed_over": d.failed_over,
                   "reads": d.reads, "group": d.group, "weight": d.weight, "tags": d.tags,
                   "copies": held, "primaries": primaries})
        })
        .collect();
    Json(json!({"rev": rev, "nodes": list, "frozen": control.frozen, "frozen_reason": control.frozen_reason,
                "auto_failovers": control.auto_failovers, "auto_failed_nodes": control.auto_failed_nodes}))
    .into_response()
}

/// Changes the cluster control document under CAS (retrying a lost race).
async fn update_control(state: &AppState, change: impl Fn(&mut ClusterControl)) -> Response {
    let key = state.cfg.keys().control();
    loop {
        let current = match state.cfg.get_doc::<ClusterControl>(&key).await {
            Ok(c) => c,
            Err(e) => return cfg_problem(e),
        };
        let mut next = current
            .as_ref()
            .map(|c| c.value.clone())
            .unwrap_or(ClusterControl {
                format_version: ClusterControl::FORMAT_VERSION,
                ..ClusterControl::default()
            });
        change(&mut next);
        let cas = current.as_ref().map_or(0, |c| c.revision);
        match state.cfg.put_doc(&key, &next, cas, None).await {
            Ok(_) => return Json(json!({"control": next})).into_response(),
            Err(
                tessera_cfg::CfgError::CasMismatch { .. }
                | tessera_cfg::CfgError::AlreadyExists { .. },
            ) => continue,
            Err(e) => return cfg_problem(e),
        }
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FreezeRequest {
    #[serde(default)]
    reason: String,
}

/// Maintenance: no new targets and no new moves; moves under way finish.
pub async fn freeze(State(state): State<AppState>, body: Bytes) -> Response {
    let request: FreezeRequest = if body.is_empty() {
        FreezeRequest::default()
    } else {
        match parse_body(&body) {
            Ok(r) => r,
            Err(response) => return response,
        }
    };
    update_control(&state, |c| {
        c.frozen = true;
        c.frozen_reason = request.reason.clone();
    })
    .await
}

pub async fn unfreeze(State(state): State<AppState>) -> Response {
    update_control(&state, |c| {
        c.frozen = false;
        c.frozen_reason.clear();
    })
    .await
}

/// Acknowledges the automatic failovers so far: the count starts again from zero.
pub async fn acknowledge(State(state): State<AppState>) -> Response {
    update_control(&state, |c| {
        c.auto_failovers = 0;
        c.auto_failed_nodes.clear();
    })
    .await
}

pub async fn topology_change(State(state): State<AppState>, body: Bytes) -> Response {
    let request: ChangeRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(response) => return response,
    };
    let lock_key = state.cfg.keys().topology_lock();
    let (nodes, indexes, lock) = match tokio::try_join!(
        state.cfg.node_defs(),
        state.cfg.index_defs(),
        state.cfg.get_doc::<TopologyLock>(&lock_key)
    ) {
        Ok(read) => read,
        Err(e) => return cfg_problem(e),
    };
    if let Some(lock) = &lock {
        return problem(
            StatusCode::CONFLICT,
            format!(
                "topology task `{}` is running; wait for it or cancel it first",
                lock.value.task
            ),
            None,
        );
    }
    let revisions: BTreeMap<String, tessera_cfg::Revision> = nodes
        .items
        .iter()
        .map(|n| (n.value.uuid.clone(), n.revision))
        .collect();
    let defs: BTreeMap<String, NodeDef> = nodes
        .items
        .into_iter()
        .map(|n| (n.value.uuid.clone(), n.value))
        .collect();
    let index_defs: Vec<_> = indexes.items.into_iter().map(|d| d.value).collect();
    let changed = match change::apply(&request, &defs, &index_defs) {
        Ok(changed) => changed,
        Err(r) => return refused(&r.field, &r.message),
    };
    let recovery_lock = match recovery_guard(&state, &changed).await {
        Ok(revision) => revision,
        Err(response) => return response,
    };
    if request.dry_run {
        return dry_run(&state, &changed).await;
    }
    let now = tessera_cfg::unix_ms();
    let task = TopologyTask {
        format_version: TopologyTask::FORMAT_VERSION,
        id: format!("t{now}-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]),
        kind: request.kind,
        status: TaskStatus::Running,
        keep_nodes: request.keep_nodes.clone(),
        eject_nodes: request.eject_nodes.clone(),
        before: changed
            .keys()
            .map(|u| (u.clone(), change::before(&defs[u])))
            .collect(),
        created_ms: now,
        updated_ms: now,
        progress: TaskProgress::default(),
        errors: Vec::new(),
        summary: None,
    };
    let keys = state.cfg.keys();
    let lock = TopologyLock {
        format_version: TopologyLock::FORMAT_VERSION,
        task: task.id.clone(),
    };
    let mut txn = Txn::new()
        .when(Compare::ModRevision {
            key: keys.topology_lock(),
            revision: 0,
        })
        // A recovery begun since it was checked would have to be checked again.
        .when(Compare::ModRevision {
            key: keys.recovery_lock(),
            revision: recovery_lock,
        })
        .then(Op::Put {
            key: keys.topology_lock(),
            value: schema::encode(&lock),
            lease: None,
        })
        .then(Op::Put {
            key: keys.task(&task.id),
            value: schema::encode(&task),
            lease: None,
        });
    for (uuid, def) in &changed {
        let key = keys.node_def(uuid);
        txn = txn
            .when(Compare::ModRevision {
                key: key.clone(),
                revision: revisions[uuid],
            })
            .then(Op::Put {
                key,
                value: schema::encode(def),
                lease: None,
            });
    }
    match state.cfg.store().txn(txn).await {
        Ok(outcome) if outcome.succeeded => {
            tracing::info!(task = task.id, kind = ?task.kind, "topology change accepted");
            (StatusCode::ACCEPTED, Json(json!({"task": task.id, "status": "running"}))).into_response()
        }
        Ok(_) => problem(
            StatusCode::CONFLICT,
            "the topology changed while the request was checked (another change, or a node restarted); try again",
            None,
        ),
        Err(e) => cfg_problem(e),
    }
}

/// While a recovery runs, a change that would move a copy of an index it covers is refused
/// (409 naming the recovery): its recovering copies stay where the recovery found them. Answers
/// the recovery lock's revision as read (0: none), for the write to check.
async fn recovery_guard(
    state: &AppState,
    changed: &BTreeMap<String, NodeDef>,
) -> Result<tessera_cfg::Revision, Response> {
    use tessera_planner::service::what_if;
    let lock = state.cfg.recovery_lock().await.map_err(cfg_problem)?;
    let Some(lock) = lock else { return Ok(0) };
    let named = state.cfg.recovery(&lock.value.recovery).await;
    let running = named
        .map_err(cfg_problem)?
        .filter(|r| r.value.status == RecoveryStatus::Running);
    let Some(recovery) = running else {
        return Ok(lock.revision);
    };
    let mut gathered = tessera_planner::service::inputs::gather(&state.cfg)
        .await
        .map_err(cfg_problem)?;
    // What the change would move were the recovery's indexes not pinned: while it runs the
    // planner holds their copies, so the change would wait on them.
    gathered.pinned.clear();
    let covered: std::collections::BTreeSet<&str> = recovery
        .value
        .indexes
        .iter()
        .filter_map(|i| gathered.plans.get(i))
        .flat_map(|p| p.value.pindexes.iter().map(|pi| pi.name.as_str()))
        .collect();
    let change = what_if::Change {
        changed: changed.clone(),
        ..what_if::Change::default()
    };
    let out = what_if::what_if(&gathered, &change)
        .map_err(|e| problem(StatusCode::CONFLICT, e.to_string(), None))?;
    if let Some(m) = out
        .moves
        .iter()
        .find(|m| covered.contains(m.pindex.as_str()))
    {
        let message = format!(
            "recovery `{}` is running over {}; this change would move PIndex {} (end or abort the recovery first)",
            recovery.value.id,
            recovery.value.indexes.join(", "),
            m.pindex
        );
        let body = json!({"error": message, "recovery": recovery.value.id});
        return Err((StatusCode::CONFLICT, Json(body)).into_response());
    }
    Ok(lock.revision)
}

/// What the change would move: the planner's what-if (the leader's inputs and failed-node
/// rule, the planner's moves), per node.
async fn dry_run(state: &AppState, changed: &BTreeMap<String, NodeDef>) -> Response {
    use tessera_planner::service::what_if;
    let gathered = match tessera_planner::service::inputs::gather(&state.cfg).await {
        Ok(g) => g,
        Err(e) => return cfg_problem(e),
    };
    let change = what_if::Change {
        changed: changed.clone(),
        ..what_if::Change::default()
    };
    let out = match what_if::what_if(&gathered, &change) {
        Ok(out) => out,
        Err(e) => return problem(StatusCode::CONFLICT, e.to_string(), None),
    };
    let per_node: BTreeMap<String, Value> = what_if::per_node(&out.moves)
        .into_iter()
        .map(|(n, (i, o))| (n, json!({"in": i, "out": o})))
        .collect();
    let warnings: Vec<&str> = out.warnings.iter().map(|w| w.message.as_str()).collect();
    Json(
        json!({"dry_run": true, "possible": true, "copies_to_build": out.stats.copies_added,
                "per_node": per_node, "moves": out.moves, "nodes": changed,
                "warnings": warnings}),
    )
    .into_response()
}

pub async fn tasks(State(state): State<AppState>) -> Response {
    match state
        .cfg
        .list_docs::<TopologyTask>(&state.cfg.keys().tasks())
        .await
    {
        Ok(list) => {
            let mut tasks: Vec<TopologyTask> = list.items.into_iter().map(|t| t.value).collect();
            tasks.sort_by_key(|t| std::cmp::Reverse(t.created_ms));
            // Backup and restore jobs are tasks too, of their own shape.
            let mut jobs: Vec<tessera_cfg::schema::BackupJob> = match state.cfg.backup_jobs().await
            {
                Ok(jobs) => jobs.items.into_iter().map(|j| j.value).collect(),
                Err(e) => return cfg_problem(e),
            };
            jobs.sort_by_key(|j| std::cmp::Reverse(j.created_ms));
            Json(json!({"tasks": tasks, "backup_jobs": jobs})).into_response()
        }
        Err(e) => cfg_problem(e),
    }
}

pub async fn task(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state
        .cfg
        .get_doc::<TopologyTask>(&state.cfg.keys().task(&id))
        .await
    {
        Ok(Some(task)) => Json(json!({"task": task.value})).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, format!("no task `{id}`"), None),
        Err(e) => cfg_problem(e),
    }
}

/// Puts the node definitions back as the task found them, then closes the task and frees the
/// lock. Copies being built for the change are dropped; copies being replaced serve on.
pub async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    // Read, decide, then write everything in one transaction on the revisions read: a task
    // that completes (or a node that restarts) in between makes the write fail and the cancel
    // look again, instead of restoring definitions after the task is over.
    for _ in 0..CANCEL_ATTEMPTS {
        match try_cancel(&state, &id).await {
            Ok(Some(task)) => return Json(json!({"task": task})).into_response(),
            Ok(None) => continue,
            Err(response) => return response,
        }
    }
    problem(
        StatusCode::CONFLICT,
        format!("task `{id}` kept changing while it was cancelled; try again"),
        None,
    )
}

/// How often a cancel re-reads after losing a race before it gives up (409).
const CANCEL_ATTEMPTS: usize = 5;

/// One attempt: the cancelled task, or `None` when something changed since it was read.
async fn try_cancel(state: &AppState, id: &str) -> Result<Option<TopologyTask>, Response> {
    let cfg = &state.cfg;
    let key = cfg.keys().task(id);
    let current = match cfg.get_doc::<TopologyTask>(&key).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Err(problem(
                StatusCode::NOT_FOUND,
                format!("no task `{id}`"),
                None,
            ))
        }
        Err(e) => return Err(cfg_problem(e)),
    };
    if current.value.status != TaskStatus::Running {
        return Err(problem(
            StatusCode::CONFLICT,
            format!("task `{id}` is {:?}, not running", current.value.status).to_lowercase(),
            None,
        ));
    }
    let mut task = current.value.clone();
    task.status = TaskStatus::Cancelled;
    task.updated_ms = tessera_cfg::unix_ms();
    task.summary = Some(format!(
        "cancelled at {:.0}%: node definitions restored; moves under way roll back",
        task.progress.percent
    ));
    let mut write = match cfg.fenced().put(&key, &task, current.revision) {
        Ok(write) => write,
        Err(e) => return Err(cfg_problem(e)),
    };
    for (uuid, before) in &current.value.before {
        let def = match cfg.node_def(uuid).await {
            Ok(Some(d)) => d,
            Ok(None) => continue,
            Err(e) => return Err(cfg_problem(e)),
        };
        let mut node = def.value.clone();
        node.wanted = before.wanted;
        node.set_failed_over(before.failed_over);
        node.reads = before.reads;
        write = match write.put(&cfg.keys().node_def(uuid), &node, def.revision) {
            Ok(write) => write,
            Err(e) => return Err(cfg_problem(e)),
        };
    }
    let write = match cfg.releasing_lock(write, id).await {
        Ok(write) => write,
        Err(e) => return Err(cfg_problem(e)),
    };
    match write.commit(cfg).await {
        Ok(true) => Ok(Some(task)),
        Ok(false) => Ok(None),
        Err(e) => Err(cfg_problem(e)),
    }
}

#[cfg(test)]
mod race_tests;
