//! Feeds: one per PIndex, streaming its source partitions (through the source-type interface,
//! `tessera_sources`) into it from its checkpoints. Each partition has a reader task that reconnects with exponential
//! backoff and resumes after the last seq it passed on; one applier applies changes in order,
//! commits by count and by time, and handles rollbacks by dropping the partition's documents
//! and streaming it again from the start — unless the source replaced the whole history the
//! feed has read ([`crate::incident`]): then the feed stops and holds everything until an
//! operator accepts. Pausing stops the readers; the position is the PIndex's applied
//! checkpoint, so nothing is lost.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tessera_index::{Change, IndexError, PIndex};
use tessera_sources::{FeedSession, SourceEvent, SourceType};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

mod counters;
mod reader;
use counters::FeedCounters;
use reader::Reader;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Changes applied per blocking batch.
const BATCH: usize = 1024;
/// How long asking the source about its history may take before the feed holds anyway.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Aborts a background task when its owner ends.
struct AbortOnDrop(Option<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Where a feed reads from and how often it commits.
#[derive(Clone)]
pub struct FeedConfig {
    /// The index the PIndex belongs to (the `index` label of the feed's metrics).
    pub index: String,
    /// The source the index reads (opened by `tessera_sources::Sources::open`).
    pub source: Arc<dyn SourceType>,
    pub partitions: Vec<u32>,
    /// Commit after this many changes...
    pub commit_every: usize,
    /// ...or this long after the first uncommitted one.
    pub commit_interval: Duration,
    /// How many partitions the index definition says the source has (0: not checked). A
    /// source with another count is reported in the status: partitions past the definition's
    /// would never be read.
    pub source_partitions: u32,
    /// Begin paused (its index's ingest is paused): nothing is read until `resume`.
    pub start_paused: bool,
}

/// One source partition as the feed sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PartitionStatus {
    /// Seq applied (committed or about to be).
    pub seq: u64,
    pub partition_uuid: String,
    pub connected: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FeedStatus {
    pub paused: bool,
    pub partitions: BTreeMap<u32, PartitionStatus>,
    pub applied: u64,
    pub commits: u64,
    /// Documents in the PIndex as of the last commit.
    pub docs: u64,
    pub reconnects: u64,
    pub rollbacks: u64,
    pub last_error: Option<String>,
    /// Why the feed is held (the source replaced its whole history), until an operator
    /// accepts; nothing has been dropped.
    pub incident: Option<String>,
    /// The source's partition count differs from the definition's.
    pub mismatch: Option<String>,
    /// When (unix ms) the oldest change applied and not yet committed arrived: what is not
    /// searchable yet has waited since then. `None` when everything applied is committed.
    pub pending_since_ms: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("feed task failed: {0}")]
    Task(String),
}

enum Command {
    Pause,
    Resume,
    Stop,
    /// The operator accepted rollbacks at this time (unix ms): an incident that began before
    /// it proceeds.
    AcceptRollback(u64),
}

/// One change read from a partition.
enum Item {
    Put {
        partition: u32,
        uuid: String,
        seq: u64,
        key: String,
        doc: Vec<u8>,
    },
    Delete {
        partition: u32,
        uuid: String,
        seq: u64,
        key: String,
    },
    /// Moves the partition's position past a change that indexes nothing.
    Skip {
        partition: u32,
        uuid: String,
        seq: u64,
    },
    Rollback {
        partition: u32,
        uuid: String,
    },
}

/// A running feed; owns its PIndex until stopped.
pub struct Feed {
    commands: mpsc::Sender<Command>,
    status: Arc<Mutex<FeedStatus>>,
    task: JoinHandle<Result<Box<dyn PIndex>, FeedError>>,
}

impl Feed {
    /// Starts streaming into `pindex` from its applied checkpoints.
    pub fn start(pindex: Box<dyn PIndex>, config: FeedConfig) -> Feed {
        // Where the PIndex stands is in the status from the start (not once the applier task
        // first runs), so a copy that opens caught up is seen so by the same janitor round.
        let partitions = pindex
            .applied()
            .iter()
            .map(|(p, c)| {
                let status = PartitionStatus {
                    seq: c.seq,
                    partition_uuid: c.partition_uuid.clone(),
                    connected: false,
                };
                (*p, status)
            })
            .collect();
        let status = Arc::new(Mutex::new(FeedStatus {
            paused: config.start_paused,
            docs: pindex.doc_count().unwrap_or(0),
            partitions,
            ..FeedStatus::default()
        }));
        let (commands, rx) = mpsc::channel(8);
        let session = config.source.session(&config.partitions);
        let counters = FeedCounters::for_index(&config.index);
        let applier = Applier {
            config,
            counters,
            session,
            status: status.clone(),
            readers: BTreeMap::new(),
            items: mpsc::channel(4096),
            incident_since: None,
            rollbacks_accepted: false,
        };
        let task = tokio::spawn(applier.run(pindex, rx));
        Feed {
            commands,
            status,
            task,
        }
    }

