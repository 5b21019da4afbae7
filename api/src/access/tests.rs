//! The guard on a small router: names decoded before globs see them, one answer for unknown
//! and wrong keys, and the audit lines it hands over — denials summarised per client, a gRPC
//! call's real status and index, node identities' calls counted.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path};
use axum::http::{Request as HttpRequest, StatusCode};
use axum::routing::{get, post};
use axum::{Extension, Router};
use http_body_util::{BodyExt, Full};
use tessera_auth::audit::{writer, AuditLog};
use tessera_auth::key;
use tower::ServiceExt;

use super::*;

struct Keys {
    admin: String,
    /// `searcher:*41`
    searcher: String,
    /// role `node`
    node: String,
}

async fn ring() -> (KeyRing, Keys) {
    let cfg = tessera_cfg::Cfg::new(
        Arc::new(tessera_cfg::local::LocalStore::open_memory().expect("store")),
        tessera_cfg::KeySpace::new("t").expect("keys"),
    );
    let mut tokens = Vec::new();
    for role in ["admin", "searcher:*41", "node"] {
        let (token, record) = key::make("k", &[role.parse().expect("role")], 0, None).expect("key");
        cfg.put_api_key(&record, 0).await.expect("put");
        tokens.push(token);
    }
    let [admin, searcher, node] = <[String; 3]>::try_from(tokens).expect("three keys");
    let keys = Keys {
        admin,
        searcher,
        node,
    };
    (KeyRing::start(cfg), keys)
}

