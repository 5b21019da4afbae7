//! What every handler shares: the Cfg, who this node is, its local PIndexes, and the query
//! coordinator.

use tessera_cfg::Cfg;
use tessera_coord::Coordinator;
use tessera_janitor::executor::StatusBoard;

#[derive(Clone)]
pub struct AppState {
    pub cfg: Cfg,
    pub node_uuid: String,
    pub incarnation: String,
    pub cluster_uuid: String,
    pub cluster_name: String,
    /// The local PIndexes, as the janitor last saw them.
    pub board: StatusBoard,
    /// Query coordination: view, scatter-gather, peers, concurrency cap.
    pub coord: Coordinator,
}
