//! Reading a JetStream stream as partitions: listing their uuids and high seqs, and streaming
//! one partition through an ephemeral consumer filtered on its subject.
//!
//! A consumer does not notice when its stream's history is replaced (a purge keeps it going;
//! a stream made again under the same name can even be followed by a consumer that re-creates
//! itself), so the source watches the stream's identity itself: one task per source polls it
//! every [`WATCH_EVERY`], and every open partition stream ends with a rollback when it changes.
//! Any consumer error ends the partition stream too; the feed opens it again after its last
//! seq, which checks the history afresh.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{self, stream::Info};
use futures::StreamExt;
use tokio::sync::watch;

use super::{JetStreamParams, DELETE_HEADER, KEY_HEADER};
use crate::{ChangeStream, FeedSession, PartitionInfo, SourceError, SourceEvent, SourceType};

/// How long listing partitions may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening a partition's consumer may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// High-seq look-ups in flight at once while listing.
const LOOKUPS_IN_FLIGHT: usize = 32;
/// How often the stream's identity is checked while partitions stream.
pub const WATCH_EVERY: Duration = Duration::from_secs(2);
/// A partition stream that hears nothing from its consumer for about twice this ends.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// A consumer nobody pulls from is removed by the server after this long.
const INACTIVE: Duration = Duration::from_secs(30);

/// One definition's stream, over a client shared by every source on the same servers. Clones
/// share the history watch.
#[derive(Clone)]
pub struct JetStreamSource {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    params: JetStreamParams,
    partitions: u32,
    /// The stream's identity as last polled (`None`: not yet; an empty string: the stream is
    /// gone), for open partition streams to follow.
    history: watch::Sender<Option<String>>,
    watching: std::sync::atomic::AtomicBool,
}

impl JetStreamSource {
    pub fn new(client: async_nats::Client, params: JetStreamParams, partitions: u32) -> Self {
        let inner = Inner {
            client,
            params,
            partitions,
            history: watch::channel(None).0,
            watching: std::sync::atomic::AtomicBool::new(false),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    fn params(&self) -> &JetStreamParams {
        &self.inner.params
    }

    /// The stream and what it says of itself now.
    async fn stream_and_info(&self) -> Result<(jetstream::stream::Stream, Info), SourceError> {
        let mut stream = get_stream(&self.inner.client, &self.inner.params.stream).await?;
        let info = stream
            .info()
            .await
            .map_err(|e| SourceError::Unavailable(format!("stream info: {e}")))?
            .clone();
        Ok((stream, info))
    }

    /// Starts the task polling the stream's identity, unless it runs; it ends when no
    /// partition stream follows it any more (or with the last clone).
    fn watch_history(&self) {
        use std::sync::atomic::Ordering;
        if self.inner.watching.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(WATCH_EVERY).await;
                let Some(inner) = weak.upgrade() else { return };
                if inner.history.receiver_count() == 0 {
                    inner.watching.store(false, Ordering::Release);
                    // A stream opened meanwhile found the flag still set: watch for it.
                    if inner.history.receiver_count() == 0
                        || inner.watching.swap(true, Ordering::AcqRel)
                    {
                        return;
                    }
                }
                let polled = match get_stream(&inner.client, &inner.params.stream).await {
                    Ok(mut stream) => stream.info().await.ok().map(history_uuid),
                    Err(SourceError::NotFound(_)) => Some(String::new()),
                    Err(_) => None,
                };
                // Not answering says nothing about the history.
                if let Some(uuid) = polled {
                    inner.history.send_if_modified(|now| {
                        let changed = now.as_deref() != Some(uuid.as_str());
                        *now = Some(uuid);
                        changed
                    });
                }
            }
        });
    }
}

