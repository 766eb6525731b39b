//! The validated manifest: defaults applied, paths resolved, nothing left to
//! check. The rest of the coordinator only ever sees these types.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use stacks::StackKind;
use stacks::builtin::bootstrap::DEPLOY_ROLE_NAME;
use stacks::builtin::storage::RetentionDays;
use stacks::ids::{
    AccountId, Capability, ExternalId, Region, ReleaseVersion, RoleArn, TenantId, WaveName,
};

use super::duration::HumanDuration;
use super::raw::RawManifest;
use super::secrets::SecretsSettings;
use super::tolerance::FailureTolerance;

/// Name of the coordinator's own role when `principal_arn` is not given.
pub const DEFAULT_COORDINATOR_ROLE: &str = "docproc-coordinator";
/// Document retention when a tenant does not set `retention_days`.
pub const DEFAULT_RETENTION_DAYS: u16 = 30;

/// A fleet manifest that passed every check.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// The manifest file.
    pub path: PathBuf,
    /// The vendor side.
    pub coordinator: CoordinatorSettings,
    /// The release to deploy.
    pub release: ReleaseVersion,
    /// Rollout policy.
    pub rollout: RolloutPolicy,
    /// Heartbeat settings.
    pub heartbeat: HeartbeatSettings,
    /// Status service settings.
    pub api: ApiSettings,
    /// Where each tenant's secret values live.
    pub secrets: SecretsSettings,
    /// Tenants, in manifest order.
    pub tenants: Vec<Tenant>,
}

/// `[coordinator]`, resolved.
#[derive(Debug, Clone, Serialize)]
pub struct CoordinatorSettings {
    /// The vendor account.
    pub account_id: AccountId,
    /// Home region.
    pub region: Region,
    /// The state file, resolved against the manifest's directory.
    pub state_path: PathBuf,
    /// The principal tenants' deploy roles trust.
    pub principal_arn: RoleArn,
}

/// `[heartbeat]`, with defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HeartbeatSettings {
    /// Time between pings.
    pub interval: HumanDuration,
    /// Missed intervals before Unreachable.
    pub unreachable_after: u32,
    /// Job backlog above which a tenant is Degraded.
    pub degraded_job_backlog: u64,
    /// Dead letters above which a tenant is Degraded.
    pub degraded_dead_letters: u64,
    /// Tenants pinged at once.
    pub max_concurrent: usize,
}

impl Default for HeartbeatSettings {
    fn default() -> Self {
        Self {
            interval: HumanDuration::new(std::time::Duration::from_secs(30)),
            unreachable_after: 3,
            degraded_job_backlog: 1000,
            degraded_dead_letters: 0,
            max_concurrent: 256,
        }
    }
}

impl HeartbeatSettings {
    fn from_raw(h: super::raw::RawHeartbeat) -> Self {
        let d = Self::default();
        Self {
            interval: h.interval.unwrap_or(d.interval),
            unreachable_after: h.unreachable_after.unwrap_or(d.unreachable_after),
            degraded_job_backlog: h.degraded_job_backlog.unwrap_or(d.degraded_job_backlog),
            degraded_dead_letters: h.degraded_dead_letters.unwrap_or(d.degraded_dead_letters),
            max_concurrent: h.max_concurrent.unwrap_or(d.max_concurrent),
        }
    }
}

/// `[api]`, resolved.
#[derive(Debug, Clone, Serialize)]
pub struct ApiSettings {
    /// Listen address.
    pub listen: String,
    /// Tokens by hash.
    #[serde(skip)]
    pub tokens: Vec<super::raw::RawToken>,
}

/// `[rollout]`, resolved: every wave's policy with overrides applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutPolicy {
    /// Waves in order.
    pub waves: Vec<WaveName>,
    /// The `[rollout]` values, with defaults applied.
    pub defaults: WavePolicy,
    /// Waves with `[rollout.overrides.<wave>]`, fully resolved.
    pub overrides: BTreeMap<WaveName, WavePolicy>,
}

impl RolloutPolicy {
    /// The policy of `wave`: its override, or the `[rollout]` values.
    pub fn for_wave(&self, wave: &WaveName) -> WavePolicy {
        self.overrides.get(wave).copied().unwrap_or(self.defaults)
    }
}

/// The rollout policy of one wave. See [`crate::rollout`] for what each
/// value means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WavePolicy {
    /// Tenants deployed at once.
    pub max_concurrent: usize,
    /// Failed tenants tolerated.
    pub failure_tolerance: FailureTolerance,
    /// How long the wave must stay healthy.
    pub bake_time: HumanDuration,
    /// Whether an unhealthy tenant during the bake halts the rollout.
    pub health_gate: bool,
}

impl Default for WavePolicy {
    fn default() -> Self {
        Self {
            max_concurrent: 8,
            failure_tolerance: FailureTolerance::Count(0),
            bake_time: HumanDuration::new(std::time::Duration::from_secs(600)),
            health_gate: true,
        }
    }
}

