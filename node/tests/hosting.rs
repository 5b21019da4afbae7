//! One node hosting an index end to end: the index API creates it, the planner plans it, the
//! janitor opens its PIndexes and feeds them from the embedded source; counts follow inserts,
//! updates and deletes; a restart resumes from checkpoints; bad requests are refused.

mod common;

use std::time::Duration;

use common::{free_port, http, serve, wait_for, Proc};

fn start_node(dir: &std::path::Path, address: &str) -> Proc {
    let args = [
        "node",
        "--bind",
        address,
        "--source-partitions",
        "16",
        "--lease-ttl-ms",
        "2000",
    ];
    serve(dir, &args, address)
}

const INDEX: &str = r#"{"type": "fulltext",
  "source": {"type": "tessera", "name": "docs", "partitions": 16},
  "plan": {"max_partitions_per_pindex": 4, "replicas": 0},
  "params": {"mapping": {"default_analyzer": "en", "fields": {"title": {"type": "text"}, "year": {"type": "i64"}}}}}"#;

fn count(address: &str) -> (u64, u64) {
    let (status, body) = http(address, "GET", "/api/index/books/count", "");
    assert_eq!(status, 200, "{body}");
    (
        body["count"].as_u64().unwrap(),
        body["pindexes_counted"].as_u64().unwrap(),
    )
}

