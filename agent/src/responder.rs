//! The heartbeat [`Responder`]: long-polls the request queue, answers each
//! ping with a pong on the reply queue, then deletes the ping.
//!
//! Guarantees:
//!
//! - **At least once.** A ping is deleted only after its pong was sent. If
//!   sending fails it is retried (with backoff) for up to
//!   [`Config::reply_deadline`]; after that the ping is left alone and comes
//!   back when its visibility timeout ends, to be answered by whichever
//!   responder receives it. A pong may therefore be sent twice (also when a
//!   delete fails); the coordinator deduplicates by nonce.
//! - **Many responders per queue.** Any number of tasks ([`Config::concurrency`])
//!   and processes may share a request queue: each ping is answered by the
//!   one that receives it, and SQS hides it from the others meanwhile.
//! - **Bad messages never crash anything.** Malformed messages, unknown
//!   protocol versions and stale pings are counted in [`Stats`] and deleted.
//! - **SQS errors never stop it.** They are logged with `tracing` (access
//!   denied and missing queues at `error`, as they need a human: the
//!   customer may fix a policy) and retried with exponential backoff and
//!   jitter, capped at [`Config::max_backoff`].
//! - **Graceful shutdown.** When the future given to [`Responder::run`]
//!   resolves, the responder stops receiving (an outstanding long poll is
//!   abandoned; anything SQS handed to it reappears after the visibility
//!   timeout), finishes the replies in flight, and returns the final
//!   [`StatsSnapshot`].

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBackoff, ExponentialBuilder};
use chrono::{DateTime, Utc};
use futures::future::join_all;
use protocol::DecodeError;
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::queues::{
    ErrorKind, MAX_BATCH, MAX_VISIBILITY_TIMEOUT, MAX_WAIT, Message, QueueError, Queues,
};

/// This build's version, sent in every pong.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How many times a batch delete is attempted before giving up (the pings
/// are then redelivered and answered again).
const DELETE_ATTEMPTS: usize = 3;

/// First retry delay; it doubles (plus jitter) up to [`Config::max_backoff`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);

/// How a [`Responder`] works. Build it with [`Config::new`], then adjust
/// the public fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Who answers (shows in pongs): e.g. the ECS task id, or host-pid.
    pub worker_id: String,
    /// The agent version sent in pongs; [`AGENT_VERSION`] by default.
    pub agent_version: String,
    /// The heartbeat request queue (pings), e.g.
    /// `https://sqs.eu-west-1.amazonaws.com/123456789012/docproc-worker-heartbeat-requests`.
    pub request_queue_url: String,
    /// The heartbeat reply queue (pongs).
    pub reply_queue_url: String,
    /// The job queue, whose approximate depth goes into pongs.
    pub job_queue_url: Option<String>,
    /// The jobs' dead-letter queue, whose approximate depth goes into pongs.
    pub dead_letter_queue_url: Option<String>,
    /// How many tasks long-poll the request queue (at least 1).
    pub concurrency: usize,
    /// Long-poll wait per receive (at most 20 s). Default 20 s.
    pub wait_time: Duration,
    /// How long a received ping stays hidden from other responders (whole
    /// seconds, 1 s to 12 h, more than [`Config::reply_deadline`]).
    /// Default 30 s.
    pub visibility_timeout: Duration,
    /// How long a failing pong send is retried before the ping is left for
    /// redelivery. Default 20 s.
    pub reply_deadline: Duration,
    /// Pings older than this (by their `sent_at`) are deleted unanswered:
    /// the coordinator has given up on them. Default 5 minutes.
    pub max_ping_age: Duration,
    /// How long queue depths are cached between reads. Default 5 s.
    pub depth_refresh: Duration,
    /// How long a depth read may take before the pong goes without it.
    /// Default 2 s.
    pub depth_timeout: Duration,
    /// Longest delay between retries of a failing SQS call. Default 5 s.
    pub max_backoff: Duration,
}

impl Config {
    /// A configuration with the defaults documented on each field.
    pub fn new(
        worker_id: impl Into<String>,
        request_queue_url: impl Into<String>,
        reply_queue_url: impl Into<String>,
    ) -> Self {
        Self {
            worker_id: worker_id.into(),
            agent_version: AGENT_VERSION.to_owned(),
            request_queue_url: request_queue_url.into(),
            reply_queue_url: reply_queue_url.into(),
            job_queue_url: None,
            dead_letter_queue_url: None,
            concurrency: 1,
            wait_time: MAX_WAIT,
            visibility_timeout: Duration::from_secs(30),
            reply_deadline: Duration::from_secs(20),
            max_ping_age: Duration::from_secs(300),
            depth_refresh: Duration::from_secs(5),
            depth_timeout: Duration::from_secs(2),
            max_backoff: Duration::from_secs(5),
        }
    }

