//! The coordinator against a plan that moves under a query: a copy moved after the query read
//! the plan (the old node has closed it, the plan names the new one). The old node is a gRPC
//! stand-in that moves the plan on when asked, then answers "not open" as a node that just
//! closed the PIndex does; the coordinator must find the copy where the plan now puts it, within
//! the same query.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::json;
use tessera_cfg::local::LocalStore;
use tessera_cfg::schema::{
    CopyPlan, CopyRole, CopyState, Document, IndexDef, IndexPlan, NodeDef, NodeLiveness, PIndexPlan,
};
use tessera_cfg::{Cfg, KeySpace};
use tessera_index::Change;
use tessera_janitor::executor::{LocalStatus, StatusBoard};
use tessera_proto::v1::search_server::{Search, SearchServer};
use tessera_proto::v1::{
    JsonReply, QueryRequest, ShardError, ShardRequest, ShardSearchReply, ShardSearchRequest,
    ShardStatsReply,
};
use tonic::{Request, Response, Status};

pub(super) const PINDEX: &str = "books_0-0";

fn plan_on(uuid: &str, node: &str) -> IndexPlan {
    IndexPlan {
        format_version: IndexPlan::FORMAT_VERSION,
        index: "books".into(),
        index_uuid: uuid.into(),
        pindexes: vec![PIndexPlan {
            name: PINDEX.into(),
            source_partitions: vec![0],
            copies: vec![CopyPlan {
                node: node.into(),
                role: CopyRole::Primary,
                state: CopyState::Active,
                can_read: true,
                can_write: true,
                target_role: None,
            }],
        }],
        warnings: Vec::new(),
    }
}

/// Node `a` as it is right after the plan moved its copy away: asked, it (like the planner a
/// moment before) writes the plan that puts the copy on `b`, and answers that the PIndex is not
/// open here.
struct MovedAway {
    cfg: Cfg,
    uuid: String,
    calls: Arc<AtomicUsize>,
}

impl MovedAway {
    async fn move_plan(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let current = self.cfg.plan("books").await.ok().flatten();
        if let Some(current) = current.filter(|p| p.value.pindexes[0].copies[0].node == "a") {
            self.cfg
                .put_plan(&plan_on(&self.uuid, "b"), current.revision)
                .await
                .expect("the moved plan is written");
        }
    }

    fn not_open() -> std::collections::HashMap<String, ShardError> {
        [(
            PINDEX.to_string(),
            ShardError {
                message: "not open on this node".into(),
                behind: Vec::new(),
                retryable: true,
            },
        )]
        .into()
    }
}

#[tonic::async_trait]
impl Search for MovedAway {
    async fn query(&self, _: Request<QueryRequest>) -> Result<Response<JsonReply>, Status> {
        Err(Status::unimplemented("not a coordinator"))
    }

    async fn shard_stats(
        &self,
        _: Request<ShardRequest>,
    ) -> Result<Response<ShardStatsReply>, Status> {
        self.move_plan().await;
        Ok(Response::new(ShardStatsReply {
            stats: None,
            errors: Self::not_open(),
        }))
    }

    async fn shard_search(
        &self,
        _: Request<ShardSearchRequest>,
    ) -> Result<Response<ShardSearchReply>, Status> {
        self.move_plan().await;
        Ok(Response::new(ShardSearchReply {
            hits: Vec::new(),
            total_hits: 0,
            errors: Self::not_open(),
        }))
    }
}

async fn define(cfg: &Cfg, uuid: &str, address: &str) {
    let def: IndexDef = serde_json::from_value(json!({
        "format_version": 1, "name": "books", "uuid": uuid, "type": "fulltext",
        "source": {"type": "tessera", "name": "books"}}))
    .expect("a definition");
    cfg.put_index_def(&def, 0).await.expect("definition");
    let lease = cfg
        .store()
        .grant_lease(std::time::Duration::from_secs(60))
        .await
        .expect("lease");
    for (node, host_port) in [("a", address), ("b", "127.0.0.1:1")] {
        let def: NodeDef = serde_json::from_value(json!({
            "format_version": 1, "uuid": node, "incarnation": "i", "host_port": host_port,
            "tags": ["pindex", "queryer", "janitor"], "weight": 1}))
        .expect("a node definition");
        cfg.put_node_def(&def, 0).await.expect("node definition");
        let live = NodeLiveness {
            format_version: NodeLiveness::FORMAT_VERSION,
            uuid: node.into(),
            incarnation: "i".into(),
            host_port: host_port.into(),
            started_at_unix_ms: 0,
        };
        cfg.create_liveness(&live, lease).await.expect("liveness");
    }
}

