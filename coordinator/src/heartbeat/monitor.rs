//! The heartbeat loop: every interval, for every tenant whose worker stack is
//! deployed, collect the pongs that arrived since the last round, update the
//! tenant's state, and send the next ping — through the tenant's own role,
//! since queues are never reached across accounts.
//!
//! Tenants run concurrently up to a bound, each under its own timeout, so
//! one slow or broken tenant never delays the others past its own timeout.
//! The monitor takes no input while running and reports its status as a
//! value ([`Monitor::snapshot`]); every state is persisted so a restarted
//! coordinator keeps history.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use protocol::{Nonce, Ping, decode_pong, encode_ping};
use serde::Serialize;
use stacks::Stack;
use stacks::builtin::worker::{Worker, WorkerOutputs};
use stacks::ids::TenantId;

use super::detector::{self, Answer, Observation, TenantHealth, Thresholds};
use crate::access::{self, Operator};
use crate::aws::{Connector, ErrorKind, Sqs};
use crate::manifest::{HeartbeatSettings, Manifest, Tenant};
use crate::store::Store;

/// Pings kept waiting for their pong, per tenant.
const MAX_OUTSTANDING: usize = 16;
/// Batches drained from a reply queue per round at most.
const MAX_DRAIN_BATCHES: usize = 10;

/// Counters for metrics; monotonic.
#[derive(Debug, Default)]
pub struct Counters {
    /// Pings sent.
    pub pings_sent: AtomicU64,
    /// Pongs that answered one of our pings.
    pub pongs_received: AtomicU64,
    /// Pongs for nonces we did not (or no longer) wait for.
    pub pongs_unmatched: AtomicU64,
    /// Reply bodies that did not decode (counted and deleted).
    pub malformed: AtomicU64,
    /// Failed SQS or STS calls.
    pub errors: AtomicU64,
}

/// A counter snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CounterValues {
    /// Pings sent.
    pub pings_sent: u64,
    /// Pongs matched.
    pub pongs_received: u64,
    /// Pongs not matched.
    pub pongs_unmatched: u64,
    /// Undecodable replies.
    pub malformed: u64,
    /// Failed calls.
    pub errors: u64,
}

impl Counters {
    /// Current values.
    pub fn values(&self) -> CounterValues {
        CounterValues {
            pings_sent: self.pings_sent.load(Ordering::Relaxed),
            pongs_received: self.pongs_received.load(Ordering::Relaxed),
            pongs_unmatched: self.pongs_unmatched.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Clone)]
struct Outstanding {
    nonce: Nonce,
    sent_at: DateTime<Utc>,
}

/// Per-tenant runtime state (not persisted).
#[derive(Default)]
struct Runtime {
    sqs: Option<Arc<dyn Sqs>>,
    seq: u64,
    outstanding: VecDeque<Outstanding>,
}

/// One tenant's status as the monitor last saw it.
#[derive(Debug, Clone, Serialize)]
pub struct TenantStatus {
    /// Tenant.
    pub tenant: TenantId,
    /// Health.
    #[serde(flatten)]
    pub health: TenantHealth,
}

/// The heartbeat monitor of a fleet.
pub struct Monitor {
    connector: Arc<dyn Connector>,
    store: Arc<dyn Store>,
    manifest: Arc<Manifest>,
    operator: Operator,
    coordinator_id: String,
    thresholds: Thresholds,
    settings: HeartbeatSettings,
    runtimes: Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<Runtime>>>>,
    health: Mutex<BTreeMap<TenantId, TenantHealth>>,
    /// Round-trip times of matched pongs, for metrics.
    pub rtt: crate::api::metrics::Histogram,
    /// Counters for metrics.
    pub counters: Counters,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("coordinator_id", &self.coordinator_id)
            .finish_non_exhaustive()
    }
}

/// Why an observation could not even be made.
enum Refusal {
    Denied(String),
    NotDeployed(String),
}

impl Monitor {
    /// A monitor for `manifest`'s tenants, resuming the stored states.
    pub async fn new(
        connector: Arc<dyn Connector>,
        store: Arc<dyn Store>,
        manifest: Arc<Manifest>,
        operator: Operator,
    ) -> Result<Self, crate::store::StoreError> {
        let settings = manifest.heartbeat;
        let thresholds = Thresholds {
            interval: settings.interval.get(),
            unreachable_after: settings.unreachable_after,
            degraded_job_backlog: settings.degraded_job_backlog,
            degraded_dead_letters: settings.degraded_dead_letters,
        };
        let stored: BTreeMap<TenantId, TenantHealth> =
            store.heartbeats().await?.into_iter().collect();
        let now = Utc::now();
        let health = manifest
            .tenants
            .iter()
            .filter(|t| !t.deployed_stacks().is_empty())
            .map(|t| {
                (
                    t.id.clone(),
                    stored
                        .get(&t.id)
                        .cloned()
                        .unwrap_or_else(|| TenantHealth::unknown(now)),
                )
            })
            .collect();
        let coordinator_id = format!("{}/{}", operator.session_name, std::process::id());
        Ok(Self {
            connector,
            store,
            manifest,
            operator,
            coordinator_id,
            thresholds,
            settings,
            runtimes: Mutex::new(HashMap::new()),
            health: Mutex::new(health),
            rtt: Default::default(),
            counters: Counters::default(),
        })
    }

