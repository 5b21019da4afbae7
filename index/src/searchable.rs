//! A handle for searching a PIndex while its feed owns it: the tantivy index and reader
//! (reloaded at each commit), the mapping, and the checkpoints of what the reader shows, so a
//! query can wait until a PIndex shows a given seq (`at_plus` consistency).

use tantivy::{Index, IndexReader, Searcher};
use tokio::sync::watch;

use crate::checkpoint::Checkpoints;
use crate::mapping::Mapping;

/// Cheap to clone; every clone sees the same PIndex.
#[derive(Clone)]
pub struct Searchable {
    index: Index,
    reader: IndexReader,
    mapping: Mapping,
    visible: watch::Receiver<Checkpoints>,
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
    ) -> Self {
        Self {
            index,
            reader,
            mapping,
            visible,
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
