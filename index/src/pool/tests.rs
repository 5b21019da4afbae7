use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;

const MB: u64 = 1 << 20;

fn limits(memory: u64, writers: usize) -> IndexingLimits {
    IndexingLimits {
        memory,
        threads: 1,
        writers,
        writer_idle: Duration::from_millis(100),
    }
}

#[test]
fn the_budget_bounds_writers_and_their_arenas() {
    // Plenty of memory: the asked writers, each at the largest arena.
    let roomy = limits(4096 * MB, 8);
    assert_eq!(roomy.effective_writers(), 8);
    assert_eq!(roomy.writer_memory(), MAX_WRITER_MEMORY);
    // Half of 100 MB in arenas of at least 15 MB: three writers, 16.6 MB each.
    let tight = limits(100 * MB, 8);
    assert_eq!(tight.effective_writers(), 3);
    assert_eq!(tight.writer_memory(), 100 * MB / 2 / 3);
    // The least budget: one writer at tantivy's least arena.
    let least = limits(MIN_MEMORY, 8);
    assert_eq!(least.effective_writers(), 1);
    assert_eq!(least.writer_memory(), MIN_WRITER_MEMORY);
}

#[test]
fn limits_below_the_least_are_refused_naming_what() {
    assert_eq!(
        limits(MIN_MEMORY - 1, 1).validate(),
        Err(LimitsError::Memory(MIN_MEMORY - 1))
    );
    assert_eq!(limits(MIN_MEMORY, 0).validate(), Err(LimitsError::Writers));
    let no_threads = IndexingLimits {
        threads: 0,
        ..limits(MIN_MEMORY, 1)
    };
    assert_eq!(no_threads.validate(), Err(LimitsError::Threads));
    assert!(IndexingLimits::for_machine().validate().is_ok());
}

#[test]
fn past_the_budget_the_largest_buffers_are_asked_to_commit_first() {
    let pool = IndexingPool::new(limits(100 * MB, 1)).unwrap();
    let (a, b, c) = (pool.buffer(), pool.buffer(), pool.buffer());
    a.add(40 * MB);
    b.add(5 * MB);
    c.add(30 * MB);
    assert!(
        ![&a, &b, &c].iter().any(|x| x.commit_wanted()),
        "within budget"
    );
    assert_eq!(pool.usage().buffered_bytes, 75 * MB);
    // 110 MB: to come back within 75 MB, the largest (a, 50 MB) is asked and it suffices.
    a.add(10 * MB);
    b.add(25 * MB);
    assert!(a.commit_wanted(), "the largest buffer is asked first");
    assert!(!b.commit_wanted() && !c.commit_wanted());
    assert_eq!(pool.usage().budget_commits, 1);
    // c grows while a commits: a's 50 MB are not counted again, 70 MB is within budget.
    c.add(10 * MB);
    assert!(!c.commit_wanted());
    // a commits: its bytes leave the budget and it is no longer asked.
    a.release();
    assert!(!a.commit_wanted());
    assert_eq!(pool.usage().buffered_bytes, 70 * MB);
    // A buffer dropped (its PIndex closed) leaves nothing counted.
    drop(c);
    assert_eq!(pool.usage().buffered_bytes, 30 * MB);
}

#[test]
fn an_open_writer_counts_its_arena_against_the_budget() {
    let pool = IndexingPool::new(limits(64 * MB, 1)).unwrap();
    let buffer = pool.buffer();
    buffer.add(20 * MB);
    assert!(!buffer.commit_wanted());
    let slot = pool.try_writer_slot().expect("a free slot");
    assert_eq!(pool.usage().memory_used, 20 * MB + pool.writer_memory());
    assert!(pool.try_writer_slot().is_none(), "one writer at most");
    buffer.add(20 * MB);
    assert!(
        buffer.commit_wanted(),
        "40 MB buffered + a 32 MB arena > 64 MB"
    );
    drop(slot);
    assert_eq!(pool.usage().writers_open, 0);
}

#[tokio::test]
async fn a_feed_waits_for_a_writer_slot_until_one_is_given_back() {
    let pool = IndexingPool::new(limits(1024 * MB, 2)).unwrap();
    let first = pool.writer_slot().await;
    let _second = pool.writer_slot().await;
    assert!(!pool.has_waiters());
    let waiting = tokio::spawn({
        let pool = pool.clone();
        async move { pool.writer_slot().await }
    });
    tokio::time::timeout(Duration::from_secs(10), async {
        while !pool.has_waiters() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the third feed to wait");
    assert_eq!(pool.usage().writers_waiting, 1);
    drop(first);
    let third = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the slot given back reaches the waiting feed")
        .unwrap();
    assert!(!pool.has_waiters());
    assert_eq!(pool.usage().writers_open, 2);
    drop(third);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_work_runs_at_most_threads_at_once() {
    let pool = IndexingPool::new(IndexingLimits {
        threads: 2,
        ..limits(1024 * MB, 1)
    })
    .unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
            tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(most.load(Ordering::SeqCst), 2);
}
