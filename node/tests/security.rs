//! Auth end to end on a real node started with `--auth required`: every REST route and gRPC
//! method of the permission table without credentials (401 / `Unauthenticated`), with a key
//! whose roles do not allow it (403 / `PermissionDenied`), and with one whose roles do (it goes
//! on); keys scoped to indexes; expired, revoked and forged keys; the nodes' own services
//! refused to anything but a node; the audit log; a non-loopback bind without `--auth`.

mod common;

use std::time::Duration;

use common::*;
use tessera_auth::permission::{GRPC, REST};
use tessera_auth::Need;

/// A node with auth required, and keys of every role.
struct Secured {
    _dir: tempfile::TempDir,
    _node: Proc,
    address: String,
    data_dir: std::path::PathBuf,
    admin: String,
    monitor: String,
    operator: String,
    /// `searcher:books*`
    searcher: String,
    /// `index_admin:books*`
    index_admin: String,
    /// `ingest:books`
    ingest: String,
    /// The node's own key (role `node`), from its data dir.
    node: String,
}

impl Secured {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let node = serve(
            dir.path(),
            &["node", "--bind", &address, "--auth", "required"],
            &address,
        );
        let read = |file: &str| {
            std::fs::read_to_string(dir.path().join(file))
                .unwrap_or_else(|e| panic!("{file}: {e}"))
                .trim()
                .to_string()
        };
        let admin = read("bootstrap-admin.key");
        let node_key = read("node-api-key");
        let make = |role: &str| {
            let body = serde_json::json!({"name": "t", "roles": [role]}).to_string();
            let (status, answer) = http_as(&address, &admin, "POST", "/api/keys", &body);
            assert_eq!(status, 201, "{answer}");
            answer["key"].as_str().unwrap().to_string()
        };
        Self {
            monitor: make("monitor"),
            operator: make("operator"),
            searcher: make("searcher:books*"),
            index_admin: make("index_admin:books*"),
            ingest: make("ingest:books"),
            node: node_key,
            admin,
            data_dir: dir.path().to_path_buf(),
            address,
            _dir: dir,
            _node: node,
        }
    }

    /// A key whose roles allow `need` on `books*`.
    fn right(&self, need: Need) -> &str {
        match need {
            Need::Open | Need::Admin => &self.admin,
            Need::Monitor => &self.monitor,
            Need::IndexRead | Need::Query => &self.searcher,
            Need::IndexAdmin => &self.index_admin,
            Need::Ingest => &self.ingest,
            Need::Operator => &self.operator,
            Need::Node => &self.node,
        }
    }

    /// A valid key whose roles do not allow `need`.
    fn wrong(&self, need: Need) -> &str {
        match need {
            Need::Monitor | Need::IndexAdmin | Need::Ingest => &self.searcher,
            Need::IndexRead => &self.ingest,
            Need::Query | Need::Operator => &self.monitor,
            Need::Admin => &self.operator,
            Need::Node => &self.admin,
            Need::Open => unreachable!("nothing is refused an open call"),
        }
    }
}

/// A route template as a path: calls that change things aim at an index that does not exist
/// (`books-x`, still inside the scoped keys' `books*`), so the matrix changes nothing.
fn path_of(template: &str, need: Need) -> String {
    let name = if need == Need::IndexAdmin {
        "books-x"
    } else {
        "books"
    };
    template
        .replace("{name}", name)
        .replace("{id}", "nope")
        .replace("{key}", "k1")
        .replace("{control}", "ingest")
        .replace("{action}", "pause")
}

