//! A node's API surface: every REST route and gRPC service a node serves on its one port,
//! over one shared [`state::AppState`], with one error mapping ([`problem`]). Handlers read and
//! write the Cfg and call the crates that own the behaviour (planning rules are the
//! planner's, query coordination `tessera-coord`'s); they hold no rule of their own. REST and
//! gRPC serve the same handlers, so they cannot drift apart.
//!
//! Every call passes [`access::guard`] (who may call what; `/api/keys`). Routers per area: [`cluster`] (ping, Cfg dump, nodes, 404), [`index`] (the index API, count,
//! status, plan), [`search`] (queries), [`supervisor`] (topology changes, tasks, freeze,
//! failover acknowledgement), [`recovery`] (recovery of missing PIndexes), [`health`], [`explain`],
//! [`node_status`] (this node's density figures), [`console`] (the web console at `/ui`),
//! [`metrics`] (`/metrics`; every request
//! counted by [`request_metrics`]); gRPC: [`node_grpc`] and the `grpc` module of each
//! area.

pub mod access;
pub mod backup;
pub mod cluster;
pub mod console;
pub mod explain;
pub mod guard;
pub mod health;
pub mod index;
pub mod metrics;
pub mod node_grpc;
pub mod node_status;
pub mod problem;
pub mod recovery;
pub mod request_metrics;
pub mod request_trace;
pub mod search;
pub mod state;
pub mod supervisor;

#[cfg(test)]
mod cas_tests;

pub use cluster::not_found;
pub use state::{AppState, Identity};

/// Every REST route and gRPC service of a node (without a fallback: the node adds the source's
/// routes, then the JSON 404).
/// Each group of routes is under its own body and time limits ([`guard`]).
pub fn app(state: AppState) -> axum::Router {
    use guard::{bounded, RouteLimits};
    let admin = axum::Router::new()
        .merge(cluster::router())
        .merge(index::router())
        .merge(supervisor::router())
        .merge(backup::router())
        .merge(recovery::router())
        .merge(metrics::router())
        .merge(console::router())
        .merge(access::keys_api::router())
        .with_state(state.clone());
    let query = search::router().with_state(state.clone());
    bounded(admin, RouteLimits::ADMIN)
        .merge(bounded(query, RouteLimits::QUERY))
        .merge(bounded(
            index::grpc::IndexService::new(state.clone()).router(),
            RouteLimits::ADMIN,
        ))
        .merge(bounded(
            search::grpc::SearchService::new(state.clone()).router(),
            RouteLimits::QUERY,
        ))
        .merge(bounded(
            supervisor::SupervisorService::new(state.clone()).router(),
            RouteLimits::ADMIN,
        ))
        .merge(bounded(
            node_grpc::router(node_grpc::NodeService::new(state)),
            RouteLimits::ADMIN,
        ))
}
