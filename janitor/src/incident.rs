//! When a source's history was replaced wholesale — its file lost and recreated, restored
//! from an old copy — every partition answers with a new uuid, and following the rollback
//! rule would drop every document of every PIndex fed from it. That is an incident, not a
//! rollback: the feed stops, says why, and waits for an operator's explicit accept
//! (`POST /api/index/{name}/ingestControl/accept-rollback`) before dropping anything. A
//! history replaced for some partitions only (a partition of a replicated source failed
//! over) is rolled back as before.

use std::collections::BTreeMap;
use std::sync::Arc;

use tessera_sources::{SourceError, SourceType};

/// Whether `source` (partition → its uuid now) replaced the whole history this feed has read:
/// every partition of `partitions` with a checkpoint (`checkpoints`: partition → uuid) now has
/// another uuid, or is gone. False when the feed has read nothing yet.
pub fn whole_history_replaced(
    partitions: &[u32],
    checkpoints: &BTreeMap<u32, String>,
    source: &BTreeMap<u32, String>,
) -> bool {
    let mut read = partitions
        .iter()
        .filter_map(|p| checkpoints.get(p).filter(|u| !u.is_empty()).map(|u| (p, u)))
        .peekable();
    if read.peek().is_none() {
        return false;
    }
    read.all(|(p, uuid)| source.get(p) != Some(uuid))
}

/// Asks `source` for its partitions' uuids and says why the feed must hold, if the whole
/// history it has read was replaced. A source that cannot be asked holds the feed too:
/// dropping data on a guess is what this prevents.
pub(crate) async fn check(
    source: &dyn SourceType,
    partitions: &[u32],
    checkpoints: &BTreeMap<u32, String>,
    timeout: std::time::Duration,
) -> Option<String> {
    let now = match tokio::time::timeout(timeout, source.partitions()).await {
        Ok(Ok(listed)) => tessera_sources::uuids(&listed),
        // Gone altogether: every history it had is replaced (by nothing).
        Ok(Err(SourceError::NotFound(_))) => BTreeMap::new(),
        Ok(Err(e)) => return Some(format!("cannot check the source's history: {e}")),
        Err(_) => return Some("cannot check the source's history: no answer".into()),
    };
    whole_history_replaced(partitions, checkpoints, &now).then(|| {
        format!(
            "{} replaced the whole history of partitions {partitions:?}; nothing was dropped: accept with POST /api/index/{{name}}/ingestControl/accept-rollback",
            source.describe()
        )
    })
}

/// Asks the source how many partitions it has until it answers, and says why it disagrees
/// with the definition's `expected`, if it does.
pub(crate) async fn partition_count_mismatch(
    source: Arc<dyn SourceType>,
    expected: u32,
) -> Option<String> {
    loop {
        if let Ok(listed) = source.partitions().await {
            let real = listed.len() as u32;
            if real > 0 {
                return (real != expected).then(|| {
                    format!(
                        "{} has {real} partitions; the index definition says {expected}: partitions past {expected} are not read",
                        source.describe()
                    )
                });
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(u32, &str)]) -> BTreeMap<u32, String> {
        pairs.iter().map(|(p, u)| (*p, u.to_string())).collect()
    }

    #[test]
    fn every_partition_read_with_a_new_uuid_is_an_incident() {
        let read = map(&[(0, "a"), (1, "b")]);
        assert!(whole_history_replaced(
            &[0, 1],
            &read,
            &map(&[(0, "x"), (1, "y")])
        ));
        assert!(
            whole_history_replaced(&[0, 1], &read, &map(&[])),
            "a source gone"
        );
    }

    #[test]
    fn some_partitions_replaced_or_nothing_read_is_a_rollback() {
        let read = map(&[(0, "a"), (1, "b")]);
        assert!(!whole_history_replaced(
            &[0, 1],
            &read,
            &map(&[(0, "x"), (1, "b")])
        ));
        assert!(!whole_history_replaced(
            &[0, 1],
            &map(&[]),
            &map(&[(0, "x")])
        ));
        assert!(!whole_history_replaced(
            &[0, 1],
            &map(&[(0, "")]),
            &map(&[(0, "x")])
        ));
    }
}
