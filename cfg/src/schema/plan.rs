//! Per-index plans: which nodes hold a copy of each PIndex, and in which role and state.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::validate::{self, FieldError};
use super::Document;

/// The plan of one index (one key per index, never one blob for the cluster).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexPlan {
    pub format_version: u32,
    pub index: String,
    /// The index definition uuid this plan was made for.
    pub index_uuid: String,
    pub pindexes: Vec<PIndexPlan>,
    /// Why the plan is not what the definition asked for, if it is not.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// One PIndex: the source partitions it covers and its copies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PIndexPlan {
    pub name: String,
    pub source_partitions: Vec<u32>,
    pub copies: Vec<CopyPlan>,
}

/// One copy of a PIndex on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyPlan {
    pub node: String,
    pub role: CopyRole,
    pub state: CopyState,
    pub can_read: bool,
    pub can_write: bool,
    /// The role this copy takes once the move under way completes (a new primary is
    /// `replica` with target role `primary` until it has caught up). `None`: its role stays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_role: Option<CopyRole>,
}

impl CopyPlan {
    /// The role the plan is heading for.
    pub fn planned_role(&self) -> CopyRole {
        self.target_role.unwrap_or(self.role)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyRole {
    Primary,
    Replica,
}

/// Where a copy is in its life: built, serving, or on its way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyState {
    /// Being filled; not yet caught up.
    Building,
    /// Caught up and serving.
    Active,
    /// Replaced; dropped once its replacement is active.
    Dropping,
}

impl Document for IndexPlan {
    const KIND: &'static str = "index plan";
    const FORMAT_VERSION: u32 = 1;

    fn validate(&self) -> Result<(), FieldError> {
        validate::name("index", &self.index)?;
        validate::ident("index_uuid", &self.index_uuid)?;
        let mut names = HashSet::new();
        let mut partitions = HashSet::new();
        for (i, pindex) in self.pindexes.iter().enumerate() {
            let field = |rest: &str| format!("pindexes[{i}].{rest}");
            validate::name(&field("name"), &pindex.name)?;
            if !names.insert(pindex.name.as_str()) {
                return Err(FieldError::new(field("name"), "duplicate PIndex name"));
            }
            for p in &pindex.source_partitions {
                if !partitions.insert(*p) {
                    return Err(FieldError::new(
                        field("source_partitions"),
                        format!("source partition {p} is covered twice"),
                    ));
                }
            }
            let mut nodes = HashSet::new();
            let mut primaries = 0;
            for (j, copy) in pindex.copies.iter().enumerate() {
                let copy_field = field(&format!("copies[{j}].node"));
                validate::ident(&copy_field, &copy.node)?;
                if !nodes.insert(copy.node.as_str()) {
                    return Err(FieldError::new(copy_field, "two copies on one node"));
                }
                if copy.role == CopyRole::Primary {
                    primaries += 1;
                }
            }
            if primaries > 1 {
                return Err(FieldError::new(field("copies"), "more than one primary"));
            }
        }
        Ok(())
    }
}

/// What a node's janitor reports about its copies: the PIndexes that have caught up with their
/// source partitions. The planner marks those copies `active` (readable) in the plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyReport {
    pub format_version: u32,
    pub node: String,
    /// The node's incarnation that wrote the report: a report left by an earlier run of the
    /// node (killed before it could write again) says nothing about what it hosts now.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub incarnation: String,
    pub caught_up: std::collections::BTreeSet<String>,
    /// Documents in each caught-up PIndex when the report was written (for progress figures).
    #[serde(default)]
    pub docs: std::collections::BTreeMap<String, u64>,
    /// PIndexes whose files are on this node's disk though it does not host them (it was failed
    /// over and came back): the planner prefers to place their copies here again.
    #[serde(default)]
    pub on_disk: std::collections::BTreeSet<String>,
    /// PIndexes whose feed is behind the source and has made no progress for a while, with
    /// why (shown in health).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub stalled: std::collections::BTreeMap<String, String>,
    /// The newest plan revision (among plans of indexes with copies on the node) the janitor
    /// had acted on when it wrote the report. "Caught up" counts only for plans no newer: a
    /// copy dropped and added again is not readable on the word of a report about the copy
    /// it replaced.
    #[serde(default)]
    pub plans_seen: crate::Revision,
    /// PIndexes whose feed holds because its source replaced its whole history, with why
    /// (health red until an operator accepts the rollback).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub incidents: std::collections::BTreeMap<String, String>,
    /// Bytes each caught-up PIndex fetched from a peer's files when it was built here (absent
    /// for copies built from the source), for the progress of topology changes.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub copied_bytes: std::collections::BTreeMap<String, u64>,
}

impl Document for CopyReport {
    const KIND: &'static str = "copy report";
    const FORMAT_VERSION: u32 = 1;

    fn validate(&self) -> Result<(), FieldError> {
        validate::ident("node", &self.node)
    }
}
