//! What leaves a node (issue 31): a node's own API key goes only to nodes of its cluster. An
//! address a definition names — here a standalone source's URL that `--dial-allow` lets the
//! node dial — gets the node's calls without the key, so whoever may define an index cannot
//! collect it.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// What a listener standing in for a source saw: per request, its path and whether it came
/// with an `authorization` header.
type Seen = Arc<Mutex<Vec<(String, bool)>>>;

/// Serves h2c and HTTP/1 on `listener`, answering every request 404 and recording it.
async fn collector(listener: tokio::net::TcpListener, seen: Seen) {
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let seen = seen.clone();
        async move {
            let keyed = request.headers().contains_key("authorization");
            if let Ok(mut seen) = seen.lock() {
                seen.push((request.uri().path().to_string(), keyed));
            }
            axum::http::StatusCode::NOT_FOUND
        }
    });
    let _ = axum::serve(listener, app).await;
}

#[test]
fn the_nodes_key_goes_only_to_nodes_of_the_cluster() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let seen: Seen = Arc::default();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let fake = listener.local_addr().unwrap().to_string();
    rt.spawn(collector(listener, seen.clone()));

    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let _node = serve(
        dir.path(),
        &[
            "node",
            "--bind",
            &address,
            "--auth",
            "required",
            "--dial-allow",
            &fake,
        ],
        &address,
    );
    let admin = key_file(dir.path(), "bootstrap-admin.key");
    let node_key = key_file(dir.path(), "node-api-key");
    assert!(node_key.starts_with("tsk_"), "the node has a key to leak");

    // An index over a "source" at the collector: the node asks it for partitions (at create)
    // and its feeds open streams there.
    let def = serde_json::json!({"type": "fulltext", "source": {"type": "tessera",
        "name": "elsewhere", "params": {"url": format!("http://{fake}")}},
        "plan": {"index_partitions": 1, "replicas": 0}})
    .to_string();
    let (status, body) = http_as(&address, &admin, "PUT", "/api/index/far", &def);
    assert_eq!(status, 200, "{body}");
    let calls = wait_for(
        "the node to call the address the definition names",
        Duration::from_secs(30),
        || {
            let seen = seen.lock().unwrap().clone();
            (seen.len() >= 2).then_some(seen)
        },
    );
    let keyed: Vec<&(String, bool)> = calls.iter().filter(|(_, keyed)| *keyed).collect();
    assert!(
        keyed.is_empty(),
        "the node sent its key to {fake}, an address a definition named: {keyed:?} of {calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|(path, _)| path.starts_with("/tessera.v1.Source/")),
        "the calls were the source protocol's: {calls:?}"
    );
}
