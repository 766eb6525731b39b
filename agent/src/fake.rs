//! An in-memory [`Queues`] for tests: a few named queues with SQS's
//! visibility-timeout and long-poll semantics, on tokio's clock (so tests can
//! pause time), plus fault injection, call counters and an event log.
//!
//! Several responders may share one [`FakeQueues`] (wrap it in an `Arc`):
//! like SQS, a message received by one is hidden from the others until its
//! visibility timeout ends.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::queues::{ErrorKind, MAX_BATCH, MAX_WAIT, Message, QueueError, Queues};

/// The calls of [`Queues`], for fault injection and counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// [`Queues::receive`].
    Receive,
    /// [`Queues::send`].
    Send,
    /// [`Queues::delete_batch`].
    DeleteBatch,
    /// [`Queues::approximate_depth`].
    Depth,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Receive => "ReceiveMessage",
            Operation::Send => "SendMessage",
            Operation::DeleteBatch => "DeleteMessageBatch",
            Operation::Depth => "GetQueueAttributes",
        }
    }
}

/// Something the code under test did, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message was received (handed out with a new receipt handle).
    Received {
        /// Queue URL.
        queue: String,
        /// The message's id.
        message_id: String,
    },
    /// A message was sent through [`Queues::send`].
    Sent {
        /// Queue URL.
        queue: String,
        /// The body.
        body: String,
    },
    /// A message was deleted through [`Queues::delete_batch`].
    Deleted {
        /// Queue URL.
        queue: String,
        /// The message's id.
        message_id: String,
    },
}

#[derive(Debug)]
struct Stored {
    id: String,
    body: String,
    receipt_handle: Option<String>,
    visible_at: Instant,
}

#[derive(Debug, Default)]
struct State {
    queues: BTreeMap<String, Vec<Stored>>,
    next_id: u64,
    next_failures: HashMap<Operation, VecDeque<ErrorKind>>,
    always_failing: HashMap<Operation, ErrorKind>,
    send_delay: Duration,
    calls: HashMap<Operation, u64>,
    events: Vec<Event>,
}

impl State {
    fn fresh_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }

    /// Counts the call and returns the injected failure, if any.
    fn enter(&mut self, op: Operation) -> Result<(), QueueError> {
        *self.calls.entry(op).or_default() += 1;
        let kind = self
            .next_failures
            .get_mut(&op)
            .and_then(VecDeque::pop_front)
            .or_else(|| self.always_failing.get(&op).copied());
        match kind {
            Some(kind) => Err(QueueError::new(kind, op.name(), "injected failure")
                .with_code(format!("Fake{kind:?}"))),
            None => Ok(()),
        }
    }

    fn queue(&mut self, op: Operation, url: &str) -> Result<&mut Vec<Stored>, QueueError> {
        self.queues.get_mut(url).ok_or_else(|| {
            QueueError::new(ErrorKind::NotFound, op.name(), format!("no queue {url}"))
                .with_code("AWS.SimpleQueueService.NonExistentQueue")
        })
    }
}

/// In-memory queues. See the module documentation.
#[derive(Debug)]
pub struct FakeQueues {
    state: Mutex<State>,
    /// Bumped whenever a message is added, to wake long polls.
    changed: watch::Sender<u64>,
}

impl Default for FakeQueues {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeQueues {
    /// No queues yet.
    pub fn new() -> Self {
        Self {
            state: Mutex::default(),
            changed: watch::Sender::new(0),
        }
    }

