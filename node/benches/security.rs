//! What security costs, in one run:
//!
//! 1. Authorising one request in-process, as the guard does it: the bearer token parsed, its
//!    record found (a map lookup and clone, as the key mirror does), one HMAC-SHA-256, the
//!    permission table and the roles. Target: p99 ≤ 50 µs.
//! 2. Query latency through one node, on the same documents, three ways: plain HTTP with auth
//!    off, plain HTTP with `--auth required` (a key per request), and TLS with mutual TLS on
//!    and `--auth required`; each on a kept-alive connection, and TLS again with a new
//!    connection (a full handshake) per query. Rounds interleave the three nodes so drift
//!    hits them alike.
//!
//! Run: `cargo bench -p tessera-node --bench security` (`SECURITY_BENCH_DOCS`, default 20000).

#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::{docs_from_env, free_port, spawn, Proc};
use tessera_auth::key;
use tessera_auth::permission::{rest_need, rest_target};

const ROUNDS: usize = 8;
const PER_ROUND: usize = 250;
const FRESH_CONNECTIONS: usize = 200;
const QUERY: &str = r#"{"query": {"match": {"field": "title", "query": "w7"}}, "size": 10}"#;

type Https = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

fn https_client(config: &std::sync::Arc<tessera_tls::rustls::ClientConfig>) -> Https {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((**config).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// One node under test: where it answers and with which key.
struct Target {
    name: &'static str,
    url: String,
    key: Option<String>,
    _proc: Proc,
}

async fn call(
    client: &Https,
    target: &Target,
    method: &str,
    path: &str,
    body: String,
) -> (u16, serde_json::Value) {
    let url = format!("{}{path}", target.url);
    support::request_as(client, target.key.as_deref(), method, &url, body).await
}

fn percentiles(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    (at(0.5), at(0.99))
}

fn auth_in_process() {
    let roles = [
        "searcher:books*".parse().expect("role"),
        "monitor".parse().expect("role"),
    ];
    let (token, record) = key::make("bench", &roles, 0, None).expect("key");
    // The mirror holds every key of the cluster; a thousand of them here.
    let mut mirror = HashMap::new();
    for i in 0..1000 {
        let (_, other) = key::make(&format!("k{i}"), &roles, 0, None).expect("key");
        mirror.insert(other.id.clone(), other);
    }
    mirror.insert(record.id.clone(), record);
    let header = format!("Bearer {token}");
    let mut times = Vec::with_capacity(200_000);
    for i in 0..200_000u64 {
        let started = Instant::now();
        let token = header.strip_prefix("Bearer ").expect("bearer");
        let id = key::id_of(token).expect("an id");
        let record = mirror.get(id).cloned().expect("known");
        let who = key::check(&record, token, i).expect("a good key");
        let template = "/api/index/{name}/query";
        let need = rest_need("POST", template).expect("in the table");
        let target = rest_target(template, "/api/index/books-7/query").expect("a name");
        let allowed = who.allows(need, target.as_deref());
        assert!(allowed);
        times.push(started.elapsed().as_nanos() as f64 / 1000.0);
    }
    let (p50, p99) = percentiles(times);
    println!("auth per request in-process (token, mirror lookup, HMAC-SHA-256, table, roles), 200k requests: p50 {p50:.2} µs, p99 {p99:.2} µs (target p99 <= 50 µs)");
}

fn main() {
    auth_in_process();

    let docs = docs_from_env("SECURITY_BENCH_DOCS", 20_000);
    let scratch = tempfile::tempdir().expect("scratch");
    let bin = env!("CARGO_BIN_EXE_tessera");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .args(args)
            .output()
            .expect("tessera");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ca = scratch.path().join("ca");
    run(&["cert", "ca", "--out", ca.to_str().unwrap()]);
    let ca_pem = std::fs::read(ca.join("ca.pem")).unwrap();

    let start = |name: &'static str, tls: bool, auth: bool| -> Target {
        let dir = scratch.path().join(name);
        let address = format!("127.0.0.1:{}", free_port());
        let mut args = vec!["node".to_string(), "--bind".into(), address.clone()];
        if auth {
            args.extend(["--auth".into(), "required".into()]);
        }
        if tls {
            let out = std::process::Command::new(bin)
                .arg("--data-dir")
                .arg(&dir)
                .args(["cert", "node", "--host", "127.0.0.1", "--ca"])
                .arg(&ca)
                .output()
                .expect("cert");
            assert!(out.status.success());
            let file = |f: &str| dir.join("tls").join(f).display().to_string();
            args.extend([
                "--tls-cert".into(),
                file("node.pem"),
                "--tls-key".into(),
                file("node.key"),
                "--tls-client-ca".into(),
                ca.join("ca.pem").display().to_string(),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let proc = spawn(&dir, &args, Some(&address));
        // The bootstrap key is written before the node serves.
        let key = auth.then(|| {
            std::fs::read_to_string(dir.join("bootstrap-admin.key"))
                .expect("the bootstrap key")
                .trim()
                .to_string()
        });
        let scheme = if tls { "https" } else { "http" };
        Target {
            name,
            url: format!("{scheme}://{address}"),
            key,
            _proc: proc,
        }
    };
    let targets = [
        start("plain, auth off", false, false),
        start("plain, auth required", false, true),
        start("TLS + mTLS, auth required", true, true),
    ];

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let config = tessera_tls::client::rustls_config(&ca_pem, None).expect("TLS client");
    let client = https_client(&config);
    let index = r#"{"type": "fulltext", "source": {"type": "tessera", "name": "books"}, "plan": {"index_partitions": 4},
        "params": {"mapping": {"fields": {"title": {"type": "text"}, "n": {"type": "i64"}}}}}"#;
    let body: String = (0..docs)
        .map(|i| {
            format!(
                "{{\"key\": \"d{i}\", \"doc\": {{\"title\": \"w{} w{} w{}\", \"n\": {i}}}}}\n",
                i % 13,
                i % 101,
                i % 997
            )
        })
        .collect();
    runtime.block_on(async {
        for target in &targets {
            let (status, answer) =
                call(&client, target, "PUT", "/api/index/books", index.into()).await;
            assert_eq!(status, 200, "{answer}");
            let (status, answer) =
                call(&client, target, "POST", "/api/source/books/bulk", body.clone()).await;
            assert_eq!(status, 200, "{answer}");
            let count = r#"{"query": {"match_all": {}}, "size": 0, "consistency": {"level": "at_plus"}, "timeout_ms": 60000}"#;
            let (status, answer) =
                call(&client, target, "POST", "/api/index/books/query", count.into()).await;
            assert_eq!(status, 200, "{answer}");
        }
        // Warm up every connection and cache.
        for target in &targets {
            for _ in 0..100 {
                call(&client, target, "POST", "/api/index/books/query", QUERY.into()).await;
            }
        }
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
        for _ in 0..ROUNDS {
            for (t, target) in targets.iter().enumerate() {
                for _ in 0..PER_ROUND {
                    let started = Instant::now();
                    let (status, _) =
                        call(&client, target, "POST", "/api/index/books/query", QUERY.into()).await;
                    times[t].push(started.elapsed().as_secs_f64() * 1000.0);
                    assert_eq!(status, 200);
                }
            }
        }
        println!(
            "query latency through one node, {docs} documents, {} queries each, kept-alive connection:",
            ROUNDS * PER_ROUND
        );
        for (target, times) in targets.iter().zip(times) {
            let (p50, p99) = percentiles(times);
            println!("  {:<28} p50 {p50:.3} ms, p99 {p99:.3} ms", target.name);
        }
        // A new connection per query: what a handshake adds.
        println!("query latency with a new connection per query, {FRESH_CONNECTIONS} queries:");
        for target in [&targets[1], &targets[2]] {
            let mut times = Vec::new();
            for _ in 0..FRESH_CONNECTIONS {
                let fresh = https_client(&config);
                let started = Instant::now();
                let (status, _) =
                    call(&fresh, target, "POST", "/api/index/books/query", QUERY.into()).await;
                times.push(started.elapsed().as_secs_f64() * 1000.0);
                assert_eq!(status, 200);
            }
            let (p50, p99) = percentiles(times);
            println!("  {:<28} p50 {p50:.3} ms, p99 {p99:.3} ms", target.name);
        }
    });
    drop(targets);
    std::thread::sleep(Duration::from_millis(100));
}
