//! `Store` for the local engine: each call runs the engine's blocking redb work on the
//! blocking pool and maps the outcome to the shared `Store` semantics.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redb::ReadableTable;

use super::codec::{LeaseRecord, Record};
use super::engine::{
    compact_tables, read_meta, LocalStore, HISTORY, KV, META, META_COMPACT, META_REVISION,
};
use crate::error::{unix_ms, CfgError, Result};
use crate::store::{KeyValue, LeaseId, Listing, Op, Revision, Store, Txn, TxnOutcome, WatchStream};

#[async_trait]
impl Store for LocalStore {
    fn backend(&self) -> &'static str {
        self.inner.backend
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_string();
        self.blocking(move |inner| {
            inner.read(|rtx, _| {
                let kv = rtx.open_table(KV).map_err(CfgError::storage)?;
                match kv.get(key.as_str()).map_err(CfgError::storage)? {
                    Some(bytes) => {
                        let record = Record::decode(&key, bytes.value())?;
                        Ok(Some(record.into_kv(key.clone())))
                    }
                    None => Ok(None),
                }
            })
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Listing> {
        let prefix = prefix.to_string();
        self.blocking(move |inner| {
            inner.read(|rtx, revision| {
                let kv = rtx.open_table(KV).map_err(CfgError::storage)?;
                let mut kvs = Vec::new();
                for entry in kv.range(prefix.as_str()..).map_err(CfgError::storage)? {
                    let (key, bytes) = entry.map_err(CfgError::storage)?;
                    let key = key.value();
                    if !key.starts_with(prefix.as_str()) {
                        break;
                    }
                    kvs.push(Record::decode(key, bytes.value())?.into_kv(key.to_string()));
                }
                Ok(Listing { revision, kvs })
            })
        })
        .await
    }

    async fn revision(&self) -> Result<Revision> {
        self.blocking(|inner| inner.read(|_, revision| Ok(revision)))
            .await
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        cas: Revision,
        lease: Option<LeaseId>,
    ) -> Result<Revision> {
        crate::limits::check_value_size(key, value.len())?;
        let key = key.to_string();
        self.blocking(move |inner| {
            let ((), revision) = inner.write(|w| {
                let current = w.current_revision(&key)?;
                if current != cas {
                    return Err(CfgError::cas_failed(&key, cas, current));
                }
                w.put(&key, value, lease)
            })?;
            Ok(revision)
        })
        .await
    }

    async fn delete(&self, key: &str, cas: Revision) -> Result<Revision> {
        let key = key.to_string();
        self.blocking(move |inner| {
            let ((), revision) = inner.write(|w| {
                let current = w.current_revision(&key)?;
                if current == 0 {
                    return Err(CfgError::NotFound { key: key.clone() });
                }
                if cas != 0 && current != cas {
                    return Err(CfgError::cas_failed(&key, cas, current));
                }
                w.delete(&key).map(|_| ())
            })?;
            Ok(revision)
        })
        .await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome> {
        txn.check_writable()?;
        self.blocking(move |inner| {
            let (succeeded, revision) = inner.write(|w| {
                for compare in &txn.compares {
                    if !w.check(compare)? {
                        return Ok(false);
                    }
                }
                for op in txn.ops {
                    match op {
                        Op::Put { key, value, lease } => w.put(&key, value, lease)?,
                        Op::Delete { key } => {
                            w.delete(&key)?;
                        }
                    }
                }
                Ok(true)
            })?;
            Ok(TxnOutcome {
                succeeded,
                revision,
            })
        })
        .await
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream> {
        let current = self.revision().await?;
        // A commit between reading `current` and subscribing is not lost: the feeder replays
        // the history from `from` before it follows the broadcast.
        let rx = self.inner.committed.subscribe();
        let from = if from <= 0 { current + 1 } else { from };
        Ok(super::watch::spawn(
            Arc::downgrade(&self.inner),
            rx,
            prefix.to_string(),
            from,
        ))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.blocking(move |inner| {
            let _serial = inner
                .write_lock
                .lock()
                .map_err(|_| CfgError::Storage("cfg writer lock poisoned".into()))?;
            let wtx = inner.db.begin_write().map_err(CfgError::storage)?;
            {
                let mut meta = wtx.open_table(META).map_err(CfgError::storage)?;
                let current = read_meta(&meta, META_REVISION)?;
                if revision > current {
                    return Err(CfgError::Invalid {
                        key: "<compact>".into(),
                        field: "revision".into(),
                        reason: format!("{revision} is in the future (current {current})"),
                    });
                }
                if revision <= read_meta(&meta, META_COMPACT)? {
                    return Ok(());
                }
                let mut history = wtx.open_table(HISTORY).map_err(CfgError::storage)?;
                compact_tables(&mut history, &mut meta, revision)?;
            }
            wtx.commit().map_err(CfgError::storage)
        })
        .await
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        let ttl_ms = ttl.as_millis().max(1) as u64;
        self.blocking(move |inner| {
            let (id, _) = inner.write(|w| loop {
                let id = rand::random::<i64>() & i64::MAX;
                if id == 0 || w.leases.get(id).map_err(CfgError::storage)?.is_some() {
                    continue;
                }
                let record = LeaseRecord {
                    ttl_ms,
                    deadline_unix_ms: unix_ms() + ttl_ms,
                };
                w.leases
                    .insert(id, record.encode().as_slice())
                    .map_err(CfgError::storage)?;
                return Ok(id);
            })?;
            Ok(id)
        })
        .await
    }

    async fn keep_alive_lease(&self, lease: LeaseId) -> Result<()> {
        self.blocking(move |inner| {
            inner.write(|w| {
                let record = match w.leases.get(lease).map_err(CfgError::storage)? {
                    Some(bytes) => LeaseRecord::decode(lease, bytes.value())?,
                    None => return Err(CfgError::LeaseNotFound(lease)),
                };
                let renewed = LeaseRecord {
                    ttl_ms: record.ttl_ms,
                    deadline_unix_ms: unix_ms() + record.ttl_ms,
                };
                w.leases
                    .insert(lease, renewed.encode().as_slice())
                    .map_err(CfgError::storage)?;
                Ok(())
            })?;
            Ok(())
        })
        .await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.blocking(move |inner| {
            let (found, _) = inner.write(|w| w.revoke(lease))?;
            if found {
                Ok(())
            } else {
                Err(CfgError::LeaseNotFound(lease))
            }
        })
        .await
    }
}
