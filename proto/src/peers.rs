//! One HTTP/2 channel per peer, made lazily and kept, for every node-to-node call (query
//! phases, counts and status, a source's high seqs): a call should not pay for a TCP and
//! HTTP/2 handshake, and a node should not hold a connection per call. The channel reconnects
//! by itself when its connection breaks.
//!
//! Every call to a node of the cluster carries the node's credential ([`NodeCredential`]: its
//! own API key with the `node` role, when the cluster runs with auth), so a peer lets it call
//! the nodes' services. Addresses that are not nodes of the cluster (another cluster named by
//! a recovery, a standalone source) get no credential: a request or definition naming an
//! address must not make a node hand its key there. The cluster's addresses are kept by the
//! node ([`Peers::set_members`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::v1::backup_client::BackupClient;
use crate::v1::copy_client::CopyClient;
use crate::v1::node_client::NodeClient;
use crate::v1::search_client::SearchClient;
use crate::v1::source_client::SourceClient;

/// What this node sends to prove it is a node of the cluster: `authorization: Bearer <key>`
/// on every call, or nothing.
#[derive(Clone, Default)]
pub struct NodeCredential(Option<MetadataValue<Ascii>>);

impl NodeCredential {
    /// The credential of the API key `token`; `None` when it cannot be a header value.
    pub fn bearer(token: &str) -> Option<Self> {
        format!("Bearer {token}")
            .parse()
            .ok()
            .map(|v| Self(Some(v)))
    }
}

impl tonic::service::Interceptor for NodeCredential {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A channel to a peer that carries the node's credential.
pub type PeerChannel = InterceptedService<Channel, NodeCredential>;

/// The pool; clones share it.
#[derive(Clone, Default)]
pub struct Peers {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    credential: NodeCredential,
    /// TLS to peers (`https`), with the node's certificate when it has one.
    tls: Arc<RwLock<Option<ClientTlsConfig>>>,
    /// The `host:port` of every node of the cluster: only calls to these carry the
    /// credential. `None` until set: no pool with a credential is used before the node sets
    /// them, so `None` means nothing is sent.
    members: Arc<RwLock<Option<HashSet<String>>>>,
}

impl Peers {
    /// A pool whose calls carry `credential`.
    pub fn with_credential(credential: NodeCredential) -> Self {
        Self {
            credential,
            ..Self::default()
        }
    }

    /// The cluster's nodes (`host:port`) from now on: the only addresses the credential goes
    /// to.
    pub fn set_members(&self, members: impl IntoIterator<Item = String>) {
        let members: HashSet<String> = members
            .into_iter()
            .map(|m| bare(&m).to_ascii_lowercase())
            .collect();
        if let Ok(mut current) = self.members.write() {
            *current = Some(members);
        }
    }

    /// The credential a call to `address` carries: the node's own to nodes of the cluster,
    /// none elsewhere.
    fn credential_for(&self, address: &str) -> NodeCredential {
        let member = self.members.read().ok().is_some_and(|m| {
            m.as_ref()
                .is_some_and(|m| m.contains(&bare(address).to_ascii_lowercase()))
        });
        if member {
            self.credential.clone()
        } else {
            NodeCredential::default()
        }
    }

    /// Dials peers over TLS with `config` from now on (`http://` addresses become
    /// `https://`): channels made before are dropped from the pool, so a renewed certificate
    /// is presented on the next call; calls under way finish on their channel.
    pub fn set_tls(&self, config: ClientTlsConfig) {
        if let Ok(mut tls) = self.tls.write() {
            *tls = Some(config);
        }
        if let Ok(mut channels) = self.channels.lock() {
            channels.clear();
        }
    }

    /// An endpoint for `address` (`host:port`, `http://` or `https://`), over TLS when set.
    fn endpoint(&self, address: &str) -> Result<Endpoint, String> {
        let tls = self.tls.read().ok().and_then(|t| t.clone());
        let rest = address
            .strip_prefix("http://")
            .or_else(|| address.strip_prefix("https://"))
            .unwrap_or(address);
        let url = match tls {
            Some(_) => format!("https://{rest}"),
            None => format!("http://{rest}"),
        };
        let endpoint =
            Endpoint::from_shared(url).map_err(|e| format!("bad peer address {address}: {e}"))?;
        match tls {
            Some(config) => endpoint
                .tls_config(config)
                .map_err(|e| format!("TLS to {address}: {e}")),
            None => Ok(endpoint),
        }
    }

    /// A channel of its own to `url` (not pooled: a feed spreading its streams over several
    /// connections), carrying the node's credential; connected lazily.
    pub fn dedicated(&self, url: &str, connect_timeout: Duration) -> Result<PeerChannel, String> {
        let channel = self
            .endpoint(url)?
            .connect_timeout(connect_timeout)
            .connect_lazy();
        Ok(InterceptedService::new(channel, self.credential_for(url)))
    }

    /// The channel to `address` (`host:port` or `http://host:port`).
    pub fn channel(&self, address: &str) -> Result<PeerChannel, String> {
        self.pooled(address)
            .map(|c| InterceptedService::new(c, self.credential_for(address)))
    }

    fn pooled(&self, address: &str) -> Result<Channel, String> {
        let key = bare(address).to_string();
        if let Some(channel) = self.channels.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(channel);
        }
        let channel = self
            .endpoint(address)?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .connect_lazy();
        let mut channels = self
            .channels
            .lock()
            .map_err(|_| "peer connections unavailable".to_string())?;
        Ok(channels.entry(key).or_insert(channel).clone())
    }

    pub fn search(&self, address: &str) -> Result<SearchClient<PeerChannel>, String> {
        self.channel(address).map(SearchClient::new)
    }

    pub fn node(&self, address: &str) -> Result<NodeClient<PeerChannel>, String> {
        self.channel(address).map(NodeClient::new)
    }

    pub fn source(&self, address: &str) -> Result<SourceClient<PeerChannel>, String> {
        self.channel(address).map(SourceClient::new)
    }

    pub fn backup(&self, address: &str) -> Result<BackupClient<PeerChannel>, String> {
        self.channel(address).map(BackupClient::new)
    }

    pub fn copy(&self, address: &str) -> Result<CopyClient<PeerChannel>, String> {
        self.channel(address).map(CopyClient::new)
    }
}

/// `address` without its `http://` or `https://` and any trailing `/`.
fn bare(address: &str) -> &str {
    address
        .strip_prefix("http://")
        .or_else(|| address.strip_prefix("https://"))
        .unwrap_or(address)
        .trim_end_matches('/')
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let peers = self.channels.lock().map(|c| c.len()).unwrap_or(0);
        f.debug_struct("Peers").field("channels", &peers).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carries_key(peers: &Peers, address: &str) -> bool {
        let mut credential = peers.credential_for(address);
        let request = tonic::service::Interceptor::call(&mut credential, tonic::Request::new(()))
            .expect("intercepted");
        request.metadata().get("authorization").is_some()
    }

    #[test]
    fn the_nodes_key_goes_to_nodes_of_the_cluster_only() {
        let peers = Peers::with_credential(NodeCredential::bearer("tsk_a_b").expect("header"));
        assert!(
            !carries_key(&peers, "10.0.0.1:9100"),
            "nothing before the members are known"
        );
        peers.set_members(["10.0.0.1:9100".to_string(), "n2:9100".to_string()]);
        assert!(carries_key(&peers, "10.0.0.1:9100"));
        assert!(carries_key(&peers, "http://N2:9100/"));
        assert!(!carries_key(&peers, "http://10.0.0.1:9101"));
        assert!(!carries_key(&peers, "https://collector.example:443"));
    }
}
