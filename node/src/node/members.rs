//! Keeps the peer pool's list of the cluster's node addresses current, from the node
//! definitions in the Cfg: the node's own credential goes only to those addresses
//! (`tessera_proto::peers`), so a recovery, restore or definition naming another address
//! cannot make this node hand its key there.

use std::time::Duration;

use tessera_cfg::Cfg;
use tessera_coord::Peers;

const RETRY: Duration = Duration::from_secs(1);

/// Reads the node definitions once (so the pool knows its members before the node calls any
/// peer), then follows them in the background.
pub async fn follow(cfg: Cfg, peers: Peers) -> tokio::task::JoinHandle<()> {
    let first = list(&cfg, &peers).await;
    tokio::spawn(async move {
        let mut revision = first;
        loop {
            let from = match revision {
                Some(revision) => revision + 1,
                None => {
                    tokio::time::sleep(RETRY).await;
                    revision = list(&cfg, &peers).await;
                    continue;
                }
            };
            let prefix = cfg.keys().node_defs();
            let Ok(mut watching) = cfg.store().watch(&prefix, from).await else {
                revision = None;
                continue;
            };
            // Any change of a node definition: list them all again (they are few).
            while let Some(event) = watching.next().await {
                if event.key().is_none() {
                    break; // compacted
                }
                list(&cfg, &peers).await;
            }
            // The watch ended (compacted, or the Cfg went away): list again, then watch.
            revision = None;
        }
    })
}

/// Sets the pool's members from the node definitions; the revision listed, or `None` when
/// the Cfg did not answer (the members stay as they were).
async fn list(cfg: &Cfg, peers: &Peers) -> Option<i64> {
    match cfg.node_defs().await {
        Ok(defs) => {
            peers.set_members(defs.items.iter().map(|d| d.value.host_port.clone()));
            Some(defs.revision)
        }
        Err(e) => {
            tracing::debug!(error = %e, "listing node definitions failed; peers keep their members");
            None
        }
    }
}
