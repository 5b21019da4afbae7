//! The tantivy writer of one `fulltext` PIndex, open only while it is needed.
//!
//! Without a node pool (tools, tests) the writer opens with the PIndex and stays open, as a
//! plain tantivy index would. With one ([`crate::pool`]), the PIndex opens without a writer:
//! changes are buffered in order (deletes as terms, documents already parsed, so a document
//! that does not fit the mapping is counted when applied), and the writer opens at commit with
//! a slot the feed waited for, replays the buffer, and stays open for direct writes until it
//! is closed — idle, or because another PIndex waits for a slot.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tantivy::indexer::IndexWriterOptions;
use tantivy::{Index, IndexWriter, TantivyDocument, Term};

use crate::pool::{Buffer, IndexingPool, WriterSlot};
use crate::IndexError;

/// Arena of a writer without a pool.
const UNPOOLED_MEMORY: usize = 32 << 20;

/// One change waiting for a writer.
enum Op {
    Delete(Term),
    Add(TantivyDocument),
}

/// An open tantivy writer and, when pooled, the slot that allows it.
struct Open {
    writer: IndexWriter,
    slot: Option<WriterSlot>,
}

pub(crate) struct LazyWriter {
    index: Index,
    path: PathBuf,
    pool: Option<Arc<IndexingPool>>,
    open: Option<Open>,
    /// Changes waiting for a writer (pooled, writer closed), with the budget's view of them.
    pending: Vec<Op>,
    buffer: Option<Arc<Buffer>>,
    /// A slot the feed waited for, to open the writer with at the next commit.
    given: Option<WriterSlot>,
    /// Changes written to the open writer since its last commit.
    dirty: bool,
    last_commit: Instant,
}

impl LazyWriter {
    /// Opens the writer at once when there is no pool.
    pub(crate) fn new(
        index: Index,
        path: &Path,
        pool: Option<Arc<IndexingPool>>,
    ) -> Result<Self, IndexError> {
        let mut this = Self {
            buffer: pool.as_ref().map(|p| p.buffer()),
            index,
            path: path.to_path_buf(),
            pool,
            open: None,
            pending: Vec::new(),
            given: None,
            dirty: false,
            last_commit: Instant::now(),
        };
        if this.pool.is_none() {
            this.open_writer()?;
        }
        Ok(this)
    }

    pub(crate) fn pool(&self) -> Option<&Arc<IndexingPool>> {
        self.pool.as_ref()
    }

    pub(crate) fn delete_term(&mut self, term: Term) {
        match &self.open {
            Some(open) => {
                open.writer.delete_term(term);
                self.dirty = true;
            }
            None => {
                // A key term: small, counted roughly.
                self.count(64);
                self.pending.push(Op::Delete(term));
            }
        }
    }

    /// `estimate`: about what the parsed document holds in memory, for the budget.
    pub(crate) fn add_document(
        &mut self,
        document: TantivyDocument,
        estimate: u64,
    ) -> Result<(), IndexError> {
        match &self.open {
            Some(open) => {
                open.writer
                    .add_document(document)
                    .map_err(IndexError::storage)?;
                self.dirty = true;
            }
            None => {
                self.count(estimate);
                self.pending.push(Op::Add(document));
            }
        }
        Ok(())
    }

    fn count(&self, bytes: u64) {
        if let Some(buffer) = &self.buffer {
            buffer.add(bytes);
        }
    }

    /// Whether anything was applied since the last commit.
    pub(crate) fn has_changes(&self) -> bool {
        self.dirty || !self.pending.is_empty()
    }

    /// Whether a commit of `changes` needs a slot it does not hold yet.
    pub(crate) fn needs_slot(&self, changes: bool) -> bool {
        self.pool.is_some() && self.open.is_none() && self.given.is_none() && changes
    }

    pub(crate) fn give_slot(&mut self, slot: WriterSlot) {
        self.given = Some(slot);
    }

    /// Whether this PIndex should commit now: the budget asked for its buffer, or is
    /// exceeded while it holds changes, or it holds a writer another PIndex waits for.
    pub(crate) fn commit_wanted(&self) -> bool {
        let Some(pool) = &self.pool else {
            return false;
        };
        self.buffer.as_ref().is_some_and(|b| b.commit_wanted())
            || (self.has_changes() && pool.over_budget())
            || (self.open.is_some() && pool.has_waiters())
    }

    /// Whether a pooled writer is open (holding a slot).
    pub(crate) fn holds_slot(&self) -> bool {
        self.pool.is_some() && self.open.is_some()
    }

    /// A writer is open with nothing uncommitted in it: since when.
    pub(crate) fn idle_since(&self) -> Option<Instant> {
        (self.open.is_some() && !self.has_changes()).then_some(self.last_commit)
    }

    /// The open writer, opened (and the buffer replayed into it) if it was closed.
    pub(crate) fn writer(&mut self) -> Result<&mut IndexWriter, IndexError> {
        if self.open.is_none() {
            self.open_writer()?;
        }
        match &mut self.open {
            Some(open) => Ok(&mut open.writer),
            None => Err(IndexError::Storage("the writer did not open".into())),
        }
    }

    fn open_writer(&mut self) -> Result<(), IndexError> {
        // The feed waits for a slot before it commits; anyone else takes one if free and
        // otherwise opens beyond the limit rather than wait on a thread (see `pool`).
        let slot = match (self.given.take(), &self.pool) {
            (Some(slot), _) => Some(slot),
            (None, Some(pool)) => pool.try_writer_slot(),
            (None, None) => None,
        };
        let memory = match &self.pool {
            Some(pool) => pool.writer_memory() as usize,
            None => UNPOOLED_MEMORY,
        };
        let options = IndexWriterOptions::builder()
            .memory_budget_per_thread(memory)
            .num_worker_threads(1)
            .num_merge_threads(1)
            .build();
        // A writer lock held elsewhere is a retry, not damage: the files are someone's.
        let writer = self
            .index
            .writer_with_options(options)
            .map_err(|e| match e {
                tantivy::TantivyError::LockFailure(..) => IndexError::storage(e),
                e => IndexError::Corrupt {
                    path: self.path.clone(),
                    reason: format!("cannot open its writer: {e}"),
                },
            })?;
        for op in std::mem::take(&mut self.pending) {
            match op {
                Op::Delete(term) => {
                    writer.delete_term(term);
                }
                Op::Add(document) => {
                    writer.add_document(document).map_err(IndexError::storage)?;
                }
            }
            self.dirty = true;
        }
        if let Some(buffer) = &self.buffer {
            buffer.release();
        }
        self.open = Some(Open { writer, slot });
        Ok(())
    }

    /// After a commit: nothing is uncommitted. A pooled writer closes at once when another
    /// PIndex waits for a slot.
    pub(crate) fn committed(&mut self) -> Result<(), IndexError> {
        self.dirty = false;
        self.last_commit = Instant::now();
        if self.pool.as_ref().is_some_and(|p| p.has_waiters()) {
            self.close()?;
        }
        Ok(())
    }

    /// Closes a pooled writer with nothing uncommitted, after the merges it started end (so
    /// they are kept), and gives its slot back. Without a pool, or with changes not committed,
    /// it stays open.
    pub(crate) fn close(&mut self) -> Result<(), IndexError> {
        if self.pool.is_none() || self.dirty {
            return Ok(());
        }
        self.given = None;
        if let Some(Open { writer, slot }) = self.open.take() {
            writer.wait_merging_threads().map_err(IndexError::storage)?;
            drop(slot);
        }
        Ok(())
    }
}
