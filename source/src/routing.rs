//! Which partition a document key belongs to: `crc32(key) % partitions`, stable forever for a
//! source (its partition count is fixed when it is created). Every source type routes so (see
//! `tessera_sources::partition_of`).

pub use tessera_sources::partition_of;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_is_stable_and_spread() {
        assert_eq!(partition_of("doc-1", 1024), partition_of("doc-1", 1024));
        let used: std::collections::BTreeSet<u32> = (0..10_000)
            .map(|i| partition_of(&format!("doc-{i}"), 64))
            .collect();
        assert_eq!(used.len(), 64, "10k keys reach every one of 64 partitions");
        assert!((0..1000).all(|i| partition_of(&format!("k{i}"), 7) < 7));
    }
}
