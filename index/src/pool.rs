//! One node's indexing resources, shared by every PIndex it hosts.
//!
//! A tantivy writer costs an indexing thread, a segment-updater thread, merge threads and an
//! indexing arena for as long as it is open. Kept open for a PIndex's whole life, that made a
//! node's threads and memory grow with the number of PIndexes whatever their size (4.6 MB and
//! six threads each, measured). A node's PIndexes share this pool instead:
//! - feeds run their blocking work (applying changes, committing) as at most
//!   [`IndexingLimits::threads`] blocking tasks at once ([`IndexingPool::run`]);
//! - at most [`IndexingLimits::writers`] tantivy writers are open at once
//!   ([`IndexingPool::writer_slot`]); a PIndex without a writer buffers its changes (parsed
//!   documents and deletes, in order) and takes a writer slot when it commits; a writer with
//!   nothing to commit is closed after [`IndexingLimits::writer_idle`], and at once after a
//!   commit when another PIndex waits for a slot;
//! - buffered changes and open writers' arenas draw on one memory budget
//!   ([`IndexingLimits::memory`]); past it, the PIndexes with the largest buffers are asked to
//!   commit first ([`Buffer::commit_wanted`]); while it stays exceeded, every PIndex holding
//!   changes commits them and the others wait before applying more
//!   ([`IndexingPool::within_budget`]). A feed holding a writer commits and closes it as
//!   soon as another waits for a slot ([`IndexingPool::wants_back`]).
//!
//! Nothing here waits while holding anything another waiter needs: a feed awaits its writer
//! slot (or the budget) holding no thread, no uncommitted change and no writer, and a
//! thread's work (apply, commit, close) never waits on the pool, so a node cannot deadlock on
//! its own limits.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Tantivy's least indexing memory per writer thread.
pub const MIN_WRITER_MEMORY: u64 = 15_000_000;
/// The most a writer's arena gets (more buys little for PIndex-sized segments).
pub const MAX_WRITER_MEMORY: u64 = 32 << 20;
/// The least budget a node may be given: one writer and as much again for buffers.
pub const MIN_MEMORY: u64 = 2 * MIN_WRITER_MEMORY;

/// What a node's PIndexes may use together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexingLimits {
    /// Bytes for every buffered change and every open writer's arena together.
    pub memory: u64,
    /// Blocking indexing tasks at once (applying, committing): about the cores.
    pub threads: usize,
    /// Tantivy writers open at once (each holds three threads while open).
    pub writers: usize,
    /// A writer with nothing uncommitted for this long is closed.
    pub writer_idle: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitsError {
    #[error(
        "indexing memory: {0} bytes is below the least, {MIN_MEMORY} (one writer and its buffers)"
    )]
    Memory(u64),
    #[error("indexing threads: at least 1")]
    Threads,
    #[error("indexing writers: at least 1")]
    Writers,
}

impl IndexingLimits {
    /// This machine's defaults: a tenth of its memory (at least 256 MiB), a thread per core,
    /// four writers per core, writers closed after 3 s idle.
    pub fn for_machine() -> Self {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            memory: (machine_memory() / 10).max(256 << 20),
            threads,
            writers: 4 * threads,
            writer_idle: Duration::from_secs(3),
        }
    }

    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.memory < MIN_MEMORY {
            return Err(LimitsError::Memory(self.memory));
        }
        if self.threads == 0 {
            return Err(LimitsError::Threads);
        }
        if self.writers == 0 {
            return Err(LimitsError::Writers);
        }
        Ok(())
    }

    /// Each writer's arena: an even share of half the budget (the other half is for
    /// buffers), within tantivy's least and [`MAX_WRITER_MEMORY`].
    pub fn writer_memory(&self) -> u64 {
        (self.memory / 2 / self.effective_writers() as u64)
            .clamp(MIN_WRITER_MEMORY, MAX_WRITER_MEMORY)
    }

    /// The writers the budget allows: no more than half of it in arenas, and at least one.
    pub fn effective_writers(&self) -> usize {
        let affordable = (self.memory / 2 / MIN_WRITER_MEMORY).max(1) as usize;
        self.writers.min(affordable).max(1)
    }
}

/// Total memory of this machine from `/proc/meminfo` (4 GiB when it cannot be read).
fn machine_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(4 << 30, |kb| kb * 1024)
}

/// The pool's figures, for a node's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IndexingUsage {
    pub memory_limit: u64,
    /// Buffered changes plus open writers' arenas.
    pub memory_used: u64,
    pub buffered_bytes: u64,
    pub writers_open: usize,
    pub writers_limit: usize,
    /// Feeds waiting for a writer slot.
    pub writers_waiting: usize,
    pub writer_memory: u64,
    pub threads_limit: usize,
    /// Blocking indexing tasks running now.
    pub threads_busy: usize,
    /// Times the budget asked a PIndex to commit early.
    pub budget_commits: u64,
    /// Writers opened and closed since the node started.
    pub writers_opened: u64,
    pub writers_closed: u64,
}

