//! Bounds every route shares: a body limit and a time limit per group of routes, and errors
//! that are always the API's JSON shape. Without it a rejection from the HTTP layer (a body
//! past its limit, a method a route does not have, a path segment that does not parse) answers
//! plain text that scripts cannot read, and a handler stuck on a peer holds its connection
//! for as long as the peer takes.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;

/// The bounds of a group of routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLimits {
    /// Largest request body, in bytes (413 past it).
    pub body_bytes: usize,
    /// Longest a request may take to answer (503 past it). Streams are bounded only until
    /// their first answer: a gRPC stream's answer is its start.
    pub timeout: Duration,
}

impl RouteLimits {
    /// Reads and writes of the Cfg, topology changes, status: small bodies, quick answers.
    pub const ADMIN: RouteLimits = RouteLimits {
        body_bytes: 1 << 20,
        timeout: Duration::from_secs(30),
    };
    /// Queries carry their own `timeout_ms` (at most 600 s); this bound only catches a query
    /// that outlives it.
    pub const QUERY: RouteLimits = RouteLimits {
        body_bytes: 1 << 20,
        timeout: Duration::from_millis(tessera_search::request::MAX_TIMEOUT_MS + 10_000),
    };
    /// One document.
    pub const DOCUMENT: RouteLimits = RouteLimits {
        body_bytes: tessera_source::rest::MAX_DOC_BYTES,
        timeout: Duration::from_secs(60),
    };
    /// Bulk NDJSON loads.
    pub const BULK: RouteLimits = RouteLimits {
        body_bytes: tessera_source::rest::MAX_BULK_BYTES,
        timeout: Duration::from_secs(300),
    };
}

/// `router` under `limits`.
pub fn bounded<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    limits: RouteLimits,
) -> Router<S> {
    router
        .layer(middleware::from_fn_with_state(limits, enforce))
        .layer(DefaultBodyLimit::max(limits.body_bytes))
}

async fn enforce(State(limits): State<RouteLimits>, request: Request, next: Next) -> Response {
    let answer = match tokio::time::timeout(limits.timeout, next.run(request)).await {
        Ok(answer) => answer,
        Err(_) => {
            let ms = limits.timeout.as_millis();
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, HeaderValue::from_static("1"))],
                Json(json!({
                    "error": format!("the request did not finish within this route's limit of {ms} ms"),
                    "timeout_ms": ms,
                })),
            )
                .into_response();
        }
    };
    if answer.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json(&answer) {
        let limit = limits.body_bytes;
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(json!({
                "error": format!("the request body exceeds this route's limit of {limit} bytes"),
                "limit_bytes": limit,
            })),
        )
            .into_response();
    }
    answer
}

/// Turns any error answer that is not JSON (the HTTP layer's own rejections) into the API's
/// JSON error, keeping its status and text. gRPC answers are left alone.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let answer = next.run(request).await;
    let status = answer.status();
    if !(status.is_client_error() || status.is_server_error())
        || is_json(&answer)
        || is_grpc(&answer)
    {
        return answer;
    }
    let (parts, body) = answer.into_parts();
    // Rejection texts are short; a longer body is cut rather than buffered without bound.
    let text = match axum::body::to_bytes(body, 64 << 10).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut out = Response::from_parts(parts, Body::from(json!({"error": message}).to_string()));
    out.headers_mut().remove(header::CONTENT_LENGTH);
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    out
}

fn content_type(answer: &Response) -> &str {
    answer
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn is_json(answer: &Response) -> bool {
    content_type(answer).starts_with("application/json")
}

fn is_grpc(answer: &Response) -> bool {
    content_type(answer).starts_with("application/grpc")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;
    use axum::routing::{get, post};

    async fn call(
        app: Router,
        request: axum::http::Request<Body>,
    ) -> (StatusCode, serde_json::Value) {
        use tower::ServiceExt;
        let answer = app.oneshot(request).await.expect("infallible");
        let status = answer.status();
        let body = axum::body::to_bytes(answer.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&body).expect("the answer is JSON"),
        )
    }

    fn app() -> Router {
        let small = RouteLimits {
            body_bytes: 16,
            timeout: Duration::from_millis(100),
        };
        bounded(
            Router::new()
                .route("/echo", post(|body: Bytes| async move { body }))
                .route(
                    "/slow",
                    get(|| async {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        "late"
                    }),
                )
                .route("/n/{n}", get(|axum::extract::Path(n): axum::extract::Path<u32>| async move { n.to_string() })),
            small,
        )
        .layer(middleware::from_fn(json_errors))
    }

    #[tokio::test]
    async fn a_body_past_the_limit_is_a_json_413_naming_the_limit() {
        let request = axum::http::Request::post("/echo")
            .body(Body::from(vec![b'x'; 17]))
            .expect("request");
        let (status, body) = call(app(), request).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert_eq!(body["limit_bytes"], 16, "{body}");
    }

    #[tokio::test]
    async fn a_request_past_its_time_is_a_json_503() {
        let request = axum::http::Request::get("/slow")
            .body(Body::empty())
            .expect("request");
        let (status, body) = call(app(), request).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["timeout_ms"], 100, "{body}");
    }

    #[tokio::test]
    async fn rejections_of_the_http_layer_are_json() {
        let request = axum::http::Request::get("/n/not-a-number")
            .body(Body::empty())
            .expect("request");
        let (status, body) = call(app(), request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
        let request = axum::http::Request::delete("/echo")
            .body(Body::empty())
            .expect("request");
        let (status, body) = call(app(), request).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    }

    #[tokio::test]
    async fn the_node_api_bounds_each_group_of_routes() {
        let cfg = tessera_cfg::Cfg::new(
            std::sync::Arc::new(tessera_cfg::local::LocalStore::open_memory().expect("store")),
            tessera_cfg::KeySpace::new("t").expect("keys"),
        );
        let state = crate::state::tests::state(cfg, "n", Default::default());
        let app = crate::app(state).layer(middleware::from_fn(json_errors));
        let big = vec![b'x'; (1 << 20) + 1];
        for (method, path) in [
            ("PUT", "/api/index/books"),
            ("POST", "/api/index/books/query"),
            ("POST", "/api/ctl/topology-change"),
        ] {
            let request = axum::http::Request::builder()
                .method(method)
                .uri(path)
                .body(Body::from(big.clone()))
                .expect("request");
            let (status, body) = call(app.clone(), request).await;
            assert_eq!(
                status,
                StatusCode::PAYLOAD_TOO_LARGE,
                "{method} {path}: {body}"
            );
            assert_eq!(body["limit_bytes"], 1 << 20, "{method} {path}: {body}");
        }
    }
}
