//! What the feed tests share: a real source server on loopback that can be killed, and waits
//! on a feed's progress.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use tessera_janitor::feed::{Feed, FeedConfig};
use tessera_source::grpc::SourceService;
use tessera_source::{Append, SourceLog};

pub const PARTITIONS: u32 = 4;

/// A source server in a runtime of its own: dropping it kills every connection at once, as
/// when the source process dies.
pub struct Server {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

pub async fn serve_on(log: SourceLog, address: std::net::SocketAddr) -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    runtime.spawn(async move {
        let listener = loop {
            match tokio::net::TcpListener::bind(address).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let _ = ready_tx.send(());
        let app = SourceService::new(log).router();
        let _ = axum::serve(listener, app).await;
    });
    ready.await.expect("source server listening");
    Server {
        runtime: Some(runtime),
    }
}

pub fn free_address() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

pub fn docs(range: std::ops::Range<u32>) -> Vec<Append> {
    range
        .map(|i| Append::Put {
            key: format!("doc-{i}"),
            doc: format!("{{\"title\": \"book {i}\", \"n\": {i}}}").into_bytes(),
        })
        .collect()
}

pub fn config(address: std::net::SocketAddr) -> FeedConfig {
    FeedConfig {
        index: "test".into(),
        source: tessera_sources::reference::ReferenceSource::at(
            format!("http://{address}"),
            "docs",
        ),
        partitions: (0..PARTITIONS).collect(),
        commit_every: 500,
        commit_interval: Duration::from_millis(100),
        source_partitions: PARTITIONS,
        start_paused: false,
    }
}

pub fn highs(log: &SourceLog) -> BTreeMap<u32, u64> {
    log.partitions("docs")
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|p| (p.id, p.high_seq))
        .collect()
}

/// Waits until the feed has applied every partition up to the source's high seqs.
pub async fn caught_up(feed: &Feed, log: &SourceLog, what: &str) {
    caught_up_within(feed, log, what, Duration::from_secs(20)).await
}

pub async fn caught_up_within(feed: &Feed, log: &SourceLog, what: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let want = highs(log);
        let status = feed.status();
        let have: BTreeMap<u32, u64> = status.partitions.iter().map(|(p, s)| (*p, s.seq)).collect();
        if want.iter().all(|(p, h)| *h == 0 || have.get(p) == Some(h)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: feed at {have:?}, source at {want:?}, status {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
