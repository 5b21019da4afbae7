//! Everything a cluster's Cfg holds that planning and health read (recoveries too), as of one store revision.
//! Reading each kind with its own listing (five reads) lets a change land between them: a
//! plan read after its index was re-created, liveness read after a node definition changed.
//! One listing of the cluster's root cannot disagree with itself.

use crate::cfg::{decode_each, Unreadable, Versioned};
use crate::keys::KeyKind;
use crate::schema::{
    CopyReport, IndexDef, IndexPlan, NodeDef, NodeLiveness, Recovery, TopologyTask,
};
use crate::store::{KeyValue, Revision};
use crate::{Cfg, Result};

/// The documents of a cluster at one revision. Unreadable documents are in `skipped`, by key.
#[derive(Debug, Clone, Default)]
pub struct ClusterSnapshot {
    pub revision: Revision,
    pub index_defs: Vec<Versioned<IndexDef>>,
    pub node_defs: Vec<Versioned<NodeDef>>,
    pub liveness: Vec<Versioned<NodeLiveness>>,
    pub plans: Vec<Versioned<IndexPlan>>,
    pub reports: Vec<Versioned<CopyReport>>,
    pub tasks: Vec<Versioned<TopologyTask>>,
    pub recoveries: Vec<Versioned<Recovery>>,
    pub skipped: Vec<Unreadable>,
}

impl ClusterSnapshot {
    /// Names (index names, node uuids) of the unreadable documents of the kind `of` picks.
    pub fn skipped_names(&self, cfg: &Cfg, of: fn(KeyKind) -> Option<String>) -> Vec<String> {
        self.skipped
            .iter()
            .filter_map(|u| of(cfg.keys().kind(&u.key)))
            .collect()
    }
}

impl Cfg {
    /// One listing of the cluster's root, sorted into its document kinds.
    pub async fn snapshot(&self) -> Result<ClusterSnapshot> {
        let listing = self.store().list(self.keys().root()).await?;
        let mut by_kind: [Vec<KeyValue>; 7] = Default::default();
        for kv in listing.kvs {
            let slot = match self.keys().kind(&kv.key) {
                KeyKind::IndexDef(_) => 0,
                KeyKind::NodeDef(_) => 1,
                KeyKind::Liveness(_) => 2,
                KeyKind::Plan(_) => 3,
                KeyKind::CopyReport(_) => 4,
                KeyKind::Task(_) => 5,
                KeyKind::Recovery(_) => 6,
                _ => continue,
            };
            by_kind[slot].push(kv);
        }
        let mut skipped = Vec::new();
        let mut take = |mut more: Vec<Unreadable>| skipped.append(&mut more);
        let (index_defs, s) = decode_each(&by_kind[0]);
        take(s);
        let (node_defs, s) = decode_each(&by_kind[1]);
        take(s);
        let (liveness, s) = decode_each(&by_kind[2]);
        take(s);
        let (plans, s) = decode_each(&by_kind[3]);
        take(s);
        let (reports, s) = decode_each(&by_kind[4]);
        take(s);
        let (tasks, s) = decode_each(&by_kind[5]);
        take(s);
        let (recoveries, s) = decode_each(&by_kind[6]);
        take(s);
        Ok(ClusterSnapshot {
            revision: listing.revision,
            index_defs,
            node_defs,
            liveness,
            plans,
            reports,
            tasks,
            recoveries,
            skipped,
        })
    }
}
