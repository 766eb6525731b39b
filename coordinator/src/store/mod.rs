//! The coordinator's state: plans, deployments, stack outputs and states,
//! and the audit log, behind one [`Store`] trait.
//!
//! SQLite ([`sqlite::SqliteStore`], one file, WAL, migrations) is the
//! default. Nothing outside this module sees SQL, and the trait is async and
//! free of SQLite types, so a PostgreSQL store can be added for high
//! availability without touching callers. Generations are allocated by the
//! store, atomically, so two coordinators sharing one database can never
//! issue the same generation.

pub mod audit;
pub mod fencing;
pub mod privacy;
pub mod probes;
pub mod sealed;
pub mod sqlite;

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use stacks::StackKind;
use stacks::ids::TenantId;

pub use audit::{AuditEntry, BrokenLink, NewAuditEntry};
pub use fencing::{FencedRollouts, LeaseFence, LeaseLost};
pub use privacy::PrivacyStore;
pub use probes::ProbeStore;
pub use sealed::SealedSecrets;

use crate::heartbeat::detector::{Health, TenantHealth};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state file's directory does not exist; nothing was created.
    #[error(
        "the state file's directory {0} does not exist: create it, or fix `state` in [coordinator]"
    )]
    MissingDirectory(String),
    /// The database could not be opened or migrated.
    #[error("cannot open the state database {path}")]
    Open {
        /// The state file.
        path: String,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// A query failed.
    #[error("state database query failed")]
    Query(#[from] rusqlite::Error),
    /// A stored value could not be read back (corruption or a newer schema).
    #[error("state database holds an unreadable value: {0}")]
    Corrupt(String),
    /// Someone else changed the record since it was read; nothing was
    /// written.
    #[error("{0}")]
    Conflict(String),
}

/// A plan as recorded: the generation is its identity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRecord {
    /// Monotonic generation, allocated by the store.
    pub generation: u64,
    /// The generation before it, if any.
    pub parent: Option<u64>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Who made it.
    pub actor: String,
    /// The release it deploys.
    pub release: String,
    /// SHA-256 of the manifest it was made from.
    pub manifest_digest: String,
    /// A JSON summary of its items (for people and the API).
    pub summary: serde_json::Value,
}

/// A plan about to be recorded.
#[derive(Debug, Clone)]
pub struct NewPlan {
    /// Who makes it.
    pub actor: String,
    /// The release.
    pub release: String,
    /// SHA-256 of the manifest.
    pub manifest_digest: String,
    /// A JSON summary of its items.
    pub summary: serde_json::Value,
}

/// A deployment (one plan item being applied) as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentRecord {
    /// Row id.
    pub id: i64,
    /// The plan's generation.
    pub generation: u64,
    /// Tenant.
    pub tenant: TenantId,
    /// Stack.
    pub stack: StackKind,
    /// `create` or `update` (or a recovery action).
    pub action: String,
    /// The ClientRequestToken used.
    pub token: String,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End, once known.
    pub finished_at: Option<DateTime<Utc>>,
    /// `succeeded`, `no_change`, `failed`, `rolled_back`, `needs_recovery`, `timed_out`.
    pub outcome: Option<String>,
    /// The stack status at the end.
    pub status: Option<String>,
    /// Why, for anything but success.
    pub reason: Option<String>,
}

/// A deployment about to start.
#[derive(Debug, Clone)]
pub struct NewDeployment {
    /// The plan's generation.
    pub generation: u64,
    /// Tenant.
    pub tenant: TenantId,
    /// Stack.
    pub stack: StackKind,
    /// `create`, `update`, ...
    pub action: String,
    /// The ClientRequestToken.
    pub token: String,
}

/// How a deployment ended.
#[derive(Debug, Clone)]
pub struct DeploymentResult {
    /// Outcome name.
    pub outcome: String,
    /// Final stack status.
    pub status: Option<String>,
    /// Why.
    pub reason: Option<String>,
}

/// The latest outputs of a tenant's stack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredOutputs {
    /// Tenant.
    pub tenant: TenantId,
    /// Stack.
    pub stack: StackKind,
    /// Release deployed.
    pub release: String,
    /// Template hash deployed.
    pub template_hash: String,
    /// Raw outputs (validated before storing).
    pub outputs: BTreeMap<String, String>,
    /// When recorded.
    pub recorded_at: DateTime<Utc>,
}

/// What the coordinator last knew of a tenant's stack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StackState {
    /// Tenant.
    pub tenant: TenantId,
    /// Stack.
    pub stack: StackKind,
    /// CloudFormation status when last seen; `None` if absent.
    pub status: Option<String>,
    /// Release deployed, when known.
    pub release: Option<String>,
    /// Template hash deployed, when known.
    pub template_hash: Option<String>,
    /// Outcome of the last deployment.
    pub last_outcome: Option<String>,
    /// Reason of the last failure.
    pub last_reason: Option<String>,
    /// When this was recorded.
    pub updated_at: DateTime<Utc>,
}

