//! Every metric family a node exports: the recorded ones ([`Metrics`], updated where things
//! happen) and the scraped ones ([`Scraped`], read from the node's state when `/metrics` is
//! asked). README's "Metrics and traces" table lists the same names.

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::{LATENCY_BUCKETS, ROUND_BUCKETS};

/// The families recorded as things happen.
pub struct Metrics {
    /// `tessera_query_duration_seconds{index,phase}`: phase is `statistics`, `search`,
    /// `merge` or `whole`, timed on the coordinating node.
    pub query_duration: HistogramVec,
    /// `tessera_queries_total{index,outcome}`: outcome is `ok`, `partial`, `error`,
    /// `rejected` or `timeout`.
    pub queries: IntCounterVec,
    /// `tessera_feed_errors_total{index}`: stream failures of this node's feeds.
    pub feed_errors: IntCounterVec,
    /// `tessera_feed_reconnects_total{index}`.
    pub feed_reconnects: IntCounterVec,
    /// `tessera_feed_rollbacks_total{index}`: partitions re-read after a history change.
    pub feed_rollbacks: IntCounterVec,
    /// `tessera_feed_changes_total{index}`: changes applied to this node's copies.
    pub feed_changes: IntCounterVec,
    /// `tessera_feed_commits_total{index}`.
    pub feed_commits: IntCounterVec,
    /// `tessera_janitor_reconcile_duration_seconds`: one round of the janitor.
    pub reconcile_duration: Histogram,
    /// `tessera_janitor_backlog`: actions the last round left waiting (starts held back by
    /// the backfill limit, failures waiting for their retry).
    pub reconcile_backlog: IntGauge,
    /// `tessera_planner_leader`: 1 while this node leads the planning.
    pub planner_leader: IntGauge,
    /// `tessera_planner_rounds_total{outcome}`: `ok` or `error`.
    pub planner_rounds: IntCounterVec,
    /// `tessera_planner_round_duration_seconds`.
    pub planner_round_duration: Histogram,
    /// `tessera_planner_moves{kind}`: as of the last round, on the leader: `moving` (copies
    /// being built to replace or restore one), `waiting` (wanted, waiting for a move slot),
    /// `dropping` (serving until their replacements catch up).
    pub planner_moves: IntGaugeVec,
    /// `tessera_task_progress_ratio{kind}`: the running topology task's progress, 0 to 1,
    /// on the leader.
    pub task_progress: GaugeVec,
    /// `tessera_task_running{kind}`: 1 while a task of this kind runs, on the leader.
    pub task_running: IntGaugeVec,
    /// `tessera_cfg_operation_duration_seconds{op}`.
    pub cfg_duration: HistogramVec,
    /// `tessera_cfg_errors_total{op,kind}`: kind is `unavailable`, `corrupt` or `other` (a
    /// lost compare-and-set is not an error).
    pub cfg_errors: IntCounterVec,
    /// `tessera_http_requests_total{route,method,status}`: route is the matched route
    /// template (`/api/index/:name`), or `unmatched`.
    pub http_requests: IntCounterVec,
    /// `tessera_http_request_duration_seconds{route}`.
    pub http_duration: HistogramVec,
    /// `tessera_grpc_requests_total{method,code}`: method is `/package.Service/Method`.
    pub grpc_requests: IntCounterVec,
    /// `tessera_build_info{version}`: always 1.
    pub build_info: IntGaugeVec,
}

