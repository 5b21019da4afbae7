//! The cluster's automatic recovery (`PUT /api/ctl/recovery/auto` `{"from": ...}`): when
//! PIndexes go missing and no recovery runs, one is begun from the setting's source of data,
//! exactly as an operator's begin (same document, same visibility); once none of its PIndexes
//! is still on its way, the recovered ones are committed and it is ended. One node acts: the
//! live node with the smallest uuid (a begin is re-entrant anyway, so two acting at once would
//! still make one recovery).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tessera_cfg::schema::{PIndexRecoveryState, RecoverFrom, Recovery, RecoveryAuto};
use tessera_cfg::CfgError;
use tessera_recovery::machine;
use tokio::sync::watch;

use super::begin::{start, BeginRequest};
use crate::problem::{cfg_problem, parse_body};
use crate::AppState;

/// How often the acting node looks.
const EVERY: Duration = Duration::from_secs(2);
/// After an automatic recovery ends with PIndexes not recovered, the next waits this long
/// (those PIndexes rebuild from the source meanwhile; asking the snapshot again at once would
/// only fail again).
const AFTER_FAILURES_MS: u64 = 60_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AutoRequest {
    /// Where the data comes from; `null` turns the automatic recovery off.
    from: Option<RecoverFrom>,
}

pub async fn show(State(state): State<AppState>) -> Response {
    match state.cfg.recovery_auto().await {
        Ok(auto) => Json(json!({"from": auto.map(|a| a.value.from)})).into_response(),
        Err(e) => cfg_problem(e),
    }
}

pub async fn set(State(state): State<AppState>, body: Bytes) -> Response {
    let request: AutoRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    let auto = request.from.map(|from| RecoveryAuto {
        format_version: 1,
        from,
    });
    if let Some(RecoveryAuto {
        from: RecoverFrom::Snapshot { repo, .. },
        ..
    }) = &auto
    {
        match state.cfg.repo_def(repo).await {
            Ok(Some(_)) => {}
            Ok(None) => return crate::backup::no_repo(repo, Some("from.snapshot.repo")),
            Err(e) => return cfg_problem(e),
        }
    }
    match state.cfg.put_recovery_auto(auto.as_ref()).await {
        Ok(()) => Json(json!({"from": auto.map(|a| a.from)})).into_response(),
        Err(e) => cfg_problem(e),
    }
}

/// Runs the automatic recovery on this node until `stop`.
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
        if let Err(e) = round(&state).await {
            tracing::warn!(error = %e, "automatic recovery round failed; retried");
        }
    }
}

async fn round(state: &AppState) -> Result<(), CfgError> {
    let Some(auto) = state.cfg.recovery_auto().await? else {
        return Ok(());
    };
    let live = state.cfg.live_nodes().await?;
    let first = live.items.iter().map(|l| l.value.uuid.as_str()).min();
    if first != Some(state.node_uuid.as_str()) {
        return Ok(());
    }
    if let Some(running) = state.cfg.running_recovery().await? {
        if running.value.auto && settled(&running.value) {
            finish(state, &running.value.id).await;
        }
        return Ok(());
    }
    let all = state.cfg.recoveries().await?;
    let now = tessera_cfg::unix_ms();
    let recently_failed = all.items.iter().any(|r| {
        r.value.auto
            && now.saturating_sub(r.value.updated_ms) < AFTER_FAILURES_MS
            && r.value.pindexes.values().any(|p| !p.committed)
    });
    if recently_failed {
        return Ok(());
    }
    let request = BeginRequest {
        indexes: Vec::new(),
        from: auto.value.from,
        dry_run: false,
    };
    let answer = start(state, request, true).await;
    if answer.status() == StatusCode::ACCEPTED {
        tracing::warn!("PIndexes missing: automatic recovery begun");
    }
    Ok(())
}

/// None of its PIndexes is still on its way (each recovered or failed).
fn settled(r: &Recovery) -> bool {
    r.pindexes.values().all(|p| {
        p.committed
            || matches!(
                p.state,
                PIndexRecoveryState::Recovered | PIndexRecoveryState::Failed
            )
    })
}

/// Commits what was recovered and ends the recovery.
async fn finish(state: &AppState, id: &str) {
    let committed = super::update(state, id, |r, now| {
        machine::commit(r, None, now).map(|done| json!({"committed": done}))
    })
    .await;
    if !committed.status().is_success() {
        return;
    }
    let ended = super::update(state, id, |r, now| {
        machine::end(r, now).map(|handed| json!({"handed_to_planner": handed}))
    })
    .await;
    if ended.status().is_success() {
        tracing::info!(recovery = id, "automatic recovery committed and ended");
    }
}
