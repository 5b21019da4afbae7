//! A repository: blobs stored once under their content hash, sealed manifests, and the
//! staging area of jobs under way, in a directory or an S3-compatible bucket (through
//! `object_store`, one client for both).
//!
//! Layout under the repository's root (its directory, or `BUCKET/PREFIX`):
//! - `blobs/<hh>/<hash>.<size>` — one file's content, encoded by [`crate::codec`]; the key
//!   carries the content's size, so a listing tells hash and size without reading a blob;
//! - `snapshots/<id>.json` — a sealed [`Manifest`], written once, after all its blobs;
//! - `staging/<job>/<name>.json` — what a backup job has finished, so a resumed job skips it;
//! - `lock.json` — the writer lock ([`crate::lock`]).
//!
//! A repository is opened only under the node's [`RepoPolicy`] (its endpoint, files and
//! location), and every object is read within [`crate::limits`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use tessera_cfg::schema::RepoDef;

use crate::codec;
use crate::crypt::{self, Key, KeyRecord, KeySource};
use crate::limits::{self, MAX_MANIFEST_BYTES, MAX_RECORD_BYTES, MAX_STORED_BLOB_BYTES};
use crate::manifest::{content_hash, Manifest};
use crate::policy::{Checked, RepoPolicy};
use crate::BackupError;

/// An open repository.
#[derive(Clone)]
pub struct Repository {
    store: Arc<dyn ObjectStore>,
    name: String,
    readonly: bool,
    /// Where the key comes from, when the repository is (to be) encrypted.
    key_source: Option<KeySource>,
    /// The key, checked against the repository's record on first use.
    key: Arc<tokio::sync::OnceCell<Option<Key>>>,
}

/// Sealed manifests and staging entries start with this.
const SEALED: &[u8; 4] = b"TSE1";

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repository({})", self.name)
    }
}

/// A blob written (or found already there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub hash: String,
    pub size: u64,
    /// Bytes sent to the repository (0 when the blob was already there).
    pub uploaded: u64,
}

fn blob_path(hash: &str, size: u64) -> Path {
    let shard = hash.get(..2).unwrap_or("00");
    Path::from(format!("blobs/{shard}/{hash}.{size}"))
}

fn snapshot_path(id: &str) -> Path {
    Path::from(format!("snapshots/{id}.json"))
}

fn storage(e: object_store::Error) -> BackupError {
    match e {
        object_store::Error::NotFound { path, .. } => BackupError::NotFound(path),
        e => BackupError::Storage(e.to_string()),
    }
}

impl Repository {
    /// The repository `def` describes, if `policy` lets this node open it (checked on every
    /// open, on every node: a definition is never trusted for having been accepted
    /// elsewhere). Opened once per process and definition: every save, fetch and API call on
    /// it shares one client and one key (deriving a key from a passphrase is deliberately
    /// slow). A changed definition is another entry.
    pub fn open(def: &RepoDef, policy: &RepoPolicy) -> Result<Self, BackupError> {
        static OPENED: OnceLock<Mutex<HashMap<String, Repository>>> = OnceLock::new();
        let checked = policy.check(def)?;
        let id = serde_json::to_string(def).map_err(|e| BackupError::Encode(e.to_string()))?;
        let opened = OPENED.get_or_init(Mutex::default);
        if let Some(repo) = opened.lock().ok().and_then(|o| o.get(&id).cloned()) {
            return Ok(repo);
        }
        let repo = Self::connect(def, &checked)?;
        if let Ok(mut opened) = opened.lock() {
            // Definitions are few; a process that saw many starts over rather than grow.
            if opened.len() >= 64 {
                opened.clear();
            }
            opened.insert(id, repo.clone());
        }
        Ok(repo)
    }

    /// Opens the repository `def` describes, with what the policy resolved. An `fs`
    /// directory and an `s3` bucket must exist.
    fn connect(def: &RepoDef, checked: &Checked) -> Result<Self, BackupError> {
        let config = |field: &str, reason: String| BackupError::Config {
            field: field.to_string(),
            reason,
        };
        let store: Arc<dyn ObjectStore> = match (def.repo_type.as_str(), &checked.credentials) {
            // Not created here: a repository is a directory an operator made (or mounted);
            // a request must not make directories anywhere the node may write.
            ("fs", _) => Arc::new(
                LocalFileSystem::new_with_prefix(&def.location)
                    .map_err(|e| config("location", e.to_string()))?
                    .with_automatic_cleanup(true),
            ),
            ("s3", Some(credentials)) => crate::s3::store(def, credentials)?,
            (other, _) => return Err(config("type", format!("unknown repository type `{other}`"))),
        };
        let key_source = match (&checked.passphrase_file, &checked.key_file) {
            (Some(_), Some(_)) => {
                return Err(config(
                    "options.key_file",
                    "not with passphrase_file".into(),
                ))
            }
            (Some(file), None) => Some(KeySource::Passphrase(file.display().to_string())),
            (None, Some(file)) => Some(KeySource::KeyFile(file.display().to_string())),
            (None, None) => None,
        };
        Ok(Self {
            store,
            name: def.name.clone(),
            readonly: def.readonly,
            key_source,
            key: Arc::default(),
        })
    }

