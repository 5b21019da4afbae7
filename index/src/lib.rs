//! PIndex implementations. A PIndex is one index partition: it applies the changes of the
//! source partitions it covers and commits them durably together with its checkpoints (per
//! source partition: the seq reached and the partition uuid it belongs to), so that a restart
//! resumes exactly where the data ends.
//!
//! - [`fulltext`]: a tantivy index per PIndex; checkpoints in the commit payload.
//! - [`blackhole`]: accepts and counts (tests, benchmarks); checkpoints in a small file.
//! - [`mapping`]: the `fulltext` field mapping, validated with errors naming the field.
//! - [`regroup`]: PIndexes of one partitioning regrouped into a PIndex of another (restore).
//! - [`searchable`]: a handle to search a PIndex (and wait for a seq) while a feed owns it.
//! - [`pool`]: the node's indexing threads, writers and memory budget, shared by its PIndexes.

pub mod blackhole;
pub mod checkpoint;
pub mod fileset;
pub mod fulltext;
pub mod mapping;
pub mod pool;
pub mod regroup;
pub mod searchable;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use checkpoint::{Checkpoint, Checkpoints};
pub use pool::{IndexingLimits, IndexingPool, IndexingUsage, WriterSlot};
pub use searchable::{RefreshDemand, Searchable};

/// PIndex types this build can host.
pub const TYPES: &[&str] = &["fulltext", "blackhole"];

/// One change from a source partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// Insert or replace the document with this key; `doc` is JSON.
    Put {
        key: &'a str,
        doc: &'a [u8],
    },
    Delete {
        key: &'a str,
    },
    /// A change the source could not turn into a document (a JetStream message without a
    /// key): nothing is indexed, only the partition's position moves past it.
    Skip,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("unknown PIndex type `{0}`")]
    UnknownType(String),
    #[error("mapping: `{field}`: {reason}")]
    Mapping { field: String, reason: String },
    /// The PIndex directory cannot be opened as what it should be.
    #[error("PIndex at {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("PIndex storage: {0}")]
    Storage(String),
}

impl IndexError {
    pub(crate) fn storage(e: impl std::fmt::Display) -> Self {
        IndexError::Storage(e.to_string())
    }
}

/// Counters a PIndex keeps about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PIndexStats {
    /// Changes applied since opening.
    pub applied: u64,
    /// Documents skipped because they do not match the mapping (the feed goes on).
    pub skipped_docs: u64,
    /// The last skip's reason.
    pub last_skip: Option<String>,
    pub commits: u64,
}

/// One hosted index partition.
pub trait PIndex: Send {
    /// Applies one change of `partition` at `seq` (under `partition_uuid`). A document that does
    /// not fit the mapping is skipped and counted; its seq still counts as reached.
    fn apply(
        &mut self,
        partition: u32,
        partition_uuid: &str,
        seq: u64,
        change: Change<'_>,
    ) -> Result<(), IndexError>;
    /// Removes every document of `partition` and its checkpoint (its source history was
    /// rewritten: it is streamed again from the start). Durable with the next commit.
    fn drop_partition(&mut self, partition: u32) -> Result<(), IndexError>;
    /// Makes everything applied durable, atomically with the checkpoints.
    fn commit(&mut self) -> Result<(), IndexError>;
    /// The checkpoints as of the last commit: what a restart resumes from.
    fn committed(&self) -> &Checkpoints;
    /// The checkpoints of everything applied, committed or not.
    fn applied(&self) -> &Checkpoints;
    /// Documents visible as of the last commit.
    fn doc_count(&self) -> Result<u64, IndexError>;
    fn stats(&self) -> PIndexStats;
    /// A handle to search this PIndex while a feed owns it; `None` for types that cannot be
    /// searched.
    fn searchable(&self) -> Option<Searchable> {
        None
    }
    /// The queries waiting for this PIndex to show seqs it has not committed yet (its feed
    /// commits at once for them); `None` for types that cannot be searched.
    fn refresh_demand(&self) -> Option<std::sync::Arc<RefreshDemand>> {
        None
    }

