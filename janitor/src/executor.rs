//! The executor: the I/O around [`crate::diff`]. It watches the Cfg (plans and index
//! definitions) and resyncs periodically, turns the plan into this node's wanted copies, runs
//! the diff, and carries out its actions: opening PIndexes (moving corrupt ones aside) and
//! starting their feeds, stopping and deleting them, restarting them in place. A failed start
//! is retried with exponential backoff and shown in the status.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use tessera_cfg::schema::{CopyRole, IndexDef};
use tessera_cfg::{unix_ms, Cfg, KeyKind, WatchEvent};
use tokio::sync::watch;

pub use crate::board::{LocalStatus, StatusBoard};
use crate::diff::{diff_with_files, Action, Local, LocalState, Wanted};
use crate::feed::Feed;
use crate::stall::stall;

/// The source a hosted PIndex reads, shared by its feed and the executor's checks.
type SourceRef = std::sync::Arc<dyn tessera_sources::SourceType>;
pub use crate::stall::STALL_AFTER;
use crate::wanted::{wanted_copies, WantedView};

mod disk;
mod open;
mod peer_copy;
mod recovery;
mod report;
mod restore;
mod start;
use peer_copy::PeerCopy;
use report::Reported;

/// The janitor's defaults, in one place (the node's flags and `ExecutorOptions::new`).
pub mod defaults {
    use std::time::Duration;

    pub const MAX_BACKFILLS: usize = 2;
    /// Reconcile at least this often, whatever the watch delivered.
    pub const RESYNC: Duration = Duration::from_secs(10);
    /// The least time between two rounds started by Cfg changes (a change after a quiet
    /// spell is acted on after `tessera_cfg::store::SETTLE` only): plan changes arriving
    /// together are handled in one round or two, not one per change.
    pub const DEBOUNCE: Duration = Duration::from_millis(100);
    /// While a copy backfills, how often the janitor checks whether it has caught up (the
    /// planner makes it readable, and the next move starts, once it reports so). A check
    /// asks only the source for its high seqs.
    pub const BACKFILL_CHECK: Duration = Duration::from_millis(50);
    /// While a copy is fetched from a peer, how often a round runs (it shows the bytes).
    pub const COPY_CHECK: Duration = Duration::from_millis(200);
    /// A feed commits after this many changes...
    pub const COMMIT_EVERY: usize = 10_000;
    /// ...or this long after the first uncommitted one.
    pub const COMMIT_INTERVAL: Duration = Duration::from_millis(500);
}

/// How the executor runs.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// Where PIndex directories live (`<data-dir>/pindexes`).
    pub pindex_dir: PathBuf,
    /// The source to stream from when a definition names no `url` (this node's embedded one).
    pub default_source_url: String,
    pub max_backfills: usize,
    pub resync: Duration,
    pub debounce: Duration,
    pub commit_every: usize,
    pub commit_interval: Duration,
    /// The node's pooled peer channels.
    pub peers: tessera_proto::peers::Peers,
    /// Opens the sources definitions name (shared with the node's API for its connections).
    pub sources: tessera_sources::Sources,
    /// This node's URL, whose `tessera.v1.Copy` finds a peer holding a readable copy of a
    /// PIndex starting here; `None`: new copies always build from the source.
    pub node_url: Option<String>,
    /// The rate every copy of files into this node shares (from peers, from another cluster).
    pub copy_pace: std::sync::Arc<tessera_copy::pace::Pace>,
    /// The indexing threads, writers and memory budget this node's PIndexes share; `None`:
    /// each PIndex keeps its own writer open (tools and tests of the unpooled path).
    pub indexing: Option<std::sync::Arc<tessera_index::IndexingPool>>,
    /// What backup repositories may make this node dial, read and write (restores fetch).
    pub repos: std::sync::Arc<tessera_backup::RepoPolicy>,
}

struct Hosted {
    index: String,
    /// Its source, as resolved when it started.
    source: SourceRef,
    definition: String,
    partitions: Vec<u32>,
    role: CopyRole,
    feed: Feed,
    search: Option<tessera_index::Searchable>,
    caught_up: bool,
    /// Changes applied when progress was last seen, and when.
    progress: (u64, tokio::time::Instant),
    /// Why the feed is not catching up, once it has made no progress for [`STALL_AFTER`]
    /// while behind the source.
    stalled: Option<String>,
    /// The bytes fetched from a peer to build this copy, when it was built so.
    copied_bytes: Option<u64>,
}

