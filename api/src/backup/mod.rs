//! The backup API: repositories (`/api/backup/repos[/{name}]`), snapshots in a repository
//! (create as a job, list, show, verify, delete, gc) and backup jobs (`/api/backup/jobs`).
//! Handlers read and write the Cfg and call `tessera-backup`; the job itself is driven by the
//! node's backup runner. Every repository is opened under the node's [`RepoPolicy`] (its dial
//! and path policies and `--backup-path`s), at `PUT` and at every later open.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tessera_backup::maintain;
use tessera_backup::{RepoPolicy, Repository};
use tessera_cfg::schema::{self, BackupJob, JobKind, JobProgress, RepoDef, TaskStatus};

use crate::problem::{backup_problem, cfg_problem, parse_body, problem};
use crate::AppState;

mod restore;
mod restore_check;
#[cfg(test)]
mod tests;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/backup/repos", get(list_repos))
        .route(
            "/api/backup/repos/{name}",
            get(get_repo).put(put_repo).delete(delete_repo),
        )
        .route(
            "/api/backup/repos/{name}/snapshots",
            get(list_snapshots).post(create_snapshot),
        )
        .route(
            "/api/backup/repos/{name}/snapshots/{id}",
            get(show_snapshot).delete(delete_snapshot),
        )
        .route(
            "/api/backup/repos/{name}/snapshots/{id}/verify",
            post(verify_snapshot),
        )
        .route("/api/backup/repos/{name}/gc", post(gc))
        .route("/api/backup/restore", post(restore::restore))
        .route("/api/backup/jobs", get(list_jobs))
        .route("/api/backup/jobs/{id}", get(get_job))
}

/// `name/uuid`: how this cluster names itself in repository locks and manifests.
fn cluster_id(state: &AppState) -> String {
    format!("{}/{}", state.cluster_name, state.cluster_uuid)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RepoInput {
    #[serde(rename = "type")]
    repo_type: String,
    location: String,
    #[serde(default)]
    readonly: bool,
    #[serde(default)]
    options: std::collections::BTreeMap<String, String>,
}

async fn list_repos(State(state): State<AppState>) -> Response {
    match state.cfg.repo_defs().await {
        Ok(list) => {
            let repos: Vec<RepoDef> = list.items.into_iter().map(|r| r.value).collect();
            Json(json!({"repos": repos})).into_response()
        }
        Err(e) => cfg_problem(e),
    }
}

async fn get_repo(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    match repo_def(&state, &name).await {
        Ok(def) => Json(json!({"repo": def})).into_response(),
        Err(answer) => answer,
    }
}

/// Adds or replaces a repository. The location is checked by opening it (an `fs` directory
/// must exist; an `s3` bucket must answer a listing).
async fn put_repo(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let input: RepoInput = match parse_body(&body) {
        Ok(input) => input,
        Err(answer) => return answer,
    };
    let def = RepoDef {
        format_version: <RepoDef as schema::Document>::FORMAT_VERSION,
        name: name.clone(),
        repo_type: input.repo_type,
        location: input.location,
        readonly: input.readonly,
        options: input.options,
    };
    if let Err(e) = schema::Document::validate(&def) {
        return problem(
            StatusCode::BAD_REQUEST,
            format!("`{}`: {}", e.field, e.reason),
            Some(&e.field),
        );
    }
    // The endpoint, the files and the fs location, by this node's policies (400 naming the
    // field); every node opening the repository checks them again.
    let repo = match Repository::open(&def, &repo_policy(&state)) {
        Ok(repo) => repo,
        Err(e) => return backup_problem(e),
    };
    // Listing it checks the location; then the key (if any) is checked against the
    // repository's record, or recorded if the repository is new.
    let listed =
        tokio::time::timeout(std::time::Duration::from_secs(10), repo.snapshot_ids()).await;
    let unreadable = match listed {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("no answer within 10 s".to_string()),
    };
    if unreadable.is_none() {
        if let Err(e) = repo.key().await {
            return backup_problem(e);
        }
    }
    if let Some(why) = unreadable {
        return problem(
            StatusCode::BAD_REQUEST,
            format!("the repository cannot be read: {why}"),
            Some("location"),
        );
    }
    let cas = match state.cfg.repo_def(&name).await {
        Ok(found) => found.map_or(0, |f| f.revision),
        Err(e) => return cfg_problem(e),
    };
    match state.cfg.put_repo_def(&def, cas).await {
        Ok(_) => Json(json!({"repo": def})).into_response(),
        Err(e) => cfg_problem(e),
    }
}

/// What repositories may make this node dial, read and write: the dial and path policies its
/// sources are opened under, and its `--backup-path`s for `fs` locations (as Elasticsearch's
/// `path.repo`: a request must not make a node write anywhere it may).
pub(crate) fn repo_policy(state: &AppState) -> RepoPolicy {
    RepoPolicy {
        dial: state.sources.dial_policy().clone(),
        paths: state.sources.path_policy().clone(),
        fs_roots: state.backup_paths.clone(),
    }
}

async fn delete_repo(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let found = match state.cfg.repo_def(&name).await {
        Ok(Some(found)) => found,
        Ok(None) => return no_repo(&name, None),
        Err(e) => return cfg_problem(e),
    };
    match state.cfg.delete_repo_def(&name, found.revision).await {
        Ok(_) => Json(json!({"deleted": name})).into_response(),
        Err(e) => cfg_problem(e),
    }
}

/// 404: no repository `name` (`field`: the request's field that named it).
pub(crate) fn no_repo(name: &str, field: Option<&str>) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        format!("no backup repository `{name}`"),
        field,
    )
}

