//! Where a feed's changes come from. A PIndex reads some partitions of one source; every
//! source type answers the same three questions, so the janitor's feeds, the index status,
//! `at_plus` queries, metrics and the planner never ask which type they read:
//!
//! - [`SourceType::partitions`]: each partition's id, the uuid of the history it holds (a new
//!   uuid means the partition's history was replaced) and its high seq;
//! - [`FeedSession::stream`]: a partition's changes after a seq, stored ones then live ones;
//! - and, inside that stream, [`SourceEvent::Rollback`] when the resume point is no longer in
//!   the partition's history.
//!
//! Implementations: [`reference`] (type `tessera`, the node's own log over gRPC) and
//! [`jetstream`] (type `jetstream`, a NATS JetStream stream). A new type (Kafka, Postgres) is
//! a new module, a [`validate`] arm and an [`Sources::open`] arm.
//!
//! This crate opens connections and reads; it never writes a PIndex or the Cfg.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::stream::BoxStream;

pub mod dial;
pub mod jetstream;
pub mod reference;
mod registry;
mod validate;

pub use dial::{DialPolicy, PathPolicy};
pub use registry::Sources;
pub use validate::{validate, SOURCE_TYPES};

/// One partition of a source as it stands now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Names the history the partition holds; a replaced history has another uuid.
    pub uuid: String,
    /// The seq of the last change in the partition (0: none yet).
    pub high_seq: u64,
}

/// What a partition stream yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceEvent {
    /// The history the following changes belong to.
    Snapshot {
        uuid: String,
    },
    Mutation {
        seq: u64,
        key: String,
        doc: Vec<u8>,
    },
    Deletion {
        seq: u64,
        key: String,
    },
    /// A change at `seq` the source type cannot turn into a document (a JetStream message
    /// without a key, say): the position moves past it and nothing is indexed.
    Skipped {
        seq: u64,
        reason: String,
    },
    /// The resume point is not in the partition's history (now `uuid`): drop what was read
    /// from it and stream again from the start. Ends the stream.
    Rollback {
        uuid: String,
    },
}

pub type ChangeStream = BoxStream<'static, Result<SourceEvent, SourceError>>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// The source, stream or partition does not exist (now).
    #[error("{0}")]
    NotFound(String),
    /// The source did not answer, or answered with an error.
    #[error("{0}")]
    Unavailable(String),
    /// The definition cannot be read as this source type's parameters.
    #[error("{0}")]
    Invalid(String),
}

/// A source an index reads, opened from its definition by [`Sources::open`].
#[async_trait::async_trait]
pub trait SourceType: Send + Sync {
    /// Names the source in messages: its type, name and where it answers.
    fn describe(&self) -> String;

    /// Every partition, by id. Bounded in time (a few seconds).
    async fn partitions(&self) -> Result<BTreeMap<u32, PartitionInfo>, SourceError>;

    /// The connections one feed streams `partitions` over (each feed its own, so one slow
    /// feed does not hold the others' streams).
    fn session(&self, partitions: &[u32]) -> Arc<dyn FeedSession>;
}

/// A feed's connections to its source.
#[async_trait::async_trait]
pub trait FeedSession: Send + Sync {
    /// `partition`'s changes after `from_seq` of history `uuid` (empty: none read yet): first
    /// a [`SourceEvent::Snapshot`], then stored changes in seq order, then live ones; or a
    /// single [`SourceEvent::Rollback`] when `from_seq`/`uuid` is not in the history.
    async fn stream(
        &self,
        partition: u32,
        from_seq: u64,
        uuid: &str,
    ) -> Result<ChangeStream, SourceError>;
}

/// The high seq of each partition (what `at_plus` and caught-up checks compare against).
pub fn highs(partitions: &BTreeMap<u32, PartitionInfo>) -> BTreeMap<u32, u64> {
    partitions.iter().map(|(p, i)| (*p, i.high_seq)).collect()
}

/// The uuid of each partition (what incident checks compare against).
pub fn uuids(partitions: &BTreeMap<u32, PartitionInfo>) -> BTreeMap<u32, String> {
    partitions
        .iter()
        .map(|(p, i)| (*p, i.uuid.clone()))
        .collect()
}

/// The partition a document key belongs to: `crc32(key) % partitions`, for every source type
/// (the reference source routes so; JetStream producers must publish so).
pub fn partition_of(key: &str, partitions: u32) -> u32 {
    crc32fast::hash(key.as_bytes()) % partitions.max(1)
}

/// Each partition's uuid and high seq, as the backup and recovery plans take them.
pub async fn uuids_and_highs(
    source: &dyn SourceType,
) -> Result<BTreeMap<u32, (String, u64)>, SourceError> {
    Ok(source
        .partitions()
        .await?
        .into_iter()
        .map(|(p, i)| (p, (i.uuid, i.high_seq)))
        .collect())
}

/// `call`, or [`SourceError::Unavailable`] saying `what` once `limit` has passed.
pub(crate) async fn within<T>(
    limit: std::time::Duration,
    what: String,
    call: impl std::future::Future<Output = Result<T, SourceError>>,
) -> Result<T, SourceError> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(SourceError::Unavailable(format!(
            "{what} within {} s",
            limit.as_secs()
        )))
    })
}

#[cfg(test)]
mod tests {
    /// Producers compute partitions with their language's CRC-32 (IEEE, as zlib's): the
    /// values here are Python's `zlib.crc32(key.encode()) % 64`.
    #[test]
    fn routing_is_zlibs_crc32() {
        assert_eq!(super::partition_of("doc-1", 64), 41);
        assert_eq!(super::partition_of("d42", 64), 25);
        assert_eq!(super::partition_of("книга", 64), 57);
        assert_eq!(super::partition_of("anything", 1), 0);
    }
}