struct Failure {
    attempts: u32,
    retry_at_ms: u64,
    wanted: Wanted,
}

pub struct Executor {
    cfg: Cfg,
    node: String,
    /// This run of the node (written into the copy report).
    incarnation: String,
    options: ExecutorOptions,
    hosted: BTreeMap<String, Hosted>,
    failures: BTreeMap<String, Failure>,
    board: StatusBoard,
    /// The caught-up set and the unhosted PIndexes on disk last written to this node's copy
    /// report.
    reported: Option<Reported>,
    /// The recoveries that may still ask something of janitors, as last listed; `None` after a
    /// recovery document changed (or the watch was lost): listed again at the next round.
    recoveries: Option<Vec<tessera_cfg::schema::Recovery>>,
    /// New copies fetching their files from a peer (`peer_copy`).
    copying: BTreeMap<String, PeerCopy>,
    /// Signalled when a fetch from a peer ends, so that the copy opens at once.
    copy_ended: std::sync::Arc<tokio::sync::Notify>,
    /// PIndexes this round opened ahead of starting them (`open::open_all`); in a mutex only
    /// so that the executor is `Sync` (a PIndex is `Send`, not `Sync`).
    preopened: std::sync::Mutex<BTreeMap<String, open::Opened>>,
}

impl Executor {
    pub fn new(cfg: Cfg, node: &str, incarnation: &str, options: ExecutorOptions) -> Self {
        Self {
            cfg,
            node: node.to_string(),
            incarnation: incarnation.to_string(),
            options,
            hosted: BTreeMap::new(),
            failures: BTreeMap::new(),
            board: StatusBoard::default(),
            reported: None,
            recoveries: None,
            copying: BTreeMap::new(),
            copy_ended: Default::default(),
            preopened: Default::default(),
        }
    }

    pub fn board(&self) -> StatusBoard {
        self.board.clone()
    }

