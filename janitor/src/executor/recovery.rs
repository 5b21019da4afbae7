//! This node's part in recoveries of missing PIndexes (`tessera_recovery::machine` holds the
//! rules): for each PIndex a recovery places here, fetch its files from the snapshot into a
//! fresh directory (whole or not at all), open it — its feed then streams only what the source
//! has beyond the fetched checkpoints — and report each step in the recovery document; once
//! the copy has caught up, report it recovered (the planner makes it readable when the
//! operator commits). For an aborted recovery, remove what was fetched and not committed, so
//! the copy rebuilds from the source as it would have without the recovery.

use std::collections::BTreeMap;

use tessera_cfg::schema::{
    IndexDef, PIndexRecoveryState as State, RecoverFrom, Recovery, RestoreFrom,
};
use tessera_cfg::CfgError;
use tessera_recovery::machine::{self, Step, Work};

use super::{restore, Executor};
use crate::diff::Wanted;

/// How often a step is written again after losing a race with another writer of the recovery.
const ATTEMPTS: usize = 10;

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

    /// Fetches the files of the PIndexes `todo` from the recovery's snapshot, each into a fresh
    /// directory and all at once (the downloads are what takes time), then opens them one by
    /// one, recording each step.
    async fn fetch_all(
        &mut self,
        r: &Recovery,
        todo: Vec<(Wanted, IndexDef)>,
        defs: &BTreeMap<String, IndexDef>,
    ) -> Result<(), CfgError> {
        let RecoverFrom::Snapshot { repo, id } = &r.from else {
            return Ok(());
        };
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
                "recovering: fetching from the snapshot"
            );
            self.stop(&pindex, true).await;
            match self.source_url(&def).await {
                Ok(url) => ready.push((w, def, url)),
                Err(e) => self.give_up(r, &pindex, e).await?,
            }
        }
        let (cfg, peers) = (&self.cfg, &self.options.peers);
        let pindex_dir = &self.options.pindex_dir;
        let downloads = ready.iter().map(|(w, def, url)| {
            let from = RestoreFrom {
                repo: repo.clone(),
                snapshot: id.clone(),
                index: def.name.clone(),
            };
            let dir = pindex_dir.join(&w.pindex);
            async move {
                let source = (url.as_str(), def.source.name.as_str());
                let target = (w.pindex.as_str(), w.partitions.as_slice());
                restore::fetch(cfg, peers, &from, source, target, &def.index_type, &dir).await
            }
        });
        let fetched = futures::future::join_all(downloads).await;
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
        fetched: Result<Option<String>, String>,
        defs: &BTreeMap<String, IndexDef>,
    ) -> Result<(), CfgError> {
        let pindex = w.pindex.clone();
        let total = r.pindexes.get(&pindex).map_or(0, |p| p.bytes_total);
        let step = match fetched {
            Ok(Some(note)) => {
                if let Ok(mut board) = self.board.lock() {
                    board.entry(pindex.clone()).or_default().restored_from = Some(note);
                }
                Step {
                    bytes_done: Some(total),
                    ..Step::default()
                }
            }
            Ok(None) => Step {
                rebuild: true,
                reason: Some("the snapshot's data cannot be used any more (the source no longer holds its history); rebuilt from the source".into()),
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
        for _ in 0..ATTEMPTS {
            let Some(current) = self.cfg.recovery(id).await? else {
                return Ok(false);
            };
            let mut r = current.value;
            if !change(&mut r, tessera_cfg::unix_ms()) {
                return Ok(false);
            }
            if self.cfg.put_recovery(&r, current.revision).await? {
                self.recoveries = None;
                return Ok(true);
            }
        }
        Ok(false)
    }
}
