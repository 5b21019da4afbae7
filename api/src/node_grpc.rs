//! `tessera.v1.Node`, served on the same port as REST: requests are routed by path
//! (`/tessera.v1.Node/...`), so a REST path never reaches gRPC and vice versa.

use tessera_janitor::executor::StatusBoard;
use tessera_proto::v1::node_server::{Node, NodeServer};
use tessera_proto::v1::{LocalPIndexesRequest, LocalPIndexesResponse, PingRequest, PingResponse};
use tonic::{Request, Response, Status};

/// Who this node is, as `Ping` reports it.
#[derive(Clone)]
pub struct NodeService {
    pub node_uuid: String,
    pub incarnation: String,
    pub cluster_uuid: String,
    pub cluster_name: String,
    pub board: StatusBoard,
}

impl NodeService {
    pub fn new(state: crate::AppState) -> Self {
        Self {
            node_uuid: state.node_uuid,
            incarnation: state.incarnation,
            cluster_uuid: state.cluster_uuid,
            cluster_name: state.cluster_name,
            board: state.board,
        }
    }
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn ping(&self, _request: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        Ok(Response::new(PingResponse {
            node_uuid: self.node_uuid.clone(),
            incarnation: self.incarnation.clone(),
            cluster_uuid: self.cluster_uuid.clone(),
            cluster_name: self.cluster_name.clone(),
        }))
    }

    async fn local_p_indexes(
        &self,
        request: Request<LocalPIndexesRequest>,
    ) -> Result<Response<LocalPIndexesResponse>, Status> {
        let index = request.into_inner().index;
        Ok(Response::new(LocalPIndexesResponse {
            pindexes: tessera_coord::shard::local_pindexes(&self.board, &index),
        }))
    }
}

/// The gRPC services as an axum router without a fallback, to merge with the REST one (whose
/// fallback answers unknown paths).
pub fn router(service: NodeService) -> axum::Router {
    use tonic::server::NamedService;
    let path = format!("/{}/{{*method}}", NodeServer::<NodeService>::NAME);
    axum::Router::new().route_service(&path, NodeServer::new(service))
}
