//! Splitting an index's source partitions into PIndexes: contiguous ranges with names that
//! depend only on the index name and the range, so a definition edit that keeps the
//! partitioning keeps every PIndex name (and with it every copy).

use crate::model::IndexSpec;

/// One PIndex of a split: its name and the source partitions it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub partitions: Vec<u32>,
}

/// The PIndexes of `index`, in partition order.
///
/// `index_partitions = N`: exactly `min(N, partitions)` PIndexes whose sizes differ by at most
/// one (the larger ones first). Otherwise chunks of `max_partitions_per_pindex` (the last one
/// may be smaller); neither set: one PIndex.
pub fn split(index: &IndexSpec) -> Vec<Part> {
    let total = index.source_partitions;
    let sizes: Vec<u32> = match (index.index_partitions, index.max_partitions_per_pindex) {
        (Some(n), _) if n > 0 && total > 0 => {
            let n = n.min(total);
            let (base, extra) = (total / n, total % n);
            (0..n).map(|i| base + u32::from(i < extra)).collect()
        }
        (_, Some(max)) if max > 0 && total > 0 => {
            let mut sizes = vec![max; (total / max) as usize];
            if !total.is_multiple_of(max) {
                sizes.push(total % max);
            }
            sizes
        }
        _ if total > 0 => vec![total],
        _ => Vec::new(),
    };
    let mut first = 0u32;
    sizes
        .into_iter()
        .map(|size| {
            let last = first + size - 1;
            let part = Part {
                name: format!("{}_{first}-{last}", index.name),
                partitions: (first..=last).collect(),
            };
            first = last + 1;
            part
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(partitions: u32, max: Option<u32>, exact: Option<u32>) -> IndexSpec {
        IndexSpec {
            name: "books".into(),
            source_partitions: partitions,
            max_partitions_per_pindex: max,
            index_partitions: exact,
            replicas: 0,
            frozen: false,
            spread_level: None,
        }
    }

    #[test]
    fn chunks_by_maximum_and_exact_count() {
        let parts = split(&index(10, Some(4), None));
        let sizes: Vec<usize> = parts.iter().map(|p| p.partitions.len()).collect();
        assert_eq!(sizes, [4, 4, 2]);
        assert_eq!(parts[1].name, "books_4-7");
        let parts = split(&index(10, Some(4), Some(3)));
        let sizes: Vec<usize> = parts.iter().map(|p| p.partitions.len()).collect();
        assert_eq!(sizes, [4, 3, 3]);
        assert_eq!(
            split(&index(3, None, Some(8))).len(),
            3,
            "never more PIndexes than partitions"
        );
        assert_eq!(split(&index(5, None, None)).len(), 1);
    }

    #[test]
    fn names_survive_edits_that_keep_the_partitioning() {
        let a = split(&index(1024, Some(16), None));
        let mut edited = index(1024, Some(16), None);
        edited.replicas = 2;
        edited.spread_level = Some(1);
        assert_eq!(a, split(&edited));
        assert_eq!(
            a,
            split(&index(1024, None, Some(64))),
            "same ranges, same names"
        );
    }
}
