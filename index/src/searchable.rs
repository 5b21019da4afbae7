//! A handle for searching a PIndex while its feed owns it: the tantivy index and reader
//! (reloaded at each commit), the mapping, and the checkpoints of what the reader shows, so a
//! query can wait until a PIndex shows a given seq (`at_plus` consistency). A query waiting
//! for seqs the reader does not show yet asks for a refresh ([`RefreshDemand`]): the feed
//! then commits what it has applied at once, and after every batch while anyone waits,
//! instead of on its timer — one commit for every waiter at that moment.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tantivy::{Index, IndexReader, Searcher};
use tokio::sync::{watch, Notify};

use crate::checkpoint::Checkpoints;
use crate::mapping::Mapping;

/// Queries waiting for a PIndex to show seqs it does not show yet, as its feed sees them.
#[derive(Debug, Default)]
pub struct RefreshDemand {
    waiting: AtomicUsize,
    wake: Notify,
}

impl RefreshDemand {
    /// Whether any query waits now.
    pub fn waiting(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }

    /// Resolves when a query begins to wait (a wake-up given while nobody listened is kept).
    pub async fn asked(&self) {
        self.wake.notified().await
    }

    fn enter(self: &Arc<Self>) -> Waiting {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        self.wake.notify_one();
        Waiting(self.clone())
    }
}

/// One waiting query; counted until dropped.
struct Waiting(Arc<RefreshDemand>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Cheap to clone; every clone sees the same PIndex.
#[derive(Clone)]
pub struct Searchable {
    index: Index,
    reader: IndexReader,
    mapping: Mapping,
    visible: watch::Receiver<Checkpoints>,
    demand: Arc<RefreshDemand>,
}

impl std::fmt::Debug for Searchable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Searchable")
            .field("visible", &*self.visible.borrow())
            .finish_non_exhaustive()
    }
}

impl Searchable {
    pub(crate) fn new(
        index: Index,
        reader: IndexReader,
        mapping: Mapping,
        visible: watch::Receiver<Checkpoints>,
        demand: Arc<RefreshDemand>,
    ) -> Self {
        Self {
            index,
            reader,
            mapping,
            visible,
            demand,
        }
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The documents as of the last commit.
    pub fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// The checkpoints of what [`Searchable::searcher`] shows.
    pub fn visible(&self) -> Checkpoints {
        self.visible.borrow().clone()
    }

    /// Waits until every `(partition, seq)` in `wanted` is visible; `Err` with the partitions
    /// still behind (partition, seq reached, seq wanted) when `deadline` comes first.
    pub async fn wait_visible(
        &self,
        wanted: &[(u32, u64)],
        deadline: tokio::time::Instant,
    ) -> Result<(), Vec<(u32, u64, u64)>> {
        let behind = |visible: &Checkpoints| -> Vec<(u32, u64, u64)> {
            wanted
                .iter()
                .filter_map(|&(p, want)| {
                    let reached = visible.get(&p).map_or(0, |c| c.seq);
                    (reached < want).then_some((p, reached, want))
                })
                .collect()
        };
        if behind(&self.visible.borrow()).is_empty() {
            return Ok(());
        }
        let _asking = self.demand.enter();
        let mut rx = self.visible.clone();
        let waiting = rx.wait_for(|v| behind(v).is_empty());
        let reached = matches!(tokio::time::timeout_at(deadline, waiting).await, Ok(Ok(_)));
        if reached {
            return Ok(());
        }
        // Timed out, or the PIndex was closed: report where it stands.
        let visible = self.visible();
        Err(behind(&visible))
    }
}
