//! The source log as a repair sees it: the file opened alone (refused while a source or node
//! holds it), every entry read raw so a damaged one is reported by position instead of
//! failing the read ([`LogFile::check`]), listings for `inspect`, and a list of edits applied
//! in one transaction with the partition uuids of changed histories renewed and the
//! present-keys set rebuilt from the entries ([`LogFile::apply`]). The workflow around it —
//! backups, the journal, validation against the counts, the swap — is `tessera-repair`'s.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::*;

/// One entry as stored, decoded or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawEntry {
    pub source: String,
    pub partition: u32,
    pub seq: u64,
    /// `None` when the entry does not decode.
    pub key: Option<String>,
    /// `put` or `delete`; `None` when the entry does not decode.
    pub op: Option<&'static str>,
    pub size: usize,
    /// CRC-32 of the stored bytes.
    pub checksum: u32,
    /// Why the entry is unreadable or inconsistent.
    pub problem: Option<String>,
}

/// A partition as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawPartition {
    pub source: String,
    pub partition: u32,
    pub uuid: String,
    pub high_seq: u64,
    pub entries: u64,
}

/// Something `check` found wrong, by position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub source: String,
    pub partition: Option<u32>,
    pub seq: Option<u64>,
    pub what: String,
}

/// One edit of a source log (the `--edits` file's items).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum LogEdit {
    /// Removes the entries of `partition` with `from_seq <= seq <= to_seq`.
    Delete {
        source: String,
        partition: u32,
        from_seq: u64,
        to_seq: u64,
    },
    /// Writes the entry at `seq` anew (a document, or a deletion when `doc` is absent).
    Replace {
        source: String,
        partition: u32,
        seq: u64,
        key: String,
        #[serde(default)]
        doc: Option<serde_json::Value>,
    },
    /// Adds entries after the partition's high seq; each key must route to the partition.
    Append {
        source: String,
        partition: u32,
        entries: Vec<NewEntry>,
    },
    /// Gives the partition this uuid (a fresh one when absent).
    SetUuid {
        source: String,
        partition: u32,
        #[serde(default)]
        uuid: Option<String>,
    },
}

/// An entry an `append` adds: a document, or a deletion when `doc` is absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEntry {
    pub key: String,
    #[serde(default)]
    pub doc: Option<serde_json::Value>,
}

impl LogEdit {
    pub fn source(&self) -> &str {
        match self {
            LogEdit::Delete { source, .. }
            | LogEdit::Replace { source, .. }
            | LogEdit::Append { source, .. }
            | LogEdit::SetUuid { source, .. } => source,
        }
    }

    pub fn partition(&self) -> u32 {
        match self {
            LogEdit::Delete { partition, .. }
            | LogEdit::Replace { partition, .. }
            | LogEdit::Append { partition, .. }
            | LogEdit::SetUuid { partition, .. } => *partition,
        }
    }
}

/// What applying edits changed, per (source, partition).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// Entries removed, written anew over an entry, and added (appended, or written at a seq
    /// that had none).
    pub deleted: BTreeMap<(String, u32), u64>,
    pub replaced: BTreeMap<(String, u32), u64>,
    pub added: BTreeMap<(String, u32), u64>,
    /// Partitions whose uuid changed: (old, new).
    pub uuids: BTreeMap<(String, u32), (String, String)>,
}

/// The source log file, opened alone for a repair.
pub struct LogFile {
    db: Database,
}

fn open_error(path: &Path, e: redb::DatabaseError) -> LogError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => LogError::Storage(format!(
            "{} is in use by another process: stop the node or source that owns it first",
            path.display()
        )),
        other => LogError::Storage(format!("{} does not open: {other}", path.display())),
    }
}

