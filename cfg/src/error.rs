//! The Cfg error type: every failure a caller can act on is its own variant.

use crate::revision::{LeaseId, Revision};

/// Result alias for Cfg operations.
pub type Result<T, E = CfgError> = std::result::Result<T, E>;

/// Why a Cfg operation failed. Callers match on the variant; the message is for humans.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CfgError {
    /// A conditional write or delete found another revision. `current` is 0 when the key is absent.
    #[error("{key}: revision mismatch (expected {expected}, current {current})")]
    CasMismatch {
        key: String,
        expected: Revision,
        current: Revision,
    },
    /// A create-only write (cas 0) found the key present.
    #[error("{key}: already exists (revision {current})")]
    AlreadyExists { key: String, current: Revision },
    /// The key is absent.
    #[error("{key}: not found")]
    NotFound { key: String },
    /// The store cannot be reached (after retries, for remote stores).
    #[error("cfg unavailable: {reason}")]
    Unavailable { reason: String },
    /// A stored value cannot be decoded.
    #[error("{key}: corrupt value: {reason}")]
    Corrupt { key: String, reason: String },
    /// A stored value carries a format version this build does not know.
    #[error("{key}: unknown format version {found} (this build reads versions 1..={supported})")]
    UnknownFormatVersion {
        key: String,
        found: u64,
        supported: u32,
    },
    /// A value offered for writing breaks the schema; `field` is a path like `plan.replicas`.
    #[error("{key}: invalid field `{field}`: {reason}")]
    Invalid {
        key: String,
        field: String,
        reason: String,
    },
    /// A value larger than the store accepts ([`crate::limits::MAX_VALUE_BYTES`]).
    #[error("{key}: value of {bytes} bytes exceeds the Cfg's limit of {limit} bytes")]
    TooLarge {
        key: String,
        bytes: usize,
        limit: usize,
    },
    /// The lease does not exist (never granted, revoked or expired).
    #[error("lease {0:x} not found (expired or revoked)")]
    LeaseNotFound(LeaseId),
    /// The revision asked for has been compacted away.
    #[error("revision {requested} is compacted (history starts after {compact_revision})")]
    Compacted {
        requested: Revision,
        compact_revision: Revision,
    },
    /// A `--cfg` specification that cannot be parsed.
    #[error("bad cfg spec `{spec}`: {reason}")]
    BadSpec { spec: String, reason: String },
    /// The backing storage failed (disk, database file, unexpected server answer).
    #[error("cfg storage error: {0}")]
    Storage(String),
}

impl CfgError {
    pub(crate) fn storage(e: impl std::fmt::Display) -> Self {
        CfgError::Storage(e.to_string())
    }

    /// The error of a conditional write whose guard failed: create-only (`cas == 0`) found
    /// the key, or the key is at another revision (`current`, 0 when absent).
    pub(crate) fn cas_failed(key: &str, cas: Revision, current: Revision) -> Self {
        if cas == 0 {
            CfgError::AlreadyExists {
                key: key.to_string(),
                current,
            }
        } else {
            CfgError::CasMismatch {
                key: key.to_string(),
                expected: cas,
                current,
            }
        }
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