/// A service that answers 200 and fails later, in its trailers (a stream that broke), after
/// naming its index as `checked` does.
async fn fails_late(Extension(named): Extension<IndexNamed>) -> Response {
    let _ = named.0.set("payroll".into());
    let mut trailers = axum::http::HeaderMap::new();
    trailers.insert("grpc-status", axum::http::HeaderValue::from_static("13"));
    let body = Full::new(axum::body::Bytes::from_static(b"\0\0\0\0\0"))
        .with_trailers(async move { Some(Ok(trailers)) });
    let mut response = Response::new(Body::new(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/grpc"),
    );
    response
}

async fn grpc_ok() -> Response {
    let mut trailers = axum::http::HeaderMap::new();
    trailers.insert("grpc-status", axum::http::HeaderValue::from_static("0"));
    let body = Full::new(axum::body::Bytes::new()).with_trailers(async move { Some(Ok(trailers)) });
    Response::new(Body::new(body))
}

fn router(access: Access) -> Router {
    Router::new()
        .route(
            "/api/index/{name}",
            get(|Path(name): Path<String>| async move { name }),
        )
        .route("/api/cfg", get(|| async { "{}" }))
        .route("/tessera.v1.Indexes/PutIndex", post(fails_late))
        .route("/tessera.v1.Search/ShardSearch", post(grpc_ok))
        .layer(axum::middleware::from_fn_with_state(access, guard))
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    key: Option<&str>,
    grpc: bool,
) -> (StatusCode, String) {
    let mut request = HttpRequest::builder().method(method).uri(path);
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    if grpc {
        request = request.header(header::CONTENT_TYPE, "application/grpc");
    }
    let mut request = request.body(Body::empty()).expect("request");
    let client: SocketAddr = "10.0.0.9:40000".parse().expect("address");
    request.extensions_mut().insert(ConnectInfo(client));
    let response = app.clone().oneshot(request).await.expect("answered");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    (status, body)
}

fn required(keys: KeyRing, audit: Option<writer::AuditSink>) -> Access {
    Access {
        mode: AuthMode::Required,
        keys: Some(keys),
        audit,
    }
}

#[tokio::test]
async fn globs_see_the_name_the_handler_acts_on() {
    let (ring, keys) = ring().await;
    let app = router(required(ring, None));
    // `payroll%41` is `payrollA` to the handler: `searcher:*41` must not read it.
    let (status, body) = call(
        &app,
        "GET",
        "/api/index/payroll%41",
        Some(&keys.searcher),
        false,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = call(
        &app,
        "GET",
        "/api/index/payroll41",
        Some(&keys.searcher),
        false,
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "payroll41"));
    let (status, body) = call(
        &app,
        "GET",
        "/api/index/x%34%31",
        Some(&keys.searcher),
        false,
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "x41"),
        "decoded, then matched"
    );
    for bad in ["/api/index/a%2Fb", "/api/index/%FF%FE"] {
        let (status, body) = call(&app, "GET", bad, Some(&keys.admin), false).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

#[tokio::test]
async fn unknown_and_wrong_keys_get_the_same_answer() {
    let (ring, keys) = ring().await;
    let app = router(required(ring, None));
    let unknown = format!("tsk_{}_{}", "0".repeat(16), "0".repeat(64));
    let wrong = format!("tsk_{}_{}", &keys.admin[4..20], "0".repeat(64));
    let (s1, unknown_body) = call(&app, "GET", "/api/cfg", Some(&unknown), false).await;
    let (s2, wrong_body) = call(&app, "GET", "/api/cfg", Some(&wrong), false).await;
    let (s3, malformed_body) = call(&app, "GET", "/api/cfg", Some("hunter2"), false).await;
    assert_eq!(
        (s1, s2, s3),
        (
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED
        )
    );
    assert_eq!(unknown_body, wrong_body);
    assert_eq!(unknown_body, malformed_body);
    assert!(unknown_body.contains(INVALID_KEY), "{unknown_body}");
    assert!(
        !wrong_body.contains(&keys.admin[4..20]),
        "names the key id: {wrong_body}"
    );
}

#[tokio::test]
async fn the_audit_summarises_denials_and_records_what_calls_really_did() {
    let dir = tempfile::tempdir().expect("dir");
    let log = AuditLog::open(dir.path(), 1 << 20, 2).expect("log");
    let (sink, writer) = writer::AuditSink::start(log, writer::QUEUE, 60_000).expect("writer");
    let (ring, keys) = ring().await;
    let app = router(required(ring, Some(sink)));
    for _ in 0..40 {
        let (status, _) = call(&app, "GET", "/api/cfg", None, false).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // A gRPC call that went on (200 in its headers) and failed in its trailers.
    let (status, _) = call(
        &app,
        "POST",
        "/tessera.v1.Indexes/PutIndex",
        Some(&keys.admin),
        true,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the failure is in the trailers");
    // A node identity reading data: counted.
    for _ in 0..3 {
        call(
            &app,
            "POST",
            "/tessera.v1.Search/ShardSearch",
            Some(&keys.node),
            true,
        )
        .await;
    }
    drop(app);
    assert!(
        tokio::task::spawn_blocking(move || writer.join())
            .await
            .unwrap_or(false),
        "the writer ended"
    );
    let text = std::fs::read_to_string(dir.path().join("audit.log")).expect("log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let of = |event: u32| lines.iter().filter(move |l| l["event"] == event);
    assert_eq!(
        of(20001).count(),
        tessera_auth::audit::summary::WRITTEN_PER_WINDOW as usize,
        "{text}"
    );
    assert!(of(20001).all(|l| l["client"] == "10.0.0.9"));
    let summary = of(20003).next().expect("the rest summarised");
    assert_eq!(
        summary["count"],
        40 - tessera_auth::audit::summary::WRITTEN_PER_WINDOW
    );
    let put = of(20101).next().expect("the PutIndex audited");
    assert_eq!(put["outcome"], 500, "{put}");
    assert_eq!(put["grpc_status"], 13, "{put}");
    assert_eq!(put["index"], "payroll", "{put}");
    let reads = of(20601).next().expect("the node's reads counted");
    assert_eq!(reads["count"], 3, "{reads}");
    assert_eq!(reads["route"], "/tessera.v1.Search/ShardSearch");
    assert!(reads["identity"]
        .as_str()
        .is_some_and(|i| i.starts_with("key:")));
}
