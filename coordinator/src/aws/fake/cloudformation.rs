//! The fake's CloudFormation: stacks per account, region and name, with
//! operations that take time, fail, roll back and hang as scripted, change
//! sets with a resource diff, events, and request-token idempotency.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use stacks::Parameter;
use stacks::ids::{Region, RoleArn};
use tokio::time::Instant;

use super::outputs::{self, ResolvedParameters, Scope, uuid_like};
use super::{Clock, DeployedStack, FakeCloud, Outcome, StackKey, State};
use crate::aws::{
    AwsError, ChangeSetDescription, ChangeSetStatus, CloudFormation, CreateChangeSet, CreateStack,
    ErrorKind, ResourceChange, StackCapability, StackDescription, StackEvent, StackStatus,
    TenantCredentials,
};

const STACK_TYPE: &str = "AWS::CloudFormation::Stack";
const USER_INITIATED: &str = "User Initiated";
/// What CloudFormation says about a change set that changes nothing.
pub const NO_CHANGES: &str = "The submitted information didn't contain changes. Submit different information to create a change set.";

fn cfn_error(operation: &'static str, code: &str, message: impl Into<String>) -> AwsError {
    let message = message.into();
    let kind = AwsError::classify(Some(code), &message);
    AwsError::new(kind, "cloudformation", operation, message).with_code(code)
}

fn validation(operation: &'static str, message: impl Into<String>) -> AwsError {
    cfn_error(operation, "ValidationError", message)
}

fn change_set_not_found(operation: &'static str, name: &str) -> AwsError {
    cfn_error(
        operation,
        "ChangeSetNotFound",
        format!("ChangeSet [{name}] does not exist"),
    )
}

fn invalid_change_set_status(operation: &'static str, message: String) -> AwsError {
    AwsError::new(ErrorKind::Validation, "cloudformation", operation, message)
        .with_code("InvalidChangeSetStatus")
}

fn cannot_update(operation: &'static str, stack: &StackState) -> AwsError {
    validation(
        operation,
        format!(
            "Stack:{} is in {} state and can not be updated.",
            stack.id, stack.status
        ),
    )
}

/// Statuses from which a stack can be updated.
fn updatable(status: &StackStatus) -> bool {
    use StackStatus::*;
    matches!(
        status,
        CreateComplete
            | UpdateComplete
            | UpdateRollbackComplete
            | ImportComplete
            | ImportRollbackComplete
    )
}

/// Statuses in which `DescribeStacks` shows outputs.
fn has_outputs(status: &StackStatus) -> bool {
    use StackStatus::*;
    !matches!(
        status,
        CreateInProgress
            | CreateFailed
            | RollbackInProgress
            | RollbackFailed
            | RollbackComplete
            | DeleteComplete
            | ReviewInProgress
    )
}

/// The stack name in a name or a stack ARN (`...:stack/<name>/<uuid>`).
fn stack_name(name_or_id: &str) -> &str {
    name_or_id
        .strip_prefix("arn:")
        .and_then(|rest| rest.split_once(":stack/"))
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or(name_or_id)
}

fn check_stack_name(operation: &'static str, name: &str) -> Result<(), AwsError> {
    let ok = name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(validation(
            operation,
            format!(
                "1 validation error detected: Value '{name}' at 'stackName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]*"
            ),
        ))
    }
}

fn check_capabilities(
    operation: &'static str,
    template: &Value,
    acknowledged: &[StackCapability],
) -> Result<(), AwsError> {
    let missing = match outputs::required_capability(template) {
        Some(StackCapability::NamedIam) if !acknowledged.contains(&StackCapability::NamedIam) => {
            Some(StackCapability::NamedIam)
        }
        Some(StackCapability::Iam)
            if !acknowledged.contains(&StackCapability::Iam)
                && !acknowledged.contains(&StackCapability::NamedIam) =>
        {
            Some(StackCapability::Iam)
        }
        _ => None,
    };
    match missing {
        Some(capability) => Err(cfn_error(
            operation,
            "InsufficientCapabilitiesException",
            format!("Requires capabilities : [{}]", capability.as_str()),
        )),
        None => Ok(()),
    }
}

/// A template with its parameters, tags and role, as submitted.
#[derive(Debug, Clone)]
pub(super) struct Deployment {
    body: String,
    template: Value,
    parameters: ResolvedParameters,
    tags: BTreeMap<String, String>,
    role_arn: Option<RoleArn>,
    capabilities: Vec<StackCapability>,
    outputs: BTreeMap<String, String>,
    /// Names of the SQS queues the template creates.
    queues: BTreeSet<String>,
}

