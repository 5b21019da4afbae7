//! [`Cfg`]: the typed view of a cluster's store that every other crate uses. It knows the key
//! layout ([`KeySpace`]) and the documents ([`crate::schema`]); it validates before writing and
//! decodes (with typed errors naming the key) after reading.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::error::{unix_ms, CfgError, Result};
use crate::keys::{KeyKind, KeySpace};
use crate::schema::{
    self, ClusterMeta, CopyReport, Document, IndexDef, IndexPlan, NodeDef, NodeLiveness,
    PlannerLeader, TopologyLock, TopologyTask,
};
use crate::store::{KeyValue, LeaseId, Revision, Store};

/// A document with the revision it was read at (the CAS token for writing it back).
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub revision: Revision,
}

/// Documents under a prefix, as of one store revision.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedList<T> {
    pub items: Vec<Versioned<T>>,
    /// Watch from `revision + 1` to see every later change.
    pub revision: Revision,
    /// Keys under the prefix whose documents could not be read (corrupt, or of a format
    /// version this build does not know): left out of `items`, never fatal to the listing.
    pub skipped: Vec<Unreadable>,
}

/// A stored document that cannot be decoded, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreadable {
    pub key: String,
    pub error: CfgError,
}

/// Decodes `kvs` as documents of one kind: the readable ones, and the keys that are not (each
/// logged once here, naming the key).
pub(crate) fn decode_each<T: Document>(kvs: &[KeyValue]) -> (Vec<Versioned<T>>, Vec<Unreadable>) {
    let mut items = Vec::with_capacity(kvs.len());
    let mut skipped = Vec::new();
    for kv in kvs {
        match schema::decode(&kv.key, &kv.value) {
            Ok(value) => items.push(Versioned {
                value,
                revision: kv.mod_revision,
            }),
            Err(error) => {
                tracing::warn!(key = kv.key, error = %error, "skipping an unreadable {} in the Cfg", T::KIND);
                skipped.push(Unreadable {
                    key: kv.key.clone(),
                    error,
                });
            }
        }
    }
    (items, skipped)
}

/// A store scoped to one cluster, with typed helpers.
#[derive(Clone)]
pub struct Cfg {
    store: Arc<dyn Store>,
    keys: KeySpace,
}

impl Cfg {
    pub fn new(store: Arc<dyn Store>, keys: KeySpace) -> Self {
        Self { store, keys }
    }

