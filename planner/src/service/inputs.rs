//! The bridge between the Cfg and the pure planner: reading what planning needs, turning it
//! into a [`PlanInput`], and turning a [`PlanOutput`] back into per-index plans to store.

use std::collections::{BTreeMap, BTreeSet};

use tessera_cfg::schema::{Document, IndexDef, IndexPlan, NodeDef, PIndexPlan};
use tessera_cfg::{Cfg, CfgError, KeyKind, Revision, Versioned};

use crate::model::{IndexSpec, NodeSpec, Plan, PlanInput, PlanOutput};

/// What planning reads from the Cfg, as of one store revision.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    pub index_defs: BTreeMap<String, Versioned<IndexDef>>,
    pub node_defs: BTreeMap<String, Versioned<NodeDef>>,
    /// Uuids of nodes whose liveness key is present.
    pub live: BTreeSet<String>,
    pub plans: BTreeMap<String, Versioned<IndexPlan>>,
    /// Per node, the PIndexes its janitor reports caught up (less the PIndexes a recovery
    /// holds until it is committed).
    pub caught_up: BTreeMap<String, BTreeSet<String>>,
    /// Per (node, PIndex), the documents its janitor last reported.
    pub docs: BTreeMap<(String, String), u64>,
    /// Per (node, PIndex), the bytes a copy fetched from a peer (copies built so).
    pub copied_bytes: BTreeMap<(String, String), u64>,
    /// PIndex → nodes holding its files without hosting it.
    pub on_disk: BTreeMap<String, BTreeSet<String>>,
    /// The store revision everything above was read at; watch from `revision + 1`.
    pub revision: Revision,
    /// Documents that could not be read, by key, and why.
    pub unreadable: BTreeMap<String, String>,
    /// Indexes whose plans this round must neither write nor delete, and why: their
    /// definition or stored plan is unreadable, or a node holding their copies has an
    /// unreadable definition (planning without it would move its copies away).
    pub held_indexes: BTreeMap<String, String>,
    /// Indexes a running recovery covers (`PlanInput::pinned`).
    pub pinned: BTreeSet<String>,
}

/// Reads index definitions, nodes, liveness, plans and copy reports in one listing (one
/// revision). Unreadable documents are skipped and named; what depends on them is held.
pub async fn gather(cfg: &Cfg) -> Result<Gathered, CfgError> {
    let snapshot = cfg.snapshot().await?;
    let revision = snapshot.revision;
    let reports = snapshot.reports;
    let mut unreadable = BTreeMap::new();
    let mut held_indexes = BTreeMap::new();
    let mut unreadable_nodes = BTreeSet::new();
    let mut live: BTreeSet<String> = snapshot
        .liveness
        .iter()
        .map(|l| l.value.uuid.clone())
        .collect();
    for u in &snapshot.skipped {
        let reason = u.error.to_string();
        match cfg.keys().kind(&u.key) {
            KeyKind::IndexDef(name) => {
                held_indexes.insert(name, format!("its definition is unreadable: {reason}"));
            }
            KeyKind::Plan(name) => {
                held_indexes.insert(name, format!("its stored plan is unreadable: {reason}"));
            }
            KeyKind::NodeDef(uuid) => {
                unreadable_nodes.insert(uuid);
            }
            // The key exists, so the node holds its lease: an unreadable record is not absence.
            KeyKind::Liveness(uuid) => {
                live.insert(uuid);
            }
            _ => {}
        }
        unreadable.insert(u.key.clone(), reason);
    }
    for plan in &snapshot.plans {
        let on = plan
            .value
            .pindexes
            .iter()
            .flat_map(|p| p.copies.iter())
            .find(|c| unreadable_nodes.contains(&c.node));
        if let Some(copy) = on {
            held_indexes
                .entry(plan.value.index.clone())
                .or_insert_with(|| {
                    format!(
                        "node {} holds its copies and its definition is unreadable",
                        copy.node
                    )
                });
        }
    }
    // For a copy the stored plan has `building` on a node, that node's "caught up" counts
    // only if its janitor had acted on the plan as stored now (or newer): a copy dropped and
    // added back is not readable on the word of a report about the copy it replaced. (Copies
    // already readable keep their state as before.)
    let building_since: BTreeMap<(&str, &str), Revision> = snapshot
        .plans
        .iter()
        .flat_map(|p| {
            p.value.pindexes.iter().flat_map(move |pi| {
                pi.copies
                    .iter()
                    .filter(|c| c.state == tessera_cfg::schema::CopyState::Building)
                    .map(move |c| ((c.node.as_str(), pi.name.as_str()), p.revision))
            })
        })
        .collect();
    let fresh = |node: &str, plans_seen: Revision, pindex: &String| {
        building_since
            .get(&(node, pindex.as_str()))
            .is_none_or(|r| *r <= plans_seen)
    };
    let incarnations: BTreeMap<&str, &str> = snapshot
        .liveness
        .iter()
        .map(|l| (l.value.uuid.as_str(), l.value.incarnation.as_str()))
        .collect();
    // A recovering PIndex becomes readable only once the recovery commits it (or ends).
    let held: BTreeSet<&str> = snapshot
        .recoveries
        .iter()
        .flat_map(|r| r.value.holds())
        .collect();
    let pinned: BTreeSet<String> = snapshot
        .recoveries
        .iter()
        .filter(|r| r.value.status == tessera_cfg::schema::RecoveryStatus::Running)
        .flat_map(|r| r.value.indexes.iter().cloned())
        .collect();
    let caught_up = reports
        .iter()
        .filter(|r| {
            r.value.incarnation.is_empty()
                || incarnations.get(r.value.node.as_str()) == Some(&r.value.incarnation.as_str())
        })
        .map(|r| {
            let seen = r.value.plans_seen;
            let fresh_ones = r
                .value
                .caught_up
                .iter()
                .filter(|p| fresh(&r.value.node, seen, p))
                .filter(|p| !held.contains(p.as_str()))
                .cloned()
                .collect();
            (r.value.node.clone(), fresh_ones)
        })
        .collect();
    Ok(Gathered {
        index_defs: snapshot
            .index_defs
            .into_iter()
            .map(|d| (d.value.name.clone(), d))
            .collect(),
        node_defs: snapshot
            .node_defs
            .into_iter()
            .map(|d| (d.value.uuid.clone(), d))
            .collect(),
        live,
        plans: snapshot
            .plans
            .into_iter()
            .map(|p| (p.value.index.clone(), p))
            .collect(),
        unreadable,
        held_indexes,
        pinned,
        on_disk: {
            let mut on_disk: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for r in &reports {
                for p in &r.value.on_disk {
                    on_disk
                        .entry(p.clone())
                        .or_default()
                        .insert(r.value.node.clone());
                }
            }
            on_disk
        },
        copied_bytes: reports
            .iter()
            .flat_map(|r| {
                r.value
                    .copied_bytes
                    .iter()
                    .map(|(p, b)| ((r.value.node.clone(), p.clone()), *b))
            })
            .collect(),
        docs: reports
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
        caught_up,
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
                .map(|d| IndexSpec::of(&d.value))
                .collect(),
            failed_nodes: failed.iter().cloned().collect(),
            previous_plan: Some(self.previous_plan()),
            progress: BTreeMap::new(),
            on_disk: self.on_disk.clone(),
            pinned: self.pinned.clone(),
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
