//! This node's part in recoveries of missing PIndexes (`tessera_recovery::machine` holds the
//! rules): for each PIndex a recovery places here, fetch its files from the snapshot or the
//! other cluster (`tessera_copy`) into a fresh directory (whole or not at all), open it — its feed then streams only what the source
//! has beyond the fetched checkpoints — and report each step in the recovery document; once
//! the copy has caught up, report it recovered (the planner makes it readable when the
//! operator commits). For an aborted recovery, remove what was fetched and not committed, so
//! the copy rebuilds from the source as it would have without the recovery.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use tessera_cfg::schema::{
    IndexDef, PIndexRecoveryState as State, RecoverFrom, Recovery, RestoreFrom,
};
use tessera_cfg::CfgError;
use tessera_recovery::machine::{self, Step, Work};

use super::{restore, Executor};
use crate::diff::Wanted;

/// How often a step is written again after losing a race with another writer of the recovery.
const ATTEMPTS: usize = 10;

/// How often the bytes fetched so far are written into the recovery during a fetch.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Executor {
    /// Does this node's work for every recovery (a no-op when none names it).
    pub(super) async fn recover(
        &mut self,
        wanted: &BTreeMap<&str, &Wanted>,
        defs: &BTreeMap<String, IndexDef>,
    ) -> Result<(), CfgError> {
        // Listed again only after a recovery document changed (the round runs every 500 ms
        // while a copy backfills; ended recoveries are never listed into the cache).
        if self.recoveries.is_none() {
            let listed = self.cfg.recoveries().await?;
            self.recoveries = Some(
                listed
                    .items
                    .into_iter()
                    .map(|r| r.value)
                    .filter(machine::asks_janitors)
                    .collect(),
            );
        }
        for r in self.recoveries.clone().unwrap_or_default() {
            let placed = |p: &str| wanted.contains_key(p);
            let mut fetches = Vec::new();
            for work in machine::work_for(&r, &self.node, &self.incarnation, placed) {
                match work {
                    Work::Fetch { pindex } => {
                        let (Some(w), Some(def)) = (
                            wanted.get(pindex.as_str()),
                            defs.get(&r.pindexes[&pindex].index),
                        ) else {
                            continue; // not placed here (any more): nothing to do
                        };
                        fetches.push(((*w).clone(), def.clone()));
                    }
                    Work::Rebuild { pindex } => {
                        if self.hosted.contains_key(&pindex) {
                            let s = Step {
                                rebuild: true,
                                ..Step::default()
                            };
                            self.record(&r.id, &pindex, State::CatchingUp, s).await?;
                        }
                    }
                    Work::Watch { pindex } => {
                        let Some(hosted) = self.hosted.get(&pindex) else {
                            continue;
                        };
                        let to = if hosted.caught_up {
                            State::Recovered
                        } else {
                            State::CatchingUp
                        };
                        if r.pindexes[&pindex].state != to {
                            self.record(&r.id, &pindex, to, Step::default()).await?;
                        }
                    }
                    Work::Undo { pindex } => {
                        self.stop(&pindex, true).await;
                        if let Some(w) = wanted.get(pindex.as_str()) {
                            self.start((*w).clone(), defs).await;
                        }
                        tracing::info!(
                            pindex,
                            recovery = r.id,
                            "aborted recovery undone; the copy rebuilds from the source"
                        );
                        self.write(&r.id, |r, now| machine::undone(r, &pindex, now))
                            .await?;
                    }
                }
            }
            if !fetches.is_empty() {
                self.fetch_all(&r, fetches, defs).await?;
            }
        }
        Ok(())
    }

    /// Fetches the files of the PIndexes `todo` from where the recovery reads (a snapshot or
    /// another cluster), each into a fresh directory and all at once (the downloads are what
    /// takes time), then opens them one by one, recording each step.
    async fn fetch_all(
        &mut self,
        r: &Recovery,
        todo: Vec<(Wanted, IndexDef)>,
        defs: &BTreeMap<String, IndexDef>,
    ) -> Result<(), CfgError> {
        if r.from == RecoverFrom::Source {
            return Ok(());
        }
        // Claim each (a node restarted since, or another node, may have it), clear the copy
        // the plan started empty, and resolve its source.
        let mut ready = Vec::new();
        for (w, def) in todo {
            let pindex = w.pindex.clone();
            if !self
                .record(&r.id, &pindex, State::Fetching, Step::default())
                .await?
            {
                continue; // the recovery changed meanwhile; the next round looks again
            }
            tracing::info!(
                pindex,
                recovery = r.id,
                from = r.from.describe(),
                "recovering: fetching"
            );
            self.stop(&pindex, true).await;
            match self.source(&def).await {
                Ok(source) => ready.push((w, def, source)),
                Err(e) => self.give_up(r, &pindex, e).await?,
            }
        }
        let counters: Vec<AtomicU64> = ready.iter().map(|_| AtomicU64::new(0)).collect();
        let fetched = {
            let (cfg, peers, repos) = (&self.cfg, &self.options.peers, &*self.options.repos);
            let pace = &*self.options.copy_pace;
            let pindex_dir = &self.options.pindex_dir;
            let downloads = ready.iter().zip(&counters).map(|((w, def, source), done)| {
                let dir = pindex_dir.join(&w.pindex);
                async move {
                    let target = (w.pindex.as_str(), w.partitions.as_slice());
                    match &r.from {
                        RecoverFrom::Snapshot { repo, id } => {
                            let from = RestoreFrom {
                                repo: repo.clone(),
                                snapshot: id.clone(),
                                index: def.name.clone(),
                            };
                            let into = restore::FetchInto {
                                pindex: target.0,
                                partitions: target.1,
                                index_type: &def.index_type,
                                dir: &dir,
                            };
                            let fetched =
                                restore::fetch(cfg, repos, &from, source.as_ref(), &into, done).await?;
                            Ok(fetched.map_or_else(
                                || Fetched::Rebuild("the snapshot's data cannot be used any more (the source no longer holds its history); rebuilt from the source".into()),
                                Fetched::Data,
                            ))
                        }
                        RecoverFrom::Cluster(contact) => {
                            let into = restore::FetchInto {
                            pindex: target.0,
                            partitions: target.1,
                            index_type: &def.index_type,
                            dir: &dir,
                        };
                        let meter = tessera_copy::fetch::Meter { done, pace };
                        from_cluster(peers, contact, def, source.as_ref(), &into, meter).await
                        }
                        RecoverFrom::Source => Ok(Fetched::Rebuild("recovered from the source".into())),
                    }
                }
            });
            let names: Vec<&str> = ready.iter().map(|(w, _, _)| w.pindex.as_str()).collect();
            let who = (self.node.as_str(), self.incarnation.as_str());
            let all = futures::future::join_all(downloads);
            with_progress(cfg, &r.id, who, &names, &counters, all).await
        };
        self.recoveries = None;
        for ((w, _, _), fetched) in ready.into_iter().zip(fetched) {
            self.open_fetched(r, w, fetched, defs).await?;
        }
        Ok(())
    }

    /// Opens a PIndex whose fetch ended with `fetched`, recording `verifying`, then
    /// `catching_up` (or `failed`).
    async fn open_fetched(
        &mut self,
        r: &Recovery,
        w: Wanted,
        fetched: Result<Fetched, String>,
        defs: &BTreeMap<String, IndexDef>,
    ) -> Result<(), CfgError> {
        let pindex = w.pindex.clone();
        let total = r.pindexes.get(&pindex).map_or(0, |p| p.bytes_total);
        let step = match fetched {
            Ok(Fetched::Data(note)) => {
                if let Ok(mut board) = self.board.lock() {
                    board.entry(pindex.clone()).or_default().restored_from = Some(note);
                }
                Step {
                    bytes_done: Some(total),
                    ..Step::default()
                }
            }
            Ok(Fetched::Rebuild(why)) => Step {
                rebuild: true,
                reason: Some(why),
                ..Step::default()
            },
            Err(e) => return self.give_up(r, &pindex, e).await,
        };
        self.record(&r.id, &pindex, State::Verifying, step).await?;
        // Opening checks every file's checksum; a damaged one is moved aside and rebuilt.
        self.start(w, defs).await;
        if !self.failures.contains_key(&pindex) {
            self.record(&r.id, &pindex, State::CatchingUp, Step::default())
                .await?;
            return Ok(());
        }
        let why = self
            .board
            .lock()
            .ok()
            .and_then(|b| b.get(&pindex).and_then(|e| e.last_error.clone()))
            .unwrap_or_else(|| "it could not be opened".into());
        self.give_up(r, &pindex, why).await
    }

    /// Marks `pindex` failed with `why`.
    async fn give_up(&mut self, r: &Recovery, pindex: &str, why: String) -> Result<(), CfgError> {
        tracing::warn!(
            pindex,
            recovery = r.id,
            error = why,
            "recovering a PIndex failed"
        );
        let s = Step {
            reason: Some(why),
            ..Step::default()
        };
        self.record(&r.id, pindex, State::Failed, s)
            .await
            .map(|_| ())
    }

    /// Records a step of `pindex` in recovery `id`, done by this node (which claims a PIndex
    /// the recovery found unplaced); `false` when it no longer applies.
    async fn record(
        &mut self,
        id: &str,
        pindex: &str,
        to: State,
        s: Step,
    ) -> Result<bool, CfgError> {
        let incarnation = self.incarnation.clone();
        let s = Step {
            node: Some(self.node.clone()),
            ..s
        };
        self.write(id, |r, now| {
            machine::step(r, pindex, to, &incarnation, s.clone(), now)
        })
        .await
    }

    /// Applies `change` to recovery `id` under CAS, re-reading after a lost race. `false`:
    /// nothing to change (or the recovery is gone). A write drops the cached recoveries: the
    /// next round must not act on the state from before it.
    async fn write(
        &mut self,
        id: &str,
        change: impl Fn(&mut Recovery, u64) -> bool,
    ) -> Result<bool, CfgError> {
        let written = write_recovery(&self.cfg, id, change).await?;
        if written {
            self.recoveries = None;
        }
        Ok(written)
    }
}

