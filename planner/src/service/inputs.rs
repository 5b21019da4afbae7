//! The bridge between the Cfg and the pure planner: reading what planning needs, turning it
//! into a [`PlanInput`], and turning a [`PlanOutput`] back into per-index plans to store.

use std::collections::{BTreeMap, BTreeSet};

use tessera_cfg::schema::{CopyReport, Document, IndexDef, IndexPlan, NodeDef, PIndexPlan};
use tessera_cfg::{Cfg, CfgError, Revision, Versioned};

use crate::model::{IndexSpec, NodeSpec, Plan, PlanInput, PlanOutput};

/// What planning reads from the Cfg, as of one moment.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    pub index_defs: BTreeMap<String, Versioned<IndexDef>>,
    pub node_defs: BTreeMap<String, Versioned<NodeDef>>,
    /// Uuids of nodes whose liveness key is present.
    pub live: BTreeSet<String>,
    pub plans: BTreeMap<String, Versioned<IndexPlan>>,
    /// Per node, the PIndexes its janitor reports caught up.
    pub caught_up: BTreeMap<String, BTreeSet<String>>,
    /// Per (node, PIndex), the documents its janitor last reported.
    pub docs: BTreeMap<(String, String), u64>,
    /// PIndex → nodes holding its files without hosting it.
    pub on_disk: BTreeMap<String, BTreeSet<String>>,
    /// The store revision of the last read; watch from `revision + 1`.
    pub revision: Revision,
}

/// Reads index definitions, nodes, liveness and plans.
pub async fn gather(cfg: &Cfg) -> Result<Gathered, CfgError> {
    let defs = cfg.index_defs().await?;
    let nodes = cfg.node_defs().await?;
    let live = cfg.live_nodes().await?;
    let plans = cfg.plans().await?;
    let reports = cfg.list_docs::<CopyReport>(&cfg.keys().reports()).await?;
    let revision = [
        defs.revision,
        nodes.revision,
        live.revision,
        plans.revision,
        reports.revision,
    ]
    .into_iter()
    .min()
    .unwrap_or(0);
    let incarnations: BTreeMap<String, String> = live
        .items
        .iter()
        .map(|l| (l.value.uuid.clone(), l.value.incarnation.clone()))
        .collect();
    Ok(Gathered {
        index_defs: defs
            .items
            .into_iter()
            .map(|d| (d.value.name.clone(), d))
            .collect(),
        node_defs: nodes
            .items
            .into_iter()
            .map(|d| (d.value.uuid.clone(), d))
            .collect(),
        live: live.items.into_iter().map(|l| l.value.uuid).collect(),
        plans: plans
            .items
            .into_iter()
            .map(|p| (p.value.index.clone(), p))
            .collect(),
        on_disk: {
            let mut on_disk: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for r in &reports.items {
                for p in &r.value.on_disk {
                    on_disk
                        .entry(p.clone())
                        .or_default()
                        .insert(r.value.node.clone());
                }
            }
            on_disk
        },
        docs: reports
            .items
            .iter()
            .flat_map(|r| {
                r.value
                    .docs
                    .iter()
                    .map(|(p, d)| ((r.value.node.clone(), p.clone()), *d))
            })
            .collect(),
        // Only the running incarnation's word counts: a node killed and restarted has hosted
        // nothing yet, whatever its last run reported.
        caught_up: reports
            .items
            .into_iter()
            .filter(|r| {
                r.value.incarnation.is_empty()
                    || incarnations.get(&r.value.node) == Some(&r.value.incarnation)
            })
            .map(|r| (r.value.node, r.value.caught_up))
            .collect(),
        revision,
    })
}

/// A node definition as the planner sees it.
pub fn node_spec(def: &NodeDef) -> NodeSpec {
    NodeSpec {
        uuid: def.uuid.clone(),
        group: def.group.clone(),
        weight: def.weight,
        tags: def.tags.iter().copied().collect(),
        wanted: def.wanted,
    }
}

/// Whether a node definition may hold copies, by the planner's rule (failed over or not is
/// in the definition).
pub fn eligible(def: &NodeDef) -> bool {
    crate::eligibility::eligibility(&node_spec(def), def.failed_over).is_ok()
}

