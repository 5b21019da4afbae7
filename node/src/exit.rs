//! Exit codes, so scripts can tell "bad input" from "conflict" from "Cfg down".
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | any other failure |
//! | 2 | bad command line (from clap) |
//! | 3 | invalid value (schema validation, bad JSON, bad `--cfg`) |
//! | 4 | key not found |
//! | 5 | conflict: CAS mismatch, already exists, node already live |
//! | 6 | Cfg unavailable |
//! | 7 | stored data corrupt or of an unknown format version |
//! | 8 | refused: no or bad credentials (401), or not allowed (403) |

use tessera_cfg::CfgError;

pub const INVALID: i32 = 3;
pub const NOT_FOUND: i32 = 4;
pub const CONFLICT: i32 = 5;
pub const UNAVAILABLE: i32 = 6;
pub const CORRUPT: i32 = 7;
pub const DENIED: i32 = 8;

/// A failure the binary reports with a specific exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

impl Exit {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

pub fn code_for(error: &anyhow::Error) -> i32 {
    if let Some(exit) = error.downcast_ref::<Exit>() {
        return exit.code;
    }
    match error.downcast_ref::<CfgError>() {
        Some(CfgError::Invalid { .. } | CfgError::BadSpec { .. }) => INVALID,
        Some(CfgError::NotFound { .. }) => NOT_FOUND,
        Some(CfgError::CasMismatch { .. } | CfgError::AlreadyExists { .. }) => CONFLICT,
        Some(CfgError::Unavailable { .. }) => UNAVAILABLE,
        Some(CfgError::Corrupt { .. } | CfgError::UnknownFormatVersion { .. }) => CORRUPT,
        _ => 1,
    }
}