    /// Checks the values SQS or the responder cannot work with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let empty = |name: &'static str, value: &str| {
            if value.trim().is_empty() {
                Err(ConfigError::Empty(name))
            } else {
                Ok(())
            }
        };
        empty("worker_id", &self.worker_id)?;
        empty("agent_version", &self.agent_version)?;
        empty("request_queue_url", &self.request_queue_url)?;
        empty("reply_queue_url", &self.reply_queue_url)?;
        if let Some(url) = &self.job_queue_url {
            empty("job_queue_url", url)?;
        }
        if let Some(url) = &self.dead_letter_queue_url {
            empty("dead_letter_queue_url", url)?;
        }
        if self.request_queue_url == self.reply_queue_url {
            return Err(ConfigError::SameQueue);
        }
        if self.concurrency == 0 {
            return Err(ConfigError::ZeroConcurrency);
        }
        if self.wait_time > MAX_WAIT {
            return Err(ConfigError::WaitTooLong(self.wait_time));
        }
        let vis = self.visibility_timeout;
        if vis < Duration::from_secs(1) || vis > MAX_VISIBILITY_TIMEOUT || vis.subsec_nanos() != 0 {
            return Err(ConfigError::VisibilityTimeout(vis));
        }
        if self.reply_deadline >= vis {
            return Err(ConfigError::ReplyDeadline {
                reply_deadline: self.reply_deadline,
                visibility_timeout: vis,
            });
        }
        if self.max_backoff < MIN_BACKOFF {
            return Err(ConfigError::MaxBackoff(self.max_backoff));
        }
        Ok(())
    }
}

/// A [`Config`] the responder refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required text is empty.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// Pongs would land in the ping queue.
    #[error("the request and reply queues must differ")]
    SameQueue,
    /// No task would receive anything.
    #[error("concurrency must be at least 1")]
    ZeroConcurrency,
    /// SQS allows long polls of at most 20 s.
    #[error("wait time {0:?} exceeds SQS's 20 s maximum")]
    WaitTooLong(Duration),
    /// Not whole seconds between 1 s and 12 h.
    #[error("visibility timeout {0:?} must be whole seconds from 1 s to 12 h")]
    VisibilityTimeout(Duration),
    /// Retrying a send for longer than the ping stays hidden would let
    /// another responder answer it meanwhile.
    #[error(
        "reply deadline {reply_deadline:?} must be shorter than the visibility timeout {visibility_timeout:?}"
    )]
    ReplyDeadline {
        /// The reply deadline.
        reply_deadline: Duration,
        /// The visibility timeout.
        visibility_timeout: Duration,
    },
    /// Backoff cap below the first retry delay.
    #[error("max backoff {0:?} is below the 200 ms minimum")]
    MaxBackoff(Duration),
}

/// Live counters of a responder (shared by its tasks; read them any time
/// with [`Stats::snapshot`]).
#[derive(Debug, Default)]
pub struct Stats {
    received: AtomicU64,
    pings_answered: AtomicU64,
    malformed: AtomicU64,
    unsupported_version: AtomicU64,
    stale: AtomicU64,
    send_errors: AtomicU64,
    receive_errors: AtomicU64,
    delete_errors: AtomicU64,
    depth_errors: AtomicU64,
}

/// The counters of [`Stats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Messages received from the request queue (redeliveries included).
    pub received: u64,
    /// Pongs sent.
    pub pings_answered: u64,
    /// Messages that were not pings (not JSON, wrong shape or type, too
    /// large, bad nonce); deleted.
    pub malformed: u64,
    /// Pings of a protocol version this build does not speak; deleted.
    pub unsupported_version: u64,
    /// Pings older than [`Config::max_ping_age`]; deleted unanswered.
    pub stale: u64,
    /// Failed `SendMessage` calls (each retry counts).
    pub send_errors: u64,
    /// Failed `ReceiveMessage` calls.
    pub receive_errors: u64,
    /// Failed `DeleteMessageBatch` calls (each retry counts).
    pub delete_errors: u64,
    /// Failed or timed-out queue depth reads.
    pub depth_errors: u64,
}

