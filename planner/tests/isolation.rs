//! Planning rounds against a store, for the rules that keep data safe. One bad thing stops
//! one thing: a round over a Cfg holding an unreadable plan, an unreadable index definition
//! and an unreadable node definition still plans every other index, leaves what depends on the
//! unreadable documents exactly as stored, and names each in the control document (which
//! health shows). And a copy report older than the plan cannot make a building copy readable.

use std::sync::Arc;
use std::time::Duration;

use tessera_cfg::local::LocalStore;
use tessera_cfg::schema::{
    ClusterControl, CopyPlan, CopyRole, CopyState, Document, IndexDef, IndexPlan, NodeDef,
    NodeLiveness, NodeTag, PIndexPlan, PlanParams, SourceDef,
};
use tessera_cfg::{Cfg, KeySpace};
use tessera_planner::service::{fence, PlannerOptions, PlannerService};

fn index(name: &str) -> IndexDef {
    IndexDef {
        format_version: IndexDef::FORMAT_VERSION,
        name: name.into(),
        uuid: format!("{name}-uuid"),
        index_type: "fulltext".into(),
        source: SourceDef {
            source_type: "tessera".into(),
            name: "docs".into(),
            partitions: Some(4),
            params: Default::default(),
        },
        plan: PlanParams {
            max_partitions_per_pindex: Some(4),
            ..Default::default()
        },
        params: serde_json::Value::Null,
        controls: Default::default(),
        restore: None,
        recovery: None,
    }
}

fn plan_on(index: &str, node: &str) -> IndexPlan {
    IndexPlan {
        format_version: IndexPlan::FORMAT_VERSION,
        index: index.into(),
        index_uuid: format!("{index}-uuid"),
        pindexes: vec![PIndexPlan {
            name: format!("{index}_0-3"),
            source_partitions: vec![0, 1, 2, 3],
            copies: vec![CopyPlan {
                node: node.into(),
                role: CopyRole::Primary,
                state: CopyState::Active,
                can_read: true,
                can_write: true,
                target_role: None,
            }],
        }],
        warnings: Vec::new(),
    }
}

/// Nodes `n1` and `n2`, defined and live (incarnation `i`).
async fn two_nodes(cfg: &Cfg) {
    let lease = cfg
        .store()
        .grant_lease(Duration::from_secs(60))
        .await
        .expect("lease");
    for uuid in ["n1", "n2"] {
        let def = NodeDef {
            format_version: NodeDef::FORMAT_VERSION,
            uuid: uuid.into(),
            incarnation: "i".into(),
            host_port: "127.0.0.1:9100".into(),
            tags: [NodeTag::Pindex].into(),
            group: String::new(),
            weight: 1,
            wanted: true,
            failed_over: false,
            reads: true,
            extras: Default::default(),
        };
        cfg.put_node_def(&def, 0).await.expect("node");
        let live = NodeLiveness {
            format_version: NodeLiveness::FORMAT_VERSION,
            uuid: uuid.into(),
            incarnation: "i".into(),
            host_port: "127.0.0.1:9100".into(),
            started_at_unix_ms: 0,
        };
        cfg.create_liveness(&live, lease).await.expect("liveness");
    }
}

async fn leading(cfg: &Cfg) -> (tessera_cfg::LeaseKeeper, fence::Fence, PlannerService) {
    let me = fence::leader_record("p", "boot");
    let (lease, fence) = fence::campaign(cfg, &me, Duration::from_secs(10))
        .await
        .expect("campaign")
        .expect("the only planner leads");
    let service = PlannerService::new(cfg.clone(), "p", "boot", PlannerOptions::default());
    (lease, fence, service)
}

