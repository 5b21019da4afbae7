//! The index REST API: create/update (CAS on `prev_index_uuid`), read, delete, count, status,
//! and the plan. Errors are 4xx with a JSON body naming the problem (and the field, when one
//! is at fault).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_cfg::schema::{self, Document, IndexDef, IndexPlan, PlanParams, SourceDef};
use tessera_cfg::CfgError;

pub mod admission;
pub mod grpc;
mod source_of_record;

use crate::access::{tenancy, Caller};
use crate::problem::{cfg_problem, parse_body, problem, unknown_index, view_problem};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/index", get(list))
        .route("/api/index/{name}", get(read).put(upsert).delete(remove))
        .route("/api/index/{name}/count", get(count))
        .route("/api/index/{name}/status", get(status))
        .route("/api/plan", get(plan))
        .route(
            "/api/index/{name}/{control}/{action}",
            axum::routing::post(control),
        )
}

/// The body of `PUT /api/index/{name}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexRequest {
    #[serde(rename = "type")]
    index_type: String,
    source: SourceDef,
    #[serde(default)]
    plan: Option<PlanParams>,
    #[serde(default)]
    params: Value,
    /// Required to update: the uuid of the definition being replaced.
    #[serde(default)]
    prev_index_uuid: Option<String>,
    /// The index's automatic recovery (`{"auto_from": ...}`).
    #[serde(default)]
    recovery: Option<tessera_cfg::schema::IndexRecovery>,
}

pub async fn list(State(state): State<AppState>) -> Response {
    match state.cfg.index_defs().await {
        Ok(defs) => {
            Json(json!({"indexes": defs.items.into_iter().map(|d| d.value).collect::<Vec<_>>()}))
                .into_response()
        }
        Err(e) => cfg_problem(e),
    }
}

pub async fn read(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    match state.cfg.index_def(&name).await {
        Ok(Some(def)) => {
            Json(json!({"index": def.value, "revision": def.revision})).into_response()
        }
        Ok(None) => unknown_index(&name),
        Err(e) => cfg_problem(e),
    }
}

pub async fn upsert(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Option<Extension<Caller>>,
    body: Bytes,
) -> Response {
    let request: IndexRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(response) => return response,
    };
    let key = state.cfg.keys().index_def(&name);
    let def = IndexDef {
        format_version: IndexDef::FORMAT_VERSION,
        name: name.clone(),
        uuid: uuid::Uuid::new_v4().simple().to_string(),
        index_type: request.index_type,
        source: request.source,
        plan: request.plan.unwrap_or_default(),
        params: request.params,
        controls: Default::default(),
        restore: None,
        recovery: request.recovery,
    };
    if let Err(e) = schema::check(&key, &def) {
        return cfg_problem(e);
    }
    // An index reads only sources its creator may read.
    if let Err(answer) = tenancy::may_define(&state.access, caller.as_deref(), &def) {
        return answer;
    }
    match admission::check(&state, &def).await {
        Ok(()) => {}
        Err(admission::Inadmissible::Field {
            status,
            field,
            message,
        }) => return problem(status, message, Some(&field)),
        Err(admission::Inadmissible::Cfg(e)) => return cfg_problem(e),
    }
    match state.cfg.node_defs().await {
        Ok(nodes) => {
            let holders = nodes
                .items
                .iter()
                .filter(|n| tessera_planner::service::inputs::eligible(&n.value))
                .count();
            if def.plan.replicas as usize + 1 > holders {
                return problem(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "{} replicas need {} nodes that hold PIndexes; the cluster has {holders}",
                        def.plan.replicas,
                        def.plan.replicas + 1
                    ),
                    Some("plan.replicas"),
                );
            }
        }
        Err(e) => return cfg_problem(e),
    }
    let current = match state.cfg.index_def(&name).await {
        Ok(current) => current,
        Err(e) => return cfg_problem(e),
    };
    let cas = match (&current, &request.prev_index_uuid) {
        (None, None) => 0,
        (None, Some(_)) => return unknown_index(&name),
        (Some(_), None) => {
            return problem(
                StatusCode::CONFLICT,
                format!("index `{name}` exists; pass its uuid as `prev_index_uuid` to update it"),
                Some("prev_index_uuid"),
            )
        }
        (Some(c), Some(prev)) if &c.value.uuid != prev => {
            return problem(
                StatusCode::CONFLICT,
                format!(
                    "`prev_index_uuid` {prev} is stale: the index is now at {}",
                    c.value.uuid
                ),
                Some("prev_index_uuid"),
            )
        }
        (Some(c), Some(_)) => c.revision,
    };
    if let Some(c) = &current {
        if let Err(answer) = tenancy::may_replace(&state.access, caller.as_deref(), &c.value) {
            return answer;
        }
    }
    // An update keeps the operator's switches, and the source recorded at create. A restored
    // index keeps its snapshot while its documents are shaped the same (type, mapping and
    // source unchanged): copies placed after the update still come from the snapshot
    // (regrouped if the partitioning changed) instead of rebuilding from the source.
    let mut def = def;
    if let Some(c) = &current {
        def.controls = c.value.controls.clone();
        let same_documents = c.value.index_type == def.index_type
            && c.value.params == def.params
            && c.value.source.name == def.source.name
            && c.value.source.source_type == def.source.source_type;
        if same_documents {
            def.restore = c.value.restore.clone();
        }
    }
    if let Err(response) =
        source_of_record::record(&state, &mut def, current.as_ref().map(|c| &c.value)).await
    {
        return response;
    }
    match state.cfg.put_index_def(&def, cas).await {
        Ok(revision) => Json(json!({"index": def, "revision": revision})).into_response(),
        Err(e) => cfg_problem(e),
    }
}

