//! Realizes one plan item, once, and reports a typed [`Outcome`].
//!
//! Apply makes no decisions: the plan fixed the template, parameters,
//! execution role and action. A new stack is made with `CreateStack` (moto
//! loses the outputs of stacks created through change sets); an update goes
//! through a change set. Every mutating call carries a `ClientRequestToken`
//! derived from the plan generation, tenant and stack, so a retry or a
//! resumed coordinator is the same request, not a second one. Waiting uses
//! `wait::poll_until` (backoff with jitter, a deadline) and streams the
//! stack's events as progress. Nothing here retries a failed operation: the
//! next run plans again.

pub mod outcome;
pub mod recover;

use std::collections::{BTreeMap, HashSet};

use stacks::builtin::bootstrap::Bootstrap;
use stacks::builtin::storage::Storage;
use stacks::builtin::worker::Worker;
use stacks::ids::{ReleaseVersion, TenantId};
use stacks::outputs::OutputsError;
use stacks::{Parameter, Stack, StackKind};

pub use outcome::{FailedResource, Outcome};

use crate::aws::{CloudFormation, CreateStack, ErrorKind, Sentiment, StackDescription, StackEvent};
use crate::observe::{
    CAPABILITIES, ChangeRequest, TAG_GENERATION, TAG_RELEASE, TAG_TEMPLATE_HASH, TAG_TENANT,
    wait_for_change_set,
};
use crate::plan::{Action, PlanItem};
use crate::wait::{Expectation, Poll, WaitError, WaitPolicy, poll_until_expected};

/// The idempotency token of a plan item: the same generation, tenant and
/// stack always give the same token (at most 128 characters of `[A-Za-z0-9-]`).
pub fn request_token(generation: u64, tenant: &TenantId, stack: StackKind) -> String {
    format!("docproc-g{generation}-{tenant}-{stack}")
}

/// The name of the change set that applies generation `generation`.
pub fn change_set_name(generation: u64) -> String {
    format!("docproc-g{generation}")
}

/// The tags every stack we deploy carries.
pub fn stack_tags(
    tenant: &TenantId,
    release: &ReleaseVersion,
    template_hash: &str,
    generation: u64,
) -> BTreeMap<String, String> {
    [
        (TAG_TENANT, tenant.to_string()),
        (TAG_RELEASE, release.to_string()),
        (TAG_TEMPLATE_HASH, template_hash.to_owned()),
        (TAG_GENERATION, generation.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Checks raw outputs against the stack's typed outputs.
pub fn validate_outputs(
    kind: StackKind,
    outputs: &BTreeMap<String, String>,
) -> Result<(), OutputsError> {
    let pairs = outputs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    match kind {
        StackKind::Bootstrap => Bootstrap::parse_outputs(pairs).map(drop),
        StackKind::Storage => Storage::parse_outputs(pairs).map(drop),
        StackKind::Worker => Worker::parse_outputs(pairs).map(drop),
    }
}

/// Progress while applying.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    /// The operation was started.
    Started {
        /// Tenant.
        tenant: &'a TenantId,
        /// Stack.
        stack: StackKind,
        /// `create` or `update`.
        action: &'static str,
    },
    /// CloudFormation reported an event.
    Event {
        /// Tenant.
        tenant: &'a TenantId,
        /// Stack.
        stack: StackKind,
        /// The event.
        event: &'a StackEvent,
    },
}

/// Receives progress; must not block.
pub type ProgressFn<'a> = &'a (dyn Fn(Progress<'_>) + Send + Sync);

/// What apply needs besides the item.
#[derive(Clone, Copy)]
pub struct Applier<'a> {
    /// CloudFormation in the tenant's account.
    pub cloudformation: &'a dyn CloudFormation,
    /// How to wait for stacks.
    pub stack_wait: WaitPolicy,
    /// How to wait for change sets.
    pub change_set_wait: WaitPolicy,
    /// Where progress goes.
    pub progress: ProgressFn<'a>,
}

impl std::fmt::Debug for Applier<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("stack_wait", &self.stack_wait)
            .finish_non_exhaustive()
    }
}

/// One item to apply, with its parameters resolved.
#[derive(Debug, Clone)]
pub struct ApplyRequest<'a> {
    /// The plan item.
    pub item: &'a PlanItem,
    /// The plan's generation.
    pub generation: u64,
    /// The plan's release.
    pub release: &'a ReleaseVersion,
    /// Every parameter, known (earlier outputs substituted).
    pub parameters: Vec<Parameter>,
    /// When the operation is expected to settle (it started then, and took
    /// this long last time): the stack is polled densely around it.
    pub expected: Option<Expectation>,
}

