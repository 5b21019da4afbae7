//! Cfg store figures: CAS writes per second (one writer, and 8 concurrent writers on their own
//! keys) and watch delivery latency (from the start of a write to the watcher receiving it),
//! for the memory, embedded and etcd backends. etcd runs as a real child process.
//!
//! `cargo bench -p tessera-tests --bench cfg_store` (set `CFG_BENCH_WRITES` to change the count).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_cfg::etcd::{EtcdOptions, EtcdStore};
use tessera_cfg::local::LocalStore;
use tessera_cfg::{Store, WatchEvent};
use tessera_tests::etcd::EtcdCluster;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let writes: usize = std::env::var("CFG_BENCH_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    runtime.block_on(async move {
        println!(
            "backend    cas_writes/s(1)  cas_writes/s(8)  watch_p50_ms  watch_p99_ms  (n={writes})"
        );
        let memory: Arc<dyn Store> = Arc::new(LocalStore::open_memory().expect("memory"));
        report("memory", memory, writes).await;

        let dir = tempfile::tempdir().expect("temp dir");
        let embedded: Arc<dyn Store> =
            Arc::new(LocalStore::open_file(&dir.path().join("cfg.redb")).expect("embedded"));
        report("embedded", embedded, writes).await;

        let cluster = tokio::task::spawn_blocking(EtcdCluster::single)
            .await
            .expect("etcd");
        let etcd: Arc<dyn Store> = Arc::new(
            EtcdStore::connect(EtcdOptions::new(cluster.endpoints()))
                .await
                .expect("connect"),
        );
        report("etcd", etcd, writes).await;
    });
}

async fn report(name: &str, store: Arc<dyn Store>, writes: usize) {
    let sequential = cas_rate(&store, "/bench/seq", 1, writes).await;
    let concurrent = cas_rate(&store, "/bench/par", 8, writes).await;
    let (p50, p99) = watch_latency(&store, writes.min(1000)).await;
    println!(
        "{name:<10} {sequential:>15.0}  {concurrent:>15.0}  {:>12.3}  {:>12.3}",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
}

/// Each writer updates its own key under CAS `total / writers` times.
async fn cas_rate(store: &Arc<dyn Store>, prefix: &str, writers: usize, total: usize) -> f64 {
    let each = total / writers;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let key = format!("{prefix}/{w}");
        tasks.push(tokio::spawn(async move {
            let mut cas = 0;
            for i in 0..each {
                cas = store
                    .set(&key, i.to_string().into_bytes(), cas)
                    .await
                    .expect("cas write");
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    (each * writers) as f64 / started.elapsed().as_secs_f64()
}

async fn watch_latency(store: &Arc<dyn Store>, samples: usize) -> (Duration, Duration) {
    let mut watch = store.watch("/bench/watch/", 0).await.expect("watch");
    let mut latencies = Vec::with_capacity(samples);
    let mut cas = 0;
    for i in 0..samples {
        let started = Instant::now();
        cas = store
            .set("/bench/watch/k", i.to_string().into_bytes(), cas)
            .await
            .expect("write");
        loop {
            match tokio::time::timeout(Duration::from_secs(10), watch.next()).await {
                Ok(Some(WatchEvent::Put(kv))) if kv.mod_revision == cas => break,
                Ok(Some(_)) => continue,
                other => panic!("watch failed during the benchmark: {other:?}"),
            }
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    (at(0.50), at(0.99))
}
