//! The source's durable logs: one redb file holding every source's partitions. Each append is
//! one transaction (all lines of a bulk request commit together or not at all) that gives each
//! document the next seq of its partition; subscribers hear about it after the commit.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

mod import;
pub mod repair;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::routing::partition_of;

/// name → source metadata (JSON).
const SOURCES: TableDefinition<&str, &[u8]> = TableDefinition::new("sources");
/// (name, partition) → high seq (8 bytes LE) + partition uuid.
const PARTITIONS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("partitions");
/// (name, partition, seq) → entry.
const LOG: TableDefinition<(&str, u32, u64), &[u8]> = TableDefinition::new("log");
/// (name, key) → () for every document currently present.
const KEYS: TableDefinition<(&str, &str), ()> = TableDefinition::new("keys");

/// Longest document key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("source name `{0}`: must be 1 to 64 letters, digits, `_` or `-`")]
    InvalidName(String),
    #[error("document key {0}: must be 1 to {MAX_KEY_BYTES} bytes")]
    InvalidKey(String),
    #[error("no source `{0}`")]
    NoSuchSource(String),
    #[error("source `{name}` has no partition {partition}")]
    NoSuchPartition { name: String, partition: u32 },
    #[error("disk full: {0}")]
    DiskFull(String),
    /// An earlier I/O error (a full disk) left the log file to be reopened; `SourceLog` does
    /// that itself and retries.
    #[error("the source log must be reopened after an I/O error")]
    NeedsReopen,
    #[error("source storage: {0}")]
    Storage(String),
    /// An import that would mix histories.
    #[error("{0}")]
    Refused(String),
}

impl LogError {
    fn storage(e: impl std::fmt::Display) -> Self {
        let text = e.to_string();
        if text.contains("Previous I/O error") {
            LogError::NeedsReopen
        } else if text.contains("No space left") || text.contains("StorageFull") {
            LogError::DiskFull(text)
        } else {
            LogError::Storage(text)
        }
    }
}

/// One write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Append {
    Put { key: String, doc: Vec<u8> },
    Delete { key: String },
}

impl Append {
    pub fn key(&self) -> &str {
        match self {
            Append::Put { key, .. } | Append::Delete { key } => key,
        }
    }
}

/// One logged change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub key: String,
    /// The document for a mutation; `None` for a deletion.
    pub doc: Option<Vec<u8>>,
}

/// A partition's identity and position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionInfo {
    pub id: u32,
    pub uuid: String,
    pub high_seq: u64,
}

/// What `GET /api/source/{name}` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceSummary {
    pub name: String,
    pub partitions: u32,
    /// Documents currently present.
    pub docs: u64,
    /// Sum of the partitions' high seqs: every change ever logged.
    pub changes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SourceMeta {
    partitions: u32,
}

/// A commit touched `partition` of `source` up to `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub source: String,
    pub partition: u32,
    pub seq: u64,
}

struct Inner {
    path: std::path::PathBuf,
    /// `None` between a failed reopen and the next try.
    db: std::sync::RwLock<Option<Database>>,
    default_partitions: u32,
    appended: broadcast::Sender<Arc<Appended>>,
}

/// The logs of every source kept by this process.
#[derive(Clone)]
pub struct SourceLog {
    inner: Arc<Inner>,
}

/// The partition count of `source`, which is created with `count` partitions (each with a
/// fresh uuid, high seq 0) if it does not exist.
fn ensure_source(
    sources: &mut redb::Table<&str, &[u8]>,
    partitions: &mut redb::Table<(&str, u32), &[u8]>,
    source: &str,
    count: u32,
) -> Result<u32, LogError> {
    let existing = sources
        .get(source)
        .map_err(LogError::storage)?
        .map(|v| serde_json::from_slice::<SourceMeta>(v.value()));
    match existing {
        Some(Ok(meta)) => Ok(meta.partitions),
        Some(Err(e)) => Err(LogError::Storage(format!("corrupt source meta: {e}"))),
        None => {
            let bytes =
                serde_json::to_vec(&SourceMeta { partitions: count }).map_err(LogError::storage)?;
            sources
                .insert(source, bytes.as_slice())
                .map_err(LogError::storage)?;
            for p in 0..count {
                let uuid = uuid::Uuid::new_v4().simple().to_string();
                partitions
                    .insert((source, p), encode_partition(0, &uuid).as_slice())
                    .map_err(LogError::storage)?;
            }
            Ok(count)
        }
    }
}

fn check_name(name: &str) -> Result<(), LogError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(LogError::InvalidName(name.to_string()))
    }
}

