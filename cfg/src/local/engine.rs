//! The local engine: etcd's data model on one redb database, used by the `embedded` backend
//! (a file in the data dir) and the `memory` backend (redb's in-memory storage).
//!
//! Writes are serialised by one mutex so that revisions are dense and committed events are
//! broadcast to watchers in revision order. Every committed change is also appended to a
//! history table, which watchers replay from; it is trimmed to `history_limit` revisions.

use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};
use tokio::sync::broadcast;

use super::codec::{decode_events, encode_events, LeaseRecord, Record};
use crate::error::{unix_ms, CfgError, Result};
use crate::store::{Compare, LeaseId, Revision, WatchEvent};

pub(super) const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
pub(super) const HISTORY: TableDefinition<i64, &[u8]> = TableDefinition::new("history");
pub(super) const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
pub(super) const LEASES: TableDefinition<i64, &[u8]> = TableDefinition::new("leases");
const LEASE_KEYS: TableDefinition<(i64, &str), ()> = TableDefinition::new("lease_keys");

pub(super) const META_REVISION: &str = "revision";
pub(super) const META_COMPACT: &str = "compact_revision";

/// Revisions of history kept for watchers by default.
pub const DEFAULT_HISTORY_LIMIT: i64 = 10_000;

/// How often expired leases are looked for.
const LEASE_SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// The changes committed at one revision, as broadcast to watchers.
pub(crate) struct Committed {
    pub revision: Revision,
    pub events: Vec<WatchEvent>,
}

pub(crate) struct Inner {
    pub(super) db: Database,
    pub(super) backend: &'static str,
    pub(super) write_lock: Mutex<()>,
    pub(crate) committed: broadcast::Sender<Arc<Committed>>,
    history_limit: i64,
}

/// A store backed by redb, on disk (`embedded`) or in memory (`memory`).
#[derive(Clone)]
pub struct LocalStore {
    pub(super) inner: Arc<Inner>,
}

impl LocalStore {
    /// Opens (creating if needed) the embedded Cfg file at `path`.
    /// Must be called inside a tokio runtime: a background task expires leases.
    pub fn open_file(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                CfgError::Storage(format!("cannot create directory {}: {e}", dir.display()))
            })?;
        }
        let db = Database::builder()
            .set_cache_size(32 << 20)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => CfgError::Unavailable {
                    reason: format!(
                        "embedded Cfg {} is in use by another process (a running node?)",
                        path.display()
                    ),
                },
                other => CfgError::Storage(format!("cannot open {}: {other}", path.display())),
            })?;
        Self::start(db, "embedded", DEFAULT_HISTORY_LIMIT)
    }

    /// A fresh store in memory, gone when the last handle drops.
    pub fn open_memory() -> Result<Self> {
        Self::open_memory_with_history(DEFAULT_HISTORY_LIMIT)
    }

    /// A fresh in-memory store that keeps only `history_limit` revisions of history.
    pub fn open_memory_with_history(history_limit: i64) -> Result<Self> {
        let db = Database::builder()
            .set_cache_size(16 << 20)
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(CfgError::storage)?;
        Self::start(db, "memory", history_limit)
    }

    fn start(db: Database, backend: &'static str, history_limit: i64) -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            CfgError::Storage("the local Cfg store must be opened inside a tokio runtime".into())
        })?;
        // Create the tables so that reads never meet a missing one.
        let wtx = db.begin_write().map_err(CfgError::storage)?;
        {
            wtx.open_table(KV).map_err(CfgError::storage)?;
            wtx.open_table(HISTORY).map_err(CfgError::storage)?;
            wtx.open_table(META).map_err(CfgError::storage)?;
            wtx.open_table(LEASES).map_err(CfgError::storage)?;
            wtx.open_table(LEASE_KEYS).map_err(CfgError::storage)?;
        }
        wtx.commit().map_err(CfgError::storage)?;
        let (committed, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            db,
            backend,
            write_lock: Mutex::new(()),
            committed,
            history_limit: history_limit.max(1),
        });
        runtime.spawn(expire_leases(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| CfgError::Storage(format!("cfg worker failed: {e}")))?
    }
}

/// Pending changes of one write transaction.
pub(super) struct Writer<'t> {
    pub(super) kv: Table<'t, &'static str, &'static [u8]>,
    pub(super) leases: Table<'t, i64, &'static [u8]>,
    lease_keys: Table<'t, (i64, &'static str), ()>,
    /// The revision this transaction commits at, if it changes anything.
    revision: Revision,
    events: Vec<WatchEvent>,
}

