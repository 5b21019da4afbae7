//! A store for tests of races: it behaves as the store it wraps, but runs a given write of
//! another party just before the next transaction, so "someone changed it between my read and
//! my write" happens exactly there, every time, instead of by timing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::store::{Listing, Store, Txn, TxnOutcome, WatchStream};
use crate::{KeyValue, LeaseId, Result, Revision};

/// What runs before the next transaction, given the wrapped store.
pub type Interloper = Box<dyn FnOnce(Arc<dyn Store>) -> BoxFuture<'static, ()> + Send>;

/// See the module docs.
pub struct Interleaved {
    inner: Arc<dyn Store>,
    /// The write, and the key (or part of one) a transaction must touch to trigger it.
    next: Mutex<Option<(String, Interloper)>>,
}

impl Interleaved {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            next: Mutex::new(None),
        })
    }

    /// Runs `write` (once) just before the next transaction reaches the store.
    pub fn before_next_txn(&self, write: Interloper) {
        self.before_txn_on("", write);
    }

    /// Runs `write` (once) just before the next transaction that compares or writes a key
    /// containing `key`.
    pub fn before_txn_on(&self, key: &str, write: Interloper) {
        if let Ok(mut next) = self.next.lock() {
            *next = Some((key.to_string(), write));
        }
    }

    fn due(&self, txn: &Txn) -> Option<Interloper> {
        let mut next = self.next.lock().ok()?;
        let (key, _) = next.as_ref()?;
        let compared = txn.compares.iter().map(|c| match c {
            crate::store::Compare::ModRevision { key, .. }
            | crate::store::Compare::Value { key, .. } => key,
        });
        let written = txn.ops.iter().map(|o| match o {
            crate::store::Op::Put { key, .. } | crate::store::Op::Delete { key } => key,
        });
        let touched = compared.chain(written).any(|k| k.contains(key.as_str()));
        touched.then(|| next.take().map(|(_, w)| w)).flatten()
    }
}

#[async_trait]
impl Store for Interleaved {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Listing> {
        self.inner.list(prefix).await
    }
    async fn revision(&self) -> Result<Revision> {
        self.inner.revision().await
    }
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        cas: Revision,
        lease: Option<LeaseId>,
    ) -> Result<Revision> {
        self.inner.put(key, value, cas, lease).await
    }
    async fn delete(&self, key: &str, cas: Revision) -> Result<Revision> {
        self.inner.delete(key, cas).await
    }
    async fn txn(&self, txn: Txn) -> Result<TxnOutcome> {
        if let Some(write) = self.due(&txn) {
            write(self.inner.clone()).await;
        }
        self.inner.txn(txn).await
    }
    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream> {
        self.inner.watch(prefix, from).await
    }
    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        self.inner.grant_lease(ttl).await
    }
    async fn keep_alive_lease(&self, lease: LeaseId) -> Result<()> {
        self.inner.keep_alive_lease(lease).await
    }
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.inner.revoke_lease(lease).await
    }
}
