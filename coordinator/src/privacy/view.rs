//! What the admin surface shows of a tenant's privacy configuration: per
//! dependency its mode, who manages it (vendor-hosted or customer, never
//! ambiguous), a sentence for people, and its check status; hosted
//! fallback; who changed the configuration and when. Shared by
//! `coordinator privacy show --output json` and the API.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use stacks::ids::Capability;

use super::config::{LlmMode, ManagedBy, StorageMode};
use crate::manifest::Tenant;
use crate::probes::{ProbeName, ProbeOutcome};
use crate::store::privacy::PrivacyRecord;
use crate::store::probes::StoredProbe;

/// A customer-managed dependency's last check, from its probe. Until the
/// probe has checked the current configuration, `state` is `not_checked`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct CheckView {
    /// `not_checked`, `passing`, `failing`, or `not_applicable` (hosted).
    pub state: String,
    /// When the dependency last passed its check.
    pub last_validated: Option<DateTime<Utc>>,
    /// The last failure's stable code, e.g. `storage.access_denied`.
    pub last_error_code: Option<String>,
    /// The last failure, in words.
    pub last_error: Option<String>,
    /// What to do about it.
    pub remedy: Option<String>,
}

impl CheckView {
    /// The check of a dependency from its probe's latest outcome; one that
    /// checked another configuration version counts as not checked.
    pub fn from_probe(managed_by: ManagedBy, digest: &str, stored: Option<&StoredProbe>) -> Self {
        let mut view = Self::initial(managed_by);
        let Some(s) = stored else { return view };
        if managed_by == ManagedBy::Vendor {
            return view;
        }
        view.last_validated = s.last_passed_at;
        if s.config_digest != digest {
            return view;
        }
        view.state = s.outcome.status.as_str().to_owned();
        if let Some(e) = &s.outcome.error {
            view.last_error_code = Some(e.code.clone());
            view.last_error = Some(e.message.clone());
            view.remedy = Some(e.remedy.clone());
        }
        view
    }

    /// The status of a dependency nothing has checked yet.
    pub fn initial(managed_by: ManagedBy) -> Self {
        let state = match managed_by {
            ManagedBy::Vendor => "not_applicable",
            ManagedBy::Customer => "not_checked",
        };
        Self {
            state: state.into(),
            last_validated: None,
            last_error_code: None,
            last_error: None,
            remedy: None,
        }
    }
}

/// One dependency (storage or LLM).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DependencyView<C> {
    /// The mode, e.g. `customer_s3`.
    pub mode: &'static str,
    /// `vendor` (hosted default) or `customer`.
    pub managed_by: ManagedBy,
    /// One sentence for people.
    pub summary: String,
    /// The configuration (references only: bucket and secret names).
    pub config: C,
    /// The last check.
    pub check: CheckView,
}

/// Hosted fallback as shown.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FallbackView {
    /// Whether the tenant falls back to hosted storage/keys when its own
    /// fail. `false` means fail closed.
    pub enabled: bool,
    /// Why it was enabled.
    pub reason: Option<String>,
}

/// A tenant's privacy configuration as the admin surface shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PrivacyView {
    /// Tenant id.
    pub tenant: String,
    /// Its entitlements (from deploy.toml).
    pub capabilities: Vec<Capability>,
    /// Configuration version; 0 = never configured (hosted defaults).
    pub version: u64,
    /// SHA-256 of the configuration.
    pub digest: String,
    /// Document storage.
    pub storage: DependencyView<StorageMode>,
    /// LLM keys.
    pub llm: DependencyView<LlmMode>,
    /// Hosted fallback.
    pub hosted_fallback: FallbackView,
    /// Who last changed the configuration (absent at version 0).
    pub changed_by: Option<String>,
    /// When.
    pub changed_at: Option<DateTime<Utc>>,
    /// Every probe's latest outcome for this tenant (storage, LLM,
    /// heartbeat, queues): one list for the admin.
    pub probes: Vec<ProbeOutcome>,
}

impl PrivacyView {
    /// The view of `record` with the tenant's stored probe outcomes.
    pub fn new(tenant: &Tenant, r: &PrivacyRecord, probes: &[StoredProbe]) -> Self {
        let storage = &r.config.storage;
        let llm = &r.config.llm;
        let probe = |name| probes.iter().find(|p| p.outcome.probe == name);
        Self {
            tenant: tenant.id.to_string(),
            capabilities: tenant.capabilities.iter().copied().collect(),
            version: r.version,
            digest: r.digest.clone(),
            storage: DependencyView {
                mode: storage.name(),
                managed_by: storage.managed_by(),
                summary: storage.summary(),
                config: storage.clone(),
                check: CheckView::from_probe(
                    storage.managed_by(),
                    &r.digest,
                    probe(ProbeName::Storage),
                ),
            },
            llm: DependencyView {
                mode: llm.name(),
                managed_by: llm.managed_by(),
                summary: llm.summary(),
                config: llm.clone(),
                check: CheckView::from_probe(llm.managed_by(), &r.digest, probe(ProbeName::Llm)),
            },
            hosted_fallback: FallbackView {
                enabled: r.hosted_fallback,
                reason: r.fallback_reason.clone(),
            },
            changed_by: (r.version > 0).then(|| r.actor.clone()),
            changed_at: (r.version > 0).then_some(r.at),
            probes: probes.iter().map(|p| p.outcome.clone()).collect(),
        }
    }
}
