//! `tessera drill NAME`: a drill against a running cluster, through its APIs only. It creates
//! a scratch index on a scratch source, keeps ingest and queries running, carries out the
//! topology change NAME on one node (the busiest, or `--target`), brings the node back, then
//! checks that every written document is searchable and prints a report: what happened,
//! timings, documents lost (must be 0), failed queries. The scratch index is deleted at the end.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};

use crate::ctl::http::Http;
use crate::exit::{Exit, INVALID};

#[derive(Args)]
pub struct DrillArgs {
    /// drain, failover-graceful, failover-hard or rebalance (a rebalance that changes nothing).
    pub name: String,
    /// A node of the cluster (`host:port`).
    #[arg(long, default_value = "127.0.0.1:9101")]
    pub cluster: String,
    /// The source the scratch index reads (`host:port`); default: the `--cluster` node's own.
    #[arg(long)]
    pub source: Option<String>,
    /// The node to act on (uuid); default: the wanted node holding the most copies.
    #[arg(long)]
    pub target: Option<String>,
    /// Give up waiting for any step after this long.
    #[arg(long, default_value_t = 300)]
    pub timeout_s: u64,
    /// The API key to call with, when the cluster runs with auth (an operator's, or admin's).
    #[arg(long, env = "TESSERA_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    #[command(flatten)]
    pub tls: crate::ctl::http::TlsArgs,
}

impl DrillArgs {
    /// A client for `address` with the drill's TLS and key.
    fn client(&self, address: &str) -> Result<Http, Exit> {
        Ok(Http::with_tls(address, &self.tls)?.with_api_key(self.api_key.clone()))
    }
}

const KINDS: &[&str] = &["drain", "failover-graceful", "failover-hard", "rebalance"];

