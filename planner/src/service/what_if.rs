//! What a change would do, planned by the leader's own rules: the same inputs as a planning
//! round (the stored plans as they are heading, every index definition), the same failed-node
//! rule (only nodes written as failed over lose their copies; a node that is merely down keeps
//! them until the failover delay and cap let the leader fail it over) and the planner's own
//! moves. `tessera plan what-if` and the supervisor's dry run both answer from here, so they
//! cannot disagree.

use std::collections::BTreeMap;

use tessera_cfg::schema::NodeDef;

use super::inputs::Gathered;
use crate::model::{Action, Move, NodeSpec, PlanInput, PlanOutput};

/// A change to plan: node definitions as they would be written (a drain sets `wanted: false`,
/// a hard failover `failed_over: true`, ...), nodes taken out of the cluster, nodes added.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub changed: BTreeMap<String, NodeDef>,
    pub removed: Vec<String>,
    pub added: Vec<NodeSpec>,
}

/// Why a change cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no node `{0}` in the cluster")]
pub struct UnknownNode(pub String);

/// The planner input of `gathered` with `change` applied.
pub fn input(gathered: &Gathered, change: &Change) -> Result<PlanInput, UnknownNode> {
    let mut gathered = gathered.clone();
    for (uuid, def) in &change.changed {
        let current = gathered
            .node_defs
            .get_mut(uuid)
            .ok_or_else(|| UnknownNode(uuid.clone()))?;
        current.value = def.clone();
    }
    for uuid in &change.removed {
        if gathered.node_defs.remove(uuid).is_none() {
            return Err(UnknownNode(uuid.clone()));
        }
    }
    let failed = gathered.failed_over_nodes();
    let mut input = gathered.to_input(&failed);
    input.nodes.extend(change.added.iter().cloned());
    Ok(input)
}

/// The target the leader would aim at after `change`, with the moves from today's plans.
pub fn what_if(gathered: &Gathered, change: &Change) -> Result<PlanOutput, UnknownNode> {
    Ok(crate::plan_timed(&input(gathered, change)?))
}

/// Per node, the copies the moves bring in and take out.
pub fn per_node(moves: &[Move]) -> BTreeMap<String, (usize, usize)> {
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for m in moves {
        match m.action {
            Action::Add => out.entry(m.node.clone()).or_default().0 += 1,
            Action::Remove => out.entry(m.node.clone()).or_default().1 += 1,
            Action::Promote | Action::Demote => {}
        }
    }
    out
}
