//! Looking after a repository: verify a snapshot (every blob there with its size; `deep`
//! re-reads and re-hashes them all), delete a snapshot, and collect the blobs no snapshot and
//! no unfinished job references. Deleting and collecting hold the writer lock, so they never
//! run while a backup writes.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::manifest::{unreferenced, Manifest, PIndexEntry};
use crate::repo::Repository;
use crate::BackupError;

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub snapshot: String,
    pub deep: bool,
    pub blobs_checked: u64,
    pub bytes: u64,
    /// `PIndex/file (blob hash)` of every blob not there.
    pub missing: Vec<String>,
    /// `PIndex/file (blob hash): reason` of every blob that did not read back as written.
    pub damaged: Vec<String>,
    /// True only when the snapshot is whole.
    pub ok: bool,
}

/// Checks snapshot `id`: its manifest's checksum, and every blob it names.
pub async fn verify(repo: &Repository, id: &str, deep: bool) -> Result<VerifyReport, BackupError> {
    let manifest = repo.manifest(id).await?;
    let mut report = VerifyReport {
        snapshot: id.to_string(),
        deep,
        ..Default::default()
    };
    let mut seen = BTreeSet::new();
    let mut files: Vec<(String, crate::FileEntry)> = Vec::new();
    for p in &manifest.pindexes {
        files.extend(p.files.iter().map(|f| (p.name.clone(), f.clone())));
    }
    for s in &manifest.sources {
        files.extend(s.files.iter().map(|f| (s.name.clone(), f.clone())));
    }
    for (owner, file) in files {
        if !seen.insert(file.hash.clone()) {
            continue;
        }
        report.blobs_checked += 1;
        report.bytes += file.size;
        let label = format!("{owner}/{} ({})", file.name, file.hash);
        if deep {
            match repo.get_blob(&file.hash, file.size).await {
                Ok(_) => {}
                Err(BackupError::NotFound(_)) => report.missing.push(label),
                Err(BackupError::Damaged { reason, .. }) => {
                    report.damaged.push(format!("{label}: {reason}"))
                }
                Err(e @ BackupError::TooLarge { .. }) => {
                    report.damaged.push(format!("{label}: {e}"))
                }
                Err(e) => return Err(e),
            }
        } else if !repo.has_blob(&file.hash, file.size).await? {
            report.missing.push(label);
        }
    }
    report.ok = report.missing.is_empty() && report.damaged.is_empty();
    Ok(report)
}

/// What a delete or a collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    pub blobs_removed: u64,
    pub bytes_removed: u64,
    pub blobs_kept: u64,
}

/// Deletes snapshot `id` and the blobs nothing else references.
pub async fn delete_snapshot(
    repo: &Repository,
    cluster: &str,
    id: &str,
) -> Result<PruneReport, BackupError> {
    let lock = repo.lock(cluster, &format!("delete {id}")).await?;
    let result = async {
        repo.manifest(id).await?;
        repo.delete_manifest(id).await?;
        prune(repo).await
    }
    .await;
    lock.release().await?;
    result
}

/// Removes the blobs no snapshot and no unfinished job references.
pub async fn gc(repo: &Repository, cluster: &str) -> Result<PruneReport, BackupError> {
    let lock = repo.lock(cluster, "gc").await?;
    let result = prune(repo).await;
    lock.release().await?;
    result
}

async fn prune(repo: &Repository) -> Result<PruneReport, BackupError> {
    let mut kept: Vec<Manifest> = Vec::new();
    for id in repo.snapshot_ids().await? {
        // A snapshot whose manifest is damaged still protects nothing we can name: refuse to
        // collect rather than guess.
        kept.push(repo.manifest(&id).await?);
    }
    let mut staged_refs: BTreeSet<String> = BTreeSet::new();
    for job in repo.staged_jobs().await? {
        for bytes in repo.staged(&job).await?.values() {
            if let Ok(entry) = serde_json::from_slice::<PIndexEntry>(bytes) {
                staged_refs.extend(entry.files.into_iter().map(|f| f.hash));
            } else if let Ok(entry) = serde_json::from_slice::<crate::SourceEntry>(bytes) {
                staged_refs.extend(entry.files.into_iter().map(|f| f.hash));
            }
        }
    }
    let present: BTreeMap<String, u64> = repo.blobs().await?;
    let mut report = PruneReport::default();
    let candidates = unreferenced(present.keys(), &kept);
    for hash in candidates {
        if staged_refs.contains(&hash) {
            continue;
        }
        let size = present.get(&hash).copied().unwrap_or(0);
        repo.delete_blob(&hash, size).await?;
        report.blobs_removed += 1;
        report.bytes_removed += size;
    }
    report.blobs_kept = present.len() as u64 - report.blobs_removed;
    Ok(report)
}