    pub fn status(&self) -> FeedStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// A live view of the status, for whoever shows it (it outlives no feed: read it while
    /// the feed runs).
    pub fn status_handle(&self) -> Arc<Mutex<FeedStatus>> {
        self.status.clone()
    }

    /// Stops reading (after committing what was applied); `resume` continues from there.
    pub async fn pause(&self) {
        let _ = self.commands.send(Command::Pause).await;
    }

    pub async fn resume(&self) {
        let _ = self.commands.send(Command::Resume).await;
    }

    /// Lets an incident that began before `accepted_ms` proceed: the rollback drops the
    /// partitions' documents and they are streamed again from the new history.
    pub async fn accept_rollback(&self, accepted_ms: u64) {
        let _ = self
            .commands
            .send(Command::AcceptRollback(accepted_ms))
            .await;
    }

    /// True once the feed has ended by itself (its PIndex failed to apply or commit); `stop`
    /// then returns the error.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the feed, commits, and hands the PIndex back.
    pub async fn stop(self) -> Result<Box<dyn PIndex>, FeedError> {
        let _ = self.commands.send(Command::Stop).await;
        self.task
            .await
            .map_err(|e| FeedError::Task(e.to_string()))?
    }
}

struct Applier {
    config: FeedConfig,
    counters: FeedCounters,
    /// The connections the partition readers stream over.
    session: Arc<dyn FeedSession>,
    status: Arc<Mutex<FeedStatus>>,
    readers: BTreeMap<u32, JoinHandle<()>>,
    items: (mpsc::Sender<Item>, mpsc::Receiver<Item>),
    /// When the held incident began (unix ms), if one is held.
    incident_since: Option<u64>,
    /// An operator accepted an incident of this feed: later rollbacks proceed.
    rollbacks_accepted: bool,
}

impl Applier {
    /// Whether `batch`'s rollbacks are an incident to hold (see [`crate::incident`]).
    async fn is_incident(
        &self,
        batch: &[Item],
        checkpoints: BTreeMap<u32, String>,
    ) -> Option<String> {
        if self.rollbacks_accepted || !batch.iter().any(|i| matches!(i, Item::Rollback { .. })) {
            return None;
        }
        crate::incident::check(
            self.config.source.as_ref(),
            &self.config.partitions,
            &checkpoints,
            CHECK_TIMEOUT,
        )
        .await
    }

