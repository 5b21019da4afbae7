//! A write that loses a compare-and-set answers the same on every route that can meet one:
//! 409 over REST, `FailedPrecondition` over gRPC. The store here loses every write race (as
//! when another writer got there first); routes that retry a lost race by design (controls,
//! cancel) are not among them.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use tessera_cfg::local::LocalStore;
use tessera_cfg::store::{Listing, Store, Txn, TxnOutcome, WatchStream};
use tessera_cfg::{Cfg, CfgError, KeySpace, KeyValue, LeaseId, Revision};
use tessera_proto::v1::indexes_server::Indexes;
use tessera_proto::v1::{IndexName, PutIndexRequest};

use crate::AppState;

/// Reads as the inner store; every write loses its race.
struct LostRace(Arc<dyn Store>);

fn lost(key: &str) -> CfgError {
    CfgError::CasMismatch {
        key: key.to_string(),
        expected: 1,
        current: 2,
    }
}

#[async_trait::async_trait]
impl Store for LostRace {
    fn backend(&self) -> &'static str {
        "lost-race"
    }
    async fn get(&self, key: &str) -> tessera_cfg::Result<Option<KeyValue>> {
        self.0.get(key).await
    }
    async fn list(&self, prefix: &str) -> tessera_cfg::Result<Listing> {
        self.0.list(prefix).await
    }
    async fn revision(&self) -> tessera_cfg::Result<Revision> {
        self.0.revision().await
    }
    async fn put(
        &self,
        key: &str,
        _: Vec<u8>,
        _: Revision,
        _: Option<LeaseId>,
    ) -> tessera_cfg::Result<Revision> {
        Err(lost(key))
    }
    async fn delete(&self, key: &str, _: Revision) -> tessera_cfg::Result<Revision> {
        Err(lost(key))
    }
    async fn txn(&self, _: Txn) -> tessera_cfg::Result<TxnOutcome> {
        Err(lost("txn"))
    }
    async fn watch(&self, prefix: &str, from: Revision) -> tessera_cfg::Result<WatchStream> {
        self.0.watch(prefix, from).await
    }
    async fn compact(&self, revision: Revision) -> tessera_cfg::Result<()> {
        self.0.compact(revision).await
    }
    async fn grant_lease(&self, ttl: Duration) -> tessera_cfg::Result<LeaseId> {
        self.0.grant_lease(ttl).await
    }
    async fn keep_alive_lease(&self, lease: LeaseId) -> tessera_cfg::Result<()> {
        self.0.keep_alive_lease(lease).await
    }
    async fn revoke_lease(&self, lease: LeaseId) -> tessera_cfg::Result<()> {
        self.0.revoke_lease(lease).await
    }
}

/// A cluster of one node whose store then loses every write race.
async fn state() -> AppState {
    let inner: Arc<dyn Store> = Arc::new(LocalStore::open_memory().expect("store"));
    let node: tessera_cfg::schema::NodeDef = serde_json::from_value(serde_json::json!({
        "format_version": 1, "uuid": "n", "incarnation": "i", "host_port": "127.0.0.1:1",
        "tags": ["pindex", "janitor"], "weight": 1}))
    .expect("a node definition");
    Cfg::new(inner.clone(), KeySpace::new("t").expect("keys"))
        .put_node_def(&node, 0)
        .await
        .expect("the node defined");
    let cfg = Cfg::new(Arc::new(LostRace(inner)), KeySpace::new("t").expect("keys"));
    crate::state::tests::state(cfg, "n", Default::default())
}

const INDEX: &str = r#"{"type": "blackhole", "source": {"type": "tessera", "name": "s"},
    "plan": {"index_partitions": 1, "replicas": 0}}"#;

#[tokio::test]
async fn a_lost_compare_and_set_is_409_and_failed_precondition_on_every_route() {
    let state = state().await;
    let rest = [
        (
            "PUT /api/index/books",
            crate::index::upsert(
                State(state.clone()),
                Path("books".into()),
                None,
                Bytes::from_static(INDEX.as_bytes()),
            )
            .await,
        ),
        (
            "DELETE /api/index/books",
            crate::index::remove(State(state.clone()), Path("books".into())).await,
        ),
        (
            "POST /api/ctl/topology-change",
            crate::supervisor::topology_change(
                State(state.clone()),
                Bytes::from_static(br#"{"type": "rebalance"}"#),
            )
            .await,
        ),
    ];
    for (route, answer) in rest {
        assert_eq!(answer.status(), 409, "{route}");
    }
    let grpc = crate::index::grpc::IndexService::new(state);
    let put = grpc
        .put_index(tonic::Request::new(PutIndexRequest {
            name: "books".into(),
            definition_json: INDEX.into(),
        }))
        .await
        .expect_err("a lost race is an error");
    assert_eq!(put.code(), tonic::Code::FailedPrecondition, "{put:?}");
    let delete = grpc
        .delete_index(tonic::Request::new(IndexName {
            name: "books".into(),
        }))
        .await
        .expect_err("a lost race is an error");
    assert_eq!(delete.code(), tonic::Code::FailedPrecondition, "{delete:?}");
}
