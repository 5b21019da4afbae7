//! Connections cannot exhaust a node (issue 31): against node A of a two-node cluster (real
//! etcd, an index whose PIndexes sit on both nodes, so every query needs the peer), 2,000 idle
//! connections and 200 connections trickling a request head, kept open from other loopback
//! addresses for the whole measurement (re-opened as the node closes them), leave A's queries
//! answering with a p99 within twice the unloaded one, and both nodes' queries whole (the
//! peers still reach each other).
//!
//! The test process raises its open-files soft limit to the hard one (the attack holds 2,200
//! sockets; the nodes it starts inherit the raised limit and raise their own anyway). It runs in
//! the one-at-a-time group (`.config/nextest.toml`): it measures latency.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cluster_node, free_port, http, wait_for};
use tessera_tests::etcd::EtcdCluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const DOCS: usize = 400;
const IDLE: usize = 2000;
const SLOW: usize = 200;
/// Idle connections come from eight addresses (250 each, under the default 256 per client).
const IDLE_FROM: u8 = 8;
const QUERIES: usize = 200;
/// The query client's own address: not a node's, so it gets no reserved slot.
const CLIENT: [u8; 4] = [127, 0, 0, 50];
/// An address that opens more connections than one client may hold.
const GREEDY: [u8; 4] = [127, 0, 0, 60];

fn raise_open_files() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    setrlimit(Resource::Nofile, raised).expect("raising the open-files limit");
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

async fn connect_from(from: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::from(from), 0))?;
    socket.connect(to).await
}

/// One query from [`CLIENT`]: (status, failed PIndexes, total hits) and its time.
async fn query(to: SocketAddr) -> (u16, serde_json::Value, Duration) {
    let body = r#"{"query": {"match": {"field": "body", "query": "replica engine"}}, "size": 10}"#;
    let request = format!(
        "POST /api/index/load/query HTTP/1.1\r\nHost: {to}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let started = Instant::now();
    let answer = async {
        let mut stream = connect_from(CLIENT, to).await.ok()?;
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await.ok()?;
        Some(bytes)
    };
    let bytes = tokio::time::timeout(Duration::from_secs(30), answer)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&bytes);
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let json = text
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or_default();
    (status, json, took)
}

/// The p99 of `QUERIES` queries to `to`, each checked whole (every PIndex answered).
async fn p99(to: SocketAddr, what: &str) -> Duration {
    let mut times = Vec::with_capacity(QUERIES);
    for i in 0..QUERIES {
        let (status, body, took) = query(to).await;
        assert_eq!(status, 200, "{what}: query {i} answered {status}: {body}");
        assert_eq!(body["status"]["failed"], 0, "{what}: query {i}: {body}");
        times.push(took);
    }
    times.sort();
    times[QUERIES * 99 / 100 - 1]
}