fn wait_count(address: &str, want: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let last = count(address);
        if last == (want, 4) {
            return;
        }
        if std::time::Instant::now() > deadline {
            let (_, status) = http(address, "GET", "/api/index/books/status", "");
            panic!("count {want} not reached: last {last:?}; status {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_single_node_hosts_an_index_from_its_embedded_source() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let mut node = start_node(dir.path(), &address);

    // Bad requests first: nothing is created by them.
    let bad_mapping = INDEX.replace(
        r#""year": {"type": "i64"}"#,
        r#""year": {"type": "integer"}"#,
    );
    let (status, body) = http(&address, "PUT", "/api/index/books", &bad_mapping);
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("params.mapping.fields.year.type")),
        "{body}"
    );
    let too_many = INDEX.replace(r#""replicas": 0"#, r#""replicas": 1"#);
    let (status, body) = http(&address, "PUT", "/api/index/books", &too_many);
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("plan.replicas")),
        "{body}"
    );
    let (status, body) = http(&address, "PUT", "/api/index/9bad", INDEX);
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("name")),
        "{body}"
    );
    let (status, body) = http(
        &address,
        "PUT",
        "/api/index/books",
        r#"{"type": "fulltext", "sauce": 1}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(http(&address, "GET", "/api/index/books", "").0, 404);

    let (status, body) = http(&address, "PUT", "/api/index/books", INDEX);
    assert_eq!(status, 200, "{body}");
    let uuid = body["index"]["uuid"].as_str().unwrap().to_string();
    // Without a source url, the node that accepted the create is recorded as the source.
    let (_, ping) = http(&address, "GET", "/api/ping", "");
    assert_eq!(
        body["index"]["source"]["params"]["node"], ping["node"],
        "{body} {ping}"
    );
    let (status, _) = http(&address, "PUT", "/api/index/books", INDEX);
    assert_eq!(status, 409, "creating twice needs prev_index_uuid");

    let lines: String = (0..2000)
        .map(|i| {
            format!(
                "{{\"key\":\"b{i}\",\"doc\":{{\"title\":\"book number {i}\",\"year\":{}}}}}\n",
                1900 + i % 120
            )
        })
        .collect();
    let (status, body) = http(&address, "POST", "/api/source/docs/bulk", &lines);
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(2000)),
        "{body}"
    );
    wait_count(&address, 2000);
    // The source exists now: a definition that disagrees on its partitions is refused.
    let wrong = INDEX.replace(r#""partitions": 16"#, r#""partitions": 32"#);
    let (status, body) = http(&address, "PUT", "/api/index/wrong", &wrong);
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("source.partitions")),
        "{body}"
    );
    // Caught-up copies are reported and become readable in the plan.
    wait_for(
        "every copy active in the plan",
        Duration::from_secs(30),
        || {
            let (_, body) = http(&address, "GET", "/api/plan", "");
            let plan = body["plans"].as_array()?.first()?.clone();
            plan["pindexes"]
                .as_array()?
                .iter()
                .all(|p| {
                    p["copies"].as_array().is_some_and(|c| {
                        c.iter()
                            .all(|c| c["state"] == "active" && c["can_read"] == true)
                    })
                })
                .then_some(())
        },
    );

    // Updates keep the count; deletes lower it.
    http(
        &address,
        "PUT",
        "/api/source/docs/doc/b1",
        r#"{"title": "renamed", "year": 2024}"#,
    );
    for i in 0..10 {
        http(
            &address,
            "DELETE",
            &format!("/api/source/docs/doc/b{}", 100 + i),
            "",
        );
    }
    wait_count(&address, 1990);

    let (status, body) = http(&address, "GET", "/api/index/books/status", "");
    assert_eq!(status, 200);
    let pindexes = body["pindexes"].as_array().unwrap();
    assert_eq!(pindexes.len(), 4);
    assert!(
        pindexes.iter().all(|p| p["local"]["feed"]["partitions"]
            .as_object()
            .is_some_and(|m| m.len() == 4)),
        "{body}"
    );

    // Update under CAS: stale uuid refused, current accepted.
    let with_prev =
        |prev: &str| INDEX.replacen('{', &format!("{{\"prev_index_uuid\": \"{prev}\", "), 1);
    assert_eq!(
        http(&address, "PUT", "/api/index/books", &with_prev("stale")).0,
        409
    );
    assert_eq!(
        http(&address, "PUT", "/api/index/books", &with_prev(&uuid)).0,
        200
    );

    // Operator switches: a paused ingest keeps its position; a disallowed index answers 403.
    // A witness index over the same source shows what the paused one would have taken in.
    let (status, body) = http(&address, "PUT", "/api/index/witness", INDEX);
    assert_eq!(status, 200, "{body}");
    let witness_count = |want: u64| {
        wait_for(
            &format!("the witness index at {want} documents"),
            Duration::from_secs(60),
            || {
                let (status, body) = http(&address, "GET", "/api/index/witness/count", "");
                (status == 200 && body["count"].as_u64() == Some(want)).then_some(())
            },
        )
    };
    witness_count(1990);
    assert_eq!(
        http(&address, "POST", "/api/index/books/ingestControl/pause", "").0,
        200
    );
    wait_for("feeds to pause", Duration::from_secs(20), || {
        let (_, body) = http(&address, "GET", "/api/index/books/status", "");
        body["pindexes"]
            .as_array()?
            .iter()
            .all(|p| p["local"]["feed"]["paused"] == true)
            .then_some(())
    });
    let more: String = (2000..2100)
        .map(|i| format!("{{\"key\":\"b{i}\",\"doc\":{{\"title\":\"late {i}\"}}}}\n"))
        .collect();
    assert_eq!(
        http(&address, "POST", "/api/source/docs/bulk", &more).0,
        200
    );
    witness_count(2090);
    assert_eq!(count(&address).0, 1990, "a paused index took in changes");
    assert_eq!(http(&address, "DELETE", "/api/index/witness", "").0, 200);
    assert_eq!(
        http(
            &address,
            "POST",
            "/api/index/books/ingestControl/resume",
            ""
        )
        .0,
        200
    );
    wait_count(&address, 2090);
    assert_eq!(
        http(
            &address,
            "POST",
            "/api/index/books/queryControl/disallow",
            ""
        )
        .0,
        200
    );
    assert_eq!(http(&address, "GET", "/api/index/books/count", "").0, 403);
    assert_eq!(
        http(&address, "POST", "/api/index/books/queryControl/allow", "").0,
        200
    );
    assert_eq!(
        http(
            &address,
            "POST",
            "/api/index/books/planFreezeControl/freeze",
            ""
        )
        .0,
        200
    );
    let (_, body) = http(&address, "GET", "/api/index/books", "");
    assert_eq!(body["index"]["plan"]["frozen"], true);
    assert_eq!(
        http(
            &address,
            "POST",
            "/api/index/books/planFreezeControl/unfreeze",
            ""
        )
        .0,
        200
    );
    assert_eq!(
        http(&address, "POST", "/api/index/books/bogusControl/on", "").0,
        404
    );

    // A clean stop commits; the restarted node serves the same count from its checkpoints.
    assert_eq!(node.terminate(Duration::from_secs(20)), 0);
    drop(node);
    let node = start_node(dir.path(), &address);
    wait_count(&address, 2090);
    let (_, body) = http(&address, "GET", "/api/index/books/status", "");
    let applied: u64 = body["pindexes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["local"]["feed"]["applied"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        applied, 0,
        "resumed from checkpoints: no change applied again"
    );

    assert_eq!(http(&address, "DELETE", "/api/index/books", "").0, 200);
    wait_for(
        "the PIndex directories to go",
        Duration::from_secs(30),
        || {
            let left = std::fs::read_dir(dir.path().join("pindexes"))
                .map(|d| d.count())
                .unwrap_or(0);
            (left == 0).then_some(())
        },
    );
    drop(node);
}

