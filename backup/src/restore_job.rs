//! Driving a restore job: the saved sources imported into one source (idempotent, so a job
//! resumed by another node sends the same entries again harmlessly), then the restored
//! indexes defined; from there the nodes fetch their PIndexes (see the janitor).

use tessera_cfg::schema::{BackupJob, TaskStatus};
use tessera_cfg::{CfgError, Versioned};

use crate::job::{Driver, JobError};
use crate::repo::Repository;
use crate::source_copy::load_source;
use crate::BackupError;

impl Driver {
    /// Imports the sources, then defines the indexes (see [`Driver::run`]).
    pub(crate) async fn restore(&self, job: &mut Versioned<BackupJob>) -> Result<(), JobError> {
        let spec = job
            .value
            .restore
            .clone()
            .ok_or_else(|| BackupError::Config {
                field: "restore".into(),
                reason: "a restore job without what to restore".into(),
            })?;
        let repo_def = self
            .cfg
            .repo_def(&job.value.repo)
            .await?
            .ok_or_else(|| BackupError::NotFound(format!("repository {}", job.value.repo)))?
            .value;
        let repo = Repository::open(&repo_def, &self.local.policy)?;
        let manifest = repo.manifest(&spec.snapshot).await?;
        job.value.progress.pindexes_total = spec.sources.len() as u64;
        self.update(job).await?;
        for name in &spec.sources {
            let entry = manifest
                .sources
                .iter()
                .find(|s| &s.name == name)
                .ok_or_else(|| {
                    BackupError::NotFound(format!("source {name} in snapshot {}", spec.snapshot))
                })?;
            load_source(&repo, &self.peers, &spec.source_url, name, entry).await?;
            let p = &mut job.value.progress;
            p.pindexes_done += 1;
            p.files_done += entry.files.len() as u64;
            p.bytes_done += entry.files.iter().map(|f| f.size).sum::<u64>();
            self.update(job).await?;
        }
        for def in &spec.indexes {
            match self.cfg.put_index_def(def, 0).await {
                // Defined by an earlier run of this job (resumed).
                Ok(_) | Err(CfgError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        job.value.status = TaskStatus::Completed;
        self.update(job).await
    }
}
