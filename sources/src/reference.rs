//! Type `tessera`: the reference source, a node's own per-partition logs (or a standalone
//! `tessera source`), read over the gRPC source protocol (`proto/tessera/v1/source.proto`).
//! The server side is `tessera-source`; this is the client a feed and the API read through.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tessera_proto::peers::Peers;
use tessera_proto::v1::source_client::SourceClient;
use tessera_proto::v1::stream_event::Event;
use tessera_proto::v1::{ListPartitionsRequest, StreamRequest};

use crate::{ChangeStream, FeedSession, PartitionInfo, SourceError, SourceEvent, SourceType};

/// Partition streams per HTTP/2 connection. Every stream of a feed stays open (it follows live
/// changes), and a server admits only so many concurrent streams per connection (hyper's
/// default is 200; HTTP/2 asks for at least 100): streams past that limit wait forever for a
/// slot, so a feed over more partitions spreads them over more connections.
pub const STREAMS_PER_CONNECTION: usize = 64;
/// How long listing partitions may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening one partition stream may take before it counts as failed.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Source `name` at the node or standalone source serving `url` (`http://host:port`).
pub struct ReferenceSource {
    peers: Peers,
    url: String,
    name: String,
}

impl ReferenceSource {
    pub fn new(peers: Peers, url: String, name: String) -> Self {
        Self { peers, url, name }
    }

    /// Source `name` at `url`, shared, over its own peer channels (tools, tests, benches).
    pub fn at(url: String, name: &str) -> Arc<dyn SourceType> {
        Arc::new(Self::new(Peers::default(), url, name.to_string()))
    }
}

#[async_trait::async_trait]
impl SourceType for ReferenceSource {
    fn describe(&self) -> String {
        format!("source `{}` at {}", self.name, self.url)
    }

    async fn partitions(&self) -> Result<BTreeMap<u32, PartitionInfo>, SourceError> {
        list(&self.peers, &self.url, &self.name).await
    }

    fn session(&self, partitions: &[u32]) -> Arc<dyn FeedSession> {
        let connections = partitions.len().div_ceil(STREAMS_PER_CONNECTION).max(1);
        let channels = (0..connections)
            .map_while(|_| self.peers.dedicated(&self.url, Duration::from_secs(2)).ok())
            .collect();
        Arc::new(ReferenceSession {
            url: self.url.clone(),
            name: self.name.clone(),
            partitions: partitions.to_vec(),
            channels,
        })
    }
}

/// A feed's HTTP/2 connections, at most [`STREAMS_PER_CONNECTION`] partitions each (connected
/// lazily, re-dialled by tonic when one breaks). Empty when the url is unusable.
struct ReferenceSession {
    url: String,
    name: String,
    partitions: Vec<u32>,
    channels: Vec<tessera_proto::peers::PeerChannel>,
}

#[async_trait::async_trait]
impl FeedSession for ReferenceSession {
    async fn stream(
        &self,
        partition: u32,
        from_seq: u64,
        uuid: &str,
    ) -> Result<ChangeStream, SourceError> {
        // A partition's connection follows from its place in the feed's partition list, so a
        // stream opened again (after a rollback) shares the same connection.
        let slot = self
            .partitions
            .iter()
            .position(|p| *p == partition)
            .unwrap_or(0)
            / STREAMS_PER_CONNECTION;
        let Some(channel) = self.channels.get(slot).cloned() else {
            return Err(SourceError::Invalid(format!(
                "bad source url `{}`",
                self.url
            )));
        };
        let request = StreamRequest {
            source: self.name.clone(),
            partition,
            from_seq,
            partition_uuid: uuid.to_string(),
        };
        let mut client = SourceClient::new(channel);
        let open = async { client.stream(request).await.map_err(|e| status_error(&e)) };
        let what = "the source did not open the stream";
        let stream = crate::within(OPEN_TIMEOUT, what.into(), open)
            .await?
            .into_inner();
        Ok(stream
            .filter_map(|message| async move {
                match message {
                    Ok(message) => message.event.map(|event| Ok(event_of(event))),
                    Err(e) => Some(Err(status_error(&e))),
                }
            })
            .boxed())
    }
}

fn event_of(event: Event) -> SourceEvent {
    match event {
        Event::Snapshot(s) => SourceEvent::Snapshot {
            uuid: s.partition_uuid,
        },
        Event::Mutation(m) => SourceEvent::Mutation {
            seq: m.seq,
            key: m.key,
            doc: m.doc,
        },
        Event::Deletion(d) => SourceEvent::Deletion {
            seq: d.seq,
            key: d.key,
        },
        Event::Rollback(r) => SourceEvent::Rollback {
            uuid: r.partition_uuid,
        },
    }
}

fn status_error(status: &tonic::Status) -> SourceError {
    match status.code() {
        tonic::Code::NotFound => SourceError::NotFound(status.message().to_string()),
        _ => SourceError::Unavailable(status.message().to_string()),
    }
}

async fn list(
    peers: &Peers,
    url: &str,
    source: &str,
) -> Result<BTreeMap<u32, PartitionInfo>, SourceError> {
    let call = async {
        let mut client = peers.source(url).map_err(SourceError::Invalid)?;
        let request = ListPartitionsRequest {
            source: source.to_string(),
        };
        let partitions = client
            .list_partitions(request)
            .await
            .map_err(|e| status_error(&e))?
            .into_inner()
            .partitions;
        Ok(partitions
            .into_iter()
            .map(|p| {
                let info = PartitionInfo {
                    uuid: p.uuid,
                    high_seq: p.high_seq,
                };
                (p.id, info)
            })
            .collect())
    };
    crate::within(LIST_TIMEOUT, format!("{url}: no answer"), call).await
}

/// Every partition of `source` at the reference source serving `url`: its uuid and high seq
/// (bounded to 5 s). For what only the reference source has (backups copy its logs).
pub async fn partition_infos(
    peers: &Peers,
    url: &str,
    source: &str,
) -> Result<BTreeMap<u32, (String, u64)>, String> {
    let at = ReferenceSource::new(peers.clone(), url.to_string(), source.to_string());
    crate::uuids_and_highs(&at).await.map_err(|e| e.to_string())
}
