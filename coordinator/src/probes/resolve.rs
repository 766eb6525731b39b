//! Fail-closed resolution of a tenant's effective storage and LLM
//! configuration: what the document workers must use, right now.
//!
//! A vendor-hosted dependency resolves to hosted. A customer-managed one
//! resolves to the customer's only while its probe passed, for *this*
//! configuration, recently enough. Otherwise it is refused with the probe's
//! error and remedy, and never silently replaced by the vendor's hosted
//! bucket or keys; the one exception is a tenant whose hosted fallback an
//! operator explicitly enabled (an audited act), and then the answer says
//! so.

use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;

use super::{ProbeError, ProbeName, ProbeStatus};
use crate::privacy::ManagedBy;
use crate::store::privacy::PrivacyRecord;
use crate::store::probes::StoredProbe;

/// How old a pass may be and still validate a dependency: three rounds of
/// the default probe schedule (`coordinator serve --probe-interval 5m`).
pub const MAX_VALIDATION_AGE: Duration = Duration::from_secs(15 * 60);

/// What one dependency resolves to.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "use", rename_all = "snake_case")]
pub enum Decision {
    /// The vendor's hosted default (the tenant's configuration says so).
    Hosted,
    /// The customer's own, validated.
    Customer {
        /// When its probe last passed.
        validated_at: DateTime<Utc>,
    },
    /// The vendor's hosted default *instead of* the customer's, because the
    /// customer's failed and hosted fallback is enabled for this tenant.
    HostedFallback {
        /// Why fallback was enabled (from the audited change).
        reason: Option<String>,
        /// Why the customer's dependency is not used.
        cause: ProbeError,
    },
    /// Nothing may be used: the customer's dependency is not validated and
    /// fallback is disabled. Processing must stop with this error.
    Refused {
        /// The probe's error, with its remedy.
        error: ProbeError,
    },
}

impl Decision {
    /// Whether work may go ahead.
    pub fn usable(&self) -> bool {
        !matches!(self, Decision::Refused { .. })
    }
}

/// A tenant's effective configuration.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Effective {
    /// Tenant id.
    pub tenant: String,
    /// The privacy configuration version resolved.
    pub config_version: u64,
    /// Document storage.
    pub storage: Decision,
    /// LLM keys.
    pub llm: Decision,
}

impl Effective {
    /// The refusals, by dependency; empty when everything may be used.
    pub fn refusals(&self) -> Vec<(&'static str, &ProbeError)> {
        [("storage", &self.storage), ("llm", &self.llm)]
            .into_iter()
            .filter_map(|(name, d)| match d {
                Decision::Refused { error } => Some((name, error)),
                _ => None,
            })
            .collect()
    }
}

/// Resolves `record` (the tenant's current configuration) against its
/// latest probe outcomes. A pass counts only if it checked this
/// configuration (same digest) and is younger than `max_age`.
pub fn resolve(
    record: &PrivacyRecord,
    probes: &[StoredProbe],
    max_age: Duration,
    now: DateTime<Utc>,
) -> Effective {
    let decide = |probe: ProbeName, managed: ManagedBy| -> Decision {
        if managed == ManagedBy::Vendor {
            return Decision::Hosted;
        }
        let stored = probes.iter().find(|p| p.outcome.probe == probe);
        let error = match stored {
            None => ProbeError::new(
                &format!("{probe}.not_validated"),
                format!("the tenant's own {probe} has not been checked yet"),
                format!(
                    "run `coordinator check --tenant {} --probe {probe}` (or wait for the next scheduled check) and fix what it reports",
                    record.tenant
                ),
            ),
            Some(p) if p.config_digest != record.digest => ProbeError::new(
                &format!("{probe}.not_validated"),
                format!(
                    "the {probe} configuration changed (version {}) since it was last checked",
                    record.version
                ),
                format!(
                    "run `coordinator check --tenant {} --probe {probe}` to validate the new configuration",
                    record.tenant
                ),
            ),
            Some(p) if p.outcome.status == ProbeStatus::Passing => {
                let age = (now - p.outcome.at).to_std().unwrap_or_default();
                if age <= max_age {
                    return Decision::Customer {
                        validated_at: p.outcome.at,
                    };
                }
                ProbeError::new(
                    &format!("{probe}.stale"),
                    format!(
                        "the tenant's own {probe} was last validated {}s ago, longer than the {}s allowed",
                        age.as_secs(),
                        max_age.as_secs()
                    ),
                    "check that `coordinator serve` is running its probes (see its logs), or run `coordinator check`",
                )
            }
            Some(p) => p.outcome.error.clone().unwrap_or_else(|| {
                ProbeError::new(
                    &format!("{probe}.failing"),
                    format!("the tenant's own {probe} check is failing"),
                    "run `coordinator check` for details",
                )
            }),
        };
        if record.hosted_fallback {
            Decision::HostedFallback {
                reason: record.fallback_reason.clone(),
                cause: error,
            }
        } else {
            Decision::Refused { error }
        }
    };
    Effective {
        tenant: record.tenant.to_string(),
        config_version: record.version,
        storage: decide(ProbeName::Storage, record.config.storage.managed_by()),
        llm: decide(ProbeName::Llm, record.config.llm.managed_by()),
    }
}

#[cfg(test)]
mod tests;
