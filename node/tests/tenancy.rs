//! Tenants stay apart (issue 31), on a real node with `--auth required`:
//!
//! - the reproductions: a key scoped to `books*` cannot define `books-x` over source
//!   `payroll` (REST and gRPC), cannot read `payroll` through an index someone else made
//!   over it (REST and gRPC, query and count); a source URL with `@` in its path cannot pass
//!   the dial check; made-up paths and methods do not grow `/metrics`;
//! - a property: for random keys with index globs and random definitions (source names,
//!   URLs, automatic recovery from a cluster) made through REST or gRPC by random keys, plus
//!   a restore under another name, no key ever reads a document of a source it holds no
//!   reading role on, through REST or gRPC, query or count — and every key that holds the
//!   roles reads exactly the index's documents (so the property is not met by refusing all).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::tenant::*;
use common::*;

/// A node with auth required and its bootstrap admin key.
#[test]
fn a_scoped_key_cannot_read_another_tenants_source() {
    let node = Node::start();
    let rt = runtime();
    node.fill("payroll", 3);
    let books_admin = node.key(&["index_admin:books*".into()]);

    // Reproduction 1: defining books-x over payroll, by REST and by gRPC.
    node.refused(
        &books_admin,
        "PUT",
        "/api/index/books-x",
        &index_body("payroll"),
        403,
        "source.name",
    );
    let refused = rt.block_on(grpc_put(
        &node.address,
        &books_admin,
        "books-x",
        &index_body("payroll"),
    ));
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.starts_with("PermissionDenied")),
        "{refused:?}"
    );
    let (status, _) = node.call(&node.admin, "GET", "/api/index/books-x", "");
    assert_eq!(status, 404, "nothing was saved");

    // An index someone else made over payroll: the books* key still cannot read it.
    let (status, body) = node.call(
        &node.admin,
        "PUT",
        "/api/index/books-pay",
        &index_body("payroll"),
    );
    assert_eq!(status, 200, "{body}");
    match rest_query(&node, &node.admin, "books-pay") {
        Read::Docs(ids) => assert_eq!(ids.len(), 3, "the admin reads them: {ids:?}"),
        other => panic!("admin: {other:?}"),
    }
    for read in [
        rest_query(&node, &books_admin, "books-pay"),
        rest_count(&node, &books_admin, "books-pay"),
    ] {
        assert!(
            matches!(&read, Read::Refused(why) if why.starts_with("403")),
            "{read:?}"
        );
    }
    for read in [
        rt.block_on(grpc_query(&node.address, &books_admin, "books-pay")),
        rt.block_on(grpc_count(&node.address, &books_admin, "books-pay")),
    ] {
        assert!(
            matches!(&read, Read::Refused(why) if why.starts_with("PermissionDenied")),
            "{read:?}"
        );
    }

    // Nor can it point that index at a source of its own (and read the old copies meanwhile).
    let (_, current) = node.call(&node.admin, "GET", "/api/index/books-pay", "");
    let mut moved: serde_json::Value = serde_json::from_str(&index_body("books-src")).unwrap();
    moved["prev_index_uuid"] = current["index"]["uuid"].clone();
    let (status, body) = node.call(
        &books_admin,
        "PUT",
        "/api/index/books-pay",
        &moved.to_string(),
    );
    assert_eq!(status, 403, "{body}");
    // A JetStream source's name is a label: the stream it names is what is read.
    let stream = serde_json::json!({"type": "fulltext", "source": {"type": "jetstream",
        "name": "books-j", "params": {"servers": ["nats://127.0.0.1:4222"], "stream": "PAYROLL",
        "subject_prefix": "payroll", "partitions": 4}}})
    .to_string();
    node.refused(
        &books_admin,
        "PUT",
        "/api/index/books-j",
        &stream,
        403,
        "source.name",
    );

    // Reproduction 2: `@` in a URL's path does not make another host look like this node.
    let sneaky = serde_json::json!({"type": "fulltext", "source": {"type": "tessera",
        "name": "books", "params": {"url": format!("http://127.0.0.2:9/@{}", node.address)}}})
    .to_string();
    let body = node.refused(
        &node.admin,
        "PUT",
        "/api/index/books-far",
        &sneaky,
        400,
        "source.params.url",
    );
    assert!(
        body["error"].as_str().unwrap_or("").contains("127.0.0.2:9"),
        "names the host dialled: {body}"
    );
    // Nor a `\\`, which NATS reads as the end of userinfo and HTTP clients as a path.
    let backslash = serde_json::json!({"type": "fulltext", "source": {"type": "jetstream",
        "name": "books", "params": {"servers": [format!("nats://{}\\@10.255.0.9:4222", node.address)],
        "stream": "D", "subject_prefix": "d", "partitions": 4}}})
    .to_string();
    node.refused(
        &node.admin,
        "PUT",
        "/api/index/books-bs",
        &backslash,
        400,
        "source.params.servers[0]",
    );
    // Credentials in URLs are refused (shown to every reader of the definition).
    let nats = serde_json::json!({"type": "fulltext", "source": {"type": "jetstream",
        "name": "books", "params": {"servers": [format!("nats://u:p@{}", node.address)],
        "stream": "D", "subject_prefix": "d", "partitions": 4}}})
    .to_string();
    node.refused(
        &node.admin,
        "PUT",
        "/api/index/books-nats",
        &nats,
        400,
        "source.params.servers[0]",
    );
    // Another cluster to recover from is dialled only where the node may dial.
    let recovering = serde_json::json!({"type": "fulltext", "source": {"type": "tessera",
        "name": "books"}, "recovery": {"auto_from": {"cluster": "http://10.255.0.9:9100"}}})
    .to_string();
    node.refused(
        &node.admin,
        "PUT",
        "/api/index/books-rec",
        &recovering,
        400,
        "recovery.auto_from.cluster",
    );
    node.refused(
        &node.admin,
        "POST",
        "/api/ctl/recovery",
        r#"{"from": {"cluster": "http://169.254.169.254:80"}}"#,
        400,
        "from.cluster",
    );
    // An uppercase scheme, which the peer pool would not strip, is refused.
    node.refused(
        &node.admin,
        "POST",
        "/api/ctl/recovery",
        &format!(r#"{{"from": {{"cluster": "HTTP://{}"}}}}"#, node.address),
        400,
        "from.cluster",
    );
    // Where a restore imports sources is dialled under the same rule.
    node.refused(
        &node.admin,
        "POST",
        "/api/backup/restore",
        r#"{"repo": "none", "snapshot": "s", "source_url": "http://169.254.169.254/"}"#,
        400,
        "source_url",
    );
}

