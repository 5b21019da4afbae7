//! Shard calls are input from peers (or from anyone who reaches the port): each bound answers
//! with a clear status instead of allocating, waiting or queueing without limit.

use std::time::{Duration, Instant};

use tessera_cfg::local::LocalStore;
use tessera_cfg::{Cfg, KeySpace};
use tessera_coord::SearchLimits;
use tessera_proto::v1::search_server::Search;
use tessera_proto::v1::{ShardRequest, ShardSearchRequest, ShardTarget};
use tonic::{Code, Request};

use super::grpc::SearchService;
use super::tests::{board_with_one_document, open_with_one_document, PINDEX};

fn state_of(
    board: tessera_janitor::executor::StatusBoard,
    limits: SearchLimits,
) -> crate::AppState {
    let cfg = Cfg::new(
        std::sync::Arc::new(LocalStore::open_memory().expect("store")),
        KeySpace::new("t").expect("keys"),
    );
    crate::state::tests::state_with(cfg, "b", board, limits)
}

fn state(dir: &std::path::Path, limits: SearchLimits) -> crate::AppState {
    state_of(board_with_one_document(dir), limits)
}

fn service(dir: &std::path::Path, limits: SearchLimits) -> SearchService {
    SearchService::new(state(dir, limits))
}

fn shard(at_plus: &[(u32, u64)], timeout_ms: u64) -> ShardRequest {
    ShardRequest {
        index: "books".into(),
        pindexes: vec![ShardTarget {
            pindex: PINDEX.into(),
            at_plus: at_plus.iter().copied().collect(),
        }],
        query_json: r#"{"match_all": {}}"#.into(),
        timeout_ms,
    }
}

fn search(window: u32, shard: ShardRequest) -> ShardSearchRequest {
    ShardSearchRequest {
        shard: Some(shard),
        window,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_window_past_the_deepest_hit_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = service(dir.path(), SearchLimits::default());
    let status = service
        .shard_search(Request::new(search(u32::MAX, shard(&[], 1000))))
        .await
        .expect_err("u32::MAX is refused before any collector is built");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("window"), "{status:?}");
    let reply = service
        .shard_search(Request::new(search(10_000, shard(&[], 1000))))
        .await
        .expect("the deepest allowed window is served")
        .into_inner();
    assert_eq!(reply.total_hits, 1, "{reply:?}");
}

#[tokio::test]
async fn too_many_pindexes_in_one_call_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = service(dir.path(), SearchLimits::default());
    let mut request = shard(&[], 1000);
    request.pindexes = (0..=tessera_coord::shard::MAX_PINDEXES_PER_CALL)
        .map(|i| ShardTarget {
            pindex: format!("p{i}"),
            at_plus: Default::default(),
        })
        .collect();
    let status = service
        .shard_stats(Request::new(request))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("pindexes"), "{status:?}");
}

#[tokio::test]
async fn shard_calls_past_the_cap_are_resource_exhausted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = SearchLimits {
        max_concurrent_shard_calls: 1,
        max_shard_wait: Duration::from_secs(5),
        ..Default::default()
    };
    let (board, _open) = open_with_one_document(dir.path());
    let state = state_of(board, limits);
    let service = SearchService::new(state.clone());
    // The first call holds the only slot while it waits for a seq that never comes.
    let waiting = {
        let service = service.clone();
        tokio::spawn(async move {
            service
                .shard_stats(Request::new(shard(&[(0, 99)], 5000)))
                .await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    // (A slot taken here is given back before the next await, so it cannot race the call.)
    while state.coord.search.try_shard_slot().is_some() {
        assert!(
            Instant::now() < deadline,
            "the first call never took the slot"
        );
        tokio::task::yield_now().await;
    }
    let status = service
        .shard_stats(Request::new(shard(&[], 1000)))
        .await
        .expect_err("a second call while the only slot is held");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("limit of 1"), "{status:?}");
    waiting.abort();
}

#[tokio::test]
async fn a_shard_wait_never_exceeds_the_nodes_maximum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = SearchLimits {
        max_shard_wait: Duration::from_millis(200),
        ..Default::default()
    };
    let (board, _open) = open_with_one_document(dir.path());
    let service = SearchService::new(state_of(board, limits));
    let started = Instant::now();
    let reply = service
        .shard_stats(Request::new(shard(&[(0, 99)], 3_600_000)))
        .await
        .expect("answered")
        .into_inner();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(30),
        "an hour-long wait was asked; the node's maximum (200 ms) must cut it, waited {waited:?}"
    );
    let error = &reply.errors[PINDEX];
    assert_eq!(error.behind.len(), 1, "{reply:?}");
    assert_eq!((error.behind[0].reached, error.behind[0].wanted), (1, 99));
}