pub async fn remove(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let key = state.cfg.keys().index_def(&name);
    match state.cfg.store().delete(&key, 0).await {
        Ok(_) => Json(json!({"deleted": name})).into_response(),
        Err(CfgError::NotFound { .. }) => unknown_index(&name),
        Err(e) => cfg_problem(e),
    }
}

/// Documents in the index, routed like a query (`tessera_coord::count`): per PIndex one
/// readable copy on a live node, the primary first, another copy when a node fails.
/// `pindexes_counted` below `pindexes_total` means part of the index could not be counted; the
/// reasons are in `errors`.
pub async fn count(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Option<Extension<Caller>>,
) -> Response {
    let fresh = tessera_coord::Freshness::Mirror;
    match state.coord.index_def(&name, fresh).await {
        Ok(Some(def)) if def.controls.query_disallowed => {
            return problem(
                StatusCode::FORBIDDEN,
                format!("queries are disallowed on index `{name}` (queryControl/allow)"),
                None,
            )
        }
        Ok(Some(def)) => {
            if let Err(answer) = tenancy::may_read_documents(&state.access, caller.as_deref(), &def)
            {
                return answer;
            }
        }
        Ok(None) => {}
        Err(e) => return cfg_problem(e),
    }
    let view = match state.coord.view(&name, fresh).await {
        Ok(view) => view,
        Err(e) => return view_problem(e),
    };
    let counted = tessera_coord::count::count(&state.coord, &name, &view).await;
    Json(
        json!({"count": counted.count, "pindexes_counted": counted.counted,
                "pindexes_total": counted.total, "errors": counted.errors}),
    )
    .into_response()
}

/// Node uuid → `host:port`, from the node definitions.
async fn node_addresses(
    state: &AppState,
) -> Result<std::collections::BTreeMap<String, String>, Response> {
    match state.cfg.node_defs().await {
        Ok(nodes) => Ok(nodes
            .items
            .into_iter()
            .map(|n| (n.value.uuid, n.value.host_port))
            .collect()),
        Err(e) => Err(cfg_problem(e)),
    }
}

