//! The API keys of the cluster, kept in memory from a watch of the Cfg's `keys/` (listed whole
//! at start and after a lost or compacted watch), so checking a key reads no store. A key not
//! in the mirror is read from the Cfg once (created a moment ago on another node, before the
//! watch brought it here), at most [`MISS_READS_PER_SECOND`] times a second; a revocation
//! reaches every node with the watch.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tessera_auth::key::{self, KeyError, KeyRecord};
use tessera_auth::Identity;
use tessera_cfg::schema;
use tessera_cfg::{Cfg, CfgError, WatchEvent};

const RETRY: Duration = Duration::from_millis(500);
/// Keys not in the mirror read from the Cfg per second, at most: a caller sending made-up
/// keys must not turn each request into a store read. Past it, an unknown key is refused
/// from the mirror alone (a key made a moment ago then waits for the watch).
const MISS_READS_PER_SECOND: u32 = 50;

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

/// The mirror; clones share it.
#[derive(Clone)]
pub struct KeyRing {
    cfg: Cfg,
    keys: Arc<RwLock<HashMap<String, KeyRecord>>>,
    /// The current second's start and the Cfg reads for unknown keys made in it.
    misses: Arc<std::sync::Mutex<(std::time::Instant, u32)>>,
}

impl KeyRing {
    /// Starts mirroring `cfg`'s keys (the task ends with the runtime).
    pub fn start(cfg: Cfg) -> Self {
        let ring = Self {
            cfg,
            keys: Arc::default(),
            misses: Arc::new(std::sync::Mutex::new((std::time::Instant::now(), 0))),
        };
        tokio::spawn(mirror(ring.clone()));
        ring
    }

    /// The identity `token` proves at `now_ms`.
    pub async fn check(&self, token: &str, now_ms: u64) -> Result<Identity, KeyCheckError> {
        let id = key::id_of(token)?;
        let known = self.keys.read().ok().and_then(|k| k.get(id).cloned());
        let record = match known {
            Some(record) => record,
            None if !self.may_read_a_miss() => {
                return Err(KeyCheckError::Unknown(id.to_string()));
            }
            None => {
                let record = self
                    .cfg
                    .api_key(id)
                    .await?
                    .ok_or_else(|| KeyCheckError::Unknown(id.to_string()))?
                    .value;
                if let Ok(mut keys) = self.keys.write() {
                    keys.insert(id.to_string(), record.clone());
                }
                record
            }
        };
        Ok(key::check(&record, token, now_ms)?)
    }

    /// Whether an unknown key may be looked up in the Cfg now (see
    /// [`MISS_READS_PER_SECOND`]).
    fn may_read_a_miss(&self) -> bool {
        match self.misses.lock() {
            Ok(mut window) => take_miss(&mut window, std::time::Instant::now()),
            Err(_) => false,
        }
    }

    fn apply(&self, event: &WatchEvent) {
        let Ok(mut keys) = self.keys.write() else {
            return;
        };
        match event {
            WatchEvent::Put(kv) => match schema::decode::<KeyRecord>(&kv.key, &kv.value) {
                Ok(record) => {
                    keys.insert(record.id.clone(), record);
                }
                Err(e) => {
                    tracing::warn!(key = kv.key, error = %e, "ignoring an unreadable API key")
                }
            },
            WatchEvent::Delete { key, .. } => {
                if let Some(id) = key.rsplit('/').next() {
                    keys.remove(id);
                }
            }
            WatchEvent::Compacted { .. } => {}
        }
    }
}

/// Counts one Cfg read for an unknown key in the one-second `window` (its start, the reads in
/// it): whether it is within the budget.
fn take_miss(window: &mut (std::time::Instant, u32), now: std::time::Instant) -> bool {
    if now.saturating_duration_since(window.0) >= Duration::from_secs(1) {
        *window = (now, 0);
    }
    window.1 += 1;
    window.1 <= MISS_READS_PER_SECOND
}

async fn mirror(ring: KeyRing) {
    let prefix = ring.cfg.keys().api_keys();
    loop {
        let listed = match ring.cfg.api_keys().await {
            Ok(listed) => listed,
            Err(e) => {
                tracing::debug!(error = %e, "listing API keys failed; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if let Ok(mut keys) = ring.keys.write() {
            *keys = listed
                .items
                .into_iter()
                .map(|k| (k.value.id.clone(), k.value))
                .collect();
        }
        let Ok(mut watching) = ring.cfg.store().watch(&prefix, listed.revision + 1).await else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        while let Some(event) = watching.next().await {
            if event.key().is_none() {
                break; // compacted: list again
            }
            ring.apply(&event);
        }
        tokio::time::sleep(RETRY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_read_the_cfg_a_bounded_number_of_times_a_second() {
        let t0 = std::time::Instant::now();
        let mut window = (t0, 0);
        for _ in 0..MISS_READS_PER_SECOND {
            assert!(take_miss(&mut window, t0));
        }
        assert!(!take_miss(&mut window, t0 + Duration::from_millis(999)));
        assert!(
            take_miss(&mut window, t0 + Duration::from_secs(1)),
            "a new second"
        );
    }

    #[tokio::test]
    async fn a_key_not_yet_in_the_mirror_is_read_from_the_cfg() {
        let cfg = Cfg::new(
            Arc::new(tessera_cfg::local::LocalStore::open_memory().expect("store")),
            tessera_cfg::KeySpace::new("t").expect("keys"),
        );
        let ring = KeyRing::start(cfg.clone());
        let roles = ["monitor".parse().expect("role")];
        let (token, record) = key::make("k", &roles, 0, None).expect("key");
        assert!(matches!(
            ring.check(&token, 1).await,
            Err(KeyCheckError::Unknown(_))
        ));
        cfg.put_api_key(&record, 0).await.expect("put");
        let who = ring.check(&token, 1).await.expect("found");
        assert!(who.allows(tessera_auth::Need::Monitor, None));
    }
}
