//! Reading a JetStream stream as partitions: listing their uuids and high seqs, and streaming
//! one partition through an ordered consumer filtered on its subject.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use async_nats::jetstream::{self, stream::Info};
use futures::StreamExt;

use super::{JetStreamParams, DELETE_HEADER, KEY_HEADER};
use crate::{ChangeStream, FeedSession, PartitionInfo, SourceError, SourceEvent, SourceType};

/// How long listing partitions may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening a partition's consumer may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// High-seq look-ups in flight at once while listing.
const LOOKUPS_IN_FLIGHT: usize = 32;

/// One definition's stream, over a client shared by every source on the same servers.
#[derive(Clone)]
pub struct JetStreamSource {
    client: async_nats::Client,
    params: Arc<JetStreamParams>,
    partitions: u32,
}

impl JetStreamSource {
    pub fn new(client: async_nats::Client, params: JetStreamParams, partitions: u32) -> Self {
        Self {
            client,
            params: Arc::new(params),
            partitions,
        }
    }

    async fn stream(&self) -> Result<jetstream::stream::Stream, SourceError> {
        let context = jetstream::new(self.client.clone());
        context
            .get_stream(&self.params.stream)
            .await
            .map_err(|e| stream_error(&self.params.stream, e))
    }
}

/// The history a stream holds: its name, creation time and first sequence (see the module
/// docs of [`super`]). An empty stream's first sequence counts as 1, so the first message does
/// not change it.
pub fn history_uuid(info: &Info) -> String {
    format!(
        "{}@{}+{}",
        info.config.name,
        info.created.unix_timestamp_nanos(),
        info.state.first_sequence.max(1)
    )
}

fn stream_error(stream: &str, e: async_nats::jetstream::context::GetStreamError) -> SourceError {
    use async_nats::jetstream::context::GetStreamErrorKind;
    match e.kind() {
        GetStreamErrorKind::JetStream(j)
            if j.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND =>
        {
            SourceError::NotFound(format!("JetStream stream `{stream}` does not exist"))
        }
        _ => SourceError::Unavailable(format!("JetStream stream `{stream}`: {e}")),
    }
}

#[async_trait::async_trait]
impl SourceType for JetStreamSource {
    fn describe(&self) -> String {
        format!(
            "JetStream stream `{}` ({}.*) at {}",
            self.params.stream,
            self.params.subject_prefix,
            self.params.servers.join(",")
        )
    }

    async fn partitions(&self) -> Result<BTreeMap<u32, PartitionInfo>, SourceError> {
        let list = async {
            let mut stream = self.stream().await?;
            let info = stream
                .info()
                .await
                .map_err(|e| SourceError::Unavailable(format!("stream info: {e}")))?
                .clone();
            let uuid = history_uuid(&info);
            let empty = info.state.messages == 0;
            // A stream made by `tessera ctl source create-stream` names its partition count:
            // that is the source's, whatever the definition says.
            let count = info
                .config
                .description
                .as_deref()
                .and_then(super::producer::partitions_in_description)
                .unwrap_or(self.partitions);
            let highs: Vec<Result<(u32, u64), SourceError>> = futures::stream::iter(0..count)
                .map(|p| {
                    let stream = &stream;
                    let subject = self.params.subject(p);
                    async move {
                        if empty {
                            return Ok((p, 0));
                        }
                        last_seq(stream, &subject).await.map(|seq| (p, seq))
                    }
                })
                .buffer_unordered(LOOKUPS_IN_FLIGHT)
                .collect()
                .await;
            let mut partitions = BTreeMap::new();
            for high in highs {
                let (p, high_seq) = high?;
                let uuid = uuid.clone();
                partitions.insert(p, PartitionInfo { uuid, high_seq });
            }
            Ok(partitions)
        };
        tokio::time::timeout(LIST_TIMEOUT, list)
            .await
            .unwrap_or_else(|_| {
                Err(SourceError::Unavailable(format!(
                    "{}: no answer within {} s",
                    self.describe(),
                    LIST_TIMEOUT.as_secs()
                )))
            })
    }