impl Deployment {
    /// Parses and checks the template and parameters and evaluates the
    /// outputs in stack `stack_id`; errors are `ValidationError` messages.
    fn build(
        key: &StackKey,
        stack_id: &str,
        body: &str,
        parameters: &[Parameter],
        tags: BTreeMap<String, String>,
        role_arn: Option<RoleArn>,
        capabilities: Vec<StackCapability>,
    ) -> Result<Self, String> {
        let template = outputs::parse_template(body)?;
        let parameters = outputs::resolve_parameters(&template, parameters)?;
        let scope = scope(key, stack_id, &template, &parameters.values);
        let outputs = scope.check()?;
        let queues = scope.queue_names()?;
        Ok(Self {
            body: body.to_owned(),
            template,
            parameters,
            tags,
            role_arn,
            capabilities,
            outputs,
            queues,
        })
    }

    fn scope<'a>(&'a self, key: &'a StackKey, stack_id: &'a str) -> Scope<'a> {
        scope(key, stack_id, &self.template, &self.parameters.values)
    }

    pub(super) fn public(&self) -> DeployedStack {
        DeployedStack {
            template_body: self.body.clone(),
            parameters: self.parameters.values.clone(),
            tags: self.tags.clone(),
            role_arn: self.role_arn.clone(),
            capabilities: self.capabilities.clone(),
        }
    }
}

fn scope<'a>(
    key: &'a StackKey,
    stack_id: &'a str,
    template: &'a Value,
    parameters: &'a BTreeMap<String, String>,
) -> Scope<'a> {
    Scope {
        account: &key.account,
        region: key.region,
        stack_name: &key.name,
        stack_id,
        template,
        parameters,
    }
}

/// The kind of a running stack operation.
#[derive(Debug, Clone)]
enum Op {
    Create,
    Update,
    Delete,
    ContinueRollback,
    /// A seeded `ROLLBACK_IN_PROGRESS`.
    Rollback,
    /// A seeded cleanup or import that ends in this status.
    Settle(StackStatus),
}

#[derive(Debug, Clone)]
struct Pending {
    op: Op,
    outcome: Outcome,
    start: Instant,
    /// `None`: never finishes.
    deadline: Option<Instant>,
    /// The forward failure (half-way) has been applied.
    failed: bool,
    change_set: Option<String>,
}

#[derive(Debug, Clone)]
struct ChangeSet {
    name: String,
    id: String,
    token: String,
    status: ChangeSetStatus,
    execution_status: &'static str,
    reason: Option<String>,
    changes: Vec<ResourceChange>,
    deployment: Deployment,
    executed_token: Option<String>,
}

/// One stack.
#[derive(Debug, Clone)]
pub(super) struct StackState {
    key: StackKey,
    id: String,
    status: StackStatus,
    reason: Option<String>,
    /// The deployment in effect (for a create, the one being created).
    pub(super) live: Deployment,
    /// The deployment an update in progress is applying.
    incoming: Option<Deployment>,
    pending: Option<Pending>,
    /// Oldest first.
    pub(super) events: Vec<StackEvent>,
    change_sets: Vec<ChangeSet>,
    create_token: String,
    tokens: HashSet<String>,
    failed_resources: BTreeSet<String>,
    pub(super) skipped: Vec<String>,
}

/// The fake clock and event counter, borrowed from [`State`] next to a stack.
struct Env<'a> {
    clock: &'a Clock,
    seq: &'a mut u64,
}

impl StackState {
    fn new(key: StackKey, id: String, live: Deployment, create_token: String) -> Self {
        Self {
            key,
            id,
            status: StackStatus::CreateInProgress,
            reason: None,
            live,
            incoming: None,
            pending: None,
            events: Vec::new(),
            change_sets: Vec::new(),
            create_token,
            tokens: HashSet::new(),
            failed_resources: BTreeSet::new(),
            skipped: Vec::new(),
        }
    }

    fn resource_type(&self, logical: &str) -> String {
        let template = &self.incoming.as_ref().unwrap_or(&self.live).template;
        outputs::resource_type(template, logical)
            .or_else(|| outputs::resource_type(&self.live.template, logical))
            .unwrap_or("AWS::CloudFormation::CustomResource")
            .to_owned()
    }

    fn event(
        &mut self,
        env: &mut Env<'_>,
        at: Instant,
        logical: &str,
        status: &str,
        reason: Option<&str>,
    ) {
        *env.seq += 1;
        let resource_type = if logical == self.key.name {
            STACK_TYPE.to_owned()
        } else {
            self.resource_type(logical)
        };
        self.events.push(StackEvent {
            event_id: uuid_like(&format!("{}/event/{}", self.id, env.seq)),
            timestamp: env.clock.utc(at),
            logical_id: logical.to_owned(),
            resource_type,
            status: status.to_owned(),
            reason: reason.map(str::to_owned),
        });
    }

