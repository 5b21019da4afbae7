//! `tessera.v1.Supervisor`: the supervisor API over gRPC. Each call runs the REST handler of the
//! same operation and carries its JSON answer, as `tessera.v1.Indexes` does.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use tessera_proto::v1::supervisor_server::{Supervisor, SupervisorServer};
use tessera_proto::v1::{JsonReply, JsonRequest, PIndexName, SupervisorEmpty, TaskId};
use tonic::{Request, Status};

use crate::problem::reply;
use crate::AppState;

#[derive(Clone)]
pub struct SupervisorService {
    state: AppState,
}

impl SupervisorService {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// As an axum router (no fallback), to merge with REST on one port.
    pub fn router(self) -> axum::Router {
        use tonic::server::NamedService;
        let path = format!(
            "/{}/{{*method}}",
            SupervisorServer::<SupervisorService>::NAME
        );
        axum::Router::new().route_service(&path, SupervisorServer::new(self))
    }

    fn state(&self) -> State<AppState> {
        State(self.state.clone())
    }
}

type Reply = Result<tonic::Response<JsonReply>, Status>;

#[tonic::async_trait]
impl Supervisor for SupervisorService {
    async fn topology(&self, _: Request<SupervisorEmpty>) -> Reply {
        reply(super::topology(self.state()).await).await
    }

    async fn topology_change(&self, request: Request<JsonRequest>) -> Reply {
        let body = Bytes::from(request.into_inner().json);
        reply(super::topology_change(self.state(), body).await).await
    }

    async fn list_tasks(&self, _: Request<SupervisorEmpty>) -> Reply {
        reply(super::tasks(self.state()).await).await
    }

    async fn get_task(&self, request: Request<TaskId>) -> Reply {
        reply(super::task(self.state(), Path(request.into_inner().id)).await).await
    }

    async fn cancel_task(&self, request: Request<TaskId>) -> Reply {
        reply(super::cancel(self.state(), Path(request.into_inner().id)).await).await
    }

    async fn health(&self, _: Request<SupervisorEmpty>) -> Reply {
        reply(crate::health::cluster_health(self.state()).await).await
    }

    async fn freeze(&self, request: Request<JsonRequest>) -> Reply {
        let body = Bytes::from(request.into_inner().json);
        reply(super::freeze(self.state(), body).await).await
    }

    async fn unfreeze(&self, _: Request<SupervisorEmpty>) -> Reply {
        reply(super::unfreeze(self.state()).await).await
    }

    async fn ack_failovers(&self, _: Request<SupervisorEmpty>) -> Reply {
        reply(super::acknowledge(self.state()).await).await
    }

    async fn explain_p_index(&self, request: Request<PIndexName>) -> Reply {
        let query = crate::explain::ExplainQuery {
            pindex: request.into_inner().pindex,
        };
        reply(crate::explain::plan_explain(self.state(), Ok(Query(query))).await).await
    }
}
