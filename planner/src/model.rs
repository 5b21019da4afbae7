//! The planner's plain data: what it is given ([`PlanInput`]) and what it answers
//! ([`PlanOutput`]). These are also the JSON of `tessera plan what-if`, a stable interface:
//! fields may be added, never renamed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
pub use tessera_cfg::schema::{CopyRole, NodeTag};

/// Everything one planning round looks at.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    pub nodes: Vec<NodeSpec>,
    pub indexes: Vec<IndexSpec>,
    /// Nodes that are gone: their copies are lost, their primaries replaced by promotion.
    #[serde(default)]
    pub failed_nodes: Vec<String>,
    /// The plan in force (the `plan` of an earlier output), if any.
    #[serde(default)]
    pub previous_plan: Option<Plan>,
    /// How far each copy got, by PIndex then node (higher is more caught up): picks the
    /// replica to promote when a primary is lost.
    #[serde(default)]
    pub progress: BTreeMap<String, BTreeMap<String, u64>>,
    /// PIndex → nodes that still hold its files without hosting it (a failed-over node that
    /// came back): among equally good choices, copies go there, streaming only the delta.
    #[serde(default)]
    pub on_disk: BTreeMap<String, std::collections::BTreeSet<String>>,
    /// Indexes a running recovery covers: a PIndex of theirs whose copies are all on eligible
    /// nodes (and as many as wanted) keeps them as they are, like a frozen index's, so that no
    /// move (a rebalance onto a new node, say) takes a recovering copy away mid-fetch. A PIndex
    /// with a copy on a node gone is planned as usual.
    #[serde(default)]
    pub pinned: std::collections::BTreeSet<String>,
}

/// A node as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub uuid: String,
    /// Server group path like `zone-a/rack-1`; empty: no group.
    #[serde(default)]
    pub group: String,
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Only nodes tagged `pindex` hold copies.
    #[serde(default = "default_tags")]
    pub tags: Vec<NodeTag>,
    /// `false`: the node is being drained and loses all its copies.
    #[serde(default = "default_true")]
    pub wanted: bool,
}

fn default_weight() -> u32 {
    1
}
fn default_tags() -> Vec<NodeTag> {
    NodeTag::ALL.to_vec()
}
fn default_true() -> bool {
    true
}

/// An index as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSpec {
    pub name: String,
    /// How many partitions the source has.
    pub source_partitions: u32,
    #[serde(default)]
    pub max_partitions_per_pindex: Option<u32>,
    /// Exactly this many PIndexes (sizes differ by at most 1); wins over the maximum.
    #[serde(default)]
    pub index_partitions: Option<u32>,
    #[serde(default)]
    pub replicas: u32,
    #[serde(default)]
    pub frozen: bool,
    /// Copies go to different groups at this depth of the group path (1 = first segment);
    /// `None`: the whole path.
    #[serde(default)]
    pub spread_level: Option<u32>,
}

impl IndexSpec {
    /// The planner's view of a stored index definition.
    pub fn of(def: &tessera_cfg::schema::IndexDef) -> Self {
        IndexSpec {
            name: def.name.clone(),
            source_partitions: def.source.partitions(),
            max_partitions_per_pindex: def.plan.max_partitions_per_pindex,
            index_partitions: def.plan.index_partitions,
            replicas: def.plan.replicas,
            frozen: def.plan.frozen,
            spread_level: def.plan.spread_level,
        }
    }
}

/// A target plan: every PIndex with the copies the planner wants it to have. The stored plan
/// (`tessera_cfg::schema::IndexPlan`, with copy states) moves towards it through transitions
/// (`orchestrate`); read back as the planner's previous plan, it is what the stored plan is
/// heading for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub pindexes: Vec<TargetPIndex>,
}

/// One PIndex of a target plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetPIndex {
    pub name: String,
    pub index: String,
    pub source_partitions: Vec<u32>,
    pub copies: Vec<TargetCopy>,
}

/// One copy a target plan wants: where, and in which role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetCopy {
    pub node: String,
    pub role: CopyRole,
}

/// What a planning round answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanOutput {
    pub plan: Plan,
    /// From the previous plan to this one.
    pub moves: Vec<Move>,
    pub warnings: Vec<Warning>,
    pub stats: Stats,
}

/// One step from the previous plan to the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    pub pindex: String,
    pub node: String,
    pub action: Action,
    /// The copy's role after an add, promote or demote; before a remove.
    pub role: CopyRole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Promote,
    Add,
    Demote,
    Remove,
}

/// Why the plan of an index is not what its definition asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    pub index: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Copies placed on a node that did not hold that PIndex before.
    pub copies_added: usize,
    /// A lower bound of `copies_added` for this change.
    pub min_copies_added: usize,
    /// Time spent planning (filled in by the caller; the planning function does no I/O).
    pub elapsed_ms: f64,
}
