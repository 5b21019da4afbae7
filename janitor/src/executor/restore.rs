//! A restored index's PIndex starting here with no directory yet: its files are fetched from
//! the snapshot the definition names (checked blob by blob), so the feed goes on from the
//! snapshot's checkpoints instead of rebuilding from the source.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use tessera_cfg::schema::RestoreFrom;
use tessera_cfg::Cfg;

/// Manifests read, by (repository name, snapshot id).
type Manifests = HashMap<(String, String), Arc<tessera_backup::Manifest>>;

/// Snapshot `id` of `repo`, read once per process: a manifest never changes once written,
/// and every PIndex of a restored index starting here needs it.
async fn manifest(
    repo: &tessera_backup::Repository,
    repo_name: &str,
    id: &str,
) -> Result<Arc<tessera_backup::Manifest>, String> {
    static READ: OnceLock<Mutex<Manifests>> = OnceLock::new();
    let read = READ.get_or_init(Mutex::default);
    let key = (repo_name.to_string(), id.to_string());
    if let Some(m) = read.lock().ok().and_then(|r| r.get(&key).cloned()) {
        return Ok(m);
    }
    let m = Arc::new(
        repo.manifest(id)
            .await
            .map_err(|e| format!("restoring: {e}"))?,
    );
    if let Ok(mut read) = read.lock() {
        if read.len() >= 8 {
            read.clear();
        }
        read.insert(key, m.clone());
    }
    Ok(m)
}

/// The PIndex a fetch makes: its name, partitions and type, and the directory it lands in.
#[derive(Clone, Copy)]
pub struct FetchInto<'a> {
    pub pindex: &'a str,
    pub partitions: &'a [u32],
    pub index_type: &'a str,
    pub dir: &'a Path,
}

/// Fetches into `dir` the restored PIndex covering `partitions` from the snapshot: the saved
/// PIndex with the same partitions, or (for another partitioning) the documents of these
/// partitions regrouped out of the saved PIndexes overlapping them — unless the source no
/// longer holds the history their checkpoints point into (the rule of
/// `tessera_backup::restore_plan`, applied to the source as it answers now). `Ok(None)` when
/// nothing was fetched: the snapshot does not hold these partitions, or the history is gone
/// (it is then built from the source); `Ok(Some(note))` says what was fetched. The repository
/// is opened under `repos`, this node's rules for repositories.
pub async fn fetch(
    cfg: &Cfg,
    repos: &tessera_backup::RepoPolicy,
    from: &RestoreFrom,
    source: &dyn tessera_sources::SourceType,
    into: &FetchInto<'_>,
    done: &std::sync::atomic::AtomicU64,
) -> Result<Option<String>, String> {
    let FetchInto {
        pindex: name,
        partitions,
        index_type,
        dir,
    } = *into;
    use tessera_backup::restore_plan::{self, Action, Target};
    let repo_def = cfg
        .repo_def(&from.repo)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("restoring: no backup repository `{}`", from.repo))?
        .value;
    // Checked here again: the repository's endpoint, files and location by this node's rules.
    let repo = tessera_backup::Repository::open(&repo_def, repos)
        .map_err(|e| format!("restoring: {e}"))?;
    let manifest = manifest(&repo, &from.repo, &from.snapshot).await?;
    let saved: Vec<_> = manifest.pindexes_of(&from.index).collect();
    let regroupable = index_type == "fulltext";
    if let Err(reason) = restore_plan::origin(&saved, partitions, regroupable) {
        tracing::info!(
            pindex = name,
            reason,
            "restored PIndex built from the source"
        );
        return Ok(None);
    }
    let now = tessera_sources::uuids_and_highs(source).await.ok();
    let target = Target {
        name: name.to_string(),
        partitions: partitions.to_vec(),
    };
    let decision = restore_plan::decide(&saved, &target, regroupable, &now);
    let fetched = match decision.restore.action {
        Action::Rebuild => {
            tracing::info!(
                pindex = name,
                reason = decision.restore.reason,
                "restored PIndex rebuilt from the source"
            );
            return Ok(None);
        }
        Action::Download => {
            tessera_backup::fetch::fetch_pindex(&repo, decision.from[0], dir, done).await
        }
        Action::Regroup => {
            tessera_backup::fetch::fetch_regrouped(&repo, &decision.from, partitions, dir, done)
                .await
        }
    };
    let bytes = fetched.map_err(|e| format!("restoring: {e}"))?;
    let how = match decision.restore.action {
        Action::Regroup => "regrouped from",
        _ => "from",
    };
    Ok(Some(format!(
        "snapshot {} of repository {} ({how} {}, {bytes} bytes)",
        from.snapshot,
        from.repo,
        decision.restore.from.join(", ")
    )))
}
