//! `GET /metrics`: the node's metrics in Prometheus' text format. The recorded families come
//! from `tessera-telemetry`; the gauges of the node's state are read here at scrape time —
//! [`scraped`] is a plain function over what was read (the node's copies in the plans, its
//! local PIndexes, the sources' high seqs), the handler does the reading.
//!
//! Every gauge is this node's own share (its copies, its documents, its lag), so a sum over
//! nodes is the cluster's figure and no two nodes report the same thing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tessera_cfg::schema::{CopyRole, CopyState, IndexDef, IndexPlan};
use tessera_index::pool::IndexingUsage;
use tessera_janitor::executor::LocalStatus;
use tessera_telemetry::families as f;
use tessera_telemetry::prometheus::proto::MetricFamily;

use crate::AppState;

/// How long a scrape waits for a source's high seqs before leaving its lag out.
const HIGHS_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

/// What a scrape reads from the node's state.
#[derive(Debug, Default)]
pub struct ScrapeInput {
    /// The defined indexes; `None` when the definitions could not be read.
    pub defined: Option<BTreeSet<String>>,
    /// The copies the plans place on this node ([`copies_on`]).
    pub copies: Vec<PlacedCopy>,
    /// This node's PIndexes.
    pub local: Vec<LocalCopy>,
    /// The high seq of each source partition, by index (indexes whose source answered).
    pub highs: BTreeMap<String, BTreeMap<u32, u64>>,
    pub indexing: Option<IndexingUsage>,
    pub now_ms: u64,
}

/// A copy a plan places on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedCopy {
    pub index: String,
    pub role: CopyRole,
    pub state: CopyState,
}

/// The copies `plans` place on `node`.
pub fn copies_on<'a>(
    node: &str,
    plans: impl IntoIterator<Item = &'a IndexPlan>,
) -> Vec<PlacedCopy> {
    let mut out = Vec::new();
    for plan in plans {
        for copy in plan.pindexes.iter().flat_map(|p| &p.copies) {
            if copy.node == node {
                out.push(PlacedCopy {
                    index: plan.index.clone(),
                    role: copy.role,
                    state: copy.state,
                });
            }
        }
    }
    out
}

/// One of this node's PIndexes as the board shows it.
#[derive(Debug, Clone, Default)]
pub struct LocalCopy {
    pub index: String,
    pub role: Option<CopyRole>,
    pub docs: u64,
    /// Open with its feed running.
    pub running: bool,
    /// Seq applied, by source partition.
    pub seqs: BTreeMap<u32, u64>,
    /// When the oldest change not yet committed arrived (unix ms).
    pub pending_since_ms: Option<u64>,
}

impl LocalCopy {
    fn of(status: &LocalStatus) -> Self {
        let feed = status.feed.as_ref();
        LocalCopy {
            index: status.index.clone(),
            role: status.role,
            docs: status.docs,
            running: status.is_running(),
            seqs: feed
                .map(|f| f.partitions.iter().map(|(p, s)| (*p, s.seq)).collect())
                .unwrap_or_default(),
            pending_since_ms: feed.and_then(|f| f.pending_since_ms),
        }
    }
}

/// The scraped families of `input`.
pub fn scraped(input: &ScrapeInput) -> Vec<MetricFamily> {
    let mut copies: BTreeMap<(&str, &'static str, &'static str), f64> = BTreeMap::new();
    for copy in &input.copies {
        let role = match copy.role {
            CopyRole::Primary => "primary",
            CopyRole::Replica => "replica",
        };
        let state = match copy.state {
            CopyState::Building => "building",
            CopyState::Active => "active",
            CopyState::Dropping => "dropping",
        };
        *copies
            .entry((copy.index.as_str(), role, state))
            .or_default() += 1.0;
    }
    let mut docs: BTreeMap<&str, f64> = BTreeMap::new();
    let mut running: BTreeMap<&str, f64> = BTreeMap::new();
    let mut lag_seqs: BTreeMap<&str, f64> = BTreeMap::new();
    let mut lag_seconds: BTreeMap<&str, f64> = BTreeMap::new();
    for copy in &input.local {
        let index = copy.index.as_str();
        if input.defined.as_ref().is_some_and(|d| !d.contains(index)) {
            continue;
        }
        if copy.role == Some(CopyRole::Primary) {
            *docs.entry(index).or_default() += copy.docs as f64;
        }
        if !copy.running {
            continue;
        }
        *running.entry(index).or_default() += 1.0;
        if let Some(highs) = input.highs.get(index) {
            let behind: u64 = copy
                .seqs
                .iter()
                .map(|(p, seq)| highs.get(p).map_or(0, |h| h.saturating_sub(*seq)))
                .sum();
            *lag_seqs.entry(index).or_default() += behind as f64;
        }
        let waited = copy.pending_since_ms.map_or(0.0, |since| {
            input.now_ms.saturating_sub(since) as f64 / 1000.0
        });
        let entry = lag_seconds.entry(index).or_default();
        *entry = entry.max(waited);
    }
    let mut out = Vec::new();
    out.extend(
        f::PINDEX_COPIES.family(
            copies
                .into_iter()
                .map(|((index, role, state), n)| (vec![index, role, state], n)),
        ),
    );
    out.extend(f::INDEX_DOCUMENTS.family(by_index(docs)));
    out.extend(f::PINDEX_RUNNING.family(by_index(running)));
    out.extend(f::INGEST_LAG_SEQS.family(by_index(lag_seqs)));
    out.extend(f::INGEST_LAG_SECONDS.family(by_index(lag_seconds)));
    if let Some(u) = &input.indexing {
        out.extend(f::INDEXING_MEMORY.family([(vec![], u.memory_used as f64)]));
        out.extend(f::INDEXING_MEMORY_LIMIT.family([(vec![], u.memory_limit as f64)]));
        out.extend(f::INDEXING_WRITERS.family([
            (vec!["open"], u.writers_open as f64),
            (vec!["waiting"], u.writers_waiting as f64),
        ]));
    }
    out
}

