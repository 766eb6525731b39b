//! What the status API returns, as types: each derives `JsonSchema`, so the
//! OpenAPI document is generated from the same types the handlers serialize.
//! Nothing secret is in any of them: no ExternalId, no credential, no secret
//! value (secret *names* and digests only).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;

use crate::heartbeat::detector::{Health, TenantHealth};
use crate::manifest::{Manifest, Tenant};
use crate::store::{AuditEntry, DeploymentRecord, HeartbeatChange, StackState, StoredOutputs};

/// The fleet at a glance.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FleetSummary {
    /// The release the manifest asks for.
    pub desired_release: String,
    /// Tenants in the manifest.
    pub tenants: usize,
    /// Tenants whose workers are heartbeated (dedicated AWS).
    pub monitored: usize,
    /// Monitored tenants per heartbeat state.
    pub by_state: BTreeMap<String, usize>,
    /// Tenants per wave.
    pub by_wave: BTreeMap<String, usize>,
    /// When this answer was made.
    pub generated_at: DateTime<Utc>,
}

/// One stack of a tenant.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StackView {
    /// `storage` or `worker`.
    pub stack: String,
    /// CloudFormation status when last seen.
    pub status: Option<String>,
    /// Release it runs.
    pub release: Option<String>,
    /// Outcome of the last deployment.
    pub last_outcome: Option<String>,
    /// Error of the last deployment.
    pub last_error: Option<String>,
    /// When this was recorded.
    pub updated_at: Option<DateTime<Utc>>,
}

/// A tenant's heartbeat.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct HeartbeatView {
    /// `healthy`, `degraded`, `late`, `unreachable`, `access_denied`, `not_deployed`, `unknown`.
    pub state: String,
    /// Why, in words.
    pub reason: String,
    /// Since when.
    pub since: DateTime<Utc>,
    /// When the last pong arrived.
    pub last_seen: Option<DateTime<Utc>>,
    /// Its round-trip time.
    pub last_rtt_ms: Option<u64>,
    /// Rounds in a row without the expected pong.
    pub consecutive_misses: u32,
    /// The newest error.
    pub last_error: Option<String>,
    /// Jobs waiting.
    pub job_queue_depth: Option<u64>,
    /// Dead-lettered jobs.
    pub dead_letter_depth: Option<u64>,
    /// The worker that answered last.
    pub worker_id: Option<String>,
    /// Its agent version.
    pub agent_version: Option<String>,
}

impl From<&TenantHealth> for HeartbeatView {
    fn from(h: &TenantHealth) -> Self {
        Self {
            state: h.state.as_str().to_owned(),
            reason: h.reason.clone(),
            since: h.since,
            last_seen: h.last_pong_at,
            last_rtt_ms: h.last_rtt_ms,
            consecutive_misses: h.consecutive_misses,
            last_error: h.last_error.clone(),
            job_queue_depth: h.job_queue_depth,
            dead_letter_depth: h.dead_letter_depth,
            worker_id: h.worker_id.clone(),
            agent_version: h.agent_version.clone(),
        }
    }
}

/// One tenant.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TenantView {
    /// Id.
    pub id: String,
    /// The customer's account.
    pub account_id: String,
    /// Region.
    pub region: String,
    /// Rollout wave.
    pub wave: String,
    /// Entitlements.
    pub capabilities: Vec<String>,
    /// On the hosted default (no stacks in its account).
    pub hosted: bool,
    /// Release deployed, when all its stacks agree.
    pub release: Option<String>,
    /// Its stacks.
    pub stacks: Vec<StackView>,
    /// Its heartbeat (absent for hosted tenants).
    pub heartbeat: Option<HeartbeatView>,
    /// The most relevant error, in words.
    pub last_error: Option<String>,
}

/// A deployment of one stack.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DeploymentView {
    /// Plan generation.
    pub generation: u64,
    /// Stack.
    pub stack: String,
    /// Planned action.
    pub action: String,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: Option<DateTime<Utc>>,
    /// Outcome.
    pub outcome: Option<String>,
    /// Final status.
    pub status: Option<String>,
    /// Why.
    pub reason: Option<String>,
}

impl From<&DeploymentRecord> for DeploymentView {
    fn from(d: &DeploymentRecord) -> Self {
        Self {
            generation: d.generation,
            stack: d.stack.to_string(),
            action: d.action.clone(),
            started_at: d.started_at,
            finished_at: d.finished_at,
            outcome: d.outcome.clone(),
            status: d.status.clone(),
            reason: d.reason.clone(),
        }
    }
}

/// A heartbeat state change.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct HeartbeatChangeView {
    /// When.
    pub at: DateTime<Utc>,
    /// New state.
    pub state: String,
    /// Why.
    pub reason: String,
}

impl From<&HeartbeatChange> for HeartbeatChangeView {
    fn from(c: &HeartbeatChange) -> Self {
        Self {
            at: c.at,
            state: c.state.as_str().to_owned(),
            reason: c.reason.clone(),
        }
    }
}