/// Node `b`'s board: the PIndex open, holding one document.
pub(super) fn board_with_one_document(dir: &std::path::Path) -> StatusBoard {
    open_with_one_document(dir).0
}

/// [`board_with_one_document`], and the PIndex itself: while it is held, waits for seqs it has
/// not reached last until their deadline (dropped, they end at once).
pub(super) fn open_with_one_document(
    dir: &std::path::Path,
) -> (StatusBoard, Box<dyn tessera_index::PIndex>) {
    let mut pindex =
        tessera_index::open("fulltext", &dir.join(PINDEX), &serde_json::Value::Null).expect("open");
    pindex
        .apply(
            0,
            "p0",
            1,
            Change::Put {
                key: "book-1",
                doc: br#"{"title": "moved"}"#,
            },
        )
        .expect("apply");
    pindex.commit().expect("commit");
    let board = StatusBoard::default();
    let mut status = LocalStatus::default();
    status.index = "books".into();
    status.search = pindex.searchable();
    board.lock().expect("board").insert(PINDEX.into(), status);
    (board, pindex)
}

#[tokio::test]
async fn a_copy_moved_after_the_query_read_the_plan_is_found_where_it_went() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = Cfg::new(
        Arc::new(LocalStore::open_memory().expect("store")),
        KeySpace::new("t").expect("keys"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let calls = Arc::new(AtomicUsize::new(0));
    let node_a = MovedAway {
        cfg: cfg.clone(),
        uuid: "u1".into(),
        calls: calls.clone(),
    };
    let router = axum::Router::new()
        .route_service("/tessera.v1.Search/{*method}", SearchServer::new(node_a));
    tokio::spawn(async move { axum::serve(listener, router).await });

    define(&cfg, "u1", &address).await;
    cfg.put_plan(&plan_on("u1", "a"), 0).await.expect("plan");
    let board = board_with_one_document(dir.path());
    let state = crate::state::tests::state(cfg.clone(), "b", board);

    let answer = super::query(
        State(state),
        Path("books".into()),
        None,
        Bytes::from_static(br#"{"query": {"match_all": {}}, "timeout_ms": 5000}"#),
    )
    .await;
    let status = answer.status();
    let body = axum::body::to_bytes(answer.into_body(), 1 << 20)
        .await
        .expect("body");
    let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the query asked the old node once: {body}"
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total_hits"], 1, "{body}");
    assert_eq!(body["status"]["failed"], 0, "{body}");
}

/// The mirror trails the Cfg: a query that routes from a view where the PIndex's only copy is
/// still `building` (unreadable) reads the plan again before answering that nothing can read
/// it, and finds the copy active (a drill saw a 503 here right after its index was built).
#[tokio::test]
async fn a_view_behind_the_plan_is_read_again_before_a_pindex_counts_as_unreadable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = Cfg::new(
        Arc::new(LocalStore::open_memory().expect("store")),
        KeySpace::new("t").expect("keys"),
    );
    define(&cfg, "u1", "127.0.0.1:1").await;
    cfg.put_plan(&plan_on("u1", "b"), 0).await.expect("plan");
    let board = board_with_one_document(dir.path());
    let state = crate::state::tests::state(cfg.clone(), "b", board);

    let mut stale = tessera_coord::View::load(&cfg, "books")
        .await
        .expect("view");
    for copy in &mut stale.plan.pindexes[0].copies {
        copy.state = CopyState::Building;
        copy.can_read = false;
    }
    let mut scatter = tessera_coord::scatter::Scatter {
        coord: &state.coord,
        view: stale,
        avoid: Default::default(),
        prefer: Default::default(),
        turn: 0,
        query_json: r#"{"match_all": {}}"#.into(),
        at_plus: Default::default(),
        deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(5),
    };
    let mut outcome = tessera_coord::scatter::Outcome::default();
    let (_, assigned) = scatter.stats("books", &mut outcome).await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(
        assigned.get("b").map(Vec::as_slice),
        Some([PINDEX.to_string()].as_slice()),
        "{assigned:?}"
    );
}
