//! Probes: checks of a tenant's customer-managed dependencies (its bucket,
//! its LLM key) and of its deployed workers (heartbeat, queues), each with
//! an outcome an admin can act on: a status, how long it took, when, and on
//! failure a stable code, a message and a remedy in plain words.
//!
//! Probes run on a schedule inside `coordinator serve` and on demand with
//! `coordinator check`; outcomes are persisted ([`crate::store::ProbeStore`])
//! and feed the admin surface, the metrics and the fail-closed resolution
//! of a tenant's effective configuration ([`resolve`]).

pub mod llm;
pub mod resolve;
pub mod runner;
pub mod storage;
pub mod workers;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use stacks::ids::TenantId;

use crate::access::{Operator, SessionCache};
use crate::aws::Connector;
use crate::manifest::Tenant;
use crate::privacy::PrivacyConfig;
use crate::secrets::SecretStore;

pub use llm::LlmProbe;
pub use storage::StorageProbe;

/// Which check.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ProbeName {
    /// The tenant's own bucket: write, read back, delete a canary object.
    Storage,
    /// The tenant's own LLM key: authenticate, find the model, check vision.
    Llm,
    /// The deployed workers answer heartbeats.
    Heartbeat,
    /// The worker queues are reachable; the dead-letter queue is empty.
    Queues,
}

impl ProbeName {
    /// Every probe.
    pub const ALL: &'static [ProbeName] = &[
        ProbeName::Storage,
        ProbeName::Llm,
        ProbeName::Heartbeat,
        ProbeName::Queues,
    ];

    /// The name as written on the command line and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeName::Storage => "storage",
            ProbeName::Llm => "llm",
            ProbeName::Heartbeat => "heartbeat",
            ProbeName::Queues => "queues",
        }
    }
}

impl std::str::FromStr for ProbeName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ProbeName::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown probe {s:?}: use storage, llm, heartbeat or queues"))
    }
}

impl fmt::Display for ProbeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// How a probe came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProbeStatus {
    /// The dependency works.
    Passing,
    /// It does not; see the error.
    Failing,
    /// Nothing to check: the dependency is vendor-hosted, or not deployed.
    NotApplicable,
}

impl ProbeStatus {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeStatus::Passing => "passing",
            ProbeStatus::Failing => "failing",
            ProbeStatus::NotApplicable => "not_applicable",
        }
    }
}

/// Why a probe failed, for an admin: a stable code (for runbooks, alerts
/// and the UI), what happened, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProbeError {
    /// Stable, e.g. `storage.access_denied_put`; documented in
    /// docs/runbooks/probe-failures.md.
    pub code: String,
    /// What happened, without secrets.
    pub message: String,
    /// What to do, in words an admin understands.
    pub remedy: String,
}

impl ProbeError {
    /// An error with this code, message and remedy.
    pub fn new(code: &str, message: impl Into<String>, remedy: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            remedy: remedy.into(),
        }
    }
}

/// One run of one probe for one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProbeOutcome {
    /// Tenant.
    pub tenant: TenantId,
    /// Which probe.
    pub probe: ProbeName,
    /// How it came out.
    pub status: ProbeStatus,
    /// When it ran.
    pub at: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub latency_ms: u64,
    /// Why it failed.
    pub error: Option<ProbeError>,
    /// Facts for people (e.g. the model found), never secrets.
    #[serde(default)]
    pub detail: Option<String>,
}

/// What a probe may use to check one tenant.
#[derive(Clone)]
pub struct ProbeTarget {
    /// The tenant.
    pub tenant: Tenant,
    /// Its current privacy configuration.
    pub config: PrivacyConfig,
    /// Its secret store.
    pub secrets: Arc<dyn SecretStore>,
    /// AWS (the tenant's role, or the vendor's identity).
    pub connector: Arc<dyn Connector>,
    /// The vendor identity calls into the tenant's account are made as.
    pub operator: Operator,
    /// The tenants' role sessions, shared by every probe and by the secret
    /// store: the first use assumes the role and checks the account (fail
    /// closed), later ones reuse the session.
    pub sessions: Arc<SessionCache>,
    /// The storage stack's outputs, when deployed (for `deployed` storage).
    pub storage_outputs: Option<std::collections::BTreeMap<String, String>>,
    /// The worker stack's outputs, when deployed.
    pub worker_outputs: Option<std::collections::BTreeMap<String, String>>,
}

impl fmt::Debug for ProbeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeTarget")
            .field("tenant", &self.tenant.id)
            .finish_non_exhaustive()
    }
}

/// What a probe found, before timing is added.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// Works; an optional fact for people.
    Pass(Option<String>),
    /// Does not work.
    Fail(ProbeError),
    /// Nothing to check.
    NotApplicable(String),
}

/// A check of one dependency. A probe makes the calls it needs once, with a
/// deadline; it never retries beyond the SDK's own retry policy, so its
/// latency is the dependency's.
#[async_trait]
pub trait Probe: Send + Sync + fmt::Debug {
    /// Which probe this is.
    fn name(&self) -> ProbeName;

    /// Checks `target`.
    async fn check(&self, target: &ProbeTarget) -> Finding;
}

/// Runs `probe` against `target` with a deadline, timing it.
pub async fn run(probe: &dyn Probe, target: &ProbeTarget, deadline: Duration) -> ProbeOutcome {
    let at = Utc::now();
    let start = std::time::Instant::now();
    let finding = match tokio::time::timeout(deadline, probe.check(target)).await {
        Ok(finding) => finding,
        Err(_) => Finding::Fail(ProbeError::new(
            &format!("{}.timeout", probe.name()),
            format!(
                "the {} check did not finish within {deadline:?}",
                probe.name()
            ),
            "check that the endpoint is reachable from the coordinator (network, firewall, VPC endpoint) and not overloaded; then run `coordinator check` again",
        )),
    };
    let latency_ms = start.elapsed().as_millis() as u64;
    let (status, error, detail) = match finding {
        Finding::Pass(detail) => (ProbeStatus::Passing, None, detail),
        Finding::Fail(error) => (ProbeStatus::Failing, Some(error), None),
        Finding::NotApplicable(why) => (ProbeStatus::NotApplicable, None, Some(why)),
    };
    ProbeOutcome {
        tenant: target.tenant.id.clone(),
        probe: probe.name(),
        status,
        at,
        latency_ms,
        error,
        detail,
    }
}
