//! Node definitions and liveness records.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::validate::{self, FieldError};
use super::Document;

/// What a node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeTag {
    Feed,
    Janitor,
    Pindex,
    Queryer,
    Planner,
}

impl NodeTag {
    pub const ALL: [NodeTag; 5] = [
        NodeTag::Feed,
        NodeTag::Janitor,
        NodeTag::Pindex,
        NodeTag::Queryer,
        NodeTag::Planner,
    ];
}

/// A node wanted in the cluster, written by the node when it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDef {
    pub format_version: u32,
    /// Stable, kept in the node's data dir.
    pub uuid: String,
    /// Random per boot.
    pub incarnation: String,
    /// Where its REST+gRPC port answers.
    pub host_port: String,
    pub tags: BTreeSet<NodeTag>,
    /// Server group path like `zone-a/rack-1`; empty: none.
    #[serde(default)]
    pub group: String,
    /// Relative capacity: weight 2 holds about twice the copies of weight 1.
    pub weight: u32,
    /// `false`: the operator is draining the node; the planner moves all its copies away.
    #[serde(default = "wanted_default")]
    pub wanted: bool,
    /// Failed over by a supervisor (or a failover task): its copies are gone and it gets none
    /// until it is wanted again (it rejoins by itself in self-managed mode).
    #[serde(default)]
    pub failed_over: bool,
    /// `false`: queries avoid its copies (a graceful failover is under way).
    #[serde(default = "wanted_default")]
    pub reads: bool,
    /// Free-form extras (build version, disk size, ...).
    #[serde(default)]
    pub extras: serde_json::Map<String, serde_json::Value>,
}

fn wanted_default() -> bool {
    true
}

impl NodeDef {
    /// The one assignment of `failed_over`, whoever decides it (the planner, a topology
    /// change, a cancel restoring the node, a managed node re-registering).
    pub fn set_failed_over(&mut self, failed_over: bool) {
        self.failed_over = failed_over;
    }
}

/// Highest node weight accepted.
pub const MAX_WEIGHT: u32 = 100;

impl Document for NodeDef {
    const KIND: &'static str = "node definition";
    const FORMAT_VERSION: u32 = 1;

    fn validate(&self) -> Result<(), FieldError> {
        validate::ident("uuid", &self.uuid)?;
        validate::ident("incarnation", &self.incarnation)?;
        validate::host_port("host_port", &self.host_port)?;
        validate::group("group", &self.group)?;
        if !(1..=MAX_WEIGHT).contains(&self.weight) {
            return Err(FieldError::new(
                "weight",
                format!("{} is out of range 1..={MAX_WEIGHT}", self.weight),
            ));
        }
        Ok(())
    }
}

/// A node's liveness key, bound to its lease: present while the node is alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeLiveness {
    pub format_version: u32,
    pub uuid: String,
    pub incarnation: String,
    pub host_port: String,
    pub started_at_unix_ms: u64,
}

impl Document for NodeLiveness {
    const KIND: &'static str = "node liveness";
    const FORMAT_VERSION: u32 = 1;

    fn validate(&self) -> Result<(), FieldError> {
        validate::ident("uuid", &self.uuid)?;
        validate::ident("incarnation", &self.incarnation)?;
        validate::host_port("host_port", &self.host_port)
    }
}
