//! One query's trace across two nodes: a test OTLP collector (a real gRPC server speaking the
//! OTLP trace service) receives the spans of both nodes; the query sent with a W3C
//! `traceparent` gets that trace id back in `x-trace-id`, and both nodes' spans — the
//! coordinator's phases and shard calls, the other node's request and local search — come
//! under it. With `--log-format json` and a low `--slow-query-ms`, the query's slow-query
//! line names the same trace.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{free_port, http, wait_for, wait_serving, Proc, BIN};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tessera_tests::etcd::EtcdCluster;

/// A span as the collector received it.
#[derive(Debug, Clone)]
struct Received {
    trace_id: String,
    name: String,
    node: Option<String>,
}

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Received>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    let node = span.attributes.iter().find(|a| a.key == "node").and_then(|a| {
                        match a.value.as_ref()?.value.as_ref()? {
                            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s) => Some(s.clone()),
                            _ => None,
                        }
                    });
                    let trace_id = span.trace_id.iter().map(|b| format!("{b:02x}")).collect();
                    received.push(Received {
                        trace_id,
                        name: span.name,
                        node,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A node exporting spans to `otlp`, logging JSON lines to `log`.
fn node(
    cfg: &str,
    dir: &std::path::Path,
    address: &str,
    otlp: &str,
    log: &std::path::Path,
) -> Proc {
    let log = std::fs::File::create(log).expect("log file");
    let child = std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args([
            "--cfg",
            cfg,
            "--log-format",
            "json",
            "--otlp-endpoint",
            otlp,
        ])
        .args(["node", "--bind", address, "--slow-query-ms", "1"])
        .env("TESSERA_LOG", "warn")
        // Spans go out in batches every 200 ms instead of every 5 s.
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start tessera");
    wait_serving(address);
    Proc(child)
}

/// A query with a `traceparent`; returns the status and the `x-trace-id` header.
fn traced_query(address: &str, traceparent: &str) -> (u16, Option<String>) {
    let body =
        r#"{"query": {"match_all": {}}, "consistency": {"level": "at_plus"}, "timeout_ms": 20000}"#;
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    let request = format!(
        "POST /api/index/docs/query HTTP/1.1\r\nHost: {address}\r\ntraceparent: {traceparent}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let trace_id = answer
        .lines()
        .find_map(|l| l.strip_prefix("x-trace-id: "))
        .map(|v| v.trim().to_string());
    (status, trace_id)
}

#[test]
fn one_query_is_one_trace_across_two_nodes() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let collector = Collector::default();
    let otlp_port = free_port();
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .serve(format!("127.0.0.1:{otlp_port}").parse().unwrap());
    runtime.spawn(server);
    let otlp = format!("http://127.0.0.1:{otlp_port}");

    let etcd = EtcdCluster::single();
    let cfg = etcd.cfg_spec("traces");
    let scratch = tempfile::tempdir().unwrap();
    let addresses: Vec<String> = (0..2)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let logs: Vec<_> = (0..2)
        .map(|i| scratch.path().join(format!("node{i}.log")))
        .collect();
    let _nodes: Vec<Proc> = (0..2)
        .map(|i| {
            let dir = scratch.path().join(format!("node{i}"));
            node(&cfg, &dir, &addresses[i], &otlp, &logs[i])
        })
        .collect();
    let a = &addresses[0];
    let (_, nodes) = wait_for("two nodes registered", Duration::from_secs(30), || {
        let (_, body) = http(a, "GET", "/api/nodes", "");
        (body["nodes"].as_array()?.len() == 2).then_some(((), body))
    });
    let uuids: BTreeSet<String> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["node"]["uuid"].as_str().map(str::to_string))
        .collect();
    assert_eq!(uuids.len(), 2, "{nodes}");
    let index = r#"{"type": "fulltext", "source": {"type": "tessera", "name": "docs", "partitions": 1024},
        "plan": {"max_partitions_per_pindex": 256, "replicas": 0}}"#;
    let (status, body) = http(a, "PUT", "/api/index/docs", index);
    assert_eq!(status, 200, "{body}");
    let bulk: String = (0..200)
        .map(|i| format!("{{\"key\":\"d{i}\",\"doc\":{{\"title\":\"doc {i}\"}}}}\n"))
        .collect();
    let (status, body) = http(a, "POST", "/api/source/docs/bulk", &bulk);
    assert_eq!(status, 200, "{body}");
    // Both nodes hold PIndexes of the index, so a query from `a` calls the other node.
    wait_for(
        "the index's PIndexes on both nodes",
        Duration::from_secs(60),
        || {
            let (_, plans) = http(a, "GET", "/api/plan", "");
            let holders: BTreeSet<String> = plans["plans"][0]["pindexes"]
                .as_array()?
                .iter()
                .flat_map(|p| p["copies"].as_array().cloned().unwrap_or_default())
                .filter_map(|c| c["node"].as_str().map(str::to_string))
                .collect();
            (holders == uuids).then_some(())
        },
    );

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let (status, returned) = traced_query(a, &format!("00-{trace}-00f067aa0ba902b7-01"));
    assert_eq!(status, 200);
    assert_eq!(
        returned.as_deref(),
        Some(trace),
        "x-trace-id names the caller's trace"
    );

    let spans = wait_for(
        "both nodes' spans of the query",
        Duration::from_secs(30),
        || {
            let spans: Vec<Received> = collector
                .0
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.trace_id == trace)
                .cloned()
                .collect();
            let nodes: BTreeSet<String> = spans.iter().filter_map(|s| s.node.clone()).collect();
            let names: BTreeSet<&str> = spans.iter().map(|s| s.name.as_str()).collect();
            // A request's span ends after its children (and after its answer is sent), so it
            // may come in a later export batch than they do: wait for the requests too.
            let complete = nodes == uuids
                && [
                    "statistics",
                    "search",
                    "shard statistics",
                    "shard search",
                    "local_search",
                    "POST /api/index/:name/query",
                    "/tessera.v1.Search/ShardSearch",
                ]
                .iter()
                .all(|n| names.contains(n));
            complete.then_some(spans)
        },
    );
    let names: BTreeSet<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains("POST /api/index/:name/query"), "{names:?}");
    assert!(
        names.contains("/tessera.v1.Search/ShardSearch"),
        "the other node's request: {names:?}"
    );

    // The slow-query line (every query is slow at 1 ms) names the trace.
    let line = wait_for("the slow-query log line", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&logs[0]).ok()?;
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["fields"]["message"] == "slow query" && l["fields"]["trace_id"] == trace)
    });
    assert_eq!(line["target"], "tessera::slow_query", "{line}");
    assert_eq!(line["fields"]["index"], "docs", "{line}");
    assert!(line["fields"]["search_ms"].as_f64().is_some(), "{line}");
    assert!(
        line["fields"]["request"]
            .as_str()
            .is_some_and(|r| r.contains("match_all")),
        "{line}"
    );
}
