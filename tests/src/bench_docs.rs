//! What the feed benchmarks (`benches/hosting.rs`, `benches/sources.rs`) index: one mapping,
//! documents of a fixed shape, and a reference source served on a loopback port.

/// The benchmarks' fulltext mapping.
pub fn params() -> serde_json::Value {
    serde_json::json!({"mapping": {"default_analyzer": "en", "fields": {
        "title": {"type": "text"}, "body": {"type": "text"}, "year": {"type": "i64"}, "tag": {"type": "keyword"}}}})
}

/// Document `i`: two text fields, a number and a keyword.
pub fn doc(i: usize) -> Vec<u8> {
    format!(
        r#"{{"title": "Book number {i} about rust and search", "body": "A longer text body for document {i}, with words that repeat: index partition replica plan janitor feed source", "year": {}, "tag": "t{}"}}"#,
        1900 + i % 120,
        i % 50
    )
    .into_bytes()
}

/// Serves `log` over the gRPC source protocol on a loopback port; its `http://` URL.
pub async fn serve(log: tessera_source::SourceLog) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let app = tessera_source::grpc::SourceService::new(log).router();
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("http://{address}")
}

/// A reference source log at `path` with `docs` documents (`k0`..) in source `docs`.
pub fn filled_log(
    path: &std::path::Path,
    docs: usize,
    partitions: u32,
) -> tessera_source::SourceLog {
    let log = tessera_source::SourceLog::open(path, partitions).expect("log");
    let batch: Vec<tessera_source::Append> = (0..docs)
        .map(|i| tessera_source::Append::Put {
            key: format!("k{i}"),
            doc: doc(i),
        })
        .collect();
    for chunk in batch.chunks(10_000) {
        log.append("docs", chunk).expect("append");
    }
    log
}

/// Documents per second from `source` (`docs` documents over `partitions`) into a new
/// fulltext PIndex, committed.
pub async fn feed_rate(
    source: std::sync::Arc<dyn tessera_sources::SourceType>,
    docs: usize,
    partitions: u32,
) -> f64 {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().expect("temp dir");
    let pindex = tessera_index::open("fulltext", &dir.path().join("p"), &params()).expect("pindex");
    let started = Instant::now();
    let feed = tessera_janitor::feed::Feed::start(
        pindex,
        tessera_janitor::feed::FeedConfig {
            index: "bench".into(),
            source,
            partitions: (0..partitions).collect(),
            commit_every: 100_000,
            commit_interval: Duration::from_secs(5),
            source_partitions: partitions,
            start_paused: false,
        },
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    while feed.status().applied < docs as u64 {
        assert!(
            Instant::now() < deadline,
            "not caught up in 600 s: {:?}",
            feed.status()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pindex = feed.stop().await.expect("stop");
    let elapsed = started.elapsed();
    assert_eq!(pindex.doc_count().expect("count"), docs as u64);
    docs as f64 / elapsed.as_secs_f64()
}
