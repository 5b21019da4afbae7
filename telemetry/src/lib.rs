//! The node's Prometheus metrics. Every family a node exports is declared here, in
//! [`families`], once, with its name, help and labels, so the README's table and the code
//! cannot name a metric twice or two ways. Crates record into them through [`metrics()`];
//! the API renders them with the figures it reads at scrape time ([`render`]).
//!
//! Conventions (Prometheus'): a `tessera_` prefix, base units in the name (`_seconds`,
//! `_bytes`), `_total` on counters, histograms rather than averages. Labels are bounded: an
//! `index` label only ever carries the name of a defined index (never a name a request made
//! up), and no metric is labelled by PIndex or document.

pub mod families;
pub mod process;
pub mod trace;

use std::sync::LazyLock;

pub use families::Metrics;
pub use prometheus;
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, Registry, TextEncoder};

static REGISTRY: LazyLock<(Registry, Metrics, Vec<String>)> = LazyLock::new(|| {
    let registry = Registry::new();
    let (metrics, names) = Metrics::register(&registry);
    (registry, metrics, names)
});

/// The process's metrics (one node per process).
pub fn metrics() -> &'static Metrics {
    &REGISTRY.1
}

/// The name of every family a node exports: recorded, scraped and process figures.
pub fn family_names() -> Vec<String> {
    let mut names = REGISTRY.2.clone();
    names.extend(families::SCRAPED.iter().map(|s| s.name.to_string()));
    names.extend(process::NAMES.iter().map(|n| n.to_string()));
    names.sort();
    names
}

/// The content type of [`render`]'s output: Prometheus' text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The recorded families, the process figures and `scraped` (what the caller read at scrape
/// time) in Prometheus' text format, sorted by name.
pub fn render(scraped: Vec<MetricFamily>) -> String {
    let mut families = REGISTRY.0.gather();
    families.extend(process::families());
    families.extend(scraped);
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut out = Vec::new();
    // Encoding into a Vec cannot fail on I/O; a family the encoder refuses is a bug here.
    if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
        out.extend_from_slice(format!("# encoding failed: {e}\n").as_bytes());
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Histogram buckets for request-like durations: 1 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Histogram buckets for background rounds (planning, reconciling): 1 ms to 60 s.
pub const ROUND_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[cfg(test)]
mod tests;
