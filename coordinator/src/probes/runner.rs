//! Runs the probes for tenants and records the outcomes: the one path used
//! by `coordinator check` and by the schedule inside `coordinator serve`.
//! Each outcome is stored with the digest of the configuration it checked,
//! which is what the fail-closed resolution looks at.

use std::sync::Arc;
use std::time::Duration;

use stacks::StackKind;
use stacks::ids::TenantId;

use super::workers::{HeartbeatProbe, QueuesProbe};
use super::{Probe, ProbeError, ProbeName, ProbeOutcome, ProbeStatus, ProbeTarget, run};
use crate::access::{Operator, SessionCache};
use crate::aws::Connector;
use crate::heartbeat::detector::TenantHealth;
use crate::manifest::{Manifest, Tenant};
use crate::privacy::{LlmMode, PrivacyConfig, change};
use crate::secrets::SecretStore;
use crate::secrets::memory::MemorySecrets;
use crate::store::probes::StoredProbe;
use crate::store::{Store, StoreError};

/// How long one probe may take.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// The probes and what they need.
#[derive(Debug, Clone)]
pub struct Checker {
    /// Desired state (tenants, secrets settings).
    pub manifest: Arc<Manifest>,
    /// Where outcomes go.
    pub store: Arc<dyn Store>,
    /// AWS.
    pub connector: Arc<dyn Connector>,
    /// The probes, in the order they run for a tenant.
    pub probes: Vec<Arc<dyn Probe>>,
    /// Per probe.
    pub deadline: Duration,
    /// The vendor identity of calls into tenants' accounts.
    pub operator: Operator,
    /// Tenants' role sessions, kept between rounds.
    pub sessions: Arc<SessionCache>,
}

/// Why a tenant could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The store failed.
    #[error("could not read or record probe state")]
    Store(#[from] StoreError),
}

impl Checker {
    /// Storage, LLM, heartbeat (from `heartbeats`) and queue probes.
    pub fn standard(
        manifest: Arc<Manifest>,
        store: Arc<dyn Store>,
        connector: Arc<dyn Connector>,
        operator: Operator,
        heartbeats: impl IntoIterator<Item = (TenantId, TenantHealth)>,
    ) -> Result<Self, super::llm::ClientBuildError> {
        let probes: Vec<Arc<dyn Probe>> = vec![
            Arc::new(super::StorageProbe),
            Arc::new(super::LlmProbe::new(operator.clone())?),
            Arc::new(HeartbeatProbe::new(heartbeats)),
            Arc::new(QueuesProbe),
        ];
        Ok(Self {
            manifest,
            store,
            connector,
            probes,
            deadline: DEFAULT_DEADLINE,
            operator,
            sessions: Arc::default(),
        })
    }

    /// Replaces the heartbeat probe's snapshot (serve takes a fresh one
    /// from the monitor before each round).
    pub fn with_heartbeats(
        mut self,
        heartbeats: impl IntoIterator<Item = (TenantId, TenantHealth)>,
    ) -> Self {
        let fresh: Arc<dyn Probe> = Arc::new(HeartbeatProbe::new(heartbeats));
        for p in &mut self.probes {
            if p.name() == ProbeName::Heartbeat {
                *p = fresh.clone();
            }
        }
        self
    }

    /// Runs the probes (or only `only`) for `tenant` and records each
    /// outcome.
    pub async fn check(
        &self,
        tenant: &Tenant,
        only: Option<ProbeName>,
    ) -> Result<Vec<StoredProbe>, CheckError> {
        let record = change::current(self.store.as_ref(), tenant).await?;
        let storage_outputs = self
            .store
            .outputs(&tenant.id, StackKind::Storage)
            .await?
            .map(|o| o.outputs);
        let worker_outputs = self
            .store
            .outputs(&tenant.id, StackKind::Worker)
            .await?
            .map(|o| o.outputs);
        // Probes that read no secret (the tenant's role, vendor-hosted
        // dependencies, the workers) run even when the store cannot be
        // opened; those that would read one fail with why.
        let (secrets, unavailable) = match crate::secrets::open_with(
            tenant,
            &self.manifest,
            self.connector.as_ref(),
            self.store.clone(),
            Some((&self.operator, &self.sessions)),
        )
        .await
        {
            Ok(store) => (store, None),
            Err(e) => (
                Arc::new(MemorySecrets::default()) as Arc<dyn SecretStore>,
                Some(e.to_string()),
            ),
        };
        let target = ProbeTarget {
            tenant: tenant.clone(),
            config: record.config.clone(),
            secrets,
            connector: self.connector.clone(),
            operator: self.operator.clone(),
            sessions: self.sessions.clone(),
            storage_outputs,
            worker_outputs,
        };
        let mut results = Vec::new();
        for probe in &self.probes {
            if only.is_some_and(|o| o != probe.name()) {
                continue;
            }
            let outcome = match &unavailable {
                Some(why) if reads_secrets(probe.name(), &record.config) => {
                    store_unavailable(tenant, probe.name(), why)
                }
                _ => run(probe.as_ref(), &target, self.deadline).await,
            };
            if let Some(error) = &outcome.error {
                tracing::warn!(tenant = %tenant.id, probe = %outcome.probe, code = %error.code, "probe failing: {}", error.message);
            }
            results.push(self.store.put_probe(&outcome, &record.digest).await?);
        }
        Ok(results)
    }

    /// Checks `tenants` (every probe, or only `only`), `concurrency` at a
    /// time; one tenant's failure never stops the others. Results come in
    /// the order of `tenants`.
    pub async fn check_many(
        &self,
        tenants: &[&Tenant],
        only: Option<ProbeName>,
        concurrency: usize,
    ) -> Vec<(TenantId, Result<Vec<StoredProbe>, CheckError>)> {
        let permits = tokio::sync::Semaphore::new(concurrency.max(1));
        let mut runs = Vec::with_capacity(tenants.len());
        for &tenant in tenants {
            runs.push(self.check_one(tenant, only, &permits));
        }
        futures::future::join_all(runs).await
    }

    async fn check_one(
        &self,
        tenant: &Tenant,
        only: Option<ProbeName>,
        permits: &tokio::sync::Semaphore,
    ) -> (TenantId, Result<Vec<StoredProbe>, CheckError>) {
        let _permit = permits.acquire().await;
        (tenant.id.clone(), self.check(tenant, only).await)
    }
}

/// Whether `probe` reads a secret under `config`.
fn reads_secrets(probe: ProbeName, config: &PrivacyConfig) -> bool {
    match probe {
        ProbeName::Storage => config.storage_credentials().is_some(),
        ProbeName::Llm => matches!(&config.llm, LlmMode::Byok(b) if b.key.is_some()),
        ProbeName::Heartbeat | ProbeName::Queues => false,
    }
}

/// The outcome of a probe that needs a secret from a store that cannot be
/// opened.
fn store_unavailable(tenant: &Tenant, probe: ProbeName, why: &str) -> ProbeOutcome {
    ProbeOutcome {
        tenant: tenant.id.clone(),
        probe,
        status: ProbeStatus::Failing,
        at: chrono::Utc::now(),
        latency_ms: 0,
        error: Some(ProbeError::new(
            &format!("{probe}.secret_store_unavailable"),
            format!("the tenant's secret store cannot be opened: {why}"),
            "fix the tenant's secret store settings ([secrets] in deploy.toml) or its master key; see docs/admin/secrets.md",
        )),
        detail: None,
    }
}