    /// Sets the stack's status and reason and records the stack event.
    fn transition(
        &mut self,
        env: &mut Env<'_>,
        at: Instant,
        status: StackStatus,
        reason: Option<String>,
    ) {
        let name = self.key.name.clone();
        self.event(env, at, &name, status.as_str(), reason.as_deref());
        self.status = status;
        self.reason = reason;
    }

    fn set_execution(&mut self, name: Option<&str>, execution_status: &'static str) {
        if let Some(cs) = self
            .change_sets
            .iter_mut()
            .find(|c| Some(c.name.as_str()) == name)
        {
            cs.execution_status = execution_status;
        }
    }

    /// Applies what has happened by `now`; returns whether an operation is
    /// still in progress.
    fn progress(&mut self, env: &mut Env<'_>, now: Instant) -> bool {
        let Some(pending) = self.pending.clone() else {
            return false;
        };
        let Some(deadline) = pending.deadline else {
            return true;
        };
        let failure = pending
            .outcome
            .failure()
            .map(|(r, why, rollback_fails)| (r.to_owned(), why.to_owned(), rollback_fails));
        if let Some((resource, why, _)) = &failure
            && !pending.failed
            && matches!(pending.op, Op::Create | Op::Update)
        {
            let half_way = pending.start + (deadline - pending.start) / 2;
            if now >= half_way {
                self.fail_forward(env, half_way, &pending.op, resource, why);
                if let Some(p) = self.pending.as_mut() {
                    p.failed = true;
                }
            }
        }
        if now < deadline {
            return true;
        }
        self.pending = None;
        self.finish(
            env,
            deadline,
            &pending.op,
            failure,
            pending.change_set.as_deref(),
        );
        false
    }

    /// A create or update fails half-way and starts rolling back.
    fn fail_forward(&mut self, env: &mut Env<'_>, at: Instant, op: &Op, resource: &str, why: &str) {
        if matches!(op, Op::Create) {
            self.event(env, at, resource, "CREATE_FAILED", Some(why));
            let reason = format!(
                "The following resource(s) failed to create: [{resource}]. Rollback requested by user."
            );
            self.transition(env, at, StackStatus::RollbackInProgress, Some(reason));
        } else {
            self.event(env, at, resource, "UPDATE_FAILED", Some(why));
            let reason = format!("The following resource(s) failed to update: [{resource}]. ");
            self.transition(env, at, StackStatus::UpdateRollbackInProgress, Some(reason));
        }
    }

    fn finish(
        &mut self,
        env: &mut Env<'_>,
        at: Instant,
        op: &Op,
        failure: Option<(String, String, bool)>,
        change_set: Option<&str>,
    ) {
        use StackStatus::*;
        let failed_to = |what: &str, resource: &str| {
            Some(format!(
                "The following resource(s) failed to {what}: [{resource}]. "
            ))
        };
        match (op, failure) {
            (Op::Create, None) => self.transition(env, at, CreateComplete, None),
            (Op::Create | Op::Rollback, Some((resource, why, true))) => {
                self.event(env, at, &resource, "DELETE_FAILED", Some(&why));
                self.transition(env, at, RollbackFailed, failed_to("delete", &resource));
            }
            (Op::Create, Some((resource, _, false))) => {
                self.event(env, at, &resource, "DELETE_COMPLETE", None);
                let reason = self.reason.clone();
                self.transition(env, at, RollbackComplete, reason);
            }
            (Op::Update, None) => {
                if let Some(incoming) = self.incoming.take() {
                    self.live = incoming;
                }
                self.transition(env, at, UpdateCompleteCleanupInProgress, None);
                self.transition(env, at, UpdateComplete, None);
                self.set_execution(change_set, "EXECUTE_COMPLETE");
            }
            (Op::Update, Some((resource, why, true))) => {
                self.incoming = None;
                self.event(env, at, &resource, "UPDATE_FAILED", Some(&why));
                self.transition(
                    env,
                    at,
                    UpdateRollbackFailed,
                    failed_to("update", &resource),
                );
                self.failed_resources.insert(resource);
                self.set_execution(change_set, "EXECUTE_FAILED");
            }
            (Op::Update, Some(_)) => {
                self.incoming = None;
                let reason = self.reason.clone();
                self.transition(
                    env,
                    at,
                    UpdateRollbackCompleteCleanupInProgress,
                    reason.clone(),
                );
                self.transition(env, at, UpdateRollbackComplete, reason);
                self.set_execution(change_set, "EXECUTE_FAILED");
            }
            (Op::Delete, None) => self.transition(env, at, DeleteComplete, None),
            (Op::Delete, Some((resource, why, _))) => {
                self.event(env, at, &resource, "DELETE_FAILED", Some(&why));
                self.transition(env, at, DeleteFailed, failed_to("delete", &resource));
            }
            (Op::ContinueRollback, None) => {
                self.incoming = None;
                self.failed_resources.clear();
                self.transition(env, at, UpdateRollbackCompleteCleanupInProgress, None);
                self.transition(env, at, UpdateRollbackComplete, None);
            }
            (Op::ContinueRollback, Some((resource, why, _))) => {
                self.event(env, at, &resource, "UPDATE_FAILED", Some(&why));
                self.transition(
                    env,
                    at,
                    UpdateRollbackFailed,
                    failed_to("update", &resource),
                );
                self.failed_resources.insert(resource);
            }
            (Op::Rollback, _) => {
                let reason = self.reason.clone();
                self.transition(env, at, RollbackComplete, reason);
            }
            (Op::Settle(status), _) => self.transition(env, at, status.clone(), None),
        }
    }

