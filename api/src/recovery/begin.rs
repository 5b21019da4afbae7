//! `POST /api/ctl/recovery`: what is missing, where each missing PIndex's data will come from,
//! and (unless a dry run) the recovery written with its lock. A begin while a recovery runs
//! answers the running one.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_backup::restore_plan::{decide, Action, Target};
use tessera_backup::{Manifest, Repository};
use tessera_cfg::schema::{IndexDef, RecoverFrom, Recovery};
use tessera_recovery::machine::{self, DataSource};
use tessera_recovery::MissingPIndex;

use super::shown;
use crate::backup::{open_repo, require_whole};
use crate::problem::{backup_problem, cfg_problem, parse_body, problem};
use crate::AppState;

/// The begin request, as the issue spells it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeginRequest {
    /// Index names; every index with missing PIndexes when empty.
    #[serde(default)]
    pub indexes: Vec<String>,
    /// Where the data comes from; the source when absent. A snapshot id `latest` picks the
    /// newest snapshot of the repository that holds the indexes.
    #[serde(default = "from_source")]
    pub from: RecoverFrom,
    #[serde(default)]
    pub dry_run: bool,
}

fn from_source() -> RecoverFrom {
    RecoverFrom::Source
}

pub async fn begin(State(state): State<AppState>, body: Bytes) -> Response {
    match parse_body(&body) {
        Ok(request) => start(&state, request, false).await,
        Err(answer) => answer,
    }
}

