//! Starting a PIndex the plan places on this node: from its directory, a peer's copy, the
//! snapshot its index was restored from, or its source; and the backoff of a start that
//! failed. Apart from the executor's round so that file keeps to the round itself.

use std::collections::BTreeMap;

use tessera_cfg::schema::IndexDef;
use tessera_cfg::unix_ms;

use super::peer_copy::FromPeers;
use super::{open, restore, Executor, Failure, Hosted, SourceRef};
use crate::diff::Wanted;
use crate::feed::{Feed, FeedConfig};

impl Executor {
    pub(super) async fn start(&mut self, wanted: Wanted, defs: &BTreeMap<String, IndexDef>) {
        self.start_with(wanted, defs, FromPeers::Try).await
    }

    /// Starts `wanted`: opens its directory, or (with none yet) fetches a peer's copy in the
    /// background when `peers` allows and one can serve, or restores it from the snapshot its
    /// index was restored from, or builds it from the source.
    pub(super) async fn start_with(
        &mut self,
        wanted: Wanted,
        defs: &BTreeMap<String, IndexDef>,
        peers: FromPeers,
    ) {
        let Some(def) = defs.get(&wanted.index).cloned() else {
            return;
        };
        let dir = self.options.pindex_dir.join(&wanted.pindex);
        let source = match self.source(&def).await {
            Ok(source) => source,
            Err(e) => return self.fail(wanted, e),
        };
        let new_copy = def.restore.is_none() && !dir.exists();
        if new_copy
            && matches!(peers, FromPeers::Try)
            && self.begin_peer_copy(&wanted, &def, &source)
        {
            return;
        }
        if let (Some(from), false) = (&def.restore, dir.exists()) {
            let into = restore::FetchInto {
                pindex: &wanted.pindex,
                partitions: &wanted.partitions,
                index_type: &def.index_type,
                dir: &dir,
            };
            let done = std::sync::atomic::AtomicU64::new(0);
            match restore::fetch(
                &self.cfg,
                &self.options.repos,
                from,
                source.as_ref(),
                &into,
                &done,
            )
            .await
            {
                Ok(Some(note)) => {
                    tracing::info!(pindex = wanted.pindex, from = note, "PIndex restored");
                    if let Ok(mut board) = self.board.lock() {
                        board
                            .entry(wanted.pindex.clone())
                            .or_default()
                            .restored_from = Some(note);
                    }
                }
                Ok(None) => {}
                Err(e) => return self.fail(wanted, e),
            }
        }
        let preopened = self
            .preopened
            .lock()
            .ok()
            .and_then(|mut p| p.remove(&wanted.pindex));
        let opened = match preopened {
            Some(opened) => opened,
            None => {
                let one = open::ToOpen {
                    pindex: wanted.pindex.clone(),
                    dir,
                    kind: def.index_type.clone(),
                    params: def.params.clone(),
                };
                open::open_one(one, self.options.indexing.clone()).await
            }
        };
        let (pindex, aside) = match opened {
            Ok(opened) => opened,
            Err(e) => return self.fail(wanted, e),
        };
        if let Some(aside) = &aside {
            let name = wanted.pindex.clone();
            let moved = aside.display().to_string();
            if let Ok(mut board) = self.board.lock() {
                board.entry(name).or_default().rebuilt_from = Some(moved);
            }
        }
        let config = FeedConfig {
            index: wanted.index.clone(),
            source: source.clone(),
            source_partitions: def.source.partitions(),
            partitions: wanted.partitions.clone(),
            commit_every: self.options.commit_every,
            commit_interval: self.options.commit_interval,
            // A PIndex started while its index's ingest is paused reads nothing meanwhile.
            start_paused: def.controls.ingest_paused,
        };
        tracing::info!(
            pindex = wanted.pindex,
            index = wanted.index,
            "PIndex started"
        );
        self.failures.remove(&wanted.pindex);
        let search = pindex.searchable();
        self.hosted.insert(
            wanted.pindex.clone(),
            Hosted {
                index: wanted.index,
                source,
                definition: wanted.definition,
                partitions: wanted.partitions,
                role: wanted.role,
                feed: Feed::start(pindex, config),
                search,
                caught_up: false,
                progress: (0, tokio::time::Instant::now()),
                stalled: None,
                copied_bytes: None,
            },
        );
    }

    pub(super) fn fail(&mut self, wanted: Wanted, error: String) {
        let attempts = self.failures.get(&wanted.pindex).map_or(0, |f| f.attempts) + 1;
        let backoff_ms = (1000u64 << attempts.min(6)).min(60_000);
        tracing::warn!(
            pindex = wanted.pindex,
            attempts,
            error,
            "PIndex failed to start; retrying later"
        );
        if let Ok(mut board) = self.board.lock() {
            let entry = board.entry(wanted.pindex.clone()).or_default();
            entry.index = wanted.index.clone();
            entry.attempts = attempts;
            entry.last_error = Some(error);
        }
        self.failures.insert(
            wanted.pindex.clone(),
            Failure {
                attempts,
                retry_at_ms: unix_ms() + backoff_ms,
                wanted,
            },
        );
    }

    /// The source `def` reads.
    pub(super) async fn source(&self, def: &IndexDef) -> Result<SourceRef, String> {
        let default = &self.options.default_source_url;
        let opened = self.options.sources.open(&def.source, &self.cfg, default);
        opened.await.map_err(|e| e.to_string())
    }
}