    fn description(&self) -> StackDescription {
        let shown = self.incoming.as_ref().unwrap_or(&self.live);
        let parameters = shown
            .parameters
            .values
            .iter()
            .map(|(k, v)| {
                let v = if shown.parameters.no_echo.contains(k) {
                    "****"
                } else {
                    v
                };
                (k.clone(), v.to_owned())
            })
            .collect();
        StackDescription {
            stack_id: self.id.clone(),
            name: self.key.name.clone(),
            status: self.status.clone(),
            status_reason: self.reason.clone(),
            parameters,
            outputs: if has_outputs(&self.status) {
                self.live.outputs.clone()
            } else {
                BTreeMap::new()
            },
            tags: shown.tags.clone(),
        }
    }

    /// The stack's id.
    pub(super) fn id(&self) -> &str {
        &self.id
    }

    /// The SQS queues the stack has now: those of the deployment in effect
    /// and, while an update is in progress, of the incoming one; none once
    /// the stack is deleted or its creation rolled back.
    pub(super) fn queues(&self) -> impl Iterator<Item = &String> {
        let gone = matches!(
            self.status,
            StackStatus::DeleteComplete | StackStatus::RollbackComplete
        );
        let incoming = self.incoming.as_ref().map(|d| &d.queues);
        (!gone)
            .then_some(&self.live.queues)
            .into_iter()
            .chain(incoming.filter(|_| !gone))
            .flatten()
    }

    fn change_set(&self, name_or_id: &str) -> Option<usize> {
        self.change_sets
            .iter()
            .position(|c| c.name == name_or_id || c.id == name_or_id)
    }
}

impl State {
    fn env(&mut self) -> (Env<'_>, &mut BTreeMap<StackKey, StackState>) {
        (
            Env {
                clock: &self.clock,
                seq: &mut self.seq,
            },
            &mut self.stacks,
        )
    }

    /// Applies whatever of `key`'s operation has happened by `now`.
    pub(super) fn advance(&mut self, key: &StackKey, now: Instant) {
        let (mut env, stacks) = self.env();
        let running = stacks
            .get_mut(key)
            .is_some_and(|s| s.progress(&mut env, now));
        if !running {
            self.in_flight.remove(key);
        }
    }

    /// Advances every stack with an operation in progress.
    pub(super) fn advance_all(&mut self, now: Instant) {
        let keys: Vec<StackKey> = self.in_flight.iter().cloned().collect();
        for key in keys {
            self.advance(&key, now);
        }
    }

    /// The stack named by `key`, unless it was deleted.
    pub(super) fn live(&self, key: &StackKey) -> Option<&StackState> {
        self.stacks
            .get(key)
            .filter(|s| s.status != StackStatus::DeleteComplete)
    }

    fn live_mut(&mut self, key: &StackKey) -> Option<&mut StackState> {
        self.stacks
            .get_mut(key)
            .filter(|s| s.status != StackStatus::DeleteComplete)
    }

    pub(super) fn describe(&mut self, key: &StackKey, now: Instant) -> Option<StackDescription> {
        self.advance(key, now);
        self.live(key).map(StackState::description)
    }

    /// By name, or by stack id (which also finds deleted stacks).
    fn find(&self, key: &StackKey, name_or_id: &str) -> Option<&StackState> {
        if name_or_id.starts_with("arn:") {
            self.stacks
                .get(key)
                .filter(|s| s.id == name_or_id)
                .or_else(|| self.graveyard.iter().find(|s| s.id == name_or_id))
        } else {
            self.live(key)
        }
    }

    /// Returns a scripted `Reject` for the call, consuming it.
    fn reject_scripted(&mut self, key: &StackKey, operation: &'static str) -> Result<(), AwsError> {
        let Some(queue) = self.scripts.get_mut(key) else {
            return Ok(());
        };
        if let Some(Outcome::Reject(_)) = queue.front()
            && let Some(Outcome::Reject(mut error)) = queue.pop_front()
        {
            error.service = "cloudformation";
            error.operation = operation;
            return Err(error);
        }
        Ok(())
    }

