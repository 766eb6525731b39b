//! An in-memory, deterministic fake of the AWS seam for tests and
//! benchmarks: several accounts, STS with roles and trust,
//! CloudFormation per account, region and stack name, SQS queues per
//! account, region and queue name (see [`FakeSqs`]), and Secrets Manager,
//! SSM parameters and KMS keys per account and region (see
//! [`FakeSecretsManager`]).
//!
//! It exists for what the moto emulator cannot do (see
//! `/work/shared/moto-notes.md`): ExternalId enforcement and access denied,
//! sessions landing in the wrong account, failures and rollbacks, slow
//! operations, throttling, and counting calls. Its CloudFormation follows
//! real CloudFormation, not moto: idempotent request tokens, updates only
//! through change sets, "didn't contain changes" change sets, rollback
//! states, `ContinueUpdateRollback`.
//!
//! Everything is evaluated lazily on each call from stored deadlines
//! (`tokio::time::Instant`), so there are no background tasks and tests can
//! use `tokio::time::pause()`. With the default operation duration of zero a
//! stack operation has settled at the next call that looks at the stack.
//! SQS long polls wait on tokio time too, woken when a message arrives.
//!
//! ```no_run
//! # async fn demo() {
//! use std::sync::Arc;
//! use coordinator::aws::fake::{FakeCloud, Trust};
//! use coordinator::aws::{Connector, RoleRequest, SessionName, TenantCredentials};
//!
//! let cloud = FakeCloud::new();
//! let account = "222222222222".parse().unwrap();
//! let external_id = "exampleExternalId-0123456789abcdef0123456789".parse().unwrap();
//! let role = cloud.add_role(&account, "docproc-coordinator-deploy", Trust::requiring(&external_id));
//! let request = RoleRequest {
//!     role_arn: role,
//!     external_id: Some(external_id),
//!     session_name: SessionName::sanitize("docproc-operator"),
//!     source_identity: None,
//!     duration: std::time::Duration::from_secs(3600),
//! };
//! let credentials = Arc::new(TenantCredentials::new(cloud.operator_sts(), request));
//! let cfn = cloud.tenant_cloudformation(credentials, "eu-west-1".parse().unwrap());
//! assert!(cfn.describe_stack("docproc-storage").await.unwrap().is_none());
//! # }
//! ```

mod bedrock;
mod cloudformation;
mod outputs;
mod s3;
mod secrets;
mod sqs;
mod sts;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use stacks::Parameter;
use stacks::aws_names::QueueUrl;
use stacks::ids::{AccountId, ExternalId, Region, RoleArn};
use tokio::time::Instant;

use super::{
    AwsError, CallerIdentity, ClientScope, CloudFormation, Connector, ErrorKind, Kms,
    ParameterStore, SecretsManager, Sqs, StackCapability, StackDescription, StackEvent,
    StackStatus, Sts, TenantCredentials,
};
use bedrock::BedrockState;
pub use bedrock::FakeBedrock;
use cloudformation::StackState;
pub use cloudformation::{FakeCloudFormation, NO_CHANGES};
pub use s3::{FakeS3, S3Fault, S3Operation};
use secrets::SecretsState;
pub use secrets::{FakeKms, FakeParameterStore, FakeSecretsManager};
use sqs::SqsState;
pub use sqs::{DEFAULT_VISIBILITY_TIMEOUT, FakeSqs};
pub use sts::{FakeOperatorSts, FakeTenantSts};
use sts::{Role, SessionInfo};

/// The operator's account unless configured otherwise.
pub const DEFAULT_OPERATOR_ACCOUNT: &str = "111111111111";
/// The operator's ARN unless configured otherwise.
pub const DEFAULT_OPERATOR_ARN: &str =
    "arn:aws:sts::111111111111:assumed-role/docproc-coordinator/operator";
/// How long sessions last unless configured otherwise.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(3600);

