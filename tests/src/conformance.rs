//! The one Store conformance suite. Each case is a function over a fresh store; the
//! [`conformance_tests!`](crate::conformance_tests) macro turns every case into a test for one
//! backend, so memory, embedded and etcd run exactly the same checks.

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tessera_cfg::etcd::{EtcdOptions, EtcdStore};
use tessera_cfg::local::LocalStore;
use tessera_cfg::schema::{IndexDef, PlanParams, SourceDef};
use tessera_cfg::{Cfg, CfgError, Compare, KeySpace, LeaseKeeper, Op, Store, Txn, WatchEvent};

use crate::etcd::EtcdCluster;
use crate::wait::{next_event, no_event};

/// A store under test and whatever keeps it alive (temp dir, etcd process).
pub struct Fixture {
    pub store: Arc<dyn Store>,
    _guard: Box<dyn Any + Send>,
}

pub async fn memory() -> Fixture {
    crate::init_tracing();
    Fixture {
        store: Arc::new(LocalStore::open_memory().expect("open memory store")),
        _guard: Box::new(()),
    }
}

pub async fn embedded() -> Fixture {
    crate::init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LocalStore::open_file(&dir.path().join("cfg.redb")).expect("open embedded store");
    Fixture {
        store: Arc::new(store),
        _guard: Box::new(dir),
    }
}

pub async fn etcd() -> Fixture {
    crate::init_tracing();
    let cluster = tokio::task::spawn_blocking(EtcdCluster::single)
        .await
        .expect("start etcd");
    let store = EtcdStore::connect(EtcdOptions::new(cluster.endpoints()))
        .await
        .expect("connect etcd");
    Fixture {
        store: Arc::new(store),
        _guard: Box::new(cluster),
    }
}

/// Generates one `#[tokio::test]` per conformance case, for the backend built by `$fixture`.
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:path) => {
        $crate::conformance_tests!(@cases $fixture;
            get_put_create_only,
            cas_update_and_mismatch,
            delete_semantics,
            list_prefix_sorted_with_revision,
            revisions_are_monotonic_and_create_revision_sticks,
            txn_all_or_nothing,
            txn_rejects_duplicate_keys,
            watch_replays_from_revision,
            watch_from_now_sees_only_new,
            watch_txn_events_share_revision,
            watch_compacted_then_relist,
            lease_expiry_deletes_keys_and_watchers_see_it,
            lease_keep_alive_and_revoke,
            lease_keeper_keeps_key_alive,
            concurrent_cas_loses_no_update,
            typed_cfg_validates_and_reports_corrupt
        );
    };
    (@cases $fixture:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = $fixture().await;
                $crate::conformance::$case(fixture.store.clone()).await;
            }
        )*
    };
}

const T: Duration = Duration::from_secs(10);

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

pub async fn get_put_create_only(store: Arc<dyn Store>) {
    assert_eq!(store.get("/t/a").await.unwrap(), None);
    let rev = store.set("/t/a", b("1"), 0).await.unwrap();
    let kv = store.get("/t/a").await.unwrap().expect("written key");
    assert_eq!((kv.value.as_slice(), kv.mod_revision), (&b"1"[..], rev));
    assert_eq!(kv.create_revision, rev);
    match store.set("/t/a", b("2"), 0).await {
        Err(CfgError::AlreadyExists { key, current }) => {
            assert_eq!((key.as_str(), current), ("/t/a", rev));
        }
        other => panic!("create-only over a present key: {other:?}"),
    }
    assert_eq!(
        store.get("/t/a").await.unwrap().unwrap().value,
        b("1"),
        "failed write lost data"
    );
}

pub async fn cas_update_and_mismatch(store: Arc<dyn Store>) {
    let r1 = store.set("/t/k", b("v1"), 0).await.unwrap();
    let r2 = store.set("/t/k", b("v2"), r1).await.unwrap();
    assert!(r2 > r1);
    match store.set("/t/k", b("v3"), r1).await {
        Err(CfgError::CasMismatch {
            expected, current, ..
        }) => assert_eq!((expected, current), (r1, r2)),
        other => panic!("stale cas: {other:?}"),
    }
    match store.set("/t/absent", b("x"), r2).await {
        Err(CfgError::CasMismatch { current, .. }) => assert_eq!(current, 0),
        other => panic!("cas on an absent key: {other:?}"),
    }
    assert_eq!(store.get("/t/k").await.unwrap().unwrap().value, b("v2"));
    assert_eq!(store.get("/t/absent").await.unwrap(), None);
}

