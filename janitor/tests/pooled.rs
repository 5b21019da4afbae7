//! Feeds of PIndexes sharing a node's indexing pool, against a real source server: a burst
//! larger than the memory budget is indexed completely and exactly (the budget makes the
//! largest buffers commit), and a writer closed when idle reopens for the next changes with
//! counts, checkpoints and `at_plus` exact across it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{caught_up_within, free_address, highs, serve_on, PARTITIONS};
use tessera_index::{IndexingLimits, IndexingPool, PIndex};
use tessera_janitor::feed::{Feed, FeedConfig};
use tessera_source::{Append, SourceLog};

const MB: u64 = 1 << 20;

fn pool(memory: u64, writers: usize, idle: Duration) -> Arc<IndexingPool> {
    IndexingPool::new(IndexingLimits {
        memory,
        threads: 1,
        writers,
        writer_idle: idle,
    })
    .unwrap()
}

/// Documents of about `size` bytes.
fn big_docs(range: std::ops::Range<u32>, size: usize) -> Vec<Append> {
    let body = "word ".repeat(size / 5);
    range
        .map(|i| Append::Put {
            key: format!("doc-{i}"),
            doc: format!("{{\"title\": \"book {i}\", \"body\": \"{body}\"}}").into_bytes(),
        })
        .collect()
}

fn feed_config(address: std::net::SocketAddr, partitions: Vec<u32>) -> FeedConfig {
    FeedConfig {
        index: "test".into(),
        source: tessera_sources::reference::ReferenceSource::at(
            format!("http://{address}"),
            "docs",
        ),
        partitions,
        // Only the budget (or stopping) commits.
        commit_every: usize::MAX,
        commit_interval: Duration::from_secs(600),
        source_partitions: PARTITIONS,
        start_paused: false,
    }
}

fn open(dir: &std::path::Path, pool: Option<Arc<IndexingPool>>) -> Box<dyn PIndex> {
    tessera_index::open_in("fulltext", dir, &serde_json::Value::Null, pool).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_larger_than_the_budget_is_indexed_completely_and_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let log = SourceLog::open(&dir.path().join("source.redb"), PARTITIONS).unwrap();
    // 12,000 documents of 4 kB: about 100 MB buffered if nothing committed, against 30 MB.
    const DOCS: u32 = 12_000;
    for start in (0..DOCS).step_by(1000) {
        log.append("docs", &big_docs(start..start + 1000, 4096))
            .unwrap();
    }
    let address = free_address();
    let _server = serve_on(log.clone(), address).await;
    let memory = tessera_index::pool::MIN_MEMORY;
    let pool = pool(memory, 1, Duration::from_secs(600));

    // One PIndex per source partition, all drawing on the one budget.
    let feeds: Vec<Feed> = (0..PARTITIONS)
        .map(|p| {
            let pindex = open(&dir.path().join(format!("p{p}")), Some(pool.clone()));
            Feed::start(pindex, feed_config(address, vec![p]))
        })
        .collect();
    let mut most_used = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let want = highs(&log);
    loop {
        most_used = most_used.max(pool.usage().memory_used);
        let done = feeds.iter().enumerate().all(|(p, feed)| {
            let status = feed.status();
            status.partitions.get(&(p as u32)).map(|s| s.seq) == want.get(&(p as u32)).copied()
        });
        if done {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the burst was not applied within 120 s: {:?}",
            pool.usage()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let usage = pool.usage();
    assert!(
        usage.budget_commits > 0,
        "the budget asked for no commit: {usage:?}"
    );
    // Over the budget by at most about a batch per feed (applied before the ask was seen),
    // far below the 100 MB the burst would hold at its end had nothing committed early.
    assert!(
        most_used < memory * 5 / 2,
        "{most_used} bytes used against a budget of {memory}"
    );
    let mut total = 0;
    for feed in feeds {
        let pindex = feed.stop().await.unwrap();
        total += pindex.doc_count().unwrap();
    }
    assert_eq!(total, u64::from(DOCS), "every document, once");
    assert_eq!(pool.usage().buffered_bytes, 0);
    assert_eq!(
        pool.usage().writers_open,
        0,
        "stopped feeds close their writers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_writer_closes_and_reopens_with_counts_and_at_plus_exact() {
    let dir = tempfile::tempdir().unwrap();
    let log = SourceLog::open(&dir.path().join("source.redb"), PARTITIONS).unwrap();
    log.append("docs", &big_docs(0..500, 64)).unwrap();
    let address = free_address();
    let _server = serve_on(log.clone(), address).await;
    let pool = pool(256 * MB, 2, Duration::from_millis(100));
    let pindex_dir = dir.path().join("pindex");
    let pindex = open(&pindex_dir, Some(pool.clone()));
    let search = pindex.searchable().unwrap();
    let feed = Feed::start(
        pindex,
        FeedConfig {
            index: "test".into(),
            commit_interval: Duration::from_millis(50),
            ..feed_config(address, (0..PARTITIONS).collect())
        },
    );
    caught_up_within(&feed, &log, "first catch-up", Duration::from_secs(30)).await;

    let closed = |what: &'static str| {
        let pool = pool.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while pool.usage().writers_open > 0 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{what}: the idle writer never closed: {:?}",
                    pool.usage()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    // Committed first (the writer may still be closed then, the changes buffered), then the
    // writer the commit opened closes once idle.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while feed.status().docs < 500 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first 500 never committed: {:?}",
            feed.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    closed("after the first commit").await;
    assert!(pool.usage().writers_opened >= 1);
    assert_eq!(search.searcher().num_docs(), 500);
    let opened = pool.usage().writers_opened;

    // New changes while no writer is open: an at_plus wait gets them (the feed takes a
    // writer at once for the waiting query), with updates and deletes applied once.
    let mut changes = big_docs(500..800, 64);
    changes.push(Append::Delete {
        key: "doc-3".into(),
    });
    changes.extend(big_docs(10..20, 64));
    log.append("docs", &changes).unwrap();
    let wanted: Vec<(u32, u64)> = highs(&log).into_iter().collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    search
        .wait_visible(&wanted, deadline)
        .await
        .expect("at_plus sees what the source had, across the writer's reopening");
    assert_eq!(search.searcher().num_docs(), 799);
    assert!(
        pool.usage().writers_opened > opened,
        "the writer reopened for the new changes"
    );
    closed("after the second commit").await;

    let pindex = feed.stop().await.unwrap();
    let committed: Vec<(u32, u64)> = pindex
        .committed()
        .iter()
        .map(|(p, c)| (*p, c.seq))
        .collect();
    assert_eq!(
        committed, wanted,
        "the checkpoints are the source's high seqs"
    );
    drop(pindex);
    // Reopened from disk (without a pool): the same documents and checkpoints.
    let again = open(&pindex_dir, None);
    assert_eq!(again.doc_count().unwrap(), 799);
    let reopened: Vec<(u32, u64)> = again.committed().iter().map(|(p, c)| (*p, c.seq)).collect();
    assert_eq!(reopened, wanted);
}
