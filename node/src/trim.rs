//! Gives freed heap memory back to the operating system after writers close. glibc's
//! allocator keeps what tantivy's writers freed (arenas of several MB per writer, spread over
//! many per-thread heaps) for reuse, so a node that indexed a burst into many PIndexes would
//! stay at its peak resident size while idle. `malloc_trim` returns it: when writers closed
//! since the last run and none is open (the node's indexing is idle), or at most once a
//! minute while some stay open. Not more often: while PIndexes index, what a closed writer
//! freed is what the next one allocates, and trimming it costs page faults to get it back.

use std::sync::Arc;
use std::time::Duration;

use tessera_index::IndexingPool;

const EVERY: Duration = Duration::from_secs(5);
/// While writers stay open, trim no more often than this.
const BUSY_EVERY: Duration = Duration::from_secs(60);

/// Runs until the process ends.
pub async fn run(pool: Arc<IndexingPool>) {
    let mut trimmed_at = 0;
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(EVERY).await;
        let usage = pool.usage();
        let idle = usage.writers_open == 0;
        if usage.writers_closed == trimmed_at || (!idle && last.elapsed() < BUSY_EVERY) {
            continue;
        }
        trimmed_at = usage.writers_closed;
        last = tokio::time::Instant::now();
        let _ = tokio::task::spawn_blocking(trim).await;
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    extern "C" {
        /// glibc: releases free memory at the top of the heap and free whole pages elsewhere in
        /// every arena; always safe to call.
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: malloc_trim takes no pointers and may be called at any time from any thread.
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
