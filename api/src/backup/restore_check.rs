//! A restored definition is checked as a new one is (`PUT /api/index/{name}`) before it is
//! written: a snapshot is data from outside the cluster (another cluster wrote it, or anyone
//! who can write its bucket), so its definitions may name any source address, file, cluster
//! to recover from or mapping. What `PUT` refuses with a 400 naming the field, a restore
//! refuses with a 422 naming the same field and the snapshot's index it comes from; nothing is
//! written.

use axum::http::StatusCode;
use axum::response::Response;
use tessera_cfg::schema::{AutoFrom, IndexDef, SnapshotChoice};

use crate::problem::{cfg_problem, problem};
use crate::AppState;

/// Refuses `def` (restored from index `saved` of snapshot `snapshot`) unless a create would
/// accept it: its source (type, parameters, the addresses it dials and files it reads, by the
/// node's dial and path policies), its automatic recovery (the repository it names exists,
/// the cluster it names may be dialled) and its mapping.
#[allow(clippy::result_large_err)]
pub(super) async fn check(
    state: &AppState,
    snapshot: &str,
    saved: &str,
    def: &IndexDef,
) -> Result<(), Response> {
    let refuse = |field: &str, reason: String| {
        problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("snapshot {snapshot}, index `{saved}`: `{field}`: {reason}"),
            Some(field),
        )
    };
    if let Err(e) = tessera_sources::validate(&def.source) {
        return Err(refuse(&e.field, e.reason));
    }
    // Every address the source makes nodes dial (`tessera_sources::dial::dialled`) and every
    // file it makes them read, by the node's policies.
    if let Err(e) = state.sources.check_dial(&def.source, &state.cfg).await {
        return Err(refuse(e.field(), e.to_string()));
    }
    if let Some(auto) = def.recovery.as_ref().and_then(|r| r.auto_from.as_ref()) {
        match auto {
            AutoFrom::Cluster(url) => {
                let field = "recovery.auto_from.cluster";
                if let Err(e) = state.sources.check_url(field, url, &state.cfg).await {
                    return Err(refuse(e.field(), e.to_string()));
                }
            }
            AutoFrom::Snapshot(SnapshotChoice::In(at)) => {
                match state.cfg.repo_def(&at.repo).await {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return Err(refuse(
                            "recovery.auto_from.snapshot.repo",
                            format!("no backup repository `{}`", at.repo),
                        ))
                    }
                    Err(e) => return Err(cfg_problem(e)),
                }
            }
            AutoFrom::Snapshot(SnapshotChoice::Newest(_)) | AutoFrom::Source => {}
        }
    }
    if def.index_type == "fulltext" {
        if let Err(tessera_index::IndexError::Mapping { field, reason }) =
            tessera_index::mapping::Mapping::from_params(&def.params)
        {
            return Err(refuse(&field, reason));
        }
    }
    Ok(())
}