/// A role's trust policy, as far as the fake models it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    /// The `sts:ExternalId` the trust policy names.
    pub external_id: Option<ExternalId>,
    /// Whether the condition is enforced. `false` models a role that accepts
    /// any or no ExternalId: the confused-deputy hole.
    pub enforce: bool,
}

impl Trust {
    /// A trust policy that requires exactly `external_id`.
    pub fn requiring(external_id: &ExternalId) -> Self {
        Self {
            external_id: Some(external_id.clone()),
            enforce: true,
        }
    }

    /// A trust policy without an ExternalId condition.
    pub fn open() -> Self {
        Self {
            external_id: None,
            enforce: false,
        }
    }
}

/// What a stack's next operation does. Failures are read by the operation
/// they hit: a "fail" outcome on a create rolls the stack back
/// (`ROLLBACK_COMPLETE`), on an update rolls the update back
/// (`UPDATE_ROLLBACK_COMPLETE`), on a delete ends in `DELETE_FAILED`, on a
/// `ContinueUpdateRollback` in `UPDATE_ROLLBACK_FAILED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The operation succeeds (the default).
    Succeed,
    /// `resource` fails to create: `CREATE_FAILED`, `ROLLBACK_IN_PROGRESS`,
    /// `ROLLBACK_COMPLETE`.
    FailCreate {
        /// Logical id of the failing resource.
        resource: String,
        /// The resource's status reason.
        reason: String,
    },
    /// `resource` fails to update: `UPDATE_FAILED`,
    /// `UPDATE_ROLLBACK_IN_PROGRESS`, `UPDATE_ROLLBACK_COMPLETE`.
    FailUpdate {
        /// Logical id of the failing resource.
        resource: String,
        /// The resource's status reason.
        reason: String,
    },
    /// `resource` fails, and fails again while rolling back: an update ends
    /// in `UPDATE_ROLLBACK_FAILED`, a create in `ROLLBACK_FAILED`.
    RollbackFails {
        /// Logical id of the failing resource.
        resource: String,
        /// The resource's status reason.
        reason: String,
    },
    /// `resource` cannot be deleted: `DELETE_FAILED`.
    FailDelete {
        /// Logical id of the failing resource.
        resource: String,
        /// The resource's status reason.
        reason: String,
    },
    /// The next mutating API call on the stack (CreateStack,
    /// CreateChangeSet, ExecuteChangeSet, DeleteStack,
    /// ContinueUpdateRollback) itself returns this error (its service and
    /// operation are set to the call's); nothing changes.
    Reject(AwsError),
    /// The operation never finishes: the stack stays `*_IN_PROGRESS`.
    Hang,
}

impl Outcome {
    /// The failing resource and reason, and whether the rollback fails too.
    fn failure(&self) -> Option<(&str, &str, bool)> {
        match self {
            Outcome::FailCreate { resource, reason }
            | Outcome::FailUpdate { resource, reason }
            | Outcome::FailDelete { resource, reason } => Some((resource, reason, false)),
            Outcome::RollbackFails { resource, reason } => Some((resource, reason, true)),
            Outcome::Succeed | Outcome::Reject(_) | Outcome::Hang => None,
        }
    }
}

/// One API call the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `sts`, `cloudformation` or `sqs`.
    pub service: &'static str,
    /// The API operation, e.g. `DescribeStacks`.
    pub operation: &'static str,
    /// The account the call acts in (`None` when the caller's session was
    /// not valid).
    pub account: Option<AccountId>,
    /// The client's region (`None` for the operator's STS).
    pub region: Option<Region>,
    /// The stack the call names.
    pub stack: Option<String>,
    /// The role an `AssumeRole` call asks for.
    pub role_arn: Option<RoleArn>,
    /// The queue an SQS call names.
    pub queue: Option<QueueUrl>,
}

