//! Conformance cases: watches (replay, live, transactions, compaction).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tessera_cfg::{Op, Store, Txn, WatchEvent};

use super::{b, T};
use crate::wait::{next_event, no_event};

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
