//! The node's gRPC services, served on the same port as REST: requests are routed by path
//! (`/tessera.v1.Node/...`), so a REST path never reaches gRPC and vice versa.

use tessera_proto::v1::node_server::{Node, NodeServer};
use tessera_proto::v1::{PingRequest, PingResponse};
use tonic::{Request, Response, Status};

/// Who this node is, as `Ping` reports it.
#[derive(Clone)]
pub struct NodeService {
    pub node_uuid: String,
    pub incarnation: String,
    pub cluster_uuid: String,
    pub cluster_name: String,
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
}

/// The gRPC services as an axum router without a fallback, to merge with the REST one (whose
/// fallback answers unknown paths).
pub fn router(service: NodeService) -> axum::Router {
    use tonic::server::NamedService;
    let path = format!("/{}/{{*method}}", NodeServer::<NodeService>::NAME);
    axum::Router::new().route_service(&path, NodeServer::new(service))
}