pub async fn delete_semantics(store: Arc<dyn Store>) {
    match store.delete("/t/none", 0).await {
        Err(CfgError::NotFound { key }) => assert_eq!(key, "/t/none"),
        other => panic!("delete absent: {other:?}"),
    }
    let r1 = store.set("/t/d", b("x"), 0).await.unwrap();
    match store.delete("/t/d", r1 + 100).await {
        Err(CfgError::CasMismatch { current, .. }) => assert_eq!(current, r1),
        other => panic!("delete with stale cas: {other:?}"),
    }
    assert!(
        store.get("/t/d").await.unwrap().is_some(),
        "failed delete removed the key"
    );
    let rd = store.delete("/t/d", r1).await.unwrap();
    assert!(rd > r1);
    assert_eq!(store.get("/t/d").await.unwrap(), None);
    store.set("/t/e", b("y"), 0).await.unwrap();
    store.delete("/t/e", 0).await.unwrap();
    assert_eq!(store.get("/t/e").await.unwrap(), None);
    // Re-creating after a delete starts a new life: create_revision moves.
    let r3 = store.set("/t/d", b("again"), 0).await.unwrap();
    assert_eq!(
        store.get("/t/d").await.unwrap().unwrap().create_revision,
        r3
    );
}

pub async fn list_prefix_sorted_with_revision(store: Arc<dyn Store>) {
    for key in ["/t/list/c", "/t/list/a", "/t/list/b", "/t/other", "/t/lis"] {
        store.set(key, b(key), 0).await.unwrap();
    }
    let listing = store.list("/t/list/").await.unwrap();
    let keys: Vec<&str> = listing.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/t/list/a", "/t/list/b", "/t/list/c"]);
    assert!(listing.kvs.iter().all(|kv| kv.value == b(&kv.key)));
    let max = listing.kvs.iter().map(|kv| kv.mod_revision).max().unwrap();
    assert!(
        listing.revision >= max,
        "listing revision {} < key revision {max}",
        listing.revision
    );
    assert_eq!(listing.revision, store.revision().await.unwrap());
    assert!(store.list("/t/nothing/").await.unwrap().kvs.is_empty());
}

pub async fn revisions_are_monotonic_and_create_revision_sticks(store: Arc<dyn Store>) {
    let mut last = store.revision().await.unwrap();
    let mut cas = 0;
    let mut created = 0;
    for i in 0..5 {
        let rev = store.set("/t/m", b(&i.to_string()), cas).await.unwrap();
        assert!(rev > last, "revision went from {last} to {rev}");
        if i == 0 {
            created = rev;
        }
        last = rev;
        cas = rev;
    }
    let kv = store.get("/t/m").await.unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (created, last));
    assert_eq!(store.revision().await.unwrap(), last);
}

pub async fn txn_all_or_nothing(store: Arc<dyn Store>) {
    let leader = store.set("/t/leader", b("me"), 0).await.unwrap();
    let ok = store
        .txn(
            Txn::new()
                .when(Compare::Value {
                    key: "/t/leader".into(),
                    value: b("me"),
                })
                .when(Compare::ModRevision {
                    key: "/t/plan".into(),
                    revision: 0,
                })
                .then(Op::Put {
                    key: "/t/plan".into(),
                    value: b("p1"),
                    lease: None,
                })
                .then(Op::Put {
                    key: "/t/other".into(),
                    value: b("o1"),
                    lease: None,
                }),
        )
        .await
        .unwrap();
    assert!(ok.succeeded);
    let plan = store.get("/t/plan").await.unwrap().unwrap();
    let other = store.get("/t/other").await.unwrap().unwrap();
    assert_eq!(plan.mod_revision, ok.revision);
    assert_eq!(
        other.mod_revision, ok.revision,
        "writes of one txn share a revision"
    );

    // A deposed leader: the fence fails, nothing is written.
    store
        .set("/t/leader", b("someone-else"), leader)
        .await
        .unwrap();
    let before = store.revision().await.unwrap();
    let fenced = store
        .txn(
            Txn::new()
                .when(Compare::Value {
                    key: "/t/leader".into(),
                    value: b("me"),
                })
                .then(Op::Put {
                    key: "/t/plan".into(),
                    value: b("p2"),
                    lease: None,
                })
                .then(Op::Delete {
                    key: "/t/other".into(),
                }),
        )
        .await
        .unwrap();
    assert!(!fenced.succeeded);
    assert_eq!(
        store.revision().await.unwrap(),
        before,
        "a failed txn wrote something"
    );
    assert_eq!(store.get("/t/plan").await.unwrap().unwrap().value, b("p1"));
    assert!(store.get("/t/other").await.unwrap().is_some());

    // Value compare on an absent key fails; a delete of an absent key inside a txn is fine.
    let absent = store
        .txn(Txn::new().when(Compare::Value {
            key: "/t/nope".into(),
            value: Vec::new(),
        }))
        .await
        .unwrap();
    assert!(!absent.succeeded);
    let deleted = store
        .txn(
            Txn::new()
                .then(Op::Delete {
                    key: "/t/other".into(),
                })
                .then(Op::Delete {
                    key: "/t/never".into(),
                }),
        )
        .await
        .unwrap();
    assert!(deleted.succeeded);
    assert_eq!(store.get("/t/other").await.unwrap(), None);
}

