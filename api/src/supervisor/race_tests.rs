//! A cancel racing the task's completion: the task completes between the cancel's read and its
//! write. The cancel must see that (409, not running) and leave the node definitions as the
//! completed task left them, never "restore" them after the task is over.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use tessera_cfg::interleave::Interleaved;
use tessera_cfg::local::LocalStore;
use tessera_cfg::schema::{NodeDef, TaskStatus, TopologyTask};
use tessera_cfg::{Cfg, KeySpace};

fn keys() -> KeySpace {
    KeySpace::new("t").expect("keys")
}

#[tokio::test]
async fn a_cancel_after_the_task_completed_restores_nothing() {
    let inner: Arc<dyn tessera_cfg::Store> = Arc::new(LocalStore::open_memory().expect("store"));
    let store = Interleaved::new(inner.clone());
    let cfg = Cfg::new(store.clone(), keys());
    for uuid in ["n1", "n2"] {
        let node: NodeDef = serde_json::from_value(serde_json::json!({
            "format_version": 1, "uuid": uuid, "incarnation": "i", "host_port": "127.0.0.1:1",
            "tags": ["pindex", "janitor"], "weight": 1}))
        .expect("a node definition");
        cfg.put_node_def(&node, 0).await.expect("node");
    }
    let state = crate::state::tests::state(cfg.clone(), "n1", Default::default());
    let answer = super::topology_change(
        State(state.clone()),
        Bytes::from_static(br#"{"type": "drain", "eject_nodes": ["n2"]}"#),
    )
    .await;
    assert_eq!(answer.status(), 202);
    let body = axum::body::to_bytes(answer.into_body(), 1 << 20)
        .await
        .expect("body");
    let id = serde_json::from_slice::<serde_json::Value>(&body).expect("JSON")["task"]
        .as_str()
        .expect("a task id")
        .to_string();

    // The planner completes the task just before the cancel writes.
    let completing = id.clone();
    store.before_next_txn(Box::new(move |inner| {
        Box::pin(async move {
            let cfg = Cfg::new(inner, keys());
            let current = cfg
                .get_doc::<TopologyTask>(&cfg.keys().task(&completing))
                .await
                .expect("read")
                .expect("the task");
            let mut done = current.value.clone();
            done.status = TaskStatus::Completed;
            assert!(cfg.put_task(&done, current.revision).await.expect("write"));
        })
    }));
    let answer = super::cancel(State(state), Path(id.clone())).await;
    assert_eq!(answer.status(), 409, "the task is over; nothing to cancel");
    let n2 = cfg.node_def("n2").await.expect("read").expect("n2");
    assert!(
        !n2.value.wanted,
        "the drained node's definition was restored after the task completed"
    );
    let task = cfg
        .get_doc::<TopologyTask>(&cfg.keys().task(&id))
        .await
        .expect("read")
        .expect("the task");
    assert_eq!(task.value.status, TaskStatus::Completed);
    let lock = cfg
        .store()
        .get(&cfg.keys().topology_lock())
        .await
        .expect("read");
    assert!(lock.is_none(), "the completed task released the lock");
}
