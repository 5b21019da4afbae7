//! A snapshot's manifest: what the snapshot holds, file by file, each file named by the hash
//! of its content. Pure data; the repository stores it as one object whose own checksum is
//! inside it, so a damaged manifest is told from a good one before anything is trusted.
//!
//! "Unchanged" is decided only by content hash: two files are the same blob when their
//! SHA-256 are equal, whatever their names, sequence numbers or times.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::BackupError;

/// The manifest format this build writes and reads.
pub const MANIFEST_FORMAT: u32 = 1;

/// The hex SHA-256 of `bytes`.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One file of a snapshot: where it goes (relative to its PIndex or source directory), and
/// the blob holding its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    /// Hex SHA-256 of the file's content (before compression and encryption).
    pub hash: String,
    pub size: u64,
}

/// Per source partition: the seq a PIndex's commit reached and the partition uuid that seq
/// belongs to (the same shape as the PIndex's checkpoints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionPoint {
    pub seq: u64,
    pub partition_uuid: String,
}

/// One PIndex as saved: its files at one commit, and that commit's checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PIndexEntry {
    pub name: String,
    pub index: String,
    pub source_partitions: Vec<u32>,
    /// The node the files were read from (for the record only; never restored).
    pub read_from: String,
    pub checkpoints: BTreeMap<u32, PartitionPoint>,
    pub docs: u64,
    pub files: Vec<FileEntry>,
}

impl PIndexEntry {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// A reference source's log as saved: per partition, its uuid and the high seq the export
/// reached; the entries are in `files` (one blob per partition chunk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceEntry {
    pub name: String,
    /// Where the source was read (a URL or `embedded@<node>`), for the record.
    pub read_from: String,
    pub partitions: BTreeMap<u32, PartitionPoint>,
    pub files: Vec<FileEntry>,
}

/// What a snapshot holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub id: String,
    pub cluster: String,
    pub created_ms: u64,
    /// Index definitions as stored in the Cfg (JSON), by index name.
    pub indexes: BTreeMap<String, serde_json::Value>,
    pub pindexes: Vec<PIndexEntry>,
    pub sources: Vec<SourceEntry>,
    /// How blobs are encoded (`zstd`, and `xchacha20poly1305` when encrypted).
    pub encoding: Vec<String>,
}

impl Manifest {
    /// Every blob the snapshot needs, with its size.
    pub fn blobs(&self) -> BTreeMap<&str, u64> {
        let files = self
            .pindexes
            .iter()
            .flat_map(|p| &p.files)
            .chain(self.sources.iter().flat_map(|s| &s.files));
        files.map(|f| (f.hash.as_str(), f.size)).collect()
    }

    pub fn bytes(&self) -> u64 {
        self.blobs().values().sum()
    }

    pub fn pindexes_of<'a>(&'a self, index: &'a str) -> impl Iterator<Item = &'a PIndexEntry> {
        self.pindexes.iter().filter(move |p| p.index == index)
    }

    /// The stored form: the manifest's JSON with its checksum beside it.
    pub fn seal(&self) -> Result<Vec<u8>, BackupError> {
        let body = serde_json::to_value(self).map_err(|e| BackupError::Encode(e.to_string()))?;
        let text = serde_json::to_string(&body).map_err(|e| BackupError::Encode(e.to_string()))?;
        let sealed = Sealed {
            checksum: content_hash(text.as_bytes()),
            manifest: body,
        };
        serde_json::to_vec_pretty(&sealed).map_err(|e| BackupError::Encode(e.to_string()))
    }

    /// Reads a stored manifest, checking its checksum, its format and that every file it names
    /// is within [`crate::limits::MAX_BLOB_BYTES`]; `what` names it in errors.
    pub fn open(bytes: &[u8], what: &str) -> Result<Manifest, BackupError> {
        let damaged = |reason: String| BackupError::Damaged {
            what: what.to_string(),
            reason,
        };
        let sealed: Sealed =
            serde_json::from_slice(bytes).map_err(|e| damaged(format!("not a manifest: {e}")))?;
        let text = serde_json::to_string(&sealed.manifest)
            .map_err(|e| damaged(format!("not a manifest: {e}")))?;
        if content_hash(text.as_bytes()) != sealed.checksum {
            return Err(damaged("the manifest's checksum does not match".into()));
        }
        let manifest: Manifest = serde_json::from_value(sealed.manifest)
            .map_err(|e| damaged(format!("not a manifest: {e}")))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(damaged(format!(
                "manifest format {} (this build reads {MANIFEST_FORMAT})",
                manifest.format
            )));
        }
        // No file a node would not read (so no size a node would allocate, and no sum that
        // overflows).
        let files = (manifest
            .pindexes
            .iter()
            .flat_map(|p| p.files.iter().map(move |f| (&p.name, f))))
        .chain(
            manifest
                .sources
                .iter()
                .flat_map(|s| s.files.iter().map(move |f| (&s.name, f))),
        );
        for (owner, file) in files {
            crate::limits::check(
                &format!("{what}: {owner}/{}", file.name),
                file.size,
                crate::limits::MAX_BLOB_BYTES,
            )?;
        }
        Ok(manifest)
    }
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    checksum: String,
    manifest: serde_json::Value,
}

