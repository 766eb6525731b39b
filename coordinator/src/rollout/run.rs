//! Executing a rollout: plans once per run, then follows [`engine::next`],
//! writing each transition to the store before acting on it, deploying each
//! tenant with [`Fleet::apply`] on that tenant's slice of the plan.
//!
//! A run holds the rollout lease from start to end and renews it every
//! third of its TTL. Every transition is a fenced write ([`crate::store::FencedRollouts`]):
//! if another coordinator took the lease over, the write is refused and the
//! run stops at once with [`RolloutError::LeaseLost`], writing nothing more.
//! A run that ends (done, halted, or failed) releases the lease, so a
//! resume never waits for the lease of a coordinator that exited.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use stacks::ids::{TenantId, WaveName};

use super::HealthSource;
use super::engine::{self, Next, RolloutState, TenantProgress};
use super::gate::{self, Bake};
pub use super::lease::holder_name;
use super::report::{HaltCause, RolloutReport, report};
use super::{lease, order, reattach};
use crate::apply::ProgressFn;
use crate::deploy::{Fleet, Planned};
use crate::plan::{Plan, PlanOptions};
use crate::store::{
    LeaseFence, LeaseHeld, LeaseLost, NewAuditEntry, NewRolloutEvent, RolloutEvent, RolloutRecord,
    Store, StoreError,
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
    /// Another coordinator took the lease over; this run stopped and wrote
    /// nothing more.
    #[error(
        "{0}. This coordinator stopped without recording anything more; the other one drives the rollout now (see `coordinator rollout status`), and reattaches to the stack operations this one left in flight"
    )]
    LeaseLost(#[from] LeaseLost),
    /// A rollout is running already.
    #[error(
        "rollout {0} is running (or its coordinator crashed): resume it with `coordinator rollout resume`, or halt it with `coordinator rollout halt`"
    )]
    AlreadyRunning(i64),
    /// Nothing to resume or halt.
    #[error("{0}")]
    Nothing(String),
}

/// Drives rollouts.
pub struct Runner<'a> {
    /// Deploys tenants; its `concurrency` is only used while planning.
    pub fleet: Fleet<'a>,
    /// Heartbeat states for the health gate.
    pub health: &'a dyn HealthSource,
    /// Time between health polls during a bake.
    pub poll_interval: Duration,
    /// How long the lease lasts without renewal; renewed every third.
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

fn event(kind: &str, wave: Option<&WaveName>, tenant: Option<&TenantId>) -> NewRolloutEvent {
    NewRolloutEvent {
        kind: kind.to_owned(),
        wave: wave.map(ToString::to_string),
        tenant: tenant.cloned(),
        details: serde_json::json!({}),
    }
}

/// Asks the running rollout to halt: no new tenant is started; in-flight
/// ones finish and are recorded. An operator's request: no lease needed.
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