    /// The repository's key (`None`: not encrypted), checked against its record: a
    /// repository first written with a key records its salt and a check value; one read with
    /// a wrong key, or without the key it needs, is refused here.
    pub async fn key(&self) -> Result<Option<Key>, BackupError> {
        self.key
            .get_or_try_init(|| async { self.load_key().await })
            .await
            .cloned()
    }

    async fn load_key(&self) -> Result<Option<Key>, BackupError> {
        let record_path = Path::from("encryption.json");
        let record: Option<KeyRecord> = match self
            .raw(&record_path, "encryption.json", MAX_RECORD_BYTES)
            .await
        {
            Ok(bytes) => {
                Some(
                    serde_json::from_slice(&bytes).map_err(|e| BackupError::Damaged {
                        what: "encryption.json".into(),
                        reason: e.to_string(),
                    })?,
                )
            }
            Err(BackupError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        match (record, &self.key_source) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(BackupError::Config {
                field: "options.passphrase_file".into(),
                reason: "the repository is encrypted: give its passphrase_file or key_file".into(),
            }),
            (Some(record), Some(source)) => source.open_record(&record).map(Some),
            (None, Some(source)) => {
                self.writable()?;
                if !self.snapshot_ids().await?.is_empty() || !self.blobs().await?.is_empty() {
                    return Err(BackupError::Config {
                        field: "options.passphrase_file".into(),
                        reason: "the repository holds unencrypted snapshots: use another for encrypted ones".into(),
                    });
                }
                let (record, key) = source.new_record()?;
                let bytes =
                    serde_json::to_vec(&record).map_err(|e| BackupError::Encode(e.to_string()))?;
                let created = self
                    .store
                    .put_opts(
                        &record_path,
                        bytes.into(),
                        PutOptions::from(PutMode::Create),
                    )
                    .await;
                match created {
                    Ok(_) => Ok(Some(key)),
                    // Another writer recorded a key first: ours must match it.
                    Err(object_store::Error::AlreadyExists { .. }) => {
                        let bytes = self
                            .raw(&record_path, "encryption.json", MAX_RECORD_BYTES)
                            .await?;
                        let record: KeyRecord =
                            serde_json::from_slice(&bytes).map_err(|e| BackupError::Damaged {
                                what: "encryption.json".into(),
                                reason: e.to_string(),
                            })?;
                        source.open_record(&record).map(Some)
                    }
                    Err(e) => Err(storage(e)),
                }
            }
        }
    }

    /// `bytes` as stored: sealed when the repository is encrypted.
    async fn seal_small(&self, bytes: Vec<u8>) -> Result<Vec<u8>, BackupError> {
        match self.key().await? {
            Some(key) => {
                let mut out = SEALED.to_vec();
                out.extend(crypt::seal(&key, &bytes)?);
                Ok(out)
            }
            None => Ok(bytes),
        }
    }

    /// What [`Self::seal_small`] stored.
    async fn open_small(&self, stored: Vec<u8>) -> Result<Vec<u8>, BackupError> {
        match stored.strip_prefix(SEALED.as_slice()) {
            Some(sealed) => {
                let key = self.key().await?.ok_or_else(|| BackupError::Config {
                    field: "options.passphrase_file".into(),
                    reason: "the repository is encrypted: give its passphrase_file or key_file"
                        .into(),
                })?;
                crypt::open(&key, sealed)
            }
            None => Ok(stored),
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    pub(crate) fn writable(&self) -> Result<(), BackupError> {
        if self.readonly {
            return Err(BackupError::ReadOnly);
        }
        Ok(())
    }

    /// Stores `content` unless a blob of the same hash and size is there already.
    pub async fn put_blob(&self, content: Vec<u8>) -> Result<StoredBlob, BackupError> {
        self.writable()?;
        limits::check(
            "a file to save",
            content.len() as u64,
            limits::MAX_BLOB_BYTES,
        )?;
        let hash = content_hash(&content);
        let size = content.len() as u64;
        let path = blob_path(&hash, size);
        match self.store.head(&path).await {
            Ok(_) => {
                return Ok(StoredBlob {
                    hash,
                    size,
                    uploaded: 0,
                })
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(storage(e)),
        }
        let key = self.key().await?;
        let encoded = tokio::task::spawn_blocking(move || codec::encode(&content, key.as_ref()))
            .await
            .map_err(BackupError::storage)??;
        let uploaded = encoded.len() as u64;
        self.store
            .put(&path, PutPayload::from(encoded))
            .await
            .map_err(storage)?;
        Ok(StoredBlob {
            hash,
            size,
            uploaded,
        })
    }

    /// A blob's content, checked against its hash and size.
    pub async fn get_blob(&self, hash: &str, size: u64) -> Result<Vec<u8>, BackupError> {
        let stored = self
            .raw(
                &blob_path(hash, size),
                &format!("blob {hash}"),
                MAX_STORED_BLOB_BYTES,
            )
            .await?;
        let hash = hash.to_string();
        let key = self.key().await?;
        tokio::task::spawn_blocking(move || codec::decode(&stored, &hash, size, key.as_ref()))
            .await
            .map_err(BackupError::storage)?
    }

    /// Whether the blob exists (with its stored length), without reading it.
    pub async fn has_blob(&self, hash: &str, size: u64) -> Result<bool, BackupError> {
        match self.store.head(&blob_path(hash, size)).await {
            Ok(meta) => Ok(meta.size >= 5),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(storage(e)),
        }
    }

    /// Every blob in the repository: hash → content size.
    pub async fn blobs(&self) -> Result<BTreeMap<String, u64>, BackupError> {
        let listed = self.list(&Path::from("blobs")).await?;
        Ok(listed
            .iter()
            .filter_map(|meta| {
                let file = meta.location.filename()?;
                let (hash, size) = file.rsplit_once('.')?;
                Some((hash.to_string(), size.parse().ok()?))
            })
            .collect())
    }

    pub async fn delete_blob(&self, hash: &str, size: u64) -> Result<(), BackupError> {
        self.writable()?;
        match self.store.delete(&blob_path(hash, size)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage(e)),
        }
    }

    /// Writes a snapshot's manifest; a snapshot of that id already there is an error.
    pub async fn put_manifest(&self, manifest: &Manifest) -> Result<(), BackupError> {
        self.writable()?;
        let sealed = self.seal_small(manifest.seal()?).await?;
        let options = PutOptions::from(PutMode::Create);
        match self
            .store
            .put_opts(&snapshot_path(&manifest.id), sealed.into(), options)
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => Err(BackupError::Config {
                field: "id".into(),
                reason: format!("snapshot `{}` exists already", manifest.id),
            }),
            Err(e) => Err(storage(e)),
        }
    }

    /// A snapshot's manifest, its checksum checked.
    pub async fn manifest(&self, id: &str) -> Result<Manifest, BackupError> {
        let what = format!("snapshot {id}");
        let bytes = self
            .raw(&snapshot_path(id), &what, MAX_MANIFEST_BYTES)
            .await?;
        let bytes = self.open_small(bytes).await?;
        Manifest::open(&bytes, &what)
    }

    /// The ids of every snapshot, oldest name first.
    pub async fn snapshot_ids(&self) -> Result<Vec<String>, BackupError> {
        let listed = self.list(&Path::from("snapshots")).await?;
        let mut ids: Vec<String> = listed
            .iter()
            .filter_map(|m| {
                m.location
                    .filename()?
                    .strip_suffix(".json")
                    .map(String::from)
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    pub async fn delete_manifest(&self, id: &str) -> Result<(), BackupError> {
        self.writable()?;
        self.store.delete(&snapshot_path(id)).await.map_err(storage)
    }

    /// Records a finished part of job `job` (a PIndex's entry, a source's entry).
    pub async fn put_staged(
        &self,
        job: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<(), BackupError> {
        self.writable()?;
        let path = Path::from(format!("staging/{job}/{name}.json"));
        let bytes = self.seal_small(bytes).await?;
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(storage)
    }

    /// What job `job` has finished: name → bytes.
    pub async fn staged(&self, job: &str) -> Result<BTreeMap<String, Vec<u8>>, BackupError> {
        let prefix = Path::from(format!("staging/{job}"));
        let listed = self.list(&prefix).await?;
        let mut out = BTreeMap::new();
        for meta in listed {
            let Some(name) = meta
                .location
                .filename()
                .and_then(|f| f.strip_suffix(".json"))
                .map(String::from)
            else {
                continue;
            };
            let bytes = self.raw(&meta.location, &name, MAX_MANIFEST_BYTES).await?;
            out.insert(name, self.open_small(bytes).await?);
        }
        Ok(out)
    }

    /// The jobs with a staging area (unfinished, or finished without clearing it).
    pub async fn staged_jobs(&self) -> Result<Vec<String>, BackupError> {
        let listed = self
            .store
            .list_with_delimiter(Some(&Path::from("staging")))
            .await
            .map_err(storage)?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(String::from))
            .collect())
    }

    /// Removes job `job`'s staging area.
    pub async fn clear_staged(&self, job: &str) -> Result<(), BackupError> {
        let prefix = Path::from(format!("staging/{job}"));
        let listed = self.list(&prefix).await?;
        for meta in listed {
            match self.store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(storage(e)),
            }
        }
        Ok(())
    }

    /// Every object under `prefix`.
    async fn list(&self, prefix: &Path) -> Result<Vec<object_store::ObjectMeta>, BackupError> {
        self.store
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(storage)
    }

    /// The object at `path`, if it is at most `limit` bytes ([`crate::limits`]).
    pub(crate) async fn raw(
        &self,
        path: &Path,
        what: &str,
        limit: u64,
    ) -> Result<Vec<u8>, BackupError> {
        limits::read(self.store.as_ref(), path, what, limit).await
    }
}