impl Writer<'_> {
    fn current(&self, key: &str) -> Result<Option<Record>> {
        match self.kv.get(key).map_err(CfgError::storage)? {
            Some(bytes) => Ok(Some(Record::decode(key, bytes.value())?)),
            None => Ok(None),
        }
    }

    pub(super) fn current_revision(&self, key: &str) -> Result<Revision> {
        Ok(self.current(key)?.map_or(0, |r| r.mod_revision))
    }

    pub(super) fn put(&mut self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<()> {
        let lease = lease.unwrap_or(0);
        if lease != 0 && self.leases.get(lease).map_err(CfgError::storage)?.is_none() {
            return Err(CfgError::LeaseNotFound(lease));
        }
        let prev = self.current(key)?;
        if let Some(prev) = &prev {
            if prev.lease != 0 && prev.lease != lease {
                self.lease_keys
                    .remove((prev.lease, key))
                    .map_err(CfgError::storage)?;
            }
        }
        if lease != 0 {
            self.lease_keys
                .insert((lease, key), ())
                .map_err(CfgError::storage)?;
        }
        let record = Record {
            mod_revision: self.revision,
            create_revision: prev.map_or(self.revision, |p| p.create_revision),
            lease,
            value,
        };
        self.kv
            .insert(key, record.encode().as_slice())
            .map_err(CfgError::storage)?;
        self.events
            .push(WatchEvent::Put(record.into_kv(key.to_string())));
        Ok(())
    }

    /// Deletes `key`; false when it was absent.
    pub(super) fn delete(&mut self, key: &str) -> Result<bool> {
        let Some(prev) = self.current(key)? else {
            return Ok(false);
        };
        self.kv.remove(key).map_err(CfgError::storage)?;
        if prev.lease != 0 {
            self.lease_keys
                .remove((prev.lease, key))
                .map_err(CfgError::storage)?;
        }
        self.events.push(WatchEvent::Delete {
            key: key.to_string(),
            revision: self.revision,
        });
        Ok(true)
    }

    /// Removes a lease and deletes its keys; false when the lease was unknown.
    pub(super) fn revoke(&mut self, lease: LeaseId) -> Result<bool> {
        if self
            .leases
            .remove(lease)
            .map_err(CfgError::storage)?
            .is_none()
        {
            return Ok(false);
        }
        let keys: Vec<String> = self
            .lease_keys
            .range((lease, "")..(lease.saturating_add(1), ""))
            .map_err(CfgError::storage)?
            .map(|entry| entry.map(|(k, _)| k.value().1.to_string()))
            .collect::<std::result::Result<_, _>>()
            .map_err(CfgError::storage)?;
        for key in keys {
            self.delete(&key)?;
        }
        Ok(true)
    }

    pub(super) fn check(&self, compare: &Compare) -> Result<bool> {
        Ok(match compare {
            Compare::ModRevision { key, revision } => self.current_revision(key)? == *revision,
            Compare::Value { key, value } => self.current(key)?.is_some_and(|r| &r.value == value),
        })
    }
}

impl Inner {
    /// Runs `f` in a write transaction; commits, logs and broadcasts what it changed.
    pub(super) fn write<T>(
        &self,
        f: impl FnOnce(&mut Writer) -> Result<T>,
    ) -> Result<(T, Revision)> {
        let _serial = self
            .write_lock
            .lock()
            .map_err(|_| CfgError::Storage("cfg writer lock poisoned".into()))?;
        let wtx = self.db.begin_write().map_err(CfgError::storage)?;
        let (value, revision, events) = {
            let mut meta = wtx.open_table(META).map_err(CfgError::storage)?;
            let current = read_meta(&meta, META_REVISION)?;
            let mut writer = Writer {
                kv: wtx.open_table(KV).map_err(CfgError::storage)?,
                leases: wtx.open_table(LEASES).map_err(CfgError::storage)?,
                lease_keys: wtx.open_table(LEASE_KEYS).map_err(CfgError::storage)?,
                revision: current + 1,
                events: Vec::new(),
            };
            let value = f(&mut writer)?;
            let events = std::mem::take(&mut writer.events);
            drop(writer);
            if events.is_empty() {
                (value, current, events)
            } else {
                let revision = current + 1;
                let mut history = wtx.open_table(HISTORY).map_err(CfgError::storage)?;
                history
                    .insert(revision, encode_events(&events).as_slice())
                    .map_err(CfgError::storage)?;
                meta.insert(META_REVISION, revision)
                    .map_err(CfgError::storage)?;
                self.trim_history(&mut history, &mut meta, revision)?;
                (value, revision, events)
            }
        };
        wtx.commit().map_err(CfgError::storage)?;
        if !events.is_empty() {
            // No receivers is fine: nobody watches.
            let _ = self
                .committed
                .send(Arc::new(Committed { revision, events }));
        }
        Ok((value, revision))
    }