impl LogFile {
    /// Opens an existing log file (never creates one).
    pub fn open(path: &Path) -> Result<Self, LogError> {
        if !path.exists() {
            return Err(LogError::Storage(format!(
                "no source log at {}",
                path.display()
            )));
        }
        let db = Database::builder()
            .create(path)
            .map_err(|e| open_error(path, e))?;
        Ok(LogFile { db })
    }

    fn read(&self) -> Result<redb::ReadTransaction, LogError> {
        self.db.begin_read().map_err(LogError::storage)
    }

    /// Every partition of every source (or of `source`), with its entry count.
    pub fn partitions(&self, source: Option<&str>) -> Result<Vec<RawPartition>, LogError> {
        let rtx = self.read()?;
        let table = rtx.open_table(PARTITIONS).map_err(LogError::storage)?;
        let log = rtx.open_table(LOG).map_err(LogError::storage)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(LogError::storage)? {
            let (k, v) = row.map_err(LogError::storage)?;
            let (name, partition) = k.value();
            if source.is_some_and(|s| s != name) {
                continue;
            }
            let (high_seq, uuid) = decode_partition(v.value()).unwrap_or((0, "?".into()));
            let entries = log
                .range((name, partition, 0)..=(name, partition, u64::MAX))
                .map_err(LogError::storage)?
                .count() as u64;
            out.push(RawPartition {
                source: name.to_string(),
                partition,
                uuid,
                high_seq,
                entries,
            });
        }
        Ok(out)
    }

    /// The entries of `source` (all sources when `None`), of `partition` if given, with seqs
    /// in `from..=to`, each decoded or said why not.
    pub fn entries(
        &self,
        source: Option<&str>,
        partition: Option<u32>,
        from: u64,
        to: u64,
    ) -> Result<Vec<RawEntry>, LogError> {
        let rtx = self.read()?;
        let log = rtx.open_table(LOG).map_err(LogError::storage)?;
        let highs = highs(&rtx, source)?;
        let mut out = Vec::new();
        for row in log.iter().map_err(LogError::storage)? {
            let (k, v) = row.map_err(LogError::storage)?;
            let (name, p, seq) = k.value();
            if source.is_some_and(|s| s != name)
                || partition.is_some_and(|want| want != p)
                || seq < from
                || seq > to
            {
                continue;
            }
            let bytes = v.value();
            let decoded = decode_stored(seq, bytes);
            let mut problem = decoded.as_ref().err().cloned();
            if problem.is_none() {
                match highs.get(&(name.to_string(), p)) {
                    None => problem = Some(format!("partition {p} of `{name}` is not defined")),
                    Some(high) if seq > *high || seq == 0 => {
                        problem = Some(format!("seq {seq} is past the partition's high seq {high}"))
                    }
                    Some(_) => {}
                }
            }
            let (key, op) = match &decoded {
                Ok(e) => (
                    Some(e.key.clone()),
                    Some(if e.doc.is_some() { "put" } else { "delete" }),
                ),
                Err(_) => (None, None),
            };
            out.push(RawEntry {
                source: name.to_string(),
                partition: p,
                seq,
                key,
                op,
                size: bytes.len(),
                checksum: crc32fast::hash(bytes),
                problem,
            });
        }
        Ok(out)
    }