/// Runs `fetches` (of the PIndexes `names`, counting their bytes in `counters`) and writes the
/// bytes each has fetched so far into recovery `id` every [`PROGRESS_EVERY`] meanwhile, as
/// done by `who` (node, incarnation), while the PIndex is still `fetching`.
async fn with_progress<T>(
    cfg: &tessera_cfg::Cfg,
    id: &str,
    who: (&str, &str),
    names: &[&str],
    counters: &[AtomicU64],
    fetches: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(fetches);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.tick().await;
    let mut reported = vec![0u64; counters.len()];
    loop {
        tokio::select! {
            done = &mut fetches => return done,
            _ = tick.tick() => {}
        }
        for (i, (pindex, done)) in names.iter().zip(counters).enumerate() {
            let done = done.load(Ordering::Relaxed);
            if done == reported[i] {
                continue;
            }
            reported[i] = done;
            let s = Step {
                node: Some(who.0.to_string()),
                bytes_done: Some(done),
                ..Step::default()
            };
            let step = |r: &mut Recovery, now| {
                let state = r.pindexes.get(*pindex).map(|p| p.state);
                state == Some(State::Fetching)
                    && machine::step(r, pindex, State::Fetching, who.1, s.clone(), now)
            };
            if let Err(e) = write_recovery(cfg, id, step).await {
                tracing::debug!(error = %e, "could not report fetch progress");
            }
        }
    }
}

