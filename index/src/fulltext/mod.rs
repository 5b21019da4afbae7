//! The `fulltext` PIndex: one tantivy index per PIndex. Documents are upserted by key (a
//! `_id` term); every commit carries the checkpoints in tantivy's commit payload, so data and
//! checkpoints are durable together or not at all.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tantivy::schema::Field;
use tantivy::{Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

use crate::checkpoint::{self, Checkpoints};
use crate::mapping::Mapping;
use crate::pool::{IndexingPool, WriterSlot};
use crate::{Change, IndexError, PIndex, PIndexStats};

pub mod repair;
mod schema;
pub mod stored;
mod writer;

pub use schema::schema;
use writer::LazyWriter;

/// The key field.
pub const ID_FIELD: &str = "_id";
/// The whole document, in the dynamic default mapping.
pub const DOC_FIELD: &str = "_doc";
/// The source partition a document came from (to drop a partition on rollback).
pub const PARTITION_FIELD: &str = "_partition";

pub struct FulltextPIndex {
    path: PathBuf,
    index: Index,
    writer: LazyWriter,
    reader: IndexReader,
    id: Field,
    partition: Field,
    mapping: Mapping,
    committed: Checkpoints,
    applied: Checkpoints,
    stats: PIndexStats,
    /// What the reader shows, for searchers waiting on a seq.
    visible: tokio::sync::watch::Sender<Checkpoints>,
    /// Searchers waiting on a seq not shown yet (the feed commits sooner for them).
    demand: std::sync::Arc<crate::searchable::RefreshDemand>,
}

impl FulltextPIndex {
    /// Opens the index in `dir`, or creates it. An existing index that cannot be read, fails
    /// tantivy's checksum validation, cannot open its reader or writer (other than because
    /// another writer holds it), or whose schema is not this mapping's, is reported `Corrupt`
    /// (the caller moves it aside and rebuilds it).
    pub fn open(dir: &Path, mapping: &Mapping) -> Result<Self, IndexError> {
        Self::open_in(dir, mapping, None)
    }

    /// [`open`](Self::open), sharing `pool`'s threads, writers and memory budget with the
    /// node's other PIndexes (its writer opens at the first commit).
    pub fn open_in(
        dir: &Path,
        mapping: &Mapping,
        pool: Option<Arc<IndexingPool>>,
    ) -> Result<Self, IndexError> {
        let wanted = schema(mapping);
        let corrupt = |reason: String| IndexError::Corrupt {
            path: dir.to_path_buf(),
            reason,
        };
        let index = if dir.join("meta.json").exists() {
            let index = Index::open_in_dir(dir).map_err(|e| corrupt(e.to_string()))?;
            if index.schema() != wanted {
                return Err(corrupt(
                    "its schema is not the mapping's (the mapping changed)".into(),
                ));
            }
            let damaged = index
                .validate_checksum()
                .map_err(|e| corrupt(format!("checksum validation failed: {e}")))?;
            if !damaged.is_empty() {
                let mut files: Vec<String> =
                    damaged.iter().map(|p| p.display().to_string()).collect();
                files.sort();
                return Err(corrupt(format!(
                    "checksum mismatch in {}",
                    files.join(", ")
                )));
            }
            index
        } else {
            std::fs::create_dir_all(dir).map_err(IndexError::storage)?;
            Index::create_in_dir(dir, wanted).map_err(IndexError::storage)?
        };
        let committed = match index
            .load_metas()
            .map_err(|e| corrupt(e.to_string()))?
            .payload
        {
            Some(payload) => checkpoint::decode(&payload)
                .ok_or_else(|| corrupt("unreadable checkpoints in the commit payload".into()))?,
            None => Checkpoints::new(),
        };
        let writer = LazyWriter::new(index.clone(), dir, pool)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| corrupt(format!("cannot open its reader: {e}")))?;
        let id = index
            .schema()
            .get_field(ID_FIELD)
            .map_err(IndexError::storage)?;
        let partition = index
            .schema()
            .get_field(PARTITION_FIELD)
            .map_err(IndexError::storage)?;
        Ok(Self {
            path: dir.to_path_buf(),
            index,
            writer,
            reader,
            id,
            partition,
            mapping: mapping.clone(),
            applied: committed.clone(),
            visible: tokio::sync::watch::Sender::new(committed.clone()),
            demand: Default::default(),
            committed,
            stats: PIndexStats::default(),
        })
    }

    /// The tantivy index, for searching.
    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tantivy document for `doc`, or why it does not fit the mapping.
    fn document(&self, key: &str, partition: u32, doc: &[u8]) -> Result<TantivyDocument, String> {
        let value: serde_json::Value =
            serde_json::from_slice(doc).map_err(|e| format!("not JSON: {e}"))?;
        let serde_json::Value::Object(mut object) = value else {
            return Err("not a JSON object".into());
        };
        let mut shaped = serde_json::Map::new();
        shaped.insert(ID_FIELD.into(), key.into());
        shaped.insert(PARTITION_FIELD.into(), partition.into());
        if self.mapping.dynamic {
            shaped.insert(DOC_FIELD.into(), serde_json::Value::Object(object));
        } else {
            for f in &self.mapping.fields {
                if let Some(v) = object.remove(&f.name).filter(|v| !v.is_null()) {
                    shaped.insert(f.name.clone(), v);
                }
            }
        }
        TantivyDocument::from_json_object(&self.index.schema(), shaped).map_err(|e| e.to_string())
    }
}