#[test]
fn the_index_api_over_grpc_matches_rest() {
    use tessera_proto::v1::indexes_client::IndexesClient;
    use tessera_proto::v1::{ControlIndexRequest, IndexName, ListIndexesRequest, PutIndexRequest};
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let _node = start_node(dir.path(), &address);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = IndexesClient::connect(format!("http://{address}"))
            .await
            .unwrap();
        let put = |name: &str, json: &str| PutIndexRequest {
            name: name.into(),
            definition_json: json.into(),
        };
        let created = client
            .put_index(put("viagrpc", INDEX))
            .await
            .unwrap()
            .into_inner();
        let created: serde_json::Value = serde_json::from_str(&created.json).unwrap();
        assert_eq!(created["index"]["name"], "viagrpc");

        let bad = INDEX.replace(
            r#""year": {"type": "i64"}"#,
            r#""year": {"type": "integer"}"#,
        );
        let error = client.put_index(put("other", &bad)).await.unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        assert!(
            error.message().contains("params.mapping.fields.year.type"),
            "{}",
            error.message()
        );
        let again = client.put_index(put("viagrpc", INDEX)).await.unwrap_err();
        assert_eq!(
            again.code(),
            tonic::Code::FailedPrecondition,
            "creating twice needs prev_index_uuid"
        );

        let listed = client
            .list_indexes(ListIndexesRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(listed.json.contains("viagrpc"));
        let (_, rest) = http(&address, "GET", "/api/index/viagrpc", "");
        let via_grpc: serde_json::Value = serde_json::from_str(
            &client
                .get_index(IndexName {
                    name: "viagrpc".into(),
                })
                .await
                .unwrap()
                .into_inner()
                .json,
        )
        .unwrap();
        assert_eq!(via_grpc, rest, "gRPC answers what REST answers");

        let control = ControlIndexRequest {
            name: "viagrpc".into(),
            control: "queryControl".into(),
            action: "disallow".into(),
        };
        client.control_index(control).await.unwrap();
        let denied = client
            .count_index(IndexName {
                name: "viagrpc".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);

        client
            .delete_index(IndexName {
                name: "viagrpc".into(),
            })
            .await
            .unwrap();
        let gone = client
            .get_index(IndexName {
                name: "viagrpc".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(gone.code(), tonic::Code::NotFound);
    });
}

#[test]
fn pindex_files_no_plan_names_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let ghost = dir.path().join("pindexes").join("ghost_0-3");
    std::fs::create_dir_all(&ghost).unwrap();
    std::fs::write(ghost.join("meta.json"), "{}").unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let _node = start_node(dir.path(), &address);
    wait_for(
        "the unplanned PIndex directory removed",
        Duration::from_secs(30),
        || (!ghost.exists()).then_some(()),
    );
}
