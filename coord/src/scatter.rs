//! The coordinator's two phases over the chosen copies, with failover: a node that cannot be
//! reached (or a PIndex that is not open where the plan says) is avoided and its PIndexes are
//! asked of another readable copy, within the query's deadline. What still fails is reported
//! per PIndex, never dropped silently.

use std::collections::{BTreeMap, BTreeSet};

use tessera_proto::v1::{
    ShardError, ShardRequest, ShardSearchReply, ShardSearchRequest, ShardStatsReply, ShardTarget,
};
use tessera_search::merge::Hit;
use tessera_search::request::Prefer;
use tessera_search::route::{route, Cluster};
use tessera_search::stats::TermStats;
use tokio::time::Instant;
use tracing::Instrument;

use crate::shard;
use crate::view::View;
use crate::Coordinator;

/// Retry rounds per phase: the first choice, then up to two other copies.
const ROUNDS: usize = 3;

pub struct Scatter<'a> {
    pub coord: &'a Coordinator,
    /// The cluster as this query sees it; re-read when a copy turns out not to be where the
    /// view said (the plan moved on after the query read it).
    pub view: View,
    /// Nodes this query (or recent ones) saw failing: asked only as a last resort.
    pub avoid: BTreeSet<String>,
    pub prefer: Prefer,
    pub turn: u64,
    pub query_json: String,
    /// Source partition → seq each PIndex must show first.
    pub at_plus: BTreeMap<u32, u64>,
    pub deadline: Instant,
}

#[derive(Default)]
pub struct Outcome {
    pub total_hits: u64,
    pub hits: Vec<Hit>,
    /// PIndex → why it did not answer.
    pub errors: BTreeMap<String, ShardError>,
}

fn failure(message: impl Into<String>) -> ShardError {
    ShardError {
        message: message.into(),
        behind: Vec::new(),
        retryable: true,
    }
}

