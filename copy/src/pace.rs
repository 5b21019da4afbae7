//! A bytes-per-second limit shared by every transfer that counts against it: the node's copies
//! from peers (and backups, each with its own). Transfers report what they moved and wait
//! until the average since the pace was made is back under the rate; several transfers sharing
//! one pace share its rate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Paces transfers to `bytes_per_s` on average (0: unlimited).
#[derive(Debug)]
pub struct Pace {
    bytes_per_s: u64,
    started: Instant,
    moved: AtomicU64,
}

impl Pace {
    pub fn new(bytes_per_s: u64) -> Self {
        Self {
            bytes_per_s,
            started: Instant::now(),
            moved: AtomicU64::new(0),
        }
    }

    pub fn unlimited() -> Self {
        Self::new(0)
    }

    /// Counts `bytes` moved, then waits until the average is back under the rate.
    pub async fn sent(&self, bytes: u64) {
        let moved = self.moved.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if self.bytes_per_s == 0 {
            return;
        }
        let due = Duration::from_secs_f64(moved as f64 / self.bytes_per_s as f64);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transfers_sharing_a_pace_share_its_rate() {
        let pace = Pace::new(10_000);
        let start = Instant::now();
        // Two transfers of 1000 bytes each at 10 000 B/s together: at least 0.2 s.
        tokio::join!(pace.sent(1000), pace.sent(1000));
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(195), "{waited:?}");
        let free = Pace::unlimited();
        let start = Instant::now();
        free.sent(1 << 40).await;
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "no wait when unlimited"
        );
    }
}
