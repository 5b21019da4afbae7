//! The cluster view with many indexes: a Cfg in a real etcd holding 1,000 index definitions
//! and their plans (4 PIndexes of 2 copies each over 3 nodes), mirrored by the view every node
//! keeps. Prints the bytes the mirror holds, the time a fresh view takes to list and follow the
//! Cfg (what a node restarting does before its queries route from memory), and the time it
//! takes to reflect a burst of 1,000 plan changes. Memory is counted by this process's
//! allocator (live bytes after the view synced, less those before it started).
//! Run: `cargo bench -p tessera-node --bench cluster_view`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tessera_cfg::schema::{IndexDef, IndexPlan, NodeDef};
use tessera_coord::{ClusterView, Freshness};
use tessera_tests::etcd::EtcdCluster;

const INDEXES: usize = 1000;
const PINDEXES: usize = 4;
const RUNS: usize = 5;

/// Counts the bytes allocated and not yet freed.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn index_def(i: usize) -> IndexDef {
    serde_json::from_value(json!({
        "format_version": 1, "name": format!("tenant{i:04}"), "uuid": format!("u{i:04}"),
        "type": "fulltext",
        "source": {"type": "tessera", "name": "docs", "partitions": 64},
        "plan": {"index_partitions": PINDEXES, "replicas": 1},
        "params": {"mapping": {"fields": {"title": {"type": "text"}, "body": {"type": "text"}}}}
    }))
    .expect("a definition")
}

fn plan(i: usize, generation: usize) -> IndexPlan {
    let per = 64 / PINDEXES;
    let pindexes: Vec<_> = (0..PINDEXES)
        .map(|p| {
            let (first, last) = (p * per, p * per + per - 1);
            let primary = (i + p + generation) % 3;
            let copy = |n: usize, role: &str| {
                json!({"node": format!("node{n}"), "role": role, "state": "active",
                       "can_read": true, "can_write": true})
            };
            json!({"name": format!("tenant{i:04}_{first}-{last}"),
                   "source_partitions": (first..=last).collect::<Vec<_>>(),
                   "copies": [copy(primary, "primary"), copy((primary + 1) % 3, "replica")]})
        })
        .collect();
    serde_json::from_value(json!({
        "format_version": 1, "index": format!("tenant{i:04}"), "index_uuid": format!("u{i:04}"),
        "warnings": [], "pindexes": pindexes
    }))
    .expect("a plan")
}

fn node(n: usize) -> NodeDef {
    serde_json::from_value(json!({
        "format_version": 1, "uuid": format!("node{n}"), "incarnation": "i",
        "host_port": format!("127.0.0.1:{}", 7000 + n), "tags": ["pindex"], "weight": 1,
        "reads": true
    }))
    .expect("a node")
}

/// Waits (bounded) until `view` answers `read`.
async fn until<T>(
    view: &ClusterView,
    what: &str,
    read: impl Fn(&tessera_coord::cluster_view::Mirror) -> Option<T>,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while view.read(Freshness::Mirror, &read).await.is_none() {
        assert!(Instant::now() < deadline, "the view never showed {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let etcd = EtcdCluster::single();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let scratch = tempfile::tempdir().expect("tempdir");
    runtime.block_on(async {
        let cfg = etcd
            .cfg_spec("bench")
            .parse::<tessera_cfg::CfgSpec>()
            .expect("spec")
            .open(scratch.path())
            .await
            .expect("the Cfg in etcd");
        for n in 0..3 {
            cfg.put_node_def(&node(n), 0).await.expect("a node definition");
        }
        let started = Instant::now();
        for i in 0..INDEXES {
            cfg.put_index_def(&index_def(i), 0).await.expect("a definition");
            cfg.put_plan(&plan(i, 0), 0).await.expect("a plan");
        }
        println!(
            "cluster view: {INDEXES} indexes x {PINDEXES} PIndexes x 2 copies, 3 nodes (written in {:.1} s)",
            started.elapsed().as_secs_f64()
        );

        let last = format!("tenant{:04}", INDEXES - 1);
        let (mut bytes, mut catch_up) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let before = LIVE.load(Ordering::Relaxed);
            let started = Instant::now();
            let view = ClusterView::start(cfg.clone());
            until(&view, "the last index", |m| m.view(&last)).await;
            catch_up.push(started.elapsed().as_secs_f64() * 1000.0);
            bytes.push((LIVE.load(Ordering::Relaxed) - before) as f64);
            drop(view);
            // The maintaining task ends with the runtime; let this one's buffers go first.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let held = median(bytes);
        println!(
            "  memory held by the view: {:.1} MB ({:.1} kB per index)",
            held / 1e6,
            held / 1e3 / INDEXES as f64
        );
        println!(
            "  catch-up of a fresh view (a node's restart): median {:.0} ms over {RUNS} runs",
            median(catch_up)
        );

        // A burst: every plan rewritten at once (a rebalance of everything, 32 writes in
        // flight), then the time until the view reflects the newest of them.
        let view = ClusterView::start(cfg.clone());
        until(&view, "the last index", |m| m.view(&last)).await;
        let started = Instant::now();
        let mut writes = tokio::task::JoinSet::new();
        let mut revision = 0;
        for i in 0..INDEXES {
            if writes.len() >= 32 {
                if let Some(done) = writes.join_next().await {
                    revision = revision.max(done.expect("a write task"));
                }
            }
            let cfg = cfg.clone();
            writes.spawn(async move {
                let name = format!("tenant{i:04}");
                let current = cfg.plan(&name).await.expect("read").expect("planned");
                cfg.put_plan(&plan(i, 1), current.revision).await.expect("rewrite")
            });
        }
        while let Some(done) = writes.join_next().await {
            revision = revision.max(done.expect("a write task"));
        }
        let written = started.elapsed();
        until(&view, "the last plan change", |m| (m.revision >= revision).then_some(())).await;
        let lag = started.elapsed() - written;
        println!(
            "  {INDEXES} plan changes, 32 in flight: written in {:.0} ms, all reflected {:.1} ms after the last write",
            written.as_secs_f64() * 1000.0,
            lag.as_secs_f64() * 1000.0
        );
    });
}
