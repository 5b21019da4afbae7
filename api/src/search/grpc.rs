//! `tessera.v1.Search` over gRPC: `Query` runs the REST handler (same JSON in and out), the
//! shard phases run [`super::shard`] on this node's PIndexes.

use axum::body::Bytes;
use axum::extract::{Path, State};
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

#[tonic::async_trait]
impl Search for SearchService {
    async fn query(&self, request: Request<QueryRequest>) -> Result<Response<JsonReply>, Status> {
        let r = request.into_inner();
        let answer = super::query(
            State(self.state.clone()),
            Path(r.index),
            Bytes::from(r.body_json),
        )
        .await;
        crate::problem::reply(answer).await
    }

    async fn shard_stats(
        &self,
        request: Request<ShardRequest>,
    ) -> Result<Response<ShardStatsReply>, Status> {
        Ok(Response::new(
            tessera_coord::shard::stats(&self.state.board, request.into_inner()).await,
        ))
    }

    async fn shard_search(
        &self,
        request: Request<ShardSearchRequest>,
    ) -> Result<Response<ShardSearchReply>, Status> {
        Ok(Response::new(
            tessera_coord::shard::search(&self.state.board, request.into_inner()).await,
        ))
    }
}
