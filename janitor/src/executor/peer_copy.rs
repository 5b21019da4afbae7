//! A new copy of a PIndex built from a peer's files instead of the source: when a PIndex
//! starts here with no directory (a rebalance moved it here, a replica was added, a failover
//! re-placed it) and a live peer holds a readable copy, that copy's files at its last commit
//! are fetched over `tessera.v1.Copy` (this node's own service finds the peer), checked, and
//! opened; the feed then streams only what the source has beyond the copied checkpoints.
//!
//! The fetch runs in the background: the round goes on, and the PIndex counts as backfilling
//! (within the backfill limit) until a later round opens it. When no peer can serve, the copied
//! checkpoints point into history the source no longer holds, or the fetch fails mid-way, the
//! PIndex builds from the source as it always could.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tessera_cfg::schema::IndexDef;
use tessera_copy::{fetch, CopyError};

use super::Executor;
use crate::diff::Wanted;

/// A copy being fetched.
pub(super) struct PeerCopy {
    pub(super) wanted: Wanted,
    /// Bytes fetched so far, and the set's size.
    pub(super) done: Arc<AtomicU64>,
    pub(super) total: u64,
    /// What the files come from, for the status.
    from: String,
    /// Set when the fetch has ended (just before the task returns its outcome).
    ended: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<u64, CopyError>>,
}

/// Whether a PIndex starting here may be fetched from a peer.
pub(super) enum Peers {
    Try,
    /// A fetch was tried and failed: build from the source.
    Skip,
}

impl Executor {
    /// Begins fetching `wanted` from a peer's readable copy; `false` when none can serve it
    /// (the caller builds it from the source).
    pub(super) async fn begin_peer_copy(
        &mut self,
        wanted: &Wanted,
        def: &IndexDef,
        source_url: &str,
    ) -> bool {
        let Some(node_url) = self.options.node_url.clone() else {
            return false;
        };
        let peers = self.options.peers.clone();
        let set = match fetch::take(&peers, &node_url, &def.name, &wanted.partitions, false).await {
            Ok(set) => set,
            Err(e) => {
                tracing::debug!(pindex = wanted.pindex, reason = %e, "no peer copy; building from the source");
                return false;
            }
        };
        let usable = if set.node == self.node {
            Err("the copy offered is this node's own".to_string())
        } else {
            fetch::same_definition(def, &set).and_then(|()| {
                tessera_index::checkpoint::decode(&set.checkpoints_json)
                    .ok_or_else(|| "unreadable checkpoints".to_string())
            })
        };
        let gone = match &usable {
            Ok(checkpoints) => {
                let now =
                    tessera_source::grpc::partition_infos(&peers, source_url, &def.source.name)
                        .await;
                match now {
                    Ok(now) => tessera_backup::restore_plan::checkpoints_gone(checkpoints, &now),
                    Err(e) => Some(format!("the source did not answer: {e}")),
                }
            }
            Err(why) => Some(why.clone()),
        };
        if let Some(why) = gone {
            tracing::info!(
                pindex = wanted.pindex,
                peer = set.node,
                reason = why,
                "peer copy not usable; building from the source"
            );
            fetch::release(&peers, &set).await;
            return false;
        }
        let dir = self.options.pindex_dir.join(&wanted.pindex);
        let done = Arc::new(AtomicU64::new(0));
        let pace = self.options.copy_pace.clone();
        let counter = done.clone();
        let ended = Arc::new(AtomicBool::new(false));
        let (flag, wake) = (ended.clone(), self.copy_ended.clone());
        let task = tokio::spawn({
            let set = set.clone();
            async move {
                let meter = fetch::Meter {
                    done: &counter,
                    pace: &pace,
                };
                let fetched = fetch::download(&peers, &set, &dir, meter).await;
                flag.store(true, Ordering::Release);
                wake.notify_one();
                fetched
            }
        });
        let from = format!("peer {} ({})", set.node, set.pindex);
        tracing::info!(
            pindex = wanted.pindex,
            from,
            bytes = set.bytes,
            "new copy fetching its files from a peer"
        );
        self.copying.insert(
            wanted.pindex.clone(),
            PeerCopy {
                wanted: wanted.clone(),
                done,
                total: set.bytes,
                from,
                ended,
                task,
            },
        );
        true
    }

    /// Opens the copies whose fetch finished (their feed goes on from the copied checkpoints),
    /// and builds from the source those whose fetch failed.
    pub(super) async fn finish_peer_copies(&mut self, defs: &BTreeMap<String, IndexDef>) {
        let finished: Vec<String> = self
            .copying
            .iter()
            .filter(|(_, c)| c.ended.load(Ordering::Acquire) || c.task.is_finished())
            .map(|(n, _)| n.clone())
            .collect();
        for name in finished {
            let Some(copy) = self.copying.remove(&name) else {
                continue;
            };
            let outcome = match copy.task.await {
                Ok(outcome) => outcome.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(bytes) => {
                    let note = format!("{}, {bytes} bytes", copy.from);
                    tracing::info!(pindex = name, from = note, "new copy fetched from a peer");
                    if let Ok(mut board) = self.board.lock() {
                        board.entry(name.clone()).or_default().copied_from = Some(note);
                    }
                    self.start_with(copy.wanted, defs, Peers::Skip).await;
                    if let Some(hosted) = self.hosted.get_mut(&name) {
                        hosted.copied_bytes = Some(bytes);
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        pindex = name,
                        error = e,
                        "fetching from a peer failed; building from the source"
                    );
                    self.remove_partial(&name);
                    self.start_with(copy.wanted, defs, Peers::Skip).await;
                }
            }
        }
    }

    /// Stops fetching `pindex` (it is no longer wanted here), leaving nothing behind.
    pub(super) fn abort_peer_copy(&mut self, pindex: &str) {
        if let Some(copy) = self.copying.remove(pindex) {
            copy.task.abort();
            self.remove_partial(pindex);
        }
    }

    /// What a fetch left: the PIndex directory being filled.
    fn remove_partial(&self, pindex: &str) {
        let dir = self.options.pindex_dir.join(pindex);
        let partial = std::path::PathBuf::from(format!("{}.fetching", dir.display()));
        for d in [partial, dir] {
            if d.exists() {
                if let Err(e) = std::fs::remove_dir_all(&d) {
                    tracing::warn!(pindex, error = %e, dir = %d.display(), "removing a partial copy failed");
                }
            }
        }
    }

    /// The copies being fetched, with their bytes done and total, for the status and the
    /// copy report.
    pub(super) fn publish_copies(&self) {
        let Ok(mut board) = self.board.lock() else {
            return;
        };
        for (name, copy) in &self.copying {
            let entry = board.entry(name.clone()).or_default();
            entry.index = copy.wanted.index.clone();
            entry.role = Some(copy.wanted.role);
            entry.copying = Some(crate::board::Copying {
                from: copy.from.clone(),
                bytes_done: copy.done.load(Ordering::Relaxed),
                bytes_total: copy.total,
            });
        }
    }
}
