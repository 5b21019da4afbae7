//! Watches on etcd that survive reconnects: the feeder remembers the last revision it delivered
//! and re-creates the etcd watch from the one after it, so an etcd restart or a lost member
//! neither loses nor repeats events. A compacted start revision ends the stream with
//! `WatchEvent::Compacted`.

use std::time::Duration;

use etcd_client::{EventType, WatchOptions};
use tokio::sync::mpsc;

use super::{convert_kv, EtcdStore};
use crate::store::{Revision, WatchEvent, WatchStream, WATCH_BUFFER};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub(super) fn spawn(store: EtcdStore, prefix: String, from: Revision) -> WatchStream {
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    let task = tokio::spawn(async move {
        run(store, prefix, from, tx).await;
    });
    WatchStream::new(rx, task)
}

/// Why one etcd watch session ended.
enum SessionEnd {
    /// The consumer is gone or the history is compacted: stop for good.
    Stop,
    /// The connection or the watch broke: reconnect from `next`.
    Broken(String),
}

async fn run(store: EtcdStore, prefix: String, mut next: Revision, tx: mpsc::Sender<WatchEvent>) {
    let mut backoff = FIRST_BACKOFF;
    let mut outage = false;
    loop {
        let before = next;
        match session(&store, &prefix, &mut next, &tx).await {
            SessionEnd::Stop => return,
            SessionEnd::Broken(reason) => {
                if next > before {
                    backoff = FIRST_BACKOFF;
                    outage = false;
                }
                if !outage {
                    tracing::warn!(
                        endpoints = store.endpoints(),
                        prefix,
                        resume_from = next,
                        reason,
                        "etcd watch lost; reconnecting"
                    );
                    outage = true;
                } else {
                    tracing::debug!(prefix, resume_from = next, reason, "etcd watch still down");
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One etcd watch from `*next`; advances `*next` past every event it delivers.
async fn session(
    store: &EtcdStore,
    prefix: &str,
    next: &mut Revision,
    tx: &mpsc::Sender<WatchEvent>,
) -> SessionEnd {
    let options = WatchOptions::new().with_prefix().with_start_revision(*next);
    let mut client = store.client.watch_client();
    let mut stream = match client.watch(prefix, Some(options)).await {
        Ok(stream) => stream,
        Err(e) => return SessionEnd::Broken(e.to_string()),
    };
    loop {
        let resp = match stream.message().await {
            Ok(Some(resp)) => resp,
            Ok(None) => return SessionEnd::Broken("watch stream closed".into()),
            Err(e) => return SessionEnd::Broken(e.to_string()),
        };
        if resp.compact_revision() > 0 {
            let _ = tx
                .send(WatchEvent::Compacted {
                    compact_revision: resp.compact_revision(),
                })
                .await;
            return SessionEnd::Stop;
        }
        if resp.canceled() {
            return SessionEnd::Broken(format!("watch canceled: {}", resp.cancel_reason()));
        }
        // Everything below `floor` was delivered before a reconnect. `floor` stays fixed for the
        // whole response, so several events of one revision (a transaction) all get through.
        let floor = *next;
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let revision = kv.mod_revision();
            if revision < floor {
                continue; // already delivered before a reconnect
            }
            let converted = match event.event_type() {
                EventType::Put => match convert_kv(kv) {
                    Ok(kv) => WatchEvent::Put(kv),
                    Err(e) => {
                        tracing::error!(error = %e, "etcd watch: skipping a key that is not UTF-8");
                        continue;
                    }
                },
                EventType::Delete => WatchEvent::Delete {
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    revision,
                },
            };
            if tx.send(converted).await.is_err() {
                return SessionEnd::Stop;
            }
            *next = (*next).max(revision + 1);
        }
    }
}
