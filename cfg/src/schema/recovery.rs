//! Recoveries of missing PIndexes (`POST /api/ctl/recovery`), as tasks: one key per recovery
//! and a lock key naming the one running (a second begin answers the running one). The node
//! that accepts a begin writes the recovery and the lock in one transaction; the janitor of
//! the node each missing PIndex is placed on fetches its data and reports its state in the
//! recovery; commit, end and abort are writes of the recovery under CAS. The planner does not make a
//! recovering PIndex's copies readable until it is committed (`Recovery::holds`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::validate::{self, FieldError};
use super::Document;

/// Where the data of the missing PIndexes comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum RecoverFrom {
    /// A backup snapshot: its saved PIndex files and checkpoints.
    Snapshot { repo: String, id: String },
    /// Another Tessera cluster hosting the same index definition, by one of its nodes' URL.
    Cluster(String),
    /// Nothing fetched: the PIndexes rebuild from the source.
    Source,
}

impl RecoverFrom {
    /// Checks the names and the URL, naming the field under `at` (`from`, or a longer path).
    pub fn validate_at(&self, at: &str) -> Result<(), FieldError> {
        match self {
            Self::Snapshot { repo, id } => {
                validate::name(&format!("{at}.snapshot.repo"), repo)?;
                validate::ident(&format!("{at}.snapshot.id"), id)
            }
            Self::Cluster(url) => validate_node_url(&format!("{at}.cluster"), url),
            Self::Source => Ok(()),
        }
    }

    /// How it is written on the command line (`snapshot:REPO/ID`, `cluster:URL`, `source`).
    pub fn describe(&self) -> String {
        match self {
            Self::Snapshot { repo, id } => format!("snapshot:{repo}/{id}"),
            Self::Cluster(url) => format!("cluster:{url}"),
            Self::Source => "source".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecoveryStatus {
    Running,
    /// Ended by the operator: PIndexes not committed went back to the planner's handling.
    Ended,
    /// Aborted: what was not committed is undone (`RecoveryPIndex::undo`).
    Aborted,
}

/// Where one missing PIndex stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PIndexRecoveryState {
    /// Nothing done yet (no node acted on it, or no node holds its copy yet).
    Missing,
    /// Its files are being fetched.
    Fetching,
    /// The fetched files are being checked and opened.
    Verifying,
    /// Open; the feed streams what the source has beyond the fetched checkpoints.
    CatchingUp,
    /// Caught up with the source; readable once committed.
    Recovered,
    /// Could not be recovered; `reason` says why.
    Failed,
}

/// An aborted recovery's work on one PIndex being undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Undo {
    /// Its node has yet to remove what was fetched (the copy then rebuilds from the source).
    Pending,
    Done,
}

/// One missing PIndex of a recovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryPIndex {
    pub index: String,
    /// The node the plan places its copy on (the one whose janitor recovers it).
    pub node: Option<String>,
    pub state: PIndexRecoveryState,
    /// Where its data comes from, in words (`snapshot local/ID: download`, `source`).
    pub from: String,
    /// Built from the source rather than fetched (the snapshot lacks it, or the source no
    /// longer holds the history its checkpoints point into).
    pub rebuild: bool,
    pub bytes_total: u64,
    #[serde(default)]
    pub bytes_done: u64,
    /// Made readable by a commit.
    #[serde(default)]
    pub committed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo: Option<Undo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The node incarnation that last acted on it (a restarted node does it again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<String>,
    #[serde(default)]
    pub updated_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recovery {
    pub format_version: u32,
    pub id: String,
    pub status: RecoveryStatus,
    pub from: RecoverFrom,
    /// The indexes it covers: held as they are while it runs.
    pub indexes: Vec<String>,
    /// The missing PIndexes, by name.
    pub pindexes: BTreeMap<String, RecoveryPIndex>,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// How it ended, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Begun by the cluster's automatic recovery setting (which also commits and ends it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto: bool,
}

impl Recovery {
    /// The PIndexes whose copies the planner must not make readable now: those of a running
    /// recovery not yet committed (every copy of them, so that a replica rebuilt from the
    /// source does not serve before the operator commits), and those of an aborted one whose
    /// undo is pending (what was fetched must go before the copy may serve).
    pub fn holds(&self) -> impl Iterator<Item = &str> + '_ {
        self.pindexes.iter().filter_map(move |(name, p)| {
            let held = match self.status {
                RecoveryStatus::Running => !p.committed,
                RecoveryStatus::Aborted => p.undo == Some(Undo::Pending),
                RecoveryStatus::Ended => false,
            };
            held.then_some(name.as_str())
        })
    }
}

impl Document for Recovery {
    const KIND: &'static str = "recovery";
    const FORMAT_VERSION: u32 = 1;