    /// With these (empty) queues.
    pub fn with_queues<'a>(urls: impl IntoIterator<Item = &'a str>) -> Self {
        let fake = Self::new();
        for url in urls {
            fake.create_queue(url);
        }
        fake
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Creates an empty queue (no-op if it exists). Calls on a queue that
    /// does not exist fail with [`ErrorKind::NotFound`].
    pub fn create_queue(&self, url: &str) {
        self.lock().queues.entry(url.to_owned()).or_default();
    }

    /// Puts a message on a queue as some other party would (not logged, not
    /// counted, never fails). Returns its message id.
    ///
    /// # Panics
    ///
    /// If the queue does not exist.
    pub fn push(&self, url: &str, body: impl Into<String>) -> String {
        let mut state = self.lock();
        let id = state.fresh_id("msg");
        let queue = state
            .queues
            .get_mut(url)
            .unwrap_or_else(|| panic!("no queue {url}"));
        queue.push(Stored {
            id: id.clone(),
            body: body.into(),
            receipt_handle: None,
            visible_at: Instant::now(),
        });
        drop(state);
        self.changed.send_modify(|v| *v += 1);
        id
    }

    /// Removes every message (visible or in flight) from a queue and returns
    /// their bodies, oldest first.
    pub fn drain(&self, url: &str) -> Vec<String> {
        self.lock()
            .queues
            .get_mut(url)
            .map(|q| q.drain(..).map(|m| m.body).collect())
            .unwrap_or_default()
    }

    /// Bodies of every message (visible or in flight) on a queue.
    pub fn bodies(&self, url: &str) -> Vec<String> {
        self.lock()
            .queues
            .get(url)
            .map(|q| q.iter().map(|m| m.body.clone()).collect())
            .unwrap_or_default()
    }

    /// How many messages (visible or in flight) a queue holds.
    pub fn len(&self, url: &str) -> usize {
        self.lock().queues.get(url).map_or(0, Vec::len)
    }

    /// Whether a queue holds no message at all.
    pub fn is_empty(&self, url: &str) -> bool {
        self.len(url) == 0
    }

    /// How many messages of a queue are received and not yet visible again.
    pub fn in_flight(&self, url: &str) -> usize {
        let now = Instant::now();
        self.lock()
            .queues
            .get(url)
            .map_or(0, |q| q.iter().filter(|m| m.visible_at > now).count())
    }

    /// Makes the next `times` calls of `op` fail with `kind` (before they
    /// do anything).
    pub fn fail_next(&self, op: Operation, times: usize, kind: ErrorKind) {
        self.lock()
            .next_failures
            .entry(op)
            .or_default()
            .extend(std::iter::repeat_n(kind, times));
    }

    /// Makes every call of `op` fail with `kind` until called with `None`.
    pub fn fail_always(&self, op: Operation, kind: Option<ErrorKind>) {
        let mut state = self.lock();
        match kind {
            Some(kind) => state.always_failing.insert(op, kind),
            None => state.always_failing.remove(&op),
        };
    }

    /// Makes every send take this long (on tokio's clock) before it lands.
    pub fn set_send_delay(&self, delay: Duration) {
        self.lock().send_delay = delay;
    }

    /// How many times `op` was called (failed calls included).
    pub fn calls(&self, op: Operation) -> u64 {
        self.lock().calls.get(&op).copied().unwrap_or_default()
    }

    /// What happened so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }
}

#[async_trait]
impl Queues for FakeQueues {
    async fn receive(
        &self,
        queue_url: &str,
        max: usize,
        wait: Duration,
        visibility_timeout: Duration,
    ) -> Result<Vec<Message>, QueueError> {
        let op = Operation::Receive;
        let deadline = Instant::now() + wait.min(MAX_WAIT);
        let max = max.clamp(1, MAX_BATCH);
        self.lock().enter(op)?;
        loop {
            // Subscribe before looking, so a message added after the look
            // wakes us.
            let mut changes = self.changed.subscribe();
            let next_visible = {
                let mut state = self.lock();
                let now = Instant::now();
                let mut handles = Vec::new();
                for _ in 0..max {
                    handles.push(state.fresh_id("rh"));
                }
                let queue = state.queue(op, queue_url)?;
                let mut taken = Vec::new();
                for m in queue.iter_mut().filter(|m| m.visible_at <= now).take(max) {
                    let handle = handles.pop().expect("one handle per message");
                    m.receipt_handle = Some(handle.clone());
                    m.visible_at = now + visibility_timeout;
                    taken.push(Message {
                        message_id: m.id.clone(),
                        receipt_handle: handle,
                        body: m.body.clone(),
                    });
                }
                let next_visible = queue
                    .iter()
                    .map(|m| m.visible_at)
                    .filter(|t| *t > now)
                    .min();
                if !taken.is_empty() {
                    for m in &taken {
                        state.events.push(Event::Received {
                            queue: queue_url.to_owned(),
                            message_id: m.message_id.clone(),
                        });
                    }
                    return Ok(taken);
                }
                if now >= deadline {
                    return Ok(Vec::new());
                }
                next_visible
            };
            let wake = next_visible.map_or(deadline, |t| t.min(deadline));
            tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    async fn send(&self, queue_url: &str, body: &str) -> Result<(), QueueError> {
        let op = Operation::Send;
        let delay = {
            let mut state = self.lock();
            state.enter(op)?;
            state.queue(op, queue_url)?;
            state.send_delay
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut state = self.lock();
        let id = state.fresh_id("msg");
        state.queue(op, queue_url)?.push(Stored {
            id,
            body: body.to_owned(),
            receipt_handle: None,
            visible_at: Instant::now(),
        });
        state.events.push(Event::Sent {
            queue: queue_url.to_owned(),
            body: body.to_owned(),
        });
        drop(state);
        self.changed.send_modify(|v| *v += 1);
        Ok(())
    }

    async fn delete_batch(
        &self,
        queue_url: &str,
        receipt_handles: &[String],
    ) -> Result<(), QueueError> {
        let op = Operation::DeleteBatch;
        let mut state = self.lock();
        state.enter(op)?;
        if receipt_handles.is_empty() || receipt_handles.len() > MAX_BATCH {
            return Err(QueueError::new(
                ErrorKind::Other,
                op.name(),
                format!("{} entries", receipt_handles.len()),
            ));
        }
        let queue = state.queue(op, queue_url)?;
        let mut deleted = Vec::new();
        let mut invalid = 0;
        for handle in receipt_handles {
            match queue
                .iter()
                .position(|m| m.receipt_handle.as_ref() == Some(handle))
            {
                Some(i) => deleted.push(queue.remove(i).id),
                // Like SQS: an old handle of ours is fine, garbage is not.
                None if handle.starts_with("rh-") => {}
                None => invalid += 1,
            }
        }
        for message_id in deleted {
            state.events.push(Event::Deleted {
                queue: queue_url.to_owned(),
                message_id,
            });
        }
        if invalid > 0 {
            return Err(QueueError::new(
                ErrorKind::Other,
                op.name(),
                format!("{invalid} of {} entries failed", receipt_handles.len()),
            )
            .with_code("ReceiptHandleIsInvalid"));
        }
        Ok(())
    }

    async fn approximate_depth(&self, queue_url: &str) -> Result<u64, QueueError> {
        let op = Operation::Depth;
        let mut state = self.lock();
        state.enter(op)?;
        let now = Instant::now();
        let queue = state.queue(op, queue_url)?;
        Ok(queue.iter().filter(|m| m.visible_at <= now).count() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: &str = "https://sqs.test/1/q";

    #[tokio::test(start_paused = true)]
    async fn visibility_timeout_hides_and_returns_messages() {
        let fake = FakeQueues::with_queues([Q]);
        fake.push(Q, "a");
        let got = fake
            .receive(Q, 10, Duration::ZERO, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(fake.in_flight(Q), 1);
        assert_eq!(fake.approximate_depth(Q).await.unwrap(), 0);
        assert!(
            fake.receive(Q, 10, Duration::ZERO, Duration::from_secs(10))
                .await
                .unwrap()
                .is_empty()
        );
        // A long poll wakes when the message becomes visible again...
        let started = Instant::now();
        let again = fake
            .receive(Q, 10, Duration::from_secs(20), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        assert_ne!(again[0].receipt_handle, got[0].receipt_handle);
        // ...or returns empty after its wait.
        let started = Instant::now();
        assert!(
            fake.receive(Q, 10, Duration::from_secs(20), Duration::from_secs(60))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(started.elapsed(), MAX_WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn long_poll_wakes_on_send_and_delete_needs_the_current_handle() {
        let fake = std::sync::Arc::new(FakeQueues::with_queues([Q]));
        let poller = {
            let fake = fake.clone();
            tokio::spawn(async move {
                fake.receive(Q, 10, Duration::from_secs(20), Duration::from_secs(30))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_secs(3)).await;
        fake.send(Q, "b").await.unwrap();
        let got = poller.await.unwrap().unwrap();
        assert_eq!(got[0].body, "b");
        fake.delete_batch(Q, &["rh-999".into()]).await.unwrap();
        assert_eq!(fake.len(Q), 1);
        assert!(fake.delete_batch(Q, &["garbage".into()]).await.is_err());
        fake.delete_batch(Q, &[got[0].receipt_handle.clone()])
            .await
            .unwrap();
        assert!(fake.is_empty(Q));
        assert_eq!(fake.calls(Operation::DeleteBatch), 3);
    }

    #[tokio::test]
    async fn failures_are_injected_and_unknown_queues_are_not_found() {
        let fake = FakeQueues::with_queues([Q]);
        fake.fail_next(Operation::Send, 1, ErrorKind::AccessDenied);
        assert_eq!(
            fake.send(Q, "x").await.unwrap_err().kind,
            ErrorKind::AccessDenied
        );
        fake.send(Q, "x").await.unwrap();
        fake.fail_always(Operation::Depth, Some(ErrorKind::Throttled));
        assert_eq!(
            fake.approximate_depth(Q).await.unwrap_err().kind,
            ErrorKind::Throttled
        );
        fake.fail_always(Operation::Depth, None);
        assert_eq!(fake.approximate_depth(Q).await.unwrap(), 1);
        assert_eq!(
            fake.send("nope", "x").await.unwrap_err().kind,
            ErrorKind::NotFound
        );
        assert_eq!(fake.drain(Q), vec!["x".to_owned()]);
    }
}
