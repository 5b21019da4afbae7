//! Importing a partition's history as it was saved (a restore): the entries at their own seqs,
//! under the partition uuid they were logged under, so the checkpoints of restored PIndexes
//! (seq and uuid per partition) point into this log as they pointed into the original.

use std::sync::Arc;

use super::*;

impl SourceLog {
    /// Imports `entries` (seq order) into `partition` of `source` under `uuid`, creating the
    /// source with `partitions` partitions if it does not exist. Idempotent: entries at or
    /// below the partition's high seq are skipped, so an import cut short is resumed by sending
    /// the same entries again. A partition that holds another history is refused.
    pub fn import(
        &self,
        source: &str,
        partitions: u32,
        partition: u32,
        uuid: &str,
        entries: &[Entry],
    ) -> Result<u64, LogError> {
        self.reopening(|| self.import_once(source, partitions, partition, uuid, entries))
    }

    fn import_once(
        &self,
        source: &str,
        count: u32,
        partition: u32,
        uuid: &str,
        entries: &[Entry],
    ) -> Result<u64, LogError> {
        check_name(source)?;
        if partition >= count {
            return Err(LogError::NoSuchPartition {
                name: source.into(),
                partition,
            });
        }
        let wtx = self.begin_write()?;
        let high = {
            let mut sources = wtx.open_table(SOURCES).map_err(LogError::storage)?;
            let mut parts = wtx.open_table(PARTITIONS).map_err(LogError::storage)?;
            let mut log = wtx.open_table(LOG).map_err(LogError::storage)?;
            let mut keys = wtx.open_table(KEYS).map_err(LogError::storage)?;
            let has = ensure_source(&mut sources, &mut parts, source, count)?;
            if has != count {
                return Err(LogError::Refused(format!(
                    "source `{source}` has {has} partitions; the saved one had {count}"
                )));
            }
            let (mut high, current) =
                match parts.get((source, partition)).map_err(LogError::storage)? {
                    Some(record) => decode_partition(record.value())?,
                    None => (0, String::new()),
                };
            if high > 0 && current != uuid {
                return Err(LogError::Refused(format!(
                    "partition {partition} of source `{source}` holds another history (uuid {current}); import into an empty source"
                )));
            }
            let resume_after = high;
            for e in entries.iter().filter(|e| e.seq > resume_after) {
                log.insert(
                    (source, partition, e.seq),
                    encode_entry(&e.key, e.doc.as_deref()).as_slice(),
                )
                .map_err(LogError::storage)?;
                match &e.doc {
                    Some(_) => keys.insert((source, e.key.as_str()), ()).map(|_| ()),
                    None => keys.remove((source, e.key.as_str())).map(|_| ()),
                }
                .map_err(LogError::storage)?;
                high = e.seq;
            }
            parts
                .insert((source, partition), encode_partition(high, uuid).as_slice())
                .map_err(LogError::storage)?;
            high
        };
        wtx.commit().map_err(LogError::storage)?;
        let _ = self.inner.appended.send(Arc::new(Appended {
            source: source.to_string(),
            partition,
            seq: high,
        }));
        Ok(high)
    }
}