    fn status(&self) -> FeedStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut FeedStatus)) {
        if let Ok(mut status) = self.status.lock() {
            f(&mut status);
        }
    }

    fn start_reader(&mut self, partition: u32, seq: u64, uuid: String) {
        if let Some(old) = self.readers.remove(&partition) {
            old.abort();
        }
        let reader = Reader {
            session: self.session.clone(),
            partition,
            items: self.items.0.clone(),
            status: self.status.clone(),
            counters: self.counters.clone(),
        };
        self.readers
            .insert(partition, tokio::spawn(reader.run(seq, uuid)));
    }

    fn start_readers(&mut self, pindex: &dyn PIndex) {
        let applied = pindex.applied().clone();
        for &p in &self.config.partitions.clone() {
            let (seq, uuid) = applied
                .get(&p)
                .map_or((0, String::new()), |c| (c.seq, c.partition_uuid.clone()));
            self.start_reader(p, seq, uuid);
        }
    }

    fn stop_readers(&mut self) {
        for (_, reader) in std::mem::take(&mut self.readers) {
            reader.abort();
        }
        self.update(|s| s.partitions.values_mut().for_each(|p| p.connected = false));
    }

    /// Commits (waiting first, off any thread, for a writer slot when the PIndex needs one).
    async fn commit(&self, mut pindex: Box<dyn PIndex>) -> Result<Box<dyn PIndex>, FeedError> {
        if pindex.needs_writer_slot() {
            if let Some(pool) = pindex.indexing_pool() {
                pindex.give_writer_slot(pool.writer_slot().await);
            }
        }
        let (pindex, result) =
            blocking(pindex, |p| p.commit().and_then(|()| p.doc_count())).await?;
        let docs = result?;
        self.update(|s| {
            s.commits += 1;
            s.docs = docs;
            s.pending_since_ms = None;
        });
        self.counters.commits.inc();
        Ok(pindex)
    }

    /// Closes the PIndex's writer if it holds nothing uncommitted, giving its slot back.
    async fn close_writer(&self, pindex: Box<dyn PIndex>) -> Result<Box<dyn PIndex>, FeedError> {
        let (pindex, closed) = blocking(pindex, |p| p.close_writer()).await?;
        closed?;
        Ok(pindex)
    }

    /// Commits and closes the writer, giving its slot back (pausing, stopping).
    async fn commit_and_close(
        &self,
        pindex: Box<dyn PIndex>,
    ) -> Result<Box<dyn PIndex>, FeedError> {
        let pindex = self.commit(pindex).await?;
        self.close_writer(pindex).await
    }

    async fn run(
        mut self,
        mut pindex: Box<dyn PIndex>,
        mut commands: mpsc::Receiver<Command>,
    ) -> Result<Box<dyn PIndex>, FeedError> {
        if !self.config.start_paused {
            self.start_readers(pindex.as_ref());
        }
        let checking = (self.config.source_partitions > 0).then(|| {
            let check = crate::incident::partition_count_mismatch(
                self.config.source.clone(),
                self.config.source_partitions,
            );
            let status = self.status.clone();
            tokio::spawn(async move {
                if let Some(why) = check.await {
                    tracing::error!(why, "source partition count differs from the definition");
                    if let Ok(mut s) = status.lock() {
                        s.mismatch = Some(why);
                    }
                }
            })
        });
        let _checking = AbortOnDrop(checking);
        // Queries waiting on seqs not yet visible: commit at once for them (`at_plus`).
        let demand = pindex.refresh_demand();
        let mut uncommitted = 0usize;
        let mut deadline: Option<tokio::time::Instant> = None;
        // A pooled PIndex's writer is closed once idle for this long (its slot, threads and
        // arena go back to the node).
        let pool = pindex.indexing_pool();
        let writer_idle = pool.as_ref().map(|p| p.limits().writer_idle);
        loop {
            let wake =
                deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            let close_at = writer_idle
                .zip(pindex.writer_idle_since())
                .map(|(idle, since)| tokio::time::Instant::from_std(since + idle));
            let holds_slot = pindex.holds_writer_slot();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Pause) => {
                        self.stop_readers();
                        pindex = self.commit_and_close(pindex).await?;
                        (uncommitted, deadline) = (0, None);
                        self.update(|s| s.paused = true);
                    }
                    Some(Command::Resume) if self.incident_since.is_some() => {
                        // Held by an incident: resuming waits for the accept.
                        self.update(|s| s.paused = false);
                    }
                    Some(Command::Resume) => {
                        self.update(|s| s.paused = false);
                        // Drop what paused readers left behind; positions come from the PIndex.
                        while self.items.1.try_recv().is_ok() {}
                        self.start_readers(pindex.as_ref());
                    }
                    Some(Command::Stop) | None => {
                        self.stop_readers();
                        return self.commit_and_close(pindex).await;
                    }
                    Some(Command::AcceptRollback(at)) => {
                        if self.incident_since.is_some_and(|since| since <= at) {
                            tracing::warn!(source = self.config.source.describe(), "incident accepted: rolling back to the source's new history");
                            self.incident_since = None;
                            self.rollbacks_accepted = true;
                            self.update(|s| s.incident = None);
                            while self.items.1.try_recv().is_ok() {}
                            if !self.status().paused {
                                self.start_readers(pindex.as_ref());
                            }
                        }
                    }
                },
                Some(first) = self.items.1.recv() => {
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match self.items.1.try_recv() {
                            Ok(item) => batch.push(item),
                            Err(_) => break,
                        }
                    }
                    let checkpoints = pindex
                        .applied()
                        .iter()
                        .map(|(p, c)| (*p, c.partition_uuid.clone()))
                        .collect();
                    if let Some(why) = self.is_incident(&batch, checkpoints).await {
                        // Hold everything: what was read is read again from the checkpoints
                        // once an operator accepts.
                        tracing::error!(source = self.config.source.describe(), why, "source history replaced: feed held");
                        self.stop_readers();
                        while self.items.1.try_recv().is_ok() {}
                        self.incident_since = Some(now_ms());
                        self.update(|s| s.incident = Some(why));
                        continue;
                    }
                    // Past the node's indexing budget: give back what this PIndex holds, then
                    // wait for room before applying more.
                    while let Some(pool) = pool.as_ref().filter(|p| p.over_budget()) {
                        if uncommitted > 0 {
                            pindex = self.commit(pindex).await?;
                            (uncommitted, deadline) = (0, None);
                        } else if pindex.holds_writer_slot() {
                            pindex = self.close_writer(pindex).await?;
                        } else {
                            pool.within_budget().await;
                        }
                    }
                    let applied = batch.len();
                    let (back, result) = blocking(pindex, move |p| apply_batch(p, batch)).await?;
                    pindex = back;
                    let rollbacks = result?;
                    uncommitted += applied;
                    deadline.get_or_insert(tokio::time::Instant::now() + self.config.commit_interval);
                    let positions = pindex.applied().clone();
                    self.counters.changes.inc_by(applied as u64);
                    self.counters.rollbacks.inc_by(rollbacks.len() as u64);
                    self.update(|s| {
                        s.applied += applied as u64;
                        s.rollbacks += rollbacks.len() as u64;
                        s.pending_since_ms.get_or_insert_with(now_ms);
                        for (p, c) in &positions {
                            let entry = s.partitions.entry(*p).or_default();
                            entry.seq = c.seq;
                            entry.partition_uuid = c.partition_uuid.clone();
                        }
                    });
                    for (partition, uuid) in rollbacks {
                        tracing::warn!(source = self.config.source.describe(), partition, "source history changed; streaming the partition again");
                        self.start_reader(partition, 0, uuid);
                    }
                    // Queries waiting, or the node's indexing budget asking for this buffer.
                    let asked =
                        demand.as_ref().is_some_and(|d| d.waiting()) || pindex.commit_wanted();
                    if uncommitted >= self.config.commit_every || asked {
                        pindex = self.commit(pindex).await?;
                        (uncommitted, deadline) = (0, None);
                    }
                }
                () = asked(&demand), if uncommitted > 0 => {
                    pindex = self.commit(pindex).await?;
                    (uncommitted, deadline) = (0, None);
                }
                () = tokio::time::sleep_until(wake), if deadline.is_some() => {
                    pindex = self.commit(pindex).await?;
                    (uncommitted, deadline) = (0, None);
                }
                () = sleep_until_some(close_at), if close_at.is_some() && uncommitted == 0 => {
                    pindex = self.close_writer(pindex).await?;
                }
                // Another PIndex waits for a writer slot, or the budget is exceeded.
                () = wants_back(pool.as_deref(), holds_slot, uncommitted > 0), if pool.is_some() && (holds_slot || uncommitted > 0) => {
                    if uncommitted > 0 {
                        pindex = self.commit(pindex).await?;
                        (uncommitted, deadline) = (0, None);
                    }
                    pindex = self.close_writer(pindex).await?;
                }
            }
        }
    }
}