async fn repo_def(state: &AppState, name: &str) -> Result<RepoDef, Response> {
    match state.cfg.repo_def(name).await {
        Ok(Some(found)) => Ok(found.value),
        Ok(None) => Err(no_repo(name, None)),
        Err(e) => Err(cfg_problem(e)),
    }
}

/// Repository `name` opened; 404 naming `field` when it is not defined.
pub(crate) async fn open_repo(
    state: &AppState,
    name: &str,
    field: Option<&str>,
) -> Result<Repository, Response> {
    match state.cfg.repo_def(name).await {
        Ok(Some(found)) => {
            Repository::open(&found.value, &repo_policy(state)).map_err(backup_problem)
        }
        Ok(None) => Err(no_repo(name, field)),
        Err(e) => Err(cfg_problem(e)),
    }
}

/// Refuses (422, naming `field`) a snapshot whose blobs are not all in `repo`, before anything
/// is written from it (restore, recovery).
pub(crate) async fn require_whole(
    repo: &Repository,
    id: &str,
    field: Option<&str>,
) -> Result<(), Response> {
    match maintain::verify(repo, id, false).await {
        Ok(report) if report.ok => Ok(()),
        Ok(report) => Err(problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "snapshot {id} is not whole: missing {}",
                report.missing.join(", ")
            ),
            field,
        )),
        Err(e) => Err(backup_problem(e)),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateInput {
    /// Index names or globs; all indexes when absent.
    #[serde(default)]
    indexes: Vec<String>,
    /// Per node, in MB/s (0 or absent: unlimited).
    #[serde(default)]
    rate_limit_mb: f64,
}

