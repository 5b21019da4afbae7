//! Byte layouts of what the local engine keeps in redb: key records and history entries.
//!
//! A small fixed binary layout rather than JSON, because values are opaque bytes and the history
//! log is written on every commit.

use crate::error::{CfgError, Result};
use crate::store::{KeyValue, LeaseId, Revision, WatchEvent};

/// A live key's record: revisions, lease (0 = none) and the value.
pub(crate) struct Record {
    pub mod_revision: Revision,
    pub create_revision: Revision,
    pub lease: LeaseId,
    pub value: Vec<u8>,
}

const RECORD_HEADER: usize = 24;

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_HEADER + self.value.len());
        out.extend_from_slice(&self.mod_revision.to_le_bytes());
        out.extend_from_slice(&self.create_revision.to_le_bytes());
        out.extend_from_slice(&self.lease.to_le_bytes());
        out.extend_from_slice(&self.value);
        out
    }

    pub fn decode(key: &str, bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(key, bytes);
        let mod_revision = r.i64()?;
        let create_revision = r.i64()?;
        let lease = r.i64()?;
        Ok(Record {
            mod_revision,
            create_revision,
            lease,
            value: r.rest().to_vec(),
        })
    }

    pub fn into_kv(self, key: String) -> KeyValue {
        KeyValue {
            key,
            value: self.value,
            mod_revision: self.mod_revision,
            create_revision: self.create_revision,
            lease: (self.lease != 0).then_some(self.lease),
        }
    }
}

/// Encodes the events of one revision for the history log.
pub(crate) fn encode_events(events: &[WatchEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        match event {
            WatchEvent::Put(kv) => {
                out.push(0u8);
                put_bytes(&mut out, kv.key.as_bytes());
                out.extend_from_slice(&kv.create_revision.to_le_bytes());
                out.extend_from_slice(&kv.lease.unwrap_or(0).to_le_bytes());
                put_bytes(&mut out, &kv.value);
            }
            WatchEvent::Delete { key, .. } => {
                out.push(1u8);
                put_bytes(&mut out, key.as_bytes());
            }
            // Never logged: compaction is not a change of the data.
            WatchEvent::Compacted { .. } => {}
        }
    }
    out
}

/// Decodes the events logged at `revision`.
pub(crate) fn decode_events(revision: Revision, bytes: &[u8]) -> Result<Vec<WatchEvent>> {
    let label = format!("<history@{revision}>");
    let mut r = Reader::new(&label, bytes);
    let mut events = Vec::new();
    while !r.is_empty() {
        let tag = r.u8()?;
        let key = r.string()?;
        match tag {
            0 => {
                let create_revision = r.i64()?;
                let lease = r.i64()?;
                let value = r.bytes()?.to_vec();
                events.push(WatchEvent::Put(KeyValue {
                    key,
                    value,
                    mod_revision: revision,
                    create_revision,
                    lease: (lease != 0).then_some(lease),
                }));
            }
            1 => events.push(WatchEvent::Delete { key, revision }),
            other => return Err(r.corrupt(format!("unknown event tag {other}"))),
        }
    }
    Ok(events)
}

/// A lease's TTL and deadline (wall clock, so a restart still expires it on time).
pub(crate) struct LeaseRecord {
    pub ttl_ms: u64,
    pub deadline_unix_ms: u64,
}

impl LeaseRecord {
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.ttl_ms.to_le_bytes());
        out[8..].copy_from_slice(&self.deadline_unix_ms.to_le_bytes());
        out
    }

    pub fn decode(lease: LeaseId, bytes: &[u8]) -> Result<Self> {
        let label = format!("<lease {lease:x}>");
        let mut r = Reader::new(&label, bytes);
        Ok(LeaseRecord {
            ttl_ms: r.u64()?,
            deadline_unix_ms: r.u64()?,
        })
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    label: &'a str,
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(label: &'a str, bytes: &'a [u8]) -> Self {
        Self { label, bytes }
    }

    fn corrupt(&self, reason: String) -> CfgError {
        CfgError::Corrupt {
            key: self.label.to_string(),
            reason,
        }
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(self.corrupt(format!(
                "truncated record: wanted {n} bytes, {} left",
                self.bytes.len()
            )));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        self.take(len)
    }

    fn string(&mut self) -> Result<String> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|e| self.corrupt(format!("key not UTF-8: {e}")))
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let events = vec![
            WatchEvent::Put(KeyValue {
                key: "a".into(),
                value: b"v".to_vec(),
                mod_revision: 7,
                create_revision: 3,
                lease: Some(9),
            }),
            WatchEvent::Delete {
                key: "b".into(),
                revision: 7,
            },
        ];
        let bytes = encode_events(&events);
        assert_eq!(decode_events(7, &bytes).unwrap(), events);
    }

    #[test]
    fn truncated_record_is_corrupt_not_panic() {
        let err = Record::decode("k", &[1, 2, 3]).err().unwrap();
        assert!(
            matches!(err, CfgError::Corrupt { ref key, .. } if key == "k"),
            "{err}"
        );
        let err = decode_events(4, &[0, 200, 0, 0, 0]).err().unwrap();
        assert!(matches!(err, CfgError::Corrupt { .. }), "{err}");
    }
}