    /// The raw store, for transactions, watches and leases.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn keys(&self) -> &KeySpace {
        &self.keys
    }

    /// Reads and decodes one document.
    pub async fn get_doc<T: Document>(&self, key: &str) -> Result<Option<Versioned<T>>> {
        match self.store.get(key).await? {
            Some(kv) => Ok(Some(Versioned {
                value: schema::decode(&kv.key, &kv.value)?,
                revision: kv.mod_revision,
            })),
            None => Ok(None),
        }
    }

    /// Reads and decodes every document under `prefix`. A document that cannot be decoded is
    /// left out and named in `skipped`: one bad document must not hide every other one.
    pub async fn list_docs<T: Document>(&self, prefix: &str) -> Result<VersionedList<T>> {
        let listing = self.store.list(prefix).await?;
        let (items, skipped) = decode_each(&listing.kvs);
        Ok(VersionedList {
            items,
            revision: listing.revision,
            skipped,
        })
    }

    /// Validates and writes one document under CAS (0: create-only).
    pub async fn put_doc<T: Document>(
        &self,
        key: &str,
        doc: &T,
        cas: Revision,
        lease: Option<LeaseId>,
    ) -> Result<Revision> {
        schema::check(key, doc)?;
        self.store.put(key, schema::encode(doc), cas, lease).await
    }

    /// The cluster's identity, created on first use. Safe to race: one creator wins, the rest
    /// read what it wrote.
    pub async fn ensure_cluster_meta(&self) -> Result<ClusterMeta> {
        let key = self.keys.cluster_meta();
        if let Some(meta) = self.get_doc::<ClusterMeta>(&key).await? {
            return Ok(meta.value);
        }
        let meta = ClusterMeta {
            format_version: ClusterMeta::FORMAT_VERSION,
            cluster_uuid: uuid::Uuid::new_v4().simple().to_string(),
            name: self.keys.cluster().to_string(),
            created_at_unix_ms: unix_ms(),
        };
        match self.put_doc(&key, &meta, 0, None).await {
            Ok(_) => Ok(meta),
            Err(CfgError::AlreadyExists { .. }) => self
                .get_doc::<ClusterMeta>(&key)
                .await?
                .map(|m| m.value)
                .ok_or(CfgError::NotFound { key }),
            Err(e) => Err(e),
        }
    }

    pub async fn index_def(&self, name: &str) -> Result<Option<Versioned<IndexDef>>> {
        self.get_doc(&self.keys.index_def(name)).await
    }
    pub async fn index_defs(&self) -> Result<VersionedList<IndexDef>> {
        self.list_docs(&self.keys.index_defs()).await
    }
    pub async fn put_index_def(&self, def: &IndexDef, cas: Revision) -> Result<Revision> {
        self.put_doc(&self.keys.index_def(&def.name), def, cas, None)
            .await
    }

    pub async fn node_def(&self, uuid: &str) -> Result<Option<Versioned<NodeDef>>> {
        self.get_doc(&self.keys.node_def(uuid)).await
    }
    pub async fn node_defs(&self) -> Result<VersionedList<NodeDef>> {
        self.list_docs(&self.keys.node_defs()).await
    }
    pub async fn put_node_def(&self, def: &NodeDef, cas: Revision) -> Result<Revision> {
        self.put_doc(&self.keys.node_def(&def.uuid), def, cas, None)
            .await
    }

    /// Writes that node `uuid` is failed over (its copies go, it gets none until it is wanted
    /// again), on the definition as `read`: the one writer of that decision for a graceful
    /// failover's last step. `also` must hold too (the task still running). `Ok(false)`: the
    /// definition or `also` changed since read (a restart, an operator, a cancel): the caller's
    /// next round looks again.
    pub async fn fail_over_node(
        &self,
        read: &Versioned<NodeDef>,
        also: crate::fenced::FencedWrite,
    ) -> Result<bool> {
        let mut node = read.value.clone();
        node.set_failed_over(true);
        also.put(&self.keys.node_def(&node.uuid), &node, read.revision)?
            .commit(self)
            .await
    }

    /// Where `source` answers (see `SourceDef::resolve_url`), reading the recorded source
    /// node's definition when the definition names one; `default` for definitions from before
    /// sources were recorded.
    pub async fn source_url(
        &self,
        source: &crate::schema::SourceDef,
        default: &str,
    ) -> std::result::Result<String, String> {
        let mut addresses = BTreeMap::new();
        if let Some(node) = source.node().filter(|_| source.url().is_none()) {
            if let Some(n) = self.node_def(node).await.map_err(|e| e.to_string())? {
                addresses.insert(n.value.uuid, n.value.host_port);
            }
        }
        source.resolve_url(&addresses, default)
    }

    pub async fn liveness(&self, uuid: &str) -> Result<Option<Versioned<NodeLiveness>>> {
        self.get_doc(&self.keys.liveness(uuid)).await
    }
    pub async fn live_nodes(&self) -> Result<VersionedList<NodeLiveness>> {
        self.list_docs(&self.keys.liveness_all()).await
    }
    /// Creates the node's liveness key bound to `lease`. `AlreadyExists` means another
    /// incarnation of the same uuid is alive.
    pub async fn create_liveness(&self, live: &NodeLiveness, lease: LeaseId) -> Result<Revision> {
        self.put_doc(&self.keys.liveness(&live.uuid), live, 0, Some(lease))
            .await
    }

    pub async fn plan(&self, index: &str) -> Result<Option<Versioned<IndexPlan>>> {
        self.get_doc(&self.keys.plan(index)).await
    }
    pub async fn plans(&self) -> Result<VersionedList<IndexPlan>> {
        self.list_docs(&self.keys.plans()).await
    }
    pub async fn put_plan(&self, plan: &IndexPlan, cas: Revision) -> Result<Revision> {
        self.put_doc(&self.keys.plan(&plan.index), plan, cas, None)
            .await
    }

    /// Writes a topology task under CAS on the revision it was read at; a task that has ended
    /// (not `running`) releases the topology lock in the same transaction, if the lock is
    /// still this task's. `false`: the task changed meanwhile and nothing was written.
    pub async fn put_task(&self, task: &TopologyTask, cas: Revision) -> Result<bool> {
        let write = self.fenced().put(&self.keys.task(&task.id), task, cas)?;
        let write = if task.status != schema::TaskStatus::Running {
            self.releasing_lock(write, &task.id).await?
        } else {
            write
        };
        write.commit(self).await
    }

    /// Checks bytes a user offers for `key` against the schema of that key and returns what
    /// to store: the document must decode and validate, and name the same object as the key;
    /// it is stored re-encoded (with its `format_version`). Keys outside the schema are
    /// refused unless `allow_unknown`, and then stored as given.
    pub fn normalize_input(&self, key: &str, bytes: &[u8], allow_unknown: bool) -> Result<Vec<u8>> {
        fn typed<T: Document>(
            key: &str,
            bytes: &[u8],
            name_of: impl Fn(&T) -> &str,
            field: &str,
            expected: &str,
        ) -> Result<Vec<u8>> {
            let doc: T = schema::decode_input(key, bytes)?;
            let named = name_of(&doc);
            if named != expected {
                return Err(CfgError::Invalid {
                    key: key.to_string(),
                    field: field.to_string(),
                    reason: format!("`{named}` does not match the key's `{expected}`"),
                });
            }
            Ok(schema::encode(&doc))
        }
        match self.keys.kind(key) {
            KeyKind::ClusterMeta => {
                typed::<ClusterMeta>(key, bytes, |m| &m.name, "name", self.keys.cluster())
            }
            KeyKind::IndexDef(name) => typed::<IndexDef>(key, bytes, |d| &d.name, "name", &name),
            KeyKind::NodeDef(uuid) => typed::<NodeDef>(key, bytes, |d| &d.uuid, "uuid", &uuid),
            KeyKind::Liveness(uuid) => {
                typed::<NodeLiveness>(key, bytes, |d| &d.uuid, "uuid", &uuid)
            }
            KeyKind::Plan(index) => typed::<IndexPlan>(key, bytes, |p| &p.index, "index", &index),
            KeyKind::CopyReport(node) => typed::<CopyReport>(key, bytes, |r| &r.node, "node", &node),
            KeyKind::PlannerLeader => {
                let doc: PlannerLeader = schema::decode_input(key, bytes)?;
                Ok(schema::encode(&doc))
            }
            KeyKind::Task(id) => typed::<TopologyTask>(key, bytes, |t| &t.id, "id", &id),
            KeyKind::TopologyLock => {
                let doc: TopologyLock = schema::decode_input(key, bytes)?;
                Ok(schema::encode(&doc))
            }
            KeyKind::Control => {
                let doc: schema::ClusterControl = schema::decode_input(key, bytes)?;
                Ok(schema::encode(&doc))
            }
            KeyKind::BackupRepo(name) => {
                typed::<schema::RepoDef>(key, bytes, |r| &r.name, "name", &name)
            }
            KeyKind::BackupJob(id) => typed::<schema::BackupJob>(key, bytes, |j| &j.id, "id", &id),
            KeyKind::Recovery(id) => typed::<schema::Recovery>(key, bytes, |r| &r.id, "id", &id),
            KeyKind::RecoveryLock => {
                let doc: schema::RecoveryLock = schema::decode_input(key, bytes)?;
                Ok(schema::encode(&doc))
            }
            KeyKind::RecoveryAuto => {
                let doc: schema::RecoveryAuto = schema::decode_input(key, bytes)?;
                Ok(schema::encode(&doc))
            }
            KeyKind::ApiKey(id) => typed::<tessera_auth::key::KeyRecord>(key, bytes, |k| &k.id, "id", &id),
            KeyKind::RepairRecord(_) => match serde_json::from_slice::<serde_json::Value>(bytes) {
                Ok(serde_json::Value::Object(_)) => Ok(bytes.to_vec()),
                _ => Err(CfgError::Invalid {
                    key: key.to_string(),
                    field: "(document)".into(),
                    reason: "a repair record must be a JSON object".into(),
                }),
            },
            KeyKind::Unknown | KeyKind::Foreign if allow_unknown => Ok(bytes.to_vec()),
            KeyKind::Unknown | KeyKind::Foreign => Err(CfgError::Invalid {
                key: key.to_string(),
                field: "(key)".into(),
                reason: format!(
                    "not a key of the schema (under {}: cluster, indexes/NAME, nodes/UUID, live/UUID, plans/INDEX, planner/leader, reports/NODE, tasks/ID, topology/lock, control, backup/repos/NAME, backup/jobs/ID, recoveries/ID, recovery/lock, recovery/auto, keys/ID); pass --raw to write it anyway",
                    self.keys.root()
                ),
            }),
        }
    }

    /// Everything of the cluster, with revisions, for operators.
    pub async fn dump(&self) -> Result<Dump> {
        let listing = self.store.list(self.keys.root()).await?;
        Ok(Dump {
            cluster: self.keys.cluster().to_string(),
            backend: self.store.backend().to_string(),
            revision: listing.revision,
            keys: listing
                .kvs
                .into_iter()
                .map(|kv| (kv.key.clone(), DumpEntry::from(kv)))
                .collect(),
        })
    }
}

/// The whole Cfg of a cluster, as `tessera cfg dump` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Dump {
    pub cluster: String,
    pub backend: String,
    /// The store revision of the read.
    pub revision: Revision,
    pub keys: BTreeMap<String, DumpEntry>,
}

/// One key of a [`Dump`]: its value as JSON when it is JSON, otherwise as text.
#[derive(Debug, Clone, Serialize)]
pub struct DumpEntry {
    pub mod_revision: Revision,
    pub create_revision: Revision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// Set instead of `value` when the stored bytes are not JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_text: Option<String>,
}

impl From<KeyValue> for DumpEntry {
    fn from(kv: KeyValue) -> Self {
        let json = serde_json::from_slice(&kv.value).ok();
        let text = json
            .is_none()
            .then(|| String::from_utf8_lossy(&kv.value).into_owned());
        DumpEntry {
            mod_revision: kv.mod_revision,
            create_revision: kv.create_revision,
            lease: kv.lease.map(|l| format!("{l:x}")),
            value: json,
            value_text: text,
        }
    }
}