/// Starts a backup job; 202 with the snapshot id.
async fn create_snapshot(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let input: CreateInput = if body.is_empty() {
        CreateInput::default()
    } else {
        match parse_body(&body) {
            Ok(input) => input,
            Err(answer) => return answer,
        }
    };
    if !(input.rate_limit_mb.is_finite() && input.rate_limit_mb >= 0.0) {
        return problem(
            StatusCode::BAD_REQUEST,
            "`rate_limit_mb`: a number of MB/s, 0 or more",
            Some("rate_limit_mb"),
        );
    }
    let def = match repo_def(&state, &name).await {
        Ok(def) => def,
        Err(answer) => return answer,
    };
    if def.readonly {
        return problem(
            StatusCode::BAD_REQUEST,
            format!("repository `{name}` is read-only"),
            Some("repo"),
        );
    }
    let indexes = if input.indexes.is_empty() {
        vec!["*".to_string()]
    } else {
        input.indexes
    };
    let now = tessera_cfg::unix_ms();
    let id = format!("s{now}-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let job = BackupJob {
        format_version: <BackupJob as schema::Document>::FORMAT_VERSION,
        id: id.clone(),
        kind: JobKind::Backup,
        repo: name,
        indexes,
        rate_limit_bytes: (input.rate_limit_mb * 1_000_000.0) as u64,
        status: TaskStatus::Running,
        owner: state.node_uuid.clone(),
        created_ms: now,
        updated_ms: now,
        progress: JobProgress::default(),
        source_seqs: Default::default(),
        error: None,
        restore: None,
    };
    match state.cfg.put_backup_job(&job, 0).await {
        Ok(_) => (StatusCode::ACCEPTED, Json(json!({"id": id, "job": job}))).into_response(),
        Err(e) => cfg_problem(e),
    }
}

async fn list_snapshots(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let repo = match open_repo(&state, &name, None).await {
        Ok(repo) => repo,
        Err(answer) => return answer,
    };
    let ids = match repo.snapshot_ids().await {
        Ok(ids) => ids,
        Err(e) => return backup_problem(e),
    };
    let mut snapshots = Vec::new();
    for id in ids {
        match repo.manifest(&id).await {
            Ok(m) => snapshots.push(json!({
                "id": m.id, "cluster": m.cluster, "created_ms": m.created_ms,
                "indexes": m.indexes.keys().collect::<Vec<_>>(),
                "pindexes": m.pindexes.len(), "bytes": m.bytes(),
            })),
            Err(e) => snapshots.push(json!({"id": id, "error": e.to_string()})),
        }
    }
    Json(json!({"snapshots": snapshots})).into_response()
}

async fn show_snapshot(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let repo = match open_repo(&state, &name, None).await {
        Ok(repo) => repo,
        Err(answer) => return answer,
    };
    match repo.manifest(&id).await {
        Ok(m) => Json(json!({"snapshot": m, "bytes": m.bytes()})).into_response(),
        Err(e) => backup_problem(e),
    }
}

#[derive(Deserialize)]
struct VerifyQuery {
    #[serde(default)]
    deep: bool,
}

async fn verify_snapshot(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    Query(q): Query<VerifyQuery>,
) -> Response {
    let repo = match open_repo(&state, &name, None).await {
        Ok(repo) => repo,
        Err(answer) => return answer,
    };
    match maintain::verify(&repo, &id, q.deep).await {
        Ok(report) => Json(json!({"verify": report})).into_response(),
        Err(e) => backup_problem(e),
    }
}

async fn delete_snapshot(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let repo = match open_repo(&state, &name, None).await {
        Ok(repo) => repo,
        Err(answer) => return answer,
    };
    match maintain::delete_snapshot(&repo, &cluster_id(&state), &id).await {
        Ok(report) => Json(json!({"deleted": id, "pruned": report})).into_response(),
        Err(e) => backup_problem(e),
    }
}

async fn gc(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let repo = match open_repo(&state, &name, None).await {
        Ok(repo) => repo,
        Err(answer) => return answer,
    };
    match maintain::gc(&repo, &cluster_id(&state)).await {
        Ok(report) => Json(json!({"pruned": report})).into_response(),
        Err(e) => backup_problem(e),
    }
}

async fn list_jobs(State(state): State<AppState>) -> Response {
    match state.cfg.backup_jobs().await {
        Ok(list) => {
            let mut jobs: Vec<BackupJob> = list.items.into_iter().map(|j| j.value).collect();
            jobs.sort_by_key(|j| std::cmp::Reverse(j.created_ms));
            Json(json!({"jobs": jobs})).into_response()
        }
        Err(e) => cfg_problem(e),
    }
}

async fn get_job(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.cfg.backup_job(&id).await {
        Ok(Some(job)) => Json(json!({"job": job.value})).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, format!("no backup job `{id}`"), None),
        Err(e) => cfg_problem(e),
    }
}
