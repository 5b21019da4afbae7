//! The repository's writer lock: one object (`lock.json`) naming the cluster and the
//! operation that writes, with an expiry. Created create-only, so of two writers one wins; the
//! other is refused with who holds it and until when. An expired lock (its writer died) is
//! taken over. Backups, deletes and `gc` all hold it, so `gc` never runs while a backup writes;
//! readers (verify, restore) never take it.

use object_store::path::Path;
use object_store::{PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::repo::Repository;
use crate::{unix_ms, BackupError};

/// How long a lock lasts without renewal.
pub const LOCK_TTL_MS: u64 = 120_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockDoc {
    /// The cluster name and uuid (`name/uuid`).
    pub cluster: String,
    /// The operation holding it (`backup <id>`, `delete <id>`, `gc`).
    pub operation: String,
    pub expires_ms: u64,
}

fn lock_path() -> Path {
    Path::from("lock.json")
}

/// A held lock; renew it while working, release it at the end.
#[derive(Debug)]
pub struct RepoLock {
    repo: Repository,
    doc: LockDoc,
}

impl Repository {
    /// Takes the writer lock for `operation` of `cluster`.
    pub async fn lock(&self, cluster: &str, operation: &str) -> Result<RepoLock, BackupError> {
        self.writable()?;
        let doc = LockDoc {
            cluster: cluster.to_string(),
            operation: operation.to_string(),
            expires_ms: unix_ms() + LOCK_TTL_MS,
        };
        for _ in 0..3 {
            let bytes = serde_json::to_vec(&doc).map_err(|e| BackupError::Encode(e.to_string()))?;
            let created = self
                .store()
                .put_opts(
                    &lock_path(),
                    PutPayload::from(bytes),
                    PutOptions::from(PutMode::Create),
                )
                .await;
            match created {
                Ok(_) => {
                    return Ok(RepoLock {
                        repo: self.clone(),
                        doc,
                    })
                }
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(BackupError::storage(e)),
            }
            let held = self.lock_holder().await?;
            match held {
                Some(h)
                    if h.expires_ms > unix_ms()
                        && (h.cluster != doc.cluster || h.operation != doc.operation) =>
                {
                    return Err(BackupError::Locked {
                        cluster: h.cluster,
                        operation: h.operation,
                        until_ms: h.expires_ms,
                    })
                }
                // Expired, unreadable, or our own (a resumed job): take it over.
                _ => match self.store().delete(&lock_path()).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(BackupError::storage(e)),
                },
            }
        }
        let h = self.lock_holder().await?.unwrap_or(doc);
        Err(BackupError::Locked {
            cluster: h.cluster,
            operation: h.operation,
            until_ms: h.expires_ms,
        })
    }

    /// Who holds the lock now, if anyone (an unreadable lock counts as none).
    pub async fn lock_holder(&self) -> Result<Option<LockDoc>, BackupError> {
        match self
            .raw(&lock_path(), "lock", crate::limits::MAX_RECORD_BYTES)
            .await
        {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(BackupError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl RepoLock {
    /// Extends the lock; fails if another writer took it over meanwhile.
    pub async fn renew(&mut self) -> Result<(), BackupError> {
        self.check().await?;
        self.doc.expires_ms = unix_ms() + LOCK_TTL_MS;
        let bytes =
            serde_json::to_vec(&self.doc).map_err(|e| BackupError::Encode(e.to_string()))?;
        self.repo
            .store()
            .put(&lock_path(), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(BackupError::storage)
    }

    /// Fails unless the lock is still this one.
    pub async fn check(&self) -> Result<(), BackupError> {
        match self.repo.lock_holder().await? {
            Some(h) if h.cluster == self.doc.cluster && h.operation == self.doc.operation => Ok(()),
            Some(h) => Err(BackupError::Locked {
                cluster: h.cluster,
                operation: h.operation,
                until_ms: h.expires_ms,
            }),
            None => Err(BackupError::Storage("the repository lock was lost".into())),
        }
    }

    /// Gives the lock up (only if it is still this one).
    pub async fn release(self) -> Result<(), BackupError> {
        if self.check().await.is_ok() {
            match self.repo.store().delete(&lock_path()).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(BackupError::storage(e)),
            }
        }
        Ok(())
    }
}
