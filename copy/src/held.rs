//! File sets held apart on the serving node while a fetcher reads them: each in a directory
//! of its own under the node's staging dir (hard links to the PIndex's files at one commit),
//! with every file's size and CRC-32 as they were set apart. A set is dropped when the fetcher
//! releases it, or when nobody has read it for [`IDLE`] (a fetcher that died never releases).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tessera_index::checkpoint::Checkpoints;

use crate::CopyError;

/// How long a set nobody reads is kept.
pub const IDLE: Duration = Duration::from_secs(600);

/// One file of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldFile {
    pub name: String,
    pub size: u64,
    pub crc32: u32,
}

/// A set as taken: what the fetcher is told.
#[derive(Debug, Clone)]
pub struct TakenSet {
    pub id: String,
    pub files: Vec<HeldFile>,
    pub checkpoints: Checkpoints,
    pub docs: u64,
}

struct Held {
    dir: PathBuf,
    files: Vec<HeldFile>,
    last_read: Instant,
}

/// The sets this node holds.
pub struct HeldSets {
    staging: PathBuf,
    sets: Mutex<HashMap<String, Held>>,
}

impl HeldSets {
    /// Sets held under `staging` (on the PIndexes' file system, for links). What a previous
    /// run left there is of no use and removed.
    pub fn new(staging: PathBuf) -> Self {
        if staging.exists() {
            if let Err(e) = std::fs::remove_dir_all(&staging) {
                tracing::warn!(error = %e, dir = %staging.display(), "could not clear old copy staging");
            }
        }
        Self {
            staging,
            sets: Mutex::default(),
        }
    }

    /// Sets apart the files of the PIndex of `kind` in `pindex_dir` at its last commit, with
    /// their checksums (reading every file once). `describe_only`: the files are listed and
    /// nothing is kept.
    pub async fn take(
        &self,
        kind: &str,
        pindex_dir: &Path,
        describe_only: bool,
    ) -> Result<TakenSet, CopyError> {
        self.sweep();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = self.staging.join(&id);
        let (kind, from, into) = (kind.to_string(), pindex_dir.to_path_buf(), dir.clone());
        let taken = tokio::task::spawn_blocking(move || -> Result<_, CopyError> {
            let set = tessera_index::fileset::take(&kind, &from, &into)
                .map_err(|e| CopyError::Io(e.to_string()))?;
            let mut files = Vec::with_capacity(set.files.len());
            for name in &set.files {
                let path = set.dir.join(name);
                let (size, crc32) = if describe_only {
                    let meta = std::fs::metadata(&path).map_err(|e| CopyError::io(&path, e))?;
                    (meta.len(), 0)
                } else {
                    checksum(&path)?
                };
                files.push(HeldFile {
                    name: name.clone(),
                    size,
                    crc32,
                });
            }
            if describe_only {
                let _ = std::fs::remove_dir_all(&into);
            }
            Ok((files, set.checkpoints, set.docs))
        })
        .await
        .map_err(|e| CopyError::Io(format!("setting files apart stopped: {e}")))?;
        let (files, checkpoints, docs) = match taken {
            Ok(t) => t,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        if !describe_only {
            let held = Held {
                dir,
                files: files.clone(),
                last_read: Instant::now(),
            };
            if let Ok(mut sets) = self.sets.lock() {
                sets.insert(id.clone(), held);
            }
        }
        Ok(TakenSet {
            id: if describe_only { String::new() } else { id },
            files,
            checkpoints,
            docs,
        })
    }

    /// Where file `name` of set `id` is, and its size; counts as a read (the set is kept).
    /// Only names of the set are served: a fetcher cannot reach any other path.
    pub fn file(&self, id: &str, name: &str) -> Result<(PathBuf, u64), CopyError> {
        let mut sets = self
            .sets
            .lock()
            .map_err(|_| CopyError::Io("the held sets are unavailable".into()))?;
        let held = sets.get_mut(id).ok_or_else(|| {
            CopyError::NotFound(format!(
                "no file set `{id}` here (released, or idle for too long)"
            ))
        })?;
        held.last_read = Instant::now();
        let f = held
            .files
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| CopyError::NotFound(format!("no file `{name}` in set `{id}`")))?;
        Ok((held.dir.join(&f.name), f.size))
    }

    /// Keeps set `id` from expiring (a long file read touches it as it goes).
    pub fn touch(&self, id: &str) {
        if let Ok(mut sets) = self.sets.lock() {
            if let Some(h) = sets.get_mut(id) {
                h.last_read = Instant::now();
            }
        }
    }

    /// Drops set `id` (a no-op when it is gone already).
    pub fn release(&self, id: &str) {
        let held = self.sets.lock().ok().and_then(|mut s| s.remove(id));
        if let Some(h) = held {
            remove(&h.dir);
        }
    }

    /// How many sets are held.
    pub fn len(&self) -> usize {
        self.sets.lock().map_or(0, |s| s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the sets nobody has read for [`IDLE`].
    fn sweep(&self) {
        self.sweep_idle_for(IDLE);
    }

    fn sweep_idle_for(&self, idle: Duration) {
        let expired: Vec<Held> = match self.sets.lock() {
            Ok(mut sets) => {
                let ids: Vec<String> = sets
                    .iter()
                    .filter(|(_, h)| h.last_read.elapsed() >= idle)
                    .map(|(id, _)| id.clone())
                    .collect();
                ids.iter().filter_map(|id| sets.remove(id)).collect()
            }
            Err(_) => return,
        };
        for h in expired {
            tracing::info!(dir = %h.dir.display(), "file set released after being idle");
            remove(&h.dir);
        }
    }
}

fn remove(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        tracing::warn!(error = %e, dir = %dir.display(), "could not remove a released file set");
    }
}

/// The size and CRC-32 of the file at `path`.
pub fn checksum(path: &Path) -> Result<(u64, u32), CopyError> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| CopyError::io(path, e))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| CopyError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hasher.finalize()))
}

#[cfg(test)]
mod tests;
