//! Fault tests against real etcd processes: restarts, compaction, lease expiry, a lost member,
//! and etcd unreachable. Nothing stored may be lost, no watch event lost or repeated.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_cfg::etcd::{EtcdOptions, EtcdStore};
use tessera_cfg::{CfgError, Revision, Store, WatchEvent};
use tessera_tests::etcd::EtcdCluster;
use tessera_tests::wait::next_event;

const T: Duration = Duration::from_secs(20);

async fn start(members: usize) -> EtcdCluster {
    tessera_tests::init_tracing();
    tokio::task::spawn_blocking(move || EtcdCluster::start(members))
        .await
        .expect("start etcd")
}

async fn connect(endpoints: Vec<String>) -> Arc<dyn Store> {
    Arc::new(
        EtcdStore::connect(EtcdOptions::new(endpoints))
            .await
            .expect("connect"),
    )
}

/// Create-only write that treats "already exists" as done: after a lost answer the retry finds
/// its own earlier write.
async fn create(store: &Arc<dyn Store>, key: &str) {
    match store.set(key, key.as_bytes().to_vec(), 0).await {
        Ok(_) | Err(CfgError::AlreadyExists { .. }) => {}
        Err(e) => panic!("writing {key}: {e}"),
    }
}

/// Reads `n` put events and checks each key arrives once, in revision order.
async fn collect_puts(
    watch: &mut tessera_cfg::WatchStream,
    n: usize,
) -> BTreeMap<String, Revision> {
    let mut seen = BTreeMap::new();
    let mut last = 0;
    while seen.len() < n {
        match next_event(watch, T, &format!("put {} of {n}", seen.len() + 1)).await {
            WatchEvent::Put(kv) => {
                assert!(
                    kv.mod_revision > last,
                    "revision {} after {last}: out of order or repeated",
                    kv.mod_revision
                );
                last = kv.mod_revision;
                assert!(
                    seen.insert(kv.key.clone(), kv.mod_revision).is_none(),
                    "{} delivered twice",
                    kv.key
                );
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_survives_etcd_restart_without_loss_or_repeat() {
    let mut cluster = start(1).await;
    let store = connect(cluster.endpoints()).await;
    let from = store.revision().await.unwrap() + 1;
    let mut watch = store.watch("/f/", from).await.unwrap();

    for i in 0..20 {
        create(&store, &format!("/f/before-{i:03}")).await;
    }
    // Let the watch deliver some, then take etcd away under it.
    let first = collect_puts(&mut watch, 5).await;
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.kill(0);
        std::thread::sleep(Duration::from_millis(500));
        cluster.restart(0);
        cluster
    })
    .await
    .expect("restart etcd");
    for i in 0..20 {
        create(&store, &format!("/f/after-{i:03}")).await;
    }

    let rest = collect_puts(&mut watch, 35).await;
    let mut all: Vec<&String> = first.keys().chain(rest.keys()).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 40, "every key exactly once across the restart");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), watch.next())
            .await
            .is_err(),
        "an extra event arrived"
    );
    // Nothing stored was lost.
    assert_eq!(store.list("/f/").await.unwrap().kvs.len(), 40);
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_compacted_revision_tells_caller_to_reread() {
    let _cluster_guard;
    let store = {
        let cluster = start(1).await;
        let store = connect(cluster.endpoints()).await;
        _cluster_guard = cluster;
        store
    };
    let start_rev = store.set("/c/k", b"0".to_vec(), 0).await.unwrap();
    let mut rev = start_rev;
    for i in 1..10 {
        rev = store
            .set("/c/k", i.to_string().into_bytes(), rev)
            .await
            .unwrap();
    }
    store.compact(rev).await.unwrap();
    let mut watch = store.watch("/c/", start_rev).await.unwrap();
    match next_event(&mut watch, T, "compacted notice").await {
        WatchEvent::Compacted { compact_revision } => assert_eq!(compact_revision, rev),
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert_eq!(
        store.get("/c/k").await.unwrap().unwrap().value,
        b"9",
        "compaction lost the current value"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_lease_deletes_keys_and_watchers_see_it() {
    let cluster = start(1).await;
    let store = connect(cluster.endpoints()).await;
    let lease = store.grant_lease(Duration::from_secs(2)).await.unwrap();
    store
        .put("/l/live/n1", b"n1".to_vec(), 0, Some(lease))
        .await
        .unwrap();
    store
        .put("/l/live/n2", b"n2".to_vec(), 0, Some(lease))
        .await
        .unwrap();
    store.set("/l/nodes/n1", b"def".to_vec(), 0).await.unwrap();
    let mut watch = store.watch("/l/", 0).await.unwrap();
    let granted = Instant::now();
    let mut deleted = Vec::new();
    for _ in 0..2 {
        match next_event(&mut watch, T, "lease expiry deletes").await {
            WatchEvent::Delete { key, .. } => deleted.push(key),
            other => panic!("unexpected {other:?}"),
        }
    }
    deleted.sort();
    assert_eq!(deleted, ["/l/live/n1", "/l/live/n2"]);
    assert!(
        granted.elapsed() >= Duration::from_secs(1),
        "expired before its TTL"
    );
    assert!(store.list("/l/live/").await.unwrap().kvs.is_empty());
    assert!(
        store.get("/l/nodes/n1").await.unwrap().is_some(),
        "an unleased key went with the lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_of_three_killed_reads_writes_and_watches_go_on() {
    let mut cluster = start(3).await;
    let store = connect(cluster.endpoints()).await;
    let mut watch = store.watch("/q/", 0).await.unwrap();
    for i in 0..5 {
        create(&store, &format!("/q/a{i}")).await;
    }
    collect_puts(&mut watch, 5).await;

    for victim in 0..3 {
        cluster.kill(victim);
        for i in 0..5 {
            create(&store, &format!("/q/m{victim}-{i}")).await;
        }
        let got = collect_puts(&mut watch, 5).await;
        assert!(
            got.keys().all(|k| k.starts_with(&format!("/q/m{victim}-"))),
            "{got:?}"
        );
        assert_eq!(
            store.list("/q/").await.unwrap().kvs.len(),
            5 + 5 * (victim + 1),
            "reads with member {victim} down"
        );
        let mut c = cluster;
        cluster = tokio::task::spawn_blocking(move || {
            c.restart(victim);
            c
        })
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_etcd_gives_a_clear_error_in_bounded_time() {
    tessera_tests::init_tracing();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut options = EtcdOptions::new(vec![format!("127.0.0.1:{port}")]);
    options.request_deadline = Duration::from_secs(2);
    let store = EtcdStore::connect(options)
        .await
        .expect("client setup does not need etcd");
    let started = Instant::now();
    match store.set("/u/k", b"v".to_vec(), 0).await {
        Err(CfgError::Unavailable { reason }) => {
            assert!(
                reason.contains(&port.to_string()),
                "message should name the endpoint: {reason}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "gave up without retrying ({took:?})"
    );
    assert!(took < Duration::from_secs(10), "not bounded: {took:?}");
}
