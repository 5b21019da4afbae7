//! Feeds against a real source server on loopback: catch-up and live changes, a source
//! restart mid-stream (nothing lost or duplicated), pause/resume, restart from checkpoints,
//! and a rollback when the source's history is replaced.

use std::collections::BTreeMap;
use std::time::Duration;

use tessera_janitor::feed::{Feed, FeedConfig};
use tessera_source::{Append, SourceLog};

mod common;

use common::{
    caught_up, caught_up_within, config, docs, free_address, highs, serve_on, Server, PARTITIONS,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_catches_up_survives_a_source_restart_and_resumes_from_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let log = SourceLog::open(&dir.path().join("source.redb"), PARTITIONS).unwrap();
    log.append("docs", &docs(0..2000)).unwrap();
    let address = free_address();
    let server = serve_on(log.clone(), address).await;

    let pindex_dir = dir.path().join("pindex");
    let pindex = tessera_index::open("fulltext", &pindex_dir, &serde_json::Value::Null).unwrap();
    let feed = Feed::start(pindex, config(address));
    caught_up(&feed, &log, "initial catch-up").await;

    // Live changes, then the source goes away mid-stream and comes back.
    log.append("docs", &docs(2000..2500)).unwrap();
    drop(server);
    log.append(
        "docs",
        &[
            Append::Delete {
                key: "doc-7".into(),
            },
            Append::Put {
                key: "doc-8".into(),
                doc: b"{\"title\": \"changed\"}".to_vec(),
            },
        ],
    )
    .unwrap();
    log.append("docs", &docs(2500..3000)).unwrap();
    let server = serve_on(log.clone(), address).await;
    caught_up(&feed, &log, "after the source restart").await;
    assert!(feed.status().reconnects > 0, "the feed had to reconnect");

    let pindex = feed.stop().await.unwrap();
    assert_eq!(
        pindex.doc_count().unwrap(),
        2999,
        "3000 documents, one deleted: nothing lost, nothing doubled"
    );
    let committed: BTreeMap<u32, u64> = pindex
        .committed()
        .iter()
        .map(|(p, c)| (*p, c.seq))
        .collect();
    assert_eq!(committed, highs(&log), "stop commits everything applied");
    drop(pindex);

    // Reopened, the PIndex resumes from its checkpoints: only new changes are applied.
    log.append("docs", &docs(3000..3100)).unwrap();
    let pindex = tessera_index::open("fulltext", &pindex_dir, &serde_json::Value::Null).unwrap();
    let feed = Feed::start(pindex, config(address));
    caught_up(&feed, &log, "resume").await;
    assert_eq!(
        feed.status().applied,
        100,
        "a resumed feed re-applies nothing"
    );
    let pindex = feed.stop().await.unwrap();
    assert_eq!(pindex.doc_count().unwrap(), 3099);
    drop(server);
}

/// A source of `partitions` holding documents `0..docs`, served on loopback.
struct Served {
    dir: tempfile::TempDir,
    log: SourceLog,
    address: std::net::SocketAddr,
    _server: Server,
}

async fn served(partitions: u32, docs_written: u32) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let log = SourceLog::open(&dir.path().join("source.redb"), partitions).unwrap();
    log.append("docs", &docs(0..docs_written)).unwrap();
    let address = free_address();
    let server = serve_on(log.clone(), address).await;
    Served {
        dir,
        log,
        address,
        _server: server,
    }
}

