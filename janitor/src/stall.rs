//! Stalled feeds: a feed behind its source that applies nothing for a while says so (in the
//! PIndex's status, the node's copy report and the cluster's health), instead of stalling
//! silently.

use std::time::Duration;

use crate::feed::FeedStatus;

/// How long a feed behind its source may apply nothing before it is reported stalled (in the
/// PIndex's status, the node's copy report and the cluster's health).
pub const STALL_AFTER: Duration = Duration::from_secs(20);

/// Whether a feed that is `behind` on some partitions has stalled: it applied nothing for
/// [`STALL_AFTER`] (paused feeds never stall). Updates the feed's progress mark.
pub(crate) fn stall(
    mark: &mut (u64, tokio::time::Instant),
    partitions: usize,
    status: &FeedStatus,
    behind: &[u32],
    now: tokio::time::Instant,
) -> Option<String> {
    if behind.is_empty() || status.paused || status.applied != mark.0 {
        *mark = (status.applied, now);
        return None;
    }
    let idle = now.duration_since(mark.1);
    if idle < STALL_AFTER {
        return None;
    }
    let unconnected = behind
        .iter()
        .filter(|p| !status.partitions.get(p).is_some_and(|s| s.connected))
        .count();
    let mut reason = format!(
        "feed stalled: {} of {} source partitions behind the source, nothing applied for {} s ({unconnected} of them not streaming)",
        behind.len(),
        partitions,
        idle.as_secs()
    );
    if let Some(e) = &status.last_error {
        reason.push_str(&format!("; last error: {e}"));
    }
    Some(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_behind_that_applies_nothing_for_a_while_is_stalled() {
        let start = tokio::time::Instant::now();
        let mut mark = (0, start);
        let mut status = FeedStatus {
            last_error: Some("partition 3: the source did not open the stream".into()),
            applied: 10,
            ..FeedStatus::default()
        };
        // Progress moves the mark; being caught up or paused never stalls.
        assert_eq!(stall(&mut mark, 4, &status, &[3], start), None);
        assert_eq!(mark, (10, start));
        let late = start + STALL_AFTER + Duration::from_secs(1);
        assert_eq!(stall(&mut mark.clone(), 4, &status, &[], late), None);
        status.paused = true;
        assert_eq!(stall(&mut mark.clone(), 4, &status, &[3], late), None);
        status.paused = false;
        // Not long enough yet.
        let soon = start + STALL_AFTER / 2;
        assert_eq!(stall(&mut mark, 4, &status, &[3], soon), None);
        // Long enough: the reason says how many partitions, for how long, and the last error.
        let why = stall(&mut mark, 4, &status, &[3], late).expect("stalled");
        assert!(
            why.starts_with("feed stalled: 1 of 4 source partitions behind"),
            "{why}"
        );
        assert!(why.contains("1 of them not streaming"), "{why}");
        assert!(why.contains("did not open the stream"), "{why}");
        // Progress again clears it.
        status.applied = 11;
        assert_eq!(stall(&mut mark, 4, &status, &[3], late), None);
    }
}
