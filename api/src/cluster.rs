//! The cluster routes: ping, the Cfg dump, the node list (health, explain and this node's
//! status mounted here too),
//! and the JSON 404 for unknown paths.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::problem::cfg_problem;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/ping", get(ping))
        .route("/api/cfg", get(cfg_dump))
        .route("/api/nodes", get(nodes))
        .route("/api/node/status", get(crate::node_status::node_status))
        .route("/api/cluster/health", get(crate::health::cluster_health))
        .route("/api/plan/explain", get(crate::explain::plan_explain))
}

async fn ping(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({"ok": true, "node": state.node_uuid, "incarnation": state.incarnation}))
}

async fn cfg_dump(State(state): State<AppState>) -> Response {
    match state.cfg.dump().await {
        Ok(dump) => Json(dump).into_response(),
        Err(e) => cfg_problem(e),
    }
}

async fn nodes(State(state): State<AppState>) -> Response {
    let defs = match state.cfg.node_defs().await {
        Ok(defs) => defs,
        Err(e) => return cfg_problem(e),
    };
    let live = match state.cfg.live_nodes().await {
        Ok(live) => live,
        Err(e) => return cfg_problem(e),
    };
    let nodes: Vec<_> = defs
        .items
        .into_iter()
        .map(|def| {
            let alive = live.items.iter().any(|l| l.value.uuid == def.value.uuid);
            json!({"node": def.value, "revision": def.revision, "alive": alive})
        })
        .collect();
    Json(json!({"nodes": nodes})).into_response()
}

pub async fn not_found(uri: Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "not_found", "path": uri.path()})),
    )
        .into_response()
}
