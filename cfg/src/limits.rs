//! Upper bounds on what the Cfg holds and what an index definition may ask for. They exist so
//! that one request cannot make the planner allocate without bound or write a document the
//! store refuses (etcd's default request limit is 1.5 MiB), and they are checked where the
//! value enters: at validation (400 naming the field) and before every write.

/// Most partitions a source of an index may have.
pub const MAX_SOURCE_PARTITIONS: u32 = 16_384;

/// Most PIndexes one index may be split into.
pub const MAX_PINDEXES_PER_INDEX: u32 = 1_024;

/// Largest value one Cfg key may hold, in bytes. Below etcd's default `--max-request-bytes`
/// (1.5 MiB) with room for the rest of a transaction.
pub const MAX_VALUE_BYTES: usize = 1_048_576;

/// How many PIndexes `source_partitions` split under these parameters makes (the planner's
/// split, counted without building it): exactly `min(index_partitions, partitions)` when set,
/// otherwise chunks of `max_partitions_per_pindex`, otherwise one.
pub fn pindex_count(
    source_partitions: u32,
    max_partitions_per_pindex: Option<u32>,
    index_partitions: Option<u32>,
) -> u32 {
    match (index_partitions, max_partitions_per_pindex) {
        _ if source_partitions == 0 => 0,
        (Some(n), _) if n > 0 => n.min(source_partitions),
        (_, Some(max)) if max > 0 => source_partitions.div_ceil(max),
        _ => 1,
    }
}

/// The error of a value too large to store, if it is.
pub fn check_value_size(key: &str, len: usize) -> crate::Result<()> {
    if len > MAX_VALUE_BYTES {
        return Err(crate::CfgError::TooLarge {
            key: key.to_string(),
            bytes: len,
            limit: MAX_VALUE_BYTES,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_the_split_rules() {
        assert_eq!(pindex_count(1024, Some(64), None), 16);
        assert_eq!(pindex_count(1000, Some(64), None), 16);
        assert_eq!(pindex_count(8, None, Some(3)), 3);
        assert_eq!(pindex_count(2, None, Some(8)), 2);
        assert_eq!(pindex_count(5, None, None), 1);
        assert_eq!(pindex_count(0, Some(1), None), 0);
    }

    #[test]
    fn values_past_the_limit_are_refused() {
        assert!(check_value_size("k", MAX_VALUE_BYTES).is_ok());
        assert!(matches!(
            check_value_size("k", MAX_VALUE_BYTES + 1),
            Err(crate::CfgError::TooLarge { .. })
        ));
    }
}
