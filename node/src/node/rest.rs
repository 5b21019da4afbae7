//! The node's REST API: ping, the Cfg dump and the node list here; the index API and queries
//! merged in from their modules. Unknown paths answer 404 with a JSON body.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tessera_cfg::{Cfg, CfgError};

#[derive(Clone)]
pub struct AppState {
    pub cfg: Cfg,
    pub node_uuid: String,
    pub incarnation: String,
    /// The local PIndexes, as the janitor last saw them.
    pub board: tessera_janitor::executor::StatusBoard,
    /// Query coordination: concurrency cap, peer connections, recently failed nodes.
    pub search: std::sync::Arc<super::query::SearchState>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/ping", get(ping))
        .route("/api/cfg", get(cfg_dump))
        .route("/api/nodes", get(nodes))
        .route("/api/cluster/health", get(super::health::cluster_health))
        .route("/api/plan/explain", get(super::explain::plan_explain))
        .merge(super::index_api::router())
        .merge(super::query::router())
        .merge(super::ctl_api::router())
        .fallback(not_found)
        .with_state(state)
}

async fn ping(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({"ok": true, "node": state.node_uuid, "incarnation": state.incarnation}))
}

async fn cfg_dump(State(state): State<AppState>) -> Response {
    match state.cfg.dump().await {
        Ok(dump) => Json(dump).into_response(),
        Err(e) => cfg_error(e),
    }
}

async fn nodes(State(state): State<AppState>) -> Response {
    let defs = match state.cfg.node_defs().await {
        Ok(defs) => defs,
        Err(e) => return cfg_error(e),
    };
    let live = match state.cfg.live_nodes().await {
        Ok(live) => live,
        Err(e) => return cfg_error(e),
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

fn cfg_error(e: CfgError) -> Response {
    let status = match e {
        CfgError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, Json(json!({"error": e.to_string()}))).into_response()
}
