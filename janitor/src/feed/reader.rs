//! One partition's reader: streams the partition from a seq into the feed's applier,
//! reconnecting with backoff and resuming after the last seq it passed on.

use super::*;

/// Streams one partition into the applier, reconnecting as needed.
pub(super) struct Reader {
    pub(super) url: String,
    pub(super) channel: Option<tonic::transport::Channel>,
    pub(super) source: String,
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
        let mut client = match &self.channel {
            Some(channel) => SourceClient::new(channel.clone()),
            None => return Err(format!("bad source url `{}`", self.url)),
        };
        let request = StreamRequest {
            source: self.source.clone(),
            partition: self.partition,
            from_seq: *seq,
            partition_uuid: uuid.clone(),
        };
        let mut stream = match tokio::time::timeout(OPEN_TIMEOUT, client.stream(request)).await {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(e)) => return Err(e.message().to_string()),
            Err(_) => {
                return Err(format!(
                    "the source did not open the stream within {} s",
                    OPEN_TIMEOUT.as_secs()
                ))
            }
        };
        let partition = self.partition;
        self.update(|s| s.partitions.entry(partition).or_default().connected = true);
        let mut progressed = false;
        loop {
            let event = match stream.message().await {
                Ok(Some(message)) => message.event,
                Ok(None) => {
                    return Ok(if progressed {
                        SessionEnd::Progressed
                    } else {
                        SessionEnd::Closed
                    })
                }
                Err(e) => {
                    return if progressed {
                        Ok(SessionEnd::Progressed)
                    } else {
                        Err(e.message().to_string())
                    }
                }
            };
            let item = match event {
                Some(Event::Snapshot(s)) => {
                    *uuid = s.partition_uuid;
                    continue;
                }
                Some(Event::Mutation(m)) => {
                    *seq = m.seq;
                    Item::Put {
                        partition,
                        uuid: uuid.clone(),
                        seq: m.seq,
                        key: m.key,
                        doc: m.doc,
                    }
                }
                Some(Event::Deletion(d)) => {
                    *seq = d.seq;
                    Item::Delete {
                        partition,
                        uuid: uuid.clone(),
                        seq: d.seq,
                        key: d.key,
                    }
                }
                Some(Event::Rollback(r)) => {
                    let _ = self
                        .items
                        .send(Item::Rollback {
                            partition,
                            uuid: r.partition_uuid,
                        })
                        .await;
                    return Ok(SessionEnd::RolledBack);
                }
                None => continue,
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
