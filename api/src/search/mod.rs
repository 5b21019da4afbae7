//! Search across the cluster: `POST /api/index/{name}/query` (and `tessera.v1.Search/Query`).
//!
//! The node asked coordinates: it validates the request against the index's mapping (bad
//! queries fail here, before any node is asked), picks one readable copy per PIndex
//! (`tessera_search::route`), runs the two phases of exact scoring over the nodes holding
//! them ([`scatter`]; its own PIndexes are called directly, not over the network), merges
//! the top hits and says exactly which PIndexes answered. A per-node cap on concurrent queries
//! answers 429 past it rather than queueing without bound.

pub mod grpc;
mod observe;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tessera_cfg::schema::IndexDef;
use tessera_coord::{scatter, View};
use tessera_index::mapping::Mapping;
use tessera_search::dsl::Target;
use tracing::Instrument;

use crate::problem::{cfg_problem, problem, search_problem, view_problem};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/index/{name}/query", post(query))
}

/// The index definition, if it can be queried now.
async fn queryable(
    state: &AppState,
    name: &str,
    fresh: tessera_coord::Freshness,
) -> Result<IndexDef, Response> {
    let def = match state.coord.index_def(name, fresh).await {
        Ok(Some(def)) => def,
        Ok(None) => {
            return Err(problem(
                StatusCode::NOT_FOUND,
                format!("no index `{name}`"),
                None,
            ))
        }
        Err(e) => return Err(cfg_problem(e)),
    };
    if def.controls.query_disallowed {
        return Err(problem(
            StatusCode::FORBIDDEN,
            format!("queries are disallowed on index `{name}` (queryControl/allow)"),
            None,
        ));
    }
    if def.index_type != "fulltext" {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            format!(
                "index `{name}` is of type `{}`, which cannot be searched",
                def.index_type
            ),
            None,
        ));
    }
    Ok(def)
}

/// The seqs an `at_plus` query waits for, by source partition.
async fn wanted_seqs(
    state: &AppState,
    def: &IndexDef,
    parsed: &tessera_search::request::Parsed,
) -> Result<BTreeMap<u32, u64>, Response> {
    let Some(vectors) = &parsed.at_plus else {
        return Ok(BTreeMap::new());
    };
    if let Some(p) = vectors.keys().find(|p| **p >= def.source.partitions()) {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            format!(
                "source `{}` has partitions 0..{}; there is no partition {p}",
                def.source.name,
                def.source.partitions()
            ),
            Some(&format!("consistency.vectors.{p}")),
        ));
    }
    if !parsed.wait_for_source {
        return Ok(vectors.clone());
    }
    let source = state.source(def).await.map_err(|e| {
        problem(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("at_plus: {e}"),
            None,
        )
    })?;
    match source.partitions().await {
        Ok(listed) => Ok(tessera_sources::highs(&listed)),
        Err(e) => Err(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "at_plus: cannot read the high seqs of {}: {e}",
                source.describe()
            ),
            None,
        )),
    }
}