    /// Everything unreadable or inconsistent: entries that do not decode or sit past their
    /// partition's high seq, partition records and source metadata that do not decode, missing
    /// partitions, and present-keys sets that differ from what the entries say.
    pub fn check(&self) -> Result<Vec<Finding>, LogError> {
        let mut findings = Vec::new();
        let rtx = self.read()?;
        let sources = rtx.open_table(SOURCES).map_err(LogError::storage)?;
        let partitions = rtx.open_table(PARTITIONS).map_err(LogError::storage)?;
        let mut names = Vec::new();
        for row in sources.iter().map_err(LogError::storage)? {
            let (k, v) = row.map_err(LogError::storage)?;
            let name = k.value().to_string();
            match serde_json::from_slice::<SourceMeta>(v.value()) {
                Ok(meta) => {
                    for p in 0..meta.partitions {
                        match partitions
                            .get((name.as_str(), p))
                            .map_err(LogError::storage)?
                        {
                            None => findings.push(Finding {
                                source: name.clone(),
                                partition: Some(p),
                                seq: None,
                                what: "partition record missing".into(),
                            }),
                            Some(v) => {
                                if let Err(e) = decode_partition(v.value()) {
                                    findings.push(Finding {
                                        source: name.clone(),
                                        partition: Some(p),
                                        seq: None,
                                        what: e.to_string(),
                                    });
                                }
                            }
                        }
                    }
                }
                Err(e) => findings.push(Finding {
                    source: name.clone(),
                    partition: None,
                    seq: None,
                    what: format!("source metadata does not decode: {e}"),
                }),
            }
            names.push(name);
        }
        let mut damaged: BTreeSet<String> = BTreeSet::new();
        for entry in self.entries(None, None, 0, u64::MAX)? {
            if let Some(what) = entry.problem {
                damaged.insert(entry.source.clone());
                findings.push(Finding {
                    source: entry.source,
                    partition: Some(entry.partition),
                    seq: Some(entry.seq),
                    what,
                });
            }
        }
        // With an unreadable entry the keys cannot be told (it may hold any key); an edit of
        // the source rebuilds them from what is left.
        for name in names.into_iter().filter(|n| !damaged.contains(n)) {
            let (stored, replayed) = self.keys_of(&rtx, &name)?;
            for key in stored.symmetric_difference(&replayed).take(100) {
                let what = if stored.contains(key) {
                    format!("key `{key}` is listed present but its last entry deletes it (or it has none)")
                } else {
                    format!("key `{key}` is present by its entries but not listed")
                };
                findings.push(Finding {
                    source: name.clone(),
                    partition: None,
                    seq: None,
                    what,
                });
            }
        }
        Ok(findings)
    }

    /// (the stored present-keys set, the set the readable entries say) of `source`.
    fn keys_of(
        &self,
        rtx: &redb::ReadTransaction,
        source: &str,
    ) -> Result<(BTreeSet<String>, BTreeSet<String>), LogError> {
        let keys = rtx.open_table(KEYS).map_err(LogError::storage)?;
        let stored = listed_keys(&keys, source)?.into_iter().collect();
        let log = rtx.open_table(LOG).map_err(LogError::storage)?;
        Ok((stored, replay(&log, source)?))
    }

