//! Automatic recovery, per index (`"recovery": {"auto_from": ...}` in its definition) or for
//! the cluster (`PUT /api/ctl/recovery/auto` `{"from": ...}`, for indexes without their own):
//! when PIndexes go missing and no recovery runs, one is begun from the setting's source of data
//! (of the indexes reading the same source, when several differ: one recovery runs at a time),
//! exactly as an operator's begin (same document, same visibility); once none of its PIndexes
//! is still on its way, the recovered ones are committed and it is ended. One node acts: the
//! live node with the smallest uuid (a begin is re-entrant anyway, so two acting at once would
//! still make one recovery).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tessera_cfg::schema::{
    AutoFrom, PIndexRecoveryState, RecoverFrom, Recovery, RecoveryAuto, SnapshotChoice,
};
use tessera_cfg::CfgError;
use tessera_recovery::machine;
use tokio::sync::watch;

use super::begin::{latest_holding, missing_in, start, BeginRequest};
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
    // Only the acting node reads further.
    let live = state.cfg.live_nodes().await?;
    let first = live.items.iter().map(|l| l.value.uuid.as_str()).min();
    if first != Some(state.node_uuid.as_str()) {
        return Ok(());
    }
    let cluster_wide = state.cfg.recovery_auto().await?.map(|a| a.value.from);
    let per_index: BTreeMap<String, AutoFrom> = state
        .cfg
        .index_defs()
        .await?
        .items
        .into_iter()
        .filter_map(|d| {
            let auto = d.value.recovery?.auto_from?;
            Some((d.value.name, auto))
        })
        .collect();
    if cluster_wide.is_none() && per_index.is_empty() {
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
    let gathered = tessera_planner::service::inputs::gather(&state.cfg).await?;
    let missing = missing_in(&gathered, |_| true);
    let indexes: BTreeSet<&str> = missing.iter().map(|m| m.index.as_str()).collect();
    // The indexes reading the same source of data recover together; the others wait for it.
    let mut groups: BTreeMap<String, (RecoverFrom, Vec<String>)> = BTreeMap::new();
    for index in indexes {
        let from = match per_index.get(index) {
            Some(auto) => resolve(state, index, auto).await,
            None => cluster_wide.clone(),
        };
        if let Some(from) = from {
            let group = groups
                .entry(from.describe())
                .or_insert_with(|| (from, Vec::new()));
            group.1.push(index.to_string());
        }
    }
    let Some((from, indexes)) = groups.into_values().next() else {
        return Ok(());
    };
    let request = BeginRequest {
        indexes,
        from,
        dry_run: false,
    };
    let answer = start(state, request, true).await;
    if answer.status() == StatusCode::ACCEPTED {
        tracing::warn!("PIndexes missing: automatic recovery begun");
    }
    Ok(())
}

/// Where an index's own setting reads: `{"snapshot": "latest"}` is the newest snapshot holding
/// the index in any repository (`None`: no repository has one).
async fn resolve(state: &AppState, index: &str, auto: &AutoFrom) -> Option<RecoverFrom> {
    match auto {
        AutoFrom::Snapshot(SnapshotChoice::In(at)) => Some(RecoverFrom::Snapshot {
            repo: at.repo.clone(),
            id: at.id.clone(),
        }),
        AutoFrom::Snapshot(SnapshotChoice::Newest(_)) => {
            let repos = state.cfg.repo_defs().await.ok()?;
            let wanted = BTreeSet::from([index]);
            let mut newest: Option<(u64, String, String)> = None;
            for def in repos.items {
                let policy = crate::backup::repo_policy(state);
                let Ok(repo) = tessera_backup::Repository::open(&def.value, &policy) else {
                    continue;
                };
                if let Ok(m) = latest_holding(&repo, &wanted).await {
                    if newest.as_ref().is_none_or(|(at, _, _)| m.created_ms > *at) {
                        newest = Some((m.created_ms, def.value.name.clone(), m.id));
                    }
                }
            }
            if newest.is_none() {
                tracing::warn!(
                    index,
                    "automatic recovery: no repository holds a snapshot of the index"
                );
            }
            newest.map(|(_, repo, id)| RecoverFrom::Snapshot { repo, id })
        }
        AutoFrom::Cluster(url) => Some(RecoverFrom::Cluster(url.clone())),
        AutoFrom::Source => Some(RecoverFrom::Source),
    }
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