/// Applies `change` to recovery `id` under CAS, re-reading after a lost race. `false`: nothing
/// to change (or the recovery is gone).
async fn write_recovery(
    cfg: &tessera_cfg::Cfg,
    id: &str,
    change: impl Fn(&mut Recovery, u64) -> bool,
) -> Result<bool, CfgError> {
    for _ in 0..ATTEMPTS {
        let Some(current) = cfg.recovery(id).await? else {
            return Ok(false);
        };
        let mut r = current.value;
        if !change(&mut r, tessera_cfg::unix_ms()) {
            return Ok(false);
        }
        if cfg.put_recovery(&r, current.revision).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// How a fetch ended.
enum Fetched {
    /// The files are in place; what they came from, for the PIndex's status.
    Data(String),
    /// Nothing fetched: the PIndex rebuilds from the source, for this reason.
    Rebuild(String),
}

/// Fetches the PIndex covering `partitions` of `def` from another cluster, through its node
/// `contact`: the files of its readable copy at its last commit, provided that cluster defines
/// the index alike and its checkpoints point into history the source (`source`: URL and name)
/// still holds — else the PIndex rebuilds from the source, as from a snapshot.
async fn from_cluster(
    peers: &tessera_proto::peers::Peers,
    contact: &str,
    def: &IndexDef,
    source: &dyn tessera_sources::SourceType,
    into: &restore::FetchInto<'_>,
    meter: tessera_copy::fetch::Meter<'_>,
) -> Result<Fetched, String> {
    let (partitions, dir) = (into.partitions, into.dir);
    use super::peer_copy::Unusable;
    use tessera_copy::{fetch, CopyError};
    let failed = |e: CopyError| format!("recovering from cluster {contact}: {e}");
    let set = match fetch::take(peers, contact, &def.name, partitions, false).await {
        Ok(set) => set,
        Err(CopyError::NotFound(why) | CopyError::Unavailable(why)) => {
            return Ok(Fetched::Rebuild(format!(
                "cluster {contact} cannot serve it ({why}); rebuilt from the source"
            )))
        }
        Err(e) => return Err(failed(e)),
    };
    // A source that does not answer leaves the history check to the feed, as for a snapshot.
    match super::peer_copy::unusable(def, &set, source).await {
        Some(Unusable::Otherwise(why)) => {
            fetch::release(peers, &set).await;
            return Err(why);
        }
        Some(Unusable::HistoryGone(gone)) => {
            fetch::release(peers, &set).await;
            return Ok(Fetched::Rebuild(format!(
                "the copy in cluster {contact} cannot be used: {gone}; rebuilt from the source"
            )));
        }
        Some(Unusable::SourceSilent(_)) | None => {}
    }
    let bytes = fetch::download(peers, &set, dir, meter)
        .await
        .map_err(failed)?;
    Ok(Fetched::Data(format!(
        "cluster {contact} ({} on node {}, {bytes} bytes)",
        set.pindex, set.node
    )))
}
