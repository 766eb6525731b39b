//! The rollout's state, folded from its persisted log, and the next step.
//! Pure: no I/O, so a crashed rollout resumes from exactly what was written.

use std::collections::{BTreeMap, BTreeSet};

use stacks::ids::{Capability, TenantId, WaveName};

use crate::manifest::{Manifest, RolloutPolicy};
use crate::store::RolloutEvent;

/// Where one tenant stands in the rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantProgress {
    /// Not started.
    Pending,
    /// Started, no outcome recorded (in flight, or the coordinator crashed).
    InFlight,
    /// Deployed as planned.
    Succeeded,
    /// Not as planned.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Everything the log says.
#[derive(Debug, Clone, Default)]
pub struct RolloutState {
    /// Per tenant; absent means pending.
    pub tenants: BTreeMap<TenantId, TenantProgress>,
    /// Waves started.
    pub waves_started: BTreeSet<String>,
    /// Waves whose gate passed: done.
    pub gates_passed: BTreeSet<String>,
    /// Halted and not resumed since.
    pub halted: bool,
}

impl RolloutState {
    /// Folds a rollout's log, oldest first.
    pub fn from_events(events: &[RolloutEvent]) -> Self {
        let mut s = Self::default();
        for e in events {
            let e = &e.event;
            match (e.kind.as_str(), &e.tenant, &e.wave) {
                ("wave_started", _, Some(w)) => {
                    s.waves_started.insert(w.clone());
                }
                ("gate_passed", _, Some(w)) => {
                    s.gates_passed.insert(w.clone());
                }
                ("tenant_started", Some(t), _) => {
                    s.tenants.insert(t.clone(), TenantProgress::InFlight);
                }
                ("tenant_succeeded", Some(t), _) => {
                    s.tenants.insert(t.clone(), TenantProgress::Succeeded);
                }
                ("tenant_failed", Some(t), _) => {
                    let reason = e.details["reason"].as_str().unwrap_or("failed").to_owned();
                    s.tenants
                        .insert(t.clone(), TenantProgress::Failed { reason });
                }
                ("halted", _, _) => s.halted = true,
                ("resumed", _, _) => {
                    s.halted = false;
                    // Failed tenants are tried again after a resume.
                    for p in s.tenants.values_mut() {
                        if matches!(p, TenantProgress::Failed { .. }) {
                            *p = TenantProgress::Pending;
                        }
                    }
                }
                _ => {}
            }
        }
        s
    }

    /// A tenant's progress.
    pub fn tenant(&self, id: &TenantId) -> TenantProgress {
        self.tenants
            .get(id)
            .cloned()
            .unwrap_or(TenantProgress::Pending)
    }

    /// The failed tenants among `tenants`, with why.
    pub fn failures<'t>(
        &self,
        tenants: impl IntoIterator<Item = &'t TenantId>,
    ) -> Vec<(TenantId, String)> {
        tenants
            .into_iter()
            .filter_map(|t| match self.tenant(t) {
                TenantProgress::Failed { reason } => Some((t.clone(), reason)),
                _ => None,
            })
            .collect()
    }
}

/// What the rollout does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Record that the wave starts.
    StartWave(WaveName),
    /// Deploy these tenants of the wave (pending, or in flight when the
    /// coordinator crashed), at most `max_concurrent` at once.
    Deploy {
        /// The wave.
        wave: WaveName,
        /// Its tenants still to deploy, in manifest order.
        tenants: Vec<TenantId>,
    },
    /// Watch the wave's health for its bake time.
    Bake(WaveName),
    /// The wave failed more tenants than it tolerates.
    Halt {
        /// The wave.
        wave: WaveName,
        /// Failed tenants and why.
        failed: Vec<(TenantId, String)>,
        /// Failures tolerated.
        allowed: usize,
    },
    /// Every wave passed.
    Done,
}

/// The tenants of each wave, in wave order and manifest order. Only tenants
/// with `dedicated_aws` are rolled out to (the others have nothing of ours
/// in their accounts); [`skipped`] names the rest.
pub fn waves(manifest: &Manifest) -> Vec<(WaveName, Vec<TenantId>)> {
    let entitled = crate::entitlement::partition(&manifest.tenants, ROLLED_OUT).entitled;
    manifest
        .rollout
        .waves
        .iter()
        .map(|w| {
            let tenants = entitled
                .iter()
                .filter(|t| &t.wave == w)
                .map(|t| t.id.clone())
                .collect();
            (w.clone(), tenants)
        })
        .collect()
}

/// The capability a tenant needs to be in a rollout.
pub const ROLLED_OUT: Capability = Capability::DedicatedAws;

/// The tenants no rollout includes: they lack [`ROLLED_OUT`].
pub fn skipped(manifest: &Manifest) -> Vec<TenantId> {
    crate::entitlement::partition(&manifest.tenants, ROLLED_OUT).skipped_ids()
}

