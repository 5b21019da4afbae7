//! Conformance cases: get/put/delete under CAS, listing, revisions, transactions.

use std::sync::Arc;

use tessera_cfg::{CfgError, Compare, Op, Store, Txn};

use super::b;

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
