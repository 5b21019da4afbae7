//! The `Store` trait: etcd's data model (revisions, CAS, transactions, watches, leases) as the
//! one interface every backend implements with the same behaviour.
//!
//! Semantics shared by all backends (the conformance suite in `tessera-tests` checks them):
//! - Every committed write bumps the store revision by one; all writes of one transaction share
//!   that revision. A key's `mod_revision` is the revision of its last write.
//! - `put(key, value, cas, lease)`: `cas == 0` creates only; otherwise the write succeeds only
//!   if the key's current `mod_revision` equals `cas`.
//! - `delete(key, cas)`: `cas == 0` deletes whatever is there; otherwise only that revision.
//! - `watch(prefix, from)`: every event with revision ≥ `from` (0 = from now on), in revision
//!   order, each exactly once, across reconnects. When `from` is older than the retained history
//!   the stream yields [`WatchEvent::Compacted`] and ends: re-`list` and watch again.
//! - Leases: keys written with a lease are deleted when it expires or is revoked; watchers see
//!   those deletes.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::Result;

pub use crate::revision::{LeaseId, Revision};

/// One stored key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the last write of this key.
    pub mod_revision: Revision,
    /// Revision at which this key was created (since its last delete).
    pub create_revision: Revision,
    /// The lease the key is bound to, if any.
    pub lease: Option<LeaseId>,
}

/// The result of a `list`: the keys under a prefix, sorted, as of `revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The store revision the listing reflects; watch from `revision + 1` to miss nothing.
    pub revision: Revision,
    pub kvs: Vec<KeyValue>,
}

/// A condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key's `mod_revision` equals `revision` (0: the key is absent).
    ModRevision { key: String, revision: Revision },
    /// The key is present and its value equals `value`.
    Value { key: String, value: Vec<u8> },
}

/// A write of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    },
    /// Deleting an absent key is not an error inside a transaction.
    Delete { key: String },
}

/// Compares that must all hold for the ops to be applied atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub ops: Vec<Op>,
}

impl Txn {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn when(mut self, compare: Compare) -> Self {
        self.compares.push(compare);
        self
    }
    pub fn then(mut self, op: Op) -> Self {
        self.ops.push(op);
        self
    }

    /// etcd refuses a transaction that writes one key twice; so does every backend. No value
    /// may exceed [`crate::limits::MAX_VALUE_BYTES`].
    pub(crate) fn check_writable(&self) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for op in &self.ops {
            let key = match op {
                Op::Put { key, value, .. } => {
                    crate::limits::check_value_size(key, value.len())?;
                    key
                }
                Op::Delete { key } => key,
            };
            if !seen.insert(key.as_str()) {
                return Err(crate::error::CfgError::Invalid {
                    key: key.clone(),
                    field: "ops".into(),
                    reason: "a transaction may write each key only once".into(),
                });
            }
        }
        Ok(())
    }
}

/// What a transaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnOutcome {
    /// True when every compare held and the ops were applied.
    pub succeeded: bool,
    /// The store revision after the transaction.
    pub revision: Revision,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key was written; `kv.mod_revision` is the event's revision.
    Put(KeyValue),
    /// A key was deleted (explicitly or by lease expiry) at `revision`.
    Delete { key: String, revision: Revision },
    /// The requested history is gone: re-read everything with `list`, then watch from the
    /// listing's revision + 1. The stream ends after this event.
    Compacted { compact_revision: Revision },
}

impl WatchEvent {
    /// The revision of a put or delete; `None` for `Compacted`.
    pub fn revision(&self) -> Option<Revision> {
        match self {
            WatchEvent::Put(kv) => Some(kv.mod_revision),
            WatchEvent::Delete { revision, .. } => Some(*revision),
            WatchEvent::Compacted { .. } => None,
        }
    }

    /// The key of a put or delete; `None` for `Compacted`.
    pub fn key(&self) -> Option<&str> {
        match self {
            WatchEvent::Put(kv) => Some(&kv.key),
            WatchEvent::Delete { key, .. } => Some(key),
            WatchEvent::Compacted { .. } => None,
        }
    }
}

/// A running watch. Dropping it stops the background task that feeds it.
pub struct WatchStream {
    rx: mpsc::Receiver<WatchEvent>,
    task: JoinHandle<()>,
}

