//! Driving one backup job: take the repository's lock, choose a copy of every PIndex, have
//! the copy's node save it (this node directly, others over `tessera.v1.Backup`), record each
//! saved PIndex in the job's staging area, and write the manifest last. A job resumed by
//! another node (its owner died) or after a restart skips what is staged; a node that dies
//! mid-save makes the next copy be asked.

use std::collections::{BTreeMap, BTreeSet};

use tessera_cfg::schema::{BackupJob, JobKind, JobProgress, RepoDef, TaskStatus};
use tessera_cfg::{Cfg, CfgError, Versioned};
use tessera_proto::peers::Peers;
use tessera_proto::v1::SavePIndexRequest;

use crate::grpc::LocalSaver;
use crate::manifest::{FileEntry, Manifest, PIndexEntry, SourceEntry, MANIFEST_FORMAT};

/// Staged names of saved sources start with this (PIndex names cannot).
const SOURCE_STAGED: &str = "source.";
use crate::repo::Repository;
use crate::save::Sent;
use crate::select::{choose_copies, matches_any, PIndexSource};
use crate::{unix_ms, BackupError};

/// How long one PIndex's save may take before the next copy is asked.
const SAVE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Why a job stopped without completing.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job record changed under the driver (cancelled, taken over): stop quietly.
    #[error("the job record changed under its driver")]
    Superseded,
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Cfg(#[from] CfgError),
}

/// Drives backup jobs on one node.
#[derive(Clone)]
pub struct Driver {
    pub cfg: Cfg,
    pub peers: Peers,
    pub local: LocalSaver,
    /// `name/uuid` of the cluster, written in locks and manifests.
    pub cluster: String,
    /// This node's own source (where definitions without a source of record read).
    pub default_source_url: String,
}

impl Driver {
    /// Runs `job` (a backup or a restore) to its end and records the outcome in its record.
    pub async fn run(&self, mut job: Versioned<BackupJob>) {
        let id = job.value.id.clone();
        let kind = job.value.kind;
        let result = match kind {
            JobKind::Backup => self.backup(&mut job).await,
            JobKind::Restore => self.restore(&mut job).await,
        };
        match result {
            Ok(()) => tracing::info!(job = id, ?kind, "job completed"),
            Err(JobError::Superseded) => {
                tracing::info!(job = id, ?kind, "job taken over or ended elsewhere")
            }
            Err(e) => {
                tracing::warn!(job = id, ?kind, error = %e, "job failed");
                job.value.status = TaskStatus::Failed;
                job.value.error = Some(e.to_string());
                let _ = self.update(&mut job).await;
            }
        }
    }