/// The node's shared indexing resources (see the module docs).
pub struct IndexingPool {
    limits: IndexingLimits,
    writer_memory: u64,
    threads: Semaphore,
    writers: Arc<Semaphore>,
    waiting: AtomicUsize,
    /// Wakes the feeds holding writers when a feed must wait for a slot.
    wanted: tokio::sync::Notify,
    /// Wakes feeds waiting for the budget when buffers or writers give memory back.
    freed: tokio::sync::Notify,
    open: AtomicUsize,
    buffered: AtomicU64,
    /// Bytes of the buffers already asked to commit (not counted again while they do).
    asked: AtomicU64,
    buffers: Mutex<Vec<Weak<Buffer>>>,
    budget_commits: AtomicU64,
    opened: AtomicU64,
    closed: AtomicU64,
}

impl std::fmt::Debug for IndexingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexingPool")
            .field("limits", &self.limits)
            .field("usage", &self.usage())
            .finish()
    }
}

impl IndexingPool {
    pub fn new(limits: IndexingLimits) -> Result<Arc<Self>, LimitsError> {
        limits.validate()?;
        Ok(Arc::new(Self {
            writer_memory: limits.writer_memory(),
            threads: Semaphore::new(limits.threads),
            writers: Arc::new(Semaphore::new(limits.effective_writers())),
            limits,
            waiting: AtomicUsize::new(0),
            wanted: tokio::sync::Notify::new(),
            freed: tokio::sync::Notify::new(),
            open: AtomicUsize::new(0),
            buffered: AtomicU64::new(0),
            asked: AtomicU64::new(0),
            buffers: Mutex::new(Vec::new()),
            budget_commits: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            closed: AtomicU64::new(0),
        }))
    }

    pub fn limits(&self) -> &IndexingLimits {
        &self.limits
    }

    /// The arena each writer opens with.
    pub fn writer_memory(&self) -> u64 {
        self.writer_memory
    }