    /// Applies `edits` in one transaction: changed partitions get a new uuid (unless an edit
    /// set one), and the present-keys set of every edited source is rebuilt from its entries.
    pub fn apply(&self, edits: &[LogEdit]) -> Result<Applied, LogError> {
        let mut applied = Applied::default();
        let wtx = self.db.begin_write().map_err(LogError::storage)?;
        {
            let mut partitions = wtx.open_table(PARTITIONS).map_err(LogError::storage)?;
            let mut log = wtx.open_table(LOG).map_err(LogError::storage)?;
            let sources = wtx.open_table(SOURCES).map_err(LogError::storage)?;
            let mut changed: BTreeSet<(String, u32)> = BTreeSet::new();
            let mut uuid_set: BTreeSet<(String, u32)> = BTreeSet::new();
            for edit in edits {
                let (source, p) = (edit.source().to_string(), edit.partition());
                let record = partitions
                    .get((source.as_str(), p))
                    .map_err(LogError::storage)?
                    .map(|v| v.value().to_vec())
                    .ok_or_else(|| LogError::NoSuchPartition {
                        name: source.clone(),
                        partition: p,
                    })?;
                let (mut high, uuid) = decode_partition(&record)?;
                let at = (source.clone(), p);
                match edit {
                    LogEdit::Delete {
                        from_seq, to_seq, ..
                    } => {
                        let seqs: Vec<u64> = log
                            .range((source.as_str(), p, *from_seq)..=(source.as_str(), p, *to_seq))
                            .map_err(LogError::storage)?
                            .filter_map(|row| row.ok().map(|(k, _)| k.value().2))
                            .collect();
                        for seq in &seqs {
                            log.remove((source.as_str(), p, *seq))
                                .map_err(LogError::storage)?;
                        }
                        *applied.deleted.entry(at.clone()).or_default() += seqs.len() as u64;
                        changed.insert(at);
                    }
                    LogEdit::Replace { seq, key, doc, .. } => {
                        if *seq == 0 || *seq > high {
                            return Err(LogError::Refused(format!(
                                "replace: partition {p} of `{source}` has seqs 1..={high}; there is no seq {seq}"
                            )));
                        }
                        check_routing(&sources, &source, p, key)?;
                        let bytes = doc.as_ref().map(|d| d.to_string().into_bytes());
                        let existed = log
                            .insert(
                                (source.as_str(), p, *seq),
                                encode_entry(key, bytes.as_deref()).as_slice(),
                            )
                            .map_err(LogError::storage)?
                            .is_some();
                        // A seq whose entry was gone gets one back: that adds an entry.
                        let counted = if existed {
                            &mut applied.replaced
                        } else {
                            &mut applied.added
                        };
                        *counted.entry(at.clone()).or_default() += 1;
                        changed.insert(at);
                    }
                    LogEdit::Append { entries, .. } => {
                        for e in entries {
                            check_routing(&sources, &source, p, &e.key)?;
                            high += 1;
                            let bytes = e.doc.as_ref().map(|d| d.to_string().into_bytes());
                            log.insert(
                                (source.as_str(), p, high),
                                encode_entry(&e.key, bytes.as_deref()).as_slice(),
                            )
                            .map_err(LogError::storage)?;
                        }
                        partitions
                            .insert(
                                (source.as_str(), p),
                                encode_partition(high, &uuid).as_slice(),
                            )
                            .map_err(LogError::storage)?;
                        *applied.added.entry(at.clone()).or_default() += entries.len() as u64;
                        changed.insert(at);
                    }
                    LogEdit::SetUuid { uuid: new, .. } => {
                        let new = new.clone().unwrap_or_else(fresh_uuid);
                        if new.is_empty() || new.len() > 64 {
                            return Err(LogError::Refused(format!(
                                "set_uuid: `{new}` is not a partition uuid"
                            )));
                        }
                        partitions
                            .insert(
                                (source.as_str(), p),
                                encode_partition(high, &new).as_slice(),
                            )
                            .map_err(LogError::storage)?;
                        applied.uuids.insert(at.clone(), (uuid, new));
                        uuid_set.insert(at);
                    }
                }
            }
            // A history that changed is a new history: feeds roll back and read it again.
            for at in changed.difference(&uuid_set) {
                let record = partitions
                    .get((at.0.as_str(), at.1))
                    .map_err(LogError::storage)?
                    .map(|v| v.value().to_vec())
                    .unwrap_or_default();
                let (high, old) = decode_partition(&record)?;
                let new = fresh_uuid();
                partitions
                    .insert(
                        (at.0.as_str(), at.1),
                        encode_partition(high, &new).as_slice(),
                    )
                    .map_err(LogError::storage)?;
                applied.uuids.insert(at.clone(), (old, new));
            }
            let edited: BTreeSet<String> = edits.iter().map(|e| e.source().to_string()).collect();
            let mut keys = wtx.open_table(KEYS).map_err(LogError::storage)?;
            for source in edited {
                let present = replay(&log, &source)?;
                for key in listed_keys(&keys, &source)? {
                    keys.remove((source.as_str(), key.as_str()))
                        .map_err(LogError::storage)?;
                }
                for key in present {
                    keys.insert((source.as_str(), key.as_str()), ())
                        .map_err(LogError::storage)?;
                }
            }
        }
        wtx.commit().map_err(LogError::storage)?;
        Ok(applied)
    }

