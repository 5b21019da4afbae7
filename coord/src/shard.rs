//! The hosting side of a query: for the PIndexes a coordinator chose on this node, wait until
//! they show the wanted seqs, then answer phase one (term statistics, summed over them) or
//! phase two (top hits under the index-wide statistics). The coordinator calls these directly
//! for its own PIndexes and over gRPC (`tessera.v1.Search/Shard*`) for other nodes'.

use std::collections::BTreeMap;
use std::time::Duration;

use tessera_index::Searchable;
use tessera_janitor::executor::StatusBoard;
use tessera_proto::v1::{
    Behind, ShardError, ShardHit, ShardRequest, ShardSearchReply, ShardSearchRequest,
    ShardStatsReply, TermFreq,
};
use tessera_search::dsl::QuerySpec;
use tessera_search::request::MAX_WINDOW;
use tessera_search::stats::TermStats;

/// A PIndex ready to answer, or why it is not.
type Ready = Result<(String, Searchable), (String, ShardError)>;

/// A PIndex of the request: its name, its handle if open here, the seqs it must show.
type Wanted = (String, Option<Searchable>, Vec<(u32, u64)>);

fn failure(message: impl Into<String>, retryable: bool) -> ShardError {
    ShardError {
        message: message.into(),
        behind: Vec::new(),
        retryable,
    }
}

/// Why a shard request cannot be served at all, naming the field (a peer's bug or a hostile
/// caller: the window goes straight into a top-docs collector that preallocates it).
pub fn check(request: &ShardSearchRequest) -> Result<(), String> {
    if request.window as usize > MAX_WINDOW {
        return Err(format!(
            "window {} exceeds the deepest hit a query can reach ({MAX_WINDOW})",
            request.window
        ));
    }
    request.shard.as_ref().map_or(Ok(()), check_shard)
}

/// [`check`] for the part both phases share.
pub fn check_shard(request: &ShardRequest) -> Result<(), String> {
    if request.pindexes.len() > MAX_PINDEXES_PER_CALL {
        return Err(format!(
            "pindexes: {} in one call; at most {MAX_PINDEXES_PER_CALL}",
            request.pindexes.len()
        ));
    }
    Ok(())
}

/// The most PIndexes one shard call names: every PIndex of the largest index.
pub const MAX_PINDEXES_PER_CALL: usize = tessera_cfg::limits::MAX_PINDEXES_PER_INDEX as usize;

/// The request's PIndexes on this node, once each shows its `at_plus` seqs (or the deadline
/// passed). The wait is the caller's `timeout_ms`, never more than `max_wait`.
async fn ready(board: &StatusBoard, request: &ShardRequest, max_wait: Duration) -> Vec<Ready> {
    let wait = Duration::from_millis(request.timeout_ms.max(1)).min(max_wait);
    let deadline = tokio::time::Instant::now() + wait;
    let handles: Vec<Wanted> = {
        let board = board.lock().ok();
        request
            .pindexes
            .iter()
            .map(|t| {
                let search = board
                    .as_ref()
                    .and_then(|b| b.get(&t.pindex))
                    .filter(|s| s.index == request.index)
                    .and_then(|s| s.search.clone());
                let wanted = t.at_plus.iter().map(|(p, s)| (*p, *s)).collect();
                (t.pindex.clone(), search, wanted)
            })
            .collect()
    };
    let waits = handles
        .into_iter()
        .map(|(name, search, wanted)| async move {
            let Some(search) = search else {
                return Err((name, failure("not open on this node", true)));
            };
            match search.wait_visible(&wanted, deadline).await {
                Ok(()) => Ok((name, search)),
                Err(behind) => {
                    let parts: Vec<String> = behind
                        .iter()
                        .map(|(p, r, w)| format!("partition {p} at seq {r} < {w}"))
                        .collect();
                    let error = ShardError {
                        message: format!("behind the wanted seqs: {}", parts.join(", ")),
                        behind: behind
                            .into_iter()
                            .map(|(partition, reached, wanted)| Behind {
                                partition,
                                reached,
                                wanted,
                            })
                            .collect(),
                        retryable: false,
                    };
                    Err((name, error))
                }
            }
        });
    futures::future::join_all(waits).await
}

