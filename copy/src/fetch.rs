//! The fetching side: takes a file set on the serving cluster (any of its nodes, which
//! forwards to a holder), downloads its files into a fresh directory (a broken stream resumes
//! at the offset reached; each file's size and CRC-32 are checked against the set's), and
//! releases it. The directory appears whole or not at all: files land in `<dir>.fetching`,
//! renamed to `<dir>` once all are in.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tessera_proto::peers::Peers;
use tessera_proto::v1::copy_client::CopyClient;
use tessera_proto::v1::{
    FileEntry, FileSet, ReadFileRequest, ReleaseFileSetRequest, TakeFileSetRequest,
};
use tokio::io::AsyncWriteExt;

use crate::pace::Pace;
use tessera_proto::peers::PeerChannel;

use crate::CopyError;

/// Streams of one file that may break before the file is given up.
const ATTEMPTS: u32 = 5;
/// The longest a take may run: the serving node checksums every file of the set (and a
/// forwarding node waits for the holder), but a node that hangs must not hold the caller.
pub const TAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// A file stream that delivers nothing for this long is taken as broken (and resumed).
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks `contact` (a node of the serving cluster) for the files of its readable copy of the
/// PIndex of `index` covering `partitions`; `describe_only`: what would be copied, nothing
/// held.
pub async fn take(
    peers: &Peers,
    contact: &str,
    index: &str,
    partitions: &[u32],
    describe_only: bool,
) -> Result<FileSet, CopyError> {
    let mut client = peers.copy(contact).map_err(CopyError::Transport)?;
    let request = TakeFileSetRequest {
        index: index.to_string(),
        partitions: partitions.to_vec(),
        describe_only,
        forwarded: false,
    };
    match tokio::time::timeout(TAKE_TIMEOUT, client.take_file_set(request)).await {
        Ok(answer) => answer
            .map(|r| r.into_inner())
            .map_err(CopyError::from_status),
        Err(_) => Err(CopyError::Transport(format!(
            "{contact} did not answer within {} s",
            TAKE_TIMEOUT.as_secs()
        ))),
    }
}

/// Whether `set` was taken from an index defined as `def` is here: the same type, source and
/// type params (a copy of another mapping would answer queries wrongly); `Err` says what
/// differs.
pub fn same_definition(def: &tessera_cfg::schema::IndexDef, set: &FileSet) -> Result<(), String> {
    let theirs = || format!("the other cluster's `{}`", def.name);
    if set.index_type != def.index_type {
        return Err(format!(
            "{} is of type `{}`, this one `{}`",
            theirs(),
            set.index_type,
            def.index_type
        ));
    }
    if set.source_name != def.source.name {
        return Err(format!(
            "{} reads source `{}`, this one `{}`",
            theirs(),
            set.source_name,
            def.source.name
        ));
    }
    let params: serde_json::Value = serde_json::from_str(&set.params_json)
        .map_err(|e| format!("{}: unreadable params: {e}", theirs()))?;
    if params != def.params {
        return Err(format!(
            "{} has other params (mapping) than this one",
            theirs()
        ));
    }
    Ok(())
}

/// How a download's bytes are counted as they arrive (a progress report reads `done`
/// meanwhile) and paced.
#[derive(Clone, Copy)]
pub struct Meter<'a> {
    pub done: &'a AtomicU64,
    pub pace: &'a Pace,
}

/// The checkpoints of `set`'s commit, provided the index is defined alike there
/// ([`same_definition`]); `Err` says why the set cannot be used.
pub fn checkpoints_if_alike(
    def: &tessera_cfg::schema::IndexDef,
    set: &FileSet,
) -> Result<tessera_index::checkpoint::Checkpoints, String> {
    same_definition(def, set)?;
    tessera_index::checkpoint::decode(&set.checkpoints_json)
        .ok_or_else(|| format!("node {} sent unreadable checkpoints", set.node))
}

/// Downloads the files of `set` into `dir` (which must not exist) and releases the set,
/// whatever happens. Returns the bytes fetched.
pub async fn download(
    peers: &Peers,
    set: &FileSet,
    dir: &Path,
    meter: Meter<'_>,
) -> Result<u64, CopyError> {
    let result = download_all(peers, set, dir, meter).await;
    release(peers, set).await;
    result
}

/// Lets the serving node drop `set` (best effort: it drops idle sets by itself).
pub async fn release(peers: &Peers, set: &FileSet) {
    if set.id.is_empty() {
        return;
    }
    if let Ok(mut client) = peers.copy(&set.url) {
        let request = ReleaseFileSetRequest {
            set_id: set.id.clone(),
        };
        if let Err(e) = client.release_file_set(request).await {
            tracing::debug!(error = %e, set = set.id, "could not release a file set");
        }
    }
}

