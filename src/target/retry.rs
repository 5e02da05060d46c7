//! Retry policy: which DynamoDB errors are worth another try, and how long to wait before it.
//!
//! Classification follows DynamoDB's documentation (see `design/dynamodb-facts.md` in the project's
//! shared notes): throttling codes and 5xx answers, timeouts and dropped connections are retried
//! with exponential backoff and full jitter; validation errors, missing tables and access denied are
//! not. Validation errors are typed apart, because the writer splits a refused batch to find the
//! one item to blame.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::target::TargetError;

/// Error codes DynamoDB uses when a request was refused for throughput.
const THROTTLING: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "Throttling",
    "TooManyRequestsException",
];

/// Error codes that are the server's fault and worth a retry.
const TRANSIENT: &[&str] =
    &["InternalServerError", "InternalFailure", "ServiceUnavailable", "TransactionInProgressException"];

/// Classifies a DynamoDB error from its code, the HTTP status (when there was an answer) and its message.
pub fn classify(code: Option<&str>, status: Option<u16>, message: String) -> TargetError {
    match code {
        Some(code) if THROTTLING.contains(&code) => TargetError::Throttled(code.to_string()),
        Some(code) if TRANSIENT.contains(&code) => TargetError::Transient(format!("{code}: {message}")),
        _ if status.is_some_and(|s| s >= 500) => TargetError::Transient(message),
        _ if status == Some(429) => TargetError::Throttled(message),
        Some(code @ "ValidationException") => TargetError::Invalid(format!("{code}: {message}")),
        Some(code) => TargetError::Fatal(format!("{code}: {message}")),
        // No answer at all (timeout, connection refused or reset): the request may be retried.
        None if status.is_none() => TargetError::Transient(message),
        None => TargetError::Fatal(message),
    }
}

/// How a failed or partly processed batch is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per batch, the first included.
    pub max_attempts: u32,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    pub fn new(max_attempts: u32) -> Self {
        RetryPolicy { max_attempts, min_delay: Duration::from_millis(50), max_delay: Duration::from_secs(10) }
    }

    /// The delays between attempts: exponential, jittered, at most `max_attempts - 1` of them.
    pub fn delays(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
            .build()
    }
}

/// Runs `op` until it succeeds, fails for good, or runs out of attempts; also returns how many
/// times it was retried.
pub async fn retrying<T, F, Fut>(policy: &RetryPolicy, mut op: F) -> (Result<T, TargetError>, u64)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, TargetError>>,
{
    let mut delays = policy.delays();
    let mut retries = 0;
    loop {
        match op().await {
            Ok(value) => return (Ok(value), retries),
            Err(error) if error.is_retryable() => match delays.next() {
                Some(delay) => {
                    tracing::debug!(?delay, %error, "retrying");
                    retries += 1;
                    tokio::time::sleep(delay).await;
                }
                None => return (Err(error), retries),
            },
            Err(error) => return (Err(error), retries),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn retrying_stops_at_success_or_fatal_error() {
        let policy =
            RetryPolicy { max_attempts: 5, min_delay: Duration::from_millis(1), max_delay: Duration::from_millis(2) };
        let mut calls = 0;
        let (result, retries) = retrying(&policy, || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(TargetError::Transient("reset".into()))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!((result, retries), (Ok(3), 2));

        let (result, retries) =
            retrying(&policy, || async { Err::<(), _>(TargetError::Fatal("ValidationException".into())) }).await;
        assert_eq!((result, retries), (Err(TargetError::Fatal("ValidationException".into())), 0));

        let (result, retries) = retrying(&policy, || async { Err::<(), _>(TargetError::Throttled("x".into())) }).await;
        assert_eq!((result.is_err(), retries), (true, 4), "five attempts in all");
    }

    #[test]
    fn throttling_codes_are_throttled() {
        for code in ["ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"] {
            assert_eq!(classify(Some(code), Some(400), "slow down".into()), TargetError::Throttled(code.into()));
        }
    }

    #[test]
    fn server_faults_and_lost_connections_are_transient() {
        assert!(matches!(classify(Some("InternalServerError"), Some(500), "x".into()), TargetError::Transient(_)));
        assert!(matches!(classify(None, Some(503), "unavailable".into()), TargetError::Transient(_)));
        assert!(matches!(classify(None, None, "connection reset".into()), TargetError::Transient(_)));
    }

    #[test]
    fn client_errors_are_fatal() {
        for code in
            ["ValidationException", "ResourceNotFoundException", "AccessDeniedException", "UnrecognizedClientException"]
        {
            let e = classify(Some(code), Some(400), "no".into());
            assert!(matches!(e, TargetError::Fatal(_) | TargetError::Invalid(_)), "{code}");
            assert!(!e.is_retryable());
        }
    }

    #[test]
    fn validation_errors_are_told_apart() {
        let e = classify(Some("ValidationException"), Some(400), "Item size has exceeded the maximum".into());
        assert_eq!(e, TargetError::Invalid("ValidationException: Item size has exceeded the maximum".into()));
        assert!(matches!(classify(Some("ResourceNotFoundException"), Some(400), "x".into()), TargetError::Fatal(_)));
    }

    #[test]
    fn delays_grow_and_stop() {
        let policy =
            RetryPolicy { max_attempts: 5, min_delay: Duration::from_millis(100), max_delay: Duration::from_secs(1) };
        let delays: Vec<_> = policy.delays().collect();
        assert_eq!(delays.len(), 4);
        // Jitter adds up to one more base delay: base 100, 200, 400, 800 ms.
        for (delay, base) in delays.iter().zip([100u64, 200, 400, 800]) {
            assert!(
                *delay >= Duration::from_millis(base) && *delay <= Duration::from_millis(2 * base),
                "{delay:?} for {base}"
            );
        }
    }
}
