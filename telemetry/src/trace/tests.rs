use tracing_subscriber::layer::SubscriberExt;

use super::*;

/// Runs `f` under a subscriber with the trace layer (no export).
fn traced<T>(f: impl FnOnce() -> T) -> T {
    let tracing = provider(None, "test").expect("a provider without export");
    let subscriber = tracing_subscriber::registry().with(tracing.layer());
    tracing::subscriber::with_default(subscriber, f)
}

#[test]
fn a_span_gets_a_trace_id_and_its_traceparent_carries_it() {
    traced(|| {
        let span = tracing::info_span!("request");
        let id = trace_id(&span).expect("a trace id");
        assert_eq!(id.len(), 32, "{id}");
        let header = traceparent(&span).expect("a traceparent");
        assert!(header.starts_with(&format!("00-{id}-")), "{header}");
    });
}

#[test]
fn an_incoming_traceparent_is_adopted_by_the_span_and_its_children() {
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    traced(|| {
        let span = tracing::info_span!("request");
        adopt(&span, Some(incoming));
        assert_eq!(
            trace_id(&span).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let child = span.in_scope(|| tracing::info_span!("shard_call"));
        assert_eq!(trace_id(&child), trace_id(&span));
        let outgoing = traceparent(&child).expect("a traceparent");
        assert!(
            outgoing.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
                && !outgoing.contains("00f067aa0ba902b7"),
            "the child's own span id goes out: {outgoing}"
        );
    });
}

#[test]
fn a_malformed_traceparent_starts_a_new_trace() {
    traced(|| {
        let span = tracing::info_span!("request");
        adopt(&span, Some("not-a-trace"));
        let id = trace_id(&span).expect("a trace id of its own");
        assert_ne!(id, "00000000000000000000000000000000");
    });
}