/// Per node, its PIndexes of `index` by name: this node's from the board, the others' over
/// gRPC (`tessera.v1.Node/LocalPIndexes`, all at once), or why they could not be asked.
async fn pindexes_on(
    state: &AppState,
    index: &str,
    addresses: &std::collections::BTreeMap<String, String>,
    nodes: impl IntoIterator<Item = String>,
) -> std::collections::BTreeMap<
    String,
    Result<std::collections::BTreeMap<String, tessera_proto::v1::LocalPIndex>, String>,
> {
    // Every node at once, under one deadline: a node that hangs costs the budget once.
    let deadline = tokio::time::Instant::now() + tessera_coord::shard::PEER_LIST_BUDGET;
    let asked = nodes.into_iter().map(|node| async move {
        let list =
            tessera_coord::shard::pindexes_on(&state.coord, addresses, &node, index, deadline)
                .await;
        let list = list.map(|l| l.into_iter().map(|p| (p.name.clone(), p)).collect());
        (node, list)
    });
    futures::future::join_all(asked).await.into_iter().collect()
}

/// Per PIndex, every copy with its node, role and state, and from the node hosting it: docs,
/// per source partition the seq reached against the source's high seq, and the last error.
pub async fn status(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let plan = match planned(&state, &name).await {
        Ok(plan) => plan,
        Err(response) => return response,
    };
    let def = match state.cfg.index_def(&name).await {
        Ok(Some(def)) => def.value,
        Ok(None) => return unknown_index(&name),
        Err(e) => return cfg_problem(e),
    };
    let addresses = match node_addresses(&state).await {
        Ok(addresses) => addresses,
        Err(response) => return response,
    };
    let covered = match coverage_of(&state, &plan).await {
        Ok(covered) => covered,
        Err(response) => return response,
    };
    let hosts: std::collections::BTreeSet<String> = plan
        .pindexes
        .iter()
        .flat_map(|p| p.copies.iter().map(|c| c.node.clone()))
        .collect();
    let hosted = pindexes_on(&state, &name, &addresses, hosts).await;
    let highs = match state.source(&def).await {
        Ok(source) => match source.partitions().await {
            Ok(listed) => Ok(tessera_sources::highs(&listed)),
            Err(e) => Err(format!("{}: {e}", source.describe())),
        },
        Err(e) => Err(e.to_string()),
    };
    let board = local_snapshot(&state);
    let pindexes: Vec<Value> = plan
        .pindexes
        .iter()
        .map(|p| {
            let copies: Vec<Value> = p
                .copies
                .iter()
                .map(|c| {
                    let mut copy = json!({"node": c.node, "role": c.role, "state": c.state, "can_read": c.can_read, "can_write": c.can_write});
                    match hosted.get(&c.node) {
                        Some(Ok(list)) => match list.get(&p.name) {
                            Some(local) => {
                                let partitions: serde_json::Map<String, Value> = p
                                    .source_partitions
                                    .iter()
                                    .map(|sp| {
                                        let high = highs.as_ref().ok().and_then(|h| h.get(sp)).copied();
                                        (sp.to_string(), json!({"seq": local.seqs.get(sp).copied().unwrap_or(0), "high_seq": high}))
                                    })
                                    .collect();
                                copy["docs"] = json!(local.docs);
                                copy["paused"] = json!(local.paused);
                                copy["partitions"] = Value::Object(partitions);
                                copy["last_error"] = if local.last_error.is_empty() { Value::Null } else { json!(local.last_error) };
                                copy["attempts"] = json!(local.attempts);
                            }
                            None => copy["last_error"] = json!("not open on its node yet"),
                        },
                        Some(Err(e)) => copy["last_error"] = json!(e),
                        None => {}
                    }
                    copy
                })
                .collect();
            json!({"name": p.name, "source_partitions": p.source_partitions, "copies": copies, "local": board.get(&p.name)})
        })
        .collect();
    let source_error = highs.err();
    Json(
        json!({"index": name, "warnings": plan.warnings, "source_error": source_error,
                "coverage": covered, "pindexes": pindexes}),
    )
    .into_response()
}

