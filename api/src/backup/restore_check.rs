//! A restored definition is checked as a new one is (`PUT /api/index/{name}`) before it is
//! written: a snapshot is data from outside the cluster (another cluster wrote it, or anyone
//! who can write its bucket), so its definitions may name any source address, file, cluster
//! to recover from or mapping. What `PUT` refuses with a 400 naming the field, a restore
//! refuses with a 422 naming the same field and the snapshot's index it comes from; nothing is
//! written.

use axum::http::StatusCode;
use axum::response::Response;
use tessera_cfg::schema::IndexDef;

use crate::index::admission::{self, Inadmissible};
use crate::problem::{cfg_problem, problem};
use crate::AppState;

/// Refuses `def` (restored from index `saved` of snapshot `snapshot`) unless a create would
/// accept it (`crate::index::admission`).
#[allow(clippy::result_large_err)]
pub(super) async fn check(
    state: &AppState,
    snapshot: &str,
    saved: &str,
    def: &IndexDef,
) -> Result<(), Response> {
    match admission::check(state, def).await {
        Ok(()) => Ok(()),
        Err(Inadmissible::Field { field, message, .. }) => Err(problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("snapshot {snapshot}, index `{saved}`: {message}"),
            Some(&field),
        )),
        Err(Inadmissible::Cfg(e)) => Err(cfg_problem(e)),
    }
}