/// Begins a recovery of what `request` asks for (`auto`: by the automatic setting), or
/// answers the running one, or says nothing is missing.
pub async fn start(state: &AppState, request: BeginRequest, auto: bool) -> Response {
    if let Err(e) = request.from.validate_at("from") {
        let message = format!("`{}`: {}", e.field, e.reason);
        return problem(StatusCode::BAD_REQUEST, message, Some(&e.field));
    }
    // Another cluster is dialled only where this node may dial (and without its key).
    if let RecoverFrom::Cluster(url) = &request.from {
        if let Err(e) = state
            .sources
            .check_url("from.cluster", url, &state.cfg)
            .await
        {
            return problem(StatusCode::BAD_REQUEST, e.to_string(), Some(e.field()));
        }
    }
    match state.cfg.running_recovery().await {
        Ok(Some(running)) => return answer_running(&running.value),
        Ok(None) => {}
        Err(e) => return cfg_problem(e),
    }
    let gathered = match tessera_planner::service::inputs::gather(&state.cfg).await {
        Ok(g) => g,
        Err(e) => return cfg_problem(e),
    };
    for (i, name) in request.indexes.iter().enumerate() {
        if !gathered.index_defs.contains_key(name) {
            return problem(
                StatusCode::NOT_FOUND,
                format!("`indexes[{i}]`: no index `{name}`"),
                Some(&format!("indexes[{i}]")),
            );
        }
    }
    let asked =
        |index: &str| request.indexes.is_empty() || request.indexes.iter().any(|i| i == index);
    let missing = missing_in(&gathered, asked);
    if missing.is_empty() {
        return Json(json!({"missing": {}})).into_response();
    }
    let mut from = request.from.clone();
    let defs: BTreeMap<&str, &IndexDef> = gathered
        .index_defs
        .iter()
        .map(|(n, d)| (n.as_str(), &d.value))
        .collect();
    let sources = match &mut from {
        RecoverFrom::Cluster(url) => match from_cluster(state, url, &missing, &defs).await {
            Ok(sources) => sources,
            Err(answer) => return answer,
        },
        RecoverFrom::Snapshot { repo, id } => {
            match from_snapshot(state, repo, id, &missing, &defs).await {
                Ok((resolved, sources)) => {
                    *id = resolved;
                    sources
                }
                Err(answer) => return answer,
            }
        }
        _ => BTreeMap::new(),
    };
    let now = tessera_cfg::unix_ms();
    let recovery_id = format!("r{now}-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let mut recovery = machine::begin(&recovery_id, from, &missing, &sources, now);
    recovery.auto = auto;
    if request.dry_run {
        let mut body = shown(&recovery, now);
        body["dry_run"] = json!(true);
        body["id"] = Value::Null;
        return Json(body).into_response();
    }
    match state.cfg.begin_recovery(&recovery).await {
        Ok(true) => {
            tracing::info!(recovery = recovery.id, indexes = ?recovery.indexes, "recovery begun");
            (StatusCode::ACCEPTED, Json(shown(&recovery, now))).into_response()
        }
        // Another node began one in between: that is the running one.
        Ok(false) => match state.cfg.running_recovery().await {
            Ok(Some(running)) => answer_running(&running.value),
            Ok(None) => problem(
                StatusCode::CONFLICT,
                "a recovery began and ended while this one was being written; ask again",
                None,
            ),
            Err(e) => cfg_problem(e),
        },
        Err(e) => cfg_problem(e),
    }
}

/// The missing PIndexes of the indexes `asked` accepts, as of `gathered`.
pub(super) fn missing_in(
    gathered: &tessera_planner::service::inputs::Gathered,
    asked: impl Fn(&str) -> bool,
) -> Vec<MissingPIndex> {
    let may_return =
        tessera_planner::coverage::may_return(gathered.node_defs.values().map(|d| &d.value));
    let plans: Vec<_> = gathered.plans.values().map(|p| &p.value).collect();
    tessera_recovery::missing(&plans, &gathered.live, &may_return, asked)
}

/// A begin while a recovery runs: the running one, as accepted before.
fn answer_running(running: &Recovery) -> Response {
    let mut body = shown(running, tessera_cfg::unix_ms());
    body["already_running"] = json!(true);
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// The snapshot `id` of `repo` (`latest`: the newest holding every index of `missing`),
/// checked whole, and per missing PIndex whether it downloads, regroups or rebuilds, by what
/// its source holds now.
async fn from_snapshot(
    state: &AppState,
    repo_name: &str,
    id: &str,
    missing: &[MissingPIndex],
    defs: &BTreeMap<&str, &IndexDef>,
) -> Result<(String, BTreeMap<String, DataSource>), Response> {
    let repo = open_repo(state, repo_name, Some("from.snapshot.repo")).await?;
    let indexes: BTreeSet<&str> = missing.iter().map(|m| m.index.as_str()).collect();
    let manifest = if id == "latest" {
        latest_holding(&repo, &indexes).await?
    } else {
        repo.manifest(id).await.map_err(backup_problem)?
    };
    require_whole(&repo, &manifest.id, Some("from.snapshot.id")).await?;
    let mut sources = BTreeMap::new();
    for index in indexes {
        let Some(def) = defs.get(index) else { continue };
        let entries: Vec<_> = manifest.pindexes_of(index).collect();
        let saved_source = manifest
            .indexes
            .get(index)
            .and_then(|d| d.get("source"))
            .and_then(|s| s.get("name"))
            .and_then(Value::as_str);
        let source_state = state.source_state(def).await;
        for m in missing.iter().filter(|m| m.index == index) {
            let target = Target {
                name: m.pindex.clone(),
                partitions: m.partitions.clone(),
            };
            let decision = decide(
                &entries,
                &target,
                def.index_type == "fulltext",
                &source_state,
            );
            let d = decision.restore;
            let source = if saved_source != Some(def.source.name.as_str()) {
                DataSource {
                    from: "source".into(),
                    rebuild: true,
                    bytes: 0,
                    reason: Some(format!(
                        "the snapshot's `{index}` reads another source than the index here"
                    )),
                }
            } else {
                let how = match d.action {
                    Action::Download => "download",
                    Action::Regroup => "regroup",
                    Action::Rebuild => "rebuild",
                };
                DataSource {
                    from: if d.action == Action::Rebuild {
                        "source".into()
                    } else {
                        format!(
                            "snapshot {repo_name}/{}: {how} {}",
                            manifest.id,
                            d.from.join(", ")
                        )
                    },
                    rebuild: d.action == Action::Rebuild,
                    bytes: d.bytes,
                    reason: d.reason,
                }
            };
            sources.insert(m.pindex.clone(), source);
        }
    }
    Ok((manifest.id, sources))
}

/// Per missing PIndex, what the cluster at `url` can give of it: its readable copy's files at
/// the last commit (described, nothing held), or why it must rebuild (that cluster partitions
/// the index otherwise or has no readable copy, or the source no longer holds the history
/// its checkpoints point into). A cluster that cannot be reached, or defines an index
/// otherwise, is refused naming `from.cluster`.
async fn from_cluster(
    state: &AppState,
    url: &str,
    missing: &[MissingPIndex],
    defs: &BTreeMap<&str, &IndexDef>,
) -> Result<BTreeMap<String, DataSource>, Response> {
    use tessera_copy::{fetch, CopyError};
    let peers = &state.coord.search.peers;
    let described = futures::future::join_all(
        missing
            .iter()
            .map(|m| fetch::take(peers, url, &m.index, &m.partitions, true)),
    )
    .await;
    let mut source_states = BTreeMap::new();
    let mut sources = BTreeMap::new();
    for (m, described) in missing.iter().zip(described) {
        let rebuild = |reason: String| DataSource {
            from: "source".into(),
            rebuild: true,
            bytes: 0,
            reason: Some(reason),
        };
        let set = match described {
            Ok(set) => set,
            Err(CopyError::NotFound(why) | CopyError::Unavailable(why)) => {
                sources.insert(m.pindex.clone(), rebuild(format!("cluster {url}: {why}")));
                continue;
            }
            Err(e) => {
                return Err(problem(
                    StatusCode::BAD_REQUEST,
                    format!("`from.cluster`: could not ask {url} for `{}`: {e}", m.index),
                    Some("from.cluster"),
                ))
            }
        };
        let Some(def) = defs.get(m.index.as_str()) else {
            continue;
        };
        if let Err(why) = fetch::same_definition(def, &set) {
            return Err(problem(
                StatusCode::BAD_REQUEST,
                format!("`from.cluster`: {why}"),
                Some("from.cluster"),
            ));
        }
        if !source_states.contains_key(&m.index) {
            let now = state.source_state(def).await;
            source_states.insert(m.index.clone(), now);
        }
        let checkpoints = tessera_index::checkpoint::decode(&set.checkpoints_json);
        let gone = match (checkpoints, &source_states[&m.index]) {
            (None, _) => Some("it sent unreadable checkpoints".to_string()),
            (Some(c), Some(now)) => tessera_backup::restore_plan::checkpoints_gone(&c, now),
            (Some(_), None) => None, // the feed checks the history on start
        };
        let source = match gone {
            Some(why) => rebuild(format!("the copy in cluster {url} cannot be used: {why}")),
            None => DataSource {
                from: format!("cluster {url}: {} on node {}", set.pindex, set.node),
                rebuild: false,
                bytes: set.bytes,
                reason: None,
            },
        };
        sources.insert(m.pindex.clone(), source);
    }
    Ok(sources)
}

/// The newest snapshot of `repo` holding every index of `indexes`.
pub(super) async fn latest_holding(
    repo: &Repository,
    indexes: &BTreeSet<&str>,
) -> Result<Manifest, Response> {
    let ids = repo.snapshot_ids().await.map_err(backup_problem)?;
    for id in ids.iter().rev() {
        let manifest = repo.manifest(id).await.map_err(backup_problem)?;
        if indexes.iter().all(|i| manifest.indexes.contains_key(*i)) {
            return Ok(manifest);
        }
    }
    Err(problem(
        StatusCode::NOT_FOUND,
        format!(
            "no snapshot in the repository holds {}",
            indexes.iter().copied().collect::<Vec<_>>().join(", ")
        ),
        Some("from.snapshot.id"),
    ))
}