impl Metrics {
    /// The families, registered in `registry`, and their names.
    pub(crate) fn register(registry: &Registry) -> (Metrics, Vec<String>) {
        let r = Registrar(registry, Default::default());
        let m = Metrics {
            query_duration: r.histogram_vec(
                "tessera_query_duration_seconds",
                "Query time on the coordinating node, by phase.",
                LATENCY_BUCKETS,
                &["index", "phase"],
            ),
            queries: r.counter_vec(
                "tessera_queries_total",
                "Queries coordinated by this node, by outcome.",
                &["index", "outcome"],
            ),
            feed_errors: r.counter_vec(
                "tessera_feed_errors_total",
                "Source stream failures of this node's feeds.",
                &["index"],
            ),
            feed_reconnects: r.counter_vec(
                "tessera_feed_reconnects_total",
                "Source stream reconnections of this node's feeds.",
                &["index"],
            ),
            feed_rollbacks: r.counter_vec(
                "tessera_feed_rollbacks_total",
                "Source partitions re-read by this node's feeds after a history change.",
                &["index"],
            ),
            feed_changes: r.counter_vec(
                "tessera_feed_changes_total",
                "Source changes applied to this node's copies.",
                &["index"],
            ),
            feed_commits: r.counter_vec(
                "tessera_feed_commits_total",
                "Commits of this node's copies.",
                &["index"],
            ),
            reconcile_duration: r.histogram(
                "tessera_janitor_reconcile_duration_seconds",
                "One janitor round: the plan read, diffed and acted on.",
                ROUND_BUCKETS,
            ),
            reconcile_backlog: r.gauge(
                "tessera_janitor_backlog",
                "Janitor actions the last round left waiting (backfill limit, retry backoff).",
            ),
            planner_leader: r.gauge(
                "tessera_planner_leader",
                "1 while this node leads the planning.",
            ),
            planner_rounds: r.counter_vec(
                "tessera_planner_rounds_total",
                "Planning rounds run by this node as leader, by outcome.",
                &["outcome"],
            ),
            planner_round_duration: r.histogram(
                "tessera_planner_round_duration_seconds",
                "One planning round: inputs read, planned, plans written.",
                ROUND_BUCKETS,
            ),
            planner_moves: r.gauge_vec(
                "tessera_planner_moves",
                "Moves as of the last planning round: moving, waiting for a slot, dropping.",
                &["kind"],
            ),
            task_progress: r.float_gauge_vec(
                "tessera_task_progress_ratio",
                "The running topology task's progress, 0 to 1.",
                &["kind"],
            ),
            task_running: r.gauge_vec(
                "tessera_task_running",
                "1 while a topology task of this kind runs.",
                &["kind"],
            ),
            cfg_duration: r.histogram_vec(
                "tessera_cfg_operation_duration_seconds",
                "Cfg store operations, by operation.",
                LATENCY_BUCKETS,
                &["op"],
            ),
            cfg_errors: r.counter_vec(
                "tessera_cfg_errors_total",
                "Cfg store operations that failed, by operation and kind.",
                &["op", "kind"],
            ),
            http_requests: r.counter_vec(
                "tessera_http_requests_total",
                "REST requests served, by route, method and status.",
                &["route", "method", "status"],
            ),
            http_duration: r.histogram_vec(
                "tessera_http_request_duration_seconds",
                "REST request time until the response headers, by route.",
                LATENCY_BUCKETS,
                &["route"],
            ),
            grpc_requests: r.counter_vec(
                "tessera_grpc_requests_total",
                "gRPC calls served, by method and status code.",
                &["method", "code"],
            ),
            build_info: r.gauge_vec(
                "tessera_build_info",
                "The running build; always 1.",
                &["version"],
            ),
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        (m, r.1.into_inner())
    }

    /// Forgets the series of an index that is gone, so a deleted index stops being exported.
    pub fn forget_index(&self, index: &str) {
        let by_index = [
            &self.feed_errors,
            &self.feed_reconnects,
            &self.feed_rollbacks,
            &self.feed_changes,
            &self.feed_commits,
        ];
        for family in by_index {
            let _ = family.remove_label_values(&[index]);
        }
        for phase in QUERY_PHASES {
            let _ = self.query_duration.remove_label_values(&[index, phase]);
        }
        for outcome in QUERY_OUTCOMES {
            let _ = self.queries.remove_label_values(&[index, outcome]);
        }
    }
}

/// The values of `tessera_query_duration_seconds`' `phase` label.
pub const QUERY_PHASES: [&str; 4] = ["statistics", "search", "merge", "whole"];
/// The values of `tessera_queries_total`'s `outcome` label.
pub const QUERY_OUTCOMES: [&str; 5] = ["ok", "partial", "error", "rejected", "timeout"];

/// A family read at scrape time (gauges of the node's state as of the scrape).
#[derive(Debug, Clone, Copy)]
pub struct Scraped {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

impl Scraped {
    /// The family with one series per row (label values in `labels`' order, then the value).
    pub fn family<'a>(
        &self,
        rows: impl IntoIterator<Item = (Vec<&'a str>, f64)>,
    ) -> Option<MetricFamily> {
        let vec = GaugeVec::new(Opts::new(self.name, self.help), self.labels).ok()?;
        for (values, value) in rows {
            if let Ok(g) = vec.get_metric_with_label_values(&values) {
                g.set(value);
            }
        }
        vec.collect().into_iter().next()
    }
}

/// `tessera_index_documents{index}`: documents in this node's primary copies.
pub const INDEX_DOCUMENTS: Scraped = Scraped {
    name: "tessera_index_documents",
    help: "Documents in this node's primary copies of the index, as of their last commit.",
    labels: &["index"],
};
/// `tessera_pindex_copies{index,role,state}`: this node's copies in the plans.
pub const PINDEX_COPIES: Scraped = Scraped {
    name: "tessera_pindex_copies",
    help: "Copies the plans place on this node, by role and state (building, active, dropping).",
    labels: &["index", "role", "state"],
};
/// `tessera_pindex_copies_running{index}`: this node's copies open with their feed running.
pub const PINDEX_RUNNING: Scraped = Scraped {
    name: "tessera_pindex_copies_running",
    help: "Copies open on this node with their feed running.",
    labels: &["index"],
};
/// `tessera_ingest_lag_seqs{index}`: source changes this node's copies have yet to apply.
pub const INGEST_LAG_SEQS: Scraped = Scraped {
    name: "tessera_ingest_lag_seqs",
    help: "Source changes this node's copies of the index have yet to apply (summed over copies).",
    labels: &["index"],
};
/// `tessera_ingest_lag_seconds{index}`: age of the oldest change not yet searchable.
pub const INGEST_LAG_SECONDS: Scraped = Scraped {
    name: "tessera_ingest_lag_seconds",
    help: "Age of the oldest change this node's copies of the index received and have not made searchable.",
    labels: &["index"],
};
/// `tessera_indexing_memory_bytes`: the indexing pool's budget in use.
pub const INDEXING_MEMORY: Scraped = Scraped {
    name: "tessera_indexing_memory_bytes",
    help: "Memory the indexing pool counts against its budget (buffers and writers).",
    labels: &[],
};
/// `tessera_indexing_memory_limit_bytes`.
pub const INDEXING_MEMORY_LIMIT: Scraped = Scraped {
    name: "tessera_indexing_memory_limit_bytes",
    help: "The indexing pool's memory budget (--indexing-memory).",
    labels: &[],
};
/// `tessera_indexing_writers{state}`: `open` or `waiting`.
pub const INDEXING_WRITERS: Scraped = Scraped {
    name: "tessera_indexing_writers",
    help: "Index writers open, and PIndexes waiting for a writer slot.",
    labels: &["state"],
};

/// Every scraped family, for the documentation test.
pub const SCRAPED: &[Scraped] = &[
    INDEX_DOCUMENTS,
    PINDEX_COPIES,
    PINDEX_RUNNING,
    INGEST_LAG_SEQS,
    INGEST_LAG_SECONDS,
    INDEXING_MEMORY,
    INDEXING_MEMORY_LIMIT,
    INDEXING_WRITERS,
];

/// Registers families, noting their names; a name registered twice is a bug caught by the
/// crate's tests.
struct Registrar<'a>(&'a Registry, std::cell::RefCell<Vec<String>>);

impl Registrar<'_> {
    fn keep<C: Collector + Clone + 'static>(&self, c: C) -> C {
        for desc in c.desc() {
            self.1.borrow_mut().push(desc.fq_name.clone());
        }
        if let Err(e) = self.0.register(Box::new(c.clone())) {
            panic!("metric registered twice: {e}");
        }
        c
    }

    fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.keep(
            IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| bad(name, e)),
        )
    }

    fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.keep(IntGauge::new(name, help).unwrap_or_else(|e| bad(name, e)))
    }

    fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.keep(IntGaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| bad(name, e)))
    }

    fn float_gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        self.keep(GaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| bad(name, e)))
    }

    fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Histogram {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.keep(Histogram::with_opts(opts).unwrap_or_else(|e| bad(name, e)))
    }

    fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
        labels: &[&str],
    ) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.keep(HistogramVec::new(opts, labels).unwrap_or_else(|e| bad(name, e)))
    }
}

/// A family this file declares wrongly (a bad name or label): a programming error, caught by
/// the first test that touches [`crate::metrics`].
fn bad(name: &str, e: prometheus::Error) -> ! {
    panic!("metric {name} is declared wrongly: {e}")
}
