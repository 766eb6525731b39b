//! The only reader of actual state: what each tenant's stacks look like now,
//! collected into an [`Inventory`] for the planner, and change-set previews
//! of the updates the planner is considering.
//!
//! Observing never changes a stack. A preview creates a change set and
//! always deletes it again.

use chrono::{DateTime, Utc};
use serde::Serialize;
use stacks::ids::{RoleArn, TenantId};
use stacks::{Parameter, StackKind, Template};
use std::collections::BTreeMap;

use crate::access::TenantAccess;
use crate::aws::{
    AwsError, CallerIdentity, CloudFormation, CreateChangeSet, ErrorKind, ResourceChange,
    StackCapability, StackDescription,
};
use crate::wait::{Poll, WaitError, WaitPolicy, poll_until};

/// Stack tag: the release a stack was deployed from.
pub const TAG_RELEASE: &str = "docproc:release";
/// Stack tag: SHA-256 of the deployed template's canonical form.
pub const TAG_TEMPLATE_HASH: &str = "docproc:template-sha256";
/// Stack tag: the plan generation that last changed the stack.
pub const TAG_GENERATION: &str = "docproc:generation";
/// Stack tag: the tenant.
pub const TAG_TENANT: &str = "docproc:tenant";

/// What was seen of one tenant.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TenantObservation {
    /// The account was reached; each of the tenant's stacks, if it exists.
    Observed {
        /// Who we were in the account.
        identity: CallerIdentity,
        /// Stack kind to its description (`None`: does not exist).
        stacks: BTreeMap<StackKind, Option<StackDescription>>,
    },
    /// The account could not be reached or read.
    Unreachable {
        /// Why, in words.
        reason: String,
        /// The customer refused us (as opposed to a fault).
        denied: bool,
    },
}

/// Observed state of the fleet.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Inventory {
    /// When the observation finished.
    pub observed_at: Option<DateTime<Utc>>,
    /// Per tenant.
    pub tenants: BTreeMap<TenantId, TenantObservation>,
}

/// Reads the given stacks of one tenant.
pub async fn observe_tenant(
    access: &TenantAccess,
    kinds: &[StackKind],
) -> Result<BTreeMap<StackKind, Option<StackDescription>>, AwsError> {
    let mut stacks = BTreeMap::new();
    for kind in kinds {
        stacks.insert(
            *kind,
            access
                .cloudformation
                .describe_stack(kind.stack_name())
                .await?,
        );
    }
    Ok(stacks)
}

/// What a change set says an update would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "preview", rename_all = "snake_case")]
pub enum Preview {
    /// These changes.
    Changes {
        /// Per resource.
        changes: Vec<ResourceChange>,
    },
    /// CloudFormation sees nothing to change.
    NoChanges,
    /// The change set could not be made.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Everything a change set needs.
#[derive(Debug, Clone)]
pub struct ChangeRequest<'a> {
    /// The stack.
    pub kind: StackKind,
    /// New template.
    pub template: &'a Template,
    /// New parameters.
    pub parameters: Vec<Parameter>,
    /// New tags.
    pub tags: BTreeMap<String, String>,
    /// The execution role.
    pub role_arn: RoleArn,
}

/// Capabilities our stacks need: they create IAM roles.
pub const CAPABILITIES: &[StackCapability] = &[StackCapability::Iam, StackCapability::NamedIam];

/// Previews an update with a change set named `name`, then deletes it.
pub async fn preview(
    cfn: &dyn CloudFormation,
    request: &ChangeRequest<'_>,
    name: &str,
    policy: WaitPolicy,
) -> Preview {
    let stack = request.kind.stack_name();
    let create = CreateChangeSet {
        stack_name: stack.to_owned(),
        change_set_name: name.to_owned(),
        template_body: request.template.canonical_json().to_owned(),
        parameters: request.parameters.clone(),
        tags: request.tags.clone(),
        role_arn: Some(request.role_arn.clone()),
        capabilities: CAPABILITIES.to_vec(),
        client_token: name.to_owned(),
    };
    match cfn.create_change_set(&create).await {
        Ok(_) => {}
        Err(e) if e.kind == ErrorKind::NoUpdates => return Preview::NoChanges,
        Err(e) => {
            return Preview::Failed {
                reason: e.to_string(),
            };
        }
    }
    let result = wait_for_change_set(cfn, stack, name, policy).await;
    if let Err(e) = cfn.delete_change_set(stack, name).await {
        tracing::warn!(stack, change_set = name, error = %e, "could not delete a preview change set");
    }
    match result {
        Ok(description) if description.is_empty_change() => Preview::NoChanges,
        Ok(description) if description.status == crate::aws::ChangeSetStatus::CreateComplete => {
            Preview::Changes {
                changes: description.changes,
            }
        }
        Ok(description) => Preview::Failed {
            reason: format!(
                "change set {}: {}",
                name,
                description
                    .status_reason
                    .unwrap_or_else(|| format!("{:?}", description.status))
            ),
        },
        Err(e) => Preview::Failed {
            reason: e.to_string(),
        },
    }
}

/// Polls a change set until its creation settles.
pub async fn wait_for_change_set(
    cfn: &dyn CloudFormation,
    stack: &str,
    name: &str,
    policy: WaitPolicy,
) -> Result<crate::aws::ChangeSetDescription, WaitError> {
    poll_until(policy, || async move {
        let d = cfn.describe_change_set(stack, name).await?;
        Ok(if d.status.is_settled() {
            Poll::Ready(d)
        } else {
            Poll::Pending
        })
    })
    .await
}
