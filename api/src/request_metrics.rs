//! Counts every request the node's port serves (`tessera_http_requests_total`,
//! `tessera_http_request_duration_seconds`, `tessera_grpc_requests_total`). Labels are the
//! matched route template (`/api/index/:name/query`), or the gRPC method of a matched service,
//! never the raw path, so a client cannot grow the series: requests no route matched count
//! under `unmatched`, gRPC paths that are not a method of the permission table (a service's
//! route matches any method name) under `unknown`, and HTTP methods other than the standard
//! ones under `OTHER`. This runs before the guard, so it must stay bounded for anonymous
//! callers.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::Response;

/// A route template as a label value: `{name}` written `:name`, as simple text parsers of the
/// exposition format cut label values at the first `}`.
pub(crate) fn route_label(template: &str) -> String {
    template.replace('{', ":").replace('}', "")
}

/// Whether `request` is a gRPC call.
pub(crate) fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// A gRPC path as a label: a method of the permission table, or `unknown`.
fn grpc_label(path: &str) -> &'static str {
    tessera_auth::permission::GRPC
        .iter()
        .find(|(p, _)| *p == path)
        .map_or("unknown", |(p, _)| p)
}

/// An HTTP method as a label: the standard ones, or `OTHER`.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|m| *m == method)
        .map_or("OTHER", |m| m.as_str())
}

/// Middleware: layer it on the node's whole router.
pub async fn record(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| route_label(p.as_str()));
    let grpc = is_grpc(&request);
    // A gRPC service's route is a wildcard over its methods; the method is the path, which
    // only a matched service's own methods reach here with.
    let grpc_method = (grpc && route.is_some()).then(|| grpc_label(request.uri().path()));
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let m = tessera_telemetry::metrics();
    if let Some(grpc_method) = grpc_method {
        // tonic answers errors with the status in the headers (trailers-only); a success
        // carries it in the trailers, after this point.
        let code = response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("0");
        let code = if code.len() <= 2 && code.bytes().all(|b| b.is_ascii_digit()) {
            code
        } else {
            "other"
        };
        m.grpc_requests
            .with_label_values(&[grpc_method, code])
            .inc();
        return response;
    }
    let route = route.as_deref().unwrap_or("unmatched");
    m.http_requests
        .with_label_values(&[route, method, response.status().as_str()])
        .inc();
    m.http_duration
        .with_label_values(&[route])
        .observe(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn route_templates_become_labels_without_braces() {
        assert_eq!(
            super::route_label("/api/index/{name}/query"),
            "/api/index/:name/query"
        );
        assert_eq!(super::route_label("/api/ping"), "/api/ping");
    }

    #[test]
    fn made_up_methods_and_grpc_paths_share_one_label() {
        let made_up = axum::http::Method::from_bytes(b"XYZZY").unwrap();
        assert_eq!(super::method_label(&made_up), "OTHER");
        assert_eq!(super::method_label(&axum::http::Method::PUT), "PUT");
        assert_eq!(
            super::grpc_label("/tessera.v1.Search/Query"),
            "/tessera.v1.Search/Query"
        );
        assert_eq!(super::grpc_label("/tessera.v1.Search/r4nd0m"), "unknown");
    }
}
