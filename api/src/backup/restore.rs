//! `POST /api/backup/restore`: indexes of a snapshot defined again in this cluster, each marked
//! with the snapshot it comes from. The planner places their PIndexes freshly; each node
//! starting one fetches its files from the repository (checked blob by blob) and feeds on from
//! the saved checkpoints — or builds it from the source when the source no longer holds the
//! history those point into. The restore's state is those definitions, so it needs no job of
//! its own to survive a node's death: whichever node starts a PIndex does the fetching.
//!
//! `index_partitions` / `max_partitions_per_pindex` restore into another partitioning: the
//! planner splits the restored definition afresh, and a PIndex whose boundaries no saved
//! PIndex has is regrouped from the saved ones overlapping it (`tessera_backup::restore_plan`).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_backup::restore_plan::{plan_restore, Action, Target};
use tessera_backup::select::matches_any;
use tessera_backup::Manifest;
use tessera_cfg::schema::{self, IndexDef, RestoreFrom};
use tessera_planner::model::IndexSpec;

use crate::problem::{backup_problem, cfg_problem, parse_body, problem};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    repo: String,
    snapshot: String,
    /// Index names or globs of the snapshot; all when absent.
    #[serde(default)]
    indexes: Vec<String>,
    /// Saved name → name to restore as.
    #[serde(default)]
    rename: BTreeMap<String, String>,
    /// Skip indexes that exist here.
    #[serde(default)]
    missing_only: bool,
    /// Delete indexes of the same name first.
    #[serde(default)]
    replace: bool,
    #[serde(default)]
    dry_run: bool,
    /// Read the restored indexes from this source (`http://host:port`) instead of the one
    /// saved in their definitions.
    #[serde(default)]
    source_url: Option<String>,
    /// Import the saved logs of the sources the restored indexes read into `source_url` (or
    /// this node's own source) first: a restore job.
    #[serde(default)]
    restore_sources: bool,
    /// Restore into exactly this many PIndexes per index (another partitioning: the saved
    /// PIndexes are regrouped by source partition).
    #[serde(default)]
    index_partitions: Option<u32>,
    /// Restore into PIndexes of at most this many source partitions (another partitioning).
    #[serde(default)]
    max_partitions_per_pindex: Option<u32>,
    /// Restore with this many replicas per PIndex instead of the saved count.
    #[serde(default)]
    replicas: Option<u32>,
}

/// One index to restore: its definition as it will be written, and its saved name.
struct Restoring {
    saved: String,
    def: IndexDef,
}

pub async fn restore(State(state): State<AppState>, body: Bytes) -> Response {
    let request: RestoreRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    // Where restored sources are imported is dialled like a source's address.
    if let Some(url) = &request.source_url {
        if let Err(e) = state.sources.check_url("source_url", url, &state.cfg).await {
            return problem(StatusCode::BAD_REQUEST, e.to_string(), Some(e.field()));
        }
    }
    if request.missing_only && request.replace {
        return problem(
            StatusCode::BAD_REQUEST,
            "`replace`: not with `missing_only`",
            Some("replace"),
        );
    }
    let repo = match super::open_repo(&state, &request.repo, Some("repo")).await {
        Ok(repo) => repo,
        Err(answer) => return answer,
    };
    let manifest = match repo.manifest(&request.snapshot).await {
        Ok(m) => m,
        Err(e) => return backup_problem(e),
    };
    // Refuse a snapshot that is not whole before writing anything.
    if let Err(answer) = super::require_whole(&repo, &request.snapshot, None).await {
        return answer;
    }
    let mut request = request;
    if request.restore_sources && request.source_url.is_none() {
        request.source_url = Some(state.coord.search.default_source_url.clone());
    }
    let restoring = match select(&state, &request, &manifest).await {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    let mut answer = Vec::new();
    for r in &restoring {
        let saved_source = manifest
            .sources
            .iter()
            .find(|s| s.name == r.def.source.name);
        if request.restore_sources && saved_source.is_none() {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "snapshot {} holds no log of source `{}`",
                    manifest.id, r.def.source.name
                ),
                Some("restore_sources"),
            );
        }
        let after_import = saved_source.filter(|_| request.restore_sources);
        answer.push(dry_run_of(&state, &manifest, r, after_import).await);
    }
    if request.restore_sources && !request.dry_run {
        return restore_job(&state, &request, &manifest, restoring, answer).await;
    }
    if request.dry_run {
        return Json(json!({"dry_run": true, "snapshot": manifest.id, "indexes": answer}))
            .into_response();
    }
    for r in &restoring {
        if request.replace {
            if let Err(answer) = remove_existing(&state, &r.def.name).await {
                return answer;
            }
        }
        if let Err(e) = state.cfg.put_index_def(&r.def, 0).await {
            return cfg_problem(e);
        }
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({"snapshot": manifest.id, "indexes": answer})),
    )
        .into_response()
}

