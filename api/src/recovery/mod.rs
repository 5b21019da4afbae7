//! The recovery API: `POST /api/ctl/recovery` (begin, or a dry run: what is missing and where
//! its data will come from), `GET /api/ctl/recovery[/{id}]`, and `POST
//! /api/ctl/recovery/{id}/{commit|end|abort}`. A recovery is a document in the Cfg
//! (`tessera_cfg::schema::Recovery`); its rules are `tessera_recovery::machine`'s. Janitors
//! write their PIndexes' steps into the same document, so every operator step here is a
//! read-modify-write under CAS, retried when a janitor's step landed in between.
//! `GET|PUT /api/ctl/recovery/auto` is the cluster's automatic recovery ([`auto`]).

mod auto;
mod begin;

pub use auto::run as run_automatic;
pub use begin::begin;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_cfg::schema::Recovery;
use tessera_recovery::machine::{self, RecoveryError};

use crate::problem::{cfg_problem, parse_body, problem};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/ctl/recovery", post(begin).get(list))
        .route("/api/ctl/recovery/auto", get(auto::show).put(auto::set))
        .route("/api/ctl/recovery/{id}", get(show))
        .route("/api/ctl/recovery/{id}/commit", post(commit))
        .route("/api/ctl/recovery/{id}/end", post(end))
        .route("/api/ctl/recovery/{id}/abort", post(abort))
}

/// A recovery as the API shows it: the document, what is missing per index, and progress.
pub fn shown(r: &Recovery, now_ms: u64) -> Value {
    let mut missing: serde_json::Map<String, Value> = serde_json::Map::new();
    for (name, p) in &r.pindexes {
        let entry = json!({"pindex": name, "node": p.node, "state": p.state, "from": p.from,
            "bytes": p.bytes_total, "bytes_done": p.bytes_done, "rebuild": p.rebuild,
            "committed": p.committed, "undo": p.undo, "reason": p.reason});
        if let Some(list) = missing
            .entry(p.index.clone())
            .or_insert_with(|| json!([]))
            .as_array_mut()
        {
            list.push(entry);
        }
    }
    json!({"id": r.id, "status": r.status, "from": r.from, "indexes": r.indexes,
        "missing": missing, "progress": machine::progress(r, now_ms),
        "created_ms": r.created_ms, "updated_ms": r.updated_ms, "summary": r.summary,
        "auto": r.auto})
}

pub async fn list(State(state): State<AppState>) -> Response {
    let now = tessera_cfg::unix_ms();
    match state.cfg.recoveries().await {
        Ok(all) => {
            let shown: Vec<Value> = all.items.iter().map(|r| shown(&r.value, now)).collect();
            Json(json!({"recoveries": shown})).into_response()
        }
        Err(e) => cfg_problem(e),
    }
}

pub async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.cfg.recovery(&id).await {
        Ok(Some(r)) => Json(shown(&r.value, tessera_cfg::unix_ms())).into_response(),
        Ok(None) => unknown(&id),
        Err(e) => cfg_problem(e),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CommitRequest {
    /// PIndex names; every recovered one when absent.
    #[serde(default)]
    pindexes: Option<Vec<String>>,
}

pub async fn commit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let request: CommitRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CommitRequest::default()
    } else {
        match parse_body(&body) {
            Ok(r) => r,
            Err(answer) => return answer,
        }
    };
    let named = request.pindexes.as_deref();
    update(&state, &id, |r, now| {
        machine::commit(r, named, now).map(|done| json!({"committed": done}))
    })
    .await
}

pub async fn end(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    update(&state, &id, |r, now| {
        machine::end(r, now).map(|handed| json!({"handed_to_planner": handed}))
    })
    .await
}

pub async fn abort(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    update(&state, &id, |r, now| {
        machine::abort(r, now).map(|()| json!({}))
    })
    .await
}

/// How often an operator step re-reads after a janitor's step landed in between.
const ATTEMPTS: usize = 20;

/// Applies `step` to recovery `id` and writes it under CAS (re-reading on a lost race); the
/// answer is the step's own JSON merged into the recovery as shown.
async fn update(
    state: &AppState,
    id: &str,
    step: impl Fn(&mut Recovery, u64) -> Result<Value, RecoveryError>,
) -> Response {
    for _ in 0..ATTEMPTS {
        let current = match state.cfg.recovery(id).await {
            Ok(Some(r)) => r,
            Ok(None) => return unknown(id),
            Err(e) => return cfg_problem(e),
        };
        let now = tessera_cfg::unix_ms();
        let mut r = current.value.clone();
        let said = match step(&mut r, now) {
            Ok(said) => said,
            Err(e) => return refusal(&e),
        };
        let written = if r == current.value {
            Ok(true)
        } else {
            state.cfg.put_recovery(&r, current.revision).await
        };
        match written {
            Ok(true) => {
                let mut body = shown(&r, now);
                if let (Some(body), Some(said)) = (body.as_object_mut(), said.as_object()) {
                    body.extend(said.clone());
                }
                return Json(body).into_response();
            }
            Ok(false) => continue,
            Err(e) => return cfg_problem(e),
        }
    }
    problem(
        StatusCode::CONFLICT,
        format!("recovery `{id}` kept changing while this step was written; try again"),
        None,
    )
}

fn refusal(e: &RecoveryError) -> Response {
    match e {
        RecoveryError::UnknownPIndexes(_) => {
            problem(StatusCode::BAD_REQUEST, e.to_string(), Some("pindexes"))
        }
        RecoveryError::NotRecovered(_) => {
            problem(StatusCode::CONFLICT, e.to_string(), Some("pindexes"))
        }
        RecoveryError::NotRunning { .. } => problem(StatusCode::CONFLICT, e.to_string(), None),
    }
}

fn unknown(id: &str) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        format!("no recovery `{id}`"),
        Some("id"),
    )
}
