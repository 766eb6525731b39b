//! What the AWS-facing commands share: the manifest, the state store, the
//! AWS connector and the operator's identity, set up in an order that makes
//! bad input fail before anything touches AWS or the state file.

use std::sync::Arc;

use stacks::ids::TenantId;

use super::render::select_tenants;
use super::{Cli, Failure, load_manifest};
use crate::access::{self, Operator};
use crate::aws::Connector;
use crate::aws::sdk::SdkConnector;
use crate::deploy::{DEFAULT_CONCURRENCY, Fleet};
use crate::manifest::Manifest;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};
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
    let manifest = load_manifest(cli)?.manifest;
    select_tenants(&manifest, tenant)?;
    let store = open_store(&manifest)?;
    let connector: Arc<dyn Connector> = match connector {
        Some(c) => c,
        None => Arc::new(SdkConnector::from_env(Some(manifest.coordinator.region)).await),
    };
    let operator = access::operator(connector.as_ref())
        .await
        .map_err(|e| Failure::Failed(e.into()))?;
    Ok(Context {
        manifest,
        store,
        connector,
        operator,
    })
}

/// Opens the state store named by the manifest; a missing directory is bad
/// input (exit 2) and creates nothing.
pub fn open_store(manifest: &Manifest) -> Result<Arc<dyn Store>, Failure> {
    match SqliteStore::open(&manifest.coordinator.state_path) {
        Ok(store) => Ok(Arc::new(store)),
        Err(e @ StoreError::MissingDirectory(_)) => Err(Failure::BadInput(e.into())),
        Err(e) => Err(Failure::Failed(e.into())),
    }
}

impl Context {
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
