//! What a definition must pass before it is written, whoever writes it: a create or update
//! (`PUT /api/index/{name}`, answered with the status each check gives) or a restore (a
//! snapshot is data from outside: 422 naming the snapshot's index). One list of checks, so
//! the two cannot drift: the source (type and parameters; every address it makes nodes dial
//! and file it makes them read, by the node's policies), the automatic recovery (its
//! repository exists; its cluster may be dialled) and the mapping.

use axum::http::StatusCode;
use tessera_cfg::schema::{AutoFrom, IndexDef, SnapshotChoice};
use tessera_cfg::CfgError;

use crate::AppState;

/// Why a definition may not be written.
#[derive(Debug)]
pub enum Inadmissible {
    /// `field` is at fault: `message` says how; `status` is what a create answers.
    Field {
        status: StatusCode,
        field: String,
        message: String,
    },
    /// The Cfg could not be read to decide.
    Cfg(CfgError),
}

fn bad(field: &str, message: String) -> Inadmissible {
    Inadmissible::Field {
        status: StatusCode::BAD_REQUEST,
        field: field.to_string(),
        message,
    }
}

/// Whether `def` may be written (see the module docs).
pub async fn check(state: &AppState, def: &IndexDef) -> Result<(), Inadmissible> {
    if let Err(e) = tessera_sources::validate(&def.source) {
        return Err(bad(&e.field, e.reason));
    }
    if let Err(e) = state.sources.check_dial(&def.source, &state.cfg).await {
        return Err(bad(e.field(), e.to_string()));
    }
    match def.recovery.as_ref().and_then(|r| r.auto_from.as_ref()) {
        Some(AutoFrom::Cluster(url)) => {
            let field = "recovery.auto_from.cluster";
            if let Err(e) = state.sources.check_url(field, url, &state.cfg).await {
                return Err(bad(e.field(), e.to_string()));
            }
        }
        Some(AutoFrom::Snapshot(SnapshotChoice::In(at))) => {
            match state.cfg.repo_def(&at.repo).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(Inadmissible::Field {
                        status: StatusCode::NOT_FOUND,
                        field: "recovery.auto_from.snapshot.repo".into(),
                        message: format!("no backup repository `{}`", at.repo),
                    })
                }
                Err(e) => return Err(Inadmissible::Cfg(e)),
            }
        }
        Some(AutoFrom::Snapshot(SnapshotChoice::Newest(_)) | AutoFrom::Source) | None => {}
    }
    if def.index_type == "fulltext" {
        if let Err(tessera_index::IndexError::Mapping { field, reason }) =
            tessera_index::mapping::Mapping::from_params(&def.params)
        {
            return Err(bad(&field, format!("`{field}`: {reason}")));
        }
    }
    Ok(())
}
