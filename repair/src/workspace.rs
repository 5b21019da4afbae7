//! The repair area of a data dir, `<data-dir>/repair/`: the lock one repair holds while it
//! runs, the backups (one directory per repair, named by its id, with a manifest of the files
//! it saved and their CRC-32), and the journal (one JSON line per apply or rollback).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::RepairError;

/// A file a backup holds: where it came from, its size and CRC-32.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedFile {
    pub name: String,
    pub original: PathBuf,
    pub size: u64,
    pub crc32: u32,
}

/// A backup's manifest (`backups/<id>/manifest.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    pub id: String,
    /// `source`, `pindex` or `cfg`.
    pub kind: String,
    pub created_ms: u64,
    pub files: Vec<SavedFile>,
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub at_ms: u64,
    /// `apply` or `rollback`.
    pub action: String,
    pub kind: String,
    pub backup: String,
    /// What was done (the edits, or the backup restored).
    pub what: serde_json::Value,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

pub struct Workspace {
    dir: PathBuf,
}

/// A scratch directory ([`Workspace::scratch`]); removed on drop.
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Held while a repair runs; removed on drop.
pub struct RepairLock {
    path: PathBuf,
}

impl Drop for RepairLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The CRC-32 and size of a file.
pub fn crc_of(path: &Path) -> Result<(u32, u64), RepairError> {
    let bytes =
        std::fs::read(path).map_err(RepairError::io(format!("reading {}", path.display())))?;
    Ok((crc32fast::hash(&bytes), bytes.len() as u64))
}

/// Writes `from`'s bytes to `to` durably (copied, then synced).
pub fn copy_synced(from: &Path, to: &Path) -> Result<(), RepairError> {
    std::fs::copy(from, to).map_err(RepairError::io(format!(
        "copying {} to {}",
        from.display(),
        to.display()
    )))?;
    std::fs::File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(RepairError::io(format!("syncing {}", to.display())))
}

/// Exchanges two directories in one step (`renameat2(RENAME_EXCHANGE)`): a reader sees the
/// old one or the new one, never neither.
pub fn exchange(a: &Path, b: &Path) -> Result<(), RepairError> {
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        a,
        rustix::fs::CWD,
        b,
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .map_err(|e| {
        RepairError::io(format!("exchanging {} and {}", a.display(), b.display()))(e.into())
    })
}

