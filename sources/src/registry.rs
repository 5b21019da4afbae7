//! Opening the source a definition names: the one place that matches on the source type.
//! NATS connections are kept per server list and shared by every source over them; a
//! JetStream source is kept per stream, so its feeds share one watch of the stream's history.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use tessera_cfg::schema::SourceDef;
use tessera_cfg::Cfg;
use tessera_proto::peers::Peers;

use crate::dial::{DialPolicy, EgressError, PathPolicy};
use crate::jetstream::{JetStreamParams, JetStreamSource};
use crate::reference::ReferenceSource;
use crate::{SourceError, SourceType};

/// How long the cluster's node addresses are reused for dial checks.
const CLUSTER_FRESH: std::time::Duration = std::time::Duration::from_secs(2);

type ClusterCache = Arc<tokio::sync::Mutex<Option<(std::time::Instant, BTreeSet<String>)>>>;

/// The node's sources; clones share the connections.
#[derive(Clone, Default)]
pub struct Sources {
    peers: Peers,
    policy: Arc<DialPolicy>,
    paths: Arc<PathPolicy>,
    cluster: ClusterCache,
    nats: Arc<tokio::sync::Mutex<HashMap<String, async_nats::Client>>>,
    streams: Arc<tokio::sync::Mutex<HashMap<String, JetStreamSource>>>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources").finish_non_exhaustive()
    }
}

impl Sources {
    pub fn new(peers: Peers) -> Self {
        Self::with_policy(peers, DialPolicy::default(), PathPolicy::open())
    }

    /// Sources that dial only what `policy` allows and read only the files `paths` allows.
    pub fn with_policy(peers: Peers, policy: DialPolicy, paths: PathPolicy) -> Self {
        Self {
            peers,
            policy: Arc::new(policy),
            paths: Arc::new(paths),
            cluster: Arc::default(),
            nats: Arc::default(),
            streams: Arc::default(),
        }
    }

    /// Whether the addresses `def` makes nodes dial and the files it makes them read are
    /// allowed (`crate::dial::check`): the first that is not, naming its field.
    pub async fn check_dial(&self, def: &SourceDef, cfg: &Cfg) -> Result<(), EgressError> {
        let cluster = if self.policy.is_restricted() && !crate::dial::dialled(def).is_empty() {
            self.cluster_addresses(cfg).await
        } else {
            BTreeSet::new()
        };
        crate::dial::check(def, &self.policy, &self.paths, &cluster)
    }

    /// Whether this node may dial `url`, named by `field` of a request or definition (another
    /// cluster to recover from, where to import restored sources): parsed and checked like a
    /// source's address.
    pub async fn check_url(
        &self,
        field: &str,
        url: &str,
        cfg: &Cfg,
    ) -> Result<crate::dial::Address, EgressError> {
        let cluster = if self.policy.is_restricted() {
            self.cluster_addresses(cfg).await
        } else {
            BTreeSet::new()
        };
        self.policy.check_url(field, url, 0, &cluster)
    }

    /// The dial policy sources are opened under.
    pub fn dial_policy(&self) -> &DialPolicy {
        &self.policy
    }

    /// The path policy sources are opened under.
    pub fn path_policy(&self) -> &PathPolicy {
        &self.paths
    }

    /// The `host:port` of every node defined in the Cfg (reused for [`CLUSTER_FRESH`]).
    async fn cluster_addresses(&self, cfg: &Cfg) -> BTreeSet<String> {
        let mut cached = self.cluster.lock().await;
        if let Some((at, nodes)) = cached.as_ref() {
            if at.elapsed() < CLUSTER_FRESH {
                return nodes.clone();
            }
        }
        let nodes: BTreeSet<String> = match cfg.node_defs().await {
            Ok(defs) => defs.items.into_iter().map(|d| d.value.host_port).collect(),
            // The Cfg unreachable: only the allowlist answers.
            Err(_) => return BTreeSet::new(),
        };
        *cached = Some((std::time::Instant::now(), nodes.clone()));
        nodes
    }

    /// The source `def` names. The reference source's address is resolved from the Cfg
    /// (`default_url` for definitions from before sources were recorded).
    pub async fn open(
        &self,
        def: &SourceDef,
        cfg: &Cfg,
        default_url: &str,
    ) -> Result<Arc<dyn SourceType>, SourceError> {
        if let Err(refused) = self.check_dial(def, cfg).await {
            return Err(SourceError::Invalid(refused.to_string()));
        }
        match def.source_type.as_str() {
            "jetstream" => Ok(Arc::new(self.jetstream(def).await?)),
            _ => {
                let url = cfg
                    .source_url(def, default_url)
                    .await
                    .map_err(SourceError::Unavailable)?;
                Ok(Arc::new(ReferenceSource::new(
                    self.peers.clone(),
                    url,
                    def.name.clone(),
                )))
            }
        }
    }

    /// The JetStream source `def` names, on a connection shared with every other over the same
    /// servers and credentials (connected in the background: opening never waits for NATS).
    pub async fn jetstream(&self, def: &SourceDef) -> Result<JetStreamSource, SourceError> {
        let params = JetStreamParams::of(def)
            .map_err(|e| SourceError::Invalid(format!("{}: {}", e.field, e.reason)))?;
        let access = params.access();
        let key = format!("{}|{}", params.servers.join(","), access.key());
        let partitions = params.partitions(def);
        let stream_key = format!(
            "{key}|{}|{}|{partitions}",
            params.stream, params.subject_prefix
        );
        if let Some(source) = self.streams.lock().await.get(&stream_key) {
            return Ok(source.clone());
        }
        let mut clients = self.nats.lock().await;
        let client = match clients.get(&key) {
            Some(client) => client.clone(),
            None => {
                let client = crate::jetstream::connect(&params.servers, &access).await?;
                clients.insert(key, client.clone());
                client
            }
        };
        drop(clients);
        let source = JetStreamSource::new(client, params, partitions);
        let mut streams = self.streams.lock().await;
        Ok(streams.entry(stream_key).or_insert(source).clone())
    }
}