fn query_spec(request: &ShardRequest) -> Result<QuerySpec, String> {
    serde_json::from_str(&request.query_json).map_err(|e| format!("unreadable query: {e}"))
}

/// Every PIndex of the request failing with `message`.
fn all_failed(request: &ShardRequest, message: &str) -> BTreeMap<String, ShardError> {
    request
        .pindexes
        .iter()
        .map(|t| (t.pindex.clone(), failure(message, false)))
        .collect()
}

/// Phase one.
#[tracing::instrument(name = "local_statistics", skip_all, fields(pindexes = request.pindexes.len()))]
pub async fn stats(
    board: &StatusBoard,
    request: ShardRequest,
    max_wait: Duration,
) -> ShardStatsReply {
    let spec = match check_shard(&request).and_then(|()| query_spec(&request)) {
        Ok(spec) => spec,
        Err(e) => {
            return ShardStatsReply {
                stats: None,
                errors: all_failed(&request, &e).into_iter().collect(),
            }
        }
    };
    let mut errors = std::collections::HashMap::new();
    let mut ready_ones = Vec::new();
    for r in ready(board, &request, max_wait).await {
        match r {
            Ok(ok) => ready_ones.push(ok),
            Err((name, e)) => {
                errors.insert(name, e);
            }
        }
    }
    let computed = tokio::task::spawn_blocking(move || {
        let mut sum = TermStats::default();
        let mut errors = Vec::new();
        for (name, search) in ready_ones {
            match tessera_search::local::stats(&search, &spec) {
                Ok(s) => sum.add(&s),
                Err(e) => errors.push((name, e.to_string())),
            }
        }
        (sum, errors)
    })
    .await;
    match computed {
        Ok((sum, failed)) => {
            for (name, e) in failed {
                errors.insert(name, failure(e, true));
            }
            ShardStatsReply {
                stats: Some(to_proto(&sum)),
                errors,
            }
        }
        Err(e) => ShardStatsReply {
            stats: None,
            errors: all_failed(&request, &format!("statistics task failed: {e}"))
                .into_iter()
                .collect(),
        },
    }
}

/// Phase two.
#[tracing::instrument(
    name = "local_search",
    skip_all,
    fields(pindexes = request.shard.as_ref().map_or(0, |s| s.pindexes.len()))
)]
pub async fn search(
    board: &StatusBoard,
    request: ShardSearchRequest,
    max_wait: Duration,
) -> ShardSearchReply {
    let checked = check(&request);
    let shard = request.shard.unwrap_or_default();
    let spec = match checked.and_then(|()| query_spec(&shard)) {
        Ok(spec) => spec,
        Err(e) => {
            return ShardSearchReply {
                hits: Vec::new(),
                total_hits: 0,
                errors: all_failed(&shard, &e).into_iter().collect(),
            }
        }
    };
    let stats = from_proto(&request.stats.unwrap_or_default());
    let fields = (!request.all_fields).then_some(request.fields);
    let window = request.window as usize;
    let mut reply = ShardSearchReply::default();
    let mut ready_ones = Vec::new();
    for r in ready(board, &shard, max_wait).await {
        match r {
            Ok(ready) => ready_ones.push(ready),
            Err((name, e)) => {
                reply.errors.insert(name, e);
            }
        }
    }
    // One task for all of them: on a busy node, a task per PIndex costs more in wake-ups
    // than the searches themselves, and the node's top hits come from all of them together.
    let names: Vec<String> = ready_ones.iter().map(|(n, _)| n.clone()).collect();
    let searched = tokio::task::spawn_blocking(move || {
        tessera_search::local::search_many(&ready_ones, &spec, &stats, window, fields.as_deref())
    })
    .await;
    match searched {
        Ok((found, failed)) => {
            reply.total_hits = found.total_hits;
            reply.hits = found
                .hits
                .into_iter()
                .map(|h| ShardHit {
                    id: h.id,
                    score: h.score,
                    fields_json: h.fields_json,
                    pindex: h.pindex,
                })
                .collect();
            for (name, e) in failed {
                reply.errors.insert(name, failure(e.to_string(), true));
            }
        }
        Err(e) => {
            for name in names {
                reply
                    .errors
                    .insert(name, failure(format!("search task failed: {e}"), true));
            }
        }
    }
    reply
}

