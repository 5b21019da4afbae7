//! Watches on the local engine: replay the history table from the asked revision, then follow
//! the commit broadcast. A watcher that falls behind the broadcast re-reads the history, so a
//! slow consumer loses nothing as long as the history still holds what it has not seen.

use std::sync::{Arc, Weak};

use tokio::sync::{broadcast, mpsc};

use super::engine::{Committed, Inner};
use crate::store::{Revision, WatchEvent, WatchStream, WATCH_BUFFER};

/// History revisions read per replay step.
const REPLAY_CHUNK: usize = 256;

pub(crate) fn spawn(
    inner: Weak<Inner>,
    committed: broadcast::Receiver<Arc<Committed>>,
    prefix: String,
    from: Revision,
) -> WatchStream {
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    let task = tokio::spawn(async move {
        let feeder = Feeder { inner, prefix, tx };
        // `None` means the stream is over (consumer gone, store closed, history compacted).
        let _ = feeder.run(committed, from).await;
    });
    WatchStream::new(rx, task)
}

struct Feeder {
    inner: Weak<Inner>,
    prefix: String,
    tx: mpsc::Sender<WatchEvent>,
}

impl Feeder {
    async fn run(
        &self,
        mut committed: broadcast::Receiver<Arc<Committed>>,
        from: Revision,
    ) -> Option<()> {
        let mut next = self.replay(from).await?;
        loop {
            match committed.recv().await {
                Ok(commit) if commit.revision < next => {}
                Ok(commit) if commit.revision == next => {
                    self.send_matching(commit.events.iter().cloned()).await?;
                    next = commit.revision + 1;
                }
                // A gap (cannot happen with a live sender) or a lag: the history has it.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    next = self.replay(next).await?;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Sends everything in the history from `next` on; returns the next revision to expect.
    async fn replay(&self, mut next: Revision) -> Option<Revision> {
        loop {
            let inner = self.inner.upgrade()?;
            let read = tokio::task::spawn_blocking(move || inner.read_history(next, REPLAY_CHUNK))
                .await
                .ok()?;
            let (events, last, compact) = match read {
                Ok(read) => read,
                Err(e) => {
                    tracing::error!(error = %e, "watch: reading Cfg history failed; ending the watch");
                    return None;
                }
            };
            if next < compact {
                let _ = self
                    .tx
                    .send(WatchEvent::Compacted {
                        compact_revision: compact,
                    })
                    .await;
                return None;
            }
            if last < next {
                return Some(next);
            }
            self.send_matching(events.into_iter()).await?;
            next = last + 1;
        }
    }

    async fn send_matching(&self, events: impl Iterator<Item = WatchEvent>) -> Option<()> {
        for event in events {
            if event.key().is_some_and(|k| k.starts_with(&self.prefix)) {
                self.tx.send(event).await.ok()?;
            }
        }
        Some(())
    }
}
