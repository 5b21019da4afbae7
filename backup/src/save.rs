//! The hosting side of a backup: one PIndex's files at its last commit, set apart by hard
//! links and sent to the repository (only the blobs it lacks), at a bounded rate.

use std::collections::BTreeMap;
use std::path::Path;

use crate::manifest::{FileEntry, PIndexEntry, PartitionPoint};
use crate::repo::Repository;
use crate::BackupError;

pub use tessera_copy::pace::Pace;

/// What a save sent to the repository.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    pub bytes: u64,
    pub files: u64,
}

impl Sent {
    /// Counts one blob stored (sent only if the repository lacked it).
    pub fn count(&mut self, blob: &crate::repo::StoredBlob) {
        self.bytes += blob.uploaded;
        self.files += u64::from(blob.uploaded > 0);
    }
}

/// What the hosting node knows of the PIndex to save.
#[derive(Debug, Clone)]
pub struct PIndexToSave {
    pub index: String,
    pub pindex: String,
    pub kind: String,
    pub source_partitions: Vec<u32>,
    pub node: String,
}

/// Saves the PIndex in `pindex_dir` into `repo`, setting its files apart under `staging`
/// (removed afterwards); returns its manifest entry and the bytes sent.
pub async fn save_pindex(
    repo: &Repository,
    what: &PIndexToSave,
    pindex_dir: &Path,
    staging: &Path,
    pace: &mut Pace,
) -> Result<(PIndexEntry, Sent), BackupError> {
    let (kind, dir, into) = (
        what.kind.clone(),
        pindex_dir.to_path_buf(),
        staging.to_path_buf(),
    );
    if !dir.exists() {
        return Err(BackupError::NotFound(format!(
            "PIndex {} on node {}",
            what.pindex, what.node
        )));
    }
    let set = tokio::task::spawn_blocking(move || tessera_index::fileset::take(&kind, &dir, &into))
        .await
        .map_err(BackupError::storage)?
        .map_err(BackupError::storage)?;
    let result = send_files(repo, &set, pace).await;
    let cleanup = set.dir.clone();
    let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(cleanup)).await;
    let (files, sent) = result?;
    let checkpoints: BTreeMap<u32, PartitionPoint> = set
        .checkpoints
        .iter()
        .map(|(p, c)| {
            (
                *p,
                PartitionPoint {
                    seq: c.seq,
                    partition_uuid: c.partition_uuid.clone(),
                },
            )
        })
        .collect();
    Ok((
        PIndexEntry {
            name: what.pindex.clone(),
            index: what.index.clone(),
            source_partitions: what.source_partitions.clone(),
            read_from: what.node.clone(),
            checkpoints,
            docs: set.docs,
            files,
        },
        sent,
    ))
}

async fn send_files(
    repo: &Repository,
    set: &tessera_index::fileset::FileSet,
    pace: &mut Pace,
) -> Result<(Vec<FileEntry>, Sent), BackupError> {
    let mut files = Vec::with_capacity(set.files.len());
    let mut sent = Sent::default();
    for name in &set.files {
        let path = set.dir.join(name);
        let content = tokio::fs::read(&path)
            .await
            .map_err(|e| BackupError::Storage(format!("reading {}: {e}", path.display())))?;
        let blob = repo.put_blob(content).await?;
        pace.sent(blob.uploaded).await;
        sent.count(&blob);
        files.push(FileEntry {
            name: name.clone(),
            hash: blob.hash,
            size: blob.size,
        });
    }
    Ok((files, sent))
}
