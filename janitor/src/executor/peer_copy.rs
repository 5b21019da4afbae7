//! A new copy of a PIndex built from a peer's files instead of the source: when a PIndex
//! starts here with no directory (a rebalance moved it here, a replica was added, a failover
//! re-placed it) and a live peer holds a readable copy, that copy's files at its last commit
//! are fetched over `tessera.v1.Copy` (this node's own service finds the peer), checked, and
//! opened; the feed then streams only what the source has beyond the copied checkpoints.
//!
//! Everything runs in the background — finding the peer, checking its copy can be used here,
//! the download — so a round never waits on a peer: the PIndex counts as backfilling (within
//! the backfill limit) until a later round opens it. When no peer can serve (a new index's
//! copies), the copied checkpoints point into history the source no longer holds, or the fetch
//! fails mid-way, the PIndex builds from the source as it always could.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tessera_cfg::schema::IndexDef;
use tessera_copy::fetch;

use super::Executor;
use super::SourceRef;
use crate::diff::Wanted;

/// A copy being fetched.
pub(super) struct PeerCopy {
    pub(super) wanted: Wanted,
    /// Bytes fetched so far.
    done: Arc<AtomicU64>,
    /// The copy being fetched and its size, once a peer has set it apart.
    source: Arc<Mutex<Option<(String, u64)>>>,
    /// Set when the fetch has ended (just before the task returns its outcome).
    ended: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Outcome>,
}

/// How a fetch from a peer ended.
enum Outcome {
    /// The files are in place: this many bytes.
    Copied(u64),
    /// No peer copy could be used (none readable, another definition, history gone): the
    /// usual way for a new index's copies.
    NoPeer(String),
    /// A peer's copy was being fetched and the fetch failed.
    Failed(String),
}

/// Whether a PIndex starting here may be fetched from a peer.
pub(super) enum FromPeers {
    Try,
    /// A fetch was tried: build from the source.
    Skip,
}

impl Executor {
    /// Begins, in the background, looking for a peer's readable copy of `wanted` and fetching
    /// its files; `false` when peer copies are off (the caller builds from the source). A later
    /// round opens the copy, or builds it from the source when no peer could serve it.
    pub(super) fn begin_peer_copy(
        &mut self,
        wanted: &Wanted,
        def: &IndexDef,
        source: &SourceRef,
    ) -> bool {
        let Some(node_url) = self.options.node_url.clone() else {
            return false;
        };
        let fetch = Fetch {
            peers: self.options.peers.clone(),
            node_url,
            me: self.node.clone(),
            def: def.clone(),
            source_of_record: source.clone(),
            partitions: wanted.partitions.clone(),
            dir: self.options.pindex_dir.join(&wanted.pindex),
            pace: self.options.copy_pace.clone(),
            done: Arc::new(AtomicU64::new(0)),
            source: Arc::default(),
        };
        let (done, source) = (fetch.done.clone(), fetch.source.clone());
        let ended = Arc::new(AtomicBool::new(false));
        let (flag, wake) = (ended.clone(), self.copy_ended.clone());
        let task = tokio::spawn(async move {
            let outcome = fetch.run().await;
            flag.store(true, Ordering::Release);
            wake.notify_one();
            outcome
        });
        self.copying.insert(
            wanted.pindex.clone(),
            PeerCopy {
                wanted: wanted.clone(),
                done,
                source,
                ended,
                task,
            },
        );
        true
    }

    /// Opens the copies whose fetch finished (their feed goes on from the copied checkpoints),
    /// and builds from the source those no peer could serve or whose fetch failed.
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
            let outcome = copy
                .task
                .await
                .unwrap_or_else(|e| Outcome::Failed(e.to_string()));
            match outcome {
                Outcome::Copied(bytes) => {
                    let from = copy.source.lock().ok().and_then(|s| s.clone());
                    let from = from.map_or_else(|| "a peer".to_string(), |(f, _)| f);
                    let note = format!("{from}, {bytes} bytes");
                    tracing::info!(pindex = name, from = note, "new copy fetched from a peer");
                    if let Ok(mut board) = self.board.lock() {
                        board.entry(name.clone()).or_default().copied_from = Some(note);
                    }
                    self.start_with(copy.wanted, defs, FromPeers::Skip).await;
                    if let Some(hosted) = self.hosted.get_mut(&name) {
                        hosted.copied_bytes = Some(bytes);
                    }
                    continue;
                }
                Outcome::NoPeer(why) => {
                    tracing::debug!(
                        pindex = name,
                        why,
                        "no peer copy to fetch; building from the source"
                    );
                }
                Outcome::Failed(e) => {
                    tracing::warn!(
                        pindex = name,
                        error = e,
                        "fetching from a peer failed; building from the source"
                    );
                }
            }
            self.remove_partial(&name);
            self.start_with(copy.wanted, defs, FromPeers::Skip).await;
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

