//! Waiting for something AWS does asynchronously (a stack operation, a
//! change set) with exponential backoff and jitter (`backon`) and a hard
//! deadline. Every wait in the coordinator goes through [`poll_until`]: none
//! can hang, and the policy is one explicit, tested value.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::aws::AwsError;

/// How to wait: delays between polls, and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitPolicy {
    /// First delay between polls.
    pub min_delay: Duration,
    /// Largest delay between polls.
    pub max_delay: Duration,
    /// Give up after this long.
    pub deadline: Duration,
}

impl WaitPolicy {
    /// For stack operations on real AWS: poll from 2 s up to every 15 s, for
    /// at most an hour (CloudFormation's own default timeout is longer, but a
    /// stack of ours that takes an hour is stuck).
    pub const STACK: WaitPolicy = WaitPolicy {
        min_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(15),
        deadline: Duration::from_secs(3600),
    };

    /// For change-set creation: from 1 s up to every 5 s, at most 10 minutes.
    pub const CHANGE_SET: WaitPolicy = WaitPolicy {
        min_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(5),
        deadline: Duration::from_secs(600),
    };

    /// The backoff schedule: exponential, factor 2, with jitter, no cap on
    /// the number of polls (the deadline bounds the wait).
    pub fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
    }
}

/// One poll's answer.
#[derive(Debug)]
pub enum Poll<T> {
    /// Done.
    Ready(T),
    /// Not yet; poll again.
    Pending,
}

/// Why a wait ended without a result.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The deadline passed; the operation may still be running.
    #[error("still not settled after {}s", .0.as_secs())]
    Deadline(Duration),
    /// A poll failed with an error that waiting will not fix.
    #[error(transparent)]
    Failed(#[from] AwsError),
}

enum Step {
    Pending,
    Retryable(AwsError),
    Fatal(AwsError),
}

/// Calls `probe` until it returns `Ready`, backing off between calls.
/// Throttling and transient errors are polled through; other errors end the
/// wait. The whole wait is bounded by the policy's deadline.
pub async fn poll_until<T, F, Fut>(policy: WaitPolicy, mut probe: F) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, AwsError>>,
{
    let attempt = || {
        let fut = probe();
        async move {
            match fut.await {
                Ok(Poll::Ready(value)) => Ok(value),
                Ok(Poll::Pending) => Err(Step::Pending),
                Err(e) if e.kind.is_retryable() => Err(Step::Retryable(e)),
                Err(e) => Err(Step::Fatal(e)),
            }
        }
    };
    let waiting = attempt
        .retry(policy.backoff())
        .sleep(tokio::time::sleep)
        .when(|step| !matches!(step, Step::Fatal(_)))
        .notify(|step, delay| {
            if let Step::Retryable(e) = step {
                tracing::debug!(error = %e, ?delay, "poll failed, will retry");
            }
        });
    match tokio::time::timeout(policy.deadline, waiting).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(Step::Fatal(e))) => Err(WaitError::Failed(e)),
        Ok(Err(Step::Pending | Step::Retryable(_))) | Err(_) => {
            Err(WaitError::Deadline(policy.deadline))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::ErrorKind;
    use std::sync::atomic::{AtomicU32, Ordering};

    const FAST: WaitPolicy = WaitPolicy {
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        deadline: Duration::from_secs(5),
    };

    #[tokio::test(start_paused = true)]
    async fn polls_until_ready_through_throttling() {
        let calls = AtomicU32::new(0);
        let result = poll_until(FAST, || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 | 1 => Err(AwsError::new(
                        ErrorKind::Throttled,
                        "cloudformation",
                        "DescribeStacks",
                        "Rate exceeded",
                    )),
                    2 | 3 => Ok(Poll::Pending),
                    _ => Ok(Poll::Ready(n)),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(result, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_ends_the_wait() {
        let started = tokio::time::Instant::now();
        let result: Result<(), _> = poll_until(FAST, || async { Ok(Poll::Pending) }).await;
        assert!(matches!(result, Err(WaitError::Deadline(d)) if d == FAST.deadline));
        assert!(
            started.elapsed() >= FAST.deadline
                && started.elapsed() < FAST.deadline + Duration::from_secs(1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn fatal_errors_end_the_wait_at_once() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = poll_until(FAST, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Err(AwsError::new(
                    ErrorKind::AccessDenied,
                    "cloudformation",
                    "DescribeStacks",
                    "no",
                ))
            }
        })
        .await;
        assert!(matches!(result, Err(WaitError::Failed(e)) if e.kind == ErrorKind::AccessDenied));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn delays_grow_within_bounds() {
        use backon::BackoffBuilder;
        let delays: Vec<Duration> = WaitPolicy::STACK.backoff().build().take(8).collect();
        assert_eq!(delays.len(), 8, "no cap on the number of polls");
        for d in &delays {
            // Jitter adds up to one more delay on top.
            assert!(
                *d >= WaitPolicy::STACK.min_delay && *d <= WaitPolicy::STACK.max_delay * 2,
                "{d:?}"
            );
        }
    }
}