/// An audit entry.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AuditView {
    /// Position in the chain.
    pub seq: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// Which tenant.
    pub tenant: Option<String>,
    /// What.
    pub action: String,
    /// Facts (identifiers and digests, never secret values).
    pub details: serde_json::Value,
    /// The entry's hash.
    pub hash: String,
}

impl From<&AuditEntry> for AuditView {
    fn from(e: &AuditEntry) -> Self {
        Self {
            seq: e.seq,
            at: e.at,
            actor: e.actor.clone(),
            tenant: e.tenant.as_ref().map(ToString::to_string),
            action: e.action.clone(),
            details: e.details.clone(),
            hash: e.hash.clone(),
        }
    }
}

/// A page of the audit log.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AuditPage {
    /// Entries, oldest first.
    pub entries: Vec<AuditView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<u64>,
}

/// A stack's outputs.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct OutputsView {
    /// Stack.
    pub stack: String,
    /// Release.
    pub release: String,
    /// Outputs (queue URLs, ARNs, names; no secret values).
    pub outputs: BTreeMap<String, String>,
    /// When recorded.
    pub recorded_at: DateTime<Utc>,
}

impl From<&StoredOutputs> for OutputsView {
    fn from(o: &StoredOutputs) -> Self {
        Self {
            stack: o.stack.to_string(),
            release: o.release.clone(),
            outputs: o.outputs.clone(),
            recorded_at: o.recorded_at,
        }
    }
}

/// One tenant in detail.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TenantDetail {
    /// The summary.
    pub tenant: TenantView,
    /// Outputs of its stacks.
    pub outputs: Vec<OutputsView>,
    /// Recent deployments, newest first.
    pub deployments: Vec<DeploymentView>,
    /// Recent heartbeat state changes, newest first.
    pub heartbeat_history: Vec<HeartbeatChangeView>,
    /// Recent audit entries about it, newest first.
    pub audit: Vec<AuditView>,
    /// Its privacy configuration: storage and LLM, who manages each,
    /// hosted fallback, who changed it.
    pub privacy: crate::privacy::view::PrivacyView,
}

/// Builds a tenant's summary from the manifest, stored stack states and its
/// heartbeat.
pub fn tenant_view(
    tenant: &Tenant,
    states: &[StackState],
    health: Option<&TenantHealth>,
) -> TenantView {
    let stacks: Vec<StackView> = tenant
        .deployed_stacks()
        .iter()
        .map(|kind| {
            let s = states
                .iter()
                .find(|s| s.tenant == tenant.id && s.stack == *kind);
            StackView {
                stack: kind.to_string(),
                status: s.and_then(|s| s.status.clone()),
                release: s.and_then(|s| s.release.clone()),
                last_outcome: s.and_then(|s| s.last_outcome.clone()),
                last_error: s.and_then(|s| s.last_reason.clone()),
                updated_at: s.map(|s| s.updated_at),
            }
        })
        .collect();
    let releases: Vec<&String> = stacks.iter().filter_map(|s| s.release.as_ref()).collect();
    let release = (releases.len() == stacks.len()
        && !releases.is_empty()
        && releases.iter().all(|r| *r == releases[0]))
    .then(|| releases[0].clone());
    let heartbeat = health.map(HeartbeatView::from);
    let last_error = stacks
        .iter()
        .find_map(|s| s.last_error.clone())
        .or_else(|| {
            heartbeat
                .as_ref()
                .filter(|h| h.state != "healthy")
                .and_then(|h| h.last_error.clone().or(Some(h.reason.clone())))
        });
    TenantView {
        id: tenant.id.to_string(),
        account_id: tenant.account_id.to_string(),
        region: tenant.region.to_string(),
        wave: tenant.wave.to_string(),
        capabilities: tenant
            .capabilities
            .iter()
            .map(ToString::to_string)
            .collect(),
        hosted: tenant.deployed_stacks().is_empty(),
        release,
        stacks,
        heartbeat,
        last_error,
    }
}

/// The fleet summary.
pub fn fleet_summary(manifest: &Manifest, health: &BTreeMap<String, TenantHealth>) -> FleetSummary {
    let mut by_state: BTreeMap<String, usize> = Health::ALL
        .iter()
        .map(|h| (h.as_str().to_owned(), 0))
        .collect();
    for h in health.values() {
        *by_state.entry(h.state.as_str().to_owned()).or_default() += 1;
    }
    let mut by_wave = BTreeMap::new();
    for t in &manifest.tenants {
        *by_wave.entry(t.wave.to_string()).or_default() += 1;
    }
    FleetSummary {
        desired_release: manifest.release.to_string(),
        tenants: manifest.tenants.len(),
        monitored: health.len(),
        by_state,
        by_wave,
        generated_at: Utc::now(),
    }
}
