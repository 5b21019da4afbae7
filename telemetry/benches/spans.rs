//! What tracing costs a request: a request span with three child spans (a query's phases and
//! one shard call), with and without the trace layer, and with an incoming `traceparent`
//! adopted and one passed on. Prints nanoseconds per request.

use std::time::Instant;

use tracing_subscriber::layer::SubscriberExt;

const REQUESTS: u32 = 200_000;

fn one_request(adopt: bool) {
    let span = tracing::info_span!(
        "request",
        otel.name = "POST /api/index/:name/query",
        node = "n1"
    );
    if adopt {
        tessera_telemetry::trace::adopt(
            &span,
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
    }
    span.in_scope(|| {
        for phase in ["statistics", "search"] {
            let _phase = tracing::info_span!("phase", otel.name = phase).entered();
            let call = tracing::info_span!("shard_call", peer = "n2");
            if adopt {
                std::hint::black_box(tessera_telemetry::trace::traceparent(&call));
            }
        }
    });
}

fn measure(what: &str, adopt: bool) {
    let started = Instant::now();
    for _ in 0..REQUESTS {
        one_request(adopt);
    }
    let ns = started.elapsed().as_nanos() as f64 / f64::from(REQUESTS);
    println!("{what:<55} {ns:>8.0} ns per request");
}

fn main() {
    measure("no subscriber", false);
    let tracing = tessera_telemetry::trace::provider(None, "bench").expect("provider");
    let subscriber = tracing_subscriber::registry().with(tracing.layer());
    tracing::subscriber::with_default(subscriber, || {
        measure("trace layer, no export", false);
        measure("trace layer, traceparent adopted and passed on", true);
    });
}
