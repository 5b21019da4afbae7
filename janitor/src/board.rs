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
    /// Whether the PIndex is open with its feed running.
    pub fn is_running(&self) -> bool {
        self.live.is_some()
    }

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

/// Makes local PIndex `pindex` show (commit) everything it has applied and at least the seqs
/// in `at_least` (of its own partitions), waiting at most `within`: a backup then saves every
/// change the PIndex had when it was asked and every change the source had when the backup
/// began, not only what its commit timer had committed. `Err` names the partitions still
/// behind (partition, seq shown, seq wanted) when `within` runs out. A no-op for a PIndex not
/// running here.
pub async fn commit_applied(
    board: &StatusBoard,
    pindex: &str,
    at_least: &BTreeMap<u32, u64>,
    within: std::time::Duration,
) -> Result<(), Vec<(u32, u64, u64)>> {
    let found = board.lock().ok().and_then(|b| {
        let entry = b.get(pindex)?.snapshot();
        let search = entry.search.clone()?;
        let wanted: Vec<(u32, u64)> = entry
            .feed?
            .partitions
            .iter()
            .map(|(p, s)| (*p, s.seq.max(at_least.get(p).copied().unwrap_or(0))))
            .collect();
        Some((search, wanted))
    });
    match found {
        Some((search, wanted)) => {
            let deadline = tokio::time::Instant::now() + within;
            search.wait_visible(&wanted, deadline).await
        }
        None => Ok(()),
    }
}
