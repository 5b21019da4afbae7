//! Keeps the port's [`NodeDirectory`] current with the cluster's node definitions: listed
//! once before the node serves (so a peer is known from the first request), then followed by
//! a watch of `nodes/` (listed again after a lost or compacted watch). A certificate naming a
//! uuid is a node identity only while the uuid is defined, so deleting a node's definition
//! retires its certificate at once; the addresses the definitions name are those the port
//! keeps connection slots for, and the only ones the peer pool sends the node's own key to
//! (`Peers::set_members`). While the watch is down the last listing stands.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use tessera_cfg::{Cfg, KeyKind, WatchEvent};
use tessera_coord::Peers;
use tessera_tls::NodeDirectory;

/// A host name that does not resolve within this long counts as no address.
const RESOLVE_WAIT: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_millis(500);

/// Node uuid → the `host:port` its definition names (empty when unreadable).
type Defined = BTreeMap<String, String>;

/// Where the defined nodes are published: the port's directory and the peer pool's members.
#[derive(Clone)]
struct Published {
    directory: NodeDirectory,
    peers: Peers,
}

impl Published {
    async fn set(&self, defined: &Defined) {
        self.peers
            .set_members(defined.values().filter(|a| !a.is_empty()).cloned());
        self.directory.set(resolved(defined).await);
    }
}

/// The directory, listed now (and `peers`' members with it, before the node calls any
/// peer), and the task that follows the definitions.
pub async fn start(
    cfg: &Cfg,
    peers: &Peers,
) -> anyhow::Result<(NodeDirectory, tokio::task::JoinHandle<()>)> {
    let published = Published {
        directory: NodeDirectory::default(),
        peers: peers.clone(),
    };
    let prefix = cfg.keys().node_defs();
    let listing = cfg.store().list(&prefix).await?;
    let mut defined = Defined::new();
    for kv in &listing.kvs {
        apply(cfg, &mut defined, &WatchEvent::Put(kv.clone()));
    }
    published.set(&defined).await;
    let directory = published.directory.clone();
    let task = tokio::spawn(follow(cfg.clone(), published, defined, listing.revision));
    Ok((directory, task))
}

async fn follow(cfg: Cfg, published: Published, mut defined: Defined, mut revision: i64) {
    let prefix = cfg.keys().node_defs();
    loop {
        match cfg.store().watch(&prefix, revision + 1).await {
            Ok(mut watching) => {
                while let Some(event) = watching.next().await {
                    if event.key().is_none() {
                        break; // compacted: list again
                    }
                    if apply(&cfg, &mut defined, &event) {
                        published.set(&defined).await;
                    }
                    revision = event.revision().unwrap_or(revision);
                }
            }
            Err(e) => tracing::debug!(error = %e, "node directory: watch failed; listing again"),
        }
        tokio::time::sleep(RETRY).await;
        match cfg.store().list(&prefix).await {
            Ok(listing) => {
                defined.clear();
                for kv in &listing.kvs {
                    apply(&cfg, &mut defined, &WatchEvent::Put(kv.clone()));
                }
                published.set(&defined).await;
                revision = listing.revision;
            }
            Err(e) => {
                tracing::debug!(error = %e, "node directory: listing failed; keeping the last")
            }
        }
    }
}

/// Applies one change; whether the defined nodes or their addresses changed.
fn apply(cfg: &Cfg, defined: &mut Defined, event: &WatchEvent) -> bool {
    let Some(key) = event.key() else {
        return false;
    };
    let KeyKind::NodeDef(uuid) = cfg.keys().kind(key) else {
        return false;
    };
    match event {
        WatchEvent::Put(kv) => {
            // A definition that does not decode still defines the node; it names no address.
            let host_port =
                tessera_cfg::schema::decode::<tessera_cfg::schema::NodeDef>(&kv.key, &kv.value)
                    .map(|def| def.host_port)
                    .unwrap_or_default();
            defined.insert(uuid, host_port.clone()) != Some(host_port)
        }
        _ => defined.remove(&uuid).is_some(),
    }
}

/// Every defined node with the addresses its `host:port` resolves to.
async fn resolved(defined: &Defined) -> Vec<(String, Vec<IpAddr>)> {
    let mut out = Vec::with_capacity(defined.len());
    for (uuid, host_port) in defined {
        let addresses = match host_port.parse::<std::net::SocketAddr>() {
            Ok(address) => vec![address.ip()],
            Err(_) if host_port.is_empty() => Vec::new(),
            Err(_) => {
                let lookup = tokio::net::lookup_host(host_port.as_str());
                match tokio::time::timeout(RESOLVE_WAIT, lookup).await {
                    Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                    _ => {
                        tracing::debug!(
                            node = uuid,
                            host_port,
                            "node directory: address does not resolve"
                        );
                        Vec::new()
                    }
                }
            }
        };
        out.push((uuid.clone(), addresses));
    }
    out
}
