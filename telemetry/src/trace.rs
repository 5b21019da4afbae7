//! Traces: one trace per request, followed across nodes. Spans are `tracing` spans; the
//! OpenTelemetry layer ([`layer`]) gives each a trace context, which travels between nodes in
//! the W3C `traceparent` header (HTTP) or metadata (gRPC): [`traceparent`] reads it off a
//! span for an outgoing call, [`adopt`] makes a span the child of an incoming one. Spans are
//! exported over OTLP/gRPC only when an endpoint is configured; without one they still carry
//! trace ids (for the `x-trace-id` response header and the slow-query log) and are dropped
//! when they end.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header (and gRPC metadata key) that carries a trace context between processes.
pub const TRACEPARENT: &str = "traceparent";
/// The response header naming a request's trace.
pub const TRACE_ID_HEADER: &str = "x-trace-id";

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("--otlp-endpoint `{endpoint}`: {reason}")]
    Endpoint { endpoint: String, reason: String },
}

/// The process's tracer provider: exporting to `otlp_endpoint` (`http://HOST:PORT`, OTLP over
/// gRPC) when given. Build it inside the Tokio runtime (the exporter's channel needs it), and
/// [`Tracing::shutdown`] it before the runtime ends so the last spans are sent.
pub fn provider(otlp_endpoint: Option<&str>, service: &str) -> Result<Tracing, TraceError> {
    let resource = Resource::builder_empty()
        .with_service_name(service.to_string())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if let Some(endpoint) = otlp_endpoint {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| TraceError::Endpoint {
                endpoint: endpoint.to_string(),
                reason: e.to_string(),
            })?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(Tracing {
        provider: builder.build(),
        exporting: otlp_endpoint.is_some(),
    })
}

/// The tracer provider of the process.
pub struct Tracing {
    provider: SdkTracerProvider,
    exporting: bool,
}

impl Tracing {
    /// The `tracing` layer that gives spans their trace context (and exports them).
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("tessera"))
    }

    /// Sends the spans not yet exported and stops the exporter.
    pub fn shutdown(self) {
        if self.exporting {
            if let Err(e) = self.provider.shutdown() {
                eprintln!("tessera: exporting the last spans failed: {e}");
            }
        }
    }
}

/// `span`'s trace context as a `traceparent` value, for an outgoing call.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` a child of the trace an incoming `traceparent` names (ignored when absent or
/// malformed: the span then starts a trace of its own).
pub fn adopt(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(value) = traceparent else { return };
    let carrier: HashMap<String, String> = [(TRACEPARENT.to_string(), value.to_string())].into();
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// `span`'s trace id (32 hex digits), when it has one.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let span_context = cx.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

#[cfg(test)]
mod tests;