async fn get_stream(
    client: &async_nats::Client,
    name: &str,
) -> Result<jetstream::stream::Stream, SourceError> {
    jetstream::new(client.clone())
        .get_stream(name)
        .await
        .map_err(|e| stream_error(name, e))
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
            self.params().stream,
            self.params().subject_prefix,
            self.params().servers.join(",")
        )
    }

    async fn partitions(&self) -> Result<BTreeMap<u32, PartitionInfo>, SourceError> {
        let list = async {
            let (stream, info) = self.stream_and_info().await?;
            let uuid = history_uuid(&info);
            let empty = info.state.messages == 0;
            // A stream made by `tessera ctl source create-stream` names its partition count:
            // that is the source's, whatever the definition says.
            let count = info
                .config
                .description
                .as_deref()
                .and_then(super::producer::partitions_in_description)
                .unwrap_or(self.inner.partitions);
            let highs: Vec<Result<(u32, u64), SourceError>> = futures::stream::iter(0..count)
                .map(|p| {
                    let stream = &stream;
                    let subject = self.params().subject(p);
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
        let what = format!("{}: no answer", self.describe());
        crate::within(LIST_TIMEOUT, what, list).await
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
        if partition >= self.inner.partitions {
            return Err(SourceError::NotFound(format!(
                "partition {partition} of {} (it has {})",
                self.describe(),
                self.inner.partitions
            )));
        }
        let open = async {
            let (stream, info) = self.stream_and_info().await?;
            let current = history_uuid(&info);
            let mut history = self.inner.history.subscribe();
            self.watch_history();
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
                .create_consumer(pull::Config {
                    filter_subject: self.params().subject(partition),
                    deliver_policy,
                    ack_policy: AckPolicy::None,
                    inactive_threshold: INACTIVE,
                    memory_storage: true,
                    num_replicas: 1,
                    ..Default::default()
                })
                .await
                .map_err(|e| SourceError::Unavailable(format!("consumer: {e}")))?;
            let messages = consumer
                .stream()
                .heartbeat(HEARTBEAT)
                .expires(HEARTBEAT * 4)
                .messages()
                .await
                .map_err(|e| SourceError::Unavailable(format!("consumer messages: {e}")))?;
            let snapshot = futures::stream::iter([Ok(SourceEvent::Snapshot {
                uuid: current.clone(),
            })]);
            // Without acknowledgements, a delivery lost on its way (a server killed) is not sent
            // again: a gap in the consumer's own sequence says so, and the stream ends so that
            // the feed reads again after its last seq.
            let changes = messages.scan(1u64, |next, message| {
                let event = match message {
                    Ok(message) => in_order(&message, next),
                    Err(e) => Err(SourceError::Unavailable(format!("consumer: {e}"))),
                };
                let end = event.is_err();
                async move { Some((event, end)) }
            });
            let changes = changes.scan(false, |ended, (event, end)| {
                let next = (!*ended).then_some(event);
                *ended |= end;
                async move { next }
            });
            // The stream's identity changing ends the partition stream with a rollback.
            history.mark_unchanged();
            let replaced =
                futures::stream::unfold((history, current), |(mut history, current)| async move {
                    loop {
                        history.changed().await.ok()?;
                        let now = history.borrow_and_update().clone();
                        if let Some(now) = now.filter(|now| *now != current) {
                            let rollback = SourceEvent::Rollback { uuid: now };
                            return Some((Ok(rollback), (history, current)));
                        }
                    }
                });
            Ok(snapshot
                .chain(futures::stream::select(changes, replaced))
                .boxed())
        };
        let what = format!("{} did not open partition {partition}", self.describe());
        crate::within(OPEN_TIMEOUT, what, open).await
    }
}

/// `message` as a change, if it is the consumer's delivery `next` (then `next` moves on).
fn in_order(message: &jetstream::Message, next: &mut u64) -> Result<SourceEvent, SourceError> {
    let info = message
        .info()
        .map_err(|e| SourceError::Unavailable(format!("message metadata: {e}")))?;
    if info.consumer_sequence != *next {
        return Err(SourceError::Unavailable(format!(
            "the consumer skipped deliveries {next}..{} (a server failed): reading again",
            info.consumer_sequence
        )));
    }
    *next += 1;
    event_of(message, info.stream_sequence)
}

/// A message as a change: its key from [`KEY_HEADER`], a deletion when [`DELETE_HEADER`] is
/// set, its payload the document.
fn event_of(message: &jetstream::Message, seq: u64) -> Result<SourceEvent, SourceError> {
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