    fn session(&self, _partitions: &[u32]) -> Arc<dyn FeedSession> {
        // One NATS connection multiplexes any number of consumers.
        Arc::new(self.clone())
    }
}

/// The sequence of the last message on `subject` (0: none).
async fn last_seq(stream: &jetstream::stream::Stream, subject: &str) -> Result<u64, SourceError> {
    use async_nats::jetstream::stream::LastRawMessageErrorKind;
    match stream.get_last_raw_message_by_subject(subject).await {
        Ok(message) => Ok(message.sequence),
        Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => Ok(0),
        Err(e) => Err(SourceError::Unavailable(format!(
            "last message on `{subject}`: {e}"
        ))),
    }
}

#[async_trait::async_trait]
impl FeedSession for JetStreamSource {
    async fn stream(
        &self,
        partition: u32,
        from_seq: u64,
        uuid: &str,
    ) -> Result<ChangeStream, SourceError> {
        if partition >= self.partitions {
            return Err(SourceError::NotFound(format!(
                "partition {partition} of {} (it has {})",
                self.describe(),
                self.partitions
            )));
        }
        let open = async {
            let mut stream = self.stream().await?;
            let info = stream
                .info()
                .await
                .map_err(|e| SourceError::Unavailable(format!("stream info: {e}")))?
                .clone();
            let current = history_uuid(&info);
            // A position read from another history, or past the end of this one: from the
            // start. Nothing read yet (seq 0) is at home in any history.
            if from_seq > 0 && (uuid != current || from_seq > info.state.last_sequence) {
                let rollback = SourceEvent::Rollback { uuid: current };
                return Ok(futures::stream::iter([Ok(rollback)]).boxed());
            }
            let deliver_policy = if from_seq == 0 {
                DeliverPolicy::All
            } else {
                DeliverPolicy::ByStartSequence {
                    start_sequence: from_seq + 1,
                }
            };
            let consumer = stream
                .create_consumer(OrderedConfig {
                    filter_subject: self.params.subject(partition),
                    deliver_policy,
                    ..Default::default()
                })
                .await
                .map_err(|e| SourceError::Unavailable(format!("consumer: {e}")))?;
            let messages = consumer
                .messages()
                .await
                .map_err(|e| SourceError::Unavailable(format!("consumer messages: {e}")))?;
            let snapshot = futures::stream::iter([Ok(SourceEvent::Snapshot { uuid: current })]);
            let changes = messages.map(|message| match message {
                Ok(message) => event_of(&message),
                Err(e) => Err(SourceError::Unavailable(format!("consumer: {e}"))),
            });
            Ok(snapshot.chain(changes).boxed())
        };
        tokio::time::timeout(OPEN_TIMEOUT, open)
            .await
            .unwrap_or_else(|_| {
                Err(SourceError::Unavailable(format!(
                    "{} did not open partition {partition} within {} s",
                    self.describe(),
                    OPEN_TIMEOUT.as_secs()
                )))
            })
    }
}

/// A message as a change: its key from [`KEY_HEADER`], a deletion when [`DELETE_HEADER`] is
/// set, its payload the document.
fn event_of(message: &jetstream::Message) -> Result<SourceEvent, SourceError> {
    let seq = message
        .info()
        .map_err(|e| SourceError::Unavailable(format!("message metadata: {e}")))?
        .stream_sequence;
    let headers = message.headers.as_ref();
    let Some(key) = headers
        .and_then(|h| h.get(KEY_HEADER))
        .map(|k| k.as_str().to_string())
        .filter(|k| !k.is_empty())
    else {
        return Ok(SourceEvent::Skipped {
            seq,
            reason: format!("message {seq} has no {KEY_HEADER} header"),
        });
    };
    if headers.is_some_and(|h| h.get(DELETE_HEADER).is_some()) {
        return Ok(SourceEvent::Deletion { seq, key });
    }
    Ok(SourceEvent::Mutation {
        seq,
        key,
        doc: message.payload.to_vec(),
    })
}
