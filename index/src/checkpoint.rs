//! Checkpoints: per source partition, the seq a PIndex has reached and the partition uuid
//! (history) that seq belongs to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub partition_uuid: String,
}

/// Source partition → checkpoint.
pub type Checkpoints = BTreeMap<u32, Checkpoint>;

/// Encodes checkpoints for a commit payload or file.
pub fn encode(checkpoints: &Checkpoints) -> String {
    serde_json::to_string(checkpoints).unwrap_or_default()
}

/// Decodes what [`encode`] wrote; `None` for anything else.
pub fn decode(text: &str) -> Option<Checkpoints> {
    serde_json::from_str(text).ok()
}

/// Records that `partition` reached `seq` under `uuid`.
pub fn advance(checkpoints: &mut Checkpoints, partition: u32, uuid: &str, seq: u64) {
    let entry = checkpoints.entry(partition).or_insert_with(|| Checkpoint {
        seq: 0,
        partition_uuid: uuid.to_string(),
    });
    if entry.partition_uuid != uuid {
        entry.partition_uuid = uuid.to_string();
    }
    entry.seq = seq;
}