/// The coordinator's persistent state.
#[async_trait]
pub trait Store:
    SealedSecrets + PrivacyStore + ProbeStore + FencedRollouts + Send + Sync + fmt::Debug
{
    /// Records a plan with the next generation; its parent is the latest.
    async fn record_plan(&self, plan: NewPlan) -> Result<PlanRecord, StoreError>;
    /// The latest plan.
    async fn latest_plan(&self) -> Result<Option<PlanRecord>, StoreError>;
    /// Records the start of a deployment; returns its id.
    async fn start_deployment(&self, deployment: NewDeployment) -> Result<i64, StoreError>;
    /// Records how a deployment ended.
    async fn finish_deployment(&self, id: i64, result: DeploymentResult) -> Result<(), StoreError>;
    /// Recent deployments, newest first, optionally for one tenant.
    async fn deployments(
        &self,
        tenant: Option<&TenantId>,
        limit: usize,
    ) -> Result<Vec<DeploymentRecord>, StoreError>;
    /// The highest plan generation applied to a tenant.
    async fn tenant_generation(&self, tenant: &TenantId) -> Result<Option<u64>, StoreError>;
    /// Replaces a stack's stored outputs.
    async fn put_outputs(&self, outputs: StoredOutputs) -> Result<(), StoreError>;
    /// A stack's stored outputs.
    async fn outputs(
        &self,
        tenant: &TenantId,
        stack: StackKind,
    ) -> Result<Option<StoredOutputs>, StoreError>;
    /// Replaces what is known of a stack.
    async fn put_stack_state(&self, state: StackState) -> Result<(), StoreError>;
    /// Everything known of every stack.
    async fn stack_states(&self) -> Result<Vec<StackState>, StoreError>;
    /// What is known of one stack.
    async fn stack_state(
        &self,
        tenant: &TenantId,
        stack: StackKind,
    ) -> Result<Option<StackState>, StoreError>;
    /// Appends to the audit chain.
    async fn append_audit(&self, entry: NewAuditEntry) -> Result<AuditEntry, StoreError>;
    /// Audit entries with `seq > after`, oldest first, at most `limit`.
    async fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
    /// Replaces a tenant's heartbeat record; a changed state is appended to
    /// its history.
    async fn put_heartbeat(
        &self,
        tenant: &TenantId,
        health: &TenantHealth,
    ) -> Result<(), StoreError>;
    /// Every tenant's heartbeat record.
    async fn heartbeats(&self) -> Result<Vec<(TenantId, TenantHealth)>, StoreError>;
    /// A tenant's recent state changes, newest first.
    async fn heartbeat_history(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> Result<Vec<HeartbeatChange>, StoreError>;
    /// Records a new rollout in state `running`.
    async fn create_rollout(&self, release: &str, actor: &str)
    -> Result<RolloutRecord, StoreError>;
    /// A rollout by id.
    async fn rollout(&self, id: i64) -> Result<Option<RolloutRecord>, StoreError>;
    /// The newest rollout.
    async fn latest_rollout(&self) -> Result<Option<RolloutRecord>, StoreError>;
    /// Sets a rollout's state (and why).
    async fn set_rollout_state(
        &self,
        id: i64,
        state: &str,
        reason: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Appends a transition to a rollout's log.
    async fn append_rollout_event(
        &self,
        rollout: i64,
        event: NewRolloutEvent,
    ) -> Result<RolloutEvent, StoreError>;
    /// A rollout's log, oldest first.
    async fn rollout_events(&self, rollout: i64) -> Result<Vec<RolloutEvent>, StoreError>;
    /// Takes or renews the rollout lease for `holder` until now + `ttl`, in
    /// one transaction. Fails with [`LeaseHeld`] (inside `Ok(Err)`) while
    /// another holder's lease has not expired.
    async fn acquire_rollout_lease(
        &self,
        holder: &str,
        rollout: i64,
        ttl: std::time::Duration,
    ) -> Result<Result<(), LeaseHeld>, StoreError>;
    /// Gives the lease up, if `holder` has it.
    async fn release_rollout_lease(&self, holder: &str) -> Result<(), StoreError>;
}

/// A rollout as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutRecord {
    /// Id.
    pub id: i64,
    /// The release it deploys.
    pub release: String,
    /// Who started it.
    pub actor: String,
    /// `running`, `halted`, `succeeded`, `superseded`.
    pub state: String,
    /// Why it halted, when it did.
    pub reason: Option<String>,
    /// Start.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A rollout transition about to be recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewRolloutEvent {
    /// `wave_started`, `tenant_started`, `tenant_succeeded`,
    /// `tenant_failed`, `gate_passed`, `gate_failed`, `halted`, `resumed`,
    /// `completed`.
    pub kind: String,
    /// The wave.
    pub wave: Option<String>,
    /// The tenant.
    pub tenant: Option<TenantId>,
    /// Anything else (reason, duration, ...).
    pub details: serde_json::Value,
}

/// A recorded rollout transition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutEvent {
    /// Row id: the order of transitions.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// The transition.
    #[serde(flatten)]
    pub event: NewRolloutEvent,
}

/// The rollout lease is held by someone else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rollout {rollout:?} is being driven by {holder} (lease until {expires_at})")]
pub struct LeaseHeld {
    /// Who holds it.
    pub holder: String,
    /// For which rollout.
    pub rollout: Option<i64>,
    /// Until when.
    pub expires_at: DateTime<Utc>,
}

/// One change of a tenant's heartbeat state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeartbeatChange {
    /// When.
    pub at: DateTime<Utc>,
    /// The new state.
    pub state: Health,
    /// Why.
    pub reason: String,
}