    fn new_stack_id(&mut self, key: &StackKey) -> String {
        let seq = self.next_seq();
        let StackKey {
            account,
            region,
            name,
        } = key;
        let uuid = uuid_like(&format!("stack/{account}/{region}/{name}/{seq}"));
        format!("arn:aws:cloudformation:{region}:{account}:stack/{name}/{uuid}")
    }

    fn insert(&mut self, stack: StackState) {
        let key = stack.key.clone();
        self.in_flight.remove(&key);
        if let Some(old) = self.stacks.insert(key, stack) {
            self.graveyard.push(old);
        }
    }

    /// Starts operation `op` on the stack: takes the next scripted outcome,
    /// sets the deadline, and counts concurrent operations.
    fn begin(&mut self, key: &StackKey, op: Op, change_set: Option<String>, now: Instant) {
        let outcome = match self.scripts.get_mut(key) {
            Some(queue) if !matches!(queue.front(), None | Some(Outcome::Reject(_))) => {
                queue.pop_front().unwrap_or(Outcome::Succeed)
            }
            _ => Outcome::Succeed,
        };
        let duration = self
            .durations
            .get(key)
            .copied()
            .unwrap_or(self.default_duration);
        let deadline = (outcome != Outcome::Hang).then(|| now + duration);
        self.advance_all(now);
        if let Some(stack) = self.stacks.get_mut(key) {
            stack.pending = Some(Pending {
                op,
                outcome,
                start: now,
                deadline,
                failed: false,
                change_set,
            });
        }
        self.in_flight.insert(key.clone());
        self.max_concurrent = self.max_concurrent.max(self.in_flight.len());
    }

    fn create_stack(
        &mut self,
        key: StackKey,
        request: &CreateStack,
        now: Instant,
    ) -> Result<String, AwsError> {
        const OP: &str = "CreateStack";
        self.advance(&key, now);
        self.reject_scripted(&key, OP)?;
        if let Some(stack) = self.live(&key) {
            if stack.create_token == request.client_request_token {
                return Ok(stack.id.clone());
            }
            return Err(cfn_error(
                OP,
                "AlreadyExistsException",
                format!("Stack [{}] already exists", key.name),
            ));
        }
        check_stack_name(OP, &key.name)?;
        let id = self.new_stack_id(&key);
        let deployment = Deployment::build(
            &key,
            &id,
            &request.template_body,
            &request.parameters,
            request.tags.clone(),
            request.role_arn.clone(),
            request.capabilities.clone(),
        )
        .map_err(|e| validation(OP, e))?;
        check_capabilities(OP, &deployment.template, &request.capabilities)?;
        let mut stack = StackState::new(
            key.clone(),
            id.clone(),
            deployment,
            request.client_request_token.clone(),
        );
        let (mut env, _) = self.env();
        stack.transition(
            &mut env,
            now,
            StackStatus::CreateInProgress,
            Some(USER_INITIATED.into()),
        );
        self.insert(stack);
        self.begin(&key, Op::Create, None, now);
        Ok(id)
    }

    pub(super) fn seed_stack(
        &mut self,
        key: StackKey,
        status: StackStatus,
        body: &str,
        parameters: &[Parameter],
        now: Instant,
    ) -> Result<String, String> {
        let id = self.new_stack_id(&key);
        let live = Deployment::build(
            &key,
            &id,
            body,
            parameters,
            BTreeMap::new(),
            None,
            Vec::new(),
        )?;
        let mut stack = StackState::new(key.clone(), id.clone(), live, String::new());
        let (mut env, _) = self.env();
        let name = key.name.clone();
        stack.event(
            &mut env,
            now,
            &name,
            status.as_str(),
            Some("Seeded by the test"),
        );
        stack.status = status.clone();
        use StackStatus::*;
        let op = match status {
            CreateInProgress => Some(Op::Create),
            UpdateInProgress => {
                stack.incoming = Some(stack.live.clone());
                Some(Op::Update)
            }
            DeleteInProgress => Some(Op::Delete),
            UpdateRollbackInProgress => Some(Op::ContinueRollback),
            RollbackInProgress => Some(Op::Rollback),
            UpdateCompleteCleanupInProgress => Some(Op::Settle(UpdateComplete)),
            UpdateRollbackCompleteCleanupInProgress => Some(Op::Settle(UpdateRollbackComplete)),
            ImportInProgress => Some(Op::Settle(ImportComplete)),
            ImportRollbackInProgress => Some(Op::Settle(ImportRollbackComplete)),
            _ => None,
        };
        self.insert(stack);
        if let Some(op) = op {
            self.begin(&key, op, None, now);
        }
        Ok(id)
    }