    /// Reconciles on Cfg changes and periodically until `shutdown`; then stops every feed
    /// (committing its PIndex).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let root = self.cfg.keys().root().to_string();
        let mut changes = None;
        let mut due = Some(tokio::time::Instant::now());
        let copy_ended = self.copy_ended.clone();
        // Kept across iterations: other Cfg changes wake the loop far more often than this.
        let mut backfill_at = tokio::time::Instant::now();
        let mut last_round = None;
        loop {
            if changes.is_none() {
                changes = self.cfg.store().watch(&root, 0).await.ok();
            }
            let wake = due.unwrap_or_else(|| tokio::time::Instant::now() + self.options.resync);
            let backfilling = self.hosted.values().any(|h| !h.caught_up);
            tokio::select! {
                _ = shutdown.changed() => break,
                () = copy_ended.notified() => due = Some(tokio::time::Instant::now()),
                event = tessera_cfg::store::next_change(&mut changes) => match event {
                    Some(e) if self.triggers(&e) => {
                        if e.key().is_none_or(|k| matches!(self.cfg.keys().kind(k), KeyKind::Recovery(_))) {
                            self.recoveries = None;
                        }
                        let soon = tessera_cfg::store::next_round(
                            tokio::time::Instant::now(),
                            last_round,
                            self.options.debounce,
                        );
                        due = Some(due.map_or(soon, |d| d.min(soon)));
                    }
                    Some(_) => {}
                    None => {
                        changes = None;
                        self.recoveries = None;
                        due = Some(tokio::time::Instant::now());
                    }
                },
                () = tokio::time::sleep_until(wake) => {
                    due = None;
                    last_round = Some(tokio::time::Instant::now());
                    let timer = tessera_telemetry::metrics().reconcile_duration.start_timer();
                    let round = self.reconcile().await;
                    timer.observe_duration();
                    if let Err(e) = round {
                        tracing::warn!(error = %e, "janitor round failed; retrying");
                        due = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                    }
                    // Wake for the next retry of a failed PIndex, or to re-check backfills.
                    if let Some(next) = self.failures.values().map(|f| f.retry_at_ms).min() {
                        let wait = Duration::from_millis(next.saturating_sub(unix_ms()));
                        let at = tokio::time::Instant::now() + wait;
                        due = Some(due.map_or(at, |d| d.min(at)));
                    }
                    if !self.copying.is_empty() {
                        let at = tokio::time::Instant::now() + defaults::COPY_CHECK;
                        due = Some(due.map_or(at, |d| d.min(at)));
                    }
                }
                () = tokio::time::sleep_until(backfill_at), if backfilling => {
                    backfill_at = tokio::time::Instant::now() + defaults::BACKFILL_CHECK;
                    if self.check_backfills().await {
                        due = Some(tokio::time::Instant::now());
                    }
                }
            }
        }
        for (name, hosted) in std::mem::take(&mut self.hosted) {
            if let Err(e) = hosted.feed.stop().await {
                tracing::warn!(pindex = name, error = %e, "stopping a feed at shutdown failed");
            }
        }
    }

    /// Between rounds, while copies backfill: checks them against the sources' high seqs
    /// (one small call per source, where a round reads every definition and plan) and asks
    /// for a round at once when one caught up, so that the planner hears of it and the next
    /// queued backfill starts without waiting for a timer.
    async fn check_backfills(&mut self) -> bool {
        let behind =
            |hosted: &BTreeMap<String, Hosted>| hosted.values().filter(|h| !h.caught_up).count();
        let before = behind(&self.hosted);
        self.refresh_caught_up().await;
        behind(&self.hosted) < before
    }

    fn triggers(&self, event: &WatchEvent) -> bool {
        event.key().is_none_or(|k| {
            matches!(
                self.cfg.keys().kind(k),
                KeyKind::Plan(_) | KeyKind::IndexDef(_) | KeyKind::Recovery(_)
            )
        })
    }

    /// What this node should host, from the definitions and plans as read now.
    async fn wanted(&self) -> Result<WantedView, tessera_cfg::CfgError> {
        let defs = self.cfg.index_defs().await?;
        let plans = self.cfg.plans().await?;
        Ok(wanted_copies(
            &self.node,
            self.cfg.keys(),
            defs,
            plans,
            &self.locals(),
        ))
    }

    /// The PIndexes this node has: hosted ones, and failed ones waiting to retry.
    fn locals(&self) -> Vec<Local> {
        let mut local: Vec<Local> = self
            .hosted
            .iter()
            .map(|(name, h)| Local {
                pindex: name.clone(),
                index: h.index.clone(),
                definition: h.definition.clone(),
                partitions: h.partitions.clone(),
                role: h.role,
                state: if h.caught_up {
                    LocalState::Running
                } else {
                    LocalState::Backfilling
                },
            })
            .collect();
        for (name, c) in &self.copying {
            local.push(Local {
                pindex: name.clone(),
                index: c.wanted.index.clone(),
                definition: c.wanted.definition.clone(),
                partitions: c.wanted.partitions.clone(),
                role: c.wanted.role,
                state: LocalState::Backfilling,
            });
        }
        for (name, f) in &self.failures {
            local.push(Local {
                pindex: name.clone(),
                index: f.wanted.index.clone(),
                definition: f.wanted.definition.clone(),
                partitions: f.wanted.partitions.clone(),
                role: f.wanted.role,
                state: LocalState::Failed {
                    attempts: f.attempts,
                    retry_at_ms: f.retry_at_ms,
                },
            });
        }
        local
    }

    async fn reconcile(&mut self) -> Result<(), tessera_cfg::CfgError> {
        self.collect_dead_feeds().await;
        let view = self.wanted().await?;
        for (index, why) in &view.held {
            tracing::debug!(index, why, "index held: its PIndexes here stay as they are");
        }
        let (wanted, defs) = (view.wanted, view.defs);
        self.finish_peer_copies(&defs).await;
        self.refresh_caught_up().await;
        let now = unix_ms();
        let local = self.locals();
        // Wanted PIndexes not running here whose directories exist resume without waiting for
        // a backfill slot.
        let on_disk: std::collections::BTreeSet<String> = wanted
            .iter()
            .filter(|w| {
                !self.hosted.contains_key(&w.pindex) && !self.copying.contains_key(&w.pindex)
            })
            .filter(|w| self.options.pindex_dir.join(&w.pindex).exists())
            .map(|w| w.pindex.clone())
            .collect();
        let plan = diff_with_files(&wanted, &local, &on_disk, now, self.options.max_backfills);
        tessera_telemetry::metrics()
            .reconcile_backlog
            .set((plan.queued.len() + plan.waiting.len()) as i64);
        let by_name: BTreeMap<&str, &Wanted> =
            wanted.iter().map(|w| (w.pindex.as_str(), w)).collect();
        // PIndexes to start that have a directory (nothing to fetch first) open in parallel.
        let to_open: Vec<open::ToOpen> = plan
            .actions
            .iter()
            .filter_map(|action| match action {
                Action::Start { pindex, .. } if on_disk.contains(pindex) => {
                    let w = by_name.get(pindex.as_str())?;
                    let def = defs.get(&w.index)?;
                    Some(open::ToOpen {
                        pindex: pindex.clone(),
                        dir: self.options.pindex_dir.join(pindex),
                        kind: def.index_type.clone(),
                        params: def.params.clone(),
                    })
                }
                _ => None,
            })
            .collect();
        if to_open.len() > 1 {
            let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
            let opened = open::open_all(to_open, self.options.indexing.clone(), parallel).await;
            if let Ok(mut preopened) = self.preopened.lock() {
                *preopened = opened;
            }
        }
        for action in plan.actions {
            match action {
                Action::Stop { pindex, delete } => self.stop(&pindex, delete).await,
                Action::ChangeRole { pindex, role } => {
                    if let Some(h) = self.hosted.get_mut(&pindex) {
                        h.role = role;
                    }
                    if let Some(c) = self.copying.get_mut(&pindex) {
                        c.wanted.role = role;
                    }
                }
                Action::Restart { pindex, .. } | Action::Start { pindex, .. } => {
                    self.stop(&pindex, false).await;
                    if let Some(w) = by_name.get(pindex.as_str()) {
                        self.start((*w).clone(), &defs).await;
                    }
                }
            }
        }
        // Opened for a start that did not happen (its source could not be resolved): closed.
        if let Ok(mut preopened) = self.preopened.lock() {
            preopened.clear();
        }
        // A recovery's work here runs after the plan's actions: the copy it recovers is started.
        if let Err(e) = self.recover(&by_name, &defs).await {
            tracing::warn!(error = %e, "recovery work failed; retried next round");
        }
        self.sync_ingest(&defs).await;
        self.publish().await;
        let on_disk = match &view.planned {
            Some(planned) => self.remove_unplanned(planned),
            None => self.on_disk().into_iter().collect(),
        };
        self.report(on_disk, view.plans_seen).await
    }

    /// Pauses or resumes feeds to match each index's ingest switch.
    async fn sync_ingest(&self, defs: &BTreeMap<String, IndexDef>) {
        for hosted in self.hosted.values() {
            let accepted = defs
                .get(&hosted.index)
                .map_or(0, |d| d.controls.rollback_accepted_ms);
            if accepted > 0 && hosted.feed.status().incident.is_some() {
                hosted.feed.accept_rollback(accepted).await;
            }
            let paused = defs
                .get(&hosted.index)
                .is_some_and(|d| d.controls.ingest_paused);
            if paused != hosted.feed.status().paused {
                if paused {
                    hosted.feed.pause().await;
                } else {
                    hosted.feed.resume().await;
                }
            }
        }
    }

    /// A feed that ended by itself (its PIndex failed to apply or commit, e.g. on a full disk)
    /// becomes a failure: the PIndex is reopened from its committed checkpoints after a backoff.
    async fn collect_dead_feeds(&mut self) {
        let dead: Vec<String> = self
            .hosted
            .iter()
            .filter(|(_, h)| h.feed.is_finished())
            .map(|(n, _)| n.clone())
            .collect();
        for name in dead {
            let Some(hosted) = self.hosted.remove(&name) else {
                continue;
            };
            let error = match hosted.feed.stop().await {
                // Damage found while feeding (a committed segment unreadable): the directory
                // goes aside, and the retry rebuilds the PIndex from the source.
                Err(crate::feed::FeedError::Index(tessera_index::IndexError::Corrupt {
                    reason,
                    ..
                })) => {
                    let dir = self.options.pindex_dir.join(&name);
                    match tessera_index::move_aside(&dir) {
                        Ok(aside) => {
                            tracing::warn!(pindex = name, moved_to = %aside.display(), reason, "corrupt PIndex moved aside; rebuilding");
                            if let Ok(mut board) = self.board.lock() {
                                board.entry(name.clone()).or_default().rebuilt_from =
                                    Some(aside.display().to_string());
                            }
                        }
                        Err(e) => {
                            tracing::warn!(pindex = name, error = %e, "moving a corrupt PIndex aside failed")
                        }
                    }
                    format!("corrupt, rebuilding: {reason}")
                }
                Err(e) => e.to_string(),
                Ok(_) => "the feed ended".to_string(),
            };
            let wanted = Wanted {
                pindex: name,
                index: hosted.index,
                definition: hosted.definition,
                partitions: hosted.partitions,
                role: hosted.role,
            };
            self.fail(wanted, error);
        }
    }

    /// Marks hosted PIndexes whose feeds reached the source's high seqs (as of now).
    async fn refresh_caught_up(&mut self) {
        let mut highs: BTreeMap<String, BTreeMap<u32, u64>> = BTreeMap::new();
        for h in self.hosted.values_mut() {
            if h.caught_up {
                continue;
            }
            let key = h.source.describe();
            if !highs.contains_key(&key) {
                let listed = h.source.partitions().await;
                let high = listed
                    .map(|l| tessera_sources::highs(&l))
                    .unwrap_or_default();
                highs.insert(key.clone(), high);
            }
            let status = h.feed.status();
            let high = &highs[&key];
            let behind: Vec<u32> = h
                .partitions
                .iter()
                .copied()
                .filter(|p| {
                    let want = high.get(p).copied().unwrap_or(0);
                    want > 0 && status.partitions.get(p).is_none_or(|s| s.seq < want)
                })
                .collect();
            h.caught_up = behind.is_empty();
            let now = tokio::time::Instant::now();
            h.stalled = stall(&mut h.progress, h.partitions.len(), &status, &behind, now);
        }
    }

    async fn stop(&mut self, pindex: &str, delete: bool) {
        self.failures.remove(pindex);
        self.abort_peer_copy(pindex);
        if let Ok(mut board) = self.board.lock() {
            if let Some(entry) = board.get_mut(pindex) {
                entry.search = None;
            }
        }
        if let Some(hosted) = self.hosted.remove(pindex) {
            if let Err(e) = hosted.feed.stop().await {
                tracing::warn!(pindex, error = %e, "stopping a feed failed");
            }
        }
        if delete {
            let dir = self.options.pindex_dir.join(pindex);
            if dir.exists() {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(pindex, error = %e, "removing a PIndex directory failed");
                }
            }
            if let Ok(mut board) = self.board.lock() {
                board.remove(pindex);
            }
        }
    }

    async fn publish(&self) {
        let Ok(mut board) = self.board.lock() else {
            return;
        };
        for (name, hosted) in &self.hosted {
            let entry = board.entry(name.clone()).or_default();
            entry.index = hosted.index.clone();
            entry.role = Some(hosted.role);
            entry.live = Some(hosted.feed.status_handle());
            entry.search = hosted.search.clone();
            entry.attempts = 0;
            entry.last_error = hosted.stalled.clone();
            entry.copying = None;
        }
        drop(board);
        self.publish_copies();
    }
}

impl ExecutorOptions {
    /// Options with the defaults for everything but where PIndexes live, the source to read
    /// when a definition names none, and the node's peer channels.
    pub fn new(
        pindex_dir: PathBuf,
        default_source_url: String,
        peers: tessera_proto::peers::Peers,
    ) -> Self {
        Self {
            pindex_dir,
            default_source_url,
            max_backfills: defaults::MAX_BACKFILLS,
            resync: defaults::RESYNC,
            debounce: defaults::DEBOUNCE,
            commit_every: defaults::COMMIT_EVERY,
            commit_interval: defaults::COMMIT_INTERVAL,
            sources: tessera_sources::Sources::new(peers.clone()),
            peers,
            node_url: None,
            copy_pace: std::sync::Arc::new(tessera_copy::pace::Pace::unlimited()),
            // The machine's defaults are always valid limits.
            indexing:
                tessera_index::IndexingPool::new(tessera_index::IndexingLimits::for_machine()).ok(),
            repos: Default::default(),
        }
    }
}
