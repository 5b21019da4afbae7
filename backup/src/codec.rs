//! How one blob is stored: a 5-byte header (`TSB1` and a flags byte) and the content,
//! zstd-compressed when that saves at least a tenth, then sealed when the repository is
//! encrypted. Pure; decoding checks the content's hash, so a damaged blob is named before it
//! is used, and bounds what it makes of a blob by [`crate::limits`], whatever size the blob
//! claims.

use crate::crypt::{self, Key};
use crate::manifest::content_hash;
use crate::BackupError;

const MAGIC: &[u8; 4] = b"TSB1";
const FLAG_ZSTD: u8 = 1;
const FLAG_SEALED: u8 = 2;
const ZSTD_LEVEL: i32 = 3;

/// The stored form of `content`.
pub fn encode(content: &[u8], key: Option<&Key>) -> Result<Vec<u8>, BackupError> {
    let compressed = zstd::bulk::compress(content, ZSTD_LEVEL).map_err(BackupError::storage)?;
    let (mut flags, body) = if compressed.len() < content.len() - content.len() / 10 {
        (FLAG_ZSTD, compressed)
    } else {
        (0, content.to_vec())
    };
    let body = match key {
        Some(key) => {
            flags |= FLAG_SEALED;
            crypt::seal(key, &body)?
        }
        None => body,
    };
    let mut out = Vec::with_capacity(body.len() + 5);
    out.extend_from_slice(MAGIC);
    out.push(flags);
    out.extend_from_slice(&body);
    Ok(out)
}

/// The content of a stored blob, checked against `hash` and `size`.
pub fn decode(
    stored: &[u8],
    hash: &str,
    size: u64,
    key: Option<&Key>,
) -> Result<Vec<u8>, BackupError> {
    let damaged = |reason: String| BackupError::Damaged {
        what: format!("blob {hash}"),
        reason,
    };
    let what = format!("blob {hash}");
    crate::limits::check(&what, size, crate::limits::MAX_BLOB_BYTES)?;
    crate::limits::check(
        &what,
        stored.len() as u64,
        crate::limits::MAX_STORED_BLOB_BYTES,
    )?;
    if stored.len() < 5 || &stored[..4] != MAGIC {
        return Err(damaged("no blob header".into()));
    }
    let flags = stored[4];
    let opened;
    let body = if flags & FLAG_SEALED != 0 {
        let key = key.ok_or_else(|| BackupError::Config {
            field: "options.passphrase_file".into(),
            reason: "the blob is encrypted: the repository needs its passphrase or key file".into(),
        })?;
        opened = crypt::open(key, &stored[5..])
            .map_err(|_| damaged("it does not open with the repository's key".into()))?;
        opened.as_slice()
    } else {
        &stored[5..]
    };
    let content = match flags & !FLAG_SEALED {
        0 => body.to_vec(),
        // At most the size the manifest says (itself bounded): a blob that decompresses
        // to more is refused as it grows, never allocated up front.
        FLAG_ZSTD => match crate::limits::decompress(body, &what, size) {
            Err(BackupError::TooLarge { .. }) => {
                return Err(damaged(format!(
                    "it decompresses to more than the {size} bytes the manifest says"
                )))
            }
            other => other?,
        },
        other => return Err(damaged(format!("unknown flags {other}"))),
    };
    if content.len() as u64 != size {
        return Err(damaged(format!(
            "{} bytes where the manifest says {size}",
            content.len()
        )));
    }
    if content_hash(&content) != hash {
        return Err(damaged("its content does not match its hash".into()));
    }
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_compressible_and_incompressible_content() {
        let text = b"the same words again ".repeat(100);
        let noise: Vec<u8> = (0..2000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for content in [text.as_slice(), noise.as_slice(), b"".as_slice()] {
            let stored = encode(content, None).unwrap();
            let back = decode(&stored, &content_hash(content), content.len() as u64, None).unwrap();
            assert_eq!(back, content);
        }
        assert!(encode(&text, None).unwrap().len() < text.len() / 2);
    }

    #[test]
    fn a_declared_size_is_never_allocated_up_front() {
        // A hostile manifest's 2^40 once made `zstd::bulk::decompress` reserve a terabyte,
        // which aborted the process.
        let content = b"the same words again ".repeat(100);
        let stored = encode(&content, None).unwrap();
        let hash = content_hash(&content);
        let err = decode(&stored, &hash, 1 << 40, None).unwrap_err();
        assert!(matches!(err, BackupError::TooLarge { .. }), "{err}");
        let limit = crate::limits::MAX_BLOB_BYTES;
        let err = decode(&stored, &hash, limit, None).unwrap_err();
        assert!(matches!(err, BackupError::Damaged { .. }), "{err}");
        let err = decode(&stored, &hash, 100, None).unwrap_err();
        assert!(err.to_string().contains("more than the 100 bytes"), "{err}");
    }

    #[test]
    fn a_flipped_byte_is_refused() {
        let content = b"the same words again ".repeat(100);
        let mut stored = encode(&content, None).unwrap();
        let last = stored.len() - 1;
        stored[last] ^= 0x40;
        let err = decode(&stored, &content_hash(&content), content.len() as u64, None).unwrap_err();
        assert!(matches!(err, BackupError::Damaged { .. }), "{err}");
    }
}
