//! The reference source, type `tessera`: documents routed by key hash to partitions
//! (`crc32(key) % N`, like vbuckets), each partition a durable, ordered log of mutations and
//! deletions with a partition uuid. It is written through REST ([`rest`]) and read through
//! the gRPC source protocol ([`grpc`], `proto/tessera/v1/source.proto`). Embedded in every node,
//! or standalone (`tessera source`).
//!
//! - [`log`]: the durable logs (one redb file) and live notifications.
//! - [`routing`]: key → partition.
//!
//! The client side (a feed streaming source partitions into a PIndex) is the janitor's.

pub mod grpc;
pub mod log;
pub mod rest;
pub mod routing;

pub use log::{Append, LogError, SourceLog, SourceSummary};

/// Partitions of a source created without saying.
pub const DEFAULT_PARTITIONS: u32 = 1024;
