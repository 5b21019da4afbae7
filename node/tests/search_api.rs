//! The query API on one node: the quickstart's sample data set loads and answers every query
//! form; bad requests answer 400 naming the field (and the position in a query string); huge
//! sizes are capped with a warning; a disallowed index answers 403, a deleted one 404, a
//! blackhole index 400; `at_plus` past the source answers 504 naming the partition; past the
//! concurrency cap, 429; gRPC `Query` answers what REST answers.

mod common;

use std::time::Duration;

use common::{free_port, http, serve, wait_for, Proc};

fn start(dir: &std::path::Path, address: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["node", "--bind", address, "--lease-ttl-ms", "2000"];
    args.extend_from_slice(extra);
    serve(dir, &args, address)
}

fn repo_file(path: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn query(address: &str, body: &str) -> (u16, serde_json::Value) {
    http(address, "POST", "/api/index/books/query", body)
}

/// Loads the sample data set into `books` and waits until all of it is searchable.
fn load_books(address: &str) -> u64 {
    let (status, body) = http(
        address,
        "PUT",
        "/api/index/books",
        &repo_file("examples/data/books-index.json"),
    );
    assert_eq!(status, 200, "{body}");
    let data = repo_file("examples/data/books.ndjson");
    let lines = data.lines().count() as u64;
    let (status, body) = http(address, "POST", "/api/source/books/bulk", &data);
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(lines)),
        "{body}"
    );
    let body = r#"{"query": {"match_all": {}}, "size": 0, "consistency": {"level": "at_plus"}, "timeout_ms": 60000}"#;
    wait_for(
        "the sample data set searchable",
        Duration::from_secs(60),
        || {
            let (status, answer) = query(address, body);
            (status == 200 && answer["total_hits"].as_u64() == Some(lines)).then_some(())
        },
    );
    lines
}