/// Reproduction 3: requests no one may make, with made-up paths and methods, leave the
/// number of series on `/metrics` where it was.
#[test]
fn made_up_paths_and_methods_do_not_grow_the_metrics() {
    let node = Node::start();
    let monitor = node.key(&["monitor".into()]);
    let series = || -> std::collections::BTreeSet<String> {
        let text = tessera_metrics_text(&node.address, &monitor);
        text.lines()
            .filter(|l| l.starts_with("tessera_") && (l.contains("http") || l.contains("grpc")))
            .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series.to_string()))
            .collect()
    };
    let rt = runtime();
    // `rounds` made-up gRPC methods and `rounds` made-up HTTP methods on made-up paths, from
    // `first` on (each a new name).
    let flood = |first: u32, rounds: u32| {
        rt.block_on(async {
            let channel = channel(&node.address).await;
            let mut grpc = tonic::client::Grpc::new(channel);
            for i in first..first + rounds {
                grpc.ready().await.unwrap();
                let path = format!("/tessera.v1.Search/m{i:x}");
                let path = tonic::codegen::http::uri::PathAndQuery::try_from(path).unwrap();
                let codec = tonic_prost::ProstCodec::<(), ()>::default();
                let answer = grpc.unary(tonic::Request::new(()), path, codec).await;
                assert!(answer.is_err(), "an unknown method answers an error");
            }
        });
        for i in first..first + rounds {
            use std::io::{Read, Write};
            let method = format!("M{i:X}");
            let path = format!("/api/r{i}/{}", i * 7);
            // Each on its own connection: a made-up method may close the connection.
            let request =
                format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut conn = std::net::TcpStream::connect(&node.address).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            conn.write_all(request.as_bytes()).unwrap();
            let mut answer = Vec::new();
            let _ = conn.read_to_end(&mut answer);
            assert!(
                answer.starts_with(b"HTTP/1.1 4"),
                "{method} {path}: {}",
                String::from_utf8_lossy(&answer)
            );
        }
    };
    // The first of each kind may add its one series (`unknown`, `OTHER`); no more after it.
    flood(0, 1);
    series(); // the scrape's own series
    let before = series();
    flood(1, 5_000);
    let after = series();
    let grown: Vec<&String> = after.difference(&before).collect();
    let shown: Vec<&&String> = grown.iter().take(5).collect();
    assert!(
        grown.is_empty(),
        "10,000 made-up requests added {} request series, such as {shown:?}",
        grown.len()
    );
}

