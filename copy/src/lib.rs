//! Copying a PIndex's files at one commit from a node that holds a readable copy, over
//! `tessera.v1.Copy`: recovery of missing PIndexes from another Tessera cluster reads it (and
//! building a new copy from a peer can).
//!
//! - [`pick`]: which PIndex and which nodes serve it (pure, from the serving cluster's plan).
//! - [`held`]: the sets a serving node holds apart (hard links at one commit), with checksums.
//! - [`serve`]: the gRPC service: take (here or forwarded to a holder), stream a file from an
//!   offset, release.
//! - [`fetch`]: the fetching side: take, download (resumed, checksummed, paced, whole or
//!   nothing), release.
//! - [`pace`]: a bytes-per-second limit shared by the transfers that count against it.
//!
//! The commit's checkpoints travel inside its `meta.json`: a PIndex opened from the fetched
//! files resumes its feed from where the serving copy had committed.

pub mod fetch;
pub mod held;
pub mod pace;
pub mod pick;
pub mod serve;

use std::path::Path;

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The index, the PIndex or the set is not there.
    #[error("{0}")]
    NotFound(String),
    /// No node can serve it now.
    #[error("{0}")]
    Unavailable(String),
    /// The serving node could not be reached or the call broke.
    #[error("{0}")]
    Transport(String),
    /// A file arrived other than the serving node described it.
    #[error("file {file}: {reason}")]
    Corrupt { file: String, reason: String },
    #[error("{0}")]
    Io(String),
    #[error("the cluster configuration: {0}")]
    Cfg(String),
}

impl CopyError {
    pub fn io(path: &Path, e: std::io::Error) -> Self {
        Self::Io(format!("{}: {e}", path.display()))
    }

    pub fn cfg(e: tessera_cfg::CfgError) -> Self {
        Self::Cfg(e.to_string())
    }

    pub fn from_status(status: Status) -> Self {
        let message = status.message().to_string();
        match status.code() {
            Code::NotFound => Self::NotFound(message),
            Code::Unavailable if message.contains("no readable copy") => Self::Unavailable(message),
            Code::DataLoss => Self::Corrupt {
                file: String::new(),
                reason: message,
            },
            _ => Self::Transport(format!("{}: {message}", status.code())),
        }
    }

    pub fn into_status(self) -> Status {
        match self {
            Self::NotFound(m) => Status::not_found(m),
            Self::Unavailable(m) => Status::unavailable(m),
            Self::Corrupt { .. } => Status::data_loss(self.to_string()),
            e => Status::internal(e.to_string()),
        }
    }
}