impl Scatter<'_> {
    /// `wait_share` of the time left goes to waiting for `at_plus` seqs; the rest is kept for
    /// the search phase, so PIndexes that caught up still answer in time.
    fn request(&self, index: &str, pindexes: &[String], wait_share: f64) -> ShardRequest {
        let targets = pindexes
            .iter()
            .map(|name| {
                let partitions = self
                    .view
                    .plan
                    .pindexes
                    .iter()
                    .find(|p| &p.name == name)
                    .map(|p| p.source_partitions.as_slice())
                    .unwrap_or_default();
                ShardTarget {
                    pindex: name.clone(),
                    at_plus: partitions
                        .iter()
                        .filter_map(|p| self.at_plus.get(p).map(|s| (*p, *s)))
                        .filter(|(_, s)| *s > 0)
                        .collect(),
                }
            })
            .collect();
        ShardRequest {
            index: index.to_string(),
            pindexes: targets,
            query_json: self.query_json.clone(),
            timeout_ms: (self.remaining().as_millis() as f64 * wait_share) as u64,
        }
    }

    fn routes(
        &self,
        pending: &BTreeSet<String>,
        errors: &mut BTreeMap<String, ShardError>,
    ) -> BTreeMap<String, Vec<String>> {
        let cluster = Cluster {
            live: &self.view.live,
            avoid: &self.avoid,
        };
        let routing = route(
            &self.view.plan,
            Some(pending),
            &cluster,
            self.prefer,
            self.turn,
        );
        for (pindex, reason) in routing.uncovered {
            errors.insert(
                pindex,
                ShardError {
                    retryable: false,
                    ..failure(reason)
                },
            );
        }
        routing.by_node
    }

    /// Re-reads the view before asking other copies: a copy that was not open where the view
    /// said has usually moved (the plan dropped it, or replaced it, after this query read the
    /// plan), and the plan now names where it went. A view of another incarnation of the index
    /// (deleted and re-created meanwhile) is not taken: its PIndexes are not this query's.
    async fn refresh(&mut self, index: &str) {
        match View::load(&self.coord.cfg, index).await {
            Ok(view) if view.plan.index_uuid == self.view.plan.index_uuid => {
                self.avoid.extend(view.no_reads.iter().cloned());
                self.view = view;
            }
            Ok(_) => {}
            Err(_) => tracing::debug!(index, "re-reading the plan for a retry failed"),
        }
    }

    /// Remembers that `node` failed a call, for this query and the next few.
    fn node_failed(&mut self, node: &str, error: &str) {
        tracing::warn!(
            node,
            error,
            "a node failed a search call; asking other copies"
        );
        self.avoid.insert(node.to_string());
        self.coord.search.suspect(node);
    }

    /// Phase one: the index-wide statistics, and which node answers for which PIndex.
    pub async fn stats(
        &mut self,
        index: &str,
        outcome: &mut Outcome,
    ) -> (TermStats, BTreeMap<String, Vec<String>>) {
        let mut pending: BTreeSet<String> = self
            .view
            .plan
            .pindexes
            .iter()
            .map(|p| p.name.clone())
            .collect();
        let mut assigned: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut sum = TermStats::default();
        let mut last: BTreeMap<String, ShardError> = BTreeMap::new();
        for round in 0..ROUNDS {
            let budget = self.call_budget(round);
            if pending.is_empty() || Instant::now() >= self.deadline {
                break;
            }
            if round > 0 {
                self.refresh(index).await;
            }
            let mut uncovered = BTreeMap::new();
            let mut routes = self.routes(&pending, &mut uncovered);
            if round == 0 && !uncovered.is_empty() {
                // The view may trail the plan (the mirror lags the Cfg by its watch): a PIndex
                // without a readable copy in it may have one in the plan now. Read it again
                // before answering that nothing can read it.
                self.refresh(index).await;
                uncovered.clear();
                routes = self.routes(&pending, &mut uncovered);
            }
            outcome.errors.extend(uncovered);
            pending.retain(|p| !outcome.errors.contains_key(p));
            let this: &Self = self;
            let calls = routes.into_iter().map(|(node, names)| {
                let request = this.request(index, &names, 0.8);
                async move {
                    let reply = this.call_stats(&node, request, budget).await;
                    (node, names, reply)
                }
            });
            for (node, names, reply) in futures::future::join_all(calls).await {
                match reply {
                    Err(e) => {
                        self.node_failed(&node, &e);
                        for name in names {
                            last.insert(name, failure(format!("node {node}: {e}")));
                        }
                    }
                    Ok(reply) => {
                        if let Some(stats) = &reply.stats {
                            sum.add(&shard::from_proto(stats));
                        }
                        for name in names {
                            match reply.errors.get(&name) {
                                None => {
                                    pending.remove(&name);
                                    assigned.entry(node.clone()).or_default().push(name);
                                }
                                Some(e) if e.retryable => {
                                    self.avoid.insert(node.clone());
                                    let mut e = e.clone();
                                    e.message = format!("node {node}: {}", e.message);
                                    last.insert(name, e);
                                }
                                Some(e) => {
                                    pending.remove(&name);
                                    outcome.errors.insert(name, e.clone());
                                }
                            }
                        }
                    }
                }
            }
        }
        for name in pending {
            let e = last
                .remove(&name)
                .unwrap_or_else(|| failure("no answer before the query's deadline"));
            outcome.errors.insert(name, e);
        }
        (sum, assigned)
    }

    /// Phase two: every assigned PIndex's top hits, asking another copy when a node fails.
    pub async fn search(
        &mut self,
        index: &str,
        stats: &TermStats,
        mut assigned: BTreeMap<String, Vec<String>>,
        window: usize,
        fields: Option<&[String]>,
        outcome: &mut Outcome,
    ) {
        let stats = shard::to_proto(stats);
        let mut last: BTreeMap<String, ShardError> = BTreeMap::new();
        for round in 0..ROUNDS {
            let budget = self.call_budget(round);
            // The first round always runs: phase one reserved time for it.
            if assigned.is_empty() || (round > 0 && Instant::now() >= self.deadline) {
                break;
            }
            let this: &Self = self;
            let calls = std::mem::take(&mut assigned)
                .into_iter()
                .map(|(node, names)| {
                    let request = ShardSearchRequest {
                        shard: Some(this.request(index, &names, 1.0)),
                        stats: Some(stats.clone()),
                        window: window as u32,
                        fields: fields.map(<[String]>::to_vec).unwrap_or_default(),
                        all_fields: fields.is_none(),
                    };
                    async move {
                        let reply = this.call_search(&node, request, budget).await;
                        (node, names, reply)
                    }
                });
            let mut retry = BTreeSet::new();
            for (node, names, reply) in futures::future::join_all(calls).await {
                match reply {
                    Err(e) => {
                        self.node_failed(&node, &e);
                        for name in names {
                            last.insert(name.clone(), failure(format!("node {node}: {e}")));
                            retry.insert(name);
                        }
                    }
                    Ok(reply) => {
                        outcome.total_hits += reply.total_hits;
                        outcome.hits.extend(reply.hits.into_iter().map(|h| Hit {
                            id: h.id,
                            score: h.score,
                            fields_json: h.fields_json,
                            pindex: h.pindex,
                        }));
                        for (name, e) in reply.errors {
                            if e.retryable {
                                self.avoid.insert(node.clone());
                                retry.insert(name.clone());
                                last.insert(name, e);
                            } else {
                                outcome.errors.insert(name, e);
                            }
                        }
                    }
                }
            }
            if round + 1 < ROUNDS {
                if !retry.is_empty() {
                    self.refresh(index).await;
                }
                assigned = self.routes(&retry, &mut outcome.errors);
            } else {
                for name in retry {
                    let e = last
                        .remove(&name)
                        .unwrap_or_else(|| failure("no copy answered"));
                    outcome.errors.insert(name, e);
                }
            }
        }
        for name in assigned.into_values().flatten() {
            let e = last
                .remove(&name)
                .unwrap_or_else(|| failure("no answer before the query's deadline"));
            outcome.errors.insert(name, e);
        }
    }

    /// Time left before the deadline (at least a little, so a call is not lost to rounding).
    fn remaining(&self) -> std::time::Duration {
        self.deadline
            .saturating_duration_since(Instant::now())
            .max(std::time::Duration::from_millis(20))
    }

    /// How long one call of `round` may take: half the time left before the last round, so
    /// that a node that hangs (rather than refusing) leaves time to ask another copy; all of
    /// it when waiting for `at_plus` seqs (the wait itself needs the time).
    fn call_budget(&self, round: usize) -> std::time::Duration {
        if round + 1 < ROUNDS && self.at_plus.is_empty() {
            (self.remaining() / 2).max(std::time::Duration::from_millis(200))
        } else {
            self.remaining()
        }
    }

    async fn call_stats(
        &self,
        node: &str,
        request: ShardRequest,
        budget: std::time::Duration,
    ) -> Result<ShardStatsReply, String> {
        let span = shard_call_span("statistics", node, request.pindexes.len());
        async {
            if node == self.coord.node_uuid {
                return Ok(shard::stats(
                    &self.coord.board,
                    request,
                    self.coord.search.limits().max_shard_wait,
                )
                .await);
            }
            let mut client = self.client(node)?;
            within(budget, client.shard_stats(traced(request))).await
        }
        .instrument(span)
        .await
    }

    async fn call_search(
        &self,
        node: &str,
        request: ShardSearchRequest,
        budget: std::time::Duration,
    ) -> Result<ShardSearchReply, String> {
        let pindexes = request.shard.as_ref().map_or(0, |s| s.pindexes.len());
        let span = shard_call_span("search", node, pindexes);
        async {
            if node == self.coord.node_uuid {
                return Ok(shard::search(
                    &self.coord.board,
                    request,
                    self.coord.search.limits().max_shard_wait,
                )
                .await);
            }
            let mut client = self.client(node)?;
            within(budget, client.shard_search(traced(request))).await
        }
        .instrument(span)
        .await
    }

    fn client(
        &self,
        node: &str,
    ) -> Result<
        tessera_proto::v1::search_client::SearchClient<tessera_proto::peers::PeerChannel>,
        String,
    > {
        let address = self
            .view
            .addresses
            .get(node)
            .ok_or_else(|| format!("node {node} is not defined"))?;
        self.coord.search.peers.search(address)
    }
}

/// The span of one shard call of a query's `phase` to `node` (this node's own PIndexes are
/// called directly, under the same span).
fn shard_call_span(phase: &str, node: &str, pindexes: usize) -> tracing::Span {
    tracing::info_span!(
        "shard_call",
        otel.name = %format!("shard {phase}"),
        peer = %node,
        pindexes,
    )
}

/// `message` as a gRPC request carrying the current span's trace context, so the peer's spans
/// join the query's trace.
fn traced<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let parent = tessera_telemetry::trace::traceparent(&tracing::Span::current());
    if let Some(value) = parent.and_then(|p| p.parse().ok()) {
        request
            .metadata_mut()
            .insert(tessera_telemetry::trace::TRACEPARENT, value);
    }
    request
}

/// A peer's answer within `budget`, or why not.
async fn within<T>(
    budget: std::time::Duration,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(budget, call).await {
        Ok(Ok(reply)) => Ok(reply.into_inner()),
        Ok(Err(status)) => Err(status.message().to_string()),
        Err(_) => Err(format!("no answer within {} ms", budget.as_millis())),
    }
}
