//! The reference source end to end: REST ingest (single, bulk with a bad line, bad bodies) and
//! the gRPC stream (catch-up in snapshots, live changes, rollback answers).

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use tessera_proto::v1::source_client::SourceClient;
use tessera_proto::v1::stream_event::Event;
use tessera_proto::v1::{ListPartitionsRequest, StreamRequest};
use tessera_source::grpc::SourceService;
use tessera_source::{rest, SourceLog};
use tower::ServiceExt;

async fn call(log: &SourceLog, method: Method, uri: &str, body: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = rest::router(log.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn open(dir: &tempfile::TempDir, partitions: u32) -> SourceLog {
    SourceLog::open(&dir.path().join("source.redb"), partitions).unwrap()
}

#[tokio::test]
async fn rest_ingest_single_bulk_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, 8);
    let (status, body) = call(
        &log,
        Method::PUT,
        "/api/source/docs/doc/k1",
        r#"{"title": "Rust"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["seq"], 1);
    let (status, body) = call(&log, Method::PUT, "/api/source/docs/doc/k2", "[1,2]").await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("body"))
    );
    let (status, _) = call(&log, Method::PUT, "/api/source/docs/doc/k2", "{oops").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(&log, Method::PUT, "/api/source/bad%20name/doc/k", "{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let bulk = "{\"key\":\"a\",\"doc\":{\"n\":1}}\n\n{\"key\":\"b\",\"doc\":{\"n\":2}}\n{\"key\":\"k1\",\"delete\":true}\n{\"key\":\"c\"}\n{\"key\":\"d\",\"doc\":{}}\n";
    let (status, body) = call(&log, Method::POST, "/api/source/docs/bulk", bulk).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        (body["line"].as_u64(), body["accepted"].as_u64()),
        (Some(5), Some(3)),
        "{body}"
    );
    assert!(body["error"].as_str().unwrap().contains("line 5"));

    let (status, body) = call(&log, Method::GET, "/api/source/docs", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["docs"], 2,
        "k1 deleted; a and b kept; nothing after the bad line: {body}"
    );
    assert_eq!(body["changes"], 4);
    let (status, body) = call(&log, Method::GET, "/api/source", "").await;
    assert_eq!(
        (status, body["sources"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );
    let (status, body) = call(&log, Method::GET, "/api/source/nope", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("nope"));
}

#[tokio::test]
async fn keys_past_the_limit_are_400_whatever_their_characters() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, 8);
    // A multibyte character across the bytes an error message shows of the key.
    let key = format!(
        "{}é{}",
        "k".repeat(39),
        "k".repeat(tessera_source::log::MAX_KEY_BYTES)
    );
    let line = serde_json::json!({"key": key, "doc": {}}).to_string();
    let (status, body) = call(&log, Method::POST, "/api/source/docs/bulk", &line).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("key")),
        "{body}"
    );
    let uri = format!("/api/source/docs/doc/{}", key.replace('é', "%C3%A9"));
    let (status, body) = call(&log, Method::PUT, &uri, "{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(log.summary("docs").unwrap(), None, "nothing was written");
}

#[tokio::test]
async fn writes_past_the_cap_answer_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, 8);
    // A cap of zero: every write is past it; reads are not capped.
    let ingest = rest::Ingest::new(log.clone(), 0);
    let app = rest::document_routes(ingest.clone())
        .merge(rest::bulk_routes(ingest.clone()))
        .merge(rest::read_routes(ingest));
    for (method, uri, body) in [
        (Method::PUT, "/api/source/docs/doc/a", "{}"),
        (
            Method::POST,
            "/api/source/docs/bulk",
            "{\"key\":\"a\",\"doc\":{}}",
        ),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{uri}");
        assert_eq!(response.headers()["retry-after"], "1", "{uri}");
    }
    let request = Request::get("/api/source").body(Body::empty()).unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(log.summary("docs").unwrap(), None, "nothing was written");
}

async fn serve(log: SourceLog) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = SourceService::new(log).router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

async fn next(stream: &mut tonic::Streaming<tessera_proto::v1::StreamEvent>) -> Event {
    tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("a stream event within 5 s")
        .expect("stream ok")
        .expect("stream open")
        .event
        .expect("an event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_catches_up_goes_live_and_answers_rollbacks() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir, 1);
    log.append(
        "docs",
        &[tessera_source::Append::Put {
            key: "a".into(),
            doc: b"{}".to_vec(),
        }],
    )
    .unwrap();
    log.append(
        "docs",
        &[tessera_source::Append::Delete { key: "a".into() }],
    )
    .unwrap();
    let mut client = SourceClient::connect(serve(log.clone()).await)
        .await
        .unwrap();

    let parts = client
        .list_partitions(ListPartitionsRequest {
            source: "docs".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(parts.partitions.len(), 1);
    let uuid = parts.partitions[0].uuid.clone();
    assert_eq!(parts.partitions[0].high_seq, 2);

    let mut stream = client
        .stream(StreamRequest {
            source: "docs".into(),
            partition: 0,
            from_seq: 0,
            partition_uuid: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    match next(&mut stream).await {
        Event::Snapshot(s) => assert_eq!(
            (s.start_seq, s.end_seq, s.partition_uuid.as_str()),
            (1, 2, uuid.as_str())
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(next(&mut stream).await, Event::Mutation(m) if m.seq == 1 && m.key == "a"));
    assert!(matches!(next(&mut stream).await, Event::Deletion(d) if d.seq == 2));
    // Live.
    log.append(
        "docs",
        &[tessera_source::Append::Put {
            key: "b".into(),
            doc: b"{\"x\":1}".to_vec(),
        }],
    )
    .unwrap();
    assert!(matches!(next(&mut stream).await, Event::Snapshot(s) if s.start_seq == 3));
    assert!(
        matches!(next(&mut stream).await, Event::Mutation(m) if m.seq == 3 && m.doc == b"{\"x\":1}")
    );

    // Resuming from a known position continues after it.
    let mut resumed = client
        .stream(StreamRequest {
            source: "docs".into(),
            partition: 0,
            from_seq: 2,
            partition_uuid: uuid.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(next(&mut resumed).await, Event::Snapshot(s) if s.start_seq == 3));

    // Positions outside the history are told to roll back.
    for (from_seq, partition_uuid, to) in [
        (1, "other-history".to_string(), 0),
        (9, uuid.clone(), 3),
        (1, String::new(), 0),
    ] {
        let mut rb = client
            .stream(StreamRequest {
                source: "docs".into(),
                partition: 0,
                from_seq,
                partition_uuid,
            })
            .await
            .unwrap()
            .into_inner();
        match next(&mut rb).await {
            Event::Rollback(r) => {
                assert_eq!((r.seq, r.partition_uuid.as_str()), (to, uuid.as_str()))
            }
            other => panic!("from {from_seq}: expected a rollback, got {other:?}"),
        }
    }
    let missing = client
        .stream(StreamRequest {
            source: "nope".into(),
            partition: 0,
            from_seq: 0,
            partition_uuid: String::new(),
        })
        .await;
    assert_eq!(missing.err().map(|s| s.code()), Some(tonic::Code::NotFound));
}