#[test]
fn every_rest_route_answers_by_the_callers_key() {
    let s = Secured::start();
    let denied = |status: u16| status == 401 || status == 403;
    for (method, template, need) in REST {
        let path = path_of(template, *need);
        let call = format!("{method} {path}");
        let (status, body) = try_http(&s.address, method, &path, "").expect("connect");
        if *need == Need::Open {
            assert!(!denied(status), "{call} is open: {status} {body}");
            continue;
        }
        assert_eq!(status, 401, "{call} without credentials: {body}");
        assert!(body["error"].is_string(), "{call}: a JSON error: {body}");
        let (status, body) = http_as(&s.address, s.wrong(*need), method, &path, "");
        assert_eq!(status, 403, "{call} with a key lacking {need:?}: {body}");
        let (status, body) = http_as(&s.address, s.right(*need), method, &path, "");
        assert!(
            !denied(status),
            "{call} with a {need:?} key: {status} {body}"
        );
    }

    // A HEAD is the GET it stands for.
    assert_eq!(
        try_http(&s.address, "HEAD", "/api/nodes", "").unwrap().0,
        401
    );
    assert_eq!(
        http_as(&s.address, &s.monitor, "HEAD", "/api/nodes", "").0,
        200
    );

    // Scoped keys: their globs, not other indexes.
    let q = r#"{"query": {"match_all": {}}}"#;
    let (status, _) = http_as(&s.address, &s.searcher, "POST", "/api/index/news/query", q);
    assert_eq!(status, 403, "a searcher of books* queries news");
    let (status, _) = http_as(&s.address, &s.index_admin, "DELETE", "/api/index/news", "");
    assert_eq!(status, 403, "an index admin of books* deletes news");
    let (status, _) = http_as(&s.address, &s.ingest, "POST", "/api/source/news/bulk", "");
    assert_eq!(status, 403, "an ingester of books writes to news");

    // A definition cannot make the nodes dial anywhere: only cluster nodes and --dial-allow.
    for (source, field) in [
        (
            r#"{"type": "tessera", "name": "docs", "params": {"url": "http://169.254.169.254:80"}}"#,
            "source.params.url",
        ),
        (
            r#"{"type": "jetstream", "name": "docs", "params": {"servers": ["nats://10.9.8.7:4222"], "stream": "D", "subject_prefix": "d", "partitions": 4}}"#,
            "source.params.servers[0]",
        ),
    ] {
        let def = format!(r#"{{"type": "fulltext", "source": {source}}}"#);
        let (status, body) = http_as(&s.address, &s.admin, "PUT", "/api/index/books-far", &def);
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some(field)),
            "{body}"
        );
        let (status, _) = http_as(&s.address, &s.admin, "GET", "/api/index/books-far", "");
        assert_eq!(status, 404, "nothing saved");
    }

    // An index made, fed and queried, each by the key whose role it is.
    let def = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/data/books-index.json"),
    )
    .unwrap();
    let (status, body) = http_as(&s.address, &s.index_admin, "PUT", "/api/index/books", &def);
    assert_eq!(status, 200, "{body}");
    let docs = r#"{"key": "b1", "doc": {"title": "Rust in anger", "pages": 300}}"#;
    let (status, body) = http_as(
        &s.address,
        &s.ingest,
        "POST",
        "/api/source/books/bulk",
        docs,
    );
    assert_eq!(status, 200, "{body}");
    // The node's feeds read its source as a node: the document arrives.
    let q =
        r#"{"query": {"match_all": {}}, "consistency": {"level": "at_plus"}, "timeout_ms": 30000}"#;
    let (status, body) = http_as(&s.address, &s.searcher, "POST", "/api/index/books/query", q);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total_hits"], 1, "{body}");
}

