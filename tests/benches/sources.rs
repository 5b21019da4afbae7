//! End-to-end indexing from each source type on the same documents: the reference source
//! (log → gRPC stream → feed → fulltext PIndex, committed) against NATS JetStream (stream on a
//! real nats-server → consumers → feed → the same PIndex), interleaved, median of 3 each; and
//! how fast `ctl load`'s producer publishes to JetStream (acknowledged).
//!
//! `cargo bench -p tessera-tests --bench sources` (`SOURCES_BENCH_DOCS` to change the count).

use std::sync::Arc;
use std::time::Instant;

use tessera_sources::jetstream::producer::{Change, Producer};
use tessera_sources::SourceType;
use tessera_tests::bench_docs::{doc, feed_rate, filled_log, serve};
use tessera_tests::nats::{create_docs_stream, docs_params, NatsCluster};

const PARTITIONS: u32 = 16;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let docs: usize = std::env::var("SOURCES_BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);

    // The reference source.
    let dir = tempfile::tempdir().expect("temp dir");
    let log = filled_log(&dir.path().join("source.redb"), docs, PARTITIONS);
    let reference = tessera_sources::reference::ReferenceSource::at(serve(log).await, "docs");

    // JetStream: the same documents published as `ctl load` does.
    let nats = NatsCluster::single();
    let client = async_nats::connect(nats.url(0)).await.expect("NATS");
    create_docs_stream(&client, PARTITIONS).await;
    let mut producer = Producer::new(&client, "DOCS", "docs", None)
        .await
        .expect("producer");
    let started = Instant::now();
    for i in 0..docs {
        let change = Change::Put {
            key: format!("k{i}"),
            doc: doc(i),
        };
        producer.send(change).await.expect("publish");
    }
    producer.flush().await.expect("acks");
    let published = docs as f64 / started.elapsed().as_secs_f64();
    let sources = tessera_sources::Sources::default();
    let def = docs_params(vec![nats.url(0)], PARTITIONS, None).definition("docs");
    let jetstream: Arc<dyn SourceType> = Arc::new(sources.jetstream(&def).await.expect("source"));

    let (mut from_reference, mut from_jetstream) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        from_reference.push(feed_rate(reference.clone(), docs, PARTITIONS).await);
        from_jetstream.push(feed_rate(jetstream.clone(), docs, PARTITIONS).await);
    }
    let (r, j) = (median(from_reference), median(from_jetstream));
    println!("{docs} documents, {PARTITIONS} partitions, one fulltext PIndex, median of 3 (interleaved):");
    println!("  reference source (gRPC) -> PIndex: {r:>9.0} docs/s");
    println!(
        "  NATS JetStream          -> PIndex: {j:>9.0} docs/s  ({:.2}x the reference)",
        j / r
    );
    println!("  publishing to JetStream (acknowledged, window 512): {published:.0} docs/s");
}
