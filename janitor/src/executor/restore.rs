//! A restored index's PIndex starting here with no directory yet: its files are fetched from
//! the snapshot the definition names (checked blob by blob), so the feed goes on from the
//! snapshot's checkpoints instead of rebuilding from the source.

use std::path::Path;

use tessera_cfg::schema::RestoreFrom;
use tessera_cfg::Cfg;

/// Fetches the snapshot's PIndex covering `partitions` into `dir`, unless the source no longer
/// holds the history its checkpoints point into (the rule of
/// `tessera_backup::restore_plan`, applied to the source as it answers now). `Ok(None)` when
/// nothing was fetched: no saved PIndex with exactly these partitions, or the history is gone
/// (it is then built from the source); `Ok(Some(note))` says what was fetched.
pub async fn fetch(
    cfg: &Cfg,
    peers: &tessera_proto::peers::Peers,
    from: &RestoreFrom,
    source: (&str, &str),
    partitions: &[u32],
    dir: &Path,
) -> Result<Option<String>, String> {
    let repo_def = cfg
        .repo_def(&from.repo)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("restoring: no backup repository `{}`", from.repo))?
        .value;
    let repo = tessera_backup::Repository::open(&repo_def).map_err(|e| e.to_string())?;
    let manifest = repo
        .manifest(&from.snapshot)
        .await
        .map_err(|e| format!("restoring: {e}"))?;
    let Some(entry) = tessera_backup::fetch::entry_for(&manifest, &from.index, partitions) else {
        return Ok(None);
    };
    let (url, source_name) = source;
    let now = tessera_source::grpc::partition_infos(peers, url, source_name)
        .await
        .ok();
    let plan =
        tessera_backup::restore_plan::plan_pindexes(&[entry], &from.index, &from.index, &now);
    if plan[0].action == tessera_backup::restore_plan::Action::Rebuild {
        tracing::info!(
            pindex = entry.name,
            reason = plan[0].reason,
            "restored PIndex rebuilt from the source"
        );
        return Ok(None);
    }
    let bytes = tessera_backup::fetch::fetch_pindex(&repo, entry, dir)
        .await
        .map_err(|e| format!("restoring: {e}"))?;
    Ok(Some(format!(
        "snapshot {} of repository {} ({} from {}, {bytes} bytes)",
        from.snapshot, from.repo, entry.name, entry.read_from
    )))
}