async fn scrape(State(state): State<AppState>) -> Response {
    let input = read(&state).await;
    if let Some(defined) = &input.defined {
        forget_deleted(defined);
    }
    let text = tessera_telemetry::render(scraped(&input));
    ([(CONTENT_TYPE, tessera_telemetry::CONTENT_TYPE)], text).into_response()
}

fn by_index(m: BTreeMap<&str, f64>) -> Vec<(Vec<&str>, f64)> {
    m.into_iter().map(|(k, v)| (vec![k], v)).collect()
}

/// Drops the recorded series of indexes no longer defined.
fn forget_deleted(defined: &BTreeSet<String>) {
    let m = tessera_telemetry::metrics();
    let mut gone = BTreeSet::new();
    use tessera_telemetry::prometheus::core::Collector;
    for family in m
        .queries
        .collect()
        .iter()
        .chain(m.feed_changes.collect().iter())
    {
        for metric in family.get_metric() {
            for label in metric.get_label() {
                if label.name() == "index"
                    && label.value() != "-"
                    && !defined.contains(label.value())
                {
                    gone.insert(label.value().to_string());
                }
            }
        }
    }
    for index in gone {
        m.forget_index(&index);
    }
}

/// Reads what [`scraped`] needs: the mirror when synced (else the Cfg), the board, the
/// sources' high seqs (each source asked once, within [`HIGHS_TIMEOUT`]).
async fn read(state: &AppState) -> ScrapeInput {
    let local: Vec<LocalCopy> = state
        .board
        .lock()
        .map(|b| b.values().map(|v| LocalCopy::of(&v.snapshot())).collect())
        .unwrap_or_default();
    let hosted: BTreeSet<&str> = local.iter().map(|s| s.index.as_str()).collect();
    let node = state.node_uuid.as_str();
    // From the mirror: the defined names, the definitions of the indexes hosted here and this
    // node's copies; nothing else of the cluster is copied per scrape.
    let mirrored = match state.coord.search.cluster_view.get() {
        Some(view) => {
            view.read(tessera_coord::Freshness::Mirror, |m| {
                let hosted_defs: Vec<IndexDef> = m
                    .defs()
                    .values()
                    .filter(|d| hosted.contains(d.name.as_str()))
                    .cloned()
                    .collect();
                let defined = m.defs().keys().cloned().collect();
                Some((
                    Some(defined),
                    hosted_defs,
                    copies_on(node, m.plans().values()),
                ))
            })
            .await
        }
        None => None,
    };
    let (defined, defs, copies) = match mirrored {
        Some(read) => read,
        None => {
            let defs: Option<Vec<IndexDef>> = state
                .cfg
                .index_defs()
                .await
                .ok()
                .map(|l| l.items.into_iter().map(|v| v.value).collect());
            let plans: Vec<IndexPlan> = state
                .cfg
                .plans()
                .await
                .map(|l| l.items.into_iter().map(|v| v.value).collect())
                .unwrap_or_default();
            let defined = defs
                .as_ref()
                .map(|d| d.iter().map(|d| d.name.clone()).collect());
            let hosted_defs = defs
                .unwrap_or_default()
                .into_iter()
                .filter(|d| hosted.contains(d.name.as_str()))
                .collect();
            (defined, hosted_defs, copies_on(node, &plans))
        }
    };
    let mut highs = BTreeMap::new();
    let mut by_source: BTreeMap<String, Option<BTreeMap<u32, u64>>> = BTreeMap::new();
    for def in &defs {
        let Ok(source) = state.source(def).await else {
            continue;
        };
        let key = source.describe();
        if !by_source.contains_key(&key) {
            let answer = tokio::time::timeout(HIGHS_TIMEOUT, source.partitions()).await;
            let highs = answer
                .ok()
                .and_then(Result::ok)
                .map(|l| tessera_sources::highs(&l));
            by_source.insert(key.clone(), highs);
        }
        if let Some(Some(h)) = by_source.get(&key) {
            highs.insert(def.name.clone(), h.clone());
        }
    }
    ScrapeInput {
        defined,
        copies,
        local,
        highs,
        indexing: state.indexing.as_ref().map(|p| p.usage()),
        now_ms: tessera_cfg::unix_ms(),
    }
}

#[cfg(test)]
mod tests;