/// A blackhole PIndex in `name` under `dir`.
fn blackhole(dir: &std::path::Path, name: &str) -> Box<dyn tessera_index::PIndex> {
    tessera_index::open("blackhole", &dir.join(name), &serde_json::Value::Null).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_keeps_the_position_and_resume_continues() {
    // Bound by name (not `..`), so the server lives to the end of the test.
    let Served {
        dir,
        log,
        address,
        _server,
    } = served(PARTITIONS, 100).await;
    let feed = Feed::start(blackhole(dir.path(), "bh"), config(address));
    caught_up(&feed, &log, "catch-up").await;
    feed.pause().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !feed.status().paused {
        assert!(tokio::time::Instant::now() < deadline, "pause not taken");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = feed.status().applied;
    log.append("docs", &docs(100..200)).unwrap();
    // A witness feed over the same partitions sees the new changes arrive: had the paused feed
    // been reading, it would have had them by then too.
    let witness = Feed::start(blackhole(dir.path(), "witness"), config(address));
    caught_up(&witness, &log, "witness").await;
    witness.stop().await.unwrap();
    assert_eq!(
        feed.status().applied,
        before,
        "a paused feed applied changes"
    );
    feed.resume().await;
    caught_up(&feed, &log, "after resume").await;
    let pindex = feed.stop().await.unwrap();
    assert_eq!(pindex.doc_count().unwrap(), 200);

    // A feed started paused (its index's ingest is paused) reads nothing, not even at first.
    let held = Feed::start(
        blackhole(dir.path(), "held"),
        FeedConfig {
            index: "test".into(),
            start_paused: true,
            ..config(address)
        },
    );
    assert!(held.status().paused);
    let witness = Feed::start(blackhole(dir.path(), "witness2"), config(address));
    caught_up(&witness, &log, "second witness").await;
    witness.stop().await.unwrap();
    assert_eq!(
        held.status().applied,
        0,
        "a feed started paused applied changes"
    );
    held.resume().await;
    caught_up(&held, &log, "started paused, then resumed").await;
    assert_eq!(held.stop().await.unwrap().doc_count().unwrap(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_source_history_is_held_until_accepted_then_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let first = SourceLog::open(&dir.path().join("first.redb"), PARTITIONS).unwrap();
    first.append("docs", &docs(0..300)).unwrap();
    let server = serve_on(first.clone(), address).await;
    let pindex =
        tessera_index::open("fulltext", &dir.path().join("p"), &serde_json::Value::Null).unwrap();
    let feed = Feed::start(pindex, config(address));
    caught_up(&feed, &first, "first history").await;
    drop(server);

    // The source comes back with another history (new partition uuids, fewer documents).
    let second = SourceLog::open(&dir.path().join("second.redb"), PARTITIONS).unwrap();
    second.append("docs", &docs(1000..1050)).unwrap();
    let _server = serve_on(second.clone(), address).await;
    // Every partition's history was replaced: an incident. The feed holds, dropping nothing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while feed.status().incident.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replaced history was not held: {:?}",
            feed.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held = feed.status();
    assert_eq!(held.rollbacks, 0, "nothing dropped while held: {held:?}");
    assert!(
        held.incident
            .as_deref()
            .is_some_and(|i| i.contains("accept-rollback")),
        "{held:?}"
    );
    // An accept older than the incident does not count; one after it does.
    feed.accept_rollback(1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        feed.status().incident.is_some(),
        "a stale accept released the hold"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    feed.accept_rollback(now).await;
    caught_up(&feed, &second, "second history").await;
    let status = feed.status();
    assert!(status.rollbacks >= 1, "{status:?}");
    let pindex = feed.stop().await.unwrap();
    assert_eq!(
        pindex.doc_count().unwrap(),
        50,
        "only the new history's documents remain"
    );
    let uuids: BTreeMap<u32, String> = second
        .partitions("docs")
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|p| (p.id, p.uuid))
        .collect();
    for (p, c) in pindex.committed() {
        assert_eq!(
            &c.partition_uuid, &uuids[p],
            "checkpoints follow the new history"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_changes_arrive_and_commits_happen_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let log = SourceLog::open(&dir.path().join("source.redb"), PARTITIONS).unwrap();
    log.append("docs", &docs(0..10)).unwrap();
    let address = free_address();
    let _server = serve_on(log.clone(), address).await;
    let pindex =
        tessera_index::open("fulltext", &dir.path().join("p"), &serde_json::Value::Null).unwrap();
    let feed = Feed::start(pindex, config(address));
    caught_up(&feed, &log, "catch-up").await;
    for round in 0..3 {
        log.append("docs", &docs(10 + round * 5..15 + round * 5))
            .unwrap();
        caught_up(&feed, &log, &format!("live round {round}")).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while feed.status().docs != 25 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no timed commit: {:?}",
            feed.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A PIndex whose commits fail, as on a full disk.
struct FailingCommits;

impl tessera_index::PIndex for FailingCommits {
    fn apply(
        &mut self,
        _: u32,
        _: &str,
        _: u64,
        _: tessera_index::Change<'_>,
    ) -> Result<(), tessera_index::IndexError> {
        Ok(())
    }
    fn drop_partition(&mut self, _: u32) -> Result<(), tessera_index::IndexError> {
        Ok(())
    }
    fn commit(&mut self) -> Result<(), tessera_index::IndexError> {
        Err(tessera_index::IndexError::Storage(
            "No space left on device".into(),
        ))
    }
    fn committed(&self) -> &tessera_index::Checkpoints {
        static EMPTY: std::sync::OnceLock<tessera_index::Checkpoints> = std::sync::OnceLock::new();
        EMPTY.get_or_init(Default::default)
    }
    fn applied(&self) -> &tessera_index::Checkpoints {
        self.committed()
    }
    fn doc_count(&self) -> Result<u64, tessera_index::IndexError> {
        Ok(0)
    }
    fn stats(&self) -> tessera_index::PIndexStats {
        Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_commit_ends_the_feed_with_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = SourceLog::open(&dir.path().join("source.redb"), PARTITIONS).unwrap();
    log.append("docs", &docs(0..10)).unwrap();
    let address = free_address();
    let _server = serve_on(log.clone(), address).await;
    let feed = Feed::start(Box::new(FailingCommits), config(address));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !feed.is_finished() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the feed kept running past a failed commit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let error = feed.stop().await.err().expect("the commit error");
    assert!(error.to_string().contains("No space left"), "{error}");
}

/// One PIndex over every partition of a 1024-partition source (the default, and the most a
/// PIndex covers): every partition streams at once, more than one HTTP/2 connection admits
/// (the server's concurrent-stream limit is 200), and the feed still catches up with all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pindex_over_1024_partitions_catches_up_with_every_one() {
    const ALL: u32 = 1024;
    // Bound by name (not `..`), so the server lives to the end of the test.
    let Served {
        dir,
        log,
        address,
        _server,
    } = served(ALL, 3000).await;
    let feed = Feed::start(
        blackhole(dir.path(), "bh"),
        FeedConfig {
            index: "test".into(),
            partitions: (0..ALL).collect(),
            ..config(address)
        },
    );
    caught_up_within(&feed, &log, "1024 partitions", Duration::from_secs(60)).await;
    // And live changes on every connection keep arriving.
    log.append("docs", &docs(3000..4000)).unwrap();
    caught_up_within(&feed, &log, "live changes", Duration::from_secs(60)).await;
    let pindex = feed.stop().await.unwrap();
    assert_eq!(pindex.doc_count().unwrap(), 4000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_with_another_partition_count_is_reported() {
    let Served {
        dir,
        log: _log,
        address,
        _server,
    } = served(PARTITIONS, 10).await;
    let mut wrong = config(address);
    wrong.source_partitions = PARTITIONS * 2;
    let feed = Feed::start(blackhole(dir.path(), "bh"), wrong);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(why) = feed.status().mismatch {
            assert!(
                why.contains(&format!("has {PARTITIONS} partitions")),
                "{why}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the mismatch was not reported: {:?}",
            feed.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    feed.stop().await.unwrap();
}

/// A source in `dir` holding `count` documents and a fulltext PIndex fed from it that has
/// applied them all but, left to its timer and its count, would not commit for a minute.
async fn applied_not_committed(
    dir: &std::path::Path,
    count: u32,
) -> (SourceLog, Server, Feed, tessera_index::Searchable) {
    let log = SourceLog::open(&dir.join("source.redb"), PARTITIONS).unwrap();
    log.append("docs", &docs(0..count)).unwrap();
    let address = free_address();
    let server = serve_on(log.clone(), address).await;
    let pindex = tessera_index::open("fulltext", &dir.join("p"), &serde_json::Value::Null).unwrap();
    let search = pindex.searchable().expect("fulltext is searchable");
    let slow = FeedConfig {
        index: "test".into(),
        commit_every: 1_000_000,
        commit_interval: Duration::from_secs(60),
        ..config(address)
    };
    let feed = Feed::start(pindex, slow);
    caught_up(&feed, &log, "every document applied").await;
    (log, server, feed, search)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_waiting_for_applied_seqs_gets_them_at_once_in_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _server, feed, search) = applied_not_committed(dir.path(), 300).await;
    assert_eq!(search.searcher().num_docs(), 0, "applied, not committed");
    let commits = feed.status().commits;

    // Five queries wait for everything the source has: one commit serves them all.
    let wanted: Vec<(u32, u64)> = highs(&log).into_iter().collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let waits = (0..5).map(|_| {
        let (search, wanted) = (search.clone(), wanted.clone());
        async move { search.wait_visible(&wanted, deadline).await }
    });
    for waited in futures::future::join_all(waits).await {
        assert_eq!(waited, Ok(()), "visible well before the timer");
    }
    assert_eq!(search.searcher().num_docs(), 300);
    // The status counts the commit just after the reader shows it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while feed.status().commits == commits {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the commit never counted"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        feed.status().commits,
        commits + 1,
        "one commit for the five"
    );
    feed.stop().await.unwrap();
}

/// What a backup asks of a copy before saving it: everything applied committed, and at
/// least the seqs the source had when the backup began (waiting for the feed to get there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_asked_for_a_backup_commits_up_to_the_seqs_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _server, feed, search) = applied_not_committed(dir.path(), 200).await;
    let board: tessera_janitor::board::StatusBoard = Default::default();
    let mut entry = tessera_janitor::board::LocalStatus::default();
    entry.feed = Some(feed.status());
    entry.search = Some(search.clone());
    board.lock().unwrap().insert("p".into(), entry);
    let commit = |at_least: BTreeMap<u32, u64>, within: Duration| {
        let board = board.clone();
        async move { tessera_janitor::board::commit_applied(&board, "p", &at_least, within).await }
    };

    // What was applied becomes visible at once.
    assert_eq!(search.searcher().num_docs(), 0, "applied, not committed");
    assert_eq!(
        commit(BTreeMap::new(), Duration::from_secs(10)).await,
        Ok(())
    );
    assert_eq!(search.searcher().num_docs(), 200);

    // Seqs the source does not have yet are not reached: the answer says how far it got.
    let mut ahead = highs(&log);
    let reached = ahead[&0];
    *ahead.get_mut(&0).unwrap() += 50;
    let behind = commit(ahead.clone(), Duration::from_millis(300))
        .await
        .expect_err("partition 0 is behind");
    assert_eq!(behind, vec![(0, reached, reached + 50)]);

    // Once the source has them, the copy waits for its feed and shows them.
    let waiting = tokio::spawn(commit(ahead.clone(), Duration::from_secs(10)));
    log.append("docs", &docs(200..600)).unwrap();
    assert_eq!(waiting.await.unwrap(), Ok(()));
    assert!(search.visible()[&0].seq >= ahead[&0], "partition 0 shown");
    assert!(search.searcher().num_docs() > 200);
    feed.stop().await.unwrap();
}
