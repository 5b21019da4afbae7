//! Backup and restore: snapshots of index definitions, PIndex file sets and reference source
//! logs in a repository (a directory or an S3-compatible bucket), stored once per content
//! hash, verified on every read.
//!
//! The pure parts — the manifest ([`manifest`]), which blobs an upload must send and which
//! `gc` may remove, the encoding of one blob ([`codec`]) — are apart from the I/O: the
//! repository ([`repo`]) over `object_store`, and its writer lock ([`lock`]). What a
//! repository definition may make a node dial, read and write is [`policy`]'s; how much a
//! node reads from a repository, [`limits`]'. `backup/README.md` explains the method.

pub mod codec;
pub mod crypt;
pub mod fetch;
pub mod grpc;
pub mod job;
pub mod limits;
pub mod lock;
pub mod maintain;
pub mod manifest;
pub mod policy;
pub mod repo;
pub mod restore_job;
pub mod restore_plan;
pub mod runner;
mod s3;
pub mod save;
pub mod select;
pub mod source_copy;

pub use manifest::{FileEntry, Manifest, PIndexEntry, PartitionPoint, SourceEntry};
pub use policy::RepoPolicy;
pub use repo::Repository;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A repository's configuration cannot be used; `field` names what is wrong.
    #[error("`{field}`: {reason}")]
    Config { field: String, reason: String },
    /// Something read from the repository is not what it should be (names the object).
    #[error("{what} is damaged: {reason}")]
    Damaged { what: String, reason: String },
    #[error("{0} not found in the repository")]
    NotFound(String),
    /// Another cluster (or another operation) holds the repository's writer lock.
    #[error("the repository is locked by cluster `{cluster}` ({operation}) until {until_ms} ms since the epoch")]
    Locked {
        cluster: String,
        operation: String,
        until_ms: u64,
    },
    #[error("the repository is read-only")]
    ReadOnly,
    /// The key given does not open the repository (or a sealed object was changed).
    #[error("the repository's encryption key does not match (wrong passphrase or key file), or the object was changed")]
    WrongKey,
    #[error("encoding: {0}")]
    Encode(String),
    /// An object of the repository (or a file to save) is larger than a node reads
    /// ([`limits`]).
    #[error("{what} is {size} bytes, above the limit of {limit}")]
    TooLarge { what: String, size: u64, limit: u64 },
    /// The copy asked to save a PIndex did not reach the seqs the job began at in time.
    #[error("the copy of {pindex} is behind the backup's start: {behind}")]
    Behind { pindex: String, behind: String },
    /// The object store or the local disk failed.
    #[error("storage: {0}")]
    Storage(String),
}

impl BackupError {
    pub(crate) fn storage(e: impl std::fmt::Display) -> Self {
        BackupError::Storage(e.to_string())
    }
}

pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