fn encode_partition(high: u64, uuid: &str) -> Vec<u8> {
    let mut out = high.to_le_bytes().to_vec();
    out.extend_from_slice(uuid.as_bytes());
    out
}

fn decode_partition(bytes: &[u8]) -> Result<(u64, String), LogError> {
    if bytes.len() < 8 {
        return Err(LogError::Storage("corrupt partition record".into()));
    }
    let mut high = [0u8; 8];
    high.copy_from_slice(&bytes[..8]);
    let uuid = String::from_utf8(bytes[8..].to_vec())
        .map_err(|_| LogError::Storage("corrupt partition uuid".into()))?;
    Ok((u64::from_le_bytes(high), uuid))
}

fn encode_entry(key: &str, doc: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + key.len() + doc.map_or(0, <[u8]>::len));
    out.push(u8::from(doc.is_some()));
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    if let Some(doc) = doc {
        out.extend_from_slice(doc);
    }
    out
}

fn decode_entry(seq: u64, bytes: &[u8]) -> Result<Entry, LogError> {
    let corrupt = || LogError::Storage(format!("corrupt log entry at seq {seq}"));
    if bytes.len() < 5 {
        return Err(corrupt());
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[1..5]);
    let len = u32::from_le_bytes(len) as usize;
    let key_bytes = bytes.get(5..5 + len).ok_or_else(corrupt)?;
    let key = String::from_utf8(key_bytes.to_vec()).map_err(|_| corrupt())?;
    let doc = (bytes[0] == 1).then(|| bytes[5 + len..].to_vec());
    Ok(Entry { seq, key, doc })
}

fn open_db(path: &Path) -> Result<Database, LogError> {
    let db = Database::builder()
        .set_cache_size(64 << 20)
        .create(path)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                LogError::Storage(format!("{} is in use by another process", path.display()))
            }
            other => LogError::storage(other),
        })?;
    let wtx = db.begin_write().map_err(LogError::storage)?;
    {
        wtx.open_table(SOURCES).map_err(LogError::storage)?;
        wtx.open_table(PARTITIONS).map_err(LogError::storage)?;
        wtx.open_table(LOG).map_err(LogError::storage)?;
        wtx.open_table(KEYS).map_err(LogError::storage)?;
    }
    wtx.commit().map_err(LogError::storage)?;
    Ok(db)
}