/// What a stack was last deployed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedStack {
    /// The template text as submitted.
    pub template_body: String,
    /// Parameters after defaults, unmasked.
    pub parameters: BTreeMap<String, String>,
    /// Stack tags.
    pub tags: BTreeMap<String, String>,
    /// The execution role.
    pub role_arn: Option<RoleArn>,
    /// Acknowledged capabilities.
    pub capabilities: Vec<StackCapability>,
}

/// Where a stack lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct StackKey {
    account: AccountId,
    region: Region,
    name: String,
}

impl StackKey {
    fn new(account: &AccountId, region: Region, name: &str) -> Self {
        Self {
            account: account.clone(),
            region,
            name: name.to_owned(),
        }
    }
}

/// Errors injected into the next calls of an operation.
#[derive(Debug)]
struct Injection {
    account: AccountId,
    region: Region,
    operation: String,
    remaining: usize,
    error: AwsError,
}

/// Maps `tokio::time::Instant` to wall-clock timestamps: the fake's own
/// clock, which moves with paused time.
#[derive(Debug, Clone, Copy)]
struct Clock {
    utc: DateTime<Utc>,
    instant: Instant,
}

impl Clock {
    fn utc(&self, at: Instant) -> DateTime<Utc> {
        let elapsed = at.saturating_duration_since(self.instant);
        self.utc + chrono::Duration::from_std(elapsed).unwrap_or_default()
    }
}

#[derive(Debug)]
struct State {
    clock: Clock,
    seq: u64,
    operator: CallerIdentity,
    roles: HashMap<(AccountId, String), Role>,
    denied: HashSet<RoleArn>,
    landings: HashMap<RoleArn, AccountId>,
    sessions: HashMap<String, SessionInfo>,
    session_ttl: Duration,
    assume_count: usize,
    calls: Vec<Call>,
    failing: bool,
    injections: Vec<Injection>,
    latency: Duration,
    default_duration: Duration,
    durations: HashMap<StackKey, Duration>,
    scripts: HashMap<StackKey, VecDeque<Outcome>>,
    stacks: BTreeMap<StackKey, StackState>,
    /// Deleted stacks replaced by a new stack of the same name.
    graveyard: Vec<StackState>,
    in_flight: BTreeSet<StackKey>,
    max_concurrent: usize,
    sqs: SqsState,
    s3: s3::S3State,
    secrets: SecretsState,
    bedrock: BedrockState,
}

impl State {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Records a call, then applies `fail_all` and injected errors.
    fn admit(&mut self, call: Call) -> Result<(), AwsError> {
        let (service, operation, region) = (call.service, call.operation, call.region);
        let account = call.account.clone();
        self.calls.push(call);
        if self.failing {
            return Err(AwsError::new(
                ErrorKind::Transient,
                service,
                operation,
                "the fake fails every call (fail_all)",
            )
            .with_code("ServiceUnavailable"));
        }
        let Some(account) = account else {
            return Ok(());
        };
        let hit = self.injections.iter_mut().find(|i| {
            i.remaining > 0
                && i.account == account
                && i.operation == operation
                && region.is_none_or(|r| r == i.region)
        });
        if let Some(injection) = hit {
            injection.remaining -= 1;
            let mut error = injection.error.clone();
            error.service = service;
            error.operation = operation;
            self.injections.retain(|i| i.remaining > 0);
            return Err(error);
        }
        Ok(())
    }
}

/// The fake cloud. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct FakeCloud {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for FakeCloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("FakeCloud")
            .field("operator", &state.operator.arn)
            .field("roles", &state.roles.len())
            .field("stacks", &state.stacks.len())
            .field("queues", &state.sqs.queue_count())
            .field("calls", &state.calls.len())
            .finish_non_exhaustive()
    }
}

impl Default for FakeCloud {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeCloud {
    /// A cloud whose operator is [`DEFAULT_OPERATOR_ARN`] in
    /// [`DEFAULT_OPERATOR_ACCOUNT`], with no roles and no stacks.
    pub fn new() -> Self {
        Self::with_operator(
            DEFAULT_OPERATOR_ACCOUNT.parse().expect("valid account"),
            DEFAULT_OPERATOR_ARN,
        )
    }

