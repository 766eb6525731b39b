//! Waiting for something AWS does asynchronously (a stack operation, a
//! change set) with exponential backoff and jitter (`backon`) and a hard
//! deadline. Every wait in the coordinator goes through [`poll_until`] (or
//! [`poll_until_expected`], when the operation's duration can be
//! anticipated): none can hang, and the policy is one explicit, tested value.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder, Retryable};
use tokio::time::Instant;

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

/// When an operation is expected to settle: it started at `started`, and
/// the same operation took `took` last time.
///
/// A poll sees an operation settle only at the next poll, so the lateness
/// of a wait is about half the delay between polls around its end, and the
/// backoff's delays are at their largest there. With an expectation the
/// wait polls at the policy's first delay through the window from 3/4 to
/// 5/4 of the expected duration (where the end most likely falls), and
/// backs off as usual before and after it: about the same number of polls,
/// most of them where they shorten the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expectation {
    /// When the operation started.
    pub started: Instant,
    /// How long it took last time.
    pub took: Duration,
}

impl Expectation {
    /// The window of dense polling: from 3/4 to 5/4 of the expected time.
    pub fn window(&self) -> (Instant, Instant) {
        (
            self.started + self.took * 3 / 4,
            self.started + self.took * 5 / 4,
        )
    }
}

/// The delays of a wait with an [`Expectation`]: the policy's backoff until
/// the window, the first delay (without jitter: the windows of different
/// operations differ anyway) through it, then the backoff again from its
/// first delay.
#[derive(Debug)]
struct Anticipating {
    policy: WaitPolicy,
    window: (Instant, Instant),
    backoff: ExponentialBackoff,
    past_window: bool,
}

impl Anticipating {
    fn new(policy: WaitPolicy, expectation: Expectation) -> Self {
        Anticipating {
            policy,
            window: expectation.window(),
            backoff: policy.backoff().build(),
            past_window: false,
        }
    }
}

impl Iterator for Anticipating {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let (from, until) = self.window;
        if now < from {
            // Never sleep past the start of the window.
            let delay = self.backoff.next()?;
            return Some(delay.min(from - now));
        }
        if now < until {
            return Some(
                self.policy
                    .min_delay
                    .min(until - now)
                    .max(Duration::from_millis(1)),
            );
        }
        if !self.past_window {
            self.past_window = true;
            self.backoff = self.policy.backoff().build();
        }
        self.backoff.next()
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
pub async fn poll_until<T, F, Fut>(policy: WaitPolicy, probe: F) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, AwsError>>,
{
    poll_until_expected(policy, None, probe).await
}

/// [`poll_until`], polling densely around the time the operation is
/// expected to settle when there is an [`Expectation`].
pub async fn poll_until_expected<T, F, Fut>(
    policy: WaitPolicy,
    expectation: Option<Expectation>,
    probe: F,
) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, AwsError>>,
{
    match expectation {
        // A window narrower than two first delays would not be polled
        // densely anyway.
        Some(e) if e.took >= policy.min_delay * 2 => {
            poll_with(policy, Anticipating::new(policy, e), probe).await
        }
        _ => poll_with(policy, policy.backoff(), probe).await,
    }
}

async fn poll_with<T, F, Fut, B>(
    policy: WaitPolicy,
    backoff: B,
    mut probe: F,
) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, AwsError>>,
    B: BackoffBuilder,
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
        .retry(backoff)
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
        let started = Instant::now();
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

    /// Polls a fake operation that settles `settles` after the start, with
    /// `expectation`; returns the offsets of the polls from the start.
    async fn poll_times(settles: Duration, expectation: Option<Duration>) -> Vec<Duration> {
        let started = Instant::now();
        let polls = std::sync::Mutex::new(Vec::new());
        let expectation = expectation.map(|took| Expectation { started, took });
        poll_until_expected(FAST, expectation, || {
            let at = started.elapsed();
            polls.lock().unwrap().push(at);
            async move {
                Ok(if at >= settles {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                })
            }
        })
        .await
        .unwrap();
        polls.into_inner().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn an_expected_end_is_polled_densely_and_seen_within_the_first_delay() {
        let ms = Duration::from_millis;
        let polls = poll_times(ms(1030), Some(ms(1000))).await;
        // A poll at the window's start (750 ms), none skipped past it.
        assert!(polls.contains(&ms(750)), "{polls:?}");
        // Through the window, every first delay (10 ms).
        let in_window: Vec<_> = polls.iter().filter(|p| **p >= ms(750)).collect();
        for pair in in_window.windows(2) {
            assert_eq!(*pair[1] - *pair[0], ms(10), "{polls:?}");
        }
        // Seen settled within one first delay.
        let last = *polls.last().unwrap();
        assert!(last >= ms(1030) && last <= ms(1040), "{polls:?}");
        // Without the expectation the backoff is at 100..200 ms by then (a
        // poll may still land close to the end by chance: the gap is what
        // is certain).
        let plain = poll_times(ms(1030), None).await;
        let gap = plain[plain.len() - 1] - plain[plain.len() - 2];
        assert!(gap >= ms(100), "{plain:?}");
        // Before the window, the same backoff as without an expectation.
        assert!(polls.iter().filter(|p| **p < ms(750)).count() <= plain.len());
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_window_the_backoff_starts_over() {
        let ms = Duration::from_millis;
        let polls = poll_times(ms(3000), Some(ms(1000))).await;
        let after: Vec<Duration> = polls.iter().copied().filter(|p| *p >= ms(1250)).collect();
        let delays: Vec<Duration> = after.windows(2).map(|w| w[1] - w[0]).collect();
        // From the first delay again, growing, capped with jitter.
        assert!(delays[0] <= ms(20), "{delays:?}");
        assert!(delays.iter().all(|d| *d <= ms(200)), "{delays:?}");
        assert!(delays.last().unwrap() > &ms(50), "{delays:?}");
        // Dense only inside the window: 50 polls of 10 ms, not 175.
        assert!(polls.len() < 100, "{} polls", polls.len());
    }

    #[tokio::test(start_paused = true)]
    async fn an_early_end_is_seen_as_without_an_expectation() {
        let ms = Duration::from_millis;
        let with = poll_times(ms(300), Some(ms(1000))).await;
        assert!(with.last().unwrap() >= &ms(300));
        assert!(with.iter().all(|p| *p < ms(750)), "{with:?}");
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
