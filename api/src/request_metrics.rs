//! Counts every request the node's port serves (`tessera_http_requests_total`,
//! `tessera_http_request_duration_seconds`, `tessera_grpc_requests_total`). Labels are the
//! matched route template (`/api/index/:name/query`), or the gRPC method of a matched service,
//! never the raw path, so a
//! client cannot grow the series: requests no route matched count under `unmatched`.

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

/// Middleware: layer it on the node's whole router.
pub async fn record(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| route_label(p.as_str()));
    let grpc = is_grpc(&request);
    // A gRPC service's route is a wildcard over its methods; the method is the path, which
    // only a matched service's own methods reach here with.
    let grpc_method = (grpc && route.is_some()).then(|| request.uri().path().to_string());
    let method = request.method().as_str().to_string();
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
        m.grpc_requests
            .with_label_values(&[grpc_method.as_str(), code])
            .inc();
        return response;
    }
    let route = route.as_deref().unwrap_or("unmatched");
    m.http_requests
        .with_label_values(&[route, method.as_str(), response.status().as_str()])
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
}