    /// Runs `f` on the blocking pool once one of the pool's threads is free.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        // The semaphore is never closed: a failed acquire cannot happen; run anyway if it did.
        let _permit = self.threads.acquire().await.ok();
        tokio::task::spawn_blocking(f).await
    }

    /// Waits for a writer slot; the writer it allows is open until the slot is dropped.
    pub async fn writer_slot(self: &Arc<Self>) -> WriterSlot {
        if let Some(slot) = self.try_writer_slot() {
            return slot;
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.wanted.notify_waiters();
        let permit = self.writers.clone().acquire_owned().await.ok();
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        self.slot(permit)
    }

    /// Resolves when `holding` (what a feed holds: a writer slot, uncommitted changes) should
    /// be given back: at once if it should already. A writer slot is wanted when a feed waits
    /// for one or the budget is exceeded; changes are wanted committed when the budget is
    /// exceeded.
    pub async fn wants_back(&self, holds_slot: bool, holds_changes: bool) {
        loop {
            let notified = self.wanted.notified();
            tokio::pin!(notified);
            // Registered before looking, so a change in between is not missed.
            notified.as_mut().enable();
            let over = self.over_budget();
            if (holds_slot && (over || self.has_waiters())) || (holds_changes && over) {
                return;
            }
            notified.await;
        }
    }

    /// Whether buffers and writers together use more than the budget (a feed then commits
    /// what it holds, or waits before applying more: [`IndexingPool::within_budget`]).
    pub fn over_budget(&self) -> bool {
        self.used() > self.limits.memory
    }

    /// Resolves once the budget is no longer exceeded (feeds holding changes are told to
    /// commit them meanwhile).
    pub async fn within_budget(&self) {
        self.wanted.notify_waiters();
        loop {
            let notified = self.freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.over_budget() {
                return;
            }
            // A bounded wait as well: memory given back by a path that does not notify (a
            // buffer dropped with its PIndex) is seen within it.
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
        }
    }

    /// A writer slot if one is free now.
    pub fn try_writer_slot(self: &Arc<Self>) -> Option<WriterSlot> {
        let permit = self.writers.clone().try_acquire_owned().ok()?;
        Some(self.slot(Some(permit)))
    }

    fn slot(self: &Arc<Self>, permit: Option<OwnedSemaphorePermit>) -> WriterSlot {
        self.open.fetch_add(1, Ordering::SeqCst);
        self.opened.fetch_add(1, Ordering::Relaxed);
        self.check_budget();
        WriterSlot {
            _permit: permit,
            pool: self.clone(),
        }
    }

    /// Whether a feed waits for a writer slot (a writer just committed should then close).
    pub fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }

    /// A buffer for one PIndex's changes, counted against the budget.
    pub fn buffer(self: &Arc<Self>) -> Arc<Buffer> {
        let buffer = Arc::new(Buffer {
            bytes: AtomicU64::new(0),
            asked: AtomicU64::new(0),
            pool: self.clone(),
        });
        if let Ok(mut buffers) = self.buffers.lock() {
            buffers.retain(|b| b.strong_count() > 0);
            buffers.push(Arc::downgrade(&buffer));
        }
        buffer
    }

    fn used(&self) -> u64 {
        self.buffered.load(Ordering::SeqCst)
            + self.open.load(Ordering::SeqCst) as u64 * self.writer_memory
    }

    /// Past the budget (not counting buffers already asked), asks the largest buffers to
    /// commit until what remains is within three quarters of it.
    fn check_budget(&self) {
        let used = self.used();
        let asked = self.asked.load(Ordering::SeqCst);
        if used.saturating_sub(asked) <= self.limits.memory {
            return;
        }
        let Ok(buffers) = self.buffers.lock() else {
            return;
        };
        // Checked again under the lock: another thread may have asked meanwhile.
        let asked = self.asked.load(Ordering::SeqCst);
        let mut excess = self
            .used()
            .saturating_sub(asked)
            .saturating_sub(self.limits.memory * 3 / 4);
        if excess == 0 {
            return;
        }
        let mut candidates: Vec<(u64, Arc<Buffer>)> = buffers
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|b| b.asked.load(Ordering::SeqCst) == 0)
            .map(|b| (b.bytes.load(Ordering::SeqCst), b))
            .filter(|(bytes, _)| *bytes > 0)
            .collect();
        candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
        for (bytes, buffer) in candidates {
            if excess == 0 {
                break;
            }
            buffer.asked.store(bytes, Ordering::SeqCst);
            self.asked.fetch_add(bytes, Ordering::SeqCst);
            self.budget_commits.fetch_add(1, Ordering::Relaxed);
            excess = excess.saturating_sub(bytes);
        }
        self.wanted.notify_waiters();
    }

    pub fn usage(&self) -> IndexingUsage {
        IndexingUsage {
            memory_limit: self.limits.memory,
            memory_used: self.used(),
            buffered_bytes: self.buffered.load(Ordering::SeqCst),
            writers_open: self.open.load(Ordering::SeqCst),
            writers_limit: self.limits.effective_writers(),
            writers_waiting: self.waiting.load(Ordering::SeqCst),
            writer_memory: self.writer_memory,
            threads_limit: self.limits.threads,
            threads_busy: self.limits.threads - self.threads.available_permits(),
            budget_commits: self.budget_commits.load(Ordering::Relaxed),
            writers_opened: self.opened.load(Ordering::Relaxed),
            writers_closed: self.closed.load(Ordering::Relaxed),
        }
    }
}

/// Leave to keep one tantivy writer open; dropping it gives the slot back.
pub struct WriterSlot {
    /// `None` only if the pool's semaphore were closed (it never is).
    _permit: Option<OwnedSemaphorePermit>,
    pool: Arc<IndexingPool>,
}

impl Drop for WriterSlot {
    fn drop(&mut self) {
        self.pool.open.fetch_sub(1, Ordering::SeqCst);
        self.pool.closed.fetch_add(1, Ordering::Relaxed);
        self.pool.freed.notify_waiters();
    }
}

/// One PIndex's buffered changes as the budget sees them: their estimated bytes, and whether
/// the budget asked it to commit.
pub struct Buffer {
    bytes: AtomicU64,
    /// The bytes it held when the budget asked it to commit (0: not asked).
    asked: AtomicU64,
    pool: Arc<IndexingPool>,
}

impl Buffer {
    /// Counts `bytes` more buffered.
    pub fn add(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::SeqCst);
        self.pool.buffered.fetch_add(bytes, Ordering::SeqCst);
        self.pool.check_budget();
    }

    /// Everything buffered went into a writer (or was dropped).
    pub fn release(&self) {
        let bytes = self.bytes.swap(0, Ordering::SeqCst);
        self.pool.buffered.fetch_sub(bytes, Ordering::SeqCst);
        let asked = self.asked.swap(0, Ordering::SeqCst);
        self.pool.asked.fetch_sub(asked, Ordering::SeqCst);
        if bytes > 0 {
            self.pool.freed.notify_waiters();
        }
    }

    /// Whether the budget asked this PIndex to commit (its buffer is among the largest).
    pub fn commit_wanted(&self) -> bool {
        self.asked.load(Ordering::SeqCst) > 0
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests;
