//! A feed's counters in the node's metrics (`tessera_feed_*_total{index}`), resolved to their
//! series once at start so counting costs an atomic add.

use tessera_telemetry::prometheus::IntCounter;

#[derive(Clone)]
pub(super) struct FeedCounters {
    pub changes: IntCounter,
    pub commits: IntCounter,
    pub rollbacks: IntCounter,
    pub errors: IntCounter,
    pub reconnects: IntCounter,
}

impl FeedCounters {
    pub fn for_index(index: &str) -> Self {
        let m = tessera_telemetry::metrics();
        let of = |family: &tessera_telemetry::prometheus::IntCounterVec| {
            family.with_label_values(&[index])
        };
        FeedCounters {
            changes: of(&m.feed_changes),
            commits: of(&m.feed_commits),
            rollbacks: of(&m.feed_rollbacks),
            errors: of(&m.feed_errors),
            reconnects: of(&m.feed_reconnects),
        }
    }
}