/// Ingest and queries while the drill runs.
struct Load {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    queries: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(source: Http, clients: Vec<Http>, index: &str) -> Load {
        let (stop, written, queries) = (
            Arc::default(),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let failures = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        {
            let (stop, written, failures): (Arc<AtomicBool>, _, _) =
                (Arc::clone(&stop), written.clone(), failures.clone());
            let path = format!("/api/source/{index}/bulk");
            tasks.push(tokio::spawn(async move {
                let mut next = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let body: String = (next..next + 100)
                        .map(|i| format!("{{\"key\":\"d{i}\",\"doc\":{{\"title\":\"drill document {i}\",\"n\":{i}}}}}\n"))
                        .collect();
                    match source.send("POST", &path, body).await {
                        Ok((200, _)) => {
                            next += 100;
                            written.store(next, Ordering::Relaxed);
                        }
                        Ok((status, answer)) => push(&failures, format!("ingest: {status} {answer}")),
                        Err(e) => push(&failures, format!("ingest: {e}")),
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }));
        }
        {
            let (stop, queries, failures): (Arc<AtomicBool>, _, _) =
                (Arc::clone(&stop), queries.clone(), failures.clone());
            let path = format!("/api/index/{index}/query");
            tasks.push(tokio::spawn(async move {
                let mut turn = 0;
                while !stop.load(Ordering::Relaxed) {
                    let client = &clients[turn % clients.len()];
                    turn += 1;
                    let body =
                        r#"{"query": {"match": {"field": "title", "query": "drill"}}, "size": 3}"#;
                    match client.send("POST", &path, body).await {
                        Ok((200, answer)) if answer["status"]["failed"] == 0 => {}
                        Ok((status, answer)) => {
                            push(&failures, format!("query: {status} {answer}"))
                        }
                        Err(e) => push(&failures, format!("query: {e}")),
                    }
                    queries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }));
        }
        Load {
            stop,
            written,
            queries,
            failures,
            tasks,
        }
    }

    async fn stop(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let failures = self.failures.lock().map(|f| f.clone()).unwrap_or_default();
        (
            self.written.load(Ordering::Relaxed),
            self.queries.load(Ordering::Relaxed),
            failures,
        )
    }
}

fn push(failures: &Mutex<Vec<String>>, message: String) {
    if let Ok(mut f) = failures.lock() {
        f.push(message);
    }
}

/// Polls `check` every 250 ms until it gives a value, or fails naming `what`.
async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs a topology change to its end; returns its summary and how long it took.
async fn change(
    http: &Http,
    kind: &str,
    keep: &[&str],
    eject: &[&str],
    timeout: Duration,
) -> anyhow::Result<(String, f64)> {
    let started = Instant::now();
    let body = json!({"type": kind, "keep_nodes": keep, "eject_nodes": eject});
    let answer = http
        .call("POST", "/api/ctl/topology-change", body.to_string())
        .await?;
    let id = answer["task"]
        .as_str()
        .context("no task id in the answer")?
        .to_string();
    let task: Value = until(&format!("task {id}"), timeout, || async {
        let t = http
            .call("GET", &format!("/api/ctl/tasks/{id}"), "")
            .await?["task"]
            .clone();
        Ok((t["status"] != "running").then_some(t))
    })
    .await?;
    if task["status"] != "completed" {
        bail!("task {id} ended {}: {}", task["status"], task["summary"]);
    }
    Ok((
        task["summary"].as_str().unwrap_or_default().to_string(),
        started.elapsed().as_secs_f64(),
    ))
}

pub async fn run(args: DrillArgs) -> anyhow::Result<()> {
    if !KINDS.contains(&args.name.as_str()) {
        return Err(Exit::new(
            INVALID,
            format!(
                "unknown drill `{}` (known: {})",
                args.name,
                KINDS.join(", ")
            ),
        )
        .into());
    }
    let timeout = Duration::from_secs(args.timeout_s);
    let http = args.client(&args.cluster)?;
    let topology = http.call("GET", "/api/ctl/topology", "").await?;
    let nodes: Vec<Value> = topology["nodes"].as_array().cloned().unwrap_or_default();
    let serving: Vec<&Value> = nodes.iter().filter(|n| n["state"] == "wanted").collect();
    let target = match &args.target {
        Some(t) => t.clone(),
        None => serving
            .iter()
            .filter(|n| n["host_port"].as_str() != Some(args.cluster.as_str()))
            .max_by_key(|n| n["copies"].as_u64().unwrap_or(0))
            .and_then(|n| n["uuid"].as_str())
            .context("no other wanted node to act on")?
            .to_string(),
    };
    let query_nodes: Vec<Http> = serving
        .iter()
        .filter(|n| n["uuid"].as_str() != Some(target.as_str()))
        .filter_map(|n| n["host_port"].as_str())
        .map(|address| args.client(address))
        .collect::<Result<_, _>>()?;
    let source_address = args.source.clone().unwrap_or_else(|| args.cluster.clone());
    let name = format!("drill{}", tessera_cfg::unix_ms());
    let replicas = if serving.len() > 2 { 1 } else { 0 };
    let definition = json!({"type": "fulltext",
        "source": {"type": "tessera", "name": name, "params": {"url": format!("http://{source_address}")}},
        "plan": {"index_partitions": 8, "replicas": replicas},
        "params": {"mapping": {"fields": {"title": {"type": "text"}, "n": {"type": "i64"}}}}});
    println!(
        "drill {}: target node {target}, scratch index `{name}` ({} nodes, {replicas} replica)",
        args.name,
        serving.len()
    );
    http.call("PUT", &format!("/api/index/{name}"), definition.to_string())
        .await?;
    let started = Instant::now();
    let outcome = drill(
        &http,
        &args,
        &name,
        &target,
        query_nodes,
        args.client(&source_address)?,
        timeout,
    )
    .await;
    let _ = http.call("DELETE", &format!("/api/index/{name}"), "").await;
    let report = outcome?;
    println!("{report}");
    println!("total {:.1} s", started.elapsed().as_secs_f64());
    if report.contains("LOST") || report.contains("FAILED") {
        bail!("the drill found lost documents or failed queries");
    }
    Ok(())
}

async fn drill(
    http: &Http,
    args: &DrillArgs,
    index: &str,
    target: &str,
    query_nodes: Vec<Http>,
    source: Http,
    timeout: Duration,
) -> anyhow::Result<String> {
    let plan_ready = || async {
        let plan = http.call("GET", "/api/plan", "").await?;
        let ready = plan["plans"].as_array().into_iter().flatten().any(|p| {
            p["index"] == index
                && p["pindexes"].as_array().is_some_and(|ps| {
                    !ps.is_empty()
                        && ps.iter().all(|p| {
                            p["copies"]
                                .as_array()
                                .is_some_and(|c| c.iter().all(|c| c["can_read"] == true))
                        })
                })
        });
        Ok(ready.then_some(()))
    };
    until("the scratch index built", timeout, plan_ready).await?;
    let load = Load::start(source, query_nodes, index);
    // Some load before the change, so the drill starts from a busy cluster.
    until("ingest under way", timeout, || async {
        Ok((load.written.load(Ordering::Relaxed) >= 1000).then_some(()))
    })
    .await?;
    let mut lines = Vec::new();
    let eject: Vec<&str> = if args.name == "rebalance" {
        Vec::new()
    } else {
        vec![target]
    };
    let (summary, seconds) = change(http, &args.name, &[], &eject, timeout).await?;
    lines.push(format!("{}: {summary} ({seconds:.1} s)", args.name));
    if args.name != "rebalance" {
        let (summary, seconds) = change(http, "rebalance", &[target], &[], timeout).await?;
        lines.push(format!("node back: {summary} ({seconds:.1} s)"));
    }
    let (written, queries, failures) = load.stop().await;
    let tally = tally(http, index, written).await?;
    let bad = tally.missing > 0 || tally.duplicated > 0;
    lines.push(format!(
        "documents written {written}, searchable {}, missing {}, duplicated {}{}{}",
        tally.found,
        tally.missing,
        tally.duplicated,
        if tally.extra > 0 {
            format!(", {} more from writes that failed but landed", tally.extra)
        } else {
            String::new()
        },
        if bad { " — LOST" } else { "" }
    ));
    for example in &tally.examples {
        lines.push(format!("  {example}"));
    }
    lines.push(format!(
        "queries {queries}, failed {}{}",
        failures.len(),
        if failures.is_empty() {
            ""
        } else {
            " — FAILED"
        }
    ));
    for f in failures.iter().take(5) {
        lines.push(format!("  {f}"));
    }
    Ok(lines.join("\n"))
}

/// What the index holds of the documents the drill wrote (`d0`..`d{written-1}`, field `n` the
/// number): read back by windows of `n`, each small enough to come back whole, so a document
/// missing and one answered twice are each seen (a count alone hides one behind the other).
#[derive(Debug, Default)]
struct Tally {
    found: u64,
    missing: u64,
    duplicated: u64,
    /// Documents past `written`: a write that failed (and was not counted) may still have landed.
    extra: u64,
    examples: Vec<String>,
}

impl Tally {
    /// Keeps the first few examples (the report shows five).
    fn example(&mut self, what: String) {
        if self.examples.len() < 5 {
            self.examples.push(what);
        }
    }
}

/// Documents per window read back.
const WINDOW: u64 = 5_000;

async fn tally(http: &Http, index: &str, written: u64) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    // Writes go in batches of 100: one failed batch can have landed past `written`.
    let end = written + 100;
    let mut start = 0;
    while start < end {
        let body = json!({"query": {"range": {"field": "n", "gte": start, "lt": start + WINDOW}},
            "size": WINDOW, "fields": [], "consistency": {"level": "at_plus"}, "timeout_ms": 60000});
        let answer = http
            .call(
                "POST",
                &format!("/api/index/{index}/query"),
                body.to_string(),
            )
            .await?;
        if answer["status"]["failed"] != 0 {
            bail!("reading documents back failed: {answer}");
        }
        let mut seen = std::collections::BTreeMap::<u64, u64>::new();
        for hit in answer["hits"].as_array().into_iter().flatten() {
            let n = hit["id"]
                .as_str()
                .and_then(|id| id.strip_prefix('d'))
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("a document the drill did not write: {hit}"))?;
            *seen.entry(n).or_default() += 1;
        }
        let total = answer["total_hits"].as_u64().unwrap_or(0);
        let returned: u64 = seen.values().sum();
        // Hits past the window's size would hide repeats: a window holds at most WINDOW
        // distinct documents, so more hits than that are duplicates too.
        tally.duplicated += total.saturating_sub(returned);
        for (&n, &times) in &seen {
            if times > 1 {
                tally.duplicated += times - 1;
                tally.example(format!("d{n} answered {times} times"));
            }
            if n >= written {
                tally.extra += 1;
            }
        }
        for n in start..(start + WINDOW).min(written) {
            if !seen.contains_key(&n) {
                tally.missing += 1;
                tally.example(format!("d{n} missing"));
            }
        }
        tally.found += total;
        start += WINDOW;
    }
    Ok(tally)
}
