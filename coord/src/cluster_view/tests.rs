//! The mirror against the in-process store (the same `Store` contract as etcd): it follows
//! writes and deletes, says nothing of what it cannot read or does not know, and a read that
//! must see the latest state is answered only once the mirror reflects it.

use std::time::Duration;

use serde_json::json;
use tessera_cfg::schema::{IndexDef, IndexPlan, NodeDef, NodeLiveness};

use super::*;

async fn memory_cfg() -> Cfg {
    let dir = std::env::temp_dir();
    "memory"
        .parse::<tessera_cfg::CfgSpec>()
        .expect("spec")
        .open(&dir)
        .await
        .expect("an in-memory store")
}

fn index_def(name: &str, uuid: &str) -> IndexDef {
    serde_json::from_value(json!({
        "format_version": 1, "name": name, "uuid": uuid, "type": "fulltext",
        "source": {"type": "tessera", "name": "docs", "partitions": 4},
        "plan": {"index_partitions": 1, "replicas": 0}, "params": null
    }))
    .expect("a definition")
}

fn plan(name: &str, uuid: &str, node: &str) -> IndexPlan {
    serde_json::from_value(json!({
        "format_version": 1, "index": name, "index_uuid": uuid, "warnings": [],
        "pindexes": [{"name": format!("{name}_0-3"), "source_partitions": [0, 1, 2, 3],
            "copies": [{"node": node, "role": "primary", "state": "active",
                        "can_read": true, "can_write": true}]}]
    }))
    .expect("a plan")
}

fn node(uuid: &str, reads: bool) -> NodeDef {
    serde_json::from_value(json!({
        "format_version": 1, "uuid": uuid, "incarnation": "i", "host_port": "127.0.0.1:9",
        "tags": ["pindex"], "weight": 1, "reads": reads
    }))
    .expect("a node")
}

/// Waits until `read` finds what it looks for in the mirror.
async fn mirrored<T>(view: &ClusterView, what: &str, read: impl Fn(&Mirror) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(found) = view.read(Freshness::Mirror, &read).await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the mirror never showed {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_mirror_follows_the_cfg_and_says_nothing_it_cannot_know() {
    let cfg = memory_cfg().await;
    cfg.put_node_def(&node("n1", true), 0).await.expect("node");
    cfg.put_node_def(&node("n2", false), 0).await.expect("node");
    let lease = cfg
        .store()
        .grant_lease(Duration::from_secs(60))
        .await
        .expect("lease");
    let live = NodeLiveness {
        format_version: 1,
        uuid: "n1".into(),
        incarnation: "i".into(),
        host_port: "127.0.0.1:9".into(),
        started_at_unix_ms: 1,
    };
    cfg.create_liveness(&live, lease).await.expect("live");
    let view = ClusterView::start(cfg.clone());

    // Defined, not planned yet: the mirror has the definition, the view comes from the Cfg.
    cfg.put_index_def(&index_def("books", "u1"), 0)
        .await
        .expect("def");
    let def = mirrored(&view, "the definition", |m| m.index_def("books")).await;
    assert_eq!(def.uuid, "u1");
    assert!(view
        .read(Freshness::Mirror, |m| m.view("books"))
        .await
        .is_none());

    // Planned: the view is the plan, with the nodes' addresses, liveness and read switches.
    cfg.put_plan(&plan("books", "u1", "n1"), 0)
        .await
        .expect("plan");
    let v = mirrored(&view, "the plan", |m| m.view("books")).await;
    assert_eq!(v.plan.index_uuid, "u1");
    assert_eq!(v.addresses["n1"], "127.0.0.1:9");
    assert!(v.live.contains("n1") && !v.live.contains("n2"));
    assert!(v.no_reads.contains("n2") && !v.no_reads.contains("n1"));

    // A read that must see the latest state waits for the mirror to reflect it.
    let revision = cfg
        .put_index_def(&index_def("films", "u2"), 0)
        .await
        .expect("def");
    let def = view
        .read(Freshness::AtLeast(revision), |m| m.index_def("films"))
        .await;
    assert_eq!(def.map(|d| d.uuid), Some("u2".to_string()));
    // One the mirror cannot reach in time is not answered from it.
    let never = view
        .read(Freshness::AtLeast(Revision::MAX), |m| m.index_def("films"))
        .await;
    assert!(never.is_none());

    // The node's lease revoked: no longer live.
    cfg.store().revoke_lease(lease).await.expect("revoke");
    mirrored(&view, "n1 gone", |m| {
        m.view("books").filter(|v| !v.live.contains("n1"))
    })
    .await;

    // An unreadable plan: the mirror does not answer for the index (the Cfg says why).
    let key = cfg.keys().plan("books");
    let current = cfg.store().get(&key).await.expect("get").expect("the plan");
    cfg.store()
        .put(&key, b"{not json".to_vec(), current.mod_revision, None)
        .await
        .expect("overwrite");
    mirrored(&view, "the plan unreadable", |m| {
        m.view("books").is_none().then_some(())
    })
    .await;

    // Deleted: gone from the mirror.
    let key = cfg.keys().index_def("films");
    cfg.store().delete(&key, 0).await.expect("delete");
    mirrored(&view, "films deleted", |m| {
        m.index_def("films").is_none().then_some(())
    })
    .await;
}
