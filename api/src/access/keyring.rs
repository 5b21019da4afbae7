//! The API keys of the cluster, kept in memory from a watch of the Cfg's `keys/` (listed whole
//! at start and after a lost or compacted watch), so checking a key reads no store. A key not
//! in the mirror is read from the Cfg once (created a moment ago on another node, before the
//! watch brought it here); a revocation reaches every node with the watch.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tessera_auth::key::{self, KeyError, KeyRecord};
use tessera_auth::Identity;
use tessera_cfg::schema;
use tessera_cfg::{Cfg, CfgError, WatchEvent};

const RETRY: Duration = Duration::from_millis(500);

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
}

impl KeyRing {
    /// Starts mirroring `cfg`'s keys (the task ends with the runtime).
    pub fn start(cfg: Cfg) -> Self {
        let ring = Self {
            cfg,
            keys: Arc::default(),
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
