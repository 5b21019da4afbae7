//! Gives every request the node's port serves a span (`request`, named by its route or gRPC
//! method, with this node's uuid), the child of the caller's trace when the request carries a
//! W3C `traceparent` (peers' shard calls do, see `tessera_coord::scatter`), and answers with
//! the trace id in `x-trace-id`. What runs for the request — query phases, shard calls, local
//! searches — are spans inside it, so one query is one trace across the nodes it touched.

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tessera_telemetry::trace::{self, TRACEPARENT, TRACE_ID_HEADER};
use tracing::Instrument;

/// Middleware: layer it on the node's whole router, with the node's uuid as its state.
pub async fn trace(State(node): State<String>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| crate::request_metrics::route_label(p.as_str()));
    let grpc = crate::request_metrics::is_grpc(&request);
    let name = match (&route, grpc) {
        (Some(_), true) => request.uri().path().to_string(),
        (Some(route), false) => format!("{} {route}", request.method()),
        (None, _) => format!("{} unmatched", request.method()),
    };
    let span = tracing::info_span!(
        "request",
        otel.name = %name,
        node = %node,
        status = tracing::field::Empty,
    );
    let incoming = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok());
    trace::adopt(&span, incoming);
    let trace_id = trace::trace_id(&span);
    let mut response = next.run(request).instrument(span.clone()).await;
    span.record("status", response.status().as_u16());
    if let Some(value) = trace_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        response.headers_mut().insert(TRACE_ID_HEADER, value);
    }
    response
}