impl Gathered {
    /// The planner input: nodes as defined (wanted flag, tags, group, weight), `failed` nodes,
    /// every index definition, and the stored plans as the previous plan.
    pub fn to_input(&self, failed: &BTreeSet<String>) -> PlanInput {
        PlanInput {
            nodes: self
                .node_defs
                .values()
                .map(|d| node_spec(&d.value))
                .collect(),
            indexes: self
                .index_defs
                .values()
                .map(|d| {
                    let def = &d.value;
                    IndexSpec {
                        name: def.name.clone(),
                        source_partitions: def.source.partitions(),
                        max_partitions_per_pindex: def.plan.max_partitions_per_pindex,
                        index_partitions: def.plan.index_partitions,
                        replicas: def.plan.replicas,
                        frozen: def.plan.frozen,
                        spread_level: def.plan.spread_level,
                    }
                })
                .collect(),
            failed_nodes: failed.iter().cloned().collect(),
            previous_plan: Some(self.previous_plan()),
            progress: BTreeMap::new(),
            on_disk: self.on_disk.clone(),
        }
    }

    /// The stored plans in the planner's form.
    pub fn previous_plan(&self) -> Plan {
        Plan {
            pindexes: self
                .plans
                .values()
                .flat_map(|p| {
                    p.value
                        .pindexes
                        .iter()
                        .map(|pi| crate::orchestrate::heading(&p.value.index, pi))
                })
                .collect(),
        }
    }

    /// Nodes failed over (by a supervisor or automatically), whatever their liveness.
    pub fn failed_over_nodes(&self) -> BTreeSet<String> {
        self.node_defs
            .values()
            .filter(|d| d.value.failed_over)
            .map(|d| d.value.uuid.clone())
            .collect()
    }

    /// Defined nodes without a liveness key.
    pub fn absent_nodes(&self) -> BTreeSet<String> {
        self.node_defs
            .keys()
            .filter(|uuid| !self.live.contains(*uuid))
            .cloned()
            .collect()
    }

    /// The plans to store per defined index: the planner's output reached through
    /// transitions (`orchestrate`): moves start within `limits`, a replaced copy serves
    /// (`dropping`) until its replacement has caught up, and a copy is `active` (readable) once
    /// its node's janitor reports it caught up. Copies on `failed` or undefined nodes go at once.
    pub fn to_index_plans(
        &self,
        out: &PlanOutput,
        failed: &BTreeSet<String>,
        limits: crate::orchestrate::Limits,
    ) -> (BTreeMap<String, IndexPlan>, crate::orchestrate::Progress) {
        let mut plans: BTreeMap<String, IndexPlan> = BTreeMap::new();
        for (name, def) in &self.index_defs {
            let warnings = out
                .warnings
                .iter()
                .filter(|w| &w.index == name)
                .map(|w| w.message.clone())
                .collect();
            plans.insert(
                name.clone(),
                IndexPlan {
                    format_version: IndexPlan::FORMAT_VERSION,
                    index: name.clone(),
                    index_uuid: def.value.uuid.clone(),
                    pindexes: Vec::new(),
                    warnings,
                },
            );
        }
        let current: BTreeMap<String, PIndexPlan> = self
            .plans
            .values()
            .filter(|p| {
                self.index_defs
                    .get(&p.value.index)
                    .is_some_and(|d| d.value.uuid == p.value.index_uuid)
            })
            .flat_map(|p| {
                p.value
                    .pindexes
                    .iter()
                    .map(|pi| (pi.name.clone(), pi.clone()))
            })
            .collect();
        let gone: BTreeSet<String> = current
            .values()
            .flat_map(|p| p.copies.iter().map(|c| c.node.clone()))
            .filter(|n| failed.contains(n) || !self.node_defs.contains_key(n))
            .collect();
        let moved = crate::orchestrate::transition(&crate::orchestrate::TransitionInput {
            target: &out.plan,
            current: &current,
            caught_up: &self.caught_up,
            gone: &gone,
            limits,
        });
        for (index, pindexes) in moved.plans {
            if let Some(plan) = plans.get_mut(&index) {
                plan.pindexes = pindexes;
            }
        }
        (plans, moved.progress)
    }
}
