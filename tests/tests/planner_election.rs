//! The planner service against real etcd: one leader at a time, failover within the lease TTL
//! plus a second, fenced writes that a deposed leader cannot make, and re-planning on changes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_cfg::etcd::{EtcdOptions, EtcdStore};
use tessera_cfg::schema::{
    Document, IndexDef, IndexPlan, NodeDef, NodeTag, PlanParams, PlannerLeader, SourceDef,
};
use tessera_cfg::{Cfg, KeySpace};
use tessera_planner::service::{fence, PlannerError, PlannerOptions, PlannerService, PlannerStats};
use tessera_tests::etcd::EtcdCluster;
use tessera_tests::wait::until;
use tokio::sync::watch;

const TTL: Duration = Duration::from_secs(2);

async fn setup() -> (EtcdCluster, Cfg) {
    tessera_tests::init_tracing();
    let etcd = tokio::task::spawn_blocking(EtcdCluster::single)
        .await
        .expect("etcd");
    let store = EtcdStore::connect(EtcdOptions::new(etcd.endpoints()))
        .await
        .expect("connect");
    let cfg = Cfg::new(Arc::new(store), KeySpace::new("plan").unwrap());
    for i in 0..3 {
        let def = NodeDef {
            format_version: NodeDef::FORMAT_VERSION,
            uuid: format!("n{i}"),
            incarnation: "i".into(),
            host_port: format!("127.0.0.1:{}", 9100 + i),
            tags: [NodeTag::Pindex].into(),
            group: format!("zone-{i}"),
            weight: 1,
            wanted: true,
            failed_over: false,
            reads: true,
            extras: Default::default(),
        };
        cfg.put_node_def(&def, 0).await.unwrap();
    }
    cfg.put_index_def(&index("books", 2), 0).await.unwrap();
    (etcd, cfg)
}

fn index(name: &str, replicas: u32) -> IndexDef {
    IndexDef {
        format_version: IndexDef::FORMAT_VERSION,
        name: name.into(),
        uuid: format!("{name}-uuid"),
        index_type: "fulltext".into(),
        source: SourceDef {
            source_type: "tessera".into(),
            name: "docs".into(),
            partitions: Some(64),
            params: Default::default(),
        },
        plan: PlanParams {
            max_partitions_per_pindex: Some(16),
            replicas,
            ..Default::default()
        },
        params: serde_json::Value::Null,
        controls: Default::default(),
        restore: None,
        recovery: None,
    }
}

fn options() -> PlannerOptions {
    PlannerOptions {
        lease_ttl: TTL,
        debounce: Duration::from_millis(50),
        resync: Duration::from_secs(30),
        failover_delay: Duration::from_secs(60),
        ..PlannerOptions::default()
    }
}

