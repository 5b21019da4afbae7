//! Bounded waits: every wait in the tests has a deadline and says what it waited for.

use std::future::Future;
use std::time::Duration;

use tessera_cfg::{WatchEvent, WatchStream};

/// Polls `check` every 50 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next watch event, or a panic naming `what` after `timeout` (or if the stream ended).
pub async fn next_event(stream: &mut WatchStream, timeout: Duration, what: &str) -> WatchEvent {
    match tokio::time::timeout(timeout, stream.next()).await {
        Ok(Some(event)) => event,
        Ok(None) => panic!("watch stream ended while waiting for {what}"),
        Err(_) => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// Asserts that no event arrives within `quiet`.
pub async fn no_event(stream: &mut WatchStream, quiet: Duration, context: &str) {
    if let Ok(event) = tokio::time::timeout(quiet, stream.next()).await {
        panic!("{context}: expected no watch event, got {event:?}");
    }
}
