//! `GET /api/node/status`: what bounds how many PIndexes this node can host, and how close it
//! is — PIndexes running, the indexing pool's use of its limits (memory budget, writers open
//! and waiting, blocking threads), and the process's threads, open files and resident memory.
//! One node's figures, read locally (no Cfg, no peer): it answers while the Cfg is down.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::AppState;

pub async fn node_status(State(state): State<AppState>) -> Json<Value> {
    let (running, known) = state
        .board
        .lock()
        .map(|b| (b.values().filter(|s| s.is_running()).count(), b.len()))
        .unwrap_or_default();
    let indexing = state.indexing.as_ref().map(|p| {
        let limits = p.limits();
        json!({"usage": p.usage(), "writer_idle_ms": limits.writer_idle.as_millis() as u64})
    });
    Json(json!({
        "node": state.node_uuid,
        "incarnation": state.incarnation,
        "pindexes": {"running": running, "known": known},
        "indexing": indexing,
        "process": process(),
    }))
}

/// This process's threads, open files and resident bytes (Linux `/proc`; nulls elsewhere).
fn process() -> Value {
    let f = tessera_telemetry::process::figures();
    json!({
        "threads": f.threads,
        "open_files": f.open_fds,
        "resident_bytes": f.resident_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_figures_are_read() {
        let p = process();
        assert!(p["threads"].as_u64().is_some_and(|t| t >= 1), "{p}");
        assert!(p["open_files"].as_u64().is_some_and(|f| f >= 3), "{p}");
        assert!(p["resident_bytes"].as_u64().is_some_and(|r| r > 0), "{p}");
    }
}