/// Keeps a connection from `from` open to `to`, opening another as soon as the node closes it;
/// `slow` trickles a request head, one header a second. Counts the connections open and those
/// the node cut.
async fn attacker(
    from: [u8; 4],
    to: SocketAddr,
    slow: bool,
    (open, cut): (Arc<AtomicUsize>, Arc<AtomicUsize>),
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = connect_from(from, to).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        open.fetch_add(1, Ordering::Relaxed);
        if slow {
            let _ = stream
                .write_all(b"GET /api/ping HTTP/1.1\r\nHost: x\r\n")
                .await;
        }
        let mut buf = [0u8; 64];
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let wait = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await;
            match wait {
                Ok(Ok(0) | Err(_)) => {
                    cut.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(Ok(_)) => {}
                Err(_) if slow => {
                    if stream.write_all(b"X-Slow: 1\r\n").await.is_err() {
                        cut.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                Err(_) => {}
            }
        }
        open.fetch_sub(1, Ordering::Relaxed);
        // Closed by the node: come back a little later, as a patient attacker would.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn idle_and_slow_connections_leave_queries_answering_and_peers_connected() {
    let files = raise_open_files();
    assert!(
        files >= (IDLE + SLOW + 1000) as u64,
        "the open-files hard limit ({files}) is below what the attack needs"
    );
    let etcd = EtcdCluster::single();
    let cfg = etcd.cfg_spec("load");
    let scratch = tempfile::tempdir().unwrap();
    let addresses: Vec<String> = (0..2)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let _nodes: Vec<_> = (0..2)
        .map(|i| {
            let dir = scratch.path().join(format!("node{i}"));
            cluster_node(&cfg, &dir, &addresses[i], &format!("zone-{i}"))
        })
        .collect();
    let a = addresses[0].clone();
    wait_for("two nodes registered", Duration::from_secs(30), || {
        let (_, body) = http(&a, "GET", "/api/nodes", "");
        (body["nodes"].as_array()?.len() == 2).then_some(())
    });
    let index = r#"{"type": "fulltext", "source": {"type": "tessera", "name": "load"},
        "plan": {"index_partitions": 4, "replicas": 0},
        "params": {"mapping": {"fields": {"body": {"type": "text"}}}}}"#;
    let (status, body) = http(&a, "PUT", "/api/index/load", index);
    assert_eq!(status, 200, "{body}");
    let words = ["replica", "engine", "cluster", "query", "storage"];
    let lines: String = (0..DOCS)
        .map(|i| {
            let text = format!(
                "{} {} {}",
                words[i % 5],
                words[(i / 5) % 5],
                words[(i / 25) % 5]
            );
            format!(
                "{}\n",
                serde_json::json!({"key": format!("k{i}"), "doc": {"body": text}})
            )
        })
        .collect();
    let (status, body) = http(&a, "POST", "/api/source/load/bulk", &lines);
    assert_eq!(status, 200, "{body}");
    // Both nodes hold a readable PIndex: a query to either needs the other.
    wait_for(
        "PIndexes readable on both nodes",
        Duration::from_secs(120),
        || {
            let (_, body) = http(&a, "GET", "/api/plan", "");
            let plan = body["plans"].as_array()?.first()?.clone();
            let copies: Vec<&serde_json::Value> = plan["pindexes"]
                .as_array()?
                .iter()
                .flat_map(|p| p["copies"].as_array().into_iter().flatten())
                .collect();
            let readable = copies.iter().all(|c| c["can_read"] == true);
            let nodes: std::collections::BTreeSet<_> =
                copies.iter().filter_map(|c| c["node"].as_str()).collect();
            (copies.len() == 4 && readable && nodes.len() == 2).then_some(())
        },
    );
    wait_for(
        "every document searchable",
        Duration::from_secs(120),
        || {
            let (status, body) = http(
                &a,
                "POST",
                "/api/index/load/query",
                r#"{"query": {"match_all": {}}, "size": 0}"#,
            );
            if status == 200 && body["total_hits"] == DOCS {
                return Some(());
            }
            eprintln!("not yet: {status} {body}");
            None
        },
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (node_a, node_b): (SocketAddr, SocketAddr) =
        (addresses[0].parse().unwrap(), addresses[1].parse().unwrap());
    runtime.block_on(async {
        // Warm up, then the unloaded figure.
        for _ in 0..20 {
            query(node_a).await;
        }
        let unloaded = p99(node_a, "unloaded").await;

        let open = Arc::new(AtomicUsize::new(0));
        let idle_cut = Arc::new(AtomicUsize::new(0));
        let slow_cut = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut attack = Vec::new();
        for i in 0..IDLE {
            let from = [127, 0, 0, 2 + (i % IDLE_FROM as usize) as u8];
            let counts = (open.clone(), idle_cut.clone());
            attack.push(tokio::spawn(attacker(from, node_a, false, counts, stop.clone())));
        }
        for _ in 0..SLOW {
            let from = [127, 0, 0, 2 + IDLE_FROM];
            let counts = (open.clone(), slow_cut.clone());
            attack.push(tokio::spawn(attacker(from, node_a, true, counts, stop.clone())));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while open.load(Ordering::Relaxed) < IDLE + SLOW - 50 {
            assert!(
                Instant::now() < deadline,
                "the attack holds only {} of {} connections after 60 s",
                open.load(Ordering::Relaxed),
                IDLE + SLOW
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let held_at_start = open.load(Ordering::Relaxed);
        let loaded = p99(node_a, "under attack, node A").await;
        // The peer: its queries need A's PIndexes, over its own connection to A.
        let (status, body, _) = query(node_b).await;
        assert_eq!(status, 200, "node B under the attack on A: {body}");
        assert_eq!(body["status"]["failed"], 0, "node B under the attack on A: {body}");
        let held_at_end = open.load(Ordering::Relaxed);
        // Slow heads and silent connections are cut (--header-read-timeout, 10 s by
        // default): every attacking connection at least once within 30 s of the attack.
        let deadline = Instant::now() + Duration::from_secs(30);
        while slow_cut.load(Ordering::Relaxed) < SLOW || idle_cut.load(Ordering::Relaxed) < IDLE {
            assert!(
                Instant::now() < deadline,
                "30 s into the attack the node has cut {} of {SLOW} slow-header and {} of {IDLE} silent connections",
                slow_cut.load(Ordering::Relaxed),
                idle_cut.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // One address past its share (256 by default): the rest are closed at once.
        let mut greedy = Vec::new();
        for _ in 0..300 {
            if let Ok(stream) = connect_from(GREEDY, node_a).await {
                greedy.push(stream);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while greedy.len() > 256 {
            assert!(
                Instant::now() < deadline,
                "one client address still holds {} connections after 5 s (cap 256)",
                greedy.len()
            );
            let mut still = Vec::new();
            for mut stream in greedy.drain(..) {
                let mut byte = [0u8; 1];
                let peek = tokio::time::timeout(Duration::from_millis(1), stream.read(&mut byte));
                if !matches!(peek.await, Ok(Ok(0) | Err(_))) {
                    still.push(stream);
                }
            }
            greedy = still;
        }
        stop.store(true, Ordering::Relaxed);
        for task in attack {
            task.abort();
        }
        eprintln!(
            "p99 unloaded {unloaded:?}, under {held_at_start}..{held_at_end} attacking connections {loaded:?}"
        );
        // Twice the unloaded p99, from a floor of 25 ms: on a shared two-core machine a p99
        // of a few milliseconds moves by that much on its own.
        let bound = unloaded.max(Duration::from_millis(25)) * 2;
        assert!(
            loaded <= bound,
            "p99 under attack {loaded:?} exceeds twice the unloaded {unloaded:?} (bound {bound:?})"
        );
    });
}
