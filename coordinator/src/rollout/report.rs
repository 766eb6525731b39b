//! A rollout's report, from its persisted log: each tenant's outcome,
//! duration and reason, the verdict, and why it halted with what to do
//! next. Reads only; `rollout status` and the end of every run use it.

use std::collections::BTreeMap;

use serde::Serialize;
use stacks::ids::{TenantId, WaveName};

use super::engine;
use super::run::RolloutError;
use crate::store::{RolloutEvent, Store};

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

/// Why a run halted: the wave, the reason, the tenants and why.
pub type HaltCause = (Option<String>, String, Vec<(TenantId, String)>);

pub(crate) fn next_steps(id: i64) -> String {
    format!(
        "fix the cause, then resume with `coordinator rollout resume` (rollout {id}); or roll back: set [release] to the previous version and run `coordinator rollout start` with that release's coordinator"
    )
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
        let progress = matches!(
            e.event.kind.as_str(),
            "tenant_started" | "tenant_succeeded" | "tenant_failed"
        );
        if let Some(t) = e.event.tenant.as_ref().filter(|_| progress) {
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