impl WatchStream {
    /// Wraps the receiving end fed by `task`; the task is aborted when the stream drops.
    pub fn new(rx: mpsc::Receiver<WatchEvent>, task: JoinHandle<()>) -> Self {
        Self { rx, task }
    }

    /// The next event; `None` once the stream has ended (after `Compacted`, or store closed).
    pub async fn next(&mut self) -> Option<WatchEvent> {
        self.rx.recv().await
    }
}

/// The next change of a watch that may not exist yet: pending forever while `watch` is `None`
/// (so it can sit in a `select!`), `None` once the stream ended or its history was compacted
/// (the caller re-reads and watches again).
pub async fn next_change(watch: &mut Option<WatchStream>) -> Option<WatchEvent> {
    match watch {
        Some(w) => match w.next().await {
            Some(WatchEvent::Compacted { .. }) | None => None,
            Some(event) => Some(event),
        },
        None => std::future::pending().await,
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How many events a watch buffers before its feeder waits for the consumer.
pub(crate) const WATCH_BUFFER: usize = 1024;

/// The shared configuration store. See the module docs for the semantics.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A short name of the backend, for logs and dumps (`etcd`, `embedded`, `memory`).
    fn backend(&self) -> &'static str;

    /// The key and its revisions, or `None` when absent.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// All keys starting with `prefix`, sorted by key, with the revision of the read.
    async fn list(&self, prefix: &str) -> Result<Listing>;

    /// The current store revision.
    async fn revision(&self) -> Result<Revision>;

    /// Writes `value` under CAS (see module docs), bound to `lease` when given.
    /// Returns the new `mod_revision`.
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        cas: Revision,
        lease: Option<LeaseId>,
    ) -> Result<Revision>;

    /// Deletes `key` (cas 0: any revision). Returns the revision of the delete.
    async fn delete(&self, key: &str, cas: Revision) -> Result<Revision>;

    /// Applies `txn.ops` atomically if every compare holds.
    async fn txn(&self, txn: Txn) -> Result<TxnOutcome>;

    /// Streams changes under `prefix` from revision `from` (0: from the next write on).
    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream>;

    /// Drops history before `revision`; watches from older revisions get `Compacted`.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// Grants a lease that expires `ttl` after its last keep-alive.
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId>;

    /// Renews a lease for its full TTL. `LeaseNotFound` once it has expired or been revoked.
    async fn keep_alive_lease(&self, lease: LeaseId) -> Result<()>;

    /// Revokes a lease now, deleting its keys.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()>;

    /// `put` without a lease.
    async fn set(&self, key: &str, value: Vec<u8>, cas: Revision) -> Result<Revision> {
        self.put(key, value, cas, None).await
    }
}

/// How long a change after a quiet spell waits for the writes made with it before a round
/// acts on it ([`next_round`]).
pub const SETTLE: std::time::Duration = std::time::Duration::from_millis(20);

/// When a round acting on a change seen at `now` runs, for the loops that act on watched
/// changes (the planner's, the janitor's): [`SETTLE`] after it, but not sooner than `debounce`
/// after the last round began. A change after a quiet spell (a copy reported caught up in the
/// middle of a rebalance) is acted on at once; a burst still makes one round per `debounce`.
pub fn next_round(
    now: tokio::time::Instant,
    last_round: Option<tokio::time::Instant>,
    debounce: std::time::Duration,
) -> tokio::time::Instant {
    let settled = now + SETTLE;
    last_round.map_or(settled, |last| settled.max(last + debounce))
}

#[cfg(test)]
mod pacing_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_change_after_a_quiet_spell_is_acted_on_at_once_and_a_burst_is_paced() {
        let debounce = Duration::from_millis(200);
        let now = tokio::time::Instant::now() + Duration::from_secs(10);
        assert_eq!(next_round(now, None, debounce), now + SETTLE);
        let long_ago = now - Duration::from_secs(5);
        assert_eq!(next_round(now, Some(long_ago), debounce), now + SETTLE);
        let just_now = now - Duration::from_millis(50);
        assert_eq!(
            next_round(now, Some(just_now), debounce),
            just_now + debounce
        );
    }
}