#[test]
fn expired_revoked_and_forged_keys_are_refused() {
    let s = Secured::start();
    let make = |body: &str| {
        let (status, answer) = http_as(&s.address, &s.admin, "POST", "/api/keys", body);
        assert_eq!(status, 201, "{answer}");
        answer
    };
    let ok = |key: &str| http_as(&s.address, key, "GET", "/api/cluster/health", "").0;

    // Bad input names its field and saves nothing.
    for (body, field) in [
        (r#"{"name": "x", "roles": ["root"]}"#, "roles[0]"),
        (r#"{"name": "x", "roles": ["node"]}"#, "roles[0]"),
        (r#"{"name": "x", "roles": []}"#, "roles"),
        (
            r#"{"name": "x", "roles": ["monitor"], "expires": "3w"}"#,
            "expires",
        ),
        (r#"{"name": "9 lives", "roles": ["monitor"]}"#, "name"),
        (r#"{"name": "x", "roles": ["monitor"], "admin": true}"#, ""),
    ] {
        let (status, answer) = http_as(&s.address, &s.admin, "POST", "/api/keys", body);
        assert_eq!(status, 400, "{body}: {answer}");
        if !field.is_empty() {
            assert_eq!(answer["field"], field, "{body}: {answer}");
        }
    }
    let (_, listed) = http_as(&s.address, &s.admin, "GET", "/api/keys", "");
    assert_eq!(
        listed["keys"].as_array().unwrap().len(),
        7,
        "bootstrap, node and 5 keys: {listed}"
    );
    assert!(
        !listed.to_string().contains("hash") && !listed.to_string().contains("salt"),
        "{listed}"
    );

    // Expired.
    let short = make(r#"{"name": "short", "roles": ["monitor"], "expires": "2s"}"#);
    let short_key = short["key"].as_str().unwrap();
    assert_eq!(ok(short_key), 200);
    wait_for("the 2 s key to expire", Duration::from_secs(15), || {
        (ok(short_key) == 401).then_some(())
    });

    // Revoked: refused within moments, and listed as revoked.
    let gone = make(r#"{"name": "gone", "roles": ["monitor"]}"#);
    let gone_key = gone["key"].as_str().unwrap();
    assert_eq!(ok(gone_key), 200);
    let id = gone["id"].as_str().unwrap();
    let (status, body) = http_as(
        &s.address,
        &s.admin,
        "DELETE",
        &format!("/api/keys/{id}"),
        "",
    );
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("revoked")),
        "{body}"
    );
    wait_for(
        "the revoked key to be refused",
        Duration::from_secs(10),
        || (ok(gone_key) == 401).then_some(()),
    );
    let (status, _) = http_as(
        &s.address,
        &s.admin,
        "DELETE",
        "/api/keys/0000000000000000",
        "",
    );
    assert_eq!(status, 404);

    // Forged: a known id with another secret; not a key at all.
    let forged = format!("tsk_{}_{}", &s.monitor[4..20], "0".repeat(64));
    assert_eq!(ok(&forged), 401);
    assert_eq!(ok("hunter2"), 401);

    // The audit log: denied calls and key changes, one JSON line each, naming who.
    let audit = std::fs::read_to_string(s.data_dir.join("audit/audit.log")).unwrap();
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let revoked = lines
        .iter()
        .find(|l| l["event"] == 20501 && l["route"] == "DELETE /api/keys/{id}")
        .expect("the revocation audited");
    assert_eq!(
        revoked["identity"].as_str().unwrap(),
        format!("key:{}:bootstrap-admin", &s.admin[4..20])
    );
    assert!(
        lines.iter().any(|l| l["event"] == 20001
            && l["outcome"] == 401
            && l["route"] == "GET /api/cluster/health"),
        "the refused calls audited"
    );
    let mode = std::fs::metadata(s.data_dir.join("bootstrap-admin.key"))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
}

/// One gRPC call of `path` with an empty message (whatever the method's types: an empty
/// message decodes as any), as `key`. A call let through that does not answer within 5 s (a
/// stream waiting for changes) counts as let through.
async fn grpc_call(address: &str, path: &str, key: Option<&str>) -> Result<(), tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(());
    if let Some(key) = key {
        let value = format!("Bearer {key}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
    }
    let path = tonic::codegen::http::uri::PathAndQuery::try_from(path.to_string()).unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    match tokio::time::timeout(Duration::from_secs(5), grpc.unary(request, path, codec)).await {
        Ok(answer) => answer.map(drop),
        Err(_) => Ok(()),
    }
}

#[test]
fn every_grpc_method_answers_by_the_callers_key() {
    let s = Secured::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use tonic::Code;
        let denied = |r: &Result<(), tonic::Status>| {
            r.as_ref()
                .err()
                .is_some_and(|e| matches!(e.code(), Code::Unauthenticated | Code::PermissionDenied))
        };
        for (path, need) in GRPC {
            let anonymous = grpc_call(&s.address, path, None).await;
            if *need == Need::Open {
                assert!(!denied(&anonymous), "{path} is open: {anonymous:?}");
                continue;
            }
            let code = anonymous.as_ref().err().map(|e| e.code());
            assert_eq!(
                code,
                Some(Code::Unauthenticated),
                "{path} without credentials"
            );
            let wrong = grpc_call(&s.address, path, Some(s.wrong(*need))).await;
            let code = wrong.as_ref().err().map(|e| e.code());
            assert_eq!(
                code,
                Some(Code::PermissionDenied),
                "{path} lacking {need:?}"
            );
            // The API services' scoped calls name their index in the message (empty here):
            // an admin key goes on; scoped keys are checked by name below.
            let scoped = matches!(need, Need::IndexRead | Need::Query | Need::IndexAdmin);
            let key = if scoped { &s.admin } else { s.right(*need) };
            let right = grpc_call(&s.address, path, Some(key)).await;
            assert!(!denied(&right), "{path} with a {need:?} key: {right:?}");
        }

        // Scoped by the message's index.
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", s.address))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let count = |key: &str, name: &str| {
            let mut client = tessera_proto::v1::indexes_client::IndexesClient::new(channel.clone());
            let mut request = tonic::Request::new(tessera_proto::v1::IndexName {
                name: name.to_string(),
            });
            let value = format!("Bearer {key}").parse().unwrap();
            request.metadata_mut().insert("authorization", value);
            async move { client.count_index(request).await }
        };
        let news = count(&s.searcher, "news").await.unwrap_err();
        assert_eq!(news.code(), Code::PermissionDenied, "{news:?}");
        let books = count(&s.searcher, "books").await.unwrap_err();
        assert_eq!(books.code(), Code::NotFound, "books* allowed: {books:?}");
    });
}

#[test]
fn a_node_reachable_from_other_hosts_needs_auth_said() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("0.0.0.0:{}", free_port());
    let out = std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["node", "--bind", &address])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("--auth required") && stderr.contains("--auth off"),
        "{stderr}"
    );
}
