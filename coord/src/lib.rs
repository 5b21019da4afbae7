//! Query coordination: how a node answers a query over an index whose PIndexes live on many
//! nodes. It reads the cluster view (plan, node addresses, liveness), picks one readable copy
//! per PIndex, runs the two phases of exact scoring over the nodes holding them (its own
//! PIndexes directly, others through one pooled client per peer), asks other copies when a
//! node fails or a copy moved, and says exactly which PIndexes answered. The pure parts —
//! parsing, statistics, routing, merging — are `tessera-search`'s; this crate does the I/O
//! around them. It must not know about HTTP: the API crate turns its outcomes into answers.
//! `README.md` beside this crate explains the method.

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

pub use scatter::{Outcome, Scatter};
pub use tessera_proto::peers::Peers;
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

/// The node's search-wide state: the concurrency cap, peer connections, recently failed
/// nodes.
pub struct SearchState {
    slots: Arc<tokio::sync::Semaphore>,
    max_concurrent: usize,
    turn: AtomicU64,
    suspects: Mutex<HashMap<String, Instant>>,
    /// One channel per peer, for every node-to-node call.
    pub peers: Peers,
    /// Where this node's own source answers (for indexes without a source `url`).
    pub default_source_url: String,
}

impl SearchState {
    pub fn new(max_concurrent: usize, default_source_url: String, peers: Peers) -> Arc<Self> {
        Arc::new(Self {
            slots: Arc::new(tokio::sync::Semaphore::new(max_concurrent)),
            max_concurrent,
            turn: AtomicU64::new(0),
            suspects: Mutex::new(HashMap::new()),
            peers,
            default_source_url,
        })
    }

    /// A slot of the concurrency cap, or `None` when every slot is taken.
    pub fn try_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
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