impl SourceLog {
    /// Opens (creating) the log file; new sources get `default_partitions` partitions.
    pub fn open(path: &Path, default_partitions: u32) -> Result<Self, LogError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(LogError::storage)?;
        }
        let db = open_db(path)?;
        let (appended, _) = broadcast::channel(4096);
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                db: std::sync::RwLock::new(Some(db)),
                default_partitions: default_partitions.max(1),
                appended,
            }),
        })
    }

    /// Runs `f` on the open database (`NeedsReopen` while there is none).
    fn with_db<T>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, redb::TransactionError>,
    ) -> Result<T, LogError> {
        let db = self
            .inner
            .db
            .read()
            .map_err(|_| LogError::Storage("source log lock poisoned".into()))?;
        f(db.as_ref().ok_or(LogError::NeedsReopen)?).map_err(LogError::storage)
    }

    fn begin_write(&self) -> Result<redb::WriteTransaction, LogError> {
        self.with_db(|db| db.begin_write())
    }

    fn begin_read(&self) -> Result<redb::ReadTransaction, LogError> {
        self.with_db(|db| db.begin_read())
    }

    /// Closes and reopens the file (redb refuses further writes after an I/O error).
    fn reopen(&self) -> Result<(), LogError> {
        let mut db = self
            .inner
            .db
            .write()
            .map_err(|_| LogError::Storage("source log lock poisoned".into()))?;
        // The old handle must be gone before the file can be opened again.
        drop(db.take());
        *db = Some(open_db(&self.inner.path)?);
        tracing::info!(path = %self.inner.path.display(), "source log reopened after an I/O error");
        Ok(())
    }

    /// Runs `f`, reopening the file and trying once more when an earlier I/O error requires it.
    fn reopening<T>(&self, f: impl Fn() -> Result<T, LogError>) -> Result<T, LogError> {
        match f() {
            Err(LogError::NeedsReopen) => {
                self.reopen()?;
                f()
            }
            other => other,
        }
    }

    /// Hears about every commit (after it is durable).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Appended>> {
        self.inner.appended.subscribe()
    }

    /// Logs `items` in one transaction, creating the source on first write. Returns each
    /// item's (partition, seq).
    pub fn append(&self, source: &str, items: &[Append]) -> Result<Vec<(u32, u64)>, LogError> {
        self.reopening(|| self.append_once(source, items))
    }

    fn append_once(&self, source: &str, items: &[Append]) -> Result<Vec<(u32, u64)>, LogError> {
        check_name(source)?;
        for item in items {
            let key = item.key();
            if key.is_empty() || key.len() > MAX_KEY_BYTES {
                // The first characters only, cut on a character boundary (a byte cut can
                // fall inside a multibyte character).
                let shown: String = key.chars().take(40).collect();
                return Err(LogError::InvalidKey(format!("{shown:?}")));
            }
        }
        let wtx = self.begin_write()?;
        let mut positions = Vec::with_capacity(items.len());
        let mut highs: BTreeMap<u32, (u64, String)> = BTreeMap::new();
        {
            let mut sources = wtx.open_table(SOURCES).map_err(LogError::storage)?;
            let mut partitions = wtx.open_table(PARTITIONS).map_err(LogError::storage)?;
            let mut log = wtx.open_table(LOG).map_err(LogError::storage)?;
            let mut keys = wtx.open_table(KEYS).map_err(LogError::storage)?;
            let count = ensure_source(
                &mut sources,
                &mut partitions,
                source,
                self.inner.default_partitions,
            )?;
            for item in items {
                let p = partition_of(item.key(), count);
                let high = match highs.entry(p) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        let record = partitions
                            .get((source, p))
                            .map_err(LogError::storage)?
                            .ok_or(LogError::NoSuchPartition {
                                name: source.into(),
                                partition: p,
                            })?;
                        e.insert(decode_partition(record.value())?)
                    }
                };
                high.0 += 1;
                let seq = high.0;
                let doc = match item {
                    Append::Put { doc, .. } => Some(doc.as_slice()),
                    Append::Delete { .. } => None,
                };
                log.insert((source, p, seq), encode_entry(item.key(), doc).as_slice())
                    .map_err(LogError::storage)?;
                match item {
                    Append::Put { key, .. } => keys.insert((source, key.as_str()), ()).map(|_| ()),
                    Append::Delete { key } => keys.remove((source, key.as_str())).map(|_| ()),
                }
                .map_err(LogError::storage)?;
                positions.push((p, seq));
            }
            for (p, (high, uuid)) in &highs {
                partitions
                    .insert((source, *p), encode_partition(*high, uuid).as_slice())
                    .map_err(LogError::storage)?;
            }
        }
        wtx.commit().map_err(LogError::storage)?;
        for (p, (high, _)) in highs {
            let _ = self.inner.appended.send(Arc::new(Appended {
                source: source.to_string(),
                partition: p,
                seq: high,
            }));
        }
        Ok(positions)
    }

    /// The partitions of `source`, or `None` if it does not exist.
    pub fn partitions(&self, source: &str) -> Result<Option<Vec<PartitionInfo>>, LogError> {
        self.reopening(|| self.partitions_once(source))
    }

    fn partitions_once(&self, source: &str) -> Result<Option<Vec<PartitionInfo>>, LogError> {
        let rtx = self.begin_read()?;
        let sources = rtx.open_table(SOURCES).map_err(LogError::storage)?;
        if sources.get(source).map_err(LogError::storage)?.is_none() {
            return Ok(None);
        }
        let partitions = rtx.open_table(PARTITIONS).map_err(LogError::storage)?;
        let mut out = Vec::new();
        for row in partitions
            .range((source, 0u32)..=(source, u32::MAX))
            .map_err(LogError::storage)?
        {
            let (k, v) = row.map_err(LogError::storage)?;
            let (high_seq, uuid) = decode_partition(v.value())?;
            out.push(PartitionInfo {
                id: k.value().1,
                uuid,
                high_seq,
            });
        }
        Ok(Some(out))
    }

    /// Up to `limit` entries of one partition after `after_seq`, in seq order.
    pub fn read(
        &self,
        source: &str,
        partition: u32,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<Entry>, LogError> {
        self.reopening(|| self.read_once(source, partition, after_seq, limit))
    }

    fn read_once(
        &self,
        source: &str,
        partition: u32,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<Entry>, LogError> {
        let rtx = self.begin_read()?;
        let log = rtx.open_table(LOG).map_err(LogError::storage)?;
        let mut out = Vec::new();
        let start = after_seq.saturating_add(1);
        for row in log
            .range((source, partition, start)..=(source, partition, u64::MAX))
            .map_err(LogError::storage)?
            .take(limit)
        {
            let (k, v) = row.map_err(LogError::storage)?;
            out.push(decode_entry(k.value().2, v.value())?);
        }
        Ok(out)
    }

    /// Every source's summary, by name.
    pub fn summaries(&self) -> Result<Vec<SourceSummary>, LogError> {
        self.reopening(|| self.summaries_once())
    }

    fn summaries_once(&self) -> Result<Vec<SourceSummary>, LogError> {
        let names: Vec<String> = {
            let rtx = self.begin_read()?;
            let sources = rtx.open_table(SOURCES).map_err(LogError::storage)?;
            let mut names = Vec::new();
            for row in sources.iter().map_err(LogError::storage)? {
                names.push(row.map_err(LogError::storage)?.0.value().to_string());
            }
            names
        };
        names
            .iter()
            .filter_map(|n| self.summary(n).transpose())
            .collect()
    }

    /// One source's summary, or `None` if it does not exist.
    pub fn summary(&self, source: &str) -> Result<Option<SourceSummary>, LogError> {
        self.reopening(|| self.summary_once(source))
    }

    fn summary_once(&self, source: &str) -> Result<Option<SourceSummary>, LogError> {
        let Some(partitions) = self.partitions(source)? else {
            return Ok(None);
        };
        let rtx = self.begin_read()?;
        let keys = rtx.open_table(KEYS).map_err(LogError::storage)?;
        let docs = keys
            .range((source, "")..)
            .map_err(LogError::storage)?
            .map_while(|row| row.ok().filter(|(k, _)| k.value().0 == source))
            .count() as u64;
        Ok(Some(SourceSummary {
            name: source.to_string(),
            partitions: partitions.len() as u32,
            docs,
            changes: partitions.iter().map(|p| p.high_seq).sum(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, doc: &str) -> Append {
        Append::Put {
            key: key.into(),
            doc: doc.as_bytes().to_vec(),
        }
    }

    #[test]
    fn appends_are_numbered_per_partition_durable_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("source.redb");
        let positions = {
            let log = SourceLog::open(&path, 4).unwrap();
            let positions = log
                .append(
                    "docs",
                    &[
                        put("a", "{}"),
                        put("b", "{}"),
                        put("a", "{\"v\":2}"),
                        Append::Delete { key: "b".into() },
                    ],
                )
                .unwrap();
            let summary = log.summary("docs").unwrap().unwrap();
            assert_eq!(
                (summary.partitions, summary.docs, summary.changes),
                (4, 1, 4)
            );
            positions
        };
        let log = SourceLog::open(&path, 8).unwrap();
        let parts = log.partitions("docs").unwrap().unwrap();
        assert_eq!(parts.len(), 4, "the partition count is fixed at creation");
        let (pa, first) = positions[0];
        assert_eq!(
            positions[2],
            (pa, first + 1),
            "same key, same partition, next seq"
        );
        let entries = log.read("docs", pa, 0, 10).unwrap();
        assert_eq!(
            entries[0],
            Entry {
                seq: first,
                key: "a".into(),
                doc: Some(b"{}".to_vec())
            }
        );
        assert_eq!(
            entries.last().unwrap().doc.as_deref(),
            Some(&b"{\"v\":2}"[..])
        );
        let (pb, _) = positions[3];
        assert!(log
            .read("docs", pb, 0, 10)
            .unwrap()
            .iter()
            .any(|e| e.key == "b" && e.doc.is_none()));
        assert_eq!(
            log.read("docs", pa, first, 10).unwrap().len(),
            entries.len() - 1,
            "after_seq is exclusive"
        );
        assert_eq!(log.summary("nope").unwrap(), None);
    }

    #[test]
    fn bad_names_and_keys_are_refused_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = SourceLog::open(&dir.path().join("s.redb"), 4).unwrap();
        assert!(matches!(
            log.append("bad name", &[put("a", "{}")]),
            Err(LogError::InvalidName(_))
        ));
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        assert!(matches!(
            log.append("docs", &[put("ok", "{}"), put(&long, "{}")]),
            Err(LogError::InvalidKey(_))
        ));
        // A multibyte character across byte 40 of a key too long to take.
        let multibyte = format!("{}é{}", "k".repeat(39), "k".repeat(MAX_KEY_BYTES));
        assert!(matches!(
            log.append("docs", &[put(&multibyte, "{}")]),
            Err(LogError::InvalidKey(shown)) if shown.contains('é')
        ));
        assert_eq!(
            log.summary("docs").unwrap(),
            None,
            "a refused batch writes nothing"
        );
    }
}
