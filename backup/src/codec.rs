//! How one blob is stored: a 5-byte header (`TSB1` and a flags byte) and the content,
//! zstd-compressed when that saves at least a tenth. Pure; decoding checks the content's hash,
//! so a damaged blob is named before it is used.

use crate::manifest::content_hash;
use crate::BackupError;

const MAGIC: &[u8; 4] = b"TSB1";
const FLAG_ZSTD: u8 = 1;
const ZSTD_LEVEL: i32 = 3;

/// The stored form of `content`.
pub fn encode(content: &[u8]) -> Result<Vec<u8>, BackupError> {
    let compressed = zstd::bulk::compress(content, ZSTD_LEVEL).map_err(BackupError::storage)?;
    let (flags, body) = if compressed.len() < content.len() - content.len() / 10 {
        (FLAG_ZSTD, compressed.as_slice())
    } else {
        (0, content)
    };
    let mut out = Vec::with_capacity(body.len() + 5);
    out.extend_from_slice(MAGIC);
    out.push(flags);
    out.extend_from_slice(body);
    Ok(out)
}

/// The content of a stored blob, checked against `hash` and `size`.
pub fn decode(stored: &[u8], hash: &str, size: u64) -> Result<Vec<u8>, BackupError> {
    let damaged = |reason: String| BackupError::Damaged {
        what: format!("blob {hash}"),
        reason,
    };
    if stored.len() < 5 || &stored[..4] != MAGIC {
        return Err(damaged("no blob header".into()));
    }
    let body = &stored[5..];
    let content = match stored[4] {
        0 => body.to_vec(),
        FLAG_ZSTD => {
            let capacity = usize::try_from(size).map_err(|e| damaged(e.to_string()))?;
            zstd::bulk::decompress(body, capacity)
                .map_err(|e| damaged(format!("does not decompress: {e}")))?
        }
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
            let stored = encode(content).unwrap();
            let back = decode(&stored, &content_hash(content), content.len() as u64).unwrap();
            assert_eq!(back, content);
        }
        assert!(encode(&text).unwrap().len() < text.len() / 2);
    }

    #[test]
    fn a_flipped_byte_is_refused() {
        let content = b"the same words again ".repeat(100);
        let mut stored = encode(&content).unwrap();
        let last = stored.len() - 1;
        stored[last] ^= 0x40;
        let err = decode(&stored, &content_hash(&content), content.len() as u64).unwrap_err();
        assert!(matches!(err, BackupError::Damaged { .. }), "{err}");
    }
}