#[tokio::test]
async fn unreadable_documents_hold_only_what_depends_on_them() {
    let store = Arc::new(LocalStore::open_memory().expect("store"));
    let cfg = Cfg::new(store.clone(), KeySpace::new("iso").expect("keys"));
    two_nodes(&cfg).await;
    for name in ["good", "badplan", "onbadnode"] {
        cfg.put_index_def(&index(name), 0).await.expect("index");
    }
    // `lost`'s definition is unreadable but its plan is not: the plan must not be deleted.
    cfg.put_plan(&plan_on("lost", "n1"), 0).await.expect("plan");
    cfg.store()
        .put(&cfg.keys().index_def("lost"), b"{oops".to_vec(), 0, None)
        .await
        .expect("raw");
    // `badplan`'s stored plan is unreadable: neither rewritten nor deleted.
    cfg.store()
        .put(&cfg.keys().plan("badplan"), b"\xff".to_vec(), 0, None)
        .await
        .expect("raw");
    // Node `n9`'s definition (format 99) is unreadable and `onbadnode` has a copy there.
    cfg.put_plan(&plan_on("onbadnode", "n9"), 0)
        .await
        .expect("plan");
    cfg.store()
        .put(
            &cfg.keys().node_def("n9"),
            br#"{"format_version": 99}"#.to_vec(),
            0,
            None,
        )
        .await
        .expect("raw");
    let before = |key: String| {
        let store = store.clone();
        async move {
            use tessera_cfg::Store;
            store
                .get(&key)
                .await
                .expect("get")
                .map(|kv| kv.mod_revision)
        }
    };
    let held_revisions = (
        before(cfg.keys().plan("lost")).await,
        before(cfg.keys().plan("badplan")).await,
        before(cfg.keys().plan("onbadnode")).await,
    );

    let (_lease, fence, mut service) = leading(&cfg).await;
    let report = service.round(&fence).await.expect("the round completes");

    let good = cfg
        .plan("good")
        .await
        .expect("read")
        .expect("good is planned");
    assert_eq!(good.value.pindexes.len(), 1);
    assert_eq!(
        (
            before(cfg.keys().plan("lost")).await,
            before(cfg.keys().plan("badplan")).await,
            before(cfg.keys().plan("onbadnode")).await,
        ),
        held_revisions,
        "plans that depend on unreadable documents are left as stored"
    );
    let mut held: Vec<&str> = report.plan_errors.keys().map(String::as_str).collect();
    held.sort_unstable();
    assert_eq!(
        held,
        ["badplan", "lost", "onbadnode"],
        "{:?}",
        report.plan_errors
    );
    assert!(
        report.plan_errors["onbadnode"].contains("n9"),
        "{:?}",
        report.plan_errors
    );
    let control = cfg
        .get_doc::<ClusterControl>(&cfg.keys().control())
        .await
        .expect("read")
        .expect("the planner recorded what it holds");
    assert_eq!(control.value.held.plan_errors, report.plan_errors);
}

#[tokio::test]
async fn a_report_older_than_the_plan_cannot_make_a_building_copy_readable() {
    let store = Arc::new(LocalStore::open_memory().expect("store"));
    let cfg = Cfg::new(store, KeySpace::new("fresh").expect("keys"));
    two_nodes(&cfg).await;
    cfg.put_index_def(&index("books"), 0).await.expect("index");
    let (_lease, fence, mut service) = leading(&cfg).await;
    service.round(&fence).await.expect("round");
    let plan = cfg.plan("books").await.expect("read").expect("planned");
    let copy = &plan.value.pindexes[0].copies[0];
    assert_eq!(
        copy.state,
        CopyState::Building,
        "a new copy starts building"
    );
    let report = |plans_seen| tessera_cfg::schema::CopyReport {
        format_version: 1,
        node: copy.node.clone(),
        incarnation: "i".into(),
        caught_up: ["books_0-3".to_string()].into(),
        docs: Default::default(),
        on_disk: Default::default(),
        stalled: Default::default(),
        plans_seen,
        incidents: Default::default(),
        copied_bytes: Default::default(),
    };
    // The node's report says "caught up", but about a plan older than the stored one (the
    // copy it had before this one was added).
    let key = cfg.keys().report(&copy.node);
    let written = cfg
        .put_doc(&key, &report(plan.revision - 1), 0, None)
        .await
        .expect("report");
    service.round(&fence).await.expect("round");
    let after = cfg.plan("books").await.expect("read").expect("planned");
    assert_eq!(
        after.value.pindexes[0].copies[0].state,
        CopyState::Building,
        "a stale report made the copy readable"
    );
    // Once the node has acted on the stored plan, its word counts.
    cfg.put_doc(&key, &report(after.revision), written, None)
        .await
        .expect("report");
    service.round(&fence).await.expect("round");
    let after = cfg.plan("books").await.expect("read").expect("planned");
    assert_eq!(after.value.pindexes[0].copies[0].state, CopyState::Active);
}