fn tessera_metrics_text(address: &str, key: &str) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(address).unwrap();
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
}

/// A small seeded generator (xorshift), so a failing case can be run again by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const SOURCES: [&str; 4] = ["books", "books-src", "payroll", "news"];
const GLOBS: [&str; 7] = ["books*", "b*", "pay*", "news", "*s", "books-src", "p?y*"];
const INDEXES: [&str; 6] = ["books-a", "books-b", "pay-x", "news-1", "b-pay", "restored"];

/// Whether roles allow reading `index`'s documents from `source` as README says: a reading
/// role (searcher, index_admin, admin) matching the index, and one matching the source.
fn may_read(roles: &[String], index: &str, source: &str) -> bool {
    let parsed: Vec<tessera_auth::Role> = roles.iter().map(|r| r.parse().unwrap()).collect();
    let reads = |name: &str| {
        parsed
            .iter()
            .any(|r| r.allows(tessera_auth::Need::Query, Some(name)))
    };
    reads(index) && reads(source)
}

#[test]
fn no_key_reads_a_source_it_holds_no_role_on() {
    let seed = std::env::var("TESSERA_TENANCY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let mut rng = Rng(seed);
    let node = Node::start();
    let rt = runtime();
    for source in SOURCES {
        node.fill(source, 3);
    }
    // Random keys: one or two roles each over random globs.
    let mut keys: Vec<(Vec<String>, String)> = Vec::new();
    for _ in 0..6 {
        let mut roles = Vec::new();
        for _ in 0..1 + rng.next() % 2 {
            let kind = rng.pick(&["searcher", "index_admin", "ingest"]);
            roles.push(format!("{kind}:{}", rng.pick(&GLOBS)));
        }
        let key = node.key(&roles);
        keys.push((roles, key));
    }
    keys.push((vec!["admin".into()], node.admin.clone()));
    let admin_at = keys.len() - 1;

    // Random definitions by random keys, by REST or gRPC: some accepted, most refused.
    let mut defined: BTreeMap<String, String> = BTreeMap::new();
    for round in 0..24 {
        let (roles, key) = rng.pick(&keys).clone();
        let index = *rng.pick(&INDEXES[..5]);
        let source = *rng.pick(&SOURCES);
        let mut body: serde_json::Value = serde_json::from_str(&index_body(source)).unwrap();
        if rng.chance(20) {
            let url = *rng.pick(&[
                "http://169.254.169.254/",
                "http://127.0.0.2:9/@127.0.0.1:1",
                "http://u:p@127.0.0.1:1/",
            ]);
            body["source"]["params"] = serde_json::json!({ "url": url });
        }
        if rng.chance(15) {
            body["recovery"] =
                serde_json::json!({"auto_from": {"cluster": "http://169.254.169.254:80"}});
        }
        if let Some(existing) = defined.get(index) {
            let (_, current) = node.call(&node.admin, "GET", &format!("/api/index/{index}"), "");
            body["prev_index_uuid"] = current["index"]["uuid"].clone();
            let _ = existing;
        }
        let body = body.to_string();
        let accepted = if rng.chance(50) {
            node.call(&key, "PUT", &format!("/api/index/{index}"), &body)
                .0
                == 200
        } else {
            rt.block_on(grpc_put(&node.address, &key, index, &body))
                .is_ok()
        };
        if accepted {
            assert!(
                roles.iter().any(|r| r == "admin") || may_read(&roles, index, source),
                "seed {seed}, round {round}: {roles:?} defined {index} over {source}"
            );
            defined.insert(index.to_string(), source.to_string());
        }
    }
    // Make sure both kinds exist: an index over another tenant's source by the admin.
    let cross = format!(
        "{{\"type\": \"fulltext\", \"source\": {{\"type\": \"tessera\", \"name\": \"payroll\"}}, \"plan\": {{\"index_partitions\": 2, \"replicas\": 0}}{}}}",
        match defined.get("books-b") {
            Some(_) => {
                let (_, current) = node.call(&node.admin, "GET", "/api/index/books-b", "");
                format!(", \"prev_index_uuid\": {}", current["index"]["uuid"])
            }
            None => String::new(),
        }
    );
    let (status, body) = node.call(&node.admin, "PUT", "/api/index/books-b", &cross);
    assert_eq!(status, 200, "{body}");
    defined.insert("books-b".into(), "payroll".into());

    // A restore under another name keeps the saved source: a snapshot of books-b (over
    // payroll) restored as `restored`.
    let location = node.dir.path().join("backups/repo");
    std::fs::create_dir_all(&location).unwrap();
    let repo = serde_json::json!({"type": "fs", "location": location.to_str().unwrap()});
    let (status, body) = node.call(&node.admin, "PUT", "/api/backup/repos/r", &repo.to_string());
    assert_eq!(status, 200, "{body}");
    match rest_query(&node, &node.admin, "books-b") {
        Read::Docs(ids) => assert_eq!(ids.len(), 3, "{ids:?}"),
        other => panic!("{other:?}"),
    }
    let (status, body) = node.call(
        &node.admin,
        "POST",
        "/api/backup/repos/r/snapshots",
        r#"{"indexes": ["books-b"]}"#,
    );
    assert!(status == 200 || status == 202, "{status} {body}");
    let job = body["id"].as_str().expect("a job id").to_string();
    // A backup job's id is its snapshot's.
    wait_for("the backup", Duration::from_secs(60), || {
        let (_, shown) = node.call(&node.admin, "GET", &format!("/api/backup/jobs/{job}"), "");
        match shown["job"]["status"].as_str() {
            Some("running") | None => None,
            Some("completed") => Some(()),
            Some(other) => panic!("backup {other}: {shown}"),
        }
    });
    let snapshot = job;
    let restore = serde_json::json!({"repo": "r", "snapshot": snapshot, "indexes": ["books-b"],
        "rename": {"books-b": "restored"}});
    let (status, body) = node.call(
        &node.admin,
        "POST",
        "/api/backup/restore",
        &restore.to_string(),
    );
    assert!(status == 200 || status == 202, "{status} {body}");
    defined.insert("restored".into(), "payroll".into());

    // Every key, every index, every route: documents only of sources the key may read, and
    // all of them when it may.
    for (k, (roles, key)) in keys.iter().enumerate() {
        for (index, source) in &defined {
            let allowed = k == admin_at || may_read(roles, index, source);
            let expected: Vec<String> = (0..3).map(|i| format!("{source}:{i}")).collect();
            let case = format!("seed {seed}: key {roles:?} on {index} (source {source})");
            let reads = [
                ("REST query", rest_query(&node, key, index)),
                ("REST count", rest_count(&node, key, index)),
                (
                    "gRPC Query",
                    rt.block_on(grpc_query(&node.address, key, index)),
                ),
                (
                    "gRPC CountIndex",
                    rt.block_on(grpc_count(&node.address, key, index)),
                ),
            ];
            for (route, read) in reads {
                match (allowed, read) {
                    (true, Read::Docs(ids)) => assert_eq!(ids, expected, "{case}, {route}"),
                    (true, Read::Count(n)) => {
                        // Counts route from the plan without waiting: poll until complete.
                        if n != 3 {
                            wait_for(
                                &format!("{case}, {route} = 3"),
                                Duration::from_secs(30),
                                || {
                                    matches!(rest_count(&node, key, index), Read::Count(3))
                                        .then_some(())
                                },
                            );
                        }
                    }
                    (false, Read::Refused(why)) => assert!(
                        why.starts_with("403") || why.starts_with("PermissionDenied"),
                        "{case}, {route}: {why}"
                    ),
                    (allowed, read) => panic!("{case}, {route}: allowed {allowed}, got {read:?}"),
                }
            }
        }
    }
}
