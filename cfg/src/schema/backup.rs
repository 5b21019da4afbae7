//! Backup repositories: where snapshots are kept. Only the location and options are stored;
//! credentials come from a file named here (or, when asked for, the nodes' environment),
//! never from the Cfg.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::validate::{self, FieldError};
use super::Document;

/// The repository types this build knows.
pub const REPO_TYPES: &[&str] = &["fs", "s3"];

/// A backup repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoDef {
    pub format_version: u32,
    pub name: String,
    /// `fs` (a directory, local or network-mounted) or `s3` (an S3-compatible object store).
    #[serde(rename = "type")]
    pub repo_type: String,
    /// `fs`: an absolute directory path. `s3`: `BUCKET` or `BUCKET/PREFIX`.
    pub location: String,
    /// A read-only repository is only restored from (another cluster writes it).
    #[serde(default)]
    pub readonly: bool,
    /// Options: `passphrase_file` or `key_file` (encryption at rest, any type); `s3`: `endpoint`,
    /// `region`, `allow_http` (`true`), and either `credentials_file` (a file on every node
    /// with `access_key_id` and `secret_access_key` lines) or `credentials`: `ambient` (the
    /// nodes' environment and instance metadata, used only when asked for) or `anonymous`.
    /// Files are under the nodes' `--secrets-dir`; `tessera_backup::policy` checks them, the
    /// endpoint and an `fs` location on every node that opens the repository.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// The options an `s3` repository accepts.
pub const S3_OPTIONS: &[&str] = &[
    "endpoint",
    "region",
    "allow_http",
    "credentials_file",
    "credentials",
    "passphrase_file",
    "key_file",
];

/// The options every repository type accepts: encryption at rest with a key from a
/// passphrase file or a key file (on every node; the key itself never enters the Cfg).
pub const KEY_OPTIONS: &[&str] = &["passphrase_file", "key_file"];

impl Document for RepoDef {
    const KIND: &'static str = "backup repository";
    const FORMAT_VERSION: u32 = 1;
    fn validate(&self) -> Result<(), FieldError> {
        validate::name("name", &self.name)?;
        match self.repo_type.as_str() {
            "fs" => {
                if !self.location.starts_with('/') {
                    return Err(FieldError::new(
                        "location",
                        "an fs repository's location is an absolute directory path",
                    ));
                }
                if let Some(key) = self
                    .options
                    .keys()
                    .find(|k| !KEY_OPTIONS.contains(&k.as_str()))
                {
                    return Err(FieldError::new(
                        format!("options.{key}"),
                        format!(
                            "unknown option (an fs repository takes: {})",
                            KEY_OPTIONS.join(", ")
                        ),
                    ));
                }
            }
            "s3" => {
                let bucket = self.location.split('/').next().unwrap_or_default();
                if bucket.is_empty() || self.location.starts_with("s3://") {
                    return Err(FieldError::new(
                        "location",
                        "an s3 repository's location is BUCKET or BUCKET/PREFIX",
                    ));
                }
                if let Some(key) = self
                    .options
                    .keys()
                    .find(|k| !S3_OPTIONS.contains(&k.as_str()))
                {
                    return Err(FieldError::new(
                        format!("options.{key}"),
                        format!("unknown option (known: {})", S3_OPTIONS.join(", ")),
                    ));
                }
                if let Some(v) = self.options.get("allow_http") {
                    if v != "true" && v != "false" {
                        return Err(FieldError::new("options.allow_http", "`true` or `false`"));
                    }
                }
            }
            other => {
                return Err(FieldError::new(
                    "type",
                    format!(
                        "unknown repository type `{other}` (known: {})",
                        REPO_TYPES.join(", ")
                    ),
                ))
            }
        }
        Ok(())
    }
}

/// What a backup job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Backup,
    Restore,
}

/// A backup job's progress, for `--wait` and `/api/ctl/tasks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobProgress {
    pub pindexes_total: u64,
    pub pindexes_done: u64,
    pub files_total: u64,
    pub files_done: u64,
    pub bytes_total: u64,
    pub bytes_done: u64,
    /// Bytes actually sent to the repository (a blob it already held is not sent again).
    pub bytes_uploaded: u64,
    /// Files whose content the repository did not hold yet (the others are not sent).
    #[serde(default)]
    pub files_uploaded: u64,
}

/// A backup (or restore) job: a record in the Cfg, driven by one node (`owner`) and taken
/// over by another live node when its owner is gone, so a job outlives the node that began it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupJob {
    pub format_version: u32,
    /// The job id; for a backup, also the snapshot id.
    pub id: String,
    pub kind: JobKind,
    pub repo: String,
    /// Index name globs (`*` for all).
    pub indexes: Vec<String>,
    /// Per node and second, in bytes (0: unlimited).
    #[serde(default)]
    pub rate_limit_bytes: u64,
    pub status: super::TaskStatus,
    /// The node driving the job.
    pub owner: String,
    pub created_ms: u64,
    pub updated_ms: u64,
    #[serde(default)]
    pub progress: JobProgress,
    /// For a backup: the high seq of every partition of every source the indexes read (by
    /// source name), taken when the job began. Every PIndex saved holds at least these of its
    /// partitions, so the snapshot has every change the sources had at its start.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_seqs: BTreeMap<String, BTreeMap<u32, u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a restore: what to bring back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreSpec>,
}

/// What a restore job does: import the saved sources into one source, then define the
/// restored indexes (which read that source).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreSpec {
    pub snapshot: String,
    /// Where the sources are imported (`http://host:port`).
    pub source_url: String,
    /// The saved sources to import (by name).
    pub sources: Vec<String>,
    /// The index definitions to write once the sources are back.
    pub indexes: Vec<super::IndexDef>,
}

impl Document for BackupJob {
    const KIND: &'static str = "backup job";
    const FORMAT_VERSION: u32 = 1;
    fn validate(&self) -> Result<(), FieldError> {
        validate::ident("id", &self.id)?;
        validate::name("repo", &self.repo)?;
        if self.indexes.is_empty() {
            return Err(FieldError::new(
                "indexes",
                "at least one index name or glob",
            ));
        }
        Ok(())
    }
}
