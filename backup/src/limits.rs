//! How much a node reads from a repository, whatever the repository says (DESIGN decision
//! 16): a repository may be written by another cluster, or by anyone with write access to
//! its bucket or directory, so every object's size is checked before it is read, every read
//! stops at the limit, and decompression grows its output only as data arrives, up to the
//! limit. Past a limit, the object is refused with [`BackupError::TooLarge`] naming it.

use futures::StreamExt;
use object_store::path::Path;
use object_store::ObjectStore;

use crate::BackupError;

/// One blob's content (one PIndex file, or one chunk of a source's log): 2 GiB. A save
/// refuses a larger file rather than write a snapshot no node would restore.
pub const MAX_BLOB_BYTES: u64 = 2 << 30;
/// A blob as stored (compressed or not, sealed or not): its content's limit plus what
/// sealing adds.
pub const MAX_STORED_BLOB_BYTES: u64 = MAX_BLOB_BYTES + 4096;
/// A snapshot's manifest (and a staged entry of a job) as stored: 64 MiB.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// The lock and the encryption record: 64 KiB.
pub const MAX_RECORD_BYTES: u64 = 64 << 10;

/// Refuses `size` bytes of `what` past `limit`.
pub fn check(what: &str, size: u64, limit: u64) -> Result<(), BackupError> {
    if size > limit {
        return Err(BackupError::TooLarge {
            what: what.to_string(),
            size,
            limit,
        });
    }
    Ok(())
}

/// The object at `path`, read whole only if it is at most `limit` bytes: its listed size is
/// checked first, and the read stops past the limit whatever the store sent.
pub(crate) async fn read(
    store: &dyn ObjectStore,
    path: &Path,
    what: &str,
    limit: u64,
) -> Result<Vec<u8>, BackupError> {
    let got = store.get(path).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => BackupError::NotFound(what.to_string()),
        e => BackupError::storage(e),
    })?;
    check(what, got.meta.size, limit)?;
    let capacity = usize::try_from(got.meta.size).unwrap_or(0);
    let mut out = Vec::with_capacity(capacity);
    let mut stream = got.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(BackupError::storage)?;
        check(what, (out.len() + chunk.len()) as u64, limit)?;
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// `body`, zstd-decompressed into at most `limit` bytes; the output grows with the data
/// (nothing is allocated on a header's word). More than `limit` bytes is [`BackupError::TooLarge`].
pub fn decompress(body: &[u8], what: &str, limit: u64) -> Result<Vec<u8>, BackupError> {
    use std::io::Read;
    let decoder = zstd::stream::read::Decoder::new(body).map_err(|e| BackupError::Damaged {
        what: what.to_string(),
        reason: format!("does not decompress: {e}"),
    })?;
    let mut out = Vec::new();
    // One byte past the limit tells "exactly the limit" from "more".
    decoder
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| BackupError::Damaged {
            what: what.to_string(),
            reason: format!("does not decompress: {e}"),
        })?;
    check(what, out.len() as u64, limit)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decompression_stops_at_the_limit() {
        let zeros = vec![0u8; 1 << 20];
        let packed = zstd::bulk::compress(&zeros, 3).unwrap();
        assert_eq!(decompress(&packed, "x", 1 << 20).unwrap(), zeros);
        let err = decompress(&packed, "blob x", 1000).unwrap_err();
        assert!(
            matches!(err, BackupError::TooLarge { limit: 1000, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("blob x"), "{err}");
    }
}
