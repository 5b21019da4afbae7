//! The key layout. Everything of a cluster lives under `/tessera/<cluster>/`:
//!
//! | key                      | value                         |
//! |--------------------------|-------------------------------|
//! | `cluster`                | [`ClusterMeta`](crate::schema::ClusterMeta) |
//! | `indexes/<name>`         | [`IndexDef`](crate::schema::IndexDef) |
//! | `nodes/<uuid>`           | [`NodeDef`](crate::schema::NodeDef) |
//! | `live/<uuid>`            | [`NodeLiveness`](crate::schema::NodeLiveness), lease-bound |
//! | `plans/<index>`          | [`IndexPlan`](crate::schema::IndexPlan) |
//! | `planner/leader`         | [`PlannerLeader`](crate::schema::PlannerLeader), lease-bound |
//! | `reports/<node>`         | [`CopyReport`](crate::schema::CopyReport) |
//! | `tasks/<id>`             | [`TopologyTask`](crate::schema::TopologyTask) |
//! | `topology/lock`          | [`TopologyLock`](crate::schema::TopologyLock): the running task |
//! | `control`                | [`ClusterControl`](crate::schema::ClusterControl): freeze, failover count |
//! | `backup/repos/<name>`    | [`RepoDef`](crate::schema::RepoDef) |
//! | `backup/jobs/<id>`       | [`BackupJob`](crate::schema::BackupJob) |
//! | `recoveries/<id>`        | [`Recovery`](crate::schema::Recovery) |
//! | `recovery/lock`          | [`RecoveryLock`](crate::schema::RecoveryLock): the running recovery |
//! | `recovery/auto`          | [`RecoveryAuto`](crate::schema::RecoveryAuto): automatic recovery |
//! | `keys/<id>`              | [`KeyRecord`](tessera_auth::key::KeyRecord): an API key's keyed hash and roles |
//! | `repairs/<id>`           | the journal entry of a `tessera repair cfg` apply or rollback (JSON) |
//!
//! Other crates ask [`KeySpace`] for keys and never format them by hand.

use crate::error::{CfgError, Result};
use crate::schema::validate_cluster_name;

/// The keys of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpace {
    cluster: String,
    root: String,
}

/// What a key holds, by its place in the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    ClusterMeta,
    IndexDef(String),
    NodeDef(String),
    Liveness(String),
    Plan(String),
    PlannerLeader,
    CopyReport(String),
    Task(String),
    TopologyLock,
    Control,
    BackupRepo(String),
    /// A backup or restore job's record.
    BackupJob(String),
    /// A recovery of missing PIndexes.
    Recovery(String),
    RecoveryLock,
    RecoveryAuto,
    /// The journal entry of a Cfg repair.
    RepairRecord(String),
    /// An API key (its id).
    ApiKey(String),
    /// Under the cluster root but not part of the schema.
    Unknown,
    /// Not under this cluster's root.
    Foreign,
}