/// Of the blobs `wanted` (hash → size), those `present` does not hold: what an upload must
/// send. A blob present with another size is sent again (it is not the same content).
pub fn missing_blobs<'a>(
    wanted: impl IntoIterator<Item = (&'a str, u64)>,
    present: &BTreeMap<String, u64>,
) -> BTreeSet<&'a str> {
    wanted
        .into_iter()
        .filter(|(hash, size)| present.get(*hash) != Some(size))
        .map(|(hash, _)| hash)
        .collect()
}

/// Blobs no snapshot in `kept` references: what `gc` may remove.
pub fn unreferenced<'a>(
    present: impl IntoIterator<Item = &'a String>,
    kept: &[Manifest],
) -> Vec<String> {
    let referenced: BTreeSet<&str> = kept.iter().flat_map(|m| m.blobs().into_keys()).collect();
    present
        .into_iter()
        .filter(|h| !referenced.contains(h.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, content: &[u8]) -> FileEntry {
        FileEntry {
            name: name.into(),
            hash: content_hash(content),
            size: content.len() as u64,
        }
    }

    fn manifest(files: Vec<FileEntry>) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT,
            id: "s1".into(),
            cluster: "c".into(),
            created_ms: 1,
            indexes: BTreeMap::new(),
            pindexes: vec![PIndexEntry {
                name: "books_0-3".into(),
                index: "books".into(),
                source_partitions: vec![0, 1, 2, 3],
                read_from: "n1".into(),
                checkpoints: BTreeMap::new(),
                docs: 10,
                files,
            }],
            sources: vec![],
            encoding: vec!["zstd".into()],
        }
    }

    #[test]
    fn a_sealed_manifest_opens_and_a_flipped_byte_is_named() {
        let m = manifest(vec![file("a", b"one"), file("b", b"two")]);
        let sealed = m.seal().unwrap();
        assert_eq!(Manifest::open(&sealed, "s1").unwrap(), m);
        let mut bad = sealed.clone();
        let at = bad.iter().position(|&b| b == b'1').unwrap();
        bad[at] = b'2';
        let err = Manifest::open(&bad, "snapshot s1").unwrap_err().to_string();
        assert!(err.contains("snapshot s1"), "{err}");
    }

    #[test]
    fn a_manifest_naming_a_file_past_the_limit_is_refused() {
        let m = manifest(vec![FileEntry {
            name: "huge".into(),
            hash: content_hash(b"x"),
            size: 1 << 40,
        }]);
        let err = Manifest::open(&m.seal().unwrap(), "snapshot s1").unwrap_err();
        assert!(matches!(err, BackupError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("books_0-3/huge"), "{err}");
    }

    #[test]
    fn unchanged_is_decided_by_hash_and_size() {
        let m = manifest(vec![file("a", b"one"), file("b", b"two")]);
        let mut present = BTreeMap::new();
        present.insert(content_hash(b"one"), 3);
        let missing = missing_blobs(m.blobs(), &present);
        assert_eq!(
            missing.into_iter().collect::<Vec<_>>(),
            vec![content_hash(b"two")]
        );
        // Same name, other content: a new blob.
        let changed = manifest(vec![file("a", b"uno")]);
        assert_eq!(missing_blobs(changed.blobs(), &present).len(), 1);
    }

    #[test]
    fn gc_keeps_what_a_remaining_snapshot_references() {
        let kept = manifest(vec![file("a", b"one")]);
        let present = vec![content_hash(b"one"), content_hash(b"gone")];
        assert_eq!(unreferenced(&present, &[kept]), vec![content_hash(b"gone")]);
    }
}
