//! Retrying etcd calls while etcd is unreachable: exponential backoff, one clear log line per
//! outage, and a typed `Unavailable` to the caller once the deadline has passed.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::CfgError;

/// First backoff after a failed attempt; doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// True for failures that a retry may cure: no connection, no leader, timeouts.
pub(crate) fn is_transient(error: &etcd_client::Error) -> bool {
    use etcd_client::Error as E;
    match error {
        E::TransportError(_) | E::IoError(_) => true,
        E::GRpcStatus(status) => matches!(
            status.code(),
            tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Unknown
                | tonic::Code::Cancelled
                | tonic::Code::Aborted
        ),
        _ => false,
    }
}

/// Maps a non-transient etcd error to the Cfg error a caller can act on.
pub(crate) fn classify(error: etcd_client::Error) -> CfgError {
    CfgError::Storage(format!("etcd: {error}"))
}

/// Runs `attempt` until it succeeds, fails for good, or `deadline` has passed.
///
/// A write whose answer was lost may have been applied; retrying it then reports
/// `CasMismatch`/`AlreadyExists`, which is why every Cfg write is conditional.
pub(crate) async fn retrying<T, F, Fut>(
    what: &str,
    endpoints: &str,
    attempt_timeout: Duration,
    deadline: Duration,
    mut attempt: F,
) -> Result<T, RetryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
{
    let give_up_at = Instant::now() + deadline;
    let mut backoff = FIRST_BACKOFF;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let failure = match tokio::time::timeout(attempt_timeout, attempt()).await {
            Ok(Ok(value)) => {
                if attempts > 1 {
                    tracing::info!(endpoints, what, attempts, "etcd reachable again");
                }
                return Ok(value);
            }
            Ok(Err(e)) if is_transient(&e) => e.to_string(),
            Ok(Err(e)) => return Err(RetryError::Failed(e)),
            Err(_) => format!("no answer within {attempt_timeout:?}"),
        };
        if Instant::now() + backoff > give_up_at {
            tracing::error!(endpoints, what, attempts, error = %failure, "etcd unreachable; giving up");
            return Err(RetryError::Unavailable(CfgError::Unavailable {
                reason: format!(
                    "etcd at {endpoints} unreachable: {what} failed {attempts} times over {deadline:?}; last error: {failure}"
                ),
            }));
        }
        if attempts == 1 {
            tracing::warn!(endpoints, what, error = %failure, "etcd unreachable; retrying with backoff");
        } else {
            tracing::debug!(endpoints, what, attempts, error = %failure, "etcd still unreachable");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Why `retrying` stopped.
pub(crate) enum RetryError {
    /// etcd answered with a definite error; the caller maps it.
    Failed(etcd_client::Error),
    /// etcd stayed unreachable until the deadline.
    Unavailable(CfgError),
}