    /// How long a round's first receive waits: SQS short polls sample a
    /// subset of servers and can miss a message that is there, so the first
    /// receive long-polls for 1 s (it returns at once when a pong is
    /// waiting). SQS waits in whole seconds, so intervals under 5 s (tests,
    /// demos) short-poll to stay well inside the round's timeout.
    fn first_receive_wait(&self) -> Duration {
        if self.thresholds.interval >= Duration::from_secs(5) {
            Duration::from_secs(1)
        } else {
            Duration::ZERO
        }
    }

    /// The interval between rounds.
    pub fn interval(&self) -> Duration {
        self.thresholds.interval
    }

    /// Every monitored tenant's current status.
    pub fn snapshot(&self) -> Vec<TenantStatus> {
        let health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let order: HashMap<&TenantId, usize> = self
            .manifest
            .tenants
            .iter()
            .enumerate()
            .map(|(i, t)| (&t.id, i))
            .collect();
        let mut out: Vec<TenantStatus> = health
            .iter()
            .map(|(tenant, h)| TenantStatus {
                tenant: tenant.clone(),
                health: h.clone(),
            })
            .collect();
        out.sort_by_key(|s| order.get(&s.tenant).copied().unwrap_or(usize::MAX));
        out
    }

    fn runtime(&self, tenant: &TenantId) -> Arc<tokio::sync::Mutex<Runtime>> {
        self.runtimes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(tenant.clone())
            .or_default()
            .clone()
    }

    fn monitored(&self) -> Vec<Tenant> {
        self.manifest
            .tenants
            .iter()
            .filter(|t| !t.deployed_stacks().is_empty())
            .cloned()
            .collect()
    }

    /// One round for every tenant: collect pongs, update states, send pings.
    /// Each tenant's work is bounded by `per_tenant_timeout`.
    pub async fn round(&self, per_tenant_timeout: Duration) {
        let tenants = self.monitored();
        futures::stream::iter(tenants)
            .map(|t| async move {
                let observation = match tokio::time::timeout(
                    per_tenant_timeout,
                    self.tenant_round(&t, self.first_receive_wait()),
                )
                .await
                {
                    Ok(o) => o,
                    Err(_) => {
                        self.counters.errors.fetch_add(1, Ordering::Relaxed);
                        let expected = !self.runtime(&t.id).lock().await.outstanding.is_empty();
                        Observation::Round {
                            answers: vec![],
                            error: Some(format!(
                                "the tenant's SQS calls took longer than {}s",
                                per_tenant_timeout.as_secs_f32()
                            )),
                            expected,
                        }
                    }
                };
                self.record(&t.id, observation).await;
            })
            .buffer_unordered(self.settings.max_concurrent.max(1))
            .collect::<Vec<()>>()
            .await;
    }

    /// One ping per tenant, waiting up to `timeout` for its pong (for
    /// `coordinator heartbeat --once`).
    pub async fn once(&self, timeout: Duration) {
        let tenants = self.monitored();
        futures::stream::iter(tenants)
            .map(|t| async move {
                // Send the ping, then wait for its pong.
                let sent =
                    tokio::time::timeout(timeout, self.tenant_round(&t, Duration::ZERO)).await;
                let observation = match sent {
                    Ok(Observation::Round { error: None, .. }) => {
                        match tokio::time::timeout(
                            timeout,
                            self.collect_until_answered(&t, timeout),
                        )
                        .await
                        {
                            Ok(o) => o,
                            Err(_) => Observation::Round {
                                answers: vec![],
                                error: Some(format!("no pong within {}s", timeout.as_secs())),
                                expected: true,
                            },
                        }
                    }
                    Ok(other) => other,
                    Err(_) => Observation::Round {
                        answers: vec![],
                        error: Some(format!(
                            "the tenant's SQS calls took longer than {}s",
                            timeout.as_secs()
                        )),
                        expected: true,
                    },
                };
                self.record(&t.id, observation).await;
            })
            .buffer_unordered(self.settings.max_concurrent.max(1))
            .collect::<Vec<()>>()
            .await;
    }

