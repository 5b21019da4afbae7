//! The API keys of the cluster, kept in memory from a watch of the Cfg's `keys/` (listed whole
//! at start, every [`Timing::refresh`] while the watch runs, and after a lost or compacted
//! watch), so checking a key reads no store.
//!
//! - **Bounded staleness.** The mirror knows when it was last confirmed current (the start of
//!   its last successful listing). A key whose state was confirmed longer than
//!   [`Timing::stale_after`] ago (30 s by default: the watch or the Cfg is down) is read again
//!   from the Cfg before it is trusted; when that read fails the call is answered 503, never
//!   let through on what the mirror remembers. A revocation therefore takes effect on every
//!   node within that bound, whether or not its watch runs.
//! - **Revisions decide.** Every entry keeps the Cfg revision it reflects, and deletions leave
//!   a marker with theirs; a write into the mirror (a watch event, a listing, a direct read)
//!   replaces an entry only with a newer revision. A direct read that began before a
//!   revocation arrived through the watch cannot put the unrevoked record back.
//! - **Unknown keys.** A key not in the mirror is read from the Cfg once (created a moment ago
//!   on another node, before the watch brought it here), within a budget per client address
//!   ([`MISS_READS_PER_CLIENT`] a second, and [`MISS_READS_PER_NODE`] for all clients), so one
//!   client sending made-up keys cannot use up the lookups of the others. Past it, an unknown
//!   key is refused from the mirror alone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tessera_auth::key::{self, KeyError, KeyRecord};
use tessera_auth::Identity;
use tessera_cfg::schema;
use tessera_cfg::{Cfg, CfgError, Revision, WatchEvent};
use tokio::time::Instant;

const RETRY: Duration = Duration::from_millis(500);
/// Cfg reads for keys not in the mirror, per client address and second.
pub const MISS_READS_PER_CLIENT: u32 = 10;
/// Cfg reads for keys not in the mirror, per node and second (all clients together).
pub const MISS_READS_PER_NODE: u32 = 200;
/// Client addresses whose miss budgets are tracked at once; past it the others share one.
const MISS_CLIENTS: usize = 4096;

/// How fresh the mirror must be.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Past this since a key's state was confirmed, it is read again before it is trusted.
    pub stale_after: Duration,
    /// How often the whole mirror is listed again while the watch runs.
    pub refresh: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            stale_after: Duration::from_secs(30),
            refresh: Duration::from_secs(10),
        }
    }
}