/// The next step, from the policy, the waves and the log.
pub fn next(
    policy: &RolloutPolicy,
    waves: &[(WaveName, Vec<TenantId>)],
    state: &RolloutState,
) -> Next {
    for (wave, tenants) in waves {
        if state.gates_passed.contains(wave.as_str()) {
            continue;
        }
        if !state.waves_started.contains(wave.as_str()) {
            return Next::StartWave(wave.clone());
        }
        let failed = state.failures(tenants);
        let allowed = policy
            .for_wave(wave)
            .failure_tolerance
            .allowed(tenants.len());
        if failed.len() > allowed {
            return Next::Halt {
                wave: wave.clone(),
                failed,
                allowed,
            };
        }
        let todo: Vec<TenantId> = tenants
            .iter()
            .filter(|t| {
                matches!(
                    state.tenant(t),
                    TenantProgress::Pending | TenantProgress::InFlight
                )
            })
            .cloned()
            .collect();
        if !todo.is_empty() {
            return Next::Deploy {
                wave: wave.clone(),
                tenants: todo,
            };
        }
        return Next::Bake(wave.clone());
    }
    Next::Done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::WavePolicy;
    use crate::manifest::tolerance::FailureTolerance;
    use crate::store::NewRolloutEvent;

    fn ev(kind: &str, wave: Option<&str>, tenant: Option<&str>, reason: &str) -> RolloutEvent {
        RolloutEvent {
            id: 0,
            at: chrono::Utc::now(),
            event: NewRolloutEvent {
                kind: kind.into(),
                wave: wave.map(str::to_owned),
                tenant: tenant.map(|t| t.parse().unwrap()),
                details: serde_json::json!({ "reason": reason }),
            },
        }
    }

    fn setup(tolerance: FailureTolerance) -> (RolloutPolicy, Vec<(WaveName, Vec<TenantId>)>) {
        let w = |s: &str| s.parse::<WaveName>().unwrap();
        let t = |s: &str| s.parse::<TenantId>().unwrap();
        let policy = RolloutPolicy {
            waves: vec![w("canary"), w("general")],
            defaults: WavePolicy {
                failure_tolerance: tolerance,
                ..WavePolicy::default()
            },
            overrides: BTreeMap::new(),
        };
        let waves = vec![
            (w("canary"), vec![t("a"), t("b")]),
            (w("general"), vec![t("c")]),
        ];
        (policy, waves)
    }

    #[test]
    fn steps_through_waves_and_halts_past_the_tolerance() {
        let (policy, waves) = setup(FailureTolerance::Count(0));
        let mut log = vec![];
        let step = |log: &Vec<RolloutEvent>| next(&policy, &waves, &RolloutState::from_events(log));
        assert_eq!(step(&log), Next::StartWave("canary".parse().unwrap()));
        log.push(ev("wave_started", Some("canary"), None, ""));
        assert!(matches!(step(&log), Next::Deploy { tenants, .. } if tenants.len() == 2));
        log.push(ev("tenant_started", Some("canary"), Some("a"), ""));
        log.push(ev("tenant_succeeded", Some("canary"), Some("a"), ""));
        // b started but never finished (a crash): deployed again.
        log.push(ev("tenant_started", Some("canary"), Some("b"), ""));
        assert!(
            matches!(step(&log), Next::Deploy { tenants, .. } if tenants == vec!["b".parse().unwrap()])
        );
        log.push(ev("tenant_failed", Some("canary"), Some("b"), "boom"));
        assert!(
            matches!(step(&log), Next::Halt { failed, allowed: 0, .. } if failed[0].1 == "boom")
        );
        // A resume retries the failed tenant, never the succeeded one.
        log.push(ev("resumed", None, None, ""));
        assert!(
            matches!(step(&log), Next::Deploy { tenants, .. } if tenants == vec!["b".parse().unwrap()])
        );
        log.push(ev("tenant_succeeded", Some("canary"), Some("b"), ""));
        assert_eq!(step(&log), Next::Bake("canary".parse().unwrap()));
        log.push(ev("gate_passed", Some("canary"), None, ""));
        assert_eq!(step(&log), Next::StartWave("general".parse().unwrap()));
        log.push(ev("wave_started", Some("general"), None, ""));
        log.push(ev("tenant_succeeded", Some("general"), Some("c"), ""));
        log.push(ev("gate_passed", Some("general"), None, ""));
        assert_eq!(step(&log), Next::Done);
    }

    #[test]
    fn failures_within_the_tolerance_continue() {
        let (policy, waves) = setup(FailureTolerance::Percent(50));
        let log = vec![
            ev("wave_started", Some("canary"), None, ""),
            ev("tenant_failed", Some("canary"), Some("a"), "x"),
            ev("tenant_succeeded", Some("canary"), Some("b"), ""),
        ];
        let state = RolloutState::from_events(&log);
        assert_eq!(
            next(&policy, &waves, &state),
            Next::Bake("canary".parse().unwrap())
        );
    }
}