#[tokio::test]
async fn a_node_that_returns_while_being_failed_over_keeps_its_copies_and_is_not_counted() {
    use tessera_cfg::interleave::Interleaved;
    let inner: Arc<dyn tessera_cfg::Store> = Arc::new(LocalStore::open_memory().expect("store"));
    let store = Interleaved::new(inner);
    let cfg = Cfg::new(store.clone(), KeySpace::new("race").expect("keys"));
    two_nodes(&cfg).await;
    // n3 is defined but absent (no liveness), and holds the only copy of `books`.
    let n3 = NodeDef {
        format_version: NodeDef::FORMAT_VERSION,
        uuid: "n3".into(),
        incarnation: "old".into(),
        host_port: "127.0.0.1:9103".into(),
        tags: [NodeTag::Pindex].into(),
        group: String::new(),
        weight: 1,
        wanted: true,
        failed_over: false,
        reads: true,
        extras: Default::default(),
    };
    cfg.put_node_def(&n3, 0).await.expect("n3");
    cfg.put_index_def(&index("books"), 0).await.expect("index");
    cfg.put_plan(&plan_on("books", "n3"), 0)
        .await
        .expect("plan");
    // n3 restarts (a new definition) after the round read it, before its failover is written.
    store.before_next_txn(Box::new(move |inner| {
        Box::pin(async move {
            let cfg = Cfg::new(inner, KeySpace::new("race").expect("keys"));
            let current = cfg.node_def("n3").await.expect("read").expect("n3");
            let mut back = current.value.clone();
            back.incarnation = "new".into();
            cfg.put_node_def(&back, current.revision)
                .await
                .expect("re-registered");
        })
    }));
    let me = fence::leader_record("p", "boot");
    let (_lease, fence) = fence::campaign(&cfg, &me, Duration::from_secs(10))
        .await
        .expect("campaign")
        .expect("leads");
    let options = PlannerOptions {
        failover_delay: Duration::ZERO,
        max_auto_failovers: 5,
        ..PlannerOptions::default()
    };
    let mut service = PlannerService::new(cfg.clone(), "p", "boot", options);
    service.round(&fence).await.expect("round");
    let n3 = cfg.node_def("n3").await.expect("read").expect("n3");
    assert!(
        !n3.value.failed_over,
        "the failover overwrote the node's return"
    );
    let control = cfg
        .get_doc::<ClusterControl>(&cfg.keys().control())
        .await
        .expect("read");
    assert_eq!(
        control.map_or(0, |c| c.value.auto_failovers),
        0,
        "a failover that did not land was counted"
    );
    let plan = cfg.plan("books").await.expect("read").expect("plan");
    assert!(
        plan.value.pindexes[0].copies.iter().any(|c| c.node == "n3"),
        "the returning node's copy was planned away: {:?}",
        plan.value
    );
}

#[tokio::test]
async fn a_graceful_failover_step_never_overwrites_a_cancel() {
    use tessera_cfg::interleave::Interleaved;
    use tessera_cfg::schema::{NodeBefore, TaskKind, TaskStatus, TopologyLock, TopologyTask};
    let inner: Arc<dyn tessera_cfg::Store> = Arc::new(LocalStore::open_memory().expect("store"));
    let store = Interleaved::new(inner);
    let keys = || KeySpace::new("step").expect("keys");
    let cfg = Cfg::new(store.clone(), keys());
    two_nodes(&cfg).await;
    cfg.put_index_def(&index("books"), 0).await.expect("index");
    // A graceful failover of n2 whose grace period is long over: n2 is unwanted, and this
    // round's step would fail it over.
    let n2 = cfg.node_def("n2").await.expect("read").expect("n2");
    let mut unwanted = n2.value.clone();
    unwanted.wanted = false;
    cfg.put_node_def(&unwanted, n2.revision).await.expect("n2");
    let task = TopologyTask {
        format_version: 1,
        id: "t1".into(),
        kind: TaskKind::FailoverGraceful,
        status: TaskStatus::Running,
        keep_nodes: vec![],
        eject_nodes: vec!["n2".into()],
        before: [(
            "n2".to_string(),
            NodeBefore {
                wanted: true,
                failed_over: false,
                reads: true,
            },
        )]
        .into(),
        created_ms: 1,
        updated_ms: 1,
        progress: Default::default(),
        errors: vec![],
        summary: None,
    };
    assert!(cfg.put_task(&task, 0).await.expect("task"));
    let lock = TopologyLock {
        format_version: 1,
        task: "t1".into(),
    };
    cfg.put_doc(&cfg.keys().topology_lock(), &lock, 0, None)
        .await
        .expect("lock");
    // The operator cancels just before the step's write: the task ends and n2 is restored.
    store.before_txn_on(
        &cfg.keys().node_def("n2"),
        Box::new(move |inner| {
            Box::pin(async move {
                let cfg = Cfg::new(inner, keys());
                let t = cfg
                    .get_doc::<TopologyTask>(&cfg.keys().task("t1"))
                    .await
                    .expect("read")
                    .expect("t1");
                let mut cancelled = t.value.clone();
                cancelled.status = TaskStatus::Cancelled;
                assert!(cfg.put_task(&cancelled, t.revision).await.expect("cancel"));
                let n2 = cfg.node_def("n2").await.expect("read").expect("n2");
                let mut restored = n2.value.clone();
                restored.wanted = true;
                cfg.put_node_def(&restored, n2.revision)
                    .await
                    .expect("restore");
            })
        }),
    );
    let (_lease, fence, mut service) = leading(&cfg).await;
    service.round(&fence).await.expect("round");
    let n2 = cfg.node_def("n2").await.expect("read").expect("n2");
    assert!(
        n2.value.wanted && !n2.value.failed_over,
        "the step overwrote the cancel: {:?}",
        n2.value
    );
}
