//! The `blackhole` PIndex: accepts and counts, keeps no documents. Its checkpoints and count
//! are written to one file on commit (write to a temp file, fsync, rename: all or nothing).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, Checkpoints};
use crate::{Change, IndexError, PIndex, PIndexStats};

const FILE: &str = "blackhole.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    puts: u64,
    deletes: u64,
    checkpoints: Checkpoints,
}

pub struct BlackholePIndex {
    dir: PathBuf,
    committed: State,
    applied: State,
    stats: PIndexStats,
}

impl BlackholePIndex {
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        std::fs::create_dir_all(dir).map_err(IndexError::storage)?;
        let path = dir.join(FILE);
        let committed: State = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| IndexError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(IndexError::storage(e)),
        };
        let applied = State {
            puts: committed.puts,
            deletes: committed.deletes,
            checkpoints: committed.checkpoints.clone(),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            committed,
            applied,
            stats: PIndexStats::default(),
        })
    }
}

impl PIndex for BlackholePIndex {
    fn apply(
        &mut self,
        partition: u32,
        partition_uuid: &str,
        seq: u64,
        change: Change<'_>,
    ) -> Result<(), IndexError> {
        match change {
            Change::Put { .. } => self.applied.puts += 1,
            Change::Delete { .. } => self.applied.deletes += 1,
            Change::Skip => {}
        }
        checkpoint::advance(
            &mut self.applied.checkpoints,
            partition,
            partition_uuid,
            seq,
        );
        self.stats.applied += 1;
        Ok(())
    }

    /// Forgets the partition's position (a blackhole keeps no documents to drop).
    fn drop_partition(&mut self, partition: u32) -> Result<(), IndexError> {
        self.applied.checkpoints.remove(&partition);
        Ok(())
    }

    fn commit(&mut self) -> Result<(), IndexError> {
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        let bytes = serde_json::to_vec(&self.applied).map_err(IndexError::storage)?;
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, self.dir.join(FILE)))
            .map_err(IndexError::storage)?;
        self.committed = State {
            puts: self.applied.puts,
            deletes: self.applied.deletes,
            checkpoints: self.applied.checkpoints.clone(),
        };
        self.stats.commits += 1;
        Ok(())
    }

    fn committed(&self) -> &Checkpoints {
        &self.committed.checkpoints
    }

    fn applied(&self) -> &Checkpoints {
        &self.applied.checkpoints
    }

    /// Mutations accepted (a blackhole does not know which keys exist).
    fn doc_count(&self) -> Result<u64, IndexError> {
        Ok(self.committed.puts)
    }

    fn stats(&self) -> PIndexStats {
        self.stats.clone()
    }
}
