//! A reference source's logs saved and restored through the source protocol, so any source
//! (a node's embedded one or a standalone one) can be backed up and any can be restored into.
//!
//! Saving streams each partition from its start up to the high seq it had when the save began
//! (later writes belong to the next backup), into chunks of NDJSON lines — `{"s": seq, "k":
//! key, "d": document}` or `{"s": seq, "k": key, "x": true}` for a deletion — each a blob.
//! Restoring imports the lines at their own seqs under the saved partition uuid, so restored
//! PIndexes' checkpoints point into the restored log as they did into the original.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tessera_proto::peers::Peers;
use tessera_proto::v1::stream_event::Event;
use tessera_proto::v1::{ImportEntry, ImportRequest, StreamRequest};

use crate::manifest::{FileEntry, PartitionPoint, SourceEntry};
use crate::repo::Repository;
use crate::save::{Pace, Sent};
use crate::BackupError;

/// Bytes of lines per chunk blob.
const CHUNK_BYTES: usize = 4 << 20;
/// Bytes of documents per import call (under gRPC's 4 MiB message limit).
const IMPORT_BYTES: usize = 1 << 20;
/// How long a stream may stay silent before the save gives up.
const SILENCE: Duration = Duration::from_secs(60);

#[derive(Serialize, Deserialize)]
struct Line {
    s: u64,
    k: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    d: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    x: bool,
}

fn source_error(e: impl std::fmt::Display) -> BackupError {
    BackupError::Storage(format!("source: {e}"))
}

/// Saves source `name` at `url` into `repo`.
pub async fn save_source(
    repo: &Repository,
    peers: &Peers,
    url: &str,
    name: &str,
    pace: &mut Pace,
) -> Result<(SourceEntry, Sent), BackupError> {
    let infos = tessera_sources::reference::partition_infos(peers, url, name)
        .await
        .map_err(source_error)?;
    let mut partitions = BTreeMap::new();
    let mut chunks = Chunks {
        repo,
        pace,
        files: Vec::new(),
        sent: Sent::default(),
        buf: Vec::new(),
        partition: 0,
        n: 0,
    };
    for (&p, (uuid, high)) in &infos {
        let point = PartitionPoint {
            seq: *high,
            partition_uuid: uuid.clone(),
        };
        partitions.insert(p, point);
        if *high > 0 {
            chunks.partition(p).await?;
            save_partition(peers, url, name, p, *high, &mut chunks).await?;
        }
    }
    chunks.flush().await?;
    let entry = SourceEntry {
        name: name.to_string(),
        read_from: url.to_string(),
        partitions,
        files: chunks.files,
    };
    Ok((entry, chunks.sent))
}

/// Streams partition `p` from its start up to `high` into `chunks`.
async fn save_partition(
    peers: &Peers,
    url: &str,
    name: &str,
    p: u32,
    high: u64,
    chunks: &mut Chunks<'_>,
) -> Result<(), BackupError> {
    let mut client = peers.source(url).map_err(source_error)?;
    let request = StreamRequest {
        source: name.to_string(),
        partition: p,
        from_seq: 0,
        partition_uuid: String::new(),
    };
    let mut stream = client
        .stream(request)
        .await
        .map_err(|e| source_error(e.message()))?
        .into_inner();
    let mut reached = 0;
    while reached < high {
        let event = tokio::time::timeout(SILENCE, stream.message())
            .await
            .map_err(|_| source_error(format!("partition {p}: silent for {SILENCE:?}")))?
            .map_err(|e| source_error(e.message()))?
            .ok_or_else(|| source_error(format!("partition {p}: the stream ended at {reached}")))?;
        let line = match event.event {
            Some(Event::Mutation(m)) => Line {
                s: m.seq,
                k: m.key,
                d: Some(
                    String::from_utf8(m.doc)
                        .map_err(|e| source_error(format!("a document is not UTF-8: {e}")))?,
                ),
                x: false,
            },
            Some(Event::Deletion(d)) => Line {
                s: d.seq,
                k: d.key,
                d: None,
                x: true,
            },
            Some(Event::Rollback(_)) => {
                return Err(source_error(format!(
                    "partition {p}'s history was replaced while it was saved"
                )))
            }
            _ => continue,
        };
        if line.s > high {
            break;
        }
        reached = line.s;
        chunks.push(&line).await?;
    }
    Ok(())
}

