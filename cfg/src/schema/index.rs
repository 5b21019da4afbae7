//! Index definitions: what a user asks Tessera to host.

use serde::{Deserialize, Serialize};

use super::validate::{self, FieldError};
use super::Document;
use crate::limits::{pindex_count, MAX_PINDEXES_PER_INDEX, MAX_SOURCE_PARTITIONS};

/// The index types this build knows.
pub const INDEX_TYPES: &[&str] = &["fulltext", "blackhole"];

/// Most replicas an index may ask for.
pub const MAX_REPLICAS: u32 = 3;

/// A user's index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexDef {
    pub format_version: u32,
    pub name: String,
    /// Changes on every update; the CAS token of index-level APIs.
    pub uuid: String,
    #[serde(rename = "type")]
    pub index_type: String,
    pub source: SourceDef,
    #[serde(default)]
    pub plan: PlanParams,
    /// Type-specific parameters (for `fulltext`, the field mapping). `null`: defaults.
    #[serde(default)]
    pub params: serde_json::Value,
    /// Operator switches that do not change what the index is.
    #[serde(default, skip_serializing_if = "Controls::is_default")]
    pub controls: Controls,
    /// Set on an index restored from a snapshot: a node starting one of its PIndexes with no
    /// directory yet fetches the files from the snapshot, then feeds on from their checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreFrom>,
    /// Recovery settings of this index (its automatic recovery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<super::IndexRecovery>,
}

/// Where a restored index's data comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreFrom {
    pub repo: String,
    pub snapshot: String,
    /// The index's name in the snapshot (it may be restored under another).
    pub index: String,
}

/// Operator switches of an index (`.../ingestControl/...`, `.../queryControl/...`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Controls {
    /// Feeds stop where they are; nothing is lost, resume continues from there.
    #[serde(default)]
    pub ingest_paused: bool,
    /// Queries (and counts) are refused.
    #[serde(default)]
    pub query_disallowed: bool,
    /// When an operator last accepted a source history replacement (unix ms): feeds held by
    /// such an incident that began before then drop their documents and stream the new
    /// history (`ingestControl/accept-rollback`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rollback_accepted_ms: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Controls {
    pub fn is_default(&self) -> bool {
        self == &Controls::default()
    }
}

/// Where an index's documents come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceDef {
    #[serde(rename = "type")]
    pub source_type: String,
    pub name: String,
    /// How many partitions the source has; `None`: the reference source's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

/// Source partitions assumed when a definition does not say (the reference source's default).
pub const DEFAULT_SOURCE_PARTITIONS: u32 = 1024;

impl SourceDef {
    /// Where the source answers (`params.url`), when the definition names it; otherwise the
    /// reading node's own embedded source is meant.
    pub fn url(&self) -> Option<&str> {
        self.params.get("url").and_then(|u| u.as_str())
    }

    /// `partitions`, else `params.partitions` (where a source type's parameters say it, as
    /// JetStream's do), else the reference source's default.
    pub fn partitions(&self) -> u32 {
        self.partitions
            .or_else(|| {
                let given = self.params.get("partitions")?.as_u64()?;
                u32::try_from(given).ok()
            })
            .unwrap_or(DEFAULT_SOURCE_PARTITIONS)
    }

    /// The node whose embedded source the index reads (`params.node`), recorded at create when
    /// the definition names no `url`: every copy, on whatever node, reads that one source.
    pub fn node(&self) -> Option<&str> {
        self.params.get("node").and_then(|u| u.as_str())
    }

    /// Where the source answers: `params.url`, else the recorded node's address (from
    /// `addresses`, node uuid → `host:port`), else `default` (a definition from before sources
    /// were recorded: the reading node's own).
    pub fn resolve_url(
        &self,
        addresses: &std::collections::BTreeMap<String, String>,
        default: &str,
    ) -> Result<String, String> {
        if let Some(url) = self.url() {
            return Ok(url.to_string());
        }
        match self.node() {
            Some(node) => addresses
                .get(node)
                .map(|a| format!("http://{a}"))
                .ok_or_else(|| format!("the source's node {node} is not defined")),
            None => Ok(default.to_string()),
        }
    }
}

