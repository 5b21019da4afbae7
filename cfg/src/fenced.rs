//! Writes that land together or not at all, each on the revision its writer read. Anything
//! that decides from what it read and then writes several documents (cancel a task and
//! restore the node definitions it changed; fail a node over and count it) builds one of
//! these, so a concurrent change to any document it read makes the whole write fail instead
//! of half of it landing over the change.

use crate::schema::{self, Document, TopologyLock};
use crate::store::{Compare, Op, Revision, Txn};
use crate::{Cfg, Result};

/// A transaction under construction; see the module docs.
#[derive(Debug, Default)]
pub struct FencedWrite {
    txn: Txn,
}

impl FencedWrite {
    /// Writes `doc` at `key` if the key is still at `cas` (0: absent). Validated first.
    pub fn put<T: Document>(mut self, key: &str, doc: &T, cas: Revision) -> Result<Self> {
        schema::check(key, doc)?;
        self.txn = std::mem::take(&mut self.txn)
            .when(Compare::ModRevision {
                key: key.to_string(),
                revision: cas,
            })
            .then(Op::Put {
                key: key.to_string(),
                value: schema::encode(doc),
                lease: None,
            });
        Ok(self)
    }

    /// Requires `key` to be still at `revision` (0: absent), without writing it.
    pub fn unchanged(mut self, key: &str, revision: Revision) -> Self {
        self.txn = std::mem::take(&mut self.txn).when(Compare::ModRevision {
            key: key.to_string(),
            revision,
        });
        self
    }

    /// Deletes `key` if it is still at `revision`.
    pub fn delete(mut self, key: &str, revision: Revision) -> Self {
        self.txn = std::mem::take(&mut self.txn)
            .when(Compare::ModRevision {
                key: key.to_string(),
                revision,
            })
            .then(Op::Delete {
                key: key.to_string(),
            });
        self
    }

    /// Applies every write if every revision still holds. `false`: something changed since it
    /// was read, and nothing was written.
    pub async fn commit(self, cfg: &Cfg) -> Result<bool> {
        Ok(cfg.store().txn(self.txn).await?.succeeded)
    }
}

impl Cfg {
    pub fn fenced(&self) -> FencedWrite {
        FencedWrite::default()
    }

    /// `write` plus the release of the topology lock, if the lock names `task` (a lock taken by
    /// another task since is not this task's to release).
    pub async fn releasing_lock(&self, write: FencedWrite, task: &str) -> Result<FencedWrite> {
        let key = self.keys().topology_lock();
        Ok(match self.get_doc::<TopologyLock>(&key).await? {
            Some(lock) if lock.value.task == task => write.delete(&key, lock.revision),
            _ => write,
        })
    }
}