/// Copies every file of directory `from` into a new directory `to`, synced.
pub fn copy_dir(from: &Path, to: &Path) -> Result<(), RepairError> {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).map_err(RepairError::io(format!("creating {}", to.display())))?;
    let entries =
        std::fs::read_dir(from).map_err(RepairError::io(format!("reading {}", from.display())))?;
    for entry in entries {
        let entry = entry.map_err(RepairError::io(format!("reading {}", from.display())))?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            copy_synced(&entry.path(), &to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Renames `from` over `to` and syncs the directory, so the swap survives a crash whole.
pub fn swap_in(from: &Path, to: &Path) -> Result<(), RepairError> {
    std::fs::rename(from, to).map_err(RepairError::io(format!(
        "renaming {} to {}",
        from.display(),
        to.display()
    )))?;
    if let Some(dir) = to.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// An exclusive lock on a data file, the one its owner (redb) takes: while it is held, no node
/// or source opens the file, and taking it fails while one has it open. Repairs read the file
/// only through copies made under this lock, so the original's bytes never change until the
/// swap.
pub struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    pub fn exclusive(path: &Path) -> Result<FileLock, RepairError> {
        let file = std::fs::File::open(path)
            .map_err(RepairError::io(format!("opening {}", path.display())))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(FileLock { _file: file }),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(RepairError::InUse(format!(
                "{} is in use by another process: stop the node or source that owns it first",
                path.display()
            ))),
            Err(e) => Err(RepairError::io(format!("locking {}", path.display()))(
                e.into(),
            )),
        }
    }
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl Workspace {
    pub fn new(data_dir: &Path) -> Self {
        Workspace {
            dir: data_dir.join("repair"),
        }
    }

    fn backups(&self) -> PathBuf {
        self.dir.join("backups")
    }

    /// Takes the data dir's repair lock; refused while another repair (a live process) holds
    /// it. A lock left by a process that is gone is taken over.
    pub fn lock(&self, what: &str) -> Result<RepairLock, RepairError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(RepairError::io(format!("creating {}", self.dir.display())))?;
        let path = self.dir.join("lock");
        let body =
            serde_json::json!({"pid": std::process::id(), "what": what, "since_ms": now_ms()});
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(body.to_string().as_bytes())
                        .map_err(RepairError::io(format!("writing {}", path.display())))?;
                    return Ok(RepairLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let held: serde_json::Value = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or_default();
                    let pid = held["pid"].as_u64().unwrap_or(0) as u32;
                    if pid != 0 && pid_alive(pid) {
                        return Err(RepairError::InUse(format!(
                            "another repair is in progress in {} (pid {pid}: {}); wait for it to finish",
                            self.dir.display(),
                            held["what"].as_str().unwrap_or("?")
                        )));
                    }
                    // Its process is gone: the lock is stale.
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => return Err(RepairError::io(format!("creating {}", path.display()))(e)),
            }
        }
        Err(RepairError::InUse(format!(
            "could not take {}",
            path.display()
        )))
    }

    /// Saves `files` (name in the backup, path) as a new backup of `kind`.
    pub fn back_up(&self, kind: &str, files: &[(&str, &Path)]) -> Result<Backup, RepairError> {
        let id = format!(
            "{kind}-{}-{}",
            now_ms(),
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        );
        let dir = self.backups().join(&id);
        std::fs::create_dir_all(&dir)
            .map_err(RepairError::io(format!("creating {}", dir.display())))?;
        let mut saved = Vec::new();
        for (name, original) in files {
            let to = dir.join(name);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(RepairError::io(format!("creating {}", parent.display())))?;
            }
            copy_synced(original, &to)?;
            let (crc32, size) = crc_of(&to)?;
            saved.push(SavedFile {
                name: name.to_string(),
                original: original.to_path_buf(),
                size,
                crc32,
            });
        }
        let backup = Backup {
            id,
            kind: kind.to_string(),
            created_ms: now_ms(),
            files: saved,
        };
        let manifest = dir.join("manifest.json");
        let text = serde_json::to_string_pretty(&backup)
            .map_err(|e| RepairError::Invalid(e.to_string()))?;
        std::fs::write(&manifest, text)
            .map_err(RepairError::io(format!("writing {}", manifest.display())))?;
        Ok(backup)
    }

    /// The backup `id` and its directory.
    pub fn backup(&self, id: &str) -> Result<(Backup, PathBuf), RepairError> {
        if id.is_empty() || id.contains('/') || id.contains("..") {
            return Err(RepairError::NoSuchBackup(id.to_string()));
        }
        let dir = self.backups().join(id);
        let text = std::fs::read_to_string(dir.join("manifest.json"))
            .map_err(|_| RepairError::NoSuchBackup(id.to_string()))?;
        let backup = serde_json::from_str(&text)
            .map_err(|e| RepairError::Damaged(format!("backup {id}: manifest: {e}")))?;
        Ok((backup, dir))
    }

    /// Every backup, oldest first.
    pub fn list(&self) -> Result<Vec<Backup>, RepairError> {
        let mut out = Vec::new();
        let Ok(dirs) = std::fs::read_dir(self.backups()) else {
            return Ok(out);
        };
        for dir in dirs.flatten() {
            if let Some(id) = dir.file_name().to_str() {
                if let Ok((backup, _)) = self.backup(id) {
                    out.push(backup);
                }
            }
        }
        out.sort_by_key(|b| (b.created_ms, b.id.clone()));
        Ok(out)
    }

    /// Removes backup `id`.
    pub fn purge(&self, id: &str) -> Result<Backup, RepairError> {
        let (backup, dir) = self.backup(id)?;
        std::fs::remove_dir_all(&dir)
            .map_err(RepairError::io(format!("removing {}", dir.display())))?;
        Ok(backup)
    }

    /// Appends `entry` to the journal, synced.
    pub fn journal(&self, entry: &JournalEntry) -> Result<(), RepairError> {
        let path = self.dir.join("journal.jsonl");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(RepairError::io(format!("opening {}", path.display())))?;
        let line = serde_json::to_string(entry).map_err(|e| RepairError::Invalid(e.to_string()))?;
        writeln!(file, "{line}")
            .and_then(|()| file.sync_all())
            .map_err(RepairError::io(format!("writing {}", path.display())))
    }

    /// The journal's entries, oldest first.
    pub fn read_journal(&self) -> Vec<JournalEntry> {
        std::fs::read_to_string(self.dir.join("journal.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// A scratch directory for a dry run or a result being built, removed when dropped.
    pub fn scratch(&self) -> Result<Scratch, RepairError> {
        let dir = self.dir.join("scratch");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(RepairError::io(format!("creating {}", dir.display())))?;
        Ok(Scratch(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_repair_at_a_time_and_a_stale_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(dir.path());
        let held = ws.lock("apply").unwrap();
        assert!(matches!(ws.lock("apply"), Err(RepairError::InUse(_))));
        drop(held);
        let again = ws.lock("apply").unwrap();
        drop(again);
        // A lock whose process is gone.
        std::fs::write(
            dir.path().join("repair/lock"),
            r#"{"pid": 4000000000, "what": "x"}"#,
        )
        .unwrap();
        assert!(ws.lock("apply").is_ok());
    }

    #[test]
    fn backups_are_listed_checked_and_purged() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(dir.path());
        let file = dir.path().join("f");
        std::fs::write(&file, b"hello").unwrap();
        let a = ws.back_up("source", &[("f", &file)]).unwrap();
        let b = ws.back_up("source", &[("f", &file)]).unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(a.files[0].crc32, crc32fast::hash(b"hello"));
        assert_eq!(ws.list().unwrap().len(), 2);
        ws.purge(&a.id).unwrap();
        assert_eq!(ws.list().unwrap(), vec![b]);
        assert!(matches!(
            ws.purge("../x"),
            Err(RepairError::NoSuchBackup(_))
        ));
    }
}
