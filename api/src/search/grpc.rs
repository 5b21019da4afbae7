//! `tessera.v1.Search` over gRPC: `Query` runs the REST handler (same JSON in and out), the
//! shard phases run `tessera_coord::shard` on this node's PIndexes. Shard calls come from
//! peers and are bounded here like any input: a request that cannot be served answers
//! `InvalidArgument` naming the field, and past the node's shard-call cap `ResourceExhausted`
//! (the coordinator then asks another copy).

use axum::body::Bytes;
use axum::extract::{Path, State};
use tessera_coord::shard;
use tessera_proto::v1::search_server::{Search, SearchServer};
use tessera_proto::v1::{
    JsonReply, QueryRequest, ShardRequest, ShardSearchReply, ShardSearchRequest, ShardStatsReply,
};
use tonic::{Request, Response, Status};

use crate::AppState;

#[derive(Clone)]
pub struct SearchService {
    state: AppState,
}

impl SearchService {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// As an axum router (no fallback), to merge with REST on one port.
    pub fn router(self) -> axum::Router {
        use tonic::server::NamedService;
        let path = format!("/{}/{{*method}}", SearchServer::<SearchService>::NAME);
        axum::Router::new().route_service(&path, SearchServer::new(self))
    }
}

impl SearchService {
    fn shard_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        self.state.coord.search.try_shard_slot().ok_or_else(|| {
            Status::resource_exhausted(format!(
                "this node is serving its limit of {} concurrent shard calls",
                self.state.coord.search.limits().max_concurrent_shard_calls
            ))
        })
    }
}

#[tonic::async_trait]
impl Search for SearchService {
    async fn query(&self, request: Request<QueryRequest>) -> Result<Response<JsonReply>, Status> {
        let caller = crate::index::grpc::caller_of(&request);
        let r = crate::access::checked(
            &self.state.access,
            request,
            tessera_auth::Need::Query,
            |r| &r.index,
        )?;
        let answer = super::query(
            State(self.state.clone()),
            Path(r.index),
            caller,
            Bytes::from(r.body_json),
        )
        .await;
        crate::problem::reply(answer).await
    }

    async fn shard_stats(
        &self,
        request: Request<ShardRequest>,
    ) -> Result<Response<ShardStatsReply>, Status> {
        let request = request.into_inner();
        shard::check_shard(&request).map_err(Status::invalid_argument)?;
        let _slot = self.shard_slot()?;
        let max_wait = self.state.coord.search.limits().max_shard_wait;
        Ok(Response::new(
            shard::stats(&self.state.board, request, max_wait).await,
        ))
    }

    async fn shard_search(
        &self,
        request: Request<ShardSearchRequest>,
    ) -> Result<Response<ShardSearchReply>, Status> {
        let request = request.into_inner();
        shard::check(&request).map_err(Status::invalid_argument)?;
        let _slot = self.shard_slot()?;
        let max_wait = self.state.coord.search.limits().max_shard_wait;
        Ok(Response::new(
            shard::search(&self.state.board, request, max_wait).await,
        ))
    }
}