    fn create_change_set(
        &mut self,
        key: StackKey,
        request: &CreateChangeSet,
        now: Instant,
    ) -> Result<String, AwsError> {
        const OP: &str = "CreateChangeSet";
        self.advance(&key, now);
        self.reject_scripted(&key, OP)?;
        let Some(stack) = self.live(&key) else {
            return Err(validation(
                OP,
                format!("Stack [{}] does not exist", key.name),
            ));
        };
        if let Some(i) = stack.change_set(&request.change_set_name) {
            let existing = &stack.change_sets[i];
            if existing.token == request.client_token {
                return Ok(existing.id.clone());
            }
            return Err(cfn_error(
                OP,
                "AlreadyExistsException",
                format!("ChangeSet [{}] already exists", request.change_set_name),
            ));
        }
        if stack.pending.is_some() || !updatable(&stack.status) {
            return Err(cannot_update(OP, stack));
        }
        let tags = if request.tags.is_empty() {
            stack.live.tags.clone()
        } else {
            request.tags.clone()
        };
        let role_arn = request
            .role_arn
            .clone()
            .or_else(|| stack.live.role_arn.clone());
        let deployment = Deployment::build(
            &key,
            &stack.id,
            &request.template_body,
            &request.parameters,
            tags,
            role_arn,
            request.capabilities.clone(),
        )
        .map_err(|e| validation(OP, e))?;
        check_capabilities(OP, &deployment.template, &request.capabilities)?;
        let live = &stack.live;
        let tags_changed = deployment.tags != live.tags;
        let unchanged = deployment.template == live.template
            && deployment.parameters.values == live.parameters.values
            && !tags_changed;
        let (status, execution_status, reason, changes) = if unchanged {
            (
                ChangeSetStatus::Failed,
                "UNAVAILABLE",
                Some(NO_CHANGES.to_owned()),
                Vec::new(),
            )
        } else {
            match outputs::diff(
                &live.scope(&key, &stack.id),
                &deployment.scope(&key, &stack.id),
            ) {
                Ok(mut changes) => {
                    if tags_changed {
                        tag_changes(&mut changes, &deployment.template);
                    }
                    (ChangeSetStatus::CreateComplete, "AVAILABLE", None, changes)
                }
                Err(reason) => (
                    ChangeSetStatus::Failed,
                    "UNAVAILABLE",
                    Some(reason),
                    Vec::new(),
                ),
            }
        };
        let seq = self.next_seq();
        let StackKey {
            account, region, ..
        } = &key;
        let name = &request.change_set_name;
        let uuid = uuid_like(&format!("changeset/{account}/{region}/{name}/{seq}"));
        let id = format!("arn:aws:cloudformation:{region}:{account}:changeSet/{name}/{uuid}");
        let change_set = ChangeSet {
            name: name.clone(),
            id: id.clone(),
            token: request.client_token.clone(),
            status,
            execution_status,
            reason,
            changes,
            deployment,
            executed_token: None,
        };
        if let Some(stack) = self.live_mut(&key) {
            stack.change_sets.push(change_set);
        }
        Ok(id)
    }

    fn describe_change_set(
        &mut self,
        key: &StackKey,
        change_set: &str,
        now: Instant,
    ) -> Result<ChangeSetDescription, AwsError> {
        const OP: &str = "DescribeChangeSet";
        self.advance(key, now);
        let stack = self
            .live(key)
            .ok_or_else(|| change_set_not_found(OP, change_set))?;
        let i = stack
            .change_set(change_set)
            .ok_or_else(|| change_set_not_found(OP, change_set))?;
        let cs = &stack.change_sets[i];
        Ok(ChangeSetDescription {
            status: cs.status.clone(),
            execution_status: Some(cs.execution_status.to_owned()),
            status_reason: cs.reason.clone(),
            changes: cs.changes.clone(),
        })
    }

