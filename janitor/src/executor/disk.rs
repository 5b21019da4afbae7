//! PIndex directories on this node's disk that it does not host: kept while a plan still
//! names their PIndex (the planner may place it here again and it then streams only the
//! delta), removed otherwise; and what fetches that did not finish left beside them.

use super::Executor;

impl Executor {
    /// Deletes PIndex directories this node does not host and no plan names any more (their
    /// index was deleted or re-split while the node was away). Directories of PIndexes still
    /// planned elsewhere stay: the planner may place them here again (delta recovery).
    /// Returns the unhosted PIndex directories that stay.
    pub(super) fn remove_unplanned(
        &self,
        planned: &std::collections::BTreeSet<String>,
    ) -> std::collections::BTreeSet<String> {
        let mut kept = std::collections::BTreeSet::new();
        self.remove_stale_work_dirs();
        for name in self.on_disk() {
            if planned.contains(&name) || self.failures.contains_key(&name) {
                kept.insert(name);
                continue;
            }
            let dir = self.options.pindex_dir.join(&name);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => tracing::info!(pindex = name, "removed files of a PIndex no plan names"),
                Err(e) => {
                    tracing::warn!(pindex = name, error = %e, "removing an unplanned PIndex directory failed");
                    kept.insert(name);
                }
            }
        }
        kept
    }

    /// PIndex directories on disk that this node does not host (left from before a failover).
    /// PIndex names have no dot: `<name>.<what>` is a working directory beside one (a fetch
    /// under way, a corrupt copy kept for inspection), never a PIndex. One being fetched
    /// counts as hosted.
    pub(super) fn on_disk(&self) -> std::collections::BTreeSet<String> {
        let Ok(entries) = std::fs::read_dir(&self.options.pindex_dir) else {
            return Default::default();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| {
                !name.contains('.')
                    && !self.hosted.contains_key(name)
                    && !self.copying.contains_key(name)
            })
            .collect()
    }

    /// Removes what fetches that did not finish left (`<pindex>.fetching`, `.restoring`,
    /// `.regrouping`: a node killed mid-fetch), unless a fetch of that PIndex runs now.
    fn remove_stale_work_dirs(&self) {
        let Ok(entries) = std::fs::read_dir(&self.options.pindex_dir) else {
            return;
        };
        for name in entries.filter_map(|e| e.ok()?.file_name().into_string().ok()) {
            let Some((pindex, what)) = name.split_once('.') else {
                continue;
            };
            let work = matches!(what, "fetching" | "restoring" | "regrouping");
            if !work || self.copying.contains_key(pindex) {
                continue;
            }
            let dir = self.options.pindex_dir.join(&name);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "removing a stale fetch directory failed");
            }
        }
    }
}
