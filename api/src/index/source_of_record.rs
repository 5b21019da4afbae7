//! An index reads one source, decided when it is created. A definition without `params.url`
//! used to mean "each node's own embedded source", so copies of one PIndex on different nodes
//! held different data; now the node that accepts the create is recorded (`params.node`, by
//! uuid) and every copy reads that node's source. The definition's partition count is checked
//! against the source's real one, since a feed reads only the partitions the definition says
//! and would silently leave the rest out.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use tessera_cfg::schema::IndexDef;

use crate::problem::problem;
use crate::AppState;

/// Records the source of `def` (kept from `current` on an update) and checks its partition
/// count when the source answers (`admission` has checked its type, parameters and
/// addresses). A source that does not exist yet or cannot be reached is not
/// an error here: the feeds check again and say so in the index status.
#[allow(clippy::result_large_err)]
pub async fn record(
    state: &AppState,
    def: &mut IndexDef,
    current: Option<&IndexDef>,
) -> Result<(), Response> {
    let reference = def.source.source_type == "tessera";
    if reference && def.source.url().is_none() && def.source.node().is_none() {
        let node = current
            .and_then(|c| c.source.node())
            .unwrap_or(&state.node_uuid)
            .to_string();
        def.source.params.insert("node".into(), Value::String(node));
    }
    let Ok(source) = state.source(def).await else {
        return Ok(());
    };
    let Ok(partitions) = source.partitions().await else {
        return Ok(());
    };
    let real = partitions.len() as u32;
    if real > 0 && real != def.source.partitions() {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            format!(
                "{} has {real} partitions; the definition says {} (set source.partitions to {real})",
                source.describe(),
                def.source.partitions()
            ),
            Some("source.partitions"),
        ));
    }
    Ok(())
}
