//! The cluster as a query sees it: the index's plan, where nodes answer, which are live, which
//! serve reads only as a last resort. Read from the Cfg at the query's start, and again when a
//! copy turns out not to be where the plan said.

use std::collections::{BTreeMap, BTreeSet};

use tessera_cfg::schema::{Document, IndexPlan};
use tessera_cfg::{Cfg, CfgError};
use tessera_search::request::Prefer;
use tessera_search::route::{route, Cluster};

/// What routing needs to know of the cluster: the index's plan, node addresses, live nodes,
/// and the nodes that serve reads only as a last resort (a graceful failover is under way).
#[derive(Debug, Clone)]
pub struct View {
    pub plan: IndexPlan,
    pub addresses: BTreeMap<String, String>,
    pub live: BTreeSet<String>,
    pub no_reads: BTreeSet<String>,
}

impl View {
    /// Reads the view of index `name` from the Cfg (an empty plan when it has none yet).
    pub async fn load(cfg: &Cfg, name: &str) -> Result<View, ViewError> {
        let plan = planned(cfg, name).await?;
        let nodes = cfg.node_defs().await?.items;
        let no_reads = nodes
            .iter()
            .filter(|n| !n.value.reads)
            .map(|n| n.value.uuid.clone())
            .collect();
        let addresses = nodes
            .into_iter()
            .map(|n| (n.value.uuid, n.value.host_port))
            .collect();
        let live = cfg
            .live_nodes()
            .await?
            .items
            .into_iter()
            .map(|l| l.value.uuid)
            .collect();
        Ok(View {
            plan,
            addresses,
            live,
            no_reads,
        })
    }

    /// True when every PIndex has a readable copy on a live node.
    pub fn covers_all(&self) -> bool {
        let none = BTreeSet::new();
        let cluster = Cluster {
            live: &self.live,
            avoid: &none,
        };
        !self.plan.pindexes.is_empty()
            && route(&self.plan, None, &cluster, Prefer::Primary, 0)
                .uncovered
                .is_empty()
    }
}

/// Why the view could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("no index `{0}`")]
    UnknownIndex(String),
    #[error(transparent)]
    Cfg(#[from] CfgError),
}

/// The index's plan; an index not planned yet has an empty one (with a warning saying so).
pub async fn planned(cfg: &Cfg, name: &str) -> Result<IndexPlan, ViewError> {
    if let Some(plan) = cfg.plan(name).await? {
        return Ok(plan.value);
    }
    match cfg.index_def(name).await? {
        Some(def) => Ok(not_planned_yet(name, &def.value.uuid)),
        None => Err(ViewError::UnknownIndex(name.to_string())),
    }
}

/// The empty plan of an index defined (as `index_uuid`) but not planned yet.
pub fn not_planned_yet(name: &str, index_uuid: &str) -> IndexPlan {
    IndexPlan {
        format_version: IndexPlan::FORMAT_VERSION,
        index: name.to_string(),
        index_uuid: index_uuid.to_string(),
        pindexes: Vec::new(),
        warnings: vec!["not planned yet".into()],
    }
}