struct Running {
    stats: Arc<PlannerStats>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn start(cfg: &Cfg, name: &str) -> Running {
    let service = PlannerService::new(cfg.clone(), name, &format!("{name}-boot"), options());
    let stats = service.stats();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(service.run(stopped));
    Running { stats, stop, task }
}

async fn leader(cfg: &Cfg) -> Option<String> {
    cfg.get_doc::<PlannerLeader>(&cfg.keys().planner_leader())
        .await
        .unwrap()
        .map(|l| l.value.uuid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_planners_race_one_leads_and_writes() {
    let (_etcd, cfg) = setup().await;
    let a = start(&cfg, "planner-a");
    let b = start(&cfg, "planner-b");
    let plan = until(Duration::from_secs(15), "the books plan", || {
        let cfg = cfg.clone();
        async move { cfg.plan("books").await.unwrap() }
    })
    .await;
    assert_eq!(plan.value.pindexes.len(), 4);
    assert!(plan.value.pindexes.iter().all(|p| p.copies.len() == 3));

    let who = leader(&cfg).await.expect("a leader");
    let (lead, other) = if who == "planner-a" {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert!(lead.stats.is_leader.load(Ordering::Relaxed));
    assert!(
        !other.stats.is_leader.load(Ordering::Relaxed),
        "two leaders"
    );
    assert_eq!(
        other.stats.rounds.load(Ordering::Relaxed),
        0,
        "the follower planned"
    );
    assert_eq!(
        other.stats.plans_written.load(Ordering::Relaxed),
        0,
        "the follower wrote a plan"
    );

    // A definition change is re-planned by the leader (watched, debounced).
    let current = cfg.index_def("books").await.unwrap().unwrap();
    cfg.put_index_def(&index("books", 1), current.revision)
        .await
        .unwrap();
    until(
        Duration::from_secs(10),
        "the re-plan with one replica",
        || {
            let cfg = cfg.clone();
            async move {
                let plan = cfg.plan("books").await.unwrap()?;
                plan.value
                    .pindexes
                    .iter()
                    .all(|p| p.copies.len() == 2)
                    .then_some(())
            }
        },
    )
    .await;
    assert_eq!(other.stats.plans_written.load(Ordering::Relaxed), 0);
    for p in [a, b] {
        let _ = p.stop.send(true);
        p.task.await.unwrap();
    }
    assert_eq!(leader(&cfg).await, None, "a stopped leader resigns");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_within_the_ttl_plus_a_second() {
    let (_etcd, cfg) = setup().await;
    let a = start(&cfg, "planner-a");
    until(Duration::from_secs(10), "planner-a to lead", || {
        let cfg = cfg.clone();
        async move { (leader(&cfg).await.as_deref() == Some("planner-a")).then_some(()) }
    })
    .await;
    let b = start(&cfg, "planner-b");
    // b has seen a leading and stands by, waiting for the seat.
    until(Duration::from_secs(5), "planner-b standing by", || {
        let standing_by = b.stats.standbys.load(Ordering::Relaxed) > 0;
        async move { standing_by.then_some(()) }
    })
    .await;
    // Kill a: no resignation, its lease must run out.
    a.task.abort();
    let killed = Instant::now();
    until(
        TTL + Duration::from_secs(5),
        "planner-b to take over",
        || {
            let cfg = cfg.clone();
            async move { (leader(&cfg).await.as_deref() == Some("planner-b")).then_some(()) }
        },
    )
    .await;
    let took = killed.elapsed();
    assert!(
        took <= TTL + Duration::from_secs(1),
        "takeover took {took:?}, TTL {TTL:?}"
    );
    until(Duration::from_secs(5), "planner-b to lead", || {
        let leading = b.stats.is_leader.load(Ordering::Relaxed);
        async move { leading.then_some(()) }
    })
    .await;
    let _ = b.stop.send(true);
    b.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leaders_write_is_rejected() {
    let (_etcd, cfg) = setup().await;
    let me = fence::leader_record("old", "boot1");
    let (old_lease, old_fence) = fence::campaign(&cfg, &me, TTL)
        .await
        .unwrap()
        .expect("old leads");
    // The old leader stalls: its lease goes, a new leader takes over.
    old_lease.revoke().await.unwrap();
    let (_new_lease, new_fence) = fence::campaign(&cfg, &fence::leader_record("new", "boot1"), TTL)
        .await
        .unwrap()
        .expect("new leads");
    assert_ne!(old_fence.revision, new_fence.revision);

    let plan = IndexPlan {
        format_version: IndexPlan::FORMAT_VERSION,
        index: "books".into(),
        index_uuid: "books-uuid".into(),
        pindexes: Vec::new(),
        warnings: vec!["written by a deposed leader".into()],
    };
    match fence::write_plan(&cfg, &old_fence, "books", Some(&plan), 0).await {
        Err(PlannerError::Deposed) => {}
        other => panic!("a stale leader's write must fail as Deposed, got {other:?}"),
    }
    assert!(
        cfg.plan("books").await.unwrap().is_none(),
        "the stale write landed"
    );
    fence::write_plan(&cfg, &new_fence, "books", Some(&plan), 0)
        .await
        .expect("the leader writes");
    assert!(cfg.plan("books").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_gone_longer_than_the_failover_delay_loses_its_copies() {
    use tessera_cfg::schema::NodeLiveness;
    let (_etcd, cfg) = setup().await;
    let mut leases = Vec::new();
    for i in 0..3 {
        let lease = tessera_cfg::LeaseKeeper::grant(cfg.store().clone(), TTL)
            .await
            .unwrap();
        let live = NodeLiveness {
            format_version: NodeLiveness::FORMAT_VERSION,
            uuid: format!("n{i}"),
            incarnation: "i".into(),
            host_port: format!("127.0.0.1:{}", 9100 + i),
            started_at_unix_ms: 0,
        };
        cfg.create_liveness(&live, lease.id()).await.unwrap();
        leases.push(lease);
    }
    let service = PlannerService::new(
        cfg.clone(),
        "planner-a",
        "boot",
        PlannerOptions {
            failover_delay: Duration::from_secs(1),
            ..options()
        },
    );
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(service.run(stopped));
    until(Duration::from_secs(10), "a plan using n2", || {
        let cfg = cfg.clone();
        async move {
            let plan = cfg.plan("books").await.unwrap()?;
            plan.value
                .pindexes
                .iter()
                .any(|p| p.copies.iter().any(|c| c.node == "n2"))
                .then_some(())
        }
    })
    .await;
    leases.pop().unwrap().revoke().await.unwrap();
    let gone = Instant::now();
    let plan = until(Duration::from_secs(10), "n2's copies to move away", || {
        let cfg = cfg.clone();
        async move {
            let plan = cfg.plan("books").await.unwrap()?;
            plan.value
                .pindexes
                .iter()
                .all(|p| p.copies.iter().all(|c| c.node != "n2"))
                .then_some(plan)
        }
    })
    .await;
    assert!(
        gone.elapsed() >= Duration::from_secs(1),
        "failed over before the delay"
    );
    for p in &plan.value.pindexes {
        assert_eq!(
            p.copies
                .iter()
                .filter(|c| c.role == tessera_cfg::schema::CopyRole::Primary)
                .count(),
            1,
            "{}",
            p.name
        );
    }
    let _ = stop.send(true);
    task.await.unwrap();
}
