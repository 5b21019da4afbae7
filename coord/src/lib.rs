//! Query coordination: how a node answers a query over an index whose PIndexes live on many
//! nodes. It reads the cluster view (plan, node addresses, liveness), picks one readable copy
//! per PIndex, runs the two phases of exact scoring over the nodes holding them (its own
//! PIndexes directly, others through one pooled client per peer), asks other copies when a
//! node fails or a copy moved, and says exactly which PIndexes answered. The pure parts —
//! parsing, statistics, routing, merging — are `tessera-search`'s; this crate does the I/O
//! around them. It must not know about HTTP: the API crate turns its outcomes into answers.
//! `README.md` beside this crate explains the method.

pub mod cluster_view;
pub mod count;
pub mod scatter;
pub mod shard;
pub mod view;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tessera_cfg::Cfg;
use tessera_janitor::executor::StatusBoard;

pub use cluster_view::{ClusterView, Freshness};
pub use scatter::{Outcome, Scatter};
pub use tessera_proto::peers::{NodeCredential, Peers};
pub use view::{View, ViewError};

/// How long a node that failed a search call is asked only as a last resort.
const SUSPECT_FOR: Duration = Duration::from_secs(10);

/// What a node coordinates with: the Cfg, who it is, its own PIndexes, and the search-wide
/// state. Cheap to clone.
#[derive(Clone)]
pub struct Coordinator {
    pub cfg: Cfg,
    pub node_uuid: String,
    /// The local PIndexes, as the janitor last saw them.
    pub board: StatusBoard,
    pub search: Arc<SearchState>,
}

impl Coordinator {
    /// How fresh a request's view of the cluster must be: `latest` (the request promises to
    /// see what was written before it) reads the store's revision now.
    pub async fn freshness(&self, latest: bool) -> Freshness {
        if !latest {
            return Freshness::Mirror;
        }
        match self.cfg.store().revision().await {
            Ok(revision) => Freshness::AtLeast(revision),
            // Unknown: only the Cfg itself will do.
            Err(_) => Freshness::AtLeast(tessera_cfg::Revision::MAX),
        }
    }

    /// Index `name`'s definition, from the mirror when it can say, else from the Cfg.
    pub async fn index_def(
        &self,
        name: &str,
        fresh: Freshness,
    ) -> Result<Option<tessera_cfg::schema::IndexDef>, tessera_cfg::CfgError> {
        if let Some(view) = self.search.cluster_view.get() {
            if let Some(def) = view.read(fresh, |m| m.index_def(name)).await {
                return Ok(Some(def));
            }
        }
        Ok(self.cfg.index_def(name).await?.map(|d| d.value))
    }

    /// The view of index `name`, from the mirror when it can say, else from the Cfg.
    pub async fn view(&self, name: &str, fresh: Freshness) -> Result<View, ViewError> {
        if let Some(view) = self.search.cluster_view.get() {
            if let Some(v) = view.read(fresh, |m| m.view(name)).await {
                return Ok(v);
            }
        }
        View::load(&self.cfg, name).await
    }
}

/// The node's bounds on search work. Queries it coordinates and shard calls from its peers
/// have caps of their own, so a burst of one cannot starve the other.
#[derive(Debug, Clone, Copy)]
pub struct SearchLimits {
    /// Queries this node coordinates at once (429 past it).
    pub max_concurrent_queries: usize,
    /// Shard calls (`tessera.v1.Search/Shard*`) from other nodes served at once
    /// (`ResourceExhausted` past it).
    pub max_concurrent_shard_calls: usize,
    /// The longest a shard call may wait, whatever timeout its caller asked for (it bounds
    /// `at_plus` waits on this node).
    pub max_shard_wait: Duration,
}

impl Default for SearchLimits {
    fn default() -> Self {
        Self {
            max_concurrent_queries: 64,
            max_concurrent_shard_calls: 256,
            max_shard_wait: Duration::from_secs(60),
        }
    }
}

/// The node's search-wide state: the concurrency caps, peer connections, recently failed
/// nodes.
pub struct SearchState {
    slots: Arc<tokio::sync::Semaphore>,
    shard_slots: Arc<tokio::sync::Semaphore>,
    limits: SearchLimits,
    turn: AtomicU64,
    suspects: Mutex<HashMap<String, Instant>>,
    /// One channel per peer, for every node-to-node call.
    pub peers: Peers,
    /// Where this node's own source answers (for indexes without a source `url`).
    pub default_source_url: String,
    /// The in-memory mirror of the cluster queries route from, once the node starts it.
    pub cluster_view: std::sync::OnceLock<ClusterView>,
}

impl SearchState {
    pub fn new(limits: SearchLimits, default_source_url: String, peers: Peers) -> Arc<Self> {
        Arc::new(Self {
            slots: Arc::new(tokio::sync::Semaphore::new(limits.max_concurrent_queries)),
            shard_slots: Arc::new(tokio::sync::Semaphore::new(
                limits.max_concurrent_shard_calls,
            )),
            limits,
            turn: AtomicU64::new(0),
            suspects: Mutex::new(HashMap::new()),
            peers,
            default_source_url,
            cluster_view: std::sync::OnceLock::new(),
        })
    }

    /// A slot of the concurrency cap, or `None` when every slot is taken.
    pub fn try_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// A slot of the shard-call cap, or `None` when every slot is taken.
    pub fn try_shard_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.shard_slots.clone().try_acquire_owned().ok()
    }

    pub fn limits(&self) -> SearchLimits {
        self.limits
    }

    pub fn max_concurrent(&self) -> usize {
        self.limits.max_concurrent_queries
    }

    /// The next turn, for spreading reads over replicas.
    pub fn next_turn(&self) -> u64 {
        self.turn.fetch_add(1, Ordering::Relaxed)
    }

    /// Remembers that `node` failed a call.
    pub fn suspect(&self, node: &str) {
        if let Ok(mut s) = self.suspects.lock() {
            s.insert(node.to_string(), Instant::now() + SUSPECT_FOR);
        }
    }

    /// Nodes that failed a call recently.
    pub fn suspects(&self) -> BTreeSet<String> {
        let now = Instant::now();
        self.suspects
            .lock()
            .map(|mut s| {
                s.retain(|_, until| *until > now);
                s.keys().cloned().collect()
            })
            .unwrap_or_default()
    }
}