impl Stats {
    /// The current values.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            received: get(&self.received),
            pings_answered: get(&self.pings_answered),
            malformed: get(&self.malformed),
            unsupported_version: get(&self.unsupported_version),
            stale: get(&self.stale),
            send_errors: get(&self.send_errors),
            receive_errors: get(&self.receive_errors),
            delete_errors: get(&self.delete_errors),
            depth_errors: get(&self.depth_errors),
        }
    }
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// Answers heartbeat pings. Cheap to clone (clones share counters and the
/// depth cache). See the module documentation.
#[derive(Debug, Clone)]
pub struct Responder {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    queues: Arc<dyn Queues>,
    stats: Arc<Stats>,
    depths: Mutex<DepthCache>,
}

#[derive(Debug, Default)]
struct DepthCache {
    fetched_at: Option<Instant>,
    job: Option<u64>,
    dead_letter: Option<u64>,
}

impl Responder {
    /// A responder for `config` on `queues` (e.g. [`crate::SqsQueues`]).
    pub fn new(config: Config, queues: Arc<dyn Queues>) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                queues,
                stats: Arc::default(),
                depths: Mutex::default(),
            }),
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Its live counters.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.inner.stats)
    }

    /// Answers pings until `shutdown` resolves, then stops receiving,
    /// finishes the replies in flight and returns the final counters.
    ///
    /// Never fails: SQS errors are logged and retried. Runs its
    /// [`Config::concurrency`] tasks inside the returned future (nothing is
    /// spawned), so drive it with `tokio::spawn` or `.await` it on a tokio
    /// runtime with the time feature.
    pub async fn run<F: Future>(&self, shutdown: F) -> StatsSnapshot {
        let config = &self.inner.config;
        tracing::info!(
            worker_id = %config.worker_id,
            agent_version = %config.agent_version,
            request_queue = %config.request_queue_url,
            reply_queue = %config.reply_queue_url,
            concurrency = config.concurrency,
            "heartbeat responder started"
        );
        let (stop, stopping) = watch::channel(false);
        let mut workers = pin!(join_all((0..config.concurrency).map(|task| {
            let span = tracing::info_span!("heartbeat", worker_id = %config.worker_id, task);
            self.inner.worker(stopping.clone()).instrument(span)
        })));
        tokio::select! {
            _ = shutdown => {
                tracing::info!("heartbeat responder stopping: finishing replies in flight");
                stop.send_replace(true);
                workers.await;
            }
            _ = &mut workers => {}
        }
        let stats = self.inner.stats.snapshot();
        tracing::info!(
            pings_answered = stats.pings_answered,
            malformed = stats.malformed,
            unsupported_version = stats.unsupported_version,
            stale = stats.stale,
            send_errors = stats.send_errors,
            receive_errors = stats.receive_errors,
            delete_errors = stats.delete_errors,
            "heartbeat responder stopped"
        );
        stats
    }
}

/// Waits until `stopping` says stop (or its sender is gone).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

impl Inner {
    fn backoff(&self) -> ExponentialBackoff {
        // Jitter adds up to 100 % on top, so cap the base at half.
        ExponentialBuilder::default()
            .with_min_delay(MIN_BACKOFF)
            .with_max_delay((self.config.max_backoff / 2).max(MIN_BACKOFF))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
    }

    fn next_delay(&self, backoff: &mut ExponentialBackoff) -> Duration {
        backoff
            .next()
            .unwrap_or(self.config.max_backoff)
            .min(self.config.max_backoff)
    }

