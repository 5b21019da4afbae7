//! Cluster-wide records: the cluster's identity and the planner's leader key.

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
