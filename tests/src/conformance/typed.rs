//! Conformance cases: the typed `Cfg` layer over a backend.

use std::sync::Arc;

use tessera_cfg::schema::{IndexDef, PlanParams, SourceDef};
use tessera_cfg::{Cfg, CfgError, KeySpace, Store};

use super::b;

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
            partitions: None,
            params: Default::default(),
        },
        plan: PlanParams {
            replicas: 1,
            ..Default::default()
        },
        params: serde_json::Value::Null,
        controls: Default::default(),
        restore: None,
        recovery: None,
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
            assert_eq!((key, found), (future_key.clone(), 9))
        }
        other => panic!("future format: {other:?}"),
    }
    // A listing skips what it cannot read, naming each key, and returns the rest.
    let listed = cfg.index_defs().await.unwrap();
    assert_eq!(
        listed
            .items
            .iter()
            .map(|d| d.value.name.as_str())
            .collect::<Vec<_>>(),
        ["books"],
        "the readable definition is listed"
    );
    let mut skipped: Vec<&str> = listed.skipped.iter().map(|u| u.key.as_str()).collect();
    skipped.sort_unstable();
    let mut expected = [bad_key.as_str(), future_key.as_str()];
    expected.sort_unstable();
    assert_eq!(skipped, expected, "the listing names every unreadable key");
    let snapshot = cfg.snapshot().await.unwrap();
    assert_eq!(snapshot.index_defs.len(), 1);
    assert_eq!(snapshot.skipped.len(), 2, "{:?}", snapshot.skipped);
}
