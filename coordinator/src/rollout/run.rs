//! Executing a rollout: plans once per run, then follows [`engine::next`],
//! writing each transition to the store before acting on it, deploying each
//! tenant with [`Fleet::apply`] on that tenant's slice of the plan.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use stacks::ids::{TenantId, WaveName};

use super::HealthSource;
use super::engine::{self, Next, RolloutState};
use crate::apply::ProgressFn;
use crate::deploy::{Fleet, Planned};
use crate::heartbeat::detector::Health;
use crate::manifest::WavePolicy;
use crate::plan::{Plan, PlanOptions};
use crate::store::{
    LeaseHeld, NewAuditEntry, NewRolloutEvent, RolloutEvent, RolloutRecord, Store, StoreError,
};

/// Why a rollout could not be driven.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The store failed; nothing more was done.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Planning failed.
    #[error("cannot plan the rollout")]
    Plan(#[source] stacks::StackError),
    /// Another coordinator drives a rollout.
    #[error("{0}; wait for it, or halt it with `coordinator rollout halt`")]
    Leased(#[from] LeaseHeld),
    /// A rollout is running already.
    #[error(
        "rollout {0} is running (or its coordinator crashed): resume it with `coordinator rollout resume`, or halt it with `coordinator rollout halt`"
    )]
    AlreadyRunning(i64),
    /// Nothing to resume or halt.
    #[error("{0}")]
    Nothing(String),
}

/// One tenant at the end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct TenantOutcome {
    /// Tenant.
    pub tenant: TenantId,
    /// Its wave.
    pub wave: WaveName,
    /// `succeeded`, `failed`, `in_flight` or `not_started`.
    pub outcome: &'static str,
    /// How long its deployment took.
    pub duration_ms: Option<u64>,
    /// Why it failed.
    pub reason: Option<String>,
}

/// Why a rollout halted.
#[derive(Debug, Clone, Serialize)]
pub struct HaltSummary {
    /// The wave it halted in.
    pub wave: Option<String>,
    /// What halted it.
    pub reason: String,
    /// Failed (or unhealthy) tenants and why.
    pub tenants: Vec<(TenantId, String)>,
    /// What to run next.
    pub next_steps: String,
}

impl std::fmt::Display for HaltSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.wave {
            Some(w) => write!(f, "rollout halted in wave `{w}`: {}", self.reason)?,
            None => write!(f, "rollout halted: {}", self.reason)?,
        }
        for (t, why) in &self.tenants {
            write!(f, "\n  {t}: {why}")?;
        }
        write!(f, "\n{}", self.next_steps)
    }
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutReport {
    /// The rollout.
    pub rollout: i64,
    /// Its release.
    pub release: String,
    /// `succeeded` or `halted`.
    pub verdict: &'static str,
    /// Why it halted.
    pub halt: Option<HaltSummary>,
    /// Per tenant, in wave order.
    pub tenants: Vec<TenantOutcome>,
}

/// Drives rollouts.
pub struct Runner<'a> {
    /// Deploys tenants; its `concurrency` is only used while planning.
    pub fleet: Fleet<'a>,
    /// Heartbeat states for the health gate.
    pub health: &'a dyn HealthSource,
    /// Time between health polls during a bake.
    pub poll_interval: Duration,
    /// How long the lease lasts without renewal.
    pub lease_ttl: Duration,
    /// Who holds the lease (unique per process).
    pub holder: String,
    /// Called with each transition as it is recorded.
    pub on_event: &'a (dyn Fn(&RolloutEvent) + Send + Sync),
    /// Stack progress.
    pub progress: ProgressFn<'a>,
}

impl std::fmt::Debug for Runner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