/// NDJSON lines gathered into chunk blobs of about [`CHUNK_BYTES`], named by partition.
struct Chunks<'a> {
    repo: &'a Repository,
    pace: &'a mut Pace,
    files: Vec<FileEntry>,
    sent: Sent,
    buf: Vec<u8>,
    partition: u32,
    /// The next chunk's number within the partition.
    n: u32,
}

impl Chunks<'_> {
    /// Ends the current partition's last chunk; the next lines are of `partition`.
    async fn partition(&mut self, partition: u32) -> Result<(), BackupError> {
        self.flush().await?;
        self.partition = partition;
        self.n = 0;
        Ok(())
    }

    async fn push(&mut self, line: &Line) -> Result<(), BackupError> {
        serde_json::to_writer(&mut self.buf, line)
            .map_err(|e| BackupError::Encode(e.to_string()))?;
        self.buf.push(b'\n');
        if self.buf.len() >= CHUNK_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), BackupError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let blob = self.repo.put_blob(std::mem::take(&mut self.buf)).await?;
        self.pace.sent(blob.uploaded).await;
        self.sent.count(&blob);
        self.files.push(FileEntry {
            name: format!("p{}-{:06}", self.partition, self.n),
            hash: blob.hash,
            size: blob.size,
        });
        self.n += 1;
        Ok(())
    }
}

/// Restores the saved source `entry` into source `name` at `url` (which must not hold other
/// histories of those partitions). Returns the entries imported.
pub async fn load_source(
    repo: &Repository,
    peers: &Peers,
    url: &str,
    name: &str,
    entry: &SourceEntry,
) -> Result<u64, BackupError> {
    let count = entry.partitions.len() as u32;
    let mut imported = 0;
    for (&p, point) in &entry.partitions {
        let prefix = format!("p{p}-");
        let mut batch = Vec::new();
        let mut bytes = 0;
        for file in entry.files.iter().filter(|f| f.name.starts_with(&prefix)) {
            let content = repo.get_blob(&file.hash, file.size).await?;
            for raw in content.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let line: Line = serde_json::from_slice(raw).map_err(|e| BackupError::Damaged {
                    what: format!("source {} chunk {}", entry.name, file.name),
                    reason: e.to_string(),
                })?;
                bytes += line.d.as_ref().map_or(0, String::len) + line.k.len();
                batch.push(ImportEntry {
                    seq: line.s,
                    key: line.k,
                    doc: line.d.map(String::into_bytes).unwrap_or_default(),
                    deleted: line.x,
                });
                if bytes >= IMPORT_BYTES {
                    imported += import(
                        peers,
                        url,
                        name,
                        count,
                        p,
                        &point.partition_uuid,
                        &mut batch,
                    )
                    .await?;
                    bytes = 0;
                }
            }
        }
        imported += import(
            peers,
            url,
            name,
            count,
            p,
            &point.partition_uuid,
            &mut batch,
        )
        .await?;
    }
    Ok(imported)
}

async fn import(
    peers: &Peers,
    url: &str,
    name: &str,
    partitions: u32,
    partition: u32,
    uuid: &str,
    batch: &mut Vec<ImportEntry>,
) -> Result<u64, BackupError> {
    let entries = std::mem::take(batch);
    let n = entries.len() as u64;
    let mut client = peers.source(url).map_err(source_error)?;
    let request = ImportRequest {
        source: name.to_string(),
        partitions,
        partition,
        partition_uuid: uuid.to_string(),
        entries,
    };
    client
        .import(request)
        .await
        .map_err(|e| source_error(e.message()))?;
    Ok(n)
}