    fn execute_change_set(
        &mut self,
        key: &StackKey,
        change_set: &str,
        token: &str,
        now: Instant,
    ) -> Result<(), AwsError> {
        const OP: &str = "ExecuteChangeSet";
        self.advance(key, now);
        self.reject_scripted(key, OP)?;
        let (mut env, stacks) = self.env();
        let stack = stacks
            .get_mut(key)
            .filter(|s| s.status != StackStatus::DeleteComplete)
            .ok_or_else(|| change_set_not_found(OP, change_set))?;
        let i = stack
            .change_set(change_set)
            .ok_or_else(|| change_set_not_found(OP, change_set))?;
        let cs = &stack.change_sets[i];
        if cs.executed_token.as_deref() == Some(token) {
            return Ok(());
        }
        if cs.status != ChangeSetStatus::CreateComplete || cs.execution_status != "AVAILABLE" {
            return Err(invalid_change_set_status(
                OP,
                format!(
                    "ChangeSet [{}] cannot be executed in its current execution status of [{}]",
                    cs.id, cs.execution_status
                ),
            ));
        }
        if stack.pending.is_some() || !updatable(&stack.status) {
            return Err(cannot_update(OP, stack));
        }
        let name = cs.name.clone();
        stack.incoming = Some(cs.deployment.clone());
        // Executing a change set removes the stack's other change sets.
        stack.change_sets.retain(|c| c.name == name);
        if let Some(cs) = stack.change_sets.first_mut() {
            cs.execution_status = "EXECUTE_IN_PROGRESS";
            cs.executed_token = Some(token.to_owned());
        }
        stack.transition(
            &mut env,
            now,
            StackStatus::UpdateInProgress,
            Some(USER_INITIATED.into()),
        );
        self.begin(key, Op::Update, Some(name), now);
        Ok(())
    }

    fn delete_change_set(
        &mut self,
        key: &StackKey,
        change_set: &str,
        now: Instant,
    ) -> Result<(), AwsError> {
        const OP: &str = "DeleteChangeSet";
        self.advance(key, now);
        let stack = self
            .live_mut(key)
            .ok_or_else(|| change_set_not_found(OP, change_set))?;
        let i = stack
            .change_set(change_set)
            .ok_or_else(|| change_set_not_found(OP, change_set))?;
        if stack.change_sets[i].execution_status == "EXECUTE_IN_PROGRESS" {
            return Err(invalid_change_set_status(
                OP,
                format!("ChangeSet [{change_set}] cannot be deleted while it is being executed"),
            ));
        }
        stack.change_sets.remove(i);
        Ok(())
    }

    fn delete_stack(&mut self, key: &StackKey, now: Instant) -> Result<(), AwsError> {
        const OP: &str = "DeleteStack";
        self.advance(key, now);
        self.reject_scripted(key, OP)?;
        let (mut env, stacks) = self.env();
        let Some(stack) = stacks
            .get_mut(key)
            .filter(|s| s.status != StackStatus::DeleteComplete)
        else {
            return Ok(());
        };
        if stack.status == StackStatus::DeleteInProgress {
            return Ok(());
        }
        if stack.pending.is_some() {
            return Err(validation(
                OP,
                format!(
                    "Stack [{}] cannot be deleted while in status {}",
                    key.name, stack.status
                ),
            ));
        }
        stack.transition(
            &mut env,
            now,
            StackStatus::DeleteInProgress,
            Some(USER_INITIATED.into()),
        );
        self.begin(key, Op::Delete, None, now);
        Ok(())
    }

    fn continue_update_rollback(
        &mut self,
        key: &StackKey,
        skip: &[String],
        token: &str,
        now: Instant,
    ) -> Result<(), AwsError> {
        const OP: &str = "ContinueUpdateRollback";
        self.advance(key, now);
        self.reject_scripted(key, OP)?;
        let (mut env, stacks) = self.env();
        let Some(stack) = stacks
            .get_mut(key)
            .filter(|s| s.status != StackStatus::DeleteComplete)
        else {
            return Err(validation(
                OP,
                format!("Stack [{}] does not exist", key.name),
            ));
        };
        if stack.tokens.contains(token) {
            return Ok(());
        }
        if stack.pending.is_some() || stack.status != StackStatus::UpdateRollbackFailed {
            return Err(validation(
                OP,
                format!(
                    "Stack {} is in {} state and can not continue update rollback: ContinueUpdateRollback is only possible in UPDATE_ROLLBACK_FAILED",
                    stack.id, stack.status
                ),
            ));
        }
        for resource in skip {
            let known = if stack.failed_resources.is_empty() {
                outputs::resource_type(&stack.live.template, resource).is_some()
            } else {
                stack.failed_resources.contains(resource)
            };
            if !known {
                return Err(validation(
                    OP,
                    format!(
                        "Resource [{resource}] is not in the UPDATE_FAILED state and cannot be skipped"
                    ),
                ));
            }
        }
        stack.tokens.insert(token.to_owned());
        stack.transition(
            &mut env,
            now,
            StackStatus::UpdateRollbackInProgress,
            Some(USER_INITIATED.into()),
        );
        for resource in skip {
            stack.event(
                &mut env,
                now,
                resource,
                "UPDATE_COMPLETE",
                Some("Resource skipped during UpdateRollback"),
            );
            stack.failed_resources.remove(resource);
            stack.skipped.push(resource.clone());
        }
        self.begin(key, Op::ContinueRollback, None, now);
        Ok(())
    }