pub async fn txn_rejects_duplicate_keys(store: Arc<dyn Store>) {
    let result = store
        .txn(
            Txn::new()
                .then(Op::Put {
                    key: "/t/dup".into(),
                    value: b("1"),
                    lease: None,
                })
                .then(Op::Delete {
                    key: "/t/dup".into(),
                }),
        )
        .await;
    match result {
        Err(CfgError::Invalid { key, field, .. }) => {
            assert_eq!((key.as_str(), field.as_str()), ("/t/dup", "ops"))
        }
        other => panic!("duplicate key in txn: {other:?}"),
    }
    assert_eq!(store.get("/t/dup").await.unwrap(), None);
}

pub async fn watch_replays_from_revision(store: Arc<dyn Store>) {
    let r1 = store.set("/t/w/a", b("1"), 0).await.unwrap();
    let r2 = store.set("/t/w/a", b("2"), r1).await.unwrap();
    store.set("/t/elsewhere", b("x"), 0).await.unwrap();
    let r3 = store.delete("/t/w/a", 0).await.unwrap();
    let mut watch = store.watch("/t/w/", r1).await.unwrap();
    match next_event(&mut watch, T, "replayed put 1").await {
        WatchEvent::Put(kv) => assert_eq!((kv.value, kv.mod_revision), (b("1"), r1)),
        other => panic!("{other:?}"),
    }
    match next_event(&mut watch, T, "replayed put 2").await {
        WatchEvent::Put(kv) => assert_eq!(
            (kv.value, kv.mod_revision, kv.create_revision),
            (b("2"), r2, r1)
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        next_event(&mut watch, T, "replayed delete").await,
        WatchEvent::Delete {
            key: "/t/w/a".into(),
            revision: r3
        }
    );
    let r4 = store.set("/t/w/b", b("live"), 0).await.unwrap();
    assert_eq!(
        next_event(&mut watch, T, "live put").await.revision(),
        Some(r4)
    );
    no_event(&mut watch, Duration::from_millis(300), "after the live put").await;
}

pub async fn watch_from_now_sees_only_new(store: Arc<dyn Store>) {
    store.set("/t/n/old", b("old"), 0).await.unwrap();
    let mut watch = store.watch("/t/n/", 0).await.unwrap();
    let rev = store.set("/t/n/new", b("new"), 0).await.unwrap();
    match next_event(&mut watch, T, "the new key").await {
        WatchEvent::Put(kv) => assert_eq!((kv.key.as_str(), kv.mod_revision), ("/t/n/new", rev)),
        other => panic!("{other:?}"),
    }
}

pub async fn watch_txn_events_share_revision(store: Arc<dyn Store>) {
    let mut watch = store.watch("/t/x/", 0).await.unwrap();
    let outcome = store
        .txn(
            Txn::new()
                .then(Op::Put {
                    key: "/t/x/1".into(),
                    value: b("a"),
                    lease: None,
                })
                .then(Op::Put {
                    key: "/t/x/2".into(),
                    value: b("b"),
                    lease: None,
                })
                .then(Op::Put {
                    key: "/t/y".into(),
                    value: b("c"),
                    lease: None,
                }),
        )
        .await
        .unwrap();
    let first = next_event(&mut watch, T, "txn event 1").await;
    let second = next_event(&mut watch, T, "txn event 2").await;
    let keys: BTreeSet<_> = [
        first.key().unwrap().to_string(),
        second.key().unwrap().to_string(),
    ]
    .into();
    assert_eq!(
        keys,
        BTreeSet::from(["/t/x/1".to_string(), "/t/x/2".to_string()])
    );
    assert_eq!(first.revision(), Some(outcome.revision));
    assert_eq!(second.revision(), Some(outcome.revision));
    no_event(
        &mut watch,
        Duration::from_millis(300),
        "the key outside the prefix",
    )
    .await;
}

pub async fn watch_compacted_then_relist(store: Arc<dyn Store>) {
    let first = store.set("/t/c/a", b("1"), 0).await.unwrap();
    let mut cas = first;
    for i in 2..=5 {
        cas = store.set("/t/c/a", b(&i.to_string()), cas).await.unwrap();
    }
    store.compact(cas).await.unwrap();
    // Compacting again at or below is harmless.
    store.compact(first).await.unwrap();
    let mut watch = store.watch("/t/c/", first).await.unwrap();
    match next_event(&mut watch, T, "the compacted notice").await {
        WatchEvent::Compacted { compact_revision } => assert!(compact_revision > first),
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(
        tokio::time::timeout(T, watch.next())
            .await
            .expect("stream should end")
            .is_none(),
        "the stream must end after Compacted"
    );
    // What the caller does then: re-read everything, watch from the listing on.
    let listing = store.list("/t/c/").await.unwrap();
    assert_eq!(listing.kvs[0].value, b("5"));
    let mut watch = store.watch("/t/c/", listing.revision + 1).await.unwrap();
    let rev = store.set("/t/c/a", b("6"), cas).await.unwrap();
    assert_eq!(
        next_event(&mut watch, T, "put after relist")
            .await
            .revision(),
        Some(rev)
    );
}

pub async fn lease_expiry_deletes_keys_and_watchers_see_it(store: Arc<dyn Store>) {
    let lease = store.grant_lease(Duration::from_secs(1)).await.unwrap();
    store
        .put("/t/l/node", b("alive"), 0, Some(lease))
        .await
        .unwrap();
    store.set("/t/l/durable", b("stays"), 0).await.unwrap();
    assert_eq!(
        store.get("/t/l/node").await.unwrap().unwrap().lease,
        Some(lease)
    );
    let mut watch = store.watch("/t/l/", 0).await.unwrap();
    // No keep-alive: the lease expires and takes its key with it.
    match next_event(
        &mut watch,
        Duration::from_secs(15),
        "the lease expiry delete",
    )
    .await
    {
        WatchEvent::Delete { key, .. } => assert_eq!(key, "/t/l/node"),
        other => panic!("expected the expiry delete, got {other:?}"),
    }
    assert_eq!(store.get("/t/l/node").await.unwrap(), None);
    assert!(
        store.get("/t/l/durable").await.unwrap().is_some(),
        "expiry deleted an unleased key"
    );
    assert_eq!(
        store.keep_alive_lease(lease).await,
        Err(CfgError::LeaseNotFound(lease))
    );
    match store.put("/t/l/late", b("x"), 0, Some(lease)).await {
        Err(CfgError::LeaseNotFound(id)) => assert_eq!(id, lease),
        other => panic!("put with an expired lease: {other:?}"),
    }
}

pub async fn lease_keep_alive_and_revoke(store: Arc<dyn Store>) {
    let lease = store.grant_lease(Duration::from_secs(2)).await.unwrap();
    store.put("/t/r/a", b("1"), 0, Some(lease)).await.unwrap();
    store.put("/t/r/b", b("2"), 0, Some(lease)).await.unwrap();
    // Renew through more than one TTL.
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < until {
        store.keep_alive_lease(lease).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        store.get("/t/r/a").await.unwrap().is_some(),
        "renewed lease expired"
    );
    let mut watch = store.watch("/t/r/", 0).await.unwrap();
    store.revoke_lease(lease).await.unwrap();
    let mut deleted = BTreeSet::new();
    for _ in 0..2 {
        match next_event(&mut watch, T, "revoke deletes").await {
            WatchEvent::Delete { key, .. } => {
                deleted.insert(key);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        deleted,
        BTreeSet::from(["/t/r/a".to_string(), "/t/r/b".to_string()])
    );
    assert_eq!(
        store.revoke_lease(lease).await,
        Err(CfgError::LeaseNotFound(lease))
    );
}

pub async fn lease_keeper_keeps_key_alive(store: Arc<dyn Store>) {
    let keeper = LeaseKeeper::grant(store.clone(), Duration::from_secs(1))
        .await
        .unwrap();
    store
        .put("/t/k/live", b("x"), 0, Some(keeper.id()))
        .await
        .unwrap();
    let mut watch = store.watch("/t/k/", 0).await.unwrap();
    no_event(
        &mut watch,
        Duration::from_secs(3),
        "a kept-alive lease over 3 TTLs",
    )
    .await;
    assert!(!keeper.is_lost());
    keeper.revoke().await.unwrap();
    assert!(matches!(
        next_event(&mut watch, T, "revoke delete").await,
        WatchEvent::Delete { .. }
    ));
}

pub async fn concurrent_cas_loses_no_update(store: Arc<dyn Store>) {
    const WORKERS: usize = 4;
    const EACH: usize = 10;
    store.set("/t/counter", b("0"), 0).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while done < EACH {
                let kv = store.get("/t/counter").await.unwrap().unwrap();
                let n: usize = String::from_utf8(kv.value).unwrap().parse().unwrap();
                match store
                    .set("/t/counter", b(&(n + 1).to_string()), kv.mod_revision)
                    .await
                {
                    Ok(_) => done += 1,
                    Err(CfgError::CasMismatch { .. }) => {}
                    Err(e) => panic!("increment failed: {e}"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let kv = store.get("/t/counter").await.unwrap().unwrap();
    assert_eq!(
        String::from_utf8(kv.value).unwrap(),
        (WORKERS * EACH).to_string()
    );
}

pub async fn typed_cfg_validates_and_reports_corrupt(store: Arc<dyn Store>) {
    let cfg = Cfg::new(store.clone(), KeySpace::new("conf").unwrap());
    let meta = cfg.ensure_cluster_meta().await.unwrap();
    assert_eq!(
        cfg.ensure_cluster_meta().await.unwrap(),
        meta,
        "cluster meta must be stable"
    );

    let mut def = IndexDef {
        format_version: 1,
        name: "books".into(),
        uuid: "u1".into(),
        index_type: "fulltext".into(),
        source: SourceDef {
            source_type: "tessera".into(),
            name: "docs".into(),
            params: Default::default(),
        },
        plan: PlanParams {
            replicas: 1,
            ..Default::default()
        },
        params: serde_json::Value::Null,
    };
    let rev = cfg.put_index_def(&def, 0).await.unwrap();
    def.plan.replicas = 5;
    match cfg.put_index_def(&def, rev).await {
        Err(CfgError::Invalid { field, .. }) => assert_eq!(field, "plan.replicas"),
        other => panic!("invalid def written: {other:?}"),
    }
    let stored = cfg.index_def("books").await.unwrap().unwrap();
    assert_eq!(
        (stored.value.plan.replicas, stored.revision),
        (1, rev),
        "a rejected write changed the stored def"
    );

    let bad_key = cfg.keys().index_def("broken");
    store.set(&bad_key, b("{not json"), 0).await.unwrap();
    match cfg.index_def("broken").await {
        Err(CfgError::Corrupt { key, .. }) => assert_eq!(key, bad_key),
        other => panic!("corrupt value: {other:?}"),
    }
    let future_key = cfg.keys().index_def("future");
    store
        .set(
            &future_key,
            b(r#"{"format_version": 9, "name": "future"}"#),
            0,
        )
        .await
        .unwrap();
    match cfg.index_def("future").await {
        Err(CfgError::UnknownFormatVersion { key, found, .. }) => {
            assert_eq!((key, found), (future_key, 9))
        }
        other => panic!("future format: {other:?}"),
    }
    match cfg.index_defs().await {
        Err(CfgError::Corrupt { key, .. }) => assert_eq!(key, bad_key, "list names the bad key"),
        other => panic!("list over a corrupt value: {other:?}"),
    }
}