    /// Documents present in `source` (its present-keys set).
    pub fn present_keys(&self, source: &str) -> Result<u64, LogError> {
        let rtx = self.read()?;
        let keys = rtx.open_table(KEYS).map_err(LogError::storage)?;
        Ok(listed_keys(&keys, source)?.len() as u64)
    }
}

/// The keys the present-keys table lists for `source`.
fn listed_keys(
    keys: &impl ReadableTable<(&'static str, &'static str), ()>,
    source: &str,
) -> Result<Vec<String>, LogError> {
    Ok(keys
        .range((source, "")..)
        .map_err(LogError::storage)?
        .map_while(|row| {
            let (k, _) = row.ok()?;
            let (name, key) = k.value();
            (name == source).then(|| key.to_string())
        })
        .collect())
}

/// Each partition's high seq (of `source`, or of every source), without counting entries.
fn highs(
    rtx: &redb::ReadTransaction,
    source: Option<&str>,
) -> Result<BTreeMap<(String, u32), u64>, LogError> {
    let table = rtx.open_table(PARTITIONS).map_err(LogError::storage)?;
    let mut out = BTreeMap::new();
    for row in table.iter().map_err(LogError::storage)? {
        let (k, v) = row.map_err(LogError::storage)?;
        let (name, partition) = k.value();
        if source.is_none_or(|s| s == name) {
            let (high, _) = decode_partition(v.value()).unwrap_or((0, String::new()));
            out.insert((name.to_string(), partition), high);
        }
    }
    Ok(out)
}

fn fresh_uuid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// An entry as stored: decoded, or why not (stricter than the source's own read: the flag
/// byte must be 0 or 1 and a deletion carries nothing after its key).
fn decode_stored(seq: u64, bytes: &[u8]) -> Result<Entry, String> {
    let entry = decode_entry(seq, bytes).map_err(|e| e.to_string())?;
    match bytes.first() {
        Some(0) if bytes.len() != 5 + entry.key.len() => Err(format!(
            "corrupt log entry at seq {seq}: a deletion with trailing bytes"
        )),
        Some(0 | 1) if entry.key.is_empty() => {
            Err(format!("corrupt log entry at seq {seq}: empty key"))
        }
        Some(0 | 1) => Ok(entry),
        _ => Err(format!("corrupt log entry at seq {seq}: unknown operation")),
    }
}

/// The keys present in `source` by its readable entries (each partition in seq order; a key
/// lives in one partition).
fn replay(
    log: &impl ReadableTable<(&'static str, u32, u64), &'static [u8]>,
    source: &str,
) -> Result<BTreeSet<String>, LogError> {
    let mut present = BTreeSet::new();
    for row in log
        .range((source, 0, 0)..=(source, u32::MAX, u64::MAX))
        .map_err(LogError::storage)?
    {
        let (k, v) = row.map_err(LogError::storage)?;
        let (_, _, seq) = k.value();
        if let Ok(entry) = decode_stored(seq, v.value()) {
            if entry.doc.is_some() {
                present.insert(entry.key);
            } else {
                present.remove(&entry.key);
            }
        }
    }
    Ok(present)
}

/// A key written into `partition` must route there, or a later write of it lands elsewhere.
fn check_routing(
    sources: &redb::Table<&str, &[u8]>,
    source: &str,
    partition: u32,
    key: &str,
) -> Result<(), LogError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(LogError::InvalidKey(key.to_string()));
    }
    let count = sources
        .get(source)
        .map_err(LogError::storage)?
        .and_then(|v| serde_json::from_slice::<SourceMeta>(v.value()).ok())
        .map(|m| m.partitions)
        .ok_or_else(|| LogError::NoSuchSource(source.to_string()))?;
    let routed = partition_of(key, count);
    if routed != partition {
        return Err(LogError::Refused(format!(
            "key `{key}` routes to partition {routed} of `{source}`, not {partition}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