    /// A cloud whose operator credentials are `arn` in `account`.
    pub fn with_operator(account: AccountId, arn: &str) -> Self {
        let state = State {
            clock: Clock {
                utc: Utc::now(),
                instant: Instant::now(),
            },
            seq: 0,
            operator: CallerIdentity {
                user_id: format!(
                    "AROA{}:{}",
                    outputs::derived(arn, outputs::UPPER, 17),
                    arn.rsplit('/').next().unwrap_or("operator")
                ),
                account,
                arn: arn.to_owned(),
            },
            roles: HashMap::new(),
            denied: HashSet::new(),
            landings: HashMap::new(),
            sessions: HashMap::new(),
            session_ttl: DEFAULT_SESSION_TTL,
            assume_count: 0,
            calls: Vec::new(),
            failing: false,
            injections: Vec::new(),
            latency: Duration::ZERO,
            default_duration: Duration::ZERO,
            durations: HashMap::new(),
            scripts: HashMap::new(),
            stacks: BTreeMap::new(),
            graveyard: Vec::new(),
            in_flight: BTreeSet::new(),
            max_concurrent: 0,
            sqs: SqsState::default(),
            s3: s3::S3State::default(),
            secrets: SecretsState::default(),
            bedrock: BedrockState::default(),
        };
        Self {
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sleeps for the configured per-call latency.
    async fn latency(&self) {
        let latency = self.lock().latency;
        sleep(latency).await;
    }

    /// What every tenant call does first: latency, a session from
    /// `credentials` (which may assume the role again), routing to the
    /// account the session acts in, the call log, `fail_all` and injected
    /// errors. Returns the session's identity.
    async fn tenant_call(
        &self,
        credentials: &TenantCredentials,
        service: &'static str,
        operation: &'static str,
        region: Region,
        stack: Option<&str>,
    ) -> Result<SessionInfo, AwsError> {
        self.latency().await;
        let session = credentials.session().await?;
        let mut state = self.lock();
        let resolved = state.resolve_session(&session, service, operation);
        state.admit(Call {
            service,
            operation,
            account: resolved.as_ref().ok().map(|s| s.account.clone()),
            region: Some(region),
            stack: stack.map(str::to_owned),
            role_arn: None,
            queue: None,
        })?;
        resolved
    }

    // ----- operator and STS configuration -----

    /// The operator's identity (`GetCallerIdentity` of `operator_sts()`).
    pub fn operator_identity(&self) -> CallerIdentity {
        self.lock().operator.clone()
    }

    /// Creates (or replaces) role `role_name` in `account` with `trust`, and
    /// a maximum session duration of one hour. Returns its ARN.
    pub fn add_role(&self, account: &AccountId, role_name: &str, trust: Trust) -> RoleArn {
        let arn = RoleArn::for_role(account, role_name).expect("a valid role name");
        self.lock().roles.insert(
            (account.clone(), role_name.to_owned()),
            Role {
                trust,
                max_session: Duration::from_secs(3600),
            },
        );
        arn
    }

    /// Sets a role's maximum session duration (AssumeRole asking for more
    /// fails with a validation error, as in IAM).
    pub fn set_max_session_duration(&self, role: &RoleArn, max: Duration) {
        let key = sts::role_key(role);
        if let Some(r) = self.lock().roles.get_mut(&key) {
            r.max_session = max;
        }
    }

    /// Makes AssumeRole of `role` fail with AccessDenied (the customer
    /// revoked access). Sessions already issued keep working until they
    /// expire, as in AWS.
    pub fn deny_assume(&self, role: &RoleArn) {
        self.lock().denied.insert(role.clone());
    }

    /// Undoes [`FakeCloud::deny_assume`].
    pub fn allow_assume(&self, role: &RoleArn) {
        self.lock().denied.remove(role);
    }

    /// Makes sessions of `role` act in `account` instead of the role's own.
    pub fn land_in(&self, role: &RoleArn, account: &AccountId) {
        self.lock().landings.insert(role.clone(), account.clone());
    }

    /// Sets how long new sessions last (at most what AssumeRole asked for).
    pub fn set_session_ttl(&self, ttl: Duration) {
        self.lock().session_ttl = ttl;
    }

    /// AssumeRole calls received, including refused ones.
    pub fn assume_count(&self) -> usize {
        self.lock().assume_count
    }

    // ----- CloudFormation scripting -----

    /// Queues the outcome of the next operation on stack `stack` (see
    /// [`Outcome`]). Outcomes are consumed in order; with none queued an
    /// operation succeeds.
    pub fn script(&self, account: &AccountId, region: Region, stack: &str, outcome: Outcome) {
        self.lock()
            .scripts
            .entry(StackKey::new(account, region, stack))
            .or_default()
            .push_back(outcome);
    }

    /// How long every stack operation takes (default zero). A failing
    /// create or update fails half-way and rolls back in the second half.
    pub fn set_operation_duration(&self, duration: Duration) {
        self.lock().default_duration = duration;
    }

    /// How long operations on one stack take, overriding the global value.
    pub fn set_stack_operation_duration(
        &self,
        account: &AccountId,
        region: Region,
        stack: &str,
        duration: Duration,
    ) {
        self.lock()
            .durations
            .insert(StackKey::new(account, region, stack), duration);
    }

    /// Seeds stack `name` in `status` with `template_body` and
    /// `parameters`, replacing any stack of that name; returns its id. A
    /// seeded `*_IN_PROGRESS` stack is an operation someone else started:
    /// it settles after the operation duration to its natural end state,
    /// or as the next scripted outcome says (script before seeding).
    ///
    /// # Panics
    /// If the template or parameters are invalid.
    pub fn put_stack(
        &self,
        account: &AccountId,
        region: Region,
        name: &str,
        status: StackStatus,
        template_body: &str,
        parameters: &[Parameter],
    ) -> String {
        let mut state = self.lock();
        let key = StackKey::new(account, region, name);
        state
            .seed_stack(key, status, template_body, parameters, Instant::now())
            .unwrap_or_else(|e| panic!("put_stack {name}: {e}"))
    }

    /// Makes the next `n` calls of `operation` (e.g. `DescribeStacks`,
    /// `AssumeRole`) acting in `account` fail with `Throttling`. The region
    /// is matched for regional clients; the operator's STS calls match any.
    pub fn throttle(&self, account: &AccountId, region: Region, operation: &str, n: usize) {
        let error = AwsError::new(ErrorKind::Throttled, "fake", "fake", "Rate exceeded")
            .with_code("Throttling");
        self.inject_error(account, region, operation, n, error);
    }

    /// Makes the next `n` calls of `operation` acting in `account` fail with
    /// `error` (its service and operation are set to the call's).
    pub fn inject_error(
        &self,
        account: &AccountId,
        region: Region,
        operation: &str,
        n: usize,
        error: AwsError,
    ) {
        self.lock().injections.push(Injection {
            account: account.clone(),
            region,
            operation: operation.to_owned(),
            remaining: n,
            error,
        });
    }

    /// Makes every call, STS included, fail (`ServiceUnavailable`, kind
    /// `Transient`) after being recorded in [`FakeCloud::calls`].
    pub fn fail_all(&self) {
        self.lock().failing = true;
    }

    /// Undoes [`FakeCloud::fail_all`].
    pub fn stop_failing(&self) {
        self.lock().failing = false;
    }

    /// Sleeps this long (tokio time) at the start of every call.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    // ----- observation -----

    /// Every call received, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// The most stack operations that were in progress at the same time,
    /// across all accounts (an operation is in progress from its start to
    /// its deadline, so give operations a duration to measure overlap).
    pub fn max_concurrent_operations(&self) -> usize {
        self.lock().max_concurrent
    }

    /// Starts [`Self::max_concurrent_operations`] over from the operations
    /// in progress now.
    pub fn reset_max_concurrent_operations(&self) {
        let now = self.operations_in_progress();
        self.lock().max_concurrent = now;
    }

    /// Stack operations in progress now.
    pub fn operations_in_progress(&self) -> usize {
        let mut state = self.lock();
        state.advance_all(Instant::now());
        state.in_flight.len()
    }

    /// The stack as `DescribeStacks` would show it now (not recorded as a
    /// call); `None` if it does not exist or was deleted.
    pub fn stack(
        &self,
        account: &AccountId,
        region: Region,
        name: &str,
    ) -> Option<StackDescription> {
        let mut state = self.lock();
        state.describe(&StackKey::new(account, region, name), Instant::now())
    }

    /// What the stack is deployed with now (for an update in progress, the
    /// previous deployment).
    pub fn deployed(
        &self,
        account: &AccountId,
        region: Region,
        name: &str,
    ) -> Option<DeployedStack> {
        let mut state = self.lock();
        let key = StackKey::new(account, region, name);
        state.advance(&key, Instant::now());
        state.live(&key).map(|s| s.live.public())
    }

    /// The stack's events, newest first (not recorded as a call).
    pub fn events(&self, account: &AccountId, region: Region, name: &str) -> Vec<StackEvent> {
        let mut state = self.lock();
        let key = StackKey::new(account, region, name);
        state.advance(&key, Instant::now());
        state
            .stacks
            .get(&key)
            .map(|s| s.events.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    /// Resources skipped by `ContinueUpdateRollback` calls on the stack.
    pub fn skipped_resources(
        &self,
        account: &AccountId,
        region: Region,
        name: &str,
    ) -> Vec<String> {
        let state = self.lock();
        state
            .stacks
            .get(&StackKey::new(account, region, name))
            .map(|s| s.skipped.clone())
            .unwrap_or_default()
    }
}

impl Connector for FakeCloud {
    fn operator_sts(&self) -> Arc<dyn Sts> {
        Arc::new(FakeOperatorSts::new(self.clone()))
    }

    fn tenant_sts(&self, credentials: Arc<TenantCredentials>, region: Region) -> Arc<dyn Sts> {
        Arc::new(FakeTenantSts::new(self.clone(), credentials, region))
    }

    fn tenant_cloudformation(
        &self,
        credentials: Arc<TenantCredentials>,
        region: Region,
    ) -> Arc<dyn CloudFormation> {
        Arc::new(FakeCloudFormation::new(self.clone(), credentials, region))
    }

    fn tenant_sqs(&self, credentials: Arc<TenantCredentials>, region: Region) -> Arc<dyn Sqs> {
        Arc::new(FakeSqs::new(self.clone(), credentials, region))
    }

    fn s3(&self, access: &super::S3Access) -> Arc<dyn super::S3> {
        Arc::new(FakeS3::new(self.clone(), access.clone()))
    }

    fn tenant_bedrock(
        &self,
        credentials: Arc<TenantCredentials>,
        region: Region,
    ) -> Arc<dyn super::Bedrock> {
        Arc::new(FakeBedrock::new(self.clone(), credentials, region))
    }

    fn secrets_manager(&self, scope: &ClientScope) -> Arc<dyn SecretsManager> {
        Arc::new(FakeSecretsManager::new(self.clone(), scope.clone()))
    }

    fn parameter_store(&self, scope: &ClientScope) -> Arc<dyn ParameterStore> {
        Arc::new(FakeParameterStore::new(self.clone(), scope.clone()))
    }

    fn kms(&self, scope: &ClientScope) -> Arc<dyn Kms> {
        Arc::new(FakeKms::new(self.clone(), scope.clone()))
    }
}

/// Sleeps `duration` of tokio time, not at all when it is zero.
async fn sleep(duration: Duration) {
    if !duration.is_zero() {
        tokio::time::sleep(duration).await;
    }
}
