//! Typed access to the backup documents: repositories and jobs.

use crate::cfg::{Cfg, Versioned, VersionedList};
use crate::error::Result;
use crate::schema::{BackupJob, RepoDef};
use crate::Revision;

impl Cfg {
    pub async fn repo_def(&self, name: &str) -> Result<Option<Versioned<RepoDef>>> {
        self.get_doc(&self.keys().backup_repo(name)).await
    }
    pub async fn repo_defs(&self) -> Result<VersionedList<RepoDef>> {
        self.list_docs(&self.keys().backup_repos()).await
    }
    pub async fn put_repo_def(&self, def: &RepoDef, cas: Revision) -> Result<Revision> {
        self.put_doc(&self.keys().backup_repo(&def.name), def, cas, None)
            .await
    }
    pub async fn delete_repo_def(&self, name: &str, cas: Revision) -> Result<Revision> {
        self.store()
            .delete(&self.keys().backup_repo(name), cas)
            .await
    }

    pub async fn backup_job(&self, id: &str) -> Result<Option<Versioned<BackupJob>>> {
        self.get_doc(&self.keys().backup_job(id)).await
    }
    pub async fn backup_jobs(&self) -> Result<VersionedList<BackupJob>> {
        self.list_docs(&self.keys().backup_jobs()).await
    }
    pub async fn put_backup_job(&self, job: &BackupJob, cas: Revision) -> Result<Revision> {
        self.put_doc(&self.keys().backup_job(&job.id), job, cas, None)
            .await
    }
}