    fn stack_events(
        &mut self,
        key: &StackKey,
        name_or_id: &str,
        now: Instant,
    ) -> Result<Vec<StackEvent>, AwsError> {
        self.advance(key, now);
        let stack = self.find(key, name_or_id).ok_or_else(|| {
            validation(
                "DescribeStackEvents",
                format!("Stack [{name_or_id}] does not exist"),
            )
        })?;
        Ok(stack.events.iter().rev().cloned().collect())
    }
}

/// Stack tags propagate to every resource: each one not otherwise changed
/// is modified in place.
fn tag_changes(changes: &mut Vec<ResourceChange>, template: &Value) {
    for (logical, resource) in outputs::resources(template) {
        if !changes.iter().any(|c| &c.logical_id == logical) {
            changes.push(ResourceChange {
                action: "Modify".into(),
                logical_id: logical.clone(),
                resource_type: resource["Type"].as_str().unwrap_or_default().to_owned(),
                replacement: Some("False".into()),
            });
        }
    }
    changes.sort_by(|a, b| a.logical_id.cmp(&b.logical_id));
}

/// CloudFormation in one tenant account and region. Each call first gets a
/// session from the tenant's credentials and acts in that session's account.
#[derive(Debug, Clone)]
pub struct FakeCloudFormation {
    cloud: FakeCloud,
    credentials: Arc<TenantCredentials>,
    region: Region,
}

impl FakeCloudFormation {
    pub(super) fn new(
        cloud: FakeCloud,
        credentials: Arc<TenantCredentials>,
        region: Region,
    ) -> Self {
        Self {
            cloud,
            credentials,
            region,
        }
    }

    async fn enter(&self, operation: &'static str, stack: &str) -> Result<StackKey, AwsError> {
        let session = self
            .cloud
            .tenant_call(
                &self.credentials,
                "cloudformation",
                operation,
                self.region,
                Some(stack),
            )
            .await?;
        Ok(StackKey::new(
            &session.account,
            self.region,
            stack_name(stack),
        ))
    }
}

#[async_trait]
impl CloudFormation for FakeCloudFormation {
    async fn describe_stack(&self, name: &str) -> Result<Option<StackDescription>, AwsError> {
        let key = self.enter("DescribeStacks", name).await?;
        let mut state = self.cloud.lock();
        state.advance(&key, Instant::now());
        Ok(state.find(&key, name).map(StackState::description))
    }

    async fn create_stack(&self, request: &CreateStack) -> Result<String, AwsError> {
        let key = self.enter("CreateStack", &request.name).await?;
        self.cloud.lock().create_stack(key, request, Instant::now())
    }

    async fn create_change_set(&self, request: &CreateChangeSet) -> Result<String, AwsError> {
        let key = self.enter("CreateChangeSet", &request.stack_name).await?;
        self.cloud
            .lock()
            .create_change_set(key, request, Instant::now())
    }

    async fn describe_change_set(
        &self,
        stack: &str,
        change_set: &str,
    ) -> Result<ChangeSetDescription, AwsError> {
        let key = self.enter("DescribeChangeSet", stack).await?;
        self.cloud
            .lock()
            .describe_change_set(&key, change_set, Instant::now())
    }

    async fn execute_change_set(
        &self,
        stack: &str,
        change_set: &str,
        token: &str,
    ) -> Result<(), AwsError> {
        let key = self.enter("ExecuteChangeSet", stack).await?;
        self.cloud
            .lock()
            .execute_change_set(&key, change_set, token, Instant::now())
    }

    async fn delete_change_set(&self, stack: &str, change_set: &str) -> Result<(), AwsError> {
        let key = self.enter("DeleteChangeSet", stack).await?;
        self.cloud
            .lock()
            .delete_change_set(&key, change_set, Instant::now())
    }

    async fn delete_stack(
        &self,
        stack: &str,
        _role_arn: Option<&RoleArn>,
        _token: &str,
    ) -> Result<(), AwsError> {
        let key = self.enter("DeleteStack", stack).await?;
        self.cloud.lock().delete_stack(&key, Instant::now())
    }

    async fn continue_update_rollback(
        &self,
        stack: &str,
        skip_resources: &[String],
        _role_arn: Option<&RoleArn>,
        token: &str,
    ) -> Result<(), AwsError> {
        let key = self.enter("ContinueUpdateRollback", stack).await?;
        self.cloud
            .lock()
            .continue_update_rollback(&key, skip_resources, token, Instant::now())
    }

    async fn stack_events(&self, stack: &str) -> Result<Vec<StackEvent>, AwsError> {
        let key = self.enter("DescribeStackEvents", stack).await?;
        self.cloud.lock().stack_events(&key, stack, Instant::now())
    }
}