/// The tenants of `wave`.
fn wave_tenants<'w>(waves: &'w [(WaveName, Vec<TenantId>)], wave: &WaveName) -> &'w [TenantId] {
    waves
        .iter()
        .find(|(w, _)| w == wave)
        .map_or(&[][..], |(_, t)| t.as_slice())
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

    /// Writes a transition, if this run still holds the lease.
    async fn record(
        &self,
        fence: &LeaseFence,
        id: i64,
        e: NewRolloutEvent,
    ) -> Result<(), RolloutError> {
        let recorded = self
            .store()
            .append_rollout_event_fenced(fence, id, e)
            .await??;
        (self.on_event)(&recorded);
        Ok(())
    }

    /// Sets the rollout's state, if this run still holds the lease.
    async fn set_state(
        &self,
        fence: &LeaseFence,
        id: i64,
        state: &str,
        reason: Option<&str>,
    ) -> Result<(), RolloutError> {
        Ok(self
            .store()
            .set_rollout_state_fenced(fence, id, state, reason)
            .await??)
    }

    async fn take_lease(&self, rollout: i64) -> Result<LeaseFence, RolloutError> {
        Ok(self
            .store()
            .take_rollout_lease(&self.holder, rollout, self.lease_ttl)
            .await??)
    }

    /// Runs `work` under the lease, then releases it whatever the result.
    async fn holding(
        &self,
        fence: &LeaseFence,
        work: impl Future<Output = Result<RolloutReport, RolloutError>>,
    ) -> Result<RolloutReport, RolloutError> {
        let result = work.await;
        if let Err(e) = self.store().release_rollout_lease_fenced(fence).await {
            tracing::warn!(error = %e, "cannot release the rollout lease; it expires by itself");
        }
        result
    }

    /// Starts a rollout of the manifest's release.
    pub async fn start(&self) -> Result<RolloutReport, RolloutError> {
        let fence = self.take_lease(0).await?;
        self.holding(&fence, async {
            if let Some(latest) = self.store().latest_rollout().await? {
                match latest.state.as_str() {
                    "running" => return Err(RolloutError::AlreadyRunning(latest.id)),
                    "halted" => {
                        self.set_state(&fence, latest.id, "superseded", latest.reason.as_deref())
                            .await?;
                    }
                    _ => {}
                }
            }
            let release = self.fleet.manifest.release.to_string();
            let r = self.store().create_rollout(&release, self.actor()).await?;
            self.store()
                .renew_rollout_lease(&fence, r.id, self.lease_ttl)
                .await??;
            self.audit(
                "rollout.start",
                None,
                serde_json::json!({ "rollout": r.id, "release": release, "policy": self.fleet.manifest.rollout }),
            )
            .await?;
            self.drive(&fence, r.id).await
        })
        .await
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
        let fence = self.take_lease(r.id).await?;
        self.holding(&fence, async {
            self.set_state(&fence, r.id, "running", None).await?;
            self.record(&fence, r.id, event("resumed", None, None))
                .await?;
            self.audit(
                "rollout.resume",
                None,
                serde_json::json!({ "rollout": r.id, "was": r.state }),
            )
            .await?;
            self.drive(&fence, r.id).await
        })
        .await
    }

    async fn halted_by_request(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .store()
            .rollout(id)
            .await?
            .is_some_and(|r| r.state == "halted"))
    }

    /// Follows the engine to the end, renewing the lease meanwhile; stops
    /// at once if the lease is lost.
    async fn drive(&self, fence: &LeaseFence, id: i64) -> Result<RolloutReport, RolloutError> {
        tokio::select! {
            result = self.steps(fence, id) => result,
            lost = lease::keep(self.store(), fence, id, self.lease_ttl) => Err(lost.into()),
        }
    }

    async fn steps(&self, fence: &LeaseFence, id: i64) -> Result<RolloutReport, RolloutError> {
        let manifest = self.fleet.manifest;
        let waves = engine::waves(manifest);
        let mut planned: Option<(Planned, Plan)> = None;
        loop {
            if self.halted_by_request(id).await? {
                return self.report(id, None).await;
            }
            let state = RolloutState::from_events(&self.store().rollout_events(id).await?);
            match engine::next(&manifest.rollout, &waves, &state) {
                Next::StartWave(wave) => {
                    self.record(fence, id, event("wave_started", Some(&wave), None))
                        .await?;
                }
                Next::Deploy { wave, tenants } => {
                    if planned.is_none() {
                        self.reattach(fence, id, &state).await?;
                        let p = self
                            .fleet
                            .observe_and_plan(None, PlanOptions::default())
                            .await
                            .map_err(RolloutError::Plan)?;
                        let plan = self.fleet.record(p.draft.clone()).await?;
                        planned = Some((p, plan));
                    }
                    let (p, plan) = planned.as_ref().expect("planned above");
                    let expected =
                        crate::history::fleet(self.store(), self.fleet.manifest.tenants.len())
                            .await?;
                    let tenants = order::longest_first(&tenants, &expected);
                    let all = wave_tenants(&waves, &wave);
                    let already_failed = state.failures(all).len();
                    let deploy = WaveDeploy {
                        id,
                        wave: &wave,
                        size: all.len(),
                        already_failed,
                        planned: p,
                        plan,
                    };
                    self.deploy_wave(fence, &deploy, &tenants).await?;
                }
                Next::Bake(wave) => {
                    let policy = manifest.rollout.for_wave(&wave);
                    let gated: Vec<TenantId> = wave_tenants(&waves, &wave)
                        .iter()
                        .filter(|t| {
                            state.tenant(t) == TenantProgress::Succeeded
                                && manifest
                                    .tenant(t)
                                    .is_some_and(|t| !t.deployed_stacks().is_empty())
                        })
                        .cloned()
                        .collect();
                    let bake = gate::bake(
                        self.store(),
                        self.health,
                        self.poll_interval,
                        id,
                        &wave,
                        policy,
                        &gated,
                    );
                    match bake.await? {
                        Bake::Passed => {
                            self.record(fence, id, event("gate_passed", Some(&wave), None))
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
                                fence,
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
                            return self.halt_self(fence, id, &wave, reason, unhealthy).await;
                        }
                    }
                }
                Next::Halt {
                    wave,
                    failed,
                    allowed,
                } => {
                    let size = wave_tenants(&waves, &wave).len();
                    let reason = format!(
                        "{} of {size} tenant(s) failed, more than the {allowed} tolerated",
                        failed.len()
                    );
                    return self.halt_self(fence, id, &wave, reason, failed).await;
                }
                Next::Done => {
                    self.record(fence, id, event("completed", None, None))
                        .await?;
                    self.set_state(fence, id, "succeeded", None).await?;
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

    /// Settles the deployment rows a stopped coordinator left open for the
    /// tenants it had in flight, before planning again.
    async fn reattach(
        &self,
        fence: &LeaseFence,
        id: i64,
        state: &RolloutState,
    ) -> Result<(), RolloutError> {
        let in_flight: Vec<TenantId> = state
            .tenants
            .iter()
            .filter(|(_, p)| **p == TenantProgress::InFlight)
            .map(|(t, _)| t.clone())
            .collect();
        if in_flight.is_empty() {
            return Ok(());
        }
        let concurrency = self.fleet.concurrency;
        for r in reattach::reattach(&self.fleet, &in_flight, concurrency).await? {
            let wave = self
                .fleet
                .manifest
                .tenant(&r.tenant)
                .map(|t| t.wave.clone());
            let details = serde_json::to_value(&r).unwrap_or_default();
            self.record(
                fence,
                id,
                NewRolloutEvent {
                    details,
                    ..event("tenant_reattached", wave.as_ref(), Some(&r.tenant))
                },
            )
            .await?;
        }
        Ok(())
    }

    async fn halt_self(
        &self,
        fence: &LeaseFence,
        id: i64,
        wave: &WaveName,
        reason: String,
        tenants: Vec<(TenantId, String)>,
    ) -> Result<RolloutReport, RolloutError> {
        self.record(
            fence,
            id,
            NewRolloutEvent {
                details: serde_json::json!({ "reason": reason, "tenants": tenants }),
                ..event("halted", Some(wave), None)
            },
        )
        .await?;
        self.set_state(fence, id, "halted", Some(&reason)).await?;
        self.audit(
            "rollout.halted",
            None,
            serde_json::json!({ "rollout": id, "wave": wave, "reason": reason, "tenants": tenants }),
        )
        .await?;
        self.report(id, Some((Some(wave.to_string()), reason, tenants)))
            .await
    }

    /// Deploys `tenants` of a wave, at most the wave's `max_concurrent` at
    /// once. Past the tolerance or after a halt, nothing new starts and the
    /// tenants in flight finish; a store failure or a lost lease stops the
    /// wave at once.
    async fn deploy_wave(
        &self,
        fence: &LeaseFence,
        w: &WaveDeploy<'_>,
        tenants: &[TenantId],
    ) -> Result<(), RolloutError> {
        let policy = self.fleet.manifest.rollout.for_wave(w.wave);
        let allowed = policy.failure_tolerance.allowed(w.size);
        let failures = AtomicUsize::new(w.already_failed);
        let failures = &failures;
        futures::stream::iter(tenants)
            .map(|tenant| async move {
                // Checked as each tenant is about to start.
                if failures.load(Ordering::SeqCst) > allowed || self.halted_by_request(w.id).await?
                {
                    return Ok(());
                }
                let ok = self.deploy_tenant(fence, w, tenant).await?;
                if !ok {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                Ok::<(), RolloutError>(())
            })
            .buffer_unordered(policy.max_concurrent.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Deploys one tenant and records its outcome; returns whether it
    /// succeeded.
    async fn deploy_tenant(
        &self,
        fence: &LeaseFence,
        w: &WaveDeploy<'_>,
        tenant: &TenantId,
    ) -> Result<bool, RolloutError> {
        let (id, wave) = (w.id, w.wave);
        self.record(fence, id, event("tenant_started", Some(wave), Some(tenant)))
            .await?;
        let started = std::time::Instant::now();
        let slice = Plan {
            generation: w.plan.generation,
            parent: w.plan.parent,
            release: w.plan.release.clone(),
            tenants: w
                .plan
                .tenants
                .iter()
                .filter(|t| &t.tenant == tenant)
                .cloned()
                .collect(),
        };
        let report = self.fleet.apply(&slice, w.planned, self.progress).await;
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
        let kind = if ok {
            "tenant_succeeded"
        } else {
            "tenant_failed"
        };
        self.record(
            fence,
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
        Ok(ok)
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

/// One wave's deployment: what every tenant of it shares.
struct WaveDeploy<'w> {
    id: i64,
    wave: &'w WaveName,
    /// Tenants in the wave.
    size: usize,
    /// Failures recorded before this run.
    already_failed: usize,
    planned: &'w Planned,
    plan: &'w Plan,
}