    /// One receive loop, until told to stop.
    async fn worker(&self, mut stopping: watch::Receiver<bool>) {
        let config = &self.config;
        let mut backoff: Option<ExponentialBackoff> = None;
        loop {
            if *stopping.borrow() {
                break;
            }
            let received = tokio::select! {
                biased;
                () = stopped(&mut stopping) => break,
                received = self.queues.receive(&config.request_queue_url, MAX_BATCH, config.wait_time, config.visibility_timeout) => received,
            };
            match received {
                Ok(messages) => {
                    backoff = None;
                    if !messages.is_empty() {
                        self.handle_batch(messages, &stopping).await;
                    }
                }
                Err(e) => {
                    bump(&self.stats.receive_errors, 1);
                    log_error(&e, "cannot receive pings; retrying");
                    let delay = self.next_delay(backoff.get_or_insert_with(|| self.backoff()));
                    tokio::select! {
                        () = stopped(&mut stopping) => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Answers a batch concurrently, then deletes what is done with.
    async fn handle_batch(&self, messages: Vec<Message>, stopping: &watch::Receiver<bool>) {
        let received_at = Utc::now();
        let started = Instant::now();
        bump(&self.stats.received, messages.len() as u64);
        let done = join_all(
            messages
                .iter()
                .map(|m| self.handle(m, received_at, started, stopping.clone())),
        )
        .await;
        let handles: Vec<String> = messages
            .iter()
            .zip(done)
            .filter(|(_, done)| *done)
            .map(|(m, _)| m.receipt_handle.clone())
            .collect();
        self.delete(&handles).await;
    }

    /// Handles one message; true when it may be deleted.
    async fn handle(
        &self,
        message: &Message,
        received_at: DateTime<Utc>,
        started: Instant,
        mut stopping: watch::Receiver<bool>,
    ) -> bool {
        let config = &self.config;
        let message_id = message.message_id.as_str();
        let ping = match protocol::decode_ping(&message.body) {
            Ok(ping) => ping,
            Err(DecodeError::UnsupportedVersion(version)) => {
                bump(&self.stats.unsupported_version, 1);
                tracing::warn!(
                    message_id,
                    version,
                    "deleting a ping of a protocol version this agent does not speak; upgrade the agent"
                );
                return true;
            }
            Err(error) => {
                bump(&self.stats.malformed, 1);
                tracing::warn!(message_id, %error, "deleting a message that is not a ping");
                return true;
            }
        };
        let age = received_at.signed_duration_since(ping.sent_at);
        if age.to_std().is_ok_and(|age| age > config.max_ping_age) {
            bump(&self.stats.stale, 1);
            tracing::info!(message_id, tenant = %ping.tenant, seq = ping.seq, age_seconds = age.num_seconds(), "deleting a stale ping unanswered");
            return true;
        }
        let (job_depth, dead_letter_depth) = self.depths().await;
        let mut backoff = self.backoff();
        loop {
            let pong = ping.answer(
                &config.worker_id,
                &config.agent_version,
                received_at,
                job_depth,
                dead_letter_depth,
            );
            match self
                .queues
                .send(&config.reply_queue_url, &protocol::encode_pong(&pong))
                .await
            {
                Ok(()) => {
                    bump(&self.stats.pings_answered, 1);
                    tracing::debug!(message_id, tenant = %ping.tenant, seq = ping.seq, nonce = ping.nonce.as_str(), "answered a ping");
                    return true;
                }
                Err(e) => {
                    bump(&self.stats.send_errors, 1);
                    log_error(&e, "cannot send a pong");
                    let delay = self.next_delay(&mut backoff);
                    if *stopping.borrow() || started.elapsed() + delay > config.reply_deadline {
                        tracing::warn!(
                            message_id,
                            seq = ping.seq,
                            "leaving the ping for redelivery after its visibility timeout"
                        );
                        return false;
                    }
                    tokio::select! {
                        () = stopped(&mut stopping) => {
                            tracing::warn!(message_id, seq = ping.seq, "stopping: leaving the ping for redelivery");
                            return false;
                        }
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Deletes handled pings, retrying a little. If that fails they come
    /// back and are answered again, which is harmless.
    async fn delete(&self, handles: &[String]) {
        if handles.is_empty() {
            return;
        }
        let mut backoff = self.backoff();
        for attempt in 1..=DELETE_ATTEMPTS {
            match self
                .queues
                .delete_batch(&self.config.request_queue_url, handles)
                .await
            {
                Ok(()) => return,
                Err(e) => {
                    bump(&self.stats.delete_errors, 1);
                    log_error(&e, "cannot delete answered pings");
                    if attempt < DELETE_ATTEMPTS {
                        tokio::time::sleep(self.next_delay(&mut backoff)).await;
                    }
                }
            }
        }
        tracing::warn!(
            count = handles.len(),
            "gave up deleting pings; they will be redelivered and answered again (the coordinator ignores duplicate pongs)"
        );
    }

    /// Job queue and dead-letter queue depths, read at most every
    /// [`Config::depth_refresh`] (tasks share the cache; one reads, the
    /// others wait for it).
    async fn depths(&self) -> (Option<u64>, Option<u64>) {
        let mut cache = self.depths.lock().await;
        if let Some(fetched_at) = cache.fetched_at
            && fetched_at.elapsed() < self.config.depth_refresh
        {
            return (cache.job, cache.dead_letter);
        }
        let (job, dead_letter) = tokio::join!(
            self.depth(self.config.job_queue_url.as_deref()),
            self.depth(self.config.dead_letter_queue_url.as_deref())
        );
        *cache = DepthCache {
            fetched_at: Some(Instant::now()),
            job,
            dead_letter,
        };
        (job, dead_letter)
    }

    async fn depth(&self, queue_url: Option<&str>) -> Option<u64> {
        let queue_url = queue_url?;
        match tokio::time::timeout(
            self.config.depth_timeout,
            self.queues.approximate_depth(queue_url),
        )
        .await
        {
            Ok(Ok(depth)) => Some(depth),
            Ok(Err(e)) => {
                bump(&self.stats.depth_errors, 1);
                log_error(&e, "cannot read a queue depth; answering without it");
                None
            }
            Err(_) => {
                bump(&self.stats.depth_errors, 1);
                tracing::warn!(queue = queue_url, timeout = ?self.config.depth_timeout, "queue depth read timed out; answering without it");
                None
            }
        }
    }
}

/// Logs an SQS error: loudly when a human must act (a policy, a role, a
/// queue URL), as a warning otherwise. Either way the caller retries.
fn log_error(error: &QueueError, what: &str) {
    match error.kind {
        ErrorKind::AccessDenied => tracing::error!(
            %error,
            "{what}: ACCESS DENIED. Check the worker role's policy (sqs:ReceiveMessage and sqs:DeleteMessage on the \
             heartbeat request queue, sqs:SendMessage on the reply queue, sqs:GetQueueAttributes on the job queues, and \
             the KMS key if the queues use one). The agent keeps trying."
        ),
        ErrorKind::Credentials => {
            tracing::error!(%error, "{what}: no usable AWS credentials (none found, or the role could not be assumed). The agent keeps trying.")
        }
        ErrorKind::NotFound => {
            tracing::error!(%error, "{what}: queue not found (wrong URL, account or region?). The agent keeps trying.")
        }
        ErrorKind::Throttled | ErrorKind::Transient | ErrorKind::Other => {
            tracing::warn!(%error, "{what}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeQueues;

    fn config() -> Config {
        Config::new("w", "https://q/req", "https://q/rep")
    }

    #[test]
    fn defaults_are_valid_and_bad_values_are_refused() {
        config().validate().unwrap();
        let mut c = config();
        c.concurrency = 0;
        assert_eq!(c.validate(), Err(ConfigError::ZeroConcurrency));
        let mut c = config();
        c.wait_time = Duration::from_secs(21);
        assert!(matches!(c.validate(), Err(ConfigError::WaitTooLong(_))));
        let mut c = config();
        c.visibility_timeout = Duration::from_millis(1500);
        assert!(matches!(
            c.validate(),
            Err(ConfigError::VisibilityTimeout(_))
        ));
        let mut c = config();
        c.reply_deadline = c.visibility_timeout;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::ReplyDeadline { .. })
        ));
        let mut c = config();
        c.reply_queue_url = c.request_queue_url.clone();
        assert_eq!(c.validate(), Err(ConfigError::SameQueue));
        let mut c = config();
        c.worker_id = " ".into();
        assert_eq!(c.validate(), Err(ConfigError::Empty("worker_id")));
        assert!(
            Responder::new(
                Config {
                    concurrency: 0,
                    ..config()
                },
                Arc::new(FakeQueues::new())
            )
            .is_err()
        );
        assert_eq!(config().agent_version, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn backoff_is_jittered_and_capped() {
        let responder = Responder::new(config(), Arc::new(FakeQueues::new())).unwrap();
        let inner = &responder.inner;
        let mut backoff = inner.backoff();
        let delays: Vec<Duration> = (0..30).map(|_| inner.next_delay(&mut backoff)).collect();
        assert!(
            delays
                .iter()
                .all(|d| *d >= MIN_BACKOFF && *d <= inner.config.max_backoff),
            "{delays:?}"
        );
        assert!(delays[0] <= 2 * MIN_BACKOFF, "{delays:?}");
        assert!(delays[29] >= inner.config.max_backoff / 2, "{delays:?}");
    }
}
