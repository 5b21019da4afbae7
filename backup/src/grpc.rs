//! `tessera.v1.Backup` on a node: saves a PIndex this node hosts into a repository, for the
//! node driving a backup job.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tessera_cfg::schema::{self, RepoDef};
use tessera_cfg::Cfg;
use tessera_proto::v1::backup_server::{Backup, BackupServer};
use tessera_proto::v1::{SavePIndexRequest, SavePIndexResponse};
use tonic::{Request, Response, Status};

use crate::repo::Repository;
use crate::save::{save_pindex, PIndexToSave, Pace, Sent};
use crate::BackupError;

/// Run before a PIndex's files are set apart, with the PIndex's name and the seqs of its
/// partitions it must show: makes it commit what it has applied and wait for those seqs (the
/// node wires the janitor's). `Err` says how far behind it still is when time runs out.
pub type BeforeSave = std::sync::Arc<
    dyn Fn(String, BTreeMap<u32, u64>) -> futures::future::BoxFuture<'static, Result<(), String>>
        + Send
        + Sync,
>;

/// What the service needs of its node.
#[derive(Clone)]
pub struct LocalSaver {
    pub cfg: Cfg,
    pub node: String,
    /// Where the node's PIndex directories are.
    pub pindex_dir: PathBuf,
    /// Where file sets are set apart (on the same file system as `pindex_dir`, for links).
    pub staging_dir: PathBuf,
    pub before_save: Option<BeforeSave>,
    /// What repositories may make this node dial, read and write: a repository is checked
    /// here again, whichever node accepted its definition.
    pub policy: std::sync::Arc<crate::policy::RepoPolicy>,
}

impl LocalSaver {
    /// Saves `pindex` of `index` (hosted here) into `repo`, once it shows at least the seqs
    /// of `at_least` that are of its partitions ([`BackupError::Behind`] if it does not in
    /// time; empty: what it has applied).
    pub async fn save(
        &self,
        job: &str,
        repo: &RepoDef,
        index: &str,
        pindex: &str,
        rate_limit_bytes: u64,
        at_least: &BTreeMap<u32, u64>,
    ) -> Result<(crate::PIndexEntry, Sent), BackupError> {
        let def = self
            .cfg
            .index_def(index)
            .await
            .map_err(BackupError::storage)?
            .ok_or_else(|| BackupError::NotFound(format!("index {index}")))?;
        let plan = self
            .cfg
            .plan(index)
            .await
            .map_err(BackupError::storage)?
            .ok_or_else(|| BackupError::NotFound(format!("the plan of index {index}")))?;
        let partitions = plan
            .value
            .pindexes
            .iter()
            .find(|p| p.name == pindex)
            .map(|p| p.source_partitions.clone())
            .ok_or_else(|| BackupError::NotFound(format!("PIndex {pindex} in the plan")))?;
        let wanted: BTreeMap<u32, u64> = partitions
            .iter()
            .filter_map(|p| at_least.get(p).map(|seq| (*p, *seq)))
            .collect();
        let what = PIndexToSave {
            index: index.to_string(),
            pindex: pindex.to_string(),
            kind: def.value.index_type.clone(),
            source_partitions: partitions,
            node: self.node.clone(),
        };
        let repository = Repository::open(repo, &self.policy)?;
        if let Some(before) = &self.before_save {
            before(pindex.to_string(), wanted)
                .await
                .map_err(|behind| BackupError::Behind {
                    pindex: pindex.to_string(),
                    behind,
                })?;
        }
        let staging = self.staging_dir.join(job).join(pindex);
        let mut pace = Pace::new(rate_limit_bytes);
        save_pindex(
            &repository,
            &what,
            &self.pindex_dir.join(pindex),
            &staging,
            &mut pace,
        )
        .await
    }
}

fn status(e: BackupError) -> Status {
    match e {
        BackupError::NotFound(what) => Status::not_found(format!("{what} not found")),
        BackupError::Config { .. } | BackupError::ReadOnly => {
            Status::invalid_argument(e.to_string())
        }
        BackupError::Locked { .. } => Status::failed_precondition(e.to_string()),
        BackupError::Behind { .. } => Status::out_of_range(e.to_string()),
        e => Status::unavailable(e.to_string()),
    }
}

#[tonic::async_trait]
impl Backup for LocalSaver {
    async fn save_p_index(
        &self,
        request: Request<SavePIndexRequest>,
    ) -> Result<Response<SavePIndexResponse>, Status> {
        let r = request.into_inner();
        let repo: RepoDef = schema::decode_input("repo_json", r.repo_json.as_bytes())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (entry, sent) = self
            .save(
                &r.job,
                &repo,
                &r.index,
                &r.pindex,
                r.rate_limit_bytes,
                &r.at_least.into_iter().collect(),
            )
            .await
            .map_err(status)?;
        let entry_json =
            serde_json::to_string(&entry).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(SavePIndexResponse {
            entry_json,
            bytes_uploaded: sent.bytes,
            files_uploaded: sent.files,
        }))
    }
}

/// The service as an axum router without a fallback, to merge with the node's others.
pub fn router(service: LocalSaver) -> axum::Router {
    use tonic::server::NamedService;
    let path = format!("/{}/{{*method}}", BackupServer::<LocalSaver>::NAME);
    axum::Router::new().route_service(&path, BackupServer::new(service))
}