/// Resolves when a query begins to wait on the PIndex (never for types without readers).
async fn asked(demand: &Option<std::sync::Arc<tessera_index::RefreshDemand>>) {
    match demand {
        Some(d) => d.asked().await,
        None => std::future::pending().await,
    }
}

/// Applies items in order; returns the partitions that were rolled back (dropped) with the
/// uuid to stream them again under.
fn apply_batch(
    pindex: &mut Box<dyn PIndex>,
    batch: Vec<Item>,
) -> Result<Vec<(u32, String)>, IndexError> {
    let mut rollbacks = Vec::new();
    for item in batch {
        match item {
            Item::Put {
                partition,
                uuid,
                seq,
                key,
                doc,
            } => pindex.apply(
                partition,
                &uuid,
                seq,
                Change::Put {
                    key: &key,
                    doc: &doc,
                },
            )?,
            Item::Delete {
                partition,
                uuid,
                seq,
                key,
            } => pindex.apply(partition, &uuid, seq, Change::Delete { key: &key })?,
            Item::Skip {
                partition,
                uuid,
                seq,
            } => pindex.apply(partition, &uuid, seq, Change::Skip)?,
            Item::Rollback { partition, uuid } => {
                pindex.drop_partition(partition)?;
                rollbacks.push((partition, uuid));
            }
        }
    }
    Ok(rollbacks)
}

async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves when the node's pool wants back what the feed holds (see
/// `IndexingPool::wants_back`); never without a pool.
async fn wants_back(
    pool: Option<&tessera_index::IndexingPool>,
    holds_slot: bool,
    holds_changes: bool,
) {
    match pool {
        Some(pool) => pool.wants_back(holds_slot, holds_changes).await,
        None => std::future::pending().await,
    }
}

/// Runs `f` on the PIndex on a blocking thread (one of its node pool's, when it has one) and
/// gives the PIndex back.
async fn blocking<T: Send + 'static>(
    mut pindex: Box<dyn PIndex>,
    f: impl FnOnce(&mut Box<dyn PIndex>) -> T + Send + 'static,
) -> Result<(Box<dyn PIndex>, T), FeedError> {
    let pool = pindex.indexing_pool();
    let work = move || {
        let out = f(&mut pindex);
        (pindex, out)
    };
    match pool {
        Some(pool) => pool.run(work).await,
        None => tokio::task::spawn_blocking(work).await,
    }
    .map_err(|e| FeedError::Task(e.to_string()))
}
