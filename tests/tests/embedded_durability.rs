//! The embedded backend keeps what it stored across a close and reopen, refuses a second
//! opener, and still expires leases whose holder died with the process.

use std::time::Duration;

use tessera_cfg::local::LocalStore;
use tessera_cfg::{CfgError, Store, WatchEvent};
use tessera_tests::wait::{next_event, until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_values_revisions_and_history() {
    tessera_tests::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cfg.redb");
    let (r1, r2) = {
        let store = LocalStore::open_file(&path).unwrap();
        let r1 = store.set("/e/a", b"1".to_vec(), 0).await.unwrap();
        let r2 = store.set("/e/a", b"2".to_vec(), r1).await.unwrap();
        match LocalStore::open_file(&path) {
            Err(CfgError::Unavailable { reason }) => {
                assert!(
                    reason.contains("cfg.redb"),
                    "should name the file: {reason}"
                )
            }
            Err(other) => panic!("second opener: expected Unavailable, got {other}"),
            Ok(_) => panic!("second opener: expected Unavailable, got a store"),
        }
        (r1, r2)
    };
    let store = until(Duration::from_secs(5), "the first store to close", || {
        let path = path.clone();
        async move { LocalStore::open_file(&path).ok() }
    })
    .await;
    let kv = store.get("/e/a").await.unwrap().unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.mod_revision, kv.create_revision),
        (&b"2"[..], r2, r1)
    );
    assert_eq!(store.revision().await.unwrap(), r2);
    let mut watch = store.watch("/e/", r1).await.unwrap();
    assert_eq!(
        next_event(&mut watch, Duration::from_secs(5), "replay 1")
            .await
            .revision(),
        Some(r1)
    );
    assert_eq!(
        next_event(&mut watch, Duration::from_secs(5), "replay 2")
            .await
            .revision(),
        Some(r2)
    );
    let r3 = store.set("/e/b", b"3".to_vec(), 0).await.unwrap();
    assert_eq!(r3, r2 + 1, "revisions continue after reopen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_of_a_dead_process_expires_after_reopen() {
    tessera_tests::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cfg.redb");
    {
        let store = LocalStore::open_file(&path).unwrap();
        let lease = store.grant_lease(Duration::from_secs(1)).await.unwrap();
        store
            .put("/e/live/n1", b"x".to_vec(), 0, Some(lease))
            .await
            .unwrap();
    }
    let store = until(Duration::from_secs(5), "the first store to close", || {
        let path = path.clone();
        async move { LocalStore::open_file(&path).ok() }
    })
    .await;
    let mut watch = store.watch("/e/live/", 1).await.unwrap();
    assert!(matches!(
        next_event(&mut watch, Duration::from_secs(5), "the replayed put").await,
        WatchEvent::Put(_)
    ));
    match next_event(&mut watch, Duration::from_secs(10), "the expiry delete").await {
        WatchEvent::Delete { key, .. } => assert_eq!(key, "/e/live/n1"),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.get("/e/live/n1").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_trimmed_and_old_watches_are_told() {
    tessera_tests::init_tracing();
    let store = LocalStore::open_memory_with_history(16).unwrap();
    let first = store.set("/h/k", b"0".to_vec(), 0).await.unwrap();
    let mut rev = first;
    for i in 1..100 {
        rev = store
            .set("/h/k", i.to_string().into_bytes(), rev)
            .await
            .unwrap();
    }
    let mut old = store.watch("/h/", first).await.unwrap();
    assert!(matches!(
        next_event(&mut old, Duration::from_secs(5), "compacted notice").await,
        WatchEvent::Compacted { .. }
    ));
    let mut recent = store.watch("/h/", rev - 10).await.unwrap();
    assert_eq!(
        next_event(&mut recent, Duration::from_secs(5), "recent history")
            .await
            .revision(),
        Some(rev - 10)
    );
}
