//! What the AWS-facing commands share: the manifest, the state store, the
//! AWS connector and the operator's identity, set up in an order that makes
//! bad input fail before anything touches AWS or the state file. A named
//! tenant that lacks the capability a command needs is bad input too
//! ([`context_requiring`]).

use std::sync::Arc;

use stacks::ids::{Capability, TenantId};

use super::render::select_tenants;
use super::{Cli, Failure, load_manifest};
use crate::access::{self, Operator};
use crate::aws::Connector;
use crate::aws::sdk::SdkConnector;
use crate::deploy::{DEFAULT_CONCURRENCY, Fleet};
use crate::entitlement;
use crate::manifest::{Manifest, Tenant};
use crate::store::sqlite::SqliteStore;
use crate::store::sqlite::capabilities::AppliedCapabilities;
use crate::store::{AuditEntry, Store, StoreError};
use crate::wait::WaitPolicy;

/// Where AWS clients come from: the SDK (default) or an injected connector
/// (tests).
pub type ConnectorOverride = Option<Arc<dyn Connector>>;

/// Set-up shared by the commands that talk to AWS.
#[derive(Debug)]
pub struct Context {
    /// The validated manifest.
    pub manifest: Manifest,
    /// The state.
    pub store: Arc<dyn Store>,
    /// Each tenant's last applied capabilities (in the same database).
    pub applied: Arc<dyn AppliedCapabilities>,
    /// AWS.
    pub connector: Arc<dyn Connector>,
    /// Who is acting.
    pub operator: Operator,
}

/// Offline checks first (manifest, tenant, state directory), then AWS.
pub async fn context(
    cli: &Cli,
    tenant: Option<&TenantId>,
    connector: ConnectorOverride,
) -> Result<Context, Failure> {
    context_requiring(cli, tenant, None, connector).await
}

/// Like [`context`]; when `tenant` is named and `needs` is given, the tenant
/// must have that capability for that operation, checked right after the
/// manifest is read: a refusal opens no state file and calls no AWS API.
pub async fn context_requiring(
    cli: &Cli,
    tenant: Option<&TenantId>,
    needs: Option<(Capability, &str)>,
    connector: ConnectorOverride,
) -> Result<Context, Failure> {
    let manifest = load_manifest(cli)?.manifest;
    let selected = select_tenants(&manifest, tenant)?;
    if let (Some(_), Some((capability, operation))) = (tenant, needs) {
        for t in selected {
            require(t, capability, operation)?;
        }
    }
    let sqlite = open_sqlite(&manifest)?;
    let connector: Arc<dyn Connector> = match connector {
        Some(c) => c,
        None => Arc::new(SdkConnector::from_env(Some(manifest.coordinator.region)).await),
    };
    let operator = access::operator(connector.as_ref())
        .await
        .map_err(|e| Failure::Failed(e.into()))?;
    Ok(Context {
        manifest,
        store: sqlite.clone(),
        applied: sqlite,
        connector,
        operator,
    })
}

/// [`entitlement::require`] for the CLI: a tenant that is not entitled is
/// bad input (exit 2).
pub fn require(tenant: &Tenant, capability: Capability, operation: &str) -> Result<(), Failure> {
    entitlement::require(tenant, capability, operation).map_err(|e| Failure::BadInput(e.into()))
}

/// Tells the operator (on stderr) which tenants a fleet-wide `operation`
/// skips because they lack `capability`; nothing when a tenant is named.
pub fn note_skipped(
    manifest: &Manifest,
    tenant: Option<&TenantId>,
    capability: Capability,
    operation: &str,
) {
    if tenant.is_some() {
        return;
    }
    let skipped = entitlement::partition(&manifest.tenants, capability).skipped_ids();
    if !skipped.is_empty() {
        let names: Vec<&str> = skipped.iter().map(TenantId::as_str).collect();
        eprintln!(
            "note: {operation} skips {} tenant(s) without the `{capability}` capability: {}",
            names.len(),
            names.join(", ")
        );
    }
}

/// Opens the state store named by the manifest; a missing directory is bad
/// input (exit 2) and creates nothing.
pub fn open_store(manifest: &Manifest) -> Result<Arc<dyn Store>, Failure> {
    Ok(open_sqlite(manifest)?)
}

fn open_sqlite(manifest: &Manifest) -> Result<Arc<SqliteStore>, Failure> {
    match SqliteStore::open(&manifest.coordinator.state_path) {
        Ok(store) => Ok(Arc::new(store)),
        Err(e @ StoreError::MissingDirectory(_)) => Err(Failure::BadInput(e.into())),
        Err(e) => Err(Failure::Failed(e.into())),
    }
}

impl Context {
    /// Records that the manifest is being applied to its tenants (or only
    /// to `only`): each tenant whose capabilities
    /// changed since the last application gets its audit entry, with the
    /// operator as the actor ([`crate::capability_changes`]). Each entry is
    /// named on stderr. Fails (exit 1) when they cannot be recorded: a
    /// change must not take effect unaudited.
    pub async fn record_applied(
        &self,
        only: Option<&TenantId>,
    ) -> Result<Vec<AuditEntry>, Failure> {
        let tenants = self
            .manifest
            .tenants
            .iter()
            .filter(|t| only.is_none_or(|id| &t.id == id));
        let applied = crate::capability_changes::applied(tenants);
        let digest = crate::deploy::manifest_digest(&self.manifest);
        let entries = self
            .applied
            .apply_capabilities(&applied, self.operator.actor(), &digest)
            .await
            .map_err(|e| {
                Failure::Failed(
                    anyhow::Error::new(e).context("recording the tenants' applied capabilities"),
                )
            })?;
        for e in &entries {
            let list = |key: &str| {
                e.details[key]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default()
            };
            let tenant = e.tenant.as_ref().map(TenantId::as_str).unwrap_or("");
            if e.action == crate::capability_changes::SET {
                eprintln!(
                    "audit: tenant {tenant} capabilities set: [{}]",
                    list("capabilities")
                );
            } else {
                eprintln!(
                    "audit: tenant {tenant} capabilities changed: added [{}], removed [{}]",
                    list("added"),
                    list("removed")
                );
            }
        }
        Ok(entries)
    }

    /// A fleet view for deploying.
    pub fn fleet<'a>(
        &'a self,
        release: &'a stacks::Release,
        concurrency: Option<usize>,
    ) -> Fleet<'a> {
        Fleet {
            connector: self.connector.as_ref(),
            store: self.store.as_ref(),
            manifest: &self.manifest,
            release,
            operator: &self.operator,
            concurrency: concurrency.unwrap_or(DEFAULT_CONCURRENCY).max(1),
            stack_wait: WaitPolicy::STACK,
            change_set_wait: WaitPolicy::CHANGE_SET,
        }
    }
}

/// Observes, previews and plans, then records the plan (generation, parent).
pub async fn plan_recorded(
    fleet: &Fleet<'_>,
    tenant: Option<&TenantId>,
    options: crate::plan::PlanOptions,
) -> Result<(crate::deploy::Planned, crate::plan::Plan), Failure> {
    let planned = fleet.observe_and_plan(tenant, options).await.map_err(|e| {
        Failure::Failed(anyhow::Error::new(e).context("rendering the desired stacks"))
    })?;
    let plan = fleet
        .record(planned.draft.clone())
        .await
        .map_err(|e| Failure::Failed(e.into()))?;
    Ok((planned, plan))
}
