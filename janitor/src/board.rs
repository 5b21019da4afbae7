//! The status board: what a node shows about its local PIndexes (role, documents, the live
//! feed figures, the last error) and the handle queries search them through. The executor
//! writes it; the API and query coordination read it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tessera_cfg::schema::CopyRole;

use crate::feed::FeedStatus;

/// What the node shows about one local PIndex.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LocalStatus {
    pub index: String,
    pub role: Option<CopyRole>,
    pub docs: u64,
    pub feed: Option<FeedStatus>,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Where a corrupt copy of this PIndex was moved, if it was.
    pub rebuilt_from: Option<String>,
    /// What a restored PIndex's files were fetched from, if they were.
    pub restored_from: Option<String>,
    /// The peer a new copy's files were fetched from, if they were.
    pub copied_from: Option<String>,
    /// A new copy fetching its files from a peer, while it does.
    pub copying: Option<Copying>,
    /// The running feed's live status (read through [`LocalStatus::snapshot`]).
    #[serde(skip)]
    pub(crate) live: Option<Arc<Mutex<FeedStatus>>>,
    /// A handle to search the PIndex while it runs (`None` when stopped or not searchable).
    #[serde(skip)]
    pub search: Option<tessera_index::Searchable>,
}

impl LocalStatus {
    /// This status with the feed's figures as of now.
    pub fn snapshot(&self) -> LocalStatus {
        let mut out = self.clone();
        if let Some(feed) = self
            .live
            .as_ref()
            .and_then(|l| l.lock().ok().map(|s| s.clone()))
        {
            out.docs = feed.docs;
            out.feed = Some(feed);
        }
        out
    }
}

/// A new copy fetching its files from a peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Copying {
    pub from: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// Shared view of the local PIndexes, for the REST API.
pub type StatusBoard = Arc<Mutex<BTreeMap<String, LocalStatus>>>;

/// Makes what local PIndex `pindex` has applied visible (committed) before going on, waiting
/// at most `within`: a backup then saves everything the PIndex had when it was asked, not
/// only what its commit timer had committed. A no-op for a PIndex not running here.
pub async fn commit_applied(board: &StatusBoard, pindex: &str, within: std::time::Duration) {
    let found = board.lock().ok().and_then(|b| {
        let entry = b.get(pindex)?.snapshot();
        let search = entry.search.clone()?;
        let applied: Vec<(u32, u64)> = entry
            .feed?
            .partitions
            .iter()
            .map(|(p, s)| (*p, s.seq))
            .collect();
        Some((search, applied))
    });
    if let Some((search, applied)) = found {
        let deadline = tokio::time::Instant::now() + within;
        if let Err(behind) = search.wait_visible(&applied, deadline).await {
            tracing::debug!(
                pindex,
                ?behind,
                "applied changes not committed in time; saving the last commit"
            );
        }
    }
}
