//! Conformance cases: leases (expiry, keep-alive, revoke, the background keeper).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tessera_cfg::{CfgError, LeaseKeeper, Store, WatchEvent};

use super::{b, T};
use crate::wait::{next_event, no_event};

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
