//! One HTTP/2 channel per peer, made lazily and kept, for every node-to-node call (query
//! phases, counts and status, a source's high seqs): a call should not pay for a TCP and
//! HTTP/2 handshake, and a node should not hold a connection per call. The channel reconnects
//! by itself when its connection breaks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::v1::backup_client::BackupClient;
use crate::v1::copy_client::CopyClient;
use crate::v1::node_client::NodeClient;
use crate::v1::search_client::SearchClient;
use crate::v1::source_client::SourceClient;

/// The pool; clones share it.
#[derive(Clone, Default)]
pub struct Peers {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Peers {
    /// The channel to `address` (`host:port` or `http://host:port`).
    pub fn channel(&self, address: &str) -> Result<Channel, String> {
        let url = if address.contains("://") {
            address.to_string()
        } else {
            format!("http://{address}")
        };
        let mut channels = self
            .channels
            .lock()
            .map_err(|_| "peer connections unavailable".to_string())?;
        if let Some(channel) = channels.get(&url) {
            return Ok(channel.clone());
        }
        let channel = Endpoint::from_shared(url.clone())
            .map_err(|e| format!("bad peer address {address}: {e}"))?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(url, channel.clone());
        Ok(channel)
    }

    pub fn search(&self, address: &str) -> Result<SearchClient<Channel>, String> {
        self.channel(address).map(SearchClient::new)
    }

    pub fn node(&self, address: &str) -> Result<NodeClient<Channel>, String> {
        self.channel(address).map(NodeClient::new)
    }

    pub fn source(&self, address: &str) -> Result<SourceClient<Channel>, String> {
        self.channel(address).map(SourceClient::new)
    }

    pub fn backup(&self, address: &str) -> Result<BackupClient<Channel>, String> {
        self.channel(address).map(BackupClient::new)
    }

    pub fn copy(&self, address: &str) -> Result<CopyClient<Channel>, String> {
        self.channel(address).map(CopyClient::new)
    }
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let peers = self.channels.lock().map(|c| c.len()).unwrap_or(0);
        f.debug_struct("Peers").field("channels", &peers).finish()
    }
}
