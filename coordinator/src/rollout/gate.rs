//! The bake after a wave, and its health gate: watch the heartbeat states
//! of the wave's freshly deployed tenants for the bake time. Reads only
//! (the heartbeat states and whether an operator halted the rollout); the
//! runner records what it decides.

use std::collections::BTreeMap;
use std::time::Duration;

use stacks::ids::{TenantId, WaveName};

use super::HealthSource;
use crate::heartbeat::detector::Health;
use crate::manifest::WavePolicy;
use crate::store::{Store, StoreError};

/// How a bake ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bake {
    /// Every gated tenant stayed acceptable and was Healthy at the end.
    Passed,
    /// These tenants were not healthy, and why.
    Failed(Vec<(TenantId, String)>),
    /// An operator halted the rollout meanwhile.
    HaltRequested,
}

/// Bakes `wave` under `policy`, polling `health` every `poll_interval`, for
/// the `gated` tenants (succeeded, with dedicated stacks). Unknown (not
/// pinged yet) and NotDeployed (the monitor has not seen the new worker
/// stack yet) are tolerated until the end of the bake; any other state
/// fails the gate at once; at the end every gated tenant must be Healthy.
pub async fn bake(
    store: &dyn Store,
    health: &dyn HealthSource,
    poll_interval: Duration,
    rollout: i64,
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
        let halted = store
            .rollout(rollout)
            .await?
            .is_some_and(|r| r.state == "halted");
        if halted {
            return Ok(Bake::HaltRequested);
        }
        let now = tokio::time::Instant::now();
        let last = now >= deadline;
        if policy.health_gate {
            let states: BTreeMap<TenantId, Health> = health.states().into_iter().collect();
            let unhealthy: Vec<(TenantId, String)> = gated
                .iter()
                .filter_map(|t| {
                    let state = states.get(t).copied().unwrap_or(Health::Unknown);
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
        tokio::time::sleep(poll_interval.min(deadline - now)).await;
    }
}