    /// Runs rounds every interval until `shutdown` resolves.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let mut ticker = tokio::time::interval(self.interval());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let per_tenant = self.interval().mul_f32(0.8);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = ticker.tick() => self.round(per_tenant).await,
            }
        }
    }

    async fn record(&self, tenant: &TenantId, observation: Observation) {
        let now = Utc::now();
        let next = {
            let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
            let prev = health
                .get(tenant)
                .cloned()
                .unwrap_or_else(|| TenantHealth::unknown(now));
            let next = detector::next(&prev, observation, now, &self.thresholds);
            if next.state != prev.state {
                tracing::info!(%tenant, from = prev.state.as_str(), to = next.state.as_str(), reason = %next.reason, "heartbeat state changed");
            }
            health.insert(tenant.clone(), next.clone());
            next
        };
        if let Err(e) = self.store.put_heartbeat(tenant, &next).await {
            tracing::error!(%tenant, error = %e, "could not persist a heartbeat state");
        }
    }

    /// The tenant's SQS client, connecting (and verifying the account) on
    /// first use; the credentials refresh themselves.
    async fn sqs(&self, tenant: &Tenant, runtime: &mut Runtime) -> Result<Arc<dyn Sqs>, Refusal> {
        if let Some(sqs) = &runtime.sqs {
            return Ok(sqs.clone());
        }
        match access::connect(self.connector.as_ref(), &self.operator, tenant).await {
            Ok(a) => {
                let sqs = self
                    .connector
                    .tenant_sqs(a.credentials.clone(), tenant.region);
                runtime.sqs = Some(sqs.clone());
                Ok(sqs)
            }
            Err(e) if e.is_denied() => Err(Refusal::Denied(e.to_string())),
            Err(e) => Err(Refusal::Denied(format!("cannot reach the account: {e}"))),
        }
    }

    async fn queues(&self, tenant: &TenantId) -> Result<WorkerOutputs, Refusal> {
        let stored = self
            .store
            .outputs(tenant, stacks::StackKind::Worker)
            .await
            .map_err(|e| {
                Refusal::NotDeployed(format!("cannot read the worker stack's outputs: {e}"))
            })?;
        let Some(stored) = stored else {
            return Err(Refusal::NotDeployed(
                "no worker stack is deployed (run `coordinator deploy`)".into(),
            ));
        };
        Worker::parse_outputs(stored.outputs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).map_err(
            |e| Refusal::NotDeployed(format!("the worker stack's outputs are unusable: {e}")),
        )
    }

    /// Collects pongs (draining with `wait` long polls), then sends a ping.
    async fn tenant_round(&self, tenant: &Tenant, wait: Duration) -> Observation {
        let runtime = self.runtime(&tenant.id);
        let mut runtime = runtime.lock().await;
        let queues = match self.queues(&tenant.id).await {
            Ok(q) => q,
            Err(Refusal::NotDeployed(why)) | Err(Refusal::Denied(why)) => {
                runtime.outstanding.clear();
                return Observation::NotDeployed(why);
            }
        };
        let sqs = match self.sqs(tenant, &mut runtime).await {
            Ok(s) => s,
            Err(Refusal::Denied(why)) => return Observation::AccessDenied(why),
            Err(Refusal::NotDeployed(why)) => return Observation::NotDeployed(why),
        };
        let expected = !runtime.outstanding.is_empty();
        let (answers, mut error) = match self.drain(sqs.as_ref(), &queues, &mut runtime, wait).await
        {
            Ok(a) => (a, None),
            Err(Err(refusal)) => return refusal,
            Err(Ok(e)) => (vec![], Some(e)),
        };
        // Send the next ping.
        runtime.seq += 1;
        let ping = Ping::new(tenant.id.as_str(), runtime.seq, self.coordinator_id.clone());
        match sqs
            .send_message(&queues.heartbeat_request_queue_url, &encode_ping(&ping))
            .await
        {
            Ok(()) => {
                self.counters.pings_sent.fetch_add(1, Ordering::Relaxed);
                runtime.outstanding.push_back(Outstanding {
                    nonce: ping.nonce,
                    sent_at: ping.sent_at,
                });
                while runtime.outstanding.len() > MAX_OUTSTANDING {
                    runtime.outstanding.pop_front();
                }
            }
            Err(e) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                match e.kind {
                    ErrorKind::AccessDenied => {
                        runtime.sqs = None;
                        return Observation::AccessDenied(format!(
                            "sending a ping was refused: {e}"
                        ));
                    }
                    ErrorKind::NotFound => {
                        runtime.outstanding.clear();
                        return Observation::NotDeployed(format!(
                            "the heartbeat request queue {} does not exist: {e}",
                            queues.heartbeat_request_queue_url.queue_name()
                        ));
                    }
                    _ => error = Some(format!("sending a ping failed: {e}")),
                }
            }
        }
        Observation::Round {
            answers,
            error,
            expected,
        }
    }

    /// After a ping was sent: long-polls the reply queue until an answer to
    /// the newest ping arrives (used by `once`).
    async fn collect_until_answered(&self, tenant: &Tenant, timeout: Duration) -> Observation {
        let started = tokio::time::Instant::now();
        let runtime = self.runtime(&tenant.id);
        let mut runtime = runtime.lock().await;
        let Ok(queues) = self.queues(&tenant.id).await else {
            return Observation::NotDeployed("no worker stack is deployed".into());
        };
        let Some(sqs) = runtime.sqs.clone() else {
            return Observation::AccessDenied("no access to the tenant's account".into());
        };
        let newest = runtime.outstanding.back().map(|o| o.nonce.clone());
        let mut all = Vec::new();
        loop {
            let remaining = timeout.saturating_sub(started.elapsed());
            let wait = remaining.min(Duration::from_secs(20));
            match self.drain(sqs.as_ref(), &queues, &mut runtime, wait).await {
                Ok(answers) => all.extend(answers),
                Err(Err(refusal)) => return refusal,
                Err(Ok(e)) => {
                    return Observation::Round {
                        answers: all,
                        error: Some(e),
                        expected: true,
                    };
                }
            }
            let answered = newest
                .as_ref()
                .is_none_or(|n| !runtime.outstanding.iter().any(|o| &o.nonce == n));
            if answered || started.elapsed() >= timeout {
                let error = (!answered).then(|| format!("no pong within {}s", timeout.as_secs()));
                return Observation::Round {
                    answers: all,
                    error,
                    expected: true,
                };
            }
        }
    }

    /// Receives replies in batches of 10, matches them to outstanding pings,
    /// deletes them in batches. `Err(Err(_))` is a refusal, `Err(Ok(_))` a
    /// plain error.
    async fn drain(
        &self,
        sqs: &dyn Sqs,
        queues: &WorkerOutputs,
        runtime: &mut Runtime,
        wait: Duration,
    ) -> Result<Vec<Answer>, Result<String, Observation>> {
        let mut answers = Vec::new();
        for batch in 0..MAX_DRAIN_BATCHES {
            let messages = match sqs
                .receive_messages(
                    &queues.heartbeat_reply_queue_url,
                    10,
                    if batch == 0 { wait } else { Duration::ZERO },
                )
                .await
            {
                Ok(m) => m,
                Err(e) => {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    return Err(match e.kind {
                        ErrorKind::AccessDenied => {
                            runtime.sqs = None;
                            Err(Observation::AccessDenied(format!(
                                "reading pongs was refused: {e}"
                            )))
                        }
                        ErrorKind::NotFound => {
                            runtime.outstanding.clear();
                            Err(Observation::NotDeployed(format!(
                                "the heartbeat reply queue {} does not exist: {e}",
                                queues.heartbeat_reply_queue_url.queue_name()
                            )))
                        }
                        _ => Ok(format!("reading pongs failed: {e}")),
                    });
                }
            };
            if messages.is_empty() {
                break;
            }
            let received_at = Utc::now();
            let mut handles = Vec::with_capacity(messages.len());
            for m in messages {
                handles.push(m.receipt_handle);
                let pong = match decode_pong(&m.body) {
                    Ok(p) => p,
                    Err(e) => {
                        self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(error = %e, "deleting an undecodable reply");
                        continue;
                    }
                };
                match runtime
                    .outstanding
                    .iter()
                    .position(|o| o.nonce == pong.nonce)
                {
                    Some(i) => {
                        let o = runtime.outstanding.remove(i).expect("index from position");
                        self.counters.pongs_received.fetch_add(1, Ordering::Relaxed);
                        let rtt = (received_at - o.sent_at).num_milliseconds().max(0) as u64;
                        self.rtt.observe_all([rtt as f64 / 1000.0]);
                        answers.push(Answer {
                            ping_sent_at: o.sent_at,
                            received_at,
                            job_queue_depth: pong.job_queue_depth,
                            dead_letter_depth: pong.dead_letter_depth,
                            worker_id: pong.worker_id,
                            agent_version: pong.agent_version,
                        });
                    }
                    // A duplicate, a pong for a ping from before a restart,
                    // or another coordinator's: never proof of life.
                    None => {
                        self.counters
                            .pongs_unmatched
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if let Err(e) = sqs
                .delete_messages(&queues.heartbeat_reply_queue_url, &handles)
                .await
            {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(tenant = %runtime_tenant(queues), error = %e, "could not delete pongs; they will be seen again and ignored");
            }
            // A short batch means the queue is drained: no need for another
            // (empty) receive.
            if handles.len() < 10 {
                break;
            }
        }
        Ok(answers)
    }
}

fn runtime_tenant(queues: &WorkerOutputs) -> String {
    queues.heartbeat_reply_queue_url.account().to_owned()
}
