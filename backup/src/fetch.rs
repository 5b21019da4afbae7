//! The restoring side: a PIndex's files fetched from a snapshot into a new PIndex directory.
//! Every blob is checked against its hash while read; the files land in `<dir>.restoring`
//! and the directory is renamed into place only when all are there, so a PIndex directory is
//! never half restored (a fetch cut short leaves only the `.restoring` directory, removed by
//! the next attempt).

use std::path::{Path, PathBuf};

use crate::manifest::{Manifest, PIndexEntry};
use crate::repo::Repository;
use crate::BackupError;

/// The snapshot PIndex of `index` covering exactly `partitions`, if there is one.
pub fn entry_for<'a>(
    manifest: &'a Manifest,
    index: &str,
    partitions: &[u32],
) -> Option<&'a PIndexEntry> {
    manifest
        .pindexes
        .iter()
        .find(|p| p.index == index && p.source_partitions == partitions)
}

/// Fetches `entry`'s files into `dir` (which must not exist); returns the bytes fetched.
pub async fn fetch_pindex(
    repo: &Repository,
    entry: &PIndexEntry,
    dir: &Path,
) -> Result<u64, BackupError> {
    let staging = PathBuf::from(format!("{}.restoring", dir.display()));
    if staging.exists() {
        tokio::fs::remove_dir_all(&staging)
            .await
            .map_err(BackupError::storage)?;
    }
    tokio::fs::create_dir_all(&staging)
        .await
        .map_err(BackupError::storage)?;
    let mut bytes = 0;
    for file in &entry.files {
        if file.name.contains('/') || file.name.starts_with('.') {
            return Err(BackupError::Damaged {
                what: format!("the manifest entry of {}", entry.name),
                reason: format!("file name `{}` is not a plain name", file.name),
            });
        }
        let content = repo
            .get_blob(&file.hash, file.size)
            .await
            .map_err(|e| match e {
                BackupError::Damaged { reason, .. } => BackupError::Damaged {
                    what: format!("{}/{} (blob {})", entry.name, file.name, file.hash),
                    reason,
                },
                BackupError::NotFound(_) => BackupError::Damaged {
                    what: format!("{}/{}", entry.name, file.name),
                    reason: format!("blob {} is missing from the repository", file.hash),
                },
                e => e,
            })?;
        bytes += content.len() as u64;
        tokio::fs::write(staging.join(&file.name), content)
            .await
            .map_err(BackupError::storage)?;
    }
    let (from, to) = (staging.clone(), dir.to_path_buf());
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        for entry in std::fs::read_dir(&from)? {
            std::fs::File::open(entry?.path())?.sync_all()?;
        }
        std::fs::rename(&from, &to)?;
        if let Some(parent) = to.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    })
    .await
    .map_err(BackupError::storage)?
    .map_err(BackupError::storage)?;
    Ok(bytes)
}