pub fn to_proto(stats: &TermStats) -> tessera_proto::v1::TermStats {
    tessera_proto::v1::TermStats {
        docs: stats.docs,
        field_tokens: stats.field_tokens.iter().map(|(f, t)| (*f, *t)).collect(),
        terms: stats
            .doc_freqs
            .iter()
            .map(|((field, value), freq)| TermFreq {
                field: *field,
                value: value.clone(),
                doc_freq: *freq,
            })
            .collect(),
    }
}

pub fn from_proto(stats: &tessera_proto::v1::TermStats) -> TermStats {
    TermStats {
        docs: stats.docs,
        field_tokens: stats.field_tokens.iter().map(|(f, t)| (*f, *t)).collect(),
        doc_freqs: stats
            .terms
            .iter()
            .map(|t| ((t.field, t.value.clone()), t.doc_freq))
            .collect(),
    }
}

/// This node's PIndexes of `index`, as of now.
pub fn local_pindexes(board: &StatusBoard, index: &str) -> Vec<tessera_proto::v1::LocalPIndex> {
    let Ok(board) = board.lock() else {
        return Vec::new();
    };
    board
        .iter()
        .filter(|(_, s)| s.index == index)
        .map(|(name, s)| {
            let s = s.snapshot();
            let feed = s.feed.unwrap_or_default();
            tessera_proto::v1::LocalPIndex {
                name: name.clone(),
                docs: s.docs,
                paused: feed.paused,
                seqs: feed.partitions.iter().map(|(p, st)| (*p, st.seq)).collect(),
                last_error: feed
                    .incident
                    .or(feed.mismatch)
                    .or(s.last_error)
                    .or(feed.last_error)
                    .unwrap_or_default(),
                attempts: s.attempts,
            }
        })
        .collect()
}

/// How long a caller of [`pindexes_on`] gives all the nodes it asks together.
pub const PEER_LIST_BUDGET: Duration = Duration::from_secs(5);

/// `node`'s PIndexes of `index`: this node's from the board, another's over gRPC
/// (`tessera.v1.Node/LocalPIndexes`, through the pooled peer channel), answered before
/// `deadline` (callers asking several nodes ask them at once, under one deadline).
pub async fn pindexes_on(
    coord: &crate::Coordinator,
    addresses: &std::collections::BTreeMap<String, String>,
    node: &str,
    index: &str,
    deadline: tokio::time::Instant,
) -> Result<Vec<tessera_proto::v1::LocalPIndex>, String> {
    if node == coord.node_uuid {
        return Ok(local_pindexes(&coord.board, index));
    }
    let address = addresses
        .get(node)
        .ok_or_else(|| format!("node {node} is not defined"))?;
    let mut client = coord.search.peers.node(address)?;
    let request = tessera_proto::v1::LocalPIndexesRequest {
        index: index.to_string(),
    };
    match tokio::time::timeout_at(deadline, client.local_p_indexes(request)).await {
        Ok(Ok(reply)) => Ok(reply.into_inner().pindexes),
        Ok(Err(status)) => Err(status.message().to_string()),
        Err(_) => Err(format!("{address}: no answer before the deadline")),
    }
}
