//! A [`Store`] that times every operation of the store it wraps and counts its failures
//! (`tessera_cfg_operation_duration_seconds{op}`, `tessera_cfg_errors_total{op,kind}`). The
//! node wraps its store in one ([`crate::CfgSpec::open`]); tests and tools can do without.
//! A lost compare-and-set, an existing key or an absent one is an answer, not an error.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::error::{CfgError, Result};
use crate::store::{KeyValue, LeaseId, Listing, Store, Txn, TxnOutcome, WatchStream};
use crate::Revision;

pub struct MeteredStore {
    inner: Arc<dyn Store>,
}

impl MeteredStore {
    pub fn wrap(inner: Arc<dyn Store>) -> Arc<dyn Store> {
        Arc::new(MeteredStore { inner })
    }
}

async fn timed<T>(op: &str, work: impl Future<Output = Result<T>>) -> Result<T> {
    let started = Instant::now();
    let result = work.await;
    let m = tessera_telemetry::metrics();
    m.cfg_duration
        .with_label_values(&[op])
        .observe(started.elapsed().as_secs_f64());
    if let Err(e) = &result {
        if let Some(kind) = error_kind(e) {
            m.cfg_errors.with_label_values(&[op, kind]).inc();
        }
    }
    result
}

/// The `kind` label of a failure; `None` for answers that are not failures.
fn error_kind(e: &CfgError) -> Option<&'static str> {
    match e {
        CfgError::CasMismatch { .. }
        | CfgError::AlreadyExists { .. }
        | CfgError::NotFound { .. } => None,
        CfgError::Unavailable { .. } => Some("unavailable"),
        CfgError::Corrupt { .. } | CfgError::UnknownFormatVersion { .. } => Some("corrupt"),
        _ => Some("other"),
    }
}

#[async_trait]
impl Store for MeteredStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        timed("get", self.inner.get(key)).await
    }

    async fn list(&self, prefix: &str) -> Result<Listing> {
        timed("list", self.inner.list(prefix)).await
    }

    async fn revision(&self) -> Result<Revision> {
        timed("revision", self.inner.revision()).await
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        cas: Revision,
        lease: Option<LeaseId>,
    ) -> Result<Revision> {
        timed("put", self.inner.put(key, value, cas, lease)).await
    }

    async fn delete(&self, key: &str, cas: Revision) -> Result<Revision> {
        timed("delete", self.inner.delete(key, cas)).await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome> {
        timed("txn", self.inner.txn(txn)).await
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream> {
        timed("watch", self.inner.watch(prefix, from)).await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        timed("compact", self.inner.compact(revision)).await
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        timed("grant_lease", self.inner.grant_lease(ttl)).await
    }

    async fn keep_alive_lease(&self, lease: LeaseId) -> Result<()> {
        timed("keep_alive_lease", self.inner.keep_alive_lease(lease)).await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        timed("revoke_lease", self.inner.revoke_lease(lease)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalStore;

    #[tokio::test]
    async fn operations_are_timed_and_failures_counted_but_lost_cas_is_not() {
        let store = MeteredStore::wrap(Arc::new(LocalStore::open_memory().unwrap()));
        let m = tessera_telemetry::metrics();
        let puts = m
            .cfg_duration
            .with_label_values(&["put"])
            .get_sample_count();
        let other = m.cfg_errors.with_label_values(&["put", "other"]).get();
        store.set("/k", b"v".to_vec(), 0).await.unwrap();
        // A create-only write of an existing key: an answer, not a failure.
        assert!(store.set("/k", b"w".to_vec(), 0).await.is_err());
        assert_eq!(
            m.cfg_duration
                .with_label_values(&["put"])
                .get_sample_count(),
            puts + 2
        );
        assert_eq!(
            m.cfg_errors.with_label_values(&["put", "other"]).get(),
            other
        );
        assert_eq!(
            m.cfg_errors
                .with_label_values(&["put", "unavailable"])
                .get(),
            0
        );
    }
}