impl KeySpace {
    pub fn new(cluster: &str) -> Result<Self> {
        validate_cluster_name(cluster).map_err(|e| CfgError::BadSpec {
            spec: cluster.to_string(),
            reason: format!("cluster name {}", e.reason),
        })?;
        Ok(Self {
            cluster: cluster.to_string(),
            root: format!("/tessera/{cluster}/"),
        })
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// `/tessera/<cluster>/`: the prefix of every key of the cluster.
    pub fn root(&self) -> &str {
        &self.root
    }

    pub fn cluster_meta(&self) -> String {
        format!("{}cluster", self.root)
    }
    pub fn index_defs(&self) -> String {
        format!("{}indexes/", self.root)
    }
    pub fn index_def(&self, name: &str) -> String {
        format!("{}{name}", self.index_defs())
    }
    pub fn node_defs(&self) -> String {
        format!("{}nodes/", self.root)
    }
    pub fn node_def(&self, uuid: &str) -> String {
        format!("{}{uuid}", self.node_defs())
    }
    pub fn liveness_all(&self) -> String {
        format!("{}live/", self.root)
    }
    pub fn liveness(&self, uuid: &str) -> String {
        format!("{}{uuid}", self.liveness_all())
    }
    pub fn plans(&self) -> String {
        format!("{}plans/", self.root)
    }
    pub fn plan(&self, index: &str) -> String {
        format!("{}{index}", self.plans())
    }
    pub fn planner_leader(&self) -> String {
        format!("{}planner/leader", self.root)
    }
    pub fn reports(&self) -> String {
        format!("{}reports/", self.root)
    }
    pub fn report(&self, node: &str) -> String {
        format!("{}{node}", self.reports())
    }

    pub fn tasks(&self) -> String {
        format!("{}tasks/", self.root)
    }

    pub fn task(&self, id: &str) -> String {
        format!("{}{id}", self.tasks())
    }

    pub fn topology_lock(&self) -> String {
        format!("{}topology/lock", self.root)
    }

    pub fn control(&self) -> String {
        format!("{}control", self.root)
    }

    pub fn backup_repos(&self) -> String {
        format!("{}backup/repos/", self.root)
    }

    pub fn backup_repo(&self, name: &str) -> String {
        format!("{}{name}", self.backup_repos())
    }

    pub fn api_keys(&self) -> String {
        format!("{}keys/", self.root)
    }

    pub fn api_key(&self, id: &str) -> String {
        format!("{}{id}", self.api_keys())
    }

    pub fn backup_jobs(&self) -> String {
        format!("{}backup/jobs/", self.root)
    }

    pub fn backup_job(&self, id: &str) -> String {
        format!("{}{id}", self.backup_jobs())
    }

    pub fn recoveries(&self) -> String {
        format!("{}recoveries/", self.root)
    }

    pub fn recovery(&self, id: &str) -> String {
        format!("{}{id}", self.recoveries())
    }

    pub fn recovery_lock(&self) -> String {
        format!("{}recovery/lock", self.root)
    }

    pub fn recovery_auto(&self) -> String {
        format!("{}recovery/auto", self.root)
    }

    /// Where a Cfg repair's journal entry is kept.
    pub fn repair_record(&self, id: &str) -> String {
        format!("{}repairs/{id}", self.root)
    }

    /// A key given on the command line: absolute (`/tessera/...`) as is, otherwise relative
    /// to the cluster root (`indexes/books`).
    pub fn resolve(&self, key: &str) -> String {
        if key.starts_with('/') {
            key.to_string()
        } else {
            format!("{}{key}", self.root)
        }
    }

    /// What `key` holds.
    pub fn kind(&self, key: &str) -> KeyKind {
        let Some(rest) = key.strip_prefix(&self.root) else {
            return KeyKind::Foreign;
        };
        let one = |prefix: &str| {
            rest.strip_prefix(prefix)
                .filter(|name| !name.is_empty() && !name.contains('/'))
                .map(str::to_string)
        };
        if rest == "cluster" {
            KeyKind::ClusterMeta
        } else if rest == "planner/leader" {
            KeyKind::PlannerLeader
        } else if rest == "topology/lock" {
            KeyKind::TopologyLock
        } else if rest == "control" {
            KeyKind::Control
        } else if rest == "recovery/lock" {
            KeyKind::RecoveryLock
        } else if rest == "recovery/auto" {
            KeyKind::RecoveryAuto
        } else if let Some(name) = one("indexes/") {
            KeyKind::IndexDef(name)
        } else if let Some(uuid) = one("nodes/") {
            KeyKind::NodeDef(uuid)
        } else if let Some(uuid) = one("live/") {
            KeyKind::Liveness(uuid)
        } else if let Some(index) = one("plans/") {
            KeyKind::Plan(index)
        } else if let Some(node) = one("reports/") {
            KeyKind::CopyReport(node)
        } else if let Some(id) = one("tasks/") {
            KeyKind::Task(id)
        } else if let Some(name) = one("backup/repos/") {
            KeyKind::BackupRepo(name)
        } else if let Some(id) = one("backup/jobs/") {
            KeyKind::BackupJob(id)
        } else if let Some(id) = one("recoveries/") {
            KeyKind::Recovery(id)
        } else if let Some(id) = one("keys/") {
            KeyKind::ApiKey(id)
        } else if let Some(id) = one("repairs/") {
            KeyKind::RepairRecord(id)
        } else {
            KeyKind::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_kind() {
        let ks = KeySpace::new("prod").unwrap();
        assert_eq!(ks.index_def("books"), "/tessera/prod/indexes/books");
        assert_eq!(
            ks.kind(&ks.index_def("books")),
            KeyKind::IndexDef("books".into())
        );
        assert_eq!(ks.kind(&ks.node_def("n1")), KeyKind::NodeDef("n1".into()));
        assert_eq!(ks.kind(&ks.liveness("n1")), KeyKind::Liveness("n1".into()));
        assert_eq!(ks.kind(&ks.plan("books")), KeyKind::Plan("books".into()));
        assert_eq!(ks.kind(&ks.cluster_meta()), KeyKind::ClusterMeta);
        assert_eq!(ks.kind(&ks.planner_leader()), KeyKind::PlannerLeader);
        assert_eq!(ks.kind(&ks.task("t1")), KeyKind::Task("t1".into()));
        assert_eq!(ks.kind(&ks.topology_lock()), KeyKind::TopologyLock);
        assert_eq!(ks.kind(&ks.control()), KeyKind::Control);
        assert_eq!(ks.kind("/tessera/prod/indexes/a/b"), KeyKind::Unknown);
        assert_eq!(ks.kind("/tessera/other/cluster"), KeyKind::Foreign);
        assert_eq!(ks.resolve("indexes/x"), "/tessera/prod/indexes/x");
        assert_eq!(ks.resolve("/abs"), "/abs");
    }

    #[test]
    fn bad_cluster_names_are_refused() {
        for bad in ["", "a/b", "with space", "-x"] {
            assert!(KeySpace::new(bad).is_err(), "{bad:?}");
        }
    }
}