/// The index's view. An `at_plus` query waits (within its deadline) until the index is planned
/// and every PIndex has a copy that can serve: "wait until what was written is searchable"
/// includes an index created a moment ago whose copies are still being built.
async fn settled_view(
    state: &AppState,
    name: &str,
    fresh: tessera_coord::Freshness,
    deadline: tokio::time::Instant,
) -> Result<View, Response> {
    let wait = fresh != tessera_coord::Freshness::Mirror;
    let mut pause = Duration::from_millis(20);
    loop {
        let view = state.coord.view(name, fresh).await.map_err(view_problem)?;
        if !wait || view.covers_all() || tokio::time::Instant::now() + pause >= deadline {
            return Ok(view);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

pub async fn query(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Option<axum::Extension<crate::access::Caller>>,
    body: Bytes,
) -> Response {
    let mut record = observe::QueryRecord::start();
    let caller = caller.as_deref();
    let response = coordinate(&state, &name, caller, &body, &mut record).await;
    record.finish(response, &body, state.slow_query)
}

async fn coordinate(
    state: &AppState,
    name: &str,
    caller: Option<&crate::access::Caller>,
    body: &Bytes,
    record: &mut observe::QueryRecord,
) -> Response {
    let started = record.started();
    let Some(_permit) = state.coord.search.try_slot() else {
        let body = json!({"error": format!(
            "this node is running its limit of {} concurrent queries; retry shortly or ask another node",
            state.coord.search.max_concurrent()
        )});
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            Json(body),
        )
            .into_response();
    };
    let parsed = match tessera_search::request::parse(body) {
        Ok(parsed) => parsed,
        Err(e) => return search_problem(e),
    };
    // An `at_plus` query sees the cluster at least as of now; others route from the mirror.
    let fresh = state.coord.freshness(parsed.at_plus.is_some()).await;
    let def = match queryable(state, name, fresh).await {
        Ok(def) => def,
        Err(response) => return response,
    };
    // The documents are the source's: the caller must be allowed to read it too.
    if let Err(response) = crate::access::tenancy::may_read_documents(&state.access, caller, &def) {
        return response;
    }
    record.known(name);
    let mapping = match Mapping::from_params(&def.params) {
        Ok(mapping) => mapping,
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    };
    if let Err(e) = Target::for_mapping(&mapping).build(&parsed.request.query, "query") {
        return search_problem(e);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(parsed.request.timeout_ms);
    // The seqs first: `at_plus` means "what the source has now", whatever the wait below takes.
    let at_plus = match wanted_seqs(state, &def, &parsed).await {
        Ok(seqs) => seqs,
        Err(response) => return response,
    };
    let view = match settled_view(state, name, fresh, deadline).await {
        Ok(view) => view,
        Err(response) => return response,
    };
    if view.plan.pindexes.is_empty() {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("index `{name}` is not planned yet; retry shortly"),
            None,
        );
    }
    // Nodes being failed over gracefully serve only when nothing else can.
    let mut avoid = state.coord.search.suspects();
    avoid.extend(view.no_reads.iter().cloned());
    let total = view.plan.pindexes.len();
    let request = &parsed.request;
    let mut scatter = scatter::Scatter {
        coord: &state.coord,
        view,
        avoid,
        prefer: request.prefer,
        turn: state.coord.search.next_turn(),
        query_json: serde_json::to_string(&request.query).unwrap_or_default(),
        at_plus,
        deadline,
    };
    let mut outcome = scatter::Outcome::default();
    let phase = Instant::now();
    let (stats, assigned) = scatter
        .stats(name, &mut outcome)
        .instrument(tracing::info_span!("statistics", index = name))
        .await;
    record.phase("statistics", phase.elapsed());
    let window = request.from + request.size;
    let phase = Instant::now();
    scatter
        .search(
            name,
            &stats,
            assigned,
            window,
            request.fields.as_deref(),
            &mut outcome,
        )
        .instrument(tracing::info_span!("search", index = name))
        .await;
    record.phase("search", phase.elapsed());
    if !outcome.errors.is_empty() {
        record.partial();
    }
    let phase = Instant::now();
    let response = answer(&parsed, total, outcome, started);
    record.phase("merge", phase.elapsed());
    response
}

/// The JSON answer, and its status: 200 unless PIndexes failed and the request did not allow
/// partial results (504 when they only fell short of `at_plus` seqs, 503 otherwise).
fn answer(
    parsed: &tessera_search::request::Parsed,
    total: usize,
    outcome: scatter::Outcome,
    started: Instant,
) -> Response {
    let request = &parsed.request;
    let failed = outcome.errors.len();
    let hits = tessera_search::merge::merge(vec![outcome.hits], request.from, request.size);
    let max_score = hits.first().map(|h| h.score);
    let errors: serde_json::Map<String, Value> = outcome
        .errors
        .iter()
        .map(|(p, e)| (p.clone(), json!(e.message)))
        .collect();
    let mut body = json!({
        "total_hits": outcome.total_hits,
        "max_score": max_score,
        "hits": hits.iter().map(|h| json!({"id": h.id, "score": h.score, "fields": h.fields(), "pindex": h.pindex})).collect::<Vec<_>>(),
        "status": {"total": total, "successful": total - failed, "failed": failed, "errors": errors},
        "took_ms": started.elapsed().as_secs_f64() * 1000.0,
    });
    if !parsed.warnings.is_empty() {
        body["warnings"] = json!(parsed.warnings);
    }
    if failed == 0 || request.allow_partial_results {
        return (StatusCode::OK, Json(body)).into_response();
    }
    let behind: BTreeMap<String, Value> = outcome
        .errors
        .values()
        .flat_map(|e| e.behind.iter())
        .map(|b| {
            (
                b.partition.to_string(),
                json!({"reached": b.reached, "wanted": b.wanted}),
            )
        })
        .collect();
    let only_behind = outcome.errors.values().all(|e| !e.behind.is_empty());
    let (status, message) = if only_behind {
        let partitions: Vec<&String> = behind.keys().collect();
        (
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "at_plus: source partitions {partitions:?} did not reach the wanted seqs within timeout_ms"
            ),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{failed} of {total} PIndexes could not answer (set allow_partial_results to get the rest)"
            ),
        )
    };
    // An error answer carries no hits: incomplete data must not pass for an answer.
    if let Some(body) = body.as_object_mut() {
        for key in ["hits", "total_hits", "max_score"] {
            body.remove(key);
        }
    }
    body["error"] = json!(message);
    if !behind.is_empty() {
        body["behind"] = json!(behind);
    }
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bounds;
