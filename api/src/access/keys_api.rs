//! `/api/keys`: API keys made, listed and revoked (admin only, by the permission table). The
//! secret is in the answer to the create call and nowhere else; the Cfg keeps its keyed hash.
//! A revoked key stays listed (with when), so the audit log's `key:<id>` still names it.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tessera_auth::key::{self, KeyRecord};
use tessera_auth::Role;

use crate::problem::{cfg_problem, parse_body, problem};
use crate::AppState;

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/api/keys", get(list).post(create))
        .route("/api/keys/{id}", delete(revoke))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: String,
    roles: Vec<String>,
    /// `30d`, `12h`, `90m`, `45s`; none: the key does not expire.
    #[serde(default)]
    expires: Option<String>,
}

async fn create(State(state): State<AppState>, body: Bytes) -> Response {
    let ask: CreateKey = match parse_body(&body) {
        Ok(ask) => ask,
        Err(response) => return response,
    };
    if ask.roles.is_empty() {
        return bad("roles", "a key needs at least one role".into());
    }
    let mut roles = Vec::with_capacity(ask.roles.len());
    for (i, text) in ask.roles.iter().enumerate() {
        match text.parse::<Role>() {
            Ok(Role::Node) => {
                return bad(
                    &format!("roles[{i}]"),
                    "the node role belongs to the cluster's nodes, which make their own keys"
                        .into(),
                )
            }
            Ok(role) => roles.push(role),
            Err(e) => return bad(&format!("roles[{i}]"), e.to_string()),
        }
    }
    let now = tessera_cfg::unix_ms();
    let expires_ms = match ask.expires.as_deref().map(key::parse_duration_ms) {
        None => None,
        Some(Some(ms)) => Some(now.saturating_add(ms)),
        Some(None) => {
            return bad(
                "expires",
                "a positive duration with its unit: 45s, 90m, 12h, 30d".into(),
            )
        }
    };
    let (token, record) = match key::make(&ask.name, &roles, now, expires_ms) {
        Ok(made) => made,
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    };
    if let Err(e) = state.cfg.put_api_key(&record, 0).await {
        return cfg_problem(e);
    }
    tracing::info!(key = record.id, name = record.name, roles = ?record.roles, "API key created");
    let mut body = shown(&record, now);
    body["key"] = json!(token);
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn list(State(state): State<AppState>) -> Response {
    match state.cfg.api_keys().await {
        Ok(keys) => {
            let now = tessera_cfg::unix_ms();
            let keys: Vec<_> = keys.items.iter().map(|k| shown(&k.value, now)).collect();
            Json(json!({ "keys": keys })).into_response()
        }
        Err(e) => cfg_problem(e),
    }
}

async fn revoke(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    loop {
        let current = match state.cfg.api_key(&id).await {
            Ok(Some(current)) => current,
            Ok(None) => return problem(StatusCode::NOT_FOUND, format!("no API key `{id}`"), None),
            Err(e) => return cfg_problem(e),
        };
        let now = tessera_cfg::unix_ms();
        if current.value.revoked_ms.is_some() {
            return Json(shown(&current.value, now)).into_response();
        }
        let revoked = KeyRecord {
            revoked_ms: Some(now),
            ..current.value
        };
        match state.cfg.put_api_key(&revoked, current.revision).await {
            Ok(_) => {
                tracing::info!(key = id, "API key revoked");
                return Json(shown(&revoked, now)).into_response();
            }
            Err(tessera_cfg::CfgError::CasMismatch { .. }) => continue,
            Err(e) => return cfg_problem(e),
        }
    }
}

/// A key as the API shows it: never its salt or hash.
fn shown(record: &KeyRecord, now_ms: u64) -> serde_json::Value {
    let state = if record.revoked_ms.is_some() {
        "revoked"
    } else if record.expires_ms.is_some_and(|at| now_ms >= at) {
        "expired"
    } else {
        "active"
    };
    json!({
        "id": record.id,
        "name": record.name,
        "roles": record.roles,
        "created_ms": record.created_ms,
        "expires_ms": record.expires_ms,
        "revoked_ms": record.revoked_ms,
        "state": state,
    })
}

fn bad(field: &str, reason: String) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        format!("`{field}`: {reason}"),
        Some(field),
    )
}
