//! One partition's reader: streams the partition from a seq into the feed's applier,
//! reconnecting with backoff and resuming after the last seq it passed on.

use futures::StreamExt;

use super::*;

/// Streams one partition into the applier, reconnecting as needed.
pub(super) struct Reader {
    pub(super) session: Arc<dyn FeedSession>,
    pub(super) partition: u32,
    pub(super) items: mpsc::Sender<Item>,
    pub(super) status: Arc<Mutex<FeedStatus>>,
    pub(super) counters: FeedCounters,
}

impl Reader {
    fn update(&self, f: impl FnOnce(&mut FeedStatus)) {
        if let Ok(mut status) = self.status.lock() {
            f(&mut status);
        }
    }

    pub(super) async fn run(self, mut seq: u64, mut uuid: String) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.session(&mut seq, &mut uuid).await {
                Ok(SessionEnd::RolledBack) => return,
                Ok(SessionEnd::Progressed) => backoff = FIRST_BACKOFF,
                Ok(SessionEnd::Closed) => {}
                Err(reason) => {
                    self.counters.errors.inc();
                    self.update(|s| {
                        s.last_error = Some(format!("partition {}: {reason}", self.partition))
                    })
                }
            }
            if self.items.is_closed() {
                return;
            }
            let partition = self.partition;
            self.counters.reconnects.inc();
            self.update(|s| {
                s.reconnects += 1;
                s.partitions.entry(partition).or_default().connected = false;
            });
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn session(&self, seq: &mut u64, uuid: &mut String) -> Result<SessionEnd, String> {
        let partition = self.partition;
        let mut stream = self
            .session
            .stream(partition, *seq, uuid)
            .await
            .map_err(|e| e.to_string())?;
        self.update(|s| s.partitions.entry(partition).or_default().connected = true);
        let mut progressed = false;
        loop {
            let event = match stream.next().await {
                Some(Ok(event)) => event,
                None => {
                    return Ok(if progressed {
                        SessionEnd::Progressed
                    } else {
                        SessionEnd::Closed
                    })
                }
                Some(Err(e)) => {
                    return if progressed {
                        Ok(SessionEnd::Progressed)
                    } else {
                        Err(e.to_string())
                    }
                }
            };
            let item = match event {
                SourceEvent::Snapshot { uuid: now } => {
                    *uuid = now;
                    continue;
                }
                SourceEvent::Mutation { seq: at, key, doc } => {
                    *seq = at;
                    Item::Put {
                        partition,
                        uuid: uuid.clone(),
                        seq: at,
                        key,
                        doc,
                    }
                }
                SourceEvent::Deletion { seq: at, key } => {
                    *seq = at;
                    Item::Delete {
                        partition,
                        uuid: uuid.clone(),
                        seq: at,
                        key,
                    }
                }
                SourceEvent::Skipped { seq: at, reason } => {
                    *seq = at;
                    self.update(|s| {
                        s.last_error = Some(format!("partition {partition}: skipped: {reason}"))
                    });
                    Item::Skip {
                        partition,
                        uuid: uuid.clone(),
                        seq: at,
                    }
                }
                SourceEvent::Rollback { uuid: now } => {
                    let _ = self
                        .items
                        .send(Item::Rollback {
                            partition,
                            uuid: now,
                        })
                        .await;
                    return Ok(SessionEnd::RolledBack);
                }
            };
            progressed = true;
            if self.items.send(item).await.is_err() {
                return Ok(SessionEnd::Closed);
            }
        }
    }
}

enum SessionEnd {
    RolledBack,
    Progressed,
    Closed,
}