/// The indexes to restore, with the definitions to write; refusals name the field.
async fn select(
    state: &AppState,
    request: &RestoreRequest,
    manifest: &Manifest,
) -> Result<Vec<Restoring>, Response> {
    let globs = if request.indexes.is_empty() {
        vec!["*".to_string()]
    } else {
        request.indexes.clone()
    };
    let existing = state.cfg.index_defs().await.map_err(cfg_problem)?;
    let nodes = state.cfg.node_defs().await.map_err(cfg_problem)?;
    let mut out = Vec::new();
    for (saved, json) in &manifest.indexes {
        if !matches_any(saved, &globs) {
            continue;
        }
        let mut def: IndexDef = serde_json::from_value(json.clone()).map_err(|e| {
            problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("snapshot {}: the definition of {saved}: {e}", manifest.id),
                None,
            )
        })?;
        let name = request
            .rename
            .get(saved)
            .cloned()
            .unwrap_or_else(|| saved.clone());
        if existing.items.iter().any(|d| d.value.name == name) {
            if request.missing_only {
                continue;
            }
            if !request.replace {
                return Err(problem(
                    StatusCode::CONFLICT,
                    format!("index `{name}` exists: restore it under another name (`rename`) or replace it (`replace`)"),
                    Some("rename"),
                ));
            }
        }
        def.name = name;
        def.uuid = uuid::Uuid::new_v4().simple().to_string();
        repartition(&mut def.plan, request);
        def.controls.rollback_accepted_ms = 0;
        def.restore = Some(RestoreFrom {
            repo: request.repo.clone(),
            snapshot: manifest.id.clone(),
            index: saved.clone(),
        });
        if let Some(url) = &request.source_url {
            def.source
                .params
                .insert("url".into(), Value::String(url.clone()));
            def.source.params.remove("node");
        } else if let Some(node) = def.source.node().filter(|_| def.source.url().is_none()) {
            if !nodes.items.iter().any(|n| n.value.uuid == node) {
                return Err(problem(
                    StatusCode::BAD_REQUEST,
                    format!("index `{saved}` read the embedded source of node {node}, which this cluster does not have: give `source_url`"),
                    Some("source_url"),
                ));
            }
        }
        let key = state.cfg.keys().index_def(&def.name);
        schema::check(&key, &def).map_err(|e| match e {
            // The plan parameters came from the request: name its field.
            tessera_cfg::CfgError::Invalid { field, reason, .. } if field.starts_with("plan.") => {
                let field = field.trim_start_matches("plan.").to_string();
                problem(
                    StatusCode::BAD_REQUEST,
                    format!("`{field}`: {reason}"),
                    Some(&field),
                )
            }
            e => cfg_problem(e),
        })?;
        // As a new definition would be: sources, addresses, files, recovery, mapping.
        super::restore_check::check(state, &manifest.id, saved, &def).await?;
        out.push(Restoring {
            saved: saved.clone(),
            def,
        });
    }
    if out.is_empty() && !request.missing_only {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            format!(
                "no index of snapshot {} to restore matches {globs:?}",
                manifest.id
            ),
            Some("indexes"),
        ));
    }
    Ok(out)
}

/// The restored definition's plan parameters: the saved ones, with the partitioning and
/// replica count the request asks for. `index_partitions` wins over
/// `max_partitions_per_pindex` (as in a definition), so asking for a maximum clears it.
fn repartition(plan: &mut schema::PlanParams, request: &RestoreRequest) {
    if let Some(max) = request.max_partitions_per_pindex {
        plan.max_partitions_per_pindex = Some(max);
        plan.index_partitions = None;
    }
    if let Some(n) = request.index_partitions {
        plan.index_partitions = Some(n);
    }
    if let Some(replicas) = request.replicas {
        plan.replicas = replicas;
    }
}