async fn download_all(
    peers: &Peers,
    set: &FileSet,
    dir: &Path,
    meter: Meter<'_>,
) -> Result<u64, CopyError> {
    let partial = PathBuf::from(format!("{}.fetching", dir.display()));
    if partial.exists() {
        tokio::fs::remove_dir_all(&partial)
            .await
            .map_err(|e| CopyError::io(&partial, e))?;
    }
    tokio::fs::create_dir_all(&partial)
        .await
        .map_err(|e| CopyError::io(&partial, e))?;
    let mut client = peers.copy(&set.url).map_err(CopyError::Transport)?;
    let mut bytes = 0;
    for f in &set.files {
        if let Err(e) = download_file(&mut client, &set.id, f, &partial, meter).await {
            let _ = tokio::fs::remove_dir_all(&partial).await;
            return Err(e);
        }
        bytes += f.size;
    }
    tokio::fs::rename(&partial, dir)
        .await
        .map_err(|e| CopyError::io(dir, e))?;
    Ok(bytes)
}

/// Downloads file `f` of set `set_id` into `into`, resuming a broken stream where it broke.
async fn download_file(
    client: &mut CopyClient<PeerChannel>,
    set_id: &str,
    f: &FileEntry,
    into: &Path,
    meter: Meter<'_>,
) -> Result<(), CopyError> {
    if f.name.contains('/') || f.name.contains('\\') || f.name.starts_with('.') {
        return Err(CopyError::Corrupt {
            file: f.name.clone(),
            reason: "the serving node named a file outside the set's directory".into(),
        });
    }
    let path = into.join(&f.name);
    let mut out = tokio::fs::File::create(&path)
        .await
        .map_err(|e| CopyError::io(&path, e))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut offset = 0u64;
    let mut broken = 0;
    while offset < f.size {
        let request = ReadFileRequest {
            set_id: set_id.to_string(),
            name: f.name.clone(),
            offset,
        };
        let opened = tokio::time::timeout(IDLE_TIMEOUT, client.read_file(request)).await;
        let error = match opened {
            Err(_) => CopyError::Transport(format!(
                "no answer for {} within {} s",
                f.name,
                IDLE_TIMEOUT.as_secs()
            )),
            Ok(Err(status)) => CopyError::from_status(status),
            Ok(Ok(stream)) => {
                let mut stream = stream.into_inner();
                loop {
                    let next = match tokio::time::timeout(IDLE_TIMEOUT, stream.message()).await {
                        Ok(next) => next,
                        Err(_) => {
                            break CopyError::Transport(format!(
                                "the stream of {} stalled at byte {offset}",
                                f.name
                            ))
                        }
                    };
                    match next {
                        Ok(Some(chunk)) => {
                            out.write_all(&chunk.data)
                                .await
                                .map_err(|e| CopyError::io(&path, e))?;
                            hasher.update(&chunk.data);
                            offset += chunk.data.len() as u64;
                            let len = chunk.data.len() as u64;
                            meter.done.fetch_add(len, Ordering::Relaxed);
                            meter.pace.sent(len).await;
                        }
                        Ok(None) if offset < f.size => {
                            break CopyError::Transport(format!(
                                "the stream of {} ended at byte {offset} of {}",
                                f.name, f.size
                            ))
                        }
                        Ok(None) => break CopyError::Transport(String::new()),
                        Err(status) => break CopyError::from_status(status),
                    }
                }
            }
        };
        if offset >= f.size {
            break;
        }
        match error {
            // The set is gone (released, expired, or the serving node restarted): no resume.
            CopyError::NotFound(_) => return Err(error),
            e if broken + 1 >= ATTEMPTS => return Err(e),
            e => {
                broken += 1;
                tracing::debug!(error = %e, file = f.name, offset, "file stream broke; resuming");
                tokio::time::sleep(Duration::from_millis(100 << broken)).await;
            }
        }
    }
    out.flush().await.map_err(|e| CopyError::io(&path, e))?;
    out.sync_all().await.map_err(|e| CopyError::io(&path, e))?;
    if offset != f.size {
        return Err(CopyError::Corrupt {
            file: f.name.clone(),
            reason: format!("{offset} bytes received, {} expected", f.size),
        });
    }
    let crc = hasher.finalize();
    if crc != f.crc32 {
        return Err(CopyError::Corrupt {
            file: f.name.clone(),
            reason: format!("CRC-32 {crc:08x}, the serving node's is {:08x}", f.crc32),
        });
    }
    Ok(())
}
