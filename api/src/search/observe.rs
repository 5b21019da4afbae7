//! What a coordinated query records: its phases' durations and its outcome
//! (`tessera_query_duration_seconds`, `tessera_queries_total`). The index label is the
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
}

impl QueryRecord {
    pub fn start() -> Self {
        QueryRecord {
            index: None,
            started: Instant::now(),
            partial: false,
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
    pub fn phase(&self, phase: &str, took: Duration) {
        if let Some(index) = &self.index {
            tessera_metrics::metrics()
                .query_duration
                .with_label_values(&[index.as_str(), phase])
                .observe(took.as_secs_f64());
        }
    }

    /// The query answered `response`: its whole time and its outcome.
    pub fn finish(self, response: Response) -> Response {
        let index = self.index.as_deref().unwrap_or("-");
        let m = tessera_metrics::metrics();
        m.query_duration
            .with_label_values(&[index, "whole"])
            .observe(self.started.elapsed().as_secs_f64());
        let outcome = outcome(response.status(), self.partial);
        m.queries.with_label_values(&[index, outcome]).inc();
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
