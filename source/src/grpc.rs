//! The gRPC source protocol (`tessera.v1.Source`) over the logs: partition listing, and a
//! stream per partition that catches up from the log in snapshots, then follows commits live.

use std::pin::Pin;

use futures::Stream;
use tessera_proto::v1::source_server::{Source, SourceServer};
use tessera_proto::v1::stream_event::Event;
use tessera_proto::v1::{
    Deletion, ImportRequest, ImportResponse, ListPartitionsRequest, ListPartitionsResponse,
    Mutation, PartitionInfo, Rollback, Snapshot, StreamEvent, StreamRequest,
};
use tokio::sync::{broadcast, mpsc};
use tonic::{Request, Response, Status};

use crate::log::{LogError, SourceLog};

/// Entries read from the log per snapshot while catching up.
const BATCH: usize = 1000;

/// The gRPC service over a [`SourceLog`].
#[derive(Clone)]
pub struct SourceService {
    log: SourceLog,
}

impl SourceService {
    pub fn new(log: SourceLog) -> Self {
        Self { log }
    }

    /// As an axum router (no fallback), to merge with REST on one port.
    pub fn router(self) -> axum::Router {
        use tonic::server::NamedService;
        let path = format!("/{}/{{*method}}", SourceServer::<SourceService>::NAME);
        axum::Router::new().route_service(&path, SourceServer::new(self))
    }
}

fn status(e: LogError) -> Status {
    match e {
        LogError::NoSuchSource(_) | LogError::NoSuchPartition { .. } => {
            Status::not_found(e.to_string())
        }
        LogError::InvalidName(_) | LogError::InvalidKey(_) => {
            Status::invalid_argument(e.to_string())
        }
        LogError::DiskFull(_) | LogError::Storage(_) | LogError::NeedsReopen => {
            Status::unavailable(e.to_string())
        }
        LogError::Refused(_) => Status::failed_precondition(e.to_string()),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("source worker failed: {e}")))?
        .map_err(status)
}

type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Source for SourceService {
    async fn list_partitions(
        &self,
        request: Request<ListPartitionsRequest>,
    ) -> Result<Response<ListPartitionsResponse>, Status> {
        let name = request.into_inner().source;
        let log = self.log.clone();
        let lookup = name.clone();
        let partitions = blocking(move || log.partitions(&lookup))
            .await?
            .ok_or_else(|| status(LogError::NoSuchSource(name)))?;
        Ok(Response::new(ListPartitionsResponse {
            partitions: partitions
                .into_iter()
                .map(|p| PartitionInfo {
                    id: p.id,
                    uuid: p.uuid,
                    high_seq: p.high_seq,
                })
                .collect(),
        }))
    }

    type StreamStream = EventStream;

    async fn import(
        &self,
        request: Request<ImportRequest>,
    ) -> Result<Response<ImportResponse>, Status> {
        let r = request.into_inner();
        let entries: Vec<crate::log::Entry> = r
            .entries
            .into_iter()
            .map(|e| crate::log::Entry {
                seq: e.seq,
                key: e.key,
                doc: (!e.deleted).then_some(e.doc),
            })
            .collect();
        if entries.windows(2).any(|w| w[0].seq >= w[1].seq) {
            return Err(Status::invalid_argument("entries: seqs must increase"));
        }
        let log = self.log.clone();
        let high = blocking(move || {
            log.import(
                &r.source,
                r.partitions,
                r.partition,
                &r.partition_uuid,
                &entries,
            )
        })
        .await?;
        Ok(Response::new(ImportResponse { high_seq: high }))
    }

    async fn stream(
        &self,
        request: Request<StreamRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let req = request.into_inner();
        // Subscribe before reading so no commit after the read is missed.
        let commits = self.log.subscribe();
        let log = self.log.clone();
        let name = req.source.clone();
        let partitions = blocking(move || log.partitions(&name))
            .await?
            .ok_or_else(|| status(LogError::NoSuchSource(req.source.clone())))?;
        let info = partitions
            .into_iter()
            .find(|p| p.id == req.partition)
            .ok_or_else(|| {
                status(LogError::NoSuchPartition {
                    name: req.source.clone(),
                    partition: req.partition,
                })
            })?;
        let (tx, rx) = mpsc::channel(1024);
        // Another history (a different uuid, or a position without one): from the start.
        let foreign = if req.partition_uuid.is_empty() {
            req.from_seq > 0
        } else {
            req.partition_uuid != info.uuid
        };
        let rollback = if foreign {
            Some(0)
        } else if req.from_seq > info.high_seq {
            Some(info.high_seq)
        } else {
            None
        };
        if let Some(seq) = rollback {
            let event = Event::Rollback(Rollback {
                seq,
                partition_uuid: info.uuid,
            });
            let _ = tx.send(Ok(StreamEvent { event: Some(event) })).await;
        } else {
            let feeder = Feeder {
                log: self.log.clone(),
                source: req.source,
                partition: req.partition,
                uuid: info.uuid,
                tx,
            };
            tokio::spawn(feeder.run(req.from_seq, commits));
        }
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

struct Feeder {
    log: SourceLog,
    source: String,
    partition: u32,
    uuid: String,
    tx: mpsc::Sender<Result<StreamEvent, Status>>,
}

impl Feeder {
    /// Sends everything after `next`, then waits for commits to this partition; ends when the
    /// caller hangs up or the log fails.
    async fn run(
        self,
        mut next: u64,
        mut commits: broadcast::Receiver<std::sync::Arc<crate::log::Appended>>,
    ) {
        loop {
            let (log, source, partition) = (self.log.clone(), self.source.clone(), self.partition);
            let batch = match blocking(move || log.read(&source, partition, next, BATCH)).await {
                Ok(batch) => batch,
                Err(e) => {
                    let _ = self.tx.send(Err(e)).await;
                    return;
                }
            };
            if let (Some(first), Some(last)) = (batch.first(), batch.last()) {
                let marker = Event::Snapshot(Snapshot {
                    start_seq: first.seq,
                    end_seq: last.seq,
                    partition_uuid: self.uuid.clone(),
                });
                if self
                    .tx
                    .send(Ok(StreamEvent {
                        event: Some(marker),
                    }))
                    .await
                    .is_err()
                {
                    return;
                }
                for entry in batch {
                    next = entry.seq;
                    let event = match entry.doc {
                        Some(doc) => Event::Mutation(Mutation {
                            seq: entry.seq,
                            key: entry.key,
                            doc,
                        }),
                        None => Event::Deletion(Deletion {
                            seq: entry.seq,
                            key: entry.key,
                        }),
                    };
                    if self
                        .tx
                        .send(Ok(StreamEvent { event: Some(event) }))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                continue;
            }
            // Caught up: wait for a commit to this partition past `next`.
            loop {
                tokio::select! {
                    () = self.tx.closed() => return,
                    commit = commits.recv() => match commit {
                        Ok(c) if c.source == self.source && c.partition == self.partition && c.seq > next => break,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        }
    }
}
