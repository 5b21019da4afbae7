//! Index hosting figures: documents per second indexed end to end (source log → gRPC stream →
//! feed → fulltext PIndex, committed) against plain tantivy indexing the same documents with
//! the same schema and memory; and the janitor's reaction time from a plan write to the PIndex
//! serving (opened, its feed connected), p50/p99.
//!
//! `cargo bench -p tessera-tests --bench hosting` (`HOSTING_BENCH_DOCS` to change the count).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_cfg::local::LocalStore;
use tessera_cfg::schema::{
    CopyPlan, CopyRole, CopyState, Document, IndexDef, IndexPlan, PIndexPlan, PlanParams, SourceDef,
};
use tessera_cfg::{Cfg, KeySpace};
use tessera_index::mapping::Mapping;
use tessera_janitor::executor::{Executor, ExecutorOptions};
use tessera_source::{Append, SourceLog};
use tessera_tests::bench_docs::{doc, feed_rate, filled_log, params, serve};

const PARTITIONS: u32 = 16;

async fn end_to_end(docs: usize) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = filled_log(&dir.path().join("source.redb"), docs, PARTITIONS);
    let url = serve(log).await;
    let source = tessera_sources::reference::ReferenceSource::at(url, "docs");
    feed_rate(source, docs, PARTITIONS).await
}

fn plain_tantivy(docs: usize) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let mapping = Mapping::from_params(&params()).expect("mapping");
    let index =
        tantivy::Index::create_in_dir(dir.path(), tessera_index::fulltext::schema(&mapping))
            .expect("index");
    let schema = index.schema();
    let started = Instant::now();
    let mut writer: tantivy::IndexWriter =
        index.writer_with_num_threads(1, 32 << 20).expect("writer");
    for i in 0..docs {
        let mut value: serde_json::Value = serde_json::from_slice(&doc(i)).expect("doc");
        value["_id"] = format!("k{i}").into();
        value["_partition"] = (i as u64 % u64::from(PARTITIONS)).into();
        let document =
            tantivy::TantivyDocument::parse_json(&schema, &value.to_string()).expect("parse");
        writer.add_document(document).expect("add");
    }
    writer.commit().expect("commit");
    docs as f64 / started.elapsed().as_secs_f64()
}

/// Time from writing a plan that places a PIndex on this node to the PIndex serving.
async fn janitor_reaction(samples: usize) -> (Duration, Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = SourceLog::open(&dir.path().join("source.redb"), PARTITIONS).expect("log");
    log.append(
        "docs",
        &[Append::Put {
            key: "seed".into(),
            doc: doc(0),
        }],
    )
    .expect("seed");
    let url = serve(log).await;
    let cfg = Cfg::new(
        Arc::new(LocalStore::open_memory().expect("store")),
        KeySpace::new("bench").expect("keys"),
    );
    let executor = Executor::new(
        cfg.clone(),
        "n1",
        "i1",
        ExecutorOptions {
            max_backfills: 4,
            resync: Duration::from_secs(30),
            debounce: Duration::from_millis(1),
            commit_every: 10_000,
            commit_interval: Duration::from_millis(200),
            ..ExecutorOptions::new(dir.path().join("pindexes"), url, Default::default())
        },
    );
    let board = executor.board();
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(executor.run(stopped));
    let mut times = Vec::new();
    for i in 0..samples {
        let name = format!("idx{i}");
        let def = IndexDef {
            format_version: IndexDef::FORMAT_VERSION,
            name: name.clone(),
            uuid: format!("u{i}"),
            index_type: "fulltext".into(),
            source: SourceDef {
                source_type: "tessera".into(),
                name: "docs".into(),
                partitions: Some(PARTITIONS),
                params: Default::default(),
            },
            plan: PlanParams {
                index_partitions: Some(1),
                ..Default::default()
            },
            params: params(),
            controls: Default::default(),
            restore: None,
            recovery: None,
        };
        cfg.put_index_def(&def, 0).await.expect("def");
        let pindex = format!("{name}_0-15");
        let plan = IndexPlan {
            format_version: IndexPlan::FORMAT_VERSION,
            index: name.clone(),
            index_uuid: def.uuid.clone(),
            pindexes: vec![PIndexPlan {
                name: pindex.clone(),
                source_partitions: (0..PARTITIONS).collect(),
                copies: vec![CopyPlan {
                    node: "n1".into(),
                    role: CopyRole::Primary,
                    state: CopyState::Building,
                    can_read: false,
                    can_write: true,
                    target_role: None,
                }],
            }],
            warnings: Vec::new(),
        };
        let started = Instant::now();
        cfg.put_plan(&plan, 0).await.expect("plan");
        loop {
            let serving = board
                .lock()
                .ok()
                .and_then(|b| b.get(&pindex).map(|s| s.snapshot()))
                .is_some_and(|s| {
                    s.feed.is_some_and(|f| {
                        f.partitions.len() == PARTITIONS as usize
                            && f.partitions.values().all(|p| p.connected)
                    })
                });
            if serving {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "PIndex {pindex} never served"
            );
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        times.push(started.elapsed());
    }
    times.sort();
    (
        times[times.len() / 2],
        times[(times.len() * 99 / 100).min(times.len() - 1)],
    )
}

fn main() {
    let docs: usize = std::env::var("HOSTING_BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // Interleaved runs, median of each: the machine has 2 cores, single runs are noisy.
    let (mut plains, mut e2es) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        plains.push(plain_tantivy(docs));
        e2es.push(runtime.block_on(end_to_end(docs)));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (plain, e2e) = (median(&mut plains), median(&mut e2es));
    println!("indexing {docs} docs (median of 5): end to end {e2e:.0} docs/s, plain tantivy {plain:.0} docs/s, ratio {:.2}", e2e / plain);
    let (p50, p99) = runtime.block_on(janitor_reaction(40));
    println!(
        "janitor reaction (plan write → PIndex serving, 40 samples): p50 {:.1} ms, p99 {:.1} ms",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
}