    pub(crate) async fn update(&self, job: &mut Versioned<BackupJob>) -> Result<(), JobError> {
        job.value.updated_ms = unix_ms();
        match self.cfg.put_backup_job(&job.value, job.revision).await {
            Ok(revision) => {
                job.revision = revision;
                Ok(())
            }
            Err(CfgError::CasMismatch { .. }) | Err(CfgError::NotFound { .. }) => {
                Err(JobError::Superseded)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn backup(&self, job: &mut Versioned<BackupJob>) -> Result<(), JobError> {
        let id = job.value.id.clone();
        let repo_def = self
            .cfg
            .repo_def(&job.value.repo)
            .await?
            .ok_or_else(|| BackupError::NotFound(format!("repository {}", job.value.repo)))?
            .value;
        let repo = Repository::open(&repo_def, &self.local.policy)?;
        let mut lock = repo.lock(&self.cluster, &format!("backup {id}")).await?;
        let result = self.save_all(job, &repo, &repo_def, &mut lock).await;
        match result {
            // Another driver goes on under the same lock: leave it.
            Err(JobError::Superseded) => Err(JobError::Superseded),
            other => {
                if let Err(e) = lock.release().await {
                    tracing::warn!(job = id, error = %e, "releasing the repository lock failed");
                }
                other
            }
        }
    }

    async fn save_all(
        &self,
        job: &mut Versioned<BackupJob>,
        repo: &Repository,
        repo_def: &RepoDef,
        lock: &mut crate::lock::RepoLock,
    ) -> Result<(), JobError> {
        let id = job.value.id.clone();
        let snapshot = self.cfg.snapshot().await?;
        let defs: BTreeMap<String, serde_json::Value> = snapshot
            .index_defs
            .iter()
            .filter(|d| matches_any(&d.value.name, &job.value.indexes))
            .map(|d| {
                let json = serde_json::to_value(&d.value)
                    .map_err(|e| BackupError::Encode(e.to_string()))?;
                Ok((d.value.name.clone(), json))
            })
            .collect::<Result<_, BackupError>>()?;
        if defs.is_empty() {
            return Err(BackupError::Config {
                field: "indexes".into(),
                reason: format!("no index matches {:?}", job.value.indexes),
            }
            .into());
        }
        let plans: Vec<_> = snapshot
            .plans
            .iter()
            .filter(|p| defs.contains_key(&p.value.index))
            .map(|p| p.value.clone())
            .collect();
        let reports = snapshot
            .reports
            .iter()
            .map(|r| (r.value.node.clone(), r.value.clone()))
            .collect();
        let live: BTreeSet<String> = snapshot
            .liveness
            .iter()
            .map(|l| l.value.uuid.clone())
            .collect();
        let addresses: BTreeMap<String, String> = snapshot
            .liveness
            .iter()
            .map(|l| (l.value.uuid.clone(), l.value.host_port.clone()))
            .collect();
        let chosen = choose_copies(&plans, &reports, &live);
        if let Some(missing) = defs.keys().find(|i| !plans.iter().any(|p| &p.index == *i)) {
            return Err(BackupError::Config {
                field: "indexes".into(),
                reason: format!("index {missing} has no plan yet"),
            }
            .into());
        }

        let mut done: BTreeMap<String, PIndexEntry> = BTreeMap::new();
        let mut sources_done: BTreeMap<String, SourceEntry> = BTreeMap::new();
        for (name, bytes) in repo.staged(&id).await? {
            if let Some(source) = name.strip_prefix(SOURCE_STAGED) {
                if let Ok(entry) = serde_json::from_slice::<SourceEntry>(&bytes) {
                    sources_done.insert(source.to_string(), entry);
                }
            } else if let Ok(entry) = serde_json::from_slice::<PIndexEntry>(&bytes) {
                done.insert(name, entry);
            }
        }
        let source_urls = self.sources_of(&snapshot, &job.value.indexes).await?;
        if job.value.source_seqs.is_empty() {
            job.value.source_seqs = source_seqs(&self.peers, &source_urls).await;
        }
        let source_of: BTreeMap<&str, &str> = snapshot
            .index_defs
            .iter()
            .map(|d| (d.value.name.as_str(), d.value.source.name.as_str()))
            .collect();
        let p = &mut job.value.progress;
        p.pindexes_total = chosen.len() as u64;
        p.pindexes_done = done.len() as u64;
        self.update(job).await?;

        for source in &chosen {
            if done.contains_key(&source.pindex) {
                continue;
            }
            let at_least = source_of
                .get(source.index.as_str())
                .and_then(|name| job.value.source_seqs.get(*name))
                .cloned()
                .unwrap_or_default();
            let (entry, sent) = self
                .save_one(
                    &id,
                    repo_def,
                    source,
                    &addresses,
                    job.value.rate_limit_bytes,
                    &at_least,
                )
                .await?;
            let bytes =
                serde_json::to_vec(&entry).map_err(|e| BackupError::Encode(e.to_string()))?;
            repo.put_staged(&id, &entry.name, bytes).await?;
            lock.renew().await?;
            job.value.progress.pindexes_done += 1;
            record_saved(&mut job.value.progress, &entry.files, sent);
            done.insert(entry.name.clone(), entry);
            self.update(job).await?;
        }

        // After the PIndexes: every checkpoint saved is then within the saved logs.
        let mut sources = Vec::new();
        for (url, name) in source_urls {
            if let Some(entry) = sources_done.remove(&name) {
                sources.push(entry);
                continue;
            }
            let mut pace = crate::save::Pace::new(job.value.rate_limit_bytes);
            let (entry, sent) =
                crate::source_copy::save_source(repo, &self.peers, &url, &name, &mut pace).await?;
            let bytes =
                serde_json::to_vec(&entry).map_err(|e| BackupError::Encode(e.to_string()))?;
            repo.put_staged(&id, &format!("{SOURCE_STAGED}{name}"), bytes)
                .await?;
            lock.renew().await?;
            record_saved(&mut job.value.progress, &entry.files, sent);
            self.update(job).await?;
            sources.push(entry);
        }
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            id: id.clone(),
            cluster: self.cluster.clone(),
            created_ms: job.value.created_ms,
            indexes: defs,
            pindexes: chosen
                .iter()
                .filter_map(|s| done.remove(&s.pindex))
                .collect(),
            sources,
            encoding: vec!["zstd".into()],
        };
        repo.put_manifest(&manifest).await?;
        repo.clear_staged(&id).await?;
        job.value.status = TaskStatus::Completed;
        self.update(job).await
    }

    /// The reference sources the selected indexes read: (url, source name), once each. Two
    /// sources of one name at different places cannot both be saved.
    async fn sources_of(
        &self,
        snapshot: &tessera_cfg::snapshot::ClusterSnapshot,
        globs: &[String],
    ) -> Result<Vec<(String, String)>, JobError> {
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        for d in snapshot
            .index_defs
            .iter()
            .filter(|d| matches_any(&d.value.name, globs))
        {
            if d.value.source.source_type != "tessera" {
                continue;
            }
            let url = self
                .cfg
                .source_url(&d.value.source, &self.default_source_url)
                .await
                .map_err(BackupError::Storage)?;
            match out.get(&d.value.source.name) {
                Some(other) if *other != url => {
                    return Err(BackupError::Config {
                        field: "indexes".into(),
                        reason: format!(
                            "two sources named `{}` ({other} and {url}): back up their indexes separately",
                            d.value.source.name
                        ),
                    }
                    .into())
                }
                _ => {
                    out.insert(d.value.source.name.clone(), url);
                }
            }
        }
        Ok(out.into_iter().map(|(name, url)| (url, name)).collect())
    }

    /// Saves one PIndex from the first of its copies that can, once that copy shows
    /// `at_least` (the source's seqs when the job began). When every copy that answered was
    /// only behind, the first of them is saved with what it has (a warning says so): a
    /// snapshot a little older than asked is better than none.
    async fn save_one(
        &self,
        job: &str,
        repo: &RepoDef,
        source: &PIndexSource,
        addresses: &BTreeMap<String, String>,
        rate: u64,
        at_least: &BTreeMap<u32, u64>,
    ) -> Result<(PIndexEntry, Sent), JobError> {
        let mut errors = Vec::new();
        let mut behind = Vec::new();
        for node in &source.nodes {
            match self
                .save_copy(job, repo, source, node, addresses, rate, at_least)
                .await
            {
                Ok(saved) => return Ok(saved),
                Err(CopyFailed { reason, behind: b }) => {
                    tracing::warn!(
                        job,
                        pindex = source.pindex,
                        node,
                        error = reason,
                        "saving a copy failed; asking the next"
                    );
                    if b {
                        behind.push(node);
                    }
                    errors.push(format!("{node}: {reason}"));
                }
            }
        }
        if let Some(node) = behind.first() {
            tracing::warn!(
                job,
                pindex = source.pindex,
                node = *node,
                "no copy reached the sources' seqs at the backup's start; saving what one has"
            );
            let none = BTreeMap::new();
            match self
                .save_copy(job, repo, source, node, addresses, rate, &none)
                .await
            {
                Ok(saved) => return Ok(saved),
                Err(e) => errors.push(format!("{node}: {}", e.reason)),
            }
        }
        let why = if errors.is_empty() {
            "no caught-up readable copy on a live node".to_string()
        } else {
            errors.join("; ")
        };
        Err(BackupError::Storage(format!(
            "PIndex {} could not be saved: {why}",
            source.pindex
        ))
        .into())
    }

    /// Has `node` save its copy of `source`.
    #[allow(clippy::too_many_arguments)]
    async fn save_copy(
        &self,
        job: &str,
        repo: &RepoDef,
        source: &PIndexSource,
        node: &str,
        addresses: &BTreeMap<String, String>,
        rate: u64,
        at_least: &BTreeMap<u32, u64>,
    ) -> Result<(PIndexEntry, Sent), CopyFailed> {
        if node == self.local.node {
            self.local
                .save(job, repo, &source.index, &source.pindex, rate, at_least)
                .await
                .map_err(|e| CopyFailed {
                    behind: matches!(e, BackupError::Behind { .. }),
                    reason: e.to_string(),
                })
        } else {
            self.save_remote(job, repo, source, addresses.get(node), rate, at_least)
                .await
        }
    }

    async fn save_remote(
        &self,
        job: &str,
        repo: &RepoDef,
        source: &PIndexSource,
        address: Option<&String>,
        rate: u64,
        at_least: &BTreeMap<u32, u64>,
    ) -> Result<(PIndexEntry, Sent), CopyFailed> {
        let address = address.ok_or_else(|| CopyFailed::from("the node has no address"))?;
        let mut client = self.peers.backup(address).map_err(CopyFailed::from)?;
        let mut request = tonic::Request::new(SavePIndexRequest {
            job: job.to_string(),
            repo_json: serde_json::to_string(repo).map_err(CopyFailed::from)?,
            index: source.index.clone(),
            pindex: source.pindex.clone(),
            rate_limit_bytes: rate,
            at_least: at_least.iter().map(|(p, s)| (*p, *s)).collect(),
        });
        request.set_timeout(SAVE_DEADLINE);
        let answer = client
            .save_p_index(request)
            .await
            .map_err(|s| CopyFailed {
                behind: s.code() == tonic::Code::OutOfRange,
                reason: s.message().to_string(),
            })?
            .into_inner();
        let entry: PIndexEntry =
            serde_json::from_str(&answer.entry_json).map_err(CopyFailed::from)?;
        Ok((
            entry,
            Sent {
                bytes: answer.bytes_uploaded,
                files: answer.files_uploaded,
            },
        ))
    }
}

/// Why one copy was not saved; `behind` when only because it had not reached the seqs the
/// job began at.
struct CopyFailed {
    reason: String,
    behind: bool,
}

impl<E: std::fmt::Display> From<E> for CopyFailed {
    fn from(e: E) -> Self {
        CopyFailed {
            reason: e.to_string(),
            behind: false,
        }
    }
}

/// The high seq of every partition of each source (by name), read when a backup begins. A
/// source that does not answer is left out (its PIndexes are saved with what they have; the
/// source's own save then says what is wrong).
async fn source_seqs(
    peers: &Peers,
    sources: &[(String, String)],
) -> BTreeMap<String, BTreeMap<u32, u64>> {
    let mut out = BTreeMap::new();
    for (url, name) in sources {
        match tessera_sources::reference::partition_infos(peers, url, name).await {
            Ok(infos) => {
                out.insert(
                    name.clone(),
                    infos.into_iter().map(|(p, (_, seq))| (p, seq)).collect(),
                );
            }
            Err(e) => {
                tracing::warn!(
                    source = name,
                    url,
                    error = e,
                    "could not read the source's seqs"
                )
            }
        }
    }
    out
}

/// Counts `files` saved (and what of them was sent) in a job's progress. Files are counted
/// as they are saved, so the totals grow with what is done.
fn record_saved(p: &mut JobProgress, files: &[FileEntry], sent: Sent) {
    let bytes: u64 = files.iter().map(|f| f.size).sum();
    p.files_done += files.len() as u64;
    p.files_total += files.len() as u64;
    p.bytes_done += bytes;
    p.bytes_total += bytes;
    p.bytes_uploaded += sent.bytes;
    p.files_uploaded += sent.files;
}
