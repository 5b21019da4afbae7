//! `tessera.v1.Indexes`: the index API over gRPC. Each call runs the REST handler of the same
//! operation and carries its JSON answer, so REST and gRPC cannot drift apart; a REST error
//! becomes the matching gRPC status with the same message.

use axum::body::Bytes;
use axum::extract::{Path, State};
use tessera_proto::v1::indexes_server::{Indexes, IndexesServer};
use tessera_proto::v1::{
    ControlIndexRequest, IndexName, JsonReply, ListIndexesRequest, PutIndexRequest,
};
use tonic::{Request, Status};

use tessera_auth::Need;

use crate::access::{checked, Caller};
use crate::index as index_api;
use crate::problem::reply;
use crate::AppState;

#[derive(Clone)]
pub struct IndexService {
    state: AppState,
}

impl IndexService {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// As an axum router (no fallback), to merge with REST on one port.
    pub fn router(self) -> axum::Router {
        use tonic::server::NamedService;
        let path = format!("/{}/{{*method}}", IndexesServer::<IndexService>::NAME);
        axum::Router::new().route_service(&path, IndexesServer::new(self))
    }
}

type Reply = Result<tonic::Response<JsonReply>, Status>;

/// Who made a gRPC call, as the guard found out, for the handlers that check more than the
/// index the message names (the source it reads).
pub(crate) fn caller_of<T>(request: &Request<T>) -> Option<axum::Extension<Caller>> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .map(axum::Extension)
}

#[tonic::async_trait]
impl Indexes for IndexService {
    async fn put_index(&self, request: Request<PutIndexRequest>) -> Reply {
        let caller = caller_of(&request);
        let r = checked(&self.state.access, request, Need::IndexAdmin, |r| &r.name)?;
        reply(
            index_api::upsert(
                State(self.state.clone()),
                Path(r.name),
                caller,
                Bytes::from(r.definition_json),
            )
            .await,
        )
        .await
    }

    async fn get_index(&self, request: Request<IndexName>) -> Reply {
        let name = checked(&self.state.access, request, Need::IndexRead, |r| &r.name)?.name;
        reply(index_api::read(State(self.state.clone()), Path(name)).await).await
    }

    async fn list_indexes(&self, _request: Request<ListIndexesRequest>) -> Reply {
        reply(index_api::list(State(self.state.clone())).await).await
    }

    async fn delete_index(&self, request: Request<IndexName>) -> Reply {
        let name = checked(&self.state.access, request, Need::IndexAdmin, |r| &r.name)?.name;
        reply(index_api::remove(State(self.state.clone()), Path(name)).await).await
    }

    async fn count_index(&self, request: Request<IndexName>) -> Reply {
        let caller = caller_of(&request);
        let name = checked(&self.state.access, request, Need::Query, |r| &r.name)?.name;
        reply(index_api::count(State(self.state.clone()), Path(name), caller).await).await
    }

    async fn index_status(&self, request: Request<IndexName>) -> Reply {
        let name = checked(&self.state.access, request, Need::IndexRead, |r| &r.name)?.name;
        reply(index_api::status(State(self.state.clone()), Path(name)).await).await
    }

    async fn control_index(&self, request: Request<ControlIndexRequest>) -> Reply {
        let r = checked(&self.state.access, request, Need::IndexAdmin, |r| &r.name)?;
        reply(
            index_api::control(
                State(self.state.clone()),
                Path((r.name, r.control, r.action)),
            )
            .await,
        )
        .await
    }

    async fn get_plan(&self, _request: Request<ListIndexesRequest>) -> Reply {
        reply(index_api::plan(State(self.state.clone())).await).await
    }
}