/// What restoring `r` will do, PIndex by PIndex, by the source as it answers now (or as it
/// will be once `after_import`, a saved log, is imported into it).
async fn dry_run_of(
    state: &AppState,
    manifest: &Manifest,
    r: &Restoring,
    after_import: Option<&tessera_backup::SourceEntry>,
) -> Value {
    let url = state.source_url(&r.def).await.ok();
    let source = match (after_import, &url) {
        (Some(saved), _) => Some(
            saved
                .partitions
                .iter()
                .map(|(p, point)| (*p, (point.partition_uuid.clone(), point.seq)))
                .collect(),
        ),
        (None, Some(_)) => state.source_state(&r.def).await,
        (None, None) => None,
    };
    let entries: Vec<_> = manifest.pindexes_of(&r.saved).collect();
    let targets: Vec<Target> = tessera_planner::split::split(&IndexSpec::of(&r.def))
        .into_iter()
        .map(|part| Target {
            name: part.name,
            partitions: part.partitions,
        })
        .collect();
    let regroupable = r.def.index_type == "fulltext";
    let plan = plan_restore(&entries, &targets, regroupable, &source);
    let download: u64 = plan.iter().map(|p| p.bytes).sum();
    let count = |action: Action| plan.iter().filter(|p| p.action == action).count();
    json!({"index": r.saved, "restored_as": r.def.name, "source": url,
        "download_bytes": download, "pindexes_downloaded": count(Action::Download),
        "pindexes_regrouped": count(Action::Regroup),
        "pindexes_rebuilt": count(Action::Rebuild), "pindexes": plan})
}

/// Starts a restore job: the sources imported first, then the indexes defined (by the job).
async fn restore_job(
    state: &AppState,
    request: &RestoreRequest,
    manifest: &Manifest,
    restoring: Vec<Restoring>,
    plan: Vec<Value>,
) -> Response {
    if request.replace {
        for r in &restoring {
            if let Err(answer) = remove_existing(state, &r.def.name).await {
                return answer;
            }
        }
    }
    let mut sources: Vec<String> = restoring
        .iter()
        .map(|r| r.def.source.name.clone())
        .collect();
    sources.sort();
    sources.dedup();
    let now = tessera_cfg::unix_ms();
    let id = format!("r{now}-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let job = schema::BackupJob {
        format_version: <schema::BackupJob as schema::Document>::FORMAT_VERSION,
        id: id.clone(),
        kind: schema::JobKind::Restore,
        repo: request.repo.clone(),
        indexes: restoring.iter().map(|r| r.def.name.clone()).collect(),
        rate_limit_bytes: 0,
        status: schema::TaskStatus::Running,
        owner: state.node_uuid.clone(),
        created_ms: now,
        updated_ms: now,
        progress: Default::default(),
        source_seqs: Default::default(),
        error: None,
        restore: Some(schema::RestoreSpec {
            snapshot: manifest.id.clone(),
            source_url: request.source_url.clone().unwrap_or_default(),
            sources,
            indexes: restoring.into_iter().map(|r| r.def).collect(),
        }),
    };
    match state.cfg.put_backup_job(&job, 0).await {
        Ok(_) => (
            StatusCode::ACCEPTED,
            Json(json!({"id": id, "job": job, "snapshot": manifest.id, "indexes": plan})),
        )
            .into_response(),
        Err(e) => cfg_problem(e),
    }
}

/// Deletes index `name` and waits until no node holds files of its PIndexes (a restored
/// PIndex of the same name must not open the old directory).
async fn remove_existing(state: &AppState, name: &str) -> Result<(), Response> {
    let key = state.cfg.keys().index_def(name);
    match state.cfg.store().delete(&key, 0).await {
        Ok(_) | Err(tessera_cfg::CfgError::NotFound { .. }) => {}
        Err(e) => return Err(cfg_problem(e)),
    }
    let prefix = format!("{name}_");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let reports = state.cfg.snapshot().await.map_err(cfg_problem)?.reports;
        let held = reports.iter().any(|r| {
            let v = &r.value;
            v.on_disk
                .iter()
                .chain(&v.caught_up)
                .chain(v.docs.keys())
                .any(|p| p.starts_with(&prefix))
        });
        if !held {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(problem(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("index `{name}` was deleted, but nodes still hold its PIndexes after 60 s; restore again"),
                None,
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