    fn validate(&self) -> Result<(), FieldError> {
        validate::ident("id", &self.id)?;
        for (i, name) in self.indexes.iter().enumerate() {
            validate::name(&format!("indexes[{i}]"), name)?;
        }
        self.from.validate_at("from")
    }
}

/// The cluster's automatic recovery: when PIndexes go missing and no recovery runs, one is
/// begun from `from`, and committed and ended once its PIndexes are recovered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryAuto {
    pub format_version: u32,
    pub from: RecoverFrom,
}

impl Document for RecoveryAuto {
    const KIND: &'static str = "automatic recovery setting";
    const FORMAT_VERSION: u32 = 1;

    fn validate(&self) -> Result<(), FieldError> {
        self.from.validate_at("from")
    }
}

/// `url` is a node's URL (`http://HOST:PORT` or `https://...`).
pub fn validate_node_url(field: &str, url: &str) -> Result<(), FieldError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(()),
        _ => Err(FieldError::new(
            field,
            format!("`{url}` is not a node's URL (http://HOST:PORT)"),
        )),
    }
}

/// Per-index recovery settings (`recovery` in an index definition).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexRecovery {
    /// Where an automatic recovery of this index's missing PIndexes reads; absent: the
    /// cluster's setting (`recovery/auto`) applies, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_from: Option<AutoFrom>,
}

/// Where an index's automatic recovery reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum AutoFrom {
    /// `"latest"`: the newest snapshot holding the index in any repository; or a snapshot of
    /// one repository (`{"repo": .., "id": ..}`, id `latest` for its newest).
    Snapshot(SnapshotChoice),
    Cluster(String),
    Source,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SnapshotChoice {
    /// Only `latest`.
    Newest(String),
    In(SnapshotAt),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotAt {
    pub repo: String,
    pub id: String,
}

impl IndexRecovery {
    pub fn validate(&self) -> Result<(), FieldError> {
        match &self.auto_from {
            Some(AutoFrom::Snapshot(SnapshotChoice::Newest(id))) if id != "latest" => {
                Err(FieldError::new(
                    "recovery.auto_from.snapshot",
                    format!("`{id}`: `latest`, or {{\"repo\": .., \"id\": ..}}"),
                ))
            }
            Some(AutoFrom::Snapshot(SnapshotChoice::In(at))) => {
                validate::name("recovery.auto_from.snapshot.repo", &at.repo)?;
                validate::ident("recovery.auto_from.snapshot.id", &at.id)
            }
            Some(AutoFrom::Cluster(url)) => validate_node_url("recovery.auto_from.cluster", url),
            _ => Ok(()),
        }
    }
}

/// The lock naming the running recovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryLock {
    pub format_version: u32,
    pub recovery: String,
}

impl Document for RecoveryLock {
    const KIND: &'static str = "recovery lock";
    const FORMAT_VERSION: u32 = 1;

    fn validate(&self) -> Result<(), FieldError> {
        validate::ident("recovery", &self.recovery)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(node: &str, committed: bool, undo: Option<Undo>) -> RecoveryPIndex {
        RecoveryPIndex {
            index: "books".into(),
            node: Some(node.into()),
            state: PIndexRecoveryState::Recovered,
            from: "source".into(),
            rebuild: true,
            bytes_total: 0,
            bytes_done: 0,
            committed,
            undo,
            reason: None,
            incarnation: None,
            updated_ms: 0,
        }
    }

    fn recovery(status: RecoveryStatus) -> Recovery {
        Recovery {
            format_version: 1,
            id: "r1".into(),
            status,
            from: RecoverFrom::Source,
            indexes: vec!["books".into()],
            pindexes: [
                ("p1".to_string(), entry("n1", false, None)),
                ("p2".to_string(), entry("n2", true, None)),
                ("p3".to_string(), entry("n1", false, Some(Undo::Pending))),
                ("p4".to_string(), entry("n2", false, Some(Undo::Done))),
            ]
            .into(),
            created_ms: 0,
            updated_ms: 0,
            summary: None,
            auto: false,
        }
    }

    #[test]
    fn what_is_held_follows_the_status() {
        let held = |s| recovery(s).holds().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            held(RecoveryStatus::Running),
            ["p1", "p3", "p4"],
            "uncommitted PIndexes wait for a commit"
        );
        assert_eq!(held(RecoveryStatus::Aborted), ["p3"], "only pending undos");
        assert!(held(RecoveryStatus::Ended).is_empty());
    }

    #[test]
    fn from_reads_and_writes_as_the_api_spells_it() {
        let snapshot: RecoverFrom =
            serde_json::from_str(r#"{"snapshot": {"repo": "local", "id": "s1"}}"#).unwrap();
        assert_eq!(snapshot.describe(), "snapshot:local/s1");
        let cluster: RecoverFrom = serde_json::from_str(r#"{"cluster": "http://h:1"}"#).unwrap();
        assert_eq!(cluster, RecoverFrom::Cluster("http://h:1".into()));
        let source: RecoverFrom = serde_json::from_str(r#""source""#).unwrap();
        assert_eq!(source, RecoverFrom::Source);
        assert_eq!(serde_json::to_string(&source).unwrap(), r#""source""#);
    }
}