    /// The copies being fetched, with their bytes done and total, for the status.
    pub(super) fn publish_copies(&self) {
        let Ok(mut board) = self.board.lock() else {
            return;
        };
        for (name, copy) in &self.copying {
            // Shown once a peer has set its copy apart (before, it is still looking).
            let Some((from, total)) = copy.source.lock().ok().and_then(|s| s.clone()) else {
                continue;
            };
            let entry = board.entry(name.clone()).or_default();
            entry.index = copy.wanted.index.clone();
            entry.role = Some(copy.wanted.role);
            entry.copying = Some(crate::board::Copying {
                from,
                bytes_done: copy.done.load(Ordering::Relaxed),
                bytes_total: total,
            });
        }
    }
}

/// Why a copy set apart elsewhere (on a peer, in another cluster) cannot be used for a PIndex
/// of `def` here.
pub(super) enum Unusable {
    /// Defined otherwise there, or its checkpoints unreadable.
    Otherwise(String),
    /// Its checkpoints point into history the source no longer holds.
    HistoryGone(String),
    /// The source did not answer: nobody can tell yet.
    SourceSilent(String),
}

/// Checks `set` against `def` and against what `source` holds now.
pub(super) async fn unusable(
    def: &IndexDef,
    set: &tessera_proto::v1::FileSet,
    source: &dyn tessera_sources::SourceType,
) -> Option<Unusable> {
    let checkpoints = match fetch::checkpoints_if_alike(def, set) {
        Ok(c) => c,
        Err(why) => return Some(Unusable::Otherwise(why)),
    };
    match tessera_sources::uuids_and_highs(source).await {
        Ok(now) => tessera_backup::restore_plan::checkpoints_gone(&checkpoints, &now)
            .map(Unusable::HistoryGone),
        Err(e) => Some(Unusable::SourceSilent(format!(
            "the source did not answer: {e}"
        ))),
    }
}

/// What a fetch from a peer needs, moved into its task.
struct Fetch {
    peers: tessera_proto::peers::Peers,
    /// This node's URL: its `tessera.v1.Copy` finds the peer.
    node_url: String,
    me: String,
    def: IndexDef,
    source_of_record: SourceRef,
    partitions: Vec<u32>,
    dir: std::path::PathBuf,
    pace: Arc<tessera_copy::pace::Pace>,
    done: Arc<AtomicU64>,
    source: Arc<Mutex<Option<(String, u64)>>>,
}

impl Fetch {
    /// Takes a peer's copy, checks it can be used here, and downloads it.
    async fn run(self) -> Outcome {
        let (peers, def) = (&self.peers, &self.def);
        let taken = fetch::take(peers, &self.node_url, &def.name, &self.partitions, false).await;
        let set = match taken {
            Ok(set) => set,
            Err(e) => return Outcome::NoPeer(e.to_string()),
        };
        let refused = if set.node == self.me {
            Some("the copy offered is this node's own".to_string())
        } else {
            match unusable(def, &set, self.source_of_record.as_ref()).await {
                Some(Unusable::Otherwise(why))
                | Some(Unusable::HistoryGone(why))
                | Some(Unusable::SourceSilent(why)) => Some(why),
                None => None,
            }
        };
        if let Some(why) = refused {
            fetch::release(peers, &set).await;
            return Outcome::NoPeer(format!("peer {}: {why}", set.node));
        }
        let from = format!("peer {} ({})", set.node, set.pindex);
        tracing::info!(
            from,
            bytes = set.bytes,
            "new copy fetching its files from a peer"
        );
        if let Ok(mut source) = self.source.lock() {
            *source = Some((from, set.bytes));
        }
        let meter = fetch::Meter {
            done: &self.done,
            pace: &self.pace,
        };
        match fetch::download(peers, &set, &self.dir, meter).await {
            Ok(bytes) => Outcome::Copied(bytes),
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
}
