//! What a coordinated query records: its phases' durations and its outcome
//! (`tessera_query_duration_seconds`, `tessera_queries_total`), and, past the node's
//! `--slow-query-ms`, one `slow query` log line with the request, its trace id and its phases. The index label is the
//! query's index only once its definition was found; a query for an unknown index, or one
//! turned away before the definition was read, counts under `-`, so a client cannot make up
//! label values.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::Response;

pub(super) struct QueryRecord {
    index: Option<String>,
    started: Instant,
    partial: bool,
    phases: Vec<(&'static str, Duration)>,
}

/// How much of a slow query's request the log line keeps.
const LOGGED_REQUEST_BYTES: usize = 2048;

impl QueryRecord {
    pub fn start() -> Self {
        QueryRecord {
            index: None,
            started: Instant::now(),
            partial: false,
            phases: Vec::new(),
        }
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// The index exists: label by it from now on.
    pub fn known(&mut self, index: &str) {
        self.index = Some(index.to_string());
    }

    /// Some PIndexes failed and the answer is still 200 (partial results were allowed).
    pub fn partial(&mut self) {
        self.partial = true;
    }

    /// `phase` took `took` (`statistics`, `search` or `merge`).
    pub fn phase(&mut self, phase: &'static str, took: Duration) {
        self.phases.push((phase, took));
        if let Some(index) = &self.index {
            tessera_telemetry::metrics()
                .query_duration
                .with_label_values(&[index.as_str(), phase])
                .observe(took.as_secs_f64());
        }
    }

    /// The query (`request`) answered `response`: its whole time and its outcome, and the
    /// slow-query line when it took `slow` or longer.
    pub fn finish(self, response: Response, request: &[u8], slow: Option<Duration>) -> Response {
        let index = self.index.as_deref().unwrap_or("-");
        let took = self.started.elapsed();
        let m = tessera_telemetry::metrics();
        m.query_duration
            .with_label_values(&[index, "whole"])
            .observe(took.as_secs_f64());
        let outcome = outcome(response.status(), self.partial);
        m.queries.with_label_values(&[index, outcome]).inc();
        if slow.is_some_and(|slow| took >= slow) {
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let phase_ms = |name: &str| {
                self.phases
                    .iter()
                    .find(|(p, _)| *p == name)
                    .map_or(0.0, |(_, d)| ms(*d))
            };
            let shown = &request[..request.len().min(LOGGED_REQUEST_BYTES)];
            let trace_id =
                tessera_telemetry::trace::trace_id(&tracing::Span::current()).unwrap_or_default();
            tracing::warn!(
                target: "tessera::slow_query",
                index,
                outcome,
                status = response.status().as_u16(),
                trace_id,
                took_ms = ms(took),
                statistics_ms = phase_ms("statistics"),
                search_ms = phase_ms("search"),
                merge_ms = phase_ms("merge"),
                request = %String::from_utf8_lossy(shown),
                "slow query"
            );
        }
        response
    }
}

/// A query's outcome by its answer's status.
fn outcome(status: StatusCode, partial: bool) -> &'static str {
    match status {
        StatusCode::OK if partial => "partial",
        s if s.is_success() => "ok",
        StatusCode::GATEWAY_TIMEOUT => "timeout",
        s if s.is_client_error() => "rejected",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_by_status() {
        assert_eq!(outcome(StatusCode::OK, false), "ok");
        assert_eq!(outcome(StatusCode::OK, true), "partial");
        assert_eq!(outcome(StatusCode::TOO_MANY_REQUESTS, false), "rejected");
        assert_eq!(outcome(StatusCode::BAD_REQUEST, false), "rejected");
        assert_eq!(outcome(StatusCode::GATEWAY_TIMEOUT, false), "timeout");
        assert_eq!(outcome(StatusCode::SERVICE_UNAVAILABLE, false), "error");
    }
}