/// How an index is split and replicated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanParams {
    /// At most this many source partitions per PIndex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_partitions_per_pindex: Option<u32>,
    /// Exactly this many PIndexes (overrides `max_partitions_per_pindex`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_partitions: Option<u32>,
    /// Copies beyond the primary, 0..=3.
    #[serde(default)]
    pub replicas: u32,
    /// Copies of one PIndex must be in different server groups at this depth of the group path
    /// (1 = first segment, e.g. the zone). `None`: spread over the deepest groups known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread_level: Option<u32>,
    /// A frozen index keeps its plan.
    #[serde(default)]
    pub frozen: bool,
}

impl Default for PlanParams {
    fn default() -> Self {
        Self {
            max_partitions_per_pindex: Some(64),
            index_partitions: None,
            replicas: 0,
            spread_level: None,
            frozen: false,
        }
    }
}

impl Document for IndexDef {
    const KIND: &'static str = "index definition";
    const FORMAT_VERSION: u32 = 1;

    fn validate(&self) -> Result<(), FieldError> {
        validate::name("name", &self.name)?;
        validate::ident("uuid", &self.uuid)?;
        if !INDEX_TYPES.contains(&self.index_type.as_str()) {
            return Err(FieldError::new(
                "type",
                format!(
                    "unknown index type `{}` (known: {})",
                    self.index_type,
                    INDEX_TYPES.join(", ")
                ),
            ));
        }
        if self.source.source_type.is_empty() {
            return Err(FieldError::new("source.type", "must not be empty"));
        }
        validate::name("source.name", &self.source.name)?;
        if let Some(partitions) = self.source.partitions {
            if !(1..=MAX_SOURCE_PARTITIONS).contains(&partitions) {
                return Err(FieldError::new(
                    "source.partitions",
                    format!("{partitions} is out of range 1..={MAX_SOURCE_PARTITIONS}"),
                ));
            }
        }
        let plan = &self.plan;
        if plan.max_partitions_per_pindex == Some(0) {
            return Err(FieldError::new(
                "plan.max_partitions_per_pindex",
                "must be greater than 0",
            ));
        }
        if let Some(n) = plan.index_partitions {
            if !(1..=MAX_PINDEXES_PER_INDEX).contains(&n) {
                return Err(FieldError::new(
                    "plan.index_partitions",
                    format!("{n} is out of range 1..={MAX_PINDEXES_PER_INDEX}"),
                ));
            }
        }
        if plan.max_partitions_per_pindex.is_none() && plan.index_partitions.is_none() {
            return Err(FieldError::new(
                "plan.max_partitions_per_pindex",
                "one of max_partitions_per_pindex or index_partitions is required",
            ));
        }
        let pindexes = pindex_count(
            self.source.partitions(),
            plan.max_partitions_per_pindex,
            plan.index_partitions,
        );
        if pindexes > MAX_PINDEXES_PER_INDEX {
            return Err(FieldError::new(
                "plan.max_partitions_per_pindex",
                format!(
                    "splits {} source partitions into {pindexes} PIndexes; an index may have at most {MAX_PINDEXES_PER_INDEX} (raise max_partitions_per_pindex or set index_partitions)",
                    self.source.partitions()
                ),
            ));
        }
        if plan.replicas > MAX_REPLICAS {
            return Err(FieldError::new(
                "plan.replicas",
                format!("{} is out of range 0..={MAX_REPLICAS}", plan.replicas),
            ));
        }
        if plan.spread_level == Some(0) {
            return Err(FieldError::new(
                "plan.spread_level",
                "must be 1 or more (1 = first segment of the group path)",
            ));
        }
        if !(self.params.is_null() || self.params.is_object()) {
            return Err(FieldError::new("params", "must be an object or null"));
        }
        if let Some(recovery) = &self.recovery {
            recovery.validate()?;
        }
        Ok(())
    }
}