impl PIndex for FulltextPIndex {
    fn apply(
        &mut self,
        partition: u32,
        partition_uuid: &str,
        seq: u64,
        change: Change<'_>,
    ) -> Result<(), IndexError> {
        match change {
            Change::Put { key, doc } => {
                // The new version replaces the old one; a version that does not fit the
                // mapping still removes the old one (it is no longer the document).
                self.writer.delete_term(Term::from_field_text(self.id, key));
                match self.document(key, partition, doc) {
                    Ok(document) => {
                        // About what the parsed document holds (for the node's budget).
                        let estimate = 2 * (doc.len() + key.len()) as u64 + 96;
                        self.writer.add_document(document, estimate)?;
                    }
                    Err(reason) => {
                        self.stats.skipped_docs += 1;
                        self.stats.last_skip = Some(format!("{key}: {reason}"));
                    }
                }
            }
            Change::Delete { key } => {
                self.writer.delete_term(Term::from_field_text(self.id, key));
            }
            Change::Skip => {}
        }
        checkpoint::advance(&mut self.applied, partition, partition_uuid, seq);
        self.stats.applied += 1;
        Ok(())
    }

    fn drop_partition(&mut self, partition: u32) -> Result<(), IndexError> {
        self.writer
            .delete_term(Term::from_field_u64(self.partition, u64::from(partition)));
        self.applied.remove(&partition);
        Ok(())
    }

    fn commit(&mut self) -> Result<(), IndexError> {
        // A pooled PIndex with nothing applied since its last commit opens no writer for it.
        if self.writer.pool().is_some()
            && !self.writer.has_changes()
            && self.applied == self.committed
        {
            return Ok(());
        }
        let payload = checkpoint::encode(&self.applied);
        let writer = self.writer.writer()?;
        let mut prepared = writer.prepare_commit().map_err(IndexError::storage)?;
        prepared.set_payload(&payload);
        prepared.commit().map_err(IndexError::storage)?;
        // A committed segment whose files cannot be read is damage, not a passing failure: the
        // caller moves the directory aside and rebuilds it from the source.
        self.reader.reload().map_err(|e| match e {
            tantivy::TantivyError::OpenReadError(_) => IndexError::Corrupt {
                path: self.path.clone(),
                reason: format!("a committed segment cannot be read: {e}"),
            },
            e => IndexError::storage(e),
        })?;
        self.committed = self.applied.clone();
        self.visible.send_replace(self.committed.clone());
        self.stats.commits += 1;
        self.writer.committed()
    }

    fn committed(&self) -> &Checkpoints {
        &self.committed
    }

    fn applied(&self) -> &Checkpoints {
        &self.applied
    }

    fn doc_count(&self) -> Result<u64, IndexError> {
        Ok(self.reader.searcher().num_docs())
    }

    fn stats(&self) -> PIndexStats {
        self.stats.clone()
    }

    fn searchable(&self) -> Option<crate::Searchable> {
        Some(crate::Searchable::new(
            self.index.clone(),
            self.reader.clone(),
            self.mapping.clone(),
            self.visible.subscribe(),
            self.demand.clone(),
        ))
    }

    fn refresh_demand(&self) -> Option<std::sync::Arc<crate::searchable::RefreshDemand>> {
        Some(self.demand.clone())
    }

    fn indexing_pool(&self) -> Option<Arc<IndexingPool>> {
        self.writer.pool().cloned()
    }

    fn needs_writer_slot(&self) -> bool {
        self.writer
            .needs_slot(self.writer.has_changes() || self.applied != self.committed)
    }

    fn give_writer_slot(&mut self, slot: WriterSlot) {
        self.writer.give_slot(slot);
    }

    fn commit_wanted(&self) -> bool {
        self.writer.commit_wanted()
    }

    fn writer_idle_since(&self) -> Option<std::time::Instant> {
        self.writer.idle_since()
    }

    fn holds_writer_slot(&self) -> bool {
        self.writer.holds_slot()
    }

    fn close_writer(&mut self) -> Result<(), IndexError> {
        self.writer.close()
    }
}
