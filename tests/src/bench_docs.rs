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