impl Applier<'_> {
    /// Makes one attempt to realize `request`.
    pub async fn apply(&self, request: &ApplyRequest<'_>) -> Outcome {
        let item = request.item;
        match &item.action {
            Action::Create => self.create(request).await,
            Action::Update { .. } => self.update(request).await,
            Action::NoChange => Outcome::NoChange,
            Action::Blocked { reason } => Outcome::Failed {
                status: None,
                reason: format!("blocked by the plan: {reason}"),
                failed_resources: vec![],
            },
        }
    }

    fn change_request<'r>(&self, request: &'r ApplyRequest<'_>) -> ChangeRequest<'r> {
        let item = request.item;
        ChangeRequest {
            kind: item.stack,
            template: &item.template,
            parameters: request.parameters.clone(),
            tags: stack_tags(
                &item.tenant,
                request.release,
                &item.template_hash,
                request.generation,
            ),
            role_arn: item.execution_role.clone(),
        }
    }

    async fn create(&self, request: &ApplyRequest<'_>) -> Outcome {
        let item = request.item;
        let change = self.change_request(request);
        let token = request_token(request.generation, &item.tenant, item.stack);
        (self.progress)(Progress::Started {
            tenant: &item.tenant,
            stack: item.stack,
            action: "create",
        });
        let create = CreateStack {
            name: item.stack.stack_name().to_owned(),
            template_body: item.template.canonical_json().to_owned(),
            parameters: change.parameters,
            tags: change.tags,
            role_arn: Some(change.role_arn),
            capabilities: CAPABILITIES.to_vec(),
            client_request_token: token,
        };
        if let Err(e) = self.cloudformation.create_stack(&create).await {
            // A stack this generation already created (a resumed run) is
            // waited for; anything else is a failure to report.
            let ours = e.kind == ErrorKind::AlreadyExists
                && self.created_by(item.stack, request.generation).await;
            if !ours {
                return self.failed_call(item.stack, e.to_string()).await;
            }
        }
        self.wait(request, &HashSet::new()).await
    }

    async fn created_by(&self, stack: StackKind, generation: u64) -> bool {
        matches!(
            self.cloudformation.describe_stack(stack.stack_name()).await,
            Ok(Some(d)) if d.tags.get(TAG_GENERATION) == Some(&generation.to_string())
        )
    }

    async fn update(&self, request: &ApplyRequest<'_>) -> Outcome {
        let item = request.item;
        let stack = item.stack.stack_name();
        let change = self.change_request(request);
        let name = change_set_name(request.generation);
        let token = request_token(request.generation, &item.tenant, item.stack);
        (self.progress)(Progress::Started {
            tenant: &item.tenant,
            stack: item.stack,
            action: "update",
        });
        let create = crate::aws::CreateChangeSet {
            stack_name: stack.to_owned(),
            change_set_name: name.clone(),
            template_body: item.template.canonical_json().to_owned(),
            parameters: change.parameters,
            tags: change.tags,
            role_arn: Some(change.role_arn),
            capabilities: CAPABILITIES.to_vec(),
            client_token: token.clone(),
        };
        match self.cloudformation.create_change_set(&create).await {
            Ok(_) => {}
            Err(e) if e.kind == ErrorKind::NoUpdates => return Outcome::NoChange,
            Err(e) if e.kind == ErrorKind::AlreadyExists => {} // this generation's, from a resumed run
            Err(e) => return self.failed_call(item.stack, e.to_string()).await,
        }
        let description = match wait_for_change_set(
            self.cloudformation,
            stack,
            &name,
            self.change_set_wait,
        )
        .await
        {
            Ok(d) => d,
            Err(e) => {
                return self
                    .failed_call(item.stack, format!("change set {name}: {e}"))
                    .await;
            }
        };
        if description.is_empty_change() {
            let _ = self.cloudformation.delete_change_set(stack, &name).await;
            return Outcome::NoChange;
        }
        if description.status != crate::aws::ChangeSetStatus::CreateComplete {
            let reason = description
                .status_reason
                .unwrap_or_else(|| format!("{:?}", description.status));
            return self
                .failed_call(item.stack, format!("change set {name} failed: {reason}"))
                .await;
        }
        // Events from before this update are not progress.
        let seen: HashSet<String> = self
            .cloudformation
            .stack_events(stack)
            .await
            .map(|events| events.into_iter().map(|e| e.event_id).collect())
            .unwrap_or_default();
        if description.execution_status.as_deref() != Some("EXECUTE_COMPLETE")
            && description.execution_status.as_deref() != Some("EXECUTE_IN_PROGRESS")
            && let Err(e) = self
                .cloudformation
                .execute_change_set(stack, &name, &token)
                .await
        {
            return self.failed_call(item.stack, e.to_string()).await;
        }
        self.wait(request, &seen).await
    }

    /// A call was refused: report it with the stack's current status.
    async fn failed_call(&self, stack: StackKind, reason: String) -> Outcome {
        let status = match self.cloudformation.describe_stack(stack.stack_name()).await {
            Ok(Some(d)) => Some(d.status),
            _ => None,
        };
        Outcome::Failed {
            status,
            reason,
            failed_resources: vec![],
        }
    }

    async fn wait(&self, request: &ApplyRequest<'_>, seen_before: &HashSet<String>) -> Outcome {
        let item = request.item;
        let stack = item.stack.stack_name();
        let seen = std::sync::Mutex::new(seen_before.clone());
        let failed = std::sync::Mutex::new(Vec::<FailedResource>::new());
        let last_status = std::sync::Mutex::new(None);
        let result = poll_until_expected(self.stack_wait, request.expected, || async {
            self.stream_events(item, &seen, &failed).await;
            let description = self.cloudformation.describe_stack(stack).await?;
            if let Some(d) = &description {
                *last_status.lock().unwrap_or_else(|p| p.into_inner()) = Some(d.status.clone());
            }
            Ok(match description {
                Some(d) if d.status.is_settled() => Poll::Ready(Some(d)),
                Some(_) => Poll::Pending,
                None => Poll::Ready(None),
            })
        })
        .await;
        // Catch the events of the final transition.
        self.stream_events(item, &seen, &failed).await;
        let failed_resources = failed.into_inner().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(Some(d)) => settled(item.stack, d, failed_resources),
            Ok(None) => Outcome::Failed {
                status: None,
                reason: format!("{stack} disappeared while being deployed"),
                failed_resources,
            },
            Err(WaitError::Deadline(waited)) => Outcome::TimedOut {
                status: last_status.into_inner().unwrap_or_else(|p| p.into_inner()),
                waited,
            },
            Err(WaitError::Failed(e)) => Outcome::Failed {
                status: None,
                reason: e.to_string(),
                failed_resources,
            },
        }
    }

    async fn stream_events(
        &self,
        item: &PlanItem,
        seen: &std::sync::Mutex<HashSet<String>>,
        failed: &std::sync::Mutex<Vec<FailedResource>>,
    ) {
        let Ok(events) = self
            .cloudformation
            .stack_events(item.stack.stack_name())
            .await
        else {
            return;
        };
        let fresh: Vec<StackEvent> = {
            let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
            events
                .into_iter()
                .rev()
                .filter(|e| seen.insert(e.event_id.clone()))
                .collect()
        };
        for event in &fresh {
            if event.status.ends_with("_FAILED") && event.logical_id != item.stack.stack_name() {
                failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(FailedResource {
                        logical_id: event.logical_id.clone(),
                        resource_type: event.resource_type.clone(),
                        status: event.status.clone(),
                        reason: event.reason.clone().unwrap_or_default(),
                    });
            }
            (self.progress)(Progress::Event {
                tenant: &item.tenant,
                stack: item.stack,
                event,
            });
        }
    }
}

/// The outcome of a stack that stopped moving.
fn settled(kind: StackKind, d: StackDescription, failed_resources: Vec<FailedResource>) -> Outcome {
    let reason = || {
        failed_resources
            .first()
            .map(|f| format!("{} ({}): {}", f.logical_id, f.resource_type, f.reason))
            .or_else(|| d.status_reason.clone())
            .unwrap_or_else(|| d.status.to_string())
    };
    match d.status.sentiment() {
        Sentiment::Success => match validate_outputs(kind, &d.outputs) {
            Ok(()) => Outcome::Succeeded {
                status: d.status.clone(),
                outputs: d.outputs,
            },
            Err(e) => Outcome::Failed {
                status: Some(d.status.clone()),
                reason: e.to_string(),
                failed_resources,
            },
        },
        Sentiment::RolledBack => Outcome::RolledBack {
            status: d.status.clone(),
            reason: reason(),
            failed_resources,
        },
        Sentiment::NeedsRecovery | Sentiment::InProgress => Outcome::NeedsRecovery {
            status: d.status.clone(),
            reason: reason(),
            failed_resources,
        },
    }
}
