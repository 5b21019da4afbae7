//! Checks of a planner input before planning: what would make the plan meaningless is an
//! error naming the item; what planning can work around becomes a warning later.

use std::collections::HashSet;

use tessera_cfg::schema::validate as rules;

use crate::model::PlanInput;

use tessera_cfg::limits::{pindex_count, MAX_PINDEXES_PER_INDEX, MAX_SOURCE_PARTITIONS};
pub use tessera_cfg::schema::{MAX_REPLICAS, MAX_WEIGHT};

/// A bad input item, e.g. `nodes[2].uuid: duplicate node uuid "n1"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{item}: {reason}")]
pub struct InputError {
    pub item: String,
    pub reason: String,
}

fn err(item: String, reason: impl Into<String>) -> InputError {
    InputError {
        item,
        reason: reason.into(),
    }
}

fn rule(
    result: Result<(), tessera_cfg::schema::FieldError>,
    item: String,
) -> Result<(), InputError> {
    result.map_err(|e| err(item, e.reason))
}

pub fn validate(input: &PlanInput) -> Result<(), InputError> {
    let mut uuids = HashSet::new();
    for (i, node) in input.nodes.iter().enumerate() {
        rule(rules::ident("uuid", &node.uuid), format!("nodes[{i}].uuid"))?;
        if !uuids.insert(node.uuid.as_str()) {
            return Err(err(
                format!("nodes[{i}].uuid"),
                format!("duplicate node uuid `{}`", node.uuid),
            ));
        }
        rule(
            rules::group("group", &node.group),
            format!("nodes[{i}].group"),
        )?;
        if !(1..=MAX_WEIGHT).contains(&node.weight) {
            return Err(err(
                format!("nodes[{i}].weight"),
                format!("{} is out of range 1..={MAX_WEIGHT}", node.weight),
            ));
        }
    }
    let mut names = HashSet::new();
    for (i, index) in input.indexes.iter().enumerate() {
        let item = |field: &str| format!("indexes[{i}].{field}");
        rule(rules::name("name", &index.name), item("name"))?;
        if !names.insert(index.name.as_str()) {
            return Err(err(
                item("name"),
                format!("duplicate index `{}`", index.name),
            ));
        }
        if !(1..=MAX_SOURCE_PARTITIONS).contains(&index.source_partitions) {
            return Err(err(
                item("source_partitions"),
                format!(
                    "{} is out of range 1..={MAX_SOURCE_PARTITIONS}",
                    index.source_partitions
                ),
            ));
        }
        if index.max_partitions_per_pindex == Some(0) {
            return Err(err(
                item("max_partitions_per_pindex"),
                "must be greater than 0",
            ));
        }
        if index.index_partitions == Some(0) {
            return Err(err(item("index_partitions"), "must be greater than 0"));
        }
        let pindexes = pindex_count(
            index.source_partitions,
            index.max_partitions_per_pindex,
            index.index_partitions,
        );
        if pindexes > MAX_PINDEXES_PER_INDEX {
            return Err(err(
                item("max_partitions_per_pindex"),
                format!("makes {pindexes} PIndexes; at most {MAX_PINDEXES_PER_INDEX}"),
            ));
        }
        if index.replicas > MAX_REPLICAS {
            return Err(err(
                item("replicas"),
                format!("{} is out of range 0..={MAX_REPLICAS}", index.replicas),
            ));
        }
        if index.spread_level == Some(0) {
            return Err(err(item("spread_level"), "must be 1 or more"));
        }
    }
    if let Some(previous) = &input.previous_plan {
        let mut seen = HashSet::new();
        for (i, pindex) in previous.pindexes.iter().enumerate() {
            if !seen.insert(pindex.name.as_str()) {
                return Err(err(
                    format!("previous_plan.pindexes[{i}].name"),
                    format!("duplicate PIndex `{}`", pindex.name),
                ));
            }
        }
    }
    Ok(())
}
