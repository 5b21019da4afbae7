//! Opening PIndexes whose directories already exist, several at once. Opening one validates
//! the checksums of all its files and opens its reader; a node restarting with a thousand
//! PIndexes did that one after another inside its round (26 s measured). The round now opens
//! every such PIndex it is about to start up front, on a few blocking threads, and starts them
//! from what was opened.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use tessera_index::{IndexingPool, PIndex};

/// A PIndex opened (with where a corrupt directory was moved, if it was), or why not.
pub(super) type Opened = Result<(Box<dyn PIndex>, Option<PathBuf>), String>;

/// One PIndex to open.
pub(super) struct ToOpen {
    pub pindex: String,
    pub dir: PathBuf,
    pub kind: String,
    pub params: serde_json::Value,
}

/// Opens one PIndex on a blocking thread (moving a corrupt directory aside).
pub(super) async fn open_one(one: ToOpen, pool: Option<Arc<IndexingPool>>) -> Opened {
    let ToOpen {
        dir, kind, params, ..
    } = one;
    tokio::task::spawn_blocking(move || {
        tessera_index::open_or_rebuild(&kind, &dir, &params, pool).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()))
}

/// Opens `list`, at most `parallel` at once.
pub(super) async fn open_all(
    list: Vec<ToOpen>,
    pool: Option<Arc<IndexingPool>>,
    parallel: usize,
) -> BTreeMap<String, Opened> {
    futures::stream::iter(list)
        .map(|one| {
            let pool = pool.clone();
            async move {
                let name = one.pindex.clone();
                (name, open_one(one, pool).await)
            }
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await
}
