//! Keeping a lease alive in the background, for any backend.
//!
//! The keeper renews at a quarter of the TTL. It reports the lease lost as soon as the store
//! says the lease is gone, or when a whole TTL has passed since the last renewal that
//! succeeded was *sent* (the store renewed it at some point after that, so it may have expired
//! it since); the holder must then stop acting on what the lease guarded.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{CfgError, Result};
use crate::store::{LeaseId, Store};

/// A granted lease renewed by a background task until revoked or dropped.
pub struct LeaseKeeper {
    id: LeaseId,
    store: Arc<dyn Store>,
    lost: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl LeaseKeeper {
    /// Grants a lease of `ttl` and starts renewing it.
    pub async fn grant(store: Arc<dyn Store>, ttl: Duration) -> Result<Self> {
        let asked = Instant::now();
        let id = store.grant_lease(ttl).await?;
        let (tx, lost) = watch::channel(false);
        let task = tokio::spawn(renew(store.clone(), id, ttl, asked, tx));
        Ok(Self {
            id,
            store,
            lost,
            task,
        })
    }

    pub fn id(&self) -> LeaseId {
        self.id
    }

    /// Becomes `true` once the lease is lost; never goes back.
    pub fn lost(&self) -> watch::Receiver<bool> {
        self.lost.clone()
    }

    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Stops renewing and revokes the lease, deleting its keys now.
    pub async fn revoke(self) -> Result<()> {
        self.task.abort();
        match self.store.revoke_lease(self.id).await {
            Ok(()) | Err(CfgError::LeaseNotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        // The lease then expires after its TTL, as when the process dies.
        self.task.abort();
    }
}

async fn renew(
    store: Arc<dyn Store>,
    id: LeaseId,
    ttl: Duration,
    granted: Instant,
    lost: watch::Sender<bool>,
) {
    // Renewing often keeps the last renewal recent when the store becomes unreachable (an
    // etcd election after its leader is cut off), leaving most of the TTL to ride it out.
    let period = (ttl / 4).max(Duration::from_millis(50));
    let mut last_ok = granted;
    loop {
        tokio::time::sleep(period).await;
        let sent = Instant::now();
        match store.keep_alive_lease(id).await {
            Ok(()) => last_ok = sent,
            Err(CfgError::LeaseNotFound(_)) => {
                tracing::error!(lease = format!("{id:x}"), "lease expired or revoked");
                let _ = lost.send(true);
                return;
            }
            Err(e) => {
                tracing::warn!(lease = format!("{id:x}"), error = %e, "lease renewal failed; retrying");
                if last_ok.elapsed() >= ttl {
                    tracing::error!(
                        lease = format!("{id:x}"),
                        "lease not renewed for a whole TTL; treating it as lost"
                    );
                    let _ = lost.send(true);
                    return;
                }
            }
        }
    }
}