/// How much of `plan` can serve reads now, and which PIndexes are missing
/// (`tessera_planner::coverage`), from the liveness and node definitions.
#[allow(clippy::result_large_err)]
async fn coverage_of(
    state: &AppState,
    plan: &IndexPlan,
) -> Result<tessera_planner::coverage::Coverage, Response> {
    let live = state.cfg.live_nodes().await.map_err(cfg_problem)?;
    let live = live.items.into_iter().map(|l| l.value.uuid).collect();
    let nodes = state.cfg.node_defs().await.map_err(cfg_problem)?;
    let may_return = tessera_planner::coverage::may_return(nodes.items.iter().map(|n| &n.value));
    Ok(tessera_planner::coverage::coverage(
        plan,
        &live,
        &may_return,
    ))
}

/// `POST /api/index/{name}/{ingestControl|queryControl|planFreezeControl}/{action}`.
pub async fn control(
    State(state): State<AppState>,
    Path((name, control, action)): Path<(String, String, String)>,
) -> Response {
    type Switch = fn(&mut IndexDef);
    let switch: Switch = match (control.as_str(), action.as_str()) {
        ("ingestControl", "pause") => |d| d.controls.ingest_paused = true,
        ("ingestControl", "resume") => |d| d.controls.ingest_paused = false,
        // Feeds held because their source replaced its whole history drop their documents
        // and stream the new history.
        ("ingestControl", "accept-rollback") => {
            |d| d.controls.rollback_accepted_ms = tessera_cfg::unix_ms()
        }
        ("queryControl", "disallow") => |d| d.controls.query_disallowed = true,
        ("queryControl", "allow") => |d| d.controls.query_disallowed = false,
        ("planFreezeControl", "freeze") => |d| d.plan.frozen = true,
        ("planFreezeControl", "unfreeze") => |d| d.plan.frozen = false,
        _ => {
            return problem(
                StatusCode::NOT_FOUND,
                format!("unknown control `{control}/{action}` (ingestControl/pause|resume|accept-rollback, queryControl/allow|disallow, planFreezeControl/freeze|unfreeze)"),
                None,
            )
        }
    };
    // Retry on a concurrent change: a switch applies to whatever the definition is now.
    for _ in 0..5 {
        let current = match state.cfg.index_def(&name).await {
            Ok(Some(current)) => current,
            Ok(None) => return unknown_index(&name),
            Err(e) => return cfg_problem(e),
        };
        let mut def = current.value.clone();
        switch(&mut def);
        if def == current.value {
            return Json(json!({"index": def})).into_response();
        }
        match state.cfg.put_index_def(&def, current.revision).await {
            Ok(_) => return Json(json!({"index": def})).into_response(),
            Err(CfgError::CasMismatch { .. }) => continue,
            Err(e) => return cfg_problem(e),
        }
    }
    problem(
        StatusCode::CONFLICT,
        format!("index `{name}` kept changing; try again"),
        None,
    )
}

/// The local PIndexes' status as of now.
fn local_snapshot(
    state: &AppState,
) -> std::collections::BTreeMap<String, tessera_janitor::executor::LocalStatus> {
    state
        .board
        .lock()
        .map(|b| b.iter().map(|(k, v)| (k.clone(), v.snapshot())).collect())
        .unwrap_or_default()
}

/// The index's plan; an index not planned yet has an empty one; an unknown index is a 404.
#[allow(clippy::result_large_err)]
pub async fn planned(state: &AppState, name: &str) -> Result<IndexPlan, Response> {
    tessera_coord::view::planned(&state.cfg, name)
        .await
        .map_err(view_problem)
}

pub async fn plan(State(state): State<AppState>) -> Response {
    match state.cfg.plans().await {
        Ok(plans) => {
            Json(json!({"plans": plans.items.into_iter().map(|p| p.value).collect::<Vec<_>>()}))
                .into_response()
        }
        Err(e) => cfg_problem(e),
    }
}

#[cfg(test)]
mod status_tests;