impl RolloutPolicy {
    fn from_raw(r: super::raw::RawRollout) -> Self {
        let base = WavePolicy::default();
        let defaults = WavePolicy {
            max_concurrent: r.max_concurrent.unwrap_or(base.max_concurrent),
            failure_tolerance: r.failure_tolerance.unwrap_or(base.failure_tolerance),
            bake_time: r.bake_time.unwrap_or(base.bake_time),
            health_gate: r.health_gate.unwrap_or(base.health_gate),
        };
        let overrides = r
            .overrides
            .into_iter()
            .filter_map(|(wave, o)| {
                // The rules reject an override of an unknown or malformed
                // wave before the model is built.
                let wave: WaveName = wave.parse().ok()?;
                Some((
                    wave,
                    WavePolicy {
                        max_concurrent: o.max_concurrent.unwrap_or(defaults.max_concurrent),
                        failure_tolerance: o
                            .failure_tolerance
                            .unwrap_or(defaults.failure_tolerance),
                        bake_time: o.bake_time.unwrap_or(defaults.bake_time),
                        health_gate: o.health_gate.unwrap_or(defaults.health_gate),
                    },
                ))
            })
            .collect();
        Self {
            waves: r.waves,
            defaults,
            overrides,
        }
    }
}

/// One tenant, resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    /// Id.
    pub id: TenantId,
    /// The customer's account.
    pub account_id: AccountId,
    /// Region of the tenant's stacks.
    pub region: Region,
    /// The deploy role's ExternalId. Serialized only as a digest.
    #[serde(skip)]
    pub external_id: ExternalId,
    /// Rollout wave.
    pub wave: WaveName,
    /// Entitlements.
    pub capabilities: BTreeSet<Capability>,
    /// The role the coordinator assumes.
    pub role_arn: RoleArn,
    /// Document retention.
    pub retention_days: RetentionDays,
}

impl Tenant {
    /// Whether the tenant is entitled to `capability`.
    pub fn has(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }

    /// The stacks the vendor deploys into this tenant's account, in order.
    /// `bootstrap` is the customer's own and never among them; a tenant
    /// without `dedicated_aws` stays on the hosted default and gets none.
    pub fn deployed_stacks(&self) -> &'static [StackKind] {
        if self.has(Capability::DedicatedAws) {
            &[StackKind::Storage, StackKind::Worker]
        } else {
            &[]
        }
    }
}

impl Manifest {
    /// Builds the validated model from a raw manifest that passed all rules.
    pub(super) fn from_raw(path: &Path, raw: RawManifest) -> Self {
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let coordinator_account = raw.coordinator.account_id.clone();
        let principal_arn = raw.coordinator.principal_arn.unwrap_or_else(|| {
            RoleArn::for_role(&coordinator_account, DEFAULT_COORDINATOR_ROLE)
                .expect("a valid account makes a valid ARN")
        });
        let state_path = base.join(&raw.coordinator.state);
        let secrets = SecretsSettings::from_raw(
            raw.secrets,
            raw.tenants.iter().map(|t| (&t.id, t.secrets.as_ref())),
            &base,
            &state_path,
        );
        let tenants = raw
            .tenants
            .into_iter()
            .map(|t| Tenant {
                role_arn: t.role_arn.unwrap_or_else(|| {
                    RoleArn::for_role(&t.account_id, DEPLOY_ROLE_NAME)
                        .expect("a valid account makes a valid ARN")
                }),
                retention_days: t.retention_days.unwrap_or_else(|| {
                    RetentionDays::new(DEFAULT_RETENTION_DAYS).expect("default is in range")
                }),
                id: t.id,
                account_id: t.account_id,
                region: t.region,
                external_id: t.external_id,
                wave: t.wave,
                capabilities: t.capabilities.into_iter().collect(),
            })
            .collect();
        Manifest {
            path: path.to_owned(),
            coordinator: CoordinatorSettings {
                account_id: coordinator_account,
                region: raw.coordinator.region,
                state_path,
                principal_arn,
            },
            release: raw.release.version,
            rollout: RolloutPolicy::from_raw(raw.rollout),
            heartbeat: HeartbeatSettings::from_raw(raw.heartbeat),
            api: ApiSettings {
                listen: raw
                    .api
                    .listen
                    .unwrap_or_else(|| "127.0.0.1:8080".to_owned()),
                tokens: raw.api.tokens,
            },
            secrets,
            tenants,
        }
    }

    /// The tenant with `id`, if any.
    pub fn tenant(&self, id: &TenantId) -> Option<&Tenant> {
        self.tenants.iter().find(|t| &t.id == id)
    }
}

/// A tenant `id` with these capabilities in account 222222222222,
/// eu-west-1, for unit tests across the crate.
#[cfg(test)]
pub(crate) fn test_tenant(id: &str, caps: &[Capability]) -> Tenant {
    Tenant {
        id: id.parse().unwrap(),
        account_id: "222222222222".parse().unwrap(),
        region: Region::EuWest1,
        external_id: "x".repeat(40).parse().unwrap(),
        wave: "canary".parse().unwrap(),
        capabilities: caps.iter().copied().collect(),
        role_arn: "arn:aws:iam::222222222222:role/docproc-coordinator-deploy"
            .parse()
            .unwrap(),
        retention_days: RetentionDays::new(7).unwrap(),
    }
}
