//! The restoring side: a PIndex's files fetched from a snapshot into a new PIndex directory.
//! Every blob is checked against its hash while read; the files land in `<dir>.restoring`
//! and the directory is renamed into place only when all are there, so a PIndex directory is
//! never half restored (a fetch cut short leaves only the `.restoring` directory, removed by
//! the next attempt). A PIndex of other boundaries than the saved ones is regrouped: the
//! saved PIndexes overlapping it are fetched into `<dir>.regrouping/`, the documents of its
//! partitions picked out of them into `<dir>.restoring`, which then goes into place the same
//! way.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::manifest::PIndexEntry;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::repo::Repository;
use crate::restore_plan::regrouped_checkpoints;
use crate::BackupError;

/// Fetches `entry`'s files into `dir` (which must not exist); returns the bytes fetched.
/// `done` counts them as they arrive (a progress report reads it meanwhile).
pub async fn fetch_pindex(
    repo: &Repository,
    entry: &PIndexEntry,
    dir: &Path,
    done: &AtomicU64,
) -> Result<u64, BackupError> {
    let staging = beside(dir, "restoring");
    let bytes = download(repo, entry, &staging, done).await?;
    put_in_place(staging, dir.to_path_buf()).await?;
    Ok(bytes)
}

/// Makes in `dir` (which must not exist) the PIndex covering `partitions` out of the saved
/// PIndexes `from` (each overlapping them): they are fetched, the documents of `partitions`
/// picked out with each partition's saved checkpoint. Returns the bytes fetched; `done` counts
/// them as they arrive.
pub async fn fetch_regrouped(
    repo: &Repository,
    from: &[&PIndexEntry],
    partitions: &[u32],
    dir: &Path,
    done: &AtomicU64,
) -> Result<u64, BackupError> {
    let work = beside(dir, "regrouping");
    remove_dir(&work).await?;
    let mut parts = Vec::new();
    let mut bytes = 0;
    for (i, entry) in from.iter().enumerate() {
        let part = work.join(i.to_string());
        bytes += download(repo, entry, &part, done).await?;
        parts.push(part);
    }
    let checkpoints = regrouped_checkpoints(from, partitions)
        .into_iter()
        .map(|(p, point)| {
            let point = tessera_index::Checkpoint {
                seq: point.seq,
                partition_uuid: point.partition_uuid,
            };
            (p, point)
        })
        .collect();
    let staging = beside(dir, "restoring");
    remove_dir(&staging).await?;
    let wanted: BTreeSet<u32> = partitions.iter().copied().collect();
    let out = staging.clone();
    let names: Vec<String> = from.iter().map(|e| e.name.clone()).collect();
    tokio::task::spawn_blocking(move || {
        tessera_index::regroup::regroup(&parts, &wanted, &checkpoints, &out)
    })
    .await
    .map_err(BackupError::storage)?
    .map_err(|e| match e {
        tessera_index::IndexError::Corrupt { reason, .. } => BackupError::Damaged {
            what: format!("the saved PIndexes {}", names.join(", ")),
            reason,
        },
        e => BackupError::storage(e),
    })?;
    put_in_place(staging, dir.to_path_buf()).await?;
    remove_dir(&work).await?;
    Ok(bytes)
}

/// `<dir>.<what>`: a working directory beside a PIndex directory.
fn beside(dir: &Path, what: &str) -> PathBuf {
    PathBuf::from(format!("{}.{what}", dir.display()))
}

async fn remove_dir(dir: &Path) -> Result<(), BackupError> {
    if dir.exists() {
        tokio::fs::remove_dir_all(dir)
            .await
            .map_err(BackupError::storage)?;
    }
    Ok(())
}

/// Writes `entry`'s files into `into` (emptied first), each blob checked; returns the bytes.
async fn download(
    repo: &Repository,
    entry: &PIndexEntry,
    into: &Path,
    done: &AtomicU64,
) -> Result<u64, BackupError> {
    remove_dir(into).await?;
    tokio::fs::create_dir_all(into)
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
        let len = content.len() as u64;
        tokio::fs::write(into.join(&file.name), content)
            .await
            .map_err(BackupError::storage)?;
        done.fetch_add(len, Ordering::Relaxed);
    }
    Ok(bytes)
}

/// Makes the files of `from` durable and renames it to `to`, durably.
async fn put_in_place(from: PathBuf, to: PathBuf) -> Result<(), BackupError> {
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        for entry in std::fs::read_dir(&from)? {
            let path = entry?.path();
            if path.is_file() {
                std::fs::File::open(path)?.sync_all()?;
            }
        }
        std::fs::rename(&from, &to)?;
        if let Some(parent) = to.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    })
    .await
    .map_err(BackupError::storage)?
    .map_err(BackupError::storage)
}
