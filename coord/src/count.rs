//! Documents in an index, routed like a query: per PIndex one readable copy on a live node
//! (the primary first), asked of its node (this node directly, others through the pooled peer
//! channel); a node that fails the call is avoided and its PIndexes asked of another copy.

use std::collections::{BTreeMap, BTreeSet};

use tessera_search::request::Prefer;
use tessera_search::route::{route, Cluster};

use crate::view::View;
use crate::Coordinator;

/// Rounds: the first choice, then up to two other copies.
const ROUNDS: usize = 3;

/// What a count found.
#[derive(Debug, Default)]
pub struct Counted {
    pub count: u64,
    pub counted: usize,
    pub total: usize,
    /// PIndex → why it was not counted.
    pub errors: BTreeMap<String, String>,
}

/// The routing of `pending` PIndexes over `view`, away from `avoid` when it can.
fn routing_of(
    view: &View,
    pending: &BTreeSet<String>,
    avoid: &BTreeSet<String>,
) -> tessera_search::route::Routing {
    let cluster = Cluster {
        live: &view.live,
        avoid,
    };
    route(&view.plan, Some(pending), &cluster, Prefer::Primary, 0)
}

/// Counts the documents of the index `view` shows. Like a query, a PIndex not found where the
/// view said is looked for again in a freshly read view (the plan moved on meanwhile).
pub async fn count(coord: &Coordinator, index: &str, view: &View) -> Counted {
    let mut view = view.clone();
    let mut out = Counted {
        total: view.plan.pindexes.len(),
        ..Counted::default()
    };
    let mut avoid: BTreeSet<String> = coord.search.suspects();
    avoid.extend(view.no_reads.iter().cloned());
    let mut pending: BTreeSet<String> = view.plan.pindexes.iter().map(|p| p.name.clone()).collect();
    let deadline = tokio::time::Instant::now() + crate::shard::PEER_LIST_BUDGET;
    for round in 0..ROUNDS {
        if pending.is_empty() {
            break;
        }
        if round > 0 {
            match View::load(&coord.cfg, index).await {
                Ok(fresh) if fresh.plan.index_uuid == view.plan.index_uuid => view = fresh,
                _ => {}
            }
        }
        let mut routing = routing_of(&view, &pending, &avoid);
        if round == 0 && !routing.uncovered.is_empty() {
            // The view may trail the plan (the mirror): read it again before counting a
            // PIndex as unreadable.
            if let Ok(fresh) = View::load(&coord.cfg, index).await {
                if fresh.plan.index_uuid == view.plan.index_uuid {
                    view = fresh;
                    routing = routing_of(&view, &pending, &avoid);
                }
            }
        }
        for (pindex, why) in routing.uncovered {
            pending.remove(&pindex);
            out.errors.insert(pindex, why);
        }
        // Every node of the round at once, under the count's one deadline.
        let asked = routing.by_node.into_iter().map(|(node, names)| {
            let view = &view;
            async move {
                let docs = local_pindexes(coord, view, &node, index, deadline).await;
                (node, names, docs)
            }
        });
        for (node, names, docs) in futures::future::join_all(asked).await {
            match docs {
                Ok(docs) => {
                    for name in names {
                        match docs.get(&name) {
                            Some(d) => {
                                out.count += d;
                                out.counted += 1;
                                pending.remove(&name);
                                out.errors.remove(&name);
                            }
                            None => {
                                out.errors
                                    .insert(name, format!("not open on node {node} yet"));
                            }
                        }
                    }
                    avoid.insert(node);
                }
                Err(e) => {
                    coord.search.suspect(&node);
                    for name in names {
                        out.errors.insert(name, format!("node {node}: {e}"));
                    }
                    avoid.insert(node);
                }
            }
        }
    }
    out
}

/// The documents per PIndex of `index` on `node`.
async fn local_pindexes(
    coord: &Coordinator,
    view: &View,
    node: &str,
    index: &str,
    deadline: tokio::time::Instant,
) -> Result<BTreeMap<String, u64>, String> {
    let list = crate::shard::pindexes_on(coord, &view.addresses, node, index, deadline).await?;
    Ok(list.into_iter().map(|p| (p.name, p.docs)).collect())
}
