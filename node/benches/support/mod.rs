//! What the node benchmarks share: child processes killed on drop, free ports, a keep-alive
//! HTTP client with TCP_NODELAY.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `tessera --data-dir DIR ARGS...`; waits until `address` listens when given.
/// With `BENCH_LOG_DIR` set, each process logs at `info` into a file there named after its data
/// dir (for finding where time goes).
pub fn spawn(dir: &std::path::Path, args: &[&str], address: Option<&str>) -> Proc {
    let log = std::env::var_os("BENCH_LOG_DIR").and_then(|logs| {
        let name = dir.file_name()?.to_os_string();
        std::fs::File::create(std::path::Path::new(&logs).join(name)).ok()
    });
    let level = if log.is_some() { "info" } else { "warn" };
    let child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("TESSERA_LOG", level)
        .stdout(Stdio::null())
        .stderr(log.map_or_else(Stdio::null, Stdio::from))
        .spawn()
        .expect("start tessera");
    if let Some(address) = address {
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(address).is_err() {
            assert!(Instant::now() < deadline, "nothing listens on {address}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Proc(child)
}

/// A standalone source with 64 partitions on a free port, its data in `scratch/source`; returns
/// its address.
pub fn start_source(scratch: &std::path::Path) -> (String, Proc) {
    let address = format!("127.0.0.1:{}", free_port());
    let args = ["source", "--bind", &address, "--partitions", "64"];
    let proc = spawn(&scratch.join("source"), &args, Some(&address));
    (address, proc)
}

/// Node `i` of a benchmark cluster on the Cfg `cfg`, on a free port, in server group `zone-i`,
/// its data in `scratch/node{i}`, with `extra` flags; returns its address.
pub fn start_node(
    scratch: &std::path::Path,
    cfg: &str,
    i: usize,
    extra: &[&str],
) -> (String, Proc) {
    let address = format!("127.0.0.1:{}", free_port());
    let zone = format!("zone-{i}");
    let mut args = vec!["--cfg", cfg, "node", "--bind", &address, "--group", &zone];
    args.extend_from_slice(extra);
    let proc = spawn(&scratch.join(format!("node{i}")), &args, Some(&address));
    (address, proc)
}

pub type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

pub async fn request(
    client: &HttpClient,
    method: &str,
    url: &str,
    body: String,
) -> (u16, serde_json::Value) {
    request_as(client, None, method, url, body).await
}

/// [`request`] over any connector (HTTPS, say), with the API key `key` when given.
pub async fn request_as<C>(
    client: &Client<C, Full<Bytes>>,
    key: Option<&str>,
    method: &str,
    url: &str,
    body: String,
) -> (u16, serde_json::Value)
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let request = request.body(Full::new(Bytes::from(body))).expect("request");
    let response = client.request(request).await.expect("answer");
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

pub async fn post(client: &HttpClient, url: &str, body: String) -> (u16, serde_json::Value) {
    request(client, "POST", url, body).await
}

/// The benchmark's document count: the environment variable `var`, else `default`.
pub fn docs_from_env(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(default)
}

/// A cluster the benchmark talks to through one node's REST API.
pub struct Cluster {
    pub runtime: tokio::runtime::Runtime,
    pub client: HttpClient,
    pub node: String,
}

impl Cluster {
    pub fn new(node: &str) -> Self {
        Self {
            runtime: tokio::runtime::Runtime::new().expect("runtime"),
            client: client(),
            node: node.to_string(),
        }
    }

    pub fn call(&self, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
        let url = format!("http://{}{path}", self.node);
        self.runtime
            .block_on(request(&self.client, method, &url, body.to_string()))
    }

    /// Waits (up to an hour) until `index` answers an `at_plus` count of `docs`.
    pub fn wait_count(&self, index: &str, docs: usize) {
        let body = r#"{"query": {"match_all": {}}, "size": 0, "consistency": {"level": "at_plus"}, "timeout_ms": 10000}"#;
        self.wait(
            &format!("{index} to hold {docs} documents"),
            Duration::from_secs(3600),
            |c| {
                let (status, answer) = c.call("POST", &format!("/api/index/{index}/query"), body);
                (status == 200 && answer["total_hits"].as_u64() == Some(docs as u64)).then_some(())
            },
        );
    }

    /// Polls `check` every 100 ms until it answers, within `timeout`.
    pub fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check(self) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
