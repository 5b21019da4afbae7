//! Connections to other nodes' search service, one HTTP/2 channel per address, made lazily
//! and kept: a query should not pay for a TCP and HTTP/2 handshake per node it asks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tessera_proto::v1::search_client::SearchClient;
use tonic::transport::{Channel, Endpoint};

#[derive(Default)]
pub struct Peers {
    channels: Mutex<HashMap<String, Channel>>,
}

impl Peers {
    /// A client for the node at `address` (`host:port`).
    pub fn client(&self, address: &str) -> Result<SearchClient<Channel>, String> {
        let mut channels = self
            .channels
            .lock()
            .map_err(|_| "peer connections unavailable".to_string())?;
        if let Some(channel) = channels.get(address) {
            return Ok(SearchClient::new(channel.clone()));
        }
        let channel = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| format!("bad node address {address}: {e}"))?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(address.to_string(), channel.clone());
        Ok(SearchClient::new(channel))
    }
}
