//! Cluster-wide records: the cluster's identity and the planner's leader key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::validate::{self, FieldError};
use super::Document;

/// The cluster's identity, written once when the cluster is first used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterMeta {
    pub format_version: u32,
    /// Random, fixed for the cluster's life; a node remembers it and refuses another cluster.
    pub cluster_uuid: String,
    /// The cluster name (the `<cluster>` of `/tessera/<cluster>/`).
    pub name: String,
    pub created_at_unix_ms: u64,
}

impl Document for ClusterMeta {
    const KIND: &'static str = "cluster meta";
    const FORMAT_VERSION: u32 = 1;
    fn validate(&self) -> Result<(), FieldError> {
        validate::ident("cluster_uuid", &self.cluster_uuid)?;
        validate::name("name", &self.name)
    }
}

/// The value of the planner's leader key, bound to the leader's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannerLeader {
    pub format_version: u32,
    /// The node (or standalone planner) uuid holding the leadership.
    pub uuid: String,
    /// Its per-boot incarnation.
    pub incarnation: String,
    pub since_unix_ms: u64,
}

impl Document for PlannerLeader {
    const KIND: &'static str = "planner leader";
    const FORMAT_VERSION: u32 = 1;
    fn validate(&self) -> Result<(), FieldError> {
        validate::ident("uuid", &self.uuid)?;
        validate::ident("incarnation", &self.incarnation)
    }
}

/// Cluster-wide switches and counters an operator acts on: a freeze of planning and moves
/// (maintenance), and automatic failovers done since the operator last acknowledged them
/// (past the planner's cap, absent nodes are not failed over automatically).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterControl {
    pub format_version: u32,
    /// No new targets and no new moves; moves under way finish.
    #[serde(default)]
    pub frozen: bool,
    #[serde(default)]
    pub frozen_reason: String,
    /// Automatic failovers since the last acknowledgement.
    #[serde(default)]
    pub auto_failovers: u32,
    /// The nodes those failovers took out.
    #[serde(default)]
    pub auto_failed_nodes: Vec<String>,
    /// What the planner leader holds back, as of its last round: written when it changes, so
    /// operators (and tests) see a decision not to act, not only the absence of action.
    #[serde(default, skip_serializing_if = "Held::is_empty")]
    pub held: Held,
}

/// What the planner holds back and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Held {
    /// Nodes absent past the failover delay that the automatic failover cap keeps from being
    /// failed over until an acknowledgement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failovers: Vec<String>,
    /// Moves the planner would start were the cluster not frozen.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub moves_frozen: u64,
    /// Indexes whose plans the planner could not write (or holds back) and why: a plan past
    /// the Cfg's size limit, an unreadable definition, a store error. The other indexes are
    /// planned; these are retried every round.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plan_errors: BTreeMap<String, String>,
}

impl Held {
    pub fn is_empty(&self) -> bool {
        self == &Held::default()
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Document for ClusterControl {
    const KIND: &'static str = "cluster control";
    const FORMAT_VERSION: u32 = 1;
    fn validate(&self) -> Result<(), FieldError> {
        for (i, n) in self.auto_failed_nodes.iter().enumerate() {
            validate::ident(&format!("auto_failed_nodes[{i}]"), n)?;
        }
        Ok(())
    }
}
