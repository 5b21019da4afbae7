//! The typed documents the cluster stores, each carrying a `format_version`.
//!
//! Two ways in: [`decode`] reads what is stored (a bad value is `Corrupt`, a newer format is
//! `UnknownFormatVersion`, both naming the key), [`decode_input`] reads what a user offers
//! (errors are `Invalid` naming the field, then the document's own validation runs).

mod api_key;
mod backup;
mod cluster;
mod index;
mod node;
mod plan;
mod recovery;
mod task;
pub mod validate;

pub use backup::{BackupJob, JobKind, JobProgress, RepoDef, RestoreSpec, REPO_TYPES, S3_OPTIONS};
pub use cluster::{ClusterControl, ClusterMeta, Held, PlannerLeader};
pub use index::{
    IndexDef, PlanParams, RestoreFrom, SourceDef, DEFAULT_SOURCE_PARTITIONS, INDEX_TYPES,
    MAX_REPLICAS,
};
pub use node::{NodeDef, NodeLiveness, NodeTag, MAX_WEIGHT};
pub use plan::{CopyPlan, CopyReport, CopyRole, CopyState, IndexPlan, PIndexPlan};
pub use recovery::{
    AutoFrom, IndexRecovery, PIndexRecoveryState, RecoverFrom, Recovery, RecoveryAuto,
    RecoveryLock, RecoveryPIndex, RecoveryStatus, SnapshotAt, SnapshotChoice, Undo,
};
pub use task::{NodeBefore, TaskKind, TaskProgress, TaskStatus, TopologyLock, TopologyTask};
pub use validate::FieldError;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{CfgError, Result};

/// A stored document type.
pub trait Document: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// What it is, for messages (`index definition`, ...).
    const KIND: &'static str;
    /// The newest format version this build writes and reads.
    const FORMAT_VERSION: u32;
    /// Checks the rules serde cannot express; the error names the field.
    fn validate(&self) -> Result<(), FieldError>;
}

/// Serialises a document for storing.
pub fn encode<T: Document>(doc: &T) -> Vec<u8> {
    // Serialising these plain structs to JSON cannot fail: all map keys are strings.
    serde_json::to_vec(doc).unwrap_or_default()
}

/// Serialises a document for humans.
pub fn encode_pretty<T: Document>(doc: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(doc).unwrap_or_default()
}

/// Reads a stored document.
pub fn decode<T: Document>(key: &str, bytes: &[u8]) -> Result<T> {
    let corrupt = |reason: String| CfgError::Corrupt {
        key: key.to_string(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not JSON: {e}")))?;
    match value.get("format_version").and_then(|v| v.as_u64()) {
        None => return Err(corrupt("no numeric `format_version`".into())),
        Some(found) if found == 0 || found > u64::from(T::FORMAT_VERSION) => {
            return Err(CfgError::UnknownFormatVersion {
                key: key.to_string(),
                found,
                supported: T::FORMAT_VERSION,
            })
        }
        Some(_) => {}
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        corrupt(format!(
            "not a valid {}: field `{}`: {}",
            T::KIND,
            e.path(),
            e.inner()
        ))
    })
}

/// Reads a document offered by a user (CLI, REST): a missing `format_version` means the current
/// one; errors name the field; the document's validation runs.
pub fn decode_input<T: Document>(key: &str, bytes: &[u8]) -> Result<T> {
    let invalid = |field: &str, reason: String| CfgError::Invalid {
        key: key.to_string(),
        field: field.to_string(),
        reason,
    };
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| invalid("(document)", format!("not JSON: {e}")))?;
    let Some(object) = value.as_object_mut() else {
        return Err(invalid("(document)", "must be a JSON object".into()));
    };
    match object.get("format_version") {
        None => {
            object.insert("format_version".into(), T::FORMAT_VERSION.into());
        }
        Some(v) => match v.as_u64() {
            Some(found) if found >= 1 && found <= u64::from(T::FORMAT_VERSION) => {}
            _ => {
                return Err(invalid(
                    "format_version",
                    format!(
                        "{v} is not a known format version (1..={})",
                        T::FORMAT_VERSION
                    ),
                ))
            }
        },
    }
    let doc: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        invalid(&path, e.inner().to_string())
    })?;
    doc.validate().map_err(|e| invalid(&e.field, e.reason))?;
    Ok(doc)
}

/// Validates a document about to be written, naming the key in the error.
pub fn check<T: Document>(key: &str, doc: &T) -> Result<()> {
    doc.validate().map_err(|e| CfgError::Invalid {
        key: key.to_string(),
        field: e.field,
        reason: e.reason,
    })
}

#[cfg(test)]
mod tests;

/// Cluster names follow the index name rules (they appear in keys and paths).
pub fn validate_cluster_name(name: &str) -> Result<(), FieldError> {
    validate::name("cluster", name)
}
