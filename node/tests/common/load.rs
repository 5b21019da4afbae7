//! A drill's load: continuous ingest (to a reference source's bulk API or a JetStream
//! stream), queries spread over the nodes and checks of every plan seen, counted while a drill
//! runs; and the exact-count check that ends every drill.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::drill::STREAM;
use super::{http, try_http};

/// Where a drill's load writes documents.
#[derive(Clone)]
pub enum Ingest {
    /// A reference source's bulk API (`host:port`).
    Source(String),
    /// A JetStream stream on these servers (subjects `docs.<partition>`).
    JetStream(Vec<String>),
}

/// Continuous ingest, queries and plan checks while a drill runs.
pub struct Load {
    pub stop: Arc<AtomicBool>,
    pub written: Arc<AtomicU64>,
    pub queries: Arc<AtomicU64>,
    pub failures: Arc<Mutex<Vec<String>>>,
    pub threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(source: String, nodes: Arc<Mutex<Vec<String>>>) -> Self {
        Self::start_with(Ingest::Source(source), nodes)
    }

    /// Load writing to `ingest`, querying `nodes`.
    pub fn start_with(ingest: Ingest, nodes: Arc<Mutex<Vec<String>>>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let queries = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        {
            let (stop, written) = (stop.clone(), written.clone());
            threads.push(std::thread::spawn(move || match ingest {
                Ingest::Source(source) => {
                    let mut next = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let body: String = (next..next + 200)
                            .map(|i| format!("{{\"key\":\"d{i}\",\"doc\":{{\"title\":\"document {i}\",\"n\":{i}}}}}\n"))
                            .collect();
                        let (status, answer) = http(&source, "POST", "/api/source/docs/bulk", &body);
                        assert_eq!(status, 200, "ingest: {answer}");
                        next += 200;
                        written.store(next, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                Ingest::JetStream(servers) => publish_until(&servers, &stop, &written),
            }));
        }
        {
            let (stop, queries, failures) = (stop.clone(), queries.clone(), failures.clone());
            threads.push(std::thread::spawn(move || {
                let mut turn = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let list = nodes.lock().unwrap().clone();
                    let node = &list[turn % list.len()];
                    turn += 1;
                    // A node that cannot be reached is a failed query (not a panic: the soak
                    // kills nodes the load is asking).
                    let (status, body) = try_http(
                        node,
                        "POST",
                        "/api/index/books/query",
                        r#"{"query": {"match": {"field": "title", "query": "document"}}, "size": 3}"#,
                    )
                    .unwrap_or((0, serde_json::Value::Null));
                    queries.fetch_add(1, Ordering::Relaxed);
                    if status != 200 || body["status"]["failed"] != 0 {
                        failures.lock().unwrap().push(format!("{node}: {status} {body}"));
                        continue;
                    }
                    // Every plan seen has at most one primary per PIndex.
                    let Some((_, plans)) = try_http(node, "GET", "/api/plan", "") else {
                        continue;
                    };
                    for p in plans["plans"][0]["pindexes"].as_array().into_iter().flatten() {
                        let primaries = p["copies"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter(|c| c["role"] == "primary")
                            .count();
                        if primaries > 1 {
                            failures.lock().unwrap().push(format!("two primaries: {p}"));
                        }
                    }
                }
            }));
        }
        Self {
            stop,
            written,
            queries,
            failures,
            threads,
        }
    }

    /// Stops the load and checks the drill's outcome: no failed query, and every written
    /// document searchable from `node`, exactly. Returns (documents written, queries run).
    pub fn finish(self, node: &str) -> (u64, u64) {
        let (written, queries, failures) = self.stop();
        assert!(
            failures.is_empty(),
            "{} of {queries} queries failed: {failures:?}",
            failures.len()
        );
        assert_exact(node, written);
        (written, queries)
    }

    /// Stops the load; returns (documents written, queries run, failures).
    pub fn stop(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("load thread");
        }
        let failures = self.failures.lock().unwrap().clone();
        (
            self.written.load(Ordering::Relaxed),
            self.queries.load(Ordering::Relaxed),
            failures,
        )
    }
}

/// Publishes batches of 200 documents to the drill's stream until `stop`, each batch
/// acknowledged before it counts as written. A batch that fails (a server killed) is published
/// again: its documents replace themselves, so nothing counts twice.
fn publish_until(servers: &[String], stop: &AtomicBool, written: &AtomicU64) {
    use tessera_sources::jetstream::producer::{Change, Producer};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let client = tessera_sources::jetstream::connect(servers, &Default::default())
            .await
            .expect("NATS");
        let mut producer = Producer::new(&client, STREAM, "docs", None)
            .await
            .expect("the drill's stream");
        let mut next = 0u64;
        let mut failing_since: Option<std::time::Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            let batch = async {
                for i in next..next + 200 {
                    let doc = format!("{{\"title\":\"document {i}\",\"n\":{i}}}");
                    let change = Change::Put {
                        key: format!("d{i}"),
                        doc: doc.into_bytes(),
                    };
                    producer.send(change).await?;
                }
                producer.flush().await
            };
            let outcome = tokio::time::timeout(Duration::from_secs(10), batch).await;
            match outcome {
                Ok(Ok(_)) => {
                    failing_since = None;
                    next += 200;
                    written.store(next, Ordering::Relaxed);
                }
                outcome => {
                    let since = *failing_since.get_or_insert_with(std::time::Instant::now);
                    assert!(
                        since.elapsed() < Duration::from_secs(60),
                        "publishing to JetStream failed for 60 s: {outcome:?}"
                    );
                    // What was in flight is dropped with the producer; the batch goes again.
                    producer = Producer::new(&client, STREAM, "docs", None)
                        .await
                        .unwrap_or(producer);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

/// Every written document is searchable from `node`, exactly.
pub fn assert_exact(node: &str, written: u64) {
    let body = r#"{"query": {"match_all": {}}, "size": 0, "consistency": {"level": "at_plus"}, "timeout_ms": 30000}"#;
    let (status, answer) = http(node, "POST", "/api/index/books/query", body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["total_hits"].as_u64(),
        Some(written),
        "documents lost or doubled: {answer}"
    );
}