    /// Keeps at most `history_limit` revisions, trimming in batches to keep commits cheap.
    fn trim_history(
        &self,
        history: &mut Table<i64, &[u8]>,
        meta: &mut Table<&str, i64>,
        revision: Revision,
    ) -> Result<()> {
        let compact = read_meta(meta, META_COMPACT)?;
        let batch = (self.history_limit / 8).clamp(1, 1024);
        if revision - compact > self.history_limit + batch {
            compact_tables(history, meta, revision - self.history_limit)?;
        }
        Ok(())
    }

    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction, Revision) -> Result<T>,
    ) -> Result<T> {
        let rtx = self.db.begin_read().map_err(CfgError::storage)?;
        let meta = rtx.open_table(META).map_err(CfgError::storage)?;
        let revision = read_meta(&meta, META_REVISION)?;
        f(&rtx, revision)
    }

    /// History from `from` (inclusive), at most `max_revisions` revisions, with the compact
    /// revision as of the read. Events are in revision order.
    pub(crate) fn read_history(
        &self,
        from: Revision,
        max_revisions: usize,
    ) -> Result<(Vec<WatchEvent>, Revision, Revision)> {
        let rtx = self.db.begin_read().map_err(CfgError::storage)?;
        let meta = rtx.open_table(META).map_err(CfgError::storage)?;
        let compact = read_meta(&meta, META_COMPACT)?;
        let history = rtx.open_table(HISTORY).map_err(CfgError::storage)?;
        let mut events = Vec::new();
        let mut last = from - 1;
        for entry in history
            .range(from..)
            .map_err(CfgError::storage)?
            .take(max_revisions)
        {
            let (rev, bytes) = entry.map_err(CfgError::storage)?;
            last = rev.value();
            events.extend(decode_events(last, bytes.value())?);
        }
        Ok((events, last, compact))
    }

    fn expire_due_leases(&self) -> Result<()> {
        let now = unix_ms();
        let due: Vec<LeaseId> = self.read(|rtx, _| {
            let leases = rtx.open_table(LEASES).map_err(CfgError::storage)?;
            let mut due = Vec::new();
            for entry in leases.iter().map_err(CfgError::storage)? {
                let (id, bytes) = entry.map_err(CfgError::storage)?;
                let record = LeaseRecord::decode(id.value(), bytes.value())?;
                if record.deadline_unix_ms <= now {
                    due.push(id.value());
                }
            }
            Ok(due)
        })?;
        for lease in due {
            // Re-check under the write lock: a keep-alive may have come in meanwhile.
            self.write(|w| {
                let still_due = match w.leases.get(lease).map_err(CfgError::storage)? {
                    Some(bytes) => {
                        LeaseRecord::decode(lease, bytes.value())?.deadline_unix_ms <= now
                    }
                    None => false,
                };
                if still_due {
                    tracing::debug!(lease = format!("{lease:x}"), "lease expired");
                    w.revoke(lease)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }
}

pub(super) fn read_meta(meta: &impl ReadableTable<&'static str, i64>, name: &str) -> Result<i64> {
    Ok(meta
        .get(name)
        .map_err(CfgError::storage)?
        .map_or(0, |v| v.value()))
}

pub(super) fn compact_tables(
    history: &mut Table<i64, &[u8]>,
    meta: &mut Table<&str, i64>,
    revision: Revision,
) -> Result<()> {
    history
        .retain_in(..revision, |_, _| false)
        .map_err(CfgError::storage)?;
    meta.insert(META_COMPACT, revision)
        .map_err(CfgError::storage)?;
    Ok(())
}

async fn expire_leases(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(LEASE_SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let swept = tokio::task::spawn_blocking(move || inner.expire_due_leases()).await;
        match swept {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "expiring leases failed; will retry"),
            Err(e) => tracing::warn!(error = %e, "lease sweeper task failed; will retry"),
        }
    }
}
