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
    /// Directories under which `fs` backup repositories may be added (`--backup-path`).
    pub backup_paths: Vec<std::path::PathBuf>,
    /// The indexing threads, writers and memory budget the node's PIndexes share.
    pub indexing: Option<std::sync::Arc<tessera_index::IndexingPool>>,
    /// Queries taking at least this long are logged with their phases (`--slow-query-ms`).
    pub slow_query: Option<std::time::Duration>,
    /// Opens the sources definitions name; the node's janitor shares it (and its connections).
    pub sources: tessera_sources::Sources,
    /// Who may call what (`--auth`), the API keys and the audit log.
    pub access: crate::access::Access,
}

/// Who the node is: its uuid and this run's incarnation, and its cluster's uuid and name.
pub struct Identity {
    pub node_uuid: String,
    pub incarnation: String,
    pub cluster_uuid: String,
    pub cluster_name: String,
}

impl AppState {
    /// The state of a node; its coordinator works on the same Cfg, node and board.
    pub fn new(
        cfg: Cfg,
        who: Identity,
        board: StatusBoard,
        search: std::sync::Arc<tessera_coord::SearchState>,
    ) -> Self {
        let sources = tessera_sources::Sources::new(search.peers.clone());
        let coord = Coordinator {
            cfg: cfg.clone(),
            node_uuid: who.node_uuid.clone(),
            board: board.clone(),
            search,
        };
        Self {
            cfg,
            node_uuid: who.node_uuid,
            incarnation: who.incarnation,
            cluster_uuid: who.cluster_uuid,
            cluster_name: who.cluster_name,
            board,
            coord,
            backup_paths: Vec::new(),
            indexing: None,
            slow_query: None,
            sources,
            access: crate::access::Access::off(),
        }
    }
}

impl AppState {
    /// Where `def`'s source answers: its `url`, the recorded source node's address, or (for a
    /// definition from before sources were recorded) this node's own.
    pub async fn source_url(&self, def: &tessera_cfg::schema::IndexDef) -> Result<String, String> {
        self.cfg
            .source_url(&def.source, &self.coord.search.default_source_url)
            .await
    }

    /// The source `def` reads (see `tessera_sources::Sources::open`).
    pub async fn source(
        &self,
        def: &tessera_cfg::schema::IndexDef,
    ) -> Result<std::sync::Arc<dyn tessera_sources::SourceType>, tessera_sources::SourceError> {
        let default = &self.coord.search.default_source_url;
        self.sources.open(&def.source, &self.cfg, default).await
    }

    /// Each partition's uuid and high seq of the source `def` reads, `None` when it does not
    /// answer.
    pub async fn source_state(
        &self,
        def: &tessera_cfg::schema::IndexDef,
    ) -> Option<std::collections::BTreeMap<u32, (String, u64)>> {
        let source = self.source(def).await.ok()?;
        tessera_sources::uuids_and_highs(source.as_ref()).await.ok()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A node `node` of cluster `t` for handler tests (its source at an address nothing
    /// answers).
    pub(crate) fn state(cfg: Cfg, node: &str, board: StatusBoard) -> AppState {
        let limits = tessera_coord::SearchLimits {
            max_concurrent_queries: 8,
            ..Default::default()
        };
        state_with(cfg, node, board, limits)
    }

    /// [`state`] with the given search limits.
    pub(crate) fn state_with(
        cfg: Cfg,
        node: &str,
        board: StatusBoard,
        limits: tessera_coord::SearchLimits,
    ) -> AppState {
        let who = Identity {
            node_uuid: node.into(),
            incarnation: "i".into(),
            cluster_uuid: "c".into(),
            cluster_name: "t".into(),
        };
        let search = tessera_coord::SearchState::new(
            limits,
            "http://127.0.0.1:1".into(),
            Default::default(),
        );
        AppState::new(cfg, who, board, search)
    }
}