/// A unique lease holder name for this process.
pub fn holder_name(actor: &str) -> String {
    format!(
        "{actor} pid {} {:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

fn event(kind: &str, wave: Option<&WaveName>, tenant: Option<&TenantId>) -> NewRolloutEvent {
    NewRolloutEvent {
        kind: kind.to_owned(),
        wave: wave.map(ToString::to_string),
        tenant: tenant.cloned(),
        details: serde_json::json!({}),
    }
}

fn next_steps(id: i64) -> String {
    format!(
        "fix the cause, then resume with `coordinator rollout resume` (rollout {id}); or roll back: set [release] to the previous version and run `coordinator rollout start` with that release's coordinator"
    )
}

/// Asks the running rollout to halt: no new tenant is started; in-flight
/// ones finish and are recorded.
pub async fn halt(
    store: &dyn Store,
    actor: &str,
    reason: &str,
) -> Result<RolloutRecord, RolloutError> {
    let Some(r) = store.latest_rollout().await? else {
        return Err(RolloutError::Nothing("no rollout to halt".into()));
    };
    if r.state != "running" {
        return Err(RolloutError::Nothing(format!(
            "rollout {} is {}, not running",
            r.id, r.state
        )));
    }
    let why = format!("halted by {actor}: {reason}");
    store
        .append_rollout_event(
            r.id,
            NewRolloutEvent {
                details: serde_json::json!({ "reason": why, "by": actor }),
                ..event("halted", None, None)
            },
        )
        .await?;
    store.set_rollout_state(r.id, "halted", Some(&why)).await?;
    store
        .append_audit(NewAuditEntry {
            actor: actor.to_owned(),
            tenant: None,
            action: "rollout.halt".into(),
            details: serde_json::json!({ "rollout": r.id, "reason": reason }),
        })
        .await?;
    Ok(store.rollout(r.id).await?.unwrap_or(r))
}

impl Runner<'_> {
    fn store(&self) -> &dyn Store {
        self.fleet.store
    }

    fn actor(&self) -> &str {
        self.fleet.operator.actor()
    }

    async fn audit(
        &self,
        action: &str,
        tenant: Option<&TenantId>,
        details: serde_json::Value,
    ) -> Result<(), StoreError> {
        self.store()
            .append_audit(NewAuditEntry {
                actor: self.actor().to_owned(),
                tenant: tenant.cloned(),
                action: action.into(),
                details,
            })
            .await
            .map(|_| ())
    }

    async fn record(&self, id: i64, e: NewRolloutEvent) -> Result<(), StoreError> {
        let recorded = self.store().append_rollout_event(id, e).await?;
        (self.on_event)(&recorded);
        Ok(())
    }

    async fn lease(&self, id: i64) -> Result<(), RolloutError> {
        self.store()
            .acquire_rollout_lease(&self.holder, id, self.lease_ttl)
            .await??;
        Ok(())
    }

    /// Starts a rollout of the manifest's release.
    pub async fn start(&self) -> Result<RolloutReport, RolloutError> {
        self.lease(0).await?;
        let result = async {
            if let Some(latest) = self.store().latest_rollout().await? {
                match latest.state.as_str() {
                    "running" => return Err(RolloutError::AlreadyRunning(latest.id)),
                    "halted" => {
                        self.store()
                            .set_rollout_state(latest.id, "superseded", latest.reason.as_deref())
                            .await?;
                    }
                    _ => {}
                }
            }
            let release = self.fleet.manifest.release.to_string();
            let r = self.store().create_rollout(&release, self.actor()).await?;
            self.lease(r.id).await?;
            self.audit(
                "rollout.start",
                None,
                serde_json::json!({ "rollout": r.id, "release": release, "policy": self.fleet.manifest.rollout }),
            )
            .await?;
            self.drive(r.id).await
        }
        .await;
        let _ = self.store().release_rollout_lease(&self.holder).await;
        result
    }

    /// Continues a halted or crashed rollout.
    pub async fn resume(&self) -> Result<RolloutReport, RolloutError> {
        let Some(r) = self.store().latest_rollout().await? else {
            return Err(RolloutError::Nothing("no rollout to resume".into()));
        };
        if !matches!(r.state.as_str(), "running" | "halted") {
            return Err(RolloutError::Nothing(format!(
                "rollout {} is {}: nothing to resume; start a new one with `coordinator rollout start`",
                r.id, r.state
            )));
        }
        self.lease(r.id).await?;
        let result = async {
            self.store()
                .set_rollout_state(r.id, "running", None)
                .await?;
            self.record(r.id, event("resumed", None, None)).await?;
            self.audit(
                "rollout.resume",
                None,
                serde_json::json!({ "rollout": r.id, "was": r.state }),
            )
            .await?;
            self.drive(r.id).await
        }
        .await;
        let _ = self.store().release_rollout_lease(&self.holder).await;
        result
    }

    async fn halted_by_request(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .store()
            .rollout(id)
            .await?
            .is_some_and(|r| r.state == "halted"))
    }

    async fn drive(&self, id: i64) -> Result<RolloutReport, RolloutError> {
        let manifest = self.fleet.manifest;
        let waves = engine::waves(manifest);
        let mut planned: Option<(Planned, Plan)> = None;
        loop {
            self.lease(id).await?;
            if self.halted_by_request(id).await? {
                return self.report(id, None).await;
            }
            let state = RolloutState::from_events(&self.store().rollout_events(id).await?);
            match engine::next(&manifest.rollout, &waves, &state) {
                Next::StartWave(wave) => {
                    self.record(id, event("wave_started", Some(&wave), None))
                        .await?;
                }
                Next::Deploy { wave, tenants } => {
                    if planned.is_none() {
                        let p = self
                            .fleet
                            .observe_and_plan(None, PlanOptions::default())
                            .await
                            .map_err(RolloutError::Plan)?;
                        let plan = self.fleet.record(p.draft.clone()).await?;
                        planned = Some((p, plan));
                    }
                    let (p, plan) = planned.as_ref().expect("planned above");
                    let size = waves
                        .iter()
                        .find(|(w, _)| w == &wave)
                        .map_or(0, |(_, t)| t.len());
                    let already_failed = state
                        .failures(
                            waves
                                .iter()
                                .filter(|(w, _)| w == &wave)
                                .flat_map(|(_, t)| t),
                        )
                        .len();
                    self.deploy_wave(id, &wave, &tenants, size, already_failed, p, plan)
                        .await?;
                }
                Next::Bake(wave) => {
                    let policy = manifest.rollout.for_wave(&wave);
                    let gated: Vec<TenantId> = waves
                        .iter()
                        .filter(|(w, _)| w == &wave)
                        .flat_map(|(_, t)| t)
                        .filter(|t| {
                            state.tenant(t) == engine::TenantProgress::Succeeded
                                && manifest
                                    .tenant(t)
                                    .is_some_and(|t| !t.deployed_stacks().is_empty())
                        })
                        .cloned()
                        .collect();
                    match self.bake(id, &wave, policy, &gated).await? {
                        Bake::Passed => {
                            self.record(id, event("gate_passed", Some(&wave), None))
                                .await?;
                        }
                        Bake::HaltRequested => continue,
                        Bake::Failed(unhealthy) => {
                            let reason = format!(
                                "health gate failed: {} tenant(s) not healthy during the {} bake",
                                unhealthy.len(),
                                policy.bake_time
                            );
                            self.record(
                                id,
                                NewRolloutEvent {
                                    details: serde_json::json!({ "reason": reason, "tenants": unhealthy }),
                                    ..event("gate_failed", Some(&wave), None)
                                },
                            )
                            .await?;
                            self.audit(
                                "rollout.gate_failed",
                                None,
                                serde_json::json!({ "rollout": id, "wave": wave, "tenants": unhealthy }),
                            )
                            .await?;
                            return self.halt_self(id, &wave, reason, unhealthy).await;
                        }
                    }
                }
                Next::Halt {
                    wave,
                    failed,
                    allowed,
                } => {
                    let size = waves
                        .iter()
                        .find(|(w, _)| w == &wave)
                        .map_or(0, |(_, t)| t.len());
                    let reason = format!(
                        "{} of {size} tenant(s) failed, more than the {allowed} tolerated",
                        failed.len()
                    );
                    return self.halt_self(id, &wave, reason, failed).await;
                }
                Next::Done => {
                    self.record(id, event("completed", None, None)).await?;
                    self.store()
                        .set_rollout_state(id, "succeeded", None)
                        .await?;
                    self.audit(
                        "rollout.completed",
                        None,
                        serde_json::json!({ "rollout": id }),
                    )
                    .await?;
                    return self.report(id, None).await;
                }
            }
        }
    }

    async fn halt_self(
        &self,
        id: i64,
        wave: &WaveName,
        reason: String,
        tenants: Vec<(TenantId, String)>,
    ) -> Result<RolloutReport, RolloutError> {
        self.record(
            id,
            NewRolloutEvent {
                details: serde_json::json!({ "reason": reason, "tenants": tenants }),
                ..event("halted", Some(wave), None)
            },
        )
        .await?;
        self.store()
            .set_rollout_state(id, "halted", Some(&reason))
            .await?;
        self.audit(
            "rollout.halted",
            None,
            serde_json::json!({ "rollout": id, "wave": wave, "reason": reason, "tenants": tenants }),
        )
        .await?;
        self.report(id, Some((Some(wave.to_string()), reason, tenants)))
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn deploy_wave(
        &self,
        id: i64,
        wave: &WaveName,
        tenants: &[TenantId],
        size: usize,
        already_failed: usize,
        planned: &Planned,
        plan: &Plan,
    ) -> Result<(), RolloutError> {
        let policy = self.fleet.manifest.rollout.for_wave(wave);
        let allowed = policy.failure_tolerance.allowed(size);
        let failures = AtomicUsize::new(already_failed);
        let failures = &failures;
        let lost = AtomicBool::new(false);
        let lost = &lost;
        let work = futures::stream::iter(tenants)
            .map(|tenant| async move {
                // Checked as each tenant is about to start: past the
                // tolerance or after a halt, nothing new starts.
                if failures.load(Ordering::SeqCst) > allowed
                    || lost.load(Ordering::SeqCst)
                    || self.halted_by_request(id).await?
                {
                    return Ok(());
                }
                self.record(id, event("tenant_started", Some(wave), Some(tenant)))
                    .await?;
                let started = std::time::Instant::now();
                let slice = Plan {
                    generation: plan.generation,
                    parent: plan.parent,
                    release: plan.release.clone(),
                    tenants: plan
                        .tenants
                        .iter()
                        .filter(|t| &t.tenant == tenant)
                        .cloned()
                        .collect(),
                };
                let report = self.fleet.apply(&slice, planned, self.progress).await;
                let duration_ms = started.elapsed().as_millis() as u64;
                let failed: Vec<String> = report
                    .tenants
                    .iter()
                    .flat_map(|t| &t.items)
                    .filter(|i| !i.ok())
                    .map(|i| format!("{}: {}", i.stack, i.describe()))
                    .collect();
                let ok = failed.is_empty();
                let reason = (!ok).then(|| failed.join("; "));
                if !ok {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                let kind = if ok { "tenant_succeeded" } else { "tenant_failed" };
                self.record(
                    id,
                    NewRolloutEvent {
                        details: serde_json::json!({ "reason": reason, "duration_ms": duration_ms }),
                        ..event(kind, Some(wave), Some(tenant))
                    },
                )
                .await?;
                self.audit(
                    "rollout.tenant",
                    Some(tenant),
                    serde_json::json!({
                        "rollout": id,
                        "wave": wave,
                        "outcome": if ok { "succeeded" } else { "failed" },
                        "reason": reason,
                        "duration_ms": duration_ms,
                    }),
                )
                .await?;
                Ok(())
            })
            .buffer_unordered(policy.max_concurrent.max(1))
            .collect::<Vec<Result<(), StoreError>>>();
        // The lease is renewed while the wave's tenants deploy; if another
        // coordinator took it over, nothing new starts.
        let renew = async {
            loop {
                tokio::time::sleep(self.lease_ttl / 3).await;
                match self
                    .store()
                    .acquire_rollout_lease(&self.holder, id, self.lease_ttl)
                    .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(held)) => {
                        tracing::error!(error = %held, "lost the rollout lease; starting no more tenants");
                        lost.store(true, Ordering::SeqCst);
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot renew the rollout lease"),
                }
            }
        };
        let results = tokio::select! {
            results = work => results,
            () = renew => unreachable!("the renewal loop never ends"),
        };
        results.into_iter().collect::<Result<(), _>>()?;
        if lost.load(Ordering::SeqCst) {
            self.lease(id).await?;
        }
        Ok(())
    }

    async fn bake(
        &self,
        id: i64,
        wave: &WaveName,
        policy: WavePolicy,
        gated: &[TenantId],
    ) -> Result<Bake, StoreError> {
        let bake = policy.bake_time.get();
        if bake.is_zero() {
            return Ok(Bake::Passed);
        }
        let deadline = tokio::time::Instant::now() + bake;
        loop {
            if self.halted_by_request(id).await? {
                return Ok(Bake::HaltRequested);
            }
            // Keep the lease while baking.
            if let Ok(Err(e)) = self
                .store()
                .acquire_rollout_lease(&self.holder, id, self.lease_ttl)
                .await
            {
                tracing::warn!(error = %e, "lost the rollout lease while baking");
            }
            let now = tokio::time::Instant::now();
            let last = now >= deadline;
            if policy.health_gate {
                let states: BTreeMap<TenantId, Health> = self.health.states().into_iter().collect();
                let unhealthy: Vec<(TenantId, String)> = gated
                    .iter()
                    .filter_map(|t| {
                        let state = states.get(t).copied().unwrap_or(Health::Unknown);
                        // Not pinged yet, or pinged before the monitor saw
                        // the new worker stack: tolerated until the end.
                        let pending = matches!(state, Health::Unknown | Health::NotDeployed);
                        let ok = state == Health::Healthy || (pending && !last);
                        (!ok).then(|| (t.clone(), format!("heartbeat {}", state.as_str())))
                    })
                    .collect();
                if !unhealthy.is_empty() {
                    tracing::warn!(%wave, ?unhealthy, "health gate failed");
                    return Ok(Bake::Failed(unhealthy));
                }
            }
            if last {
                return Ok(Bake::Passed);
            }
            tokio::time::sleep(self.poll_interval.min(deadline - now)).await;
        }
    }

    /// The report of a rollout from its log.
    pub async fn report(
        &self,
        id: i64,
        halt: Option<HaltCause>,
    ) -> Result<RolloutReport, RolloutError> {
        report(self.store(), self.fleet.manifest, id, halt).await
    }
}

/// Why a run halted: the wave, the reason, the tenants and why.
pub type HaltCause = (Option<String>, String, Vec<(TenantId, String)>);

enum Bake {
    Passed,
    Failed(Vec<(TenantId, String)>),
    HaltRequested,
}

/// A rollout's report, from its log (`rollout status` uses it too).
pub async fn report(
    store: &dyn Store,
    manifest: &crate::manifest::Manifest,
    id: i64,
    halt: Option<HaltCause>,
) -> Result<RolloutReport, RolloutError> {
    let record = store
        .rollout(id)
        .await?
        .ok_or_else(|| RolloutError::Nothing(format!("no rollout {id}")))?;
    let events = store.rollout_events(id).await?;
    let mut last: BTreeMap<TenantId, &RolloutEvent> = BTreeMap::new();
    for e in &events {
        if let Some(t) = &e.event.tenant {
            last.insert(t.clone(), e);
        }
    }
    let tenants = engine::waves(manifest)
        .into_iter()
        .flat_map(|(w, ts)| ts.into_iter().map(move |t| (w.clone(), t)))
        .map(|(wave, tenant)| {
            let e = last.get(&tenant);
            let outcome = match e.map(|e| e.event.kind.as_str()) {
                Some("tenant_succeeded") => "succeeded",
                Some("tenant_failed") => "failed",
                Some("tenant_started") => "in_flight",
                _ => "not_started",
            };
            TenantOutcome {
                duration_ms: e.and_then(|e| e.event.details["duration_ms"].as_u64()),
                reason: e.and_then(|e| e.event.details["reason"].as_str().map(str::to_owned)),
                tenant,
                wave,
                outcome,
            }
        })
        .collect();
    let halt = match (record.state.as_str(), halt) {
        ("halted", Some((wave, reason, tenants))) => Some(HaltSummary {
            wave,
            reason,
            tenants,
            next_steps: next_steps(id),
        }),
        ("halted", None) => {
            let e = events.iter().rev().find(|e| e.event.kind == "halted");
            Some(HaltSummary {
                wave: e.and_then(|e| e.event.wave.clone()),
                reason: record.reason.clone().unwrap_or_default(),
                tenants: e
                    .and_then(|e| serde_json::from_value(e.event.details["tenants"].clone()).ok())
                    .unwrap_or_default(),
                next_steps: next_steps(id),
            })
        }
        _ => None,
    };
    Ok(RolloutReport {
        rollout: id,
        release: record.release,
        verdict: if record.state == "halted" {
            "halted"
        } else if record.state == "succeeded" {
            "succeeded"
        } else {
            "running"
        },
        halt,
        tenants,
    })
}