    // How a PIndex shares its node's indexing resources ([`pool`]); types outside a pool keep
    // the defaults. The feed drives these: it runs the PIndex's blocking work on the pool,
    // waits for a writer slot before a commit that needs one, commits when the budget asks,
    // and closes an idle writer.

    /// The node pool this PIndex draws on.
    fn indexing_pool(&self) -> Option<Arc<IndexingPool>> {
        None
    }
    /// Whether the next commit needs a writer slot this PIndex does not hold.
    fn needs_writer_slot(&self) -> bool {
        false
    }
    /// The slot for the next commit's writer (awaited from the pool by the caller).
    fn give_writer_slot(&mut self, _slot: WriterSlot) {}
    /// Whether the node's pool asks this PIndex to commit now (its buffer is among the
    /// largest, the budget is exceeded while it holds changes, or another PIndex waits for
    /// the writer slot it holds).
    fn commit_wanted(&self) -> bool {
        false
    }
    /// Whether this PIndex holds one of its pool's writer slots.
    fn holds_writer_slot(&self) -> bool {
        false
    }
    /// Since when an open writer has held nothing uncommitted; `None` when no writer is open
    /// or it holds changes.
    fn writer_idle_since(&self) -> Option<std::time::Instant> {
        None
    }
    /// Closes an open writer holding nothing uncommitted and gives its slot back.
    fn close_writer(&mut self) -> Result<(), IndexError> {
        Ok(())
    }
}

/// Opens the PIndex of `kind` in `dir` (creating it). `params` are the index definition's
/// type params (`{"mapping": ...}` for fulltext; `null` for the dynamic default).
pub fn open(
    kind: &str,
    dir: &Path,
    params: &serde_json::Value,
) -> Result<Box<dyn PIndex>, IndexError> {
    open_in(kind, dir, params, None)
}

/// [`open`], drawing on the node's indexing `pool`.
pub fn open_in(
    kind: &str,
    dir: &Path,
    params: &serde_json::Value,
    pool: Option<Arc<IndexingPool>>,
) -> Result<Box<dyn PIndex>, IndexError> {
    match kind {
        "fulltext" => Ok(Box::new(fulltext::FulltextPIndex::open_in(
            dir,
            &mapping::Mapping::from_params(params)?,
            pool,
        )?)),
        "blackhole" => Ok(Box::new(blackhole::BlackholePIndex::open(dir)?)),
        other => Err(IndexError::UnknownType(other.to_string())),
    }
}

/// Like [`open`], but a corrupt directory is moved aside (to `<dir>.corrupt-<n>`) and the
/// PIndex rebuilt empty. Returns where the corrupt copy went, for reporting.
pub fn open_or_rebuild(
    kind: &str,
    dir: &Path,
    params: &serde_json::Value,
    pool: Option<Arc<IndexingPool>>,
) -> Result<(Box<dyn PIndex>, Option<PathBuf>), IndexError> {
    match open_in(kind, dir, params, pool.clone()) {
        Err(IndexError::Corrupt { path, reason }) => {
            let aside = move_aside(dir)?;
            tracing::warn!(path = %path.display(), moved_to = %aside.display(), reason, "corrupt PIndex moved aside; rebuilding");
            Ok((open_in(kind, dir, params, pool)?, Some(aside)))
        }
        other => other.map(|p| (p, None)),
    }
}

/// Moves a damaged PIndex directory to `<dir>.corrupt-<n>` (kept for inspection); returns
/// where it went.
pub fn move_aside(dir: &Path) -> Result<PathBuf, IndexError> {
    let aside = (0..)
        .map(|n| PathBuf::from(format!("{}.corrupt-{n}", dir.display())))
        .find(|p| !p.exists())
        .ok_or_else(|| IndexError::Storage("no free name to move a corrupt PIndex aside".into()))?;
    std::fs::rename(dir, &aside).map_err(IndexError::storage)?;
    Ok(aside)
}