#[test]
fn the_query_api_answers_and_refuses_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let _node = start(dir.path(), &address, &[]);
    let docs = load_books(&address);
    assert!(docs >= 2000, "the sample data set has {docs} documents");

    // Every query form finds something, with stored fields.
    for q in [
        r#"{"match": {"field": "title", "query": "rust"}}"#,
        r#"{"term": {"field": "publisher", "value": "Lambda House"}}"#,
        r#"{"phrase": {"field": "description", "query": "inverted indexes"}}"#,
        r#"{"range": {"field": "published", "gte": "2020-01-01T00:00:00Z", "lt": "2021-01-01T00:00:00Z"}}"#,
        r#"{"range": {"field": "rating", "gte": 4.5}}"#,
        r#"{"bool": {"must": [{"match": {"field": "title", "query": "rust"}}], "must_not": [{"range": {"field": "year", "lt": 2020}}]}}"#,
        r#"{"query_string": "title:rust +year:>2020"}"#,
    ] {
        let (status, body) = query(&address, &format!(r#"{{"query": {q}, "size": 3}}"#));
        assert_eq!(status, 200, "{q}: {body}");
        assert!(
            body["total_hits"].as_u64() > Some(0),
            "{q} found nothing: {body}"
        );
        assert_eq!(body["status"]["failed"], 0);
        let hit = &body["hits"][0];
        assert!(
            hit["fields"]["title"].is_string() && hit["fields"]["year"].is_i64(),
            "{hit}"
        );
    }
    // Paging: page two follows page one.
    let page = |from: usize| {
        let body = format!(
            r#"{{"query": {{"match": {{"field": "title", "query": "rust"}}}}, "size": 5, "from": {from}}}"#
        );
        let (_, answer) = query(&address, &body);
        answer["hits"].as_array().cloned().unwrap_or_default()
    };
    let (one, two, both) = (page(0), page(5), {
        let (_, answer) = query(
            &address,
            r#"{"query": {"match": {"field": "title", "query": "rust"}}, "size": 10}"#,
        );
        answer["hits"].as_array().cloned().unwrap_or_default()
    });
    assert_eq!([one, two].concat(), both);

    // Bad input.
    let (status, body) = query(&address, r#"{"query": {"query_string": "title:(rust"}}"#);
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("query.query_string")),
        "{body}"
    );
    assert_eq!(body["position"], 11, "{body}");
    let (status, body) = query(
        &address,
        r#"{"query": {"match": {"field": "titel", "query": "x"}}}"#,
    );
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("query.match.field")),
        "{body}"
    );
    let (status, body) = query(&address, r#"{"query": {"match_all": {}}, "sort": "year"}"#);
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("sort")),
        "{body}"
    );
    let (status, body) = query(
        &address,
        r#"{"query": {"match_all": {}}, "size": 100000000}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body["warnings"][0]
            .as_str()
            .unwrap_or_default()
            .contains("capped"),
        "{body}"
    );
    assert_eq!(
        body["hits"].as_array().map(Vec::len),
        Some(docs.min(10_000) as usize)
    );

    // at_plus beyond what the source has: 504 naming the partition.
    let (status, body) = query(
        &address,
        r#"{"query": {"match_all": {}}, "consistency": {"level": "at_plus", "vectors": {"7": 1000000}}, "timeout_ms": 300}"#,
    );
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["behind"]["7"]["wanted"], 1000000, "{body}");
    assert!(
        body.get("hits").is_none(),
        "an error answer carries no hits: {body}"
    );
    // ... unless partial results are allowed.
    let (status, body) = query(
        &address,
        r#"{"query": {"match_all": {}}, "consistency": {"level": "at_plus", "vectors": {"7": 1000000}}, "timeout_ms": 300, "allow_partial_results": true}"#,
    );
    assert_eq!(
        (status, body["status"]["failed"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    assert!(
        body["status"]["errors"]
            .as_object()
            .is_some_and(|e| e.len() == 1),
        "{body}"
    );

    // Query control.
    let (status, _) = http(
        &address,
        "POST",
        "/api/index/books/queryControl/disallow",
        "",
    );
    assert_eq!(status, 200);
    let (status, _) = query(&address, r#"{"query": {"match_all": {}}}"#);
    assert_eq!(status, 403);
    http(&address, "POST", "/api/index/books/queryControl/allow", "");

    // gRPC answers what REST answers.
    let body = r#"{"query": {"match": {"field": "title", "query": "rust"}}, "size": 5}"#;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let via_grpc = runtime.block_on(async {
        let mut client =
            tessera_proto::v1::search_client::SearchClient::connect(format!("http://{address}"))
                .await
                .unwrap();
        let reply = client
            .query(tessera_proto::v1::QueryRequest {
                index: "books".into(),
                body_json: body.into(),
            })
            .await
            .unwrap()
            .into_inner();
        let bad = client
            .query(tessera_proto::v1::QueryRequest {
                index: "nope".into(),
                body_json: body.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(bad.code(), tonic::Code::NotFound);
        serde_json::from_str::<serde_json::Value>(&reply.json).unwrap()
    });
    let (_, via_rest) = query(&address, body);
    assert_eq!(via_grpc["hits"], via_rest["hits"]);

    // A blackhole index cannot be searched; a deleted index is gone.
    let (status, _) = http(
        &address,
        "PUT",
        "/api/index/void",
        r#"{"type": "blackhole", "source": {"type": "tessera", "name": "books"}}"#,
    );
    assert_eq!(status, 200);
    let (status, body) = http(
        &address,
        "POST",
        "/api/index/void/query",
        r#"{"query": {"match_all": {}}}"#,
    );
    assert_eq!(status, 400, "{body}");
    let (status, _) = http(&address, "DELETE", "/api/index/books", "");
    assert_eq!(status, 200);
    let (status, body) = query(&address, r#"{"query": {"match_all": {}}}"#);
    assert_eq!(status, 404, "{body}");
}

#[test]
fn past_the_concurrency_cap_queries_answer_429() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let _node = start(dir.path(), &address, &["--max-concurrent-queries", "1"]);
    load_books(&address);
    // One query holds the only slot while it waits for a seq that never comes (it asks again
    // if it meets one of the probes below in the slot).
    let holder = {
        let address = address.clone();
        std::thread::spawn(move || loop {
            let answer = query(
                &address,
                r#"{"query": {"match_all": {}}, "consistency": {"level": "at_plus", "vectors": {"3": 1000000}}, "timeout_ms": 5000}"#,
            );
            if answer.0 != 429 {
                return answer;
            }
        })
    };
    let (_, body) = wait_for(
        "a 429 while the slot is held",
        Duration::from_secs(5),
        || {
            let (status, body) = query(&address, r#"{"query": {"match_all": {}}}"#);
            (status == 429).then_some((status, body))
        },
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("limit of 1"),
        "{body}"
    );
    assert_eq!(holder.join().unwrap().0, 504);
    // The slot is free again.
    let (status, _) = query(&address, r#"{"query": {"match_all": {}}}"#);
    assert_eq!(status, 200);
}
