//! Writing to JetStream the way the `jetstream` source type reads it: creating a stream whose
//! subjects are a prefix's partitions, and publishing documents on their key's partition
//! subject with the key in a header (what `tessera ctl load --jetstream` does).

use std::collections::VecDeque;

use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;

use super::{DELETE_HEADER, KEY_HEADER};
use crate::SourceError;

/// Publishes awaiting acknowledgement at once; past it, the oldest is awaited first.
const WINDOW: usize = 512;
/// How long creating a stream is retried.
const CREATE_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// What a stream for Tessera is made with.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub name: String,
    pub subject_prefix: String,
    pub partitions: u32,
    /// Servers holding each message (1, or 3 in a 3-server cluster).
    pub replicas: usize,
}

/// The stream's description, naming its partition count so that producers need not be told.
pub fn description(partitions: u32, subject_prefix: &str) -> String {
    format!("tessera: {partitions} partitions on {subject_prefix}.<partition>")
}

/// The partition count a [`description`] names.
pub fn partitions_in_description(description: &str) -> Option<u32> {
    description
        .strip_prefix("tessera: ")?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

/// Creates the stream (file storage, no limits: a source of record keeps every message), or
/// answers the existing one if it was made the same way.
pub async fn create_stream(
    client: &async_nats::Client,
    spec: &StreamSpec,
) -> Result<stream::Info, SourceError> {
    let context = jetstream::new(client.clone());
    let config = stream::Config {
        name: spec.name.clone(),
        description: Some(description(spec.partitions, &spec.subject_prefix)),
        subjects: vec![format!("{}.*", spec.subject_prefix)],
        storage: stream::StorageType::File,
        num_replicas: spec.replicas.max(1),
        ..Default::default()
    };
    // A cluster that just lost or elected its JetStream leader answers late: ask again (the
    // call is idempotent) within a bound.
    let deadline = tokio::time::Instant::now() + CREATE_WITHIN;
    let mut created = loop {
        match context.get_or_create_stream(config.clone()).await {
            Ok(stream) => break stream,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(stream = spec.name, error = %e, "creating the stream; asking again");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => {
                let name = &spec.name;
                return Err(SourceError::Unavailable(format!(
                    "creating stream `{name}`: {e}"
                )));
            }
        }
    };
    let info = created
        .info()
        .await
        .map_err(|e| SourceError::Unavailable(format!("stream `{}`: {e}", spec.name)))?;
    let subjects = vec![format!("{}.*", spec.subject_prefix)];
    if info.config.subjects != subjects {
        return Err(SourceError::Invalid(format!(
            "stream `{}` exists with subjects {:?}, not {:?}",
            spec.name, info.config.subjects, subjects
        )));
    }
    Ok(info.clone())
}

/// One change to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Put { key: String, doc: Vec<u8> },
    Delete { key: String },
}

/// Publishes changes on a stream's partition subjects, a window of them in flight.
pub struct Producer {
    context: jetstream::Context,
    subject_prefix: String,
    partitions: u32,
    pending: VecDeque<PublishAckFuture>,
}

impl Producer {
    /// A producer for `stream`; `partitions` defaults to what the stream's description names.
    pub async fn new(
        client: &async_nats::Client,
        stream: &str,
        subject_prefix: &str,
        partitions: Option<u32>,
    ) -> Result<Self, SourceError> {
        let context = jetstream::new(client.clone());
        let partitions = match partitions {
            Some(p) => p,
            None => {
                let mut found = context.get_stream(stream).await.map_err(|e| {
                    SourceError::NotFound(format!("JetStream stream `{stream}`: {e}"))
                })?;
                let info = found
                    .info()
                    .await
                    .map_err(|e| SourceError::Unavailable(format!("stream `{stream}`: {e}")))?;
                info.config
                    .description
                    .as_deref()
                    .and_then(partitions_in_description)
                    .ok_or_else(|| {
                        SourceError::Invalid(format!(
                            "stream `{stream}` does not say its partition count (it was not made by `tessera ctl source create-stream`): give --partitions"
                        ))
                    })?
            }
        };
        Ok(Self {
            context,
            subject_prefix: subject_prefix.to_string(),
            partitions: partitions.max(1),
            pending: VecDeque::new(),
        })
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Publishes `change`; returns how many earlier publishes were acknowledged meanwhile.
    pub async fn send(&mut self, change: Change) -> Result<u64, SourceError> {
        let mut acked = 0;
        while self.pending.len() >= WINDOW {
            acked += self.ack_oldest().await?;
        }
        let (key, payload, delete) = match change {
            Change::Put { key, doc } => (key, doc, false),
            Change::Delete { key } => (key, Vec::new(), true),
        };
        let subject = format!(
            "{}.{}",
            self.subject_prefix,
            crate::partition_of(&key, self.partitions)
        );
        let mut headers = HeaderMap::new();
        headers.insert(KEY_HEADER, key.as_str());
        if delete {
            headers.insert(DELETE_HEADER, "true");
        }
        let ack = self
            .context
            .publish_with_headers(subject, headers, payload.into())
            .await
            .map_err(|e| SourceError::Unavailable(format!("publishing `{key}`: {e}")))?;
        self.pending.push_back(ack);
        Ok(acked)
    }

    /// Waits for every publish in flight; returns how many were acknowledged.
    pub async fn flush(&mut self) -> Result<u64, SourceError> {
        let mut acked = 0;
        while !self.pending.is_empty() {
            acked += self.ack_oldest().await?;
        }
        Ok(acked)
    }

    async fn ack_oldest(&mut self) -> Result<u64, SourceError> {
        let Some(ack) = self.pending.pop_front() else {
            return Ok(0);
        };
        ack.await
            .map(|_| 1)
            .map_err(|e| SourceError::Unavailable(format!("publish not acknowledged: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_names_the_partition_count() {
        assert_eq!(
            partitions_in_description(&description(64, "docs")),
            Some(64)
        );
        assert_eq!(partitions_in_description("something else"), None);
    }
}
