//! Typed access to recoveries (`recoveries/<id>`) and the lock naming the running one
//! (`recovery/lock`). Beginning writes both in one transaction, so two nodes asked at once
//! cannot both start one; ending or aborting releases the lock with the status change.

use crate::cfg::{Cfg, Versioned, VersionedList};
use crate::error::Result;
use crate::schema::{Document, Recovery, RecoveryAuto, RecoveryLock, RecoveryStatus};
use crate::Revision;

impl Cfg {
    pub async fn recovery(&self, id: &str) -> Result<Option<Versioned<Recovery>>> {
        self.get_doc(&self.keys().recovery(id)).await
    }

    pub async fn recoveries(&self) -> Result<VersionedList<Recovery>> {
        self.list_docs(&self.keys().recoveries()).await
    }

    pub async fn recovery_lock(&self) -> Result<Option<Versioned<RecoveryLock>>> {
        self.get_doc(&self.keys().recovery_lock()).await
    }

    pub async fn recovery_auto(&self) -> Result<Option<Versioned<RecoveryAuto>>> {
        self.get_doc(&self.keys().recovery_auto()).await
    }

    /// Sets (or with `None` removes) the cluster's automatic recovery.
    pub async fn put_recovery_auto(&self, auto: Option<&RecoveryAuto>) -> Result<()> {
        let key = self.keys().recovery_auto();
        let current = self.recovery_auto().await?.map_or(0, |c| c.revision);
        match auto {
            Some(doc) => self.put_doc(&key, doc, current, None).await.map(|_| ()),
            None if current == 0 => Ok(()),
            None => self.store().delete(&key, current).await.map(|_| ()),
        }
    }

    /// The running recovery the lock names, if any.
    pub async fn running_recovery(&self) -> Result<Option<Versioned<Recovery>>> {
        let Some(lock) = self.recovery_lock().await? else {
            return Ok(None);
        };
        Ok(self
            .recovery(&lock.value.recovery)
            .await?
            .filter(|r| r.value.status == RecoveryStatus::Running))
    }

    /// Writes a new running recovery and takes the lock for it, both or neither. `false`:
    /// another recovery took the lock first (or one with this id exists).
    pub async fn begin_recovery(&self, recovery: &Recovery) -> Result<bool> {
        let lock = RecoveryLock {
            format_version: RecoveryLock::FORMAT_VERSION,
            recovery: recovery.id.clone(),
        };
        self.fenced()
            .put(&self.keys().recovery(&recovery.id), recovery, 0)?
            .put(&self.keys().recovery_lock(), &lock, 0)?
            .commit(self)
            .await
    }

    /// Writes `recovery` at `cas`; when it is no longer running, releases the lock if the lock
    /// still names it. `false`: it changed since it was read.
    pub async fn put_recovery(&self, recovery: &Recovery, cas: Revision) -> Result<bool> {
        let mut write = self
            .fenced()
            .put(&self.keys().recovery(&recovery.id), recovery, cas)?;
        if recovery.status != RecoveryStatus::Running {
            if let Some(lock) = self.recovery_lock().await? {
                if lock.value.recovery == recovery.id {
                    write = write.delete(&self.keys().recovery_lock(), lock.revision);
                }
            }
        }
        write.commit(self).await
    }
}