/// Why a token proves no identity.
#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    #[error("{0}")]
    Key(#[from] KeyError),
    #[error("unknown API key {0}")]
    Unknown(String),
    #[error("cannot read API keys: {0}")]
    Cfg(#[from] CfgError),
}

/// A key's state as the mirror knows it.
#[derive(Debug, Clone)]
enum Slot {
    Present(KeyRecord),
    /// Deleted at this revision (kept so an older read cannot bring it back).
    Gone,
}

#[derive(Debug, Clone)]
struct Entry {
    slot: Slot,
    revision: Revision,
    /// When a direct read last confirmed it.
    read_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct Mirror {
    keys: HashMap<String, Entry>,
    /// The start of the last successful listing.
    confirmed_at: Option<Instant>,
}

impl Mirror {
    /// Takes `slot` at `revision` for `id` when newer than what is held.
    fn offer(&mut self, id: &str, slot: Slot, revision: Revision, read_at: Option<Instant>) {
        match self.keys.get_mut(id) {
            Some(held) if held.revision > revision => {}
            Some(held) if held.revision == revision => {
                held.read_at = held.read_at.max(read_at);
            }
            _ => {
                let entry = Entry {
                    slot,
                    revision,
                    read_at,
                };
                self.keys.insert(id.to_string(), entry);
            }
        }
    }

    /// A whole listing at `revision`, begun at `started`: entries not in it are gone unless
    /// newer than it.
    fn relist(&mut self, listed: Vec<(KeyRecord, Revision)>, revision: Revision, started: Instant) {
        let present: std::collections::HashSet<String> =
            listed.iter().map(|(r, _)| r.id.clone()).collect();
        self.keys
            .retain(|id, e| present.contains(id) || e.revision > revision);
        for (record, at) in listed {
            let id = record.id.clone();
            self.offer(&id, Slot::Present(record), at, None);
        }
        self.confirmed_at = self.confirmed_at.max(Some(started));
    }

    /// Whether `id`'s state was confirmed within `bound` of `now`.
    fn fresh(&self, id: &str, now: Instant, bound: Duration) -> bool {
        let read_at = self.keys.get(id).and_then(|e| e.read_at);
        self.confirmed_at
            .max(read_at)
            .is_some_and(|at| now.saturating_duration_since(at) <= bound)
    }
}

/// The mirror; clones share it.
#[derive(Clone)]
pub struct KeyRing {
    cfg: Cfg,
    timing: Timing,
    mirror: Arc<RwLock<Mirror>>,
    misses: Arc<Mutex<Misses>>,
}

impl KeyRing {
    /// Starts mirroring `cfg`'s keys (the task ends with the runtime).
    pub fn start(cfg: Cfg) -> Self {
        Self::start_with(cfg, Timing::default())
    }

    /// [`Self::start`] with other bounds.
    pub fn start_with(cfg: Cfg, timing: Timing) -> Self {
        let ring = Self::unwatched(cfg, timing);
        tokio::spawn(mirror(ring.clone()));
        ring
    }

    /// A ring whose mirror nobody feeds (tests feed it by hand).
    fn unwatched(cfg: Cfg, timing: Timing) -> Self {
        Self {
            cfg,
            timing,
            mirror: Arc::default(),
            misses: Arc::default(),
        }
    }

    /// The identity `token` proves at `now_ms`, for a call from `client`.
    pub async fn check(
        &self,
        token: &str,
        now_ms: u64,
        client: Option<IpAddr>,
    ) -> Result<Identity, KeyCheckError> {
        let id = key::id_of(token)?;
        let now = Instant::now();
        let (known, fresh) = match self.mirror.read() {
            Ok(m) => (
                m.keys.get(id).map(|e| e.slot.clone()),
                m.fresh(id, now, self.timing.stale_after),
            ),
            Err(_) => (None, false),
        };
        let record = match (known, fresh) {
            (Some(Slot::Present(record)), true) => record,
            (Some(Slot::Gone), true) => return Err(KeyCheckError::Unknown(id.to_string())),
            // Known but not confirmed lately: the Cfg decides, or nobody does (503).
            (Some(_), false) => self.read(id, now).await?,
            (None, _) if !self.may_read_a_miss(client, now) => {
                return Err(KeyCheckError::Unknown(id.to_string()));
            }
            (None, _) => self.read(id, now).await?,
        };
        Ok(key::check(&record, token, now_ms)?)
    }

    /// Reads `id` from the Cfg (begun at `started`) and offers it to the mirror.
    async fn read(&self, id: &str, started: Instant) -> Result<KeyRecord, KeyCheckError> {
        let read = self.cfg.api_key(id).await?;
        let Some(read) = read else {
            return Err(KeyCheckError::Unknown(id.to_string()));
        };
        if let Ok(mut m) = self.mirror.write() {
            let slot = Slot::Present(read.value.clone());
            m.offer(id, slot, read.revision, Some(started));
        }
        Ok(read.value)
    }

    /// Whether an unknown key may be looked up in the Cfg now for `client`.
    fn may_read_a_miss(&self, client: Option<IpAddr>, now: Instant) -> bool {
        match self.misses.lock() {
            Ok(mut misses) => misses.take(client, now),
            Err(_) => false,
        }
    }

    fn apply(&self, event: &WatchEvent) {
        let Ok(mut m) = self.mirror.write() else {
            return;
        };
        match event {
            WatchEvent::Put(kv) => match schema::decode::<KeyRecord>(&kv.key, &kv.value) {
                Ok(record) => {
                    let id = record.id.clone();
                    m.offer(&id, Slot::Present(record), kv.mod_revision, None);
                }
                Err(e) => {
                    tracing::warn!(key = kv.key, error = %e, "ignoring an unreadable API key")
                }
            },
            WatchEvent::Delete { key, revision } => {
                if let Some(id) = key.rsplit('/').next() {
                    m.offer(id, Slot::Gone, *revision, None);
                }
            }
            WatchEvent::Compacted { .. } => {}
        }
    }

    /// Lists every key and takes the listing: the revision to watch from.
    async fn relist(&self) -> Result<Revision, CfgError> {
        let started = Instant::now();
        let listed = self.cfg.api_keys().await?;
        let items = listed
            .items
            .into_iter()
            .map(|k| (k.value, k.revision))
            .collect();
        if let Ok(mut m) = self.mirror.write() {
            m.relist(items, listed.revision, started);
        }
        Ok(listed.revision)
    }
}

/// The Cfg reads for unknown keys in the current second: per client address and in all.
#[derive(Debug, Default)]
struct Misses {
    clients: HashMap<Option<IpAddr>, (Instant, u32)>,
    node: Option<(Instant, u32)>,
}

impl Misses {
    /// Counts one read for `client` at `now`: whether it is within both budgets.
    fn take(&mut self, client: Option<IpAddr>, now: Instant) -> bool {
        let second = Duration::from_secs(1);
        if self.clients.len() >= MISS_CLIENTS && !self.clients.contains_key(&client) {
            self.clients
                .retain(|_, (start, _)| now.saturating_duration_since(*start) < second);
        }
        // Still full: the new address shares the budget of unknown clients.
        let client = if self.clients.len() >= MISS_CLIENTS && !self.clients.contains_key(&client) {
            None
        } else {
            client
        };
        let window = self.clients.entry(client).or_insert((now, 0));
        if now.saturating_duration_since(window.0) >= second {
            *window = (now, 0);
        }
        if window.1 >= MISS_READS_PER_CLIENT {
            return false;
        }
        let node = self.node.get_or_insert((now, 0));
        if now.saturating_duration_since(node.0) >= second {
            *node = (now, 0);
        }
        if node.1 >= MISS_READS_PER_NODE {
            return false;
        }
        window.1 += 1;
        node.1 += 1;
        true
    }
}

async fn mirror(ring: KeyRing) {
    let prefix = ring.cfg.keys().api_keys();
    loop {
        let revision = match ring.relist().await {
            Ok(revision) => revision,
            Err(e) => {
                tracing::debug!(error = %e, "listing API keys failed; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let Ok(mut watching) = ring.cfg.store().watch(&prefix, revision + 1).await else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        let mut refresh = tokio::time::interval(ring.timing.refresh);
        refresh.tick().await; // the first tick is now: just listed
        loop {
            tokio::select! {
                event = watching.next() => match event {
                    Some(event) if event.key().is_some() => ring.apply(&event),
                    _ => break, // compacted or ended: list again
                },
                _ = refresh.tick() => {
                    // A silent watch must not keep the mirror trusted: confirm it by listing.
                    if let Err(e) = ring.relist().await {
                        tracing::debug!(error = %e, "confirming the API keys failed");
                    }
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

#[cfg(test)]
mod tests;
