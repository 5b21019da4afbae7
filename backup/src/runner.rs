//! The job runner every node runs: drives the running jobs it owns, and takes over running
//! jobs whose owner is no longer live (compare-and-set on the job record, so one node wins).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_cfg::schema::TaskStatus;
use tokio::sync::watch;

use crate::job::Driver;
use crate::unix_ms;

/// How often the runner looks at the jobs.
const POLL: Duration = Duration::from_millis(500);

/// Runs until `shutdown` turns true.
pub async fn run(driver: Driver, mut shutdown: watch::Receiver<bool>) {
    let driving: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    loop {
        if let Err(e) = round(&driver, &driving).await {
            tracing::debug!(error = %e, "backup runner round failed; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

async fn round(
    driver: &Driver,
    driving: &Arc<Mutex<BTreeSet<String>>>,
) -> Result<(), tessera_cfg::CfgError> {
    let me = driver.local.node.clone();
    let running: Vec<_> = (driver.cfg.backup_jobs().await?.items.into_iter())
        .filter(|j| j.value.status == TaskStatus::Running)
        .collect();
    // Liveness matters only for running jobs of other owners (most rounds have none).
    let live: BTreeSet<String> = if running.iter().any(|j| j.value.owner != me) {
        let live = driver.cfg.live_nodes().await?.items.into_iter();
        live.map(|l| l.value.uuid).collect()
    } else {
        BTreeSet::new()
    };
    for mut job in running {
        if job.value.owner != me {
            if live.contains(&job.value.owner) {
                continue;
            }
            // Its owner is gone: take it over (one node wins the compare-and-set).
            tracing::info!(
                job = job.value.id,
                from = job.value.owner,
                "taking over a backup job"
            );
            job.value.owner = me.clone();
            job.value.updated_ms = unix_ms();
            match driver.cfg.put_backup_job(&job.value, job.revision).await {
                Ok(revision) => job.revision = revision,
                Err(_) => continue,
            }
        }
        let id = job.value.id.clone();
        let fresh = driving
            .lock()
            .map(|mut d| d.insert(id.clone()))
            .unwrap_or(false);
        if !fresh {
            continue;
        }
        let (driver, driving) = (driver.clone(), driving.clone());
        tokio::spawn(async move {
            driver.run(job).await;
            if let Ok(mut d) = driving.lock() {
                d.remove(&id);
            }
        });
    }
    Ok(())
}
