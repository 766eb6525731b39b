//! Recovery of stacks that need an operator: an update whose rollback
//! failed, a create that failed and rolled back, a failed delete. A stack
//! another operation is changing is waited for and reported, never touched.
//! Destructive steps (deleting a stack) require explicit confirmation.

use serde::Serialize;
use stacks::StackKind;
use stacks::ids::RoleArn;

use crate::aws::{AwsError, CloudFormation, Sentiment, StackStatus};
use crate::wait::{Poll, WaitError, WaitPolicy, poll_until};

/// What recovery did, or would need to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recovery {
    /// Status before.
    pub before: Option<StackStatus>,
    /// What was done: `none`, `waited`, `continue_update_rollback`, `delete`.
    pub action: &'static str,
    /// Status after (`None`: the stack no longer exists).
    pub after: Option<StackStatus>,
    /// Whether the stack is now usable or gone as intended.
    pub recovered: bool,
    /// What happened and what to do next, in words.
    pub message: String,
}

/// Why recovery did not start.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// A destructive step needs `--yes`.
    #[error("{0}")]
    NeedsConfirmation(String),
    /// Reading the stack failed.
    #[error("cannot read the stack")]
    Aws(#[from] AwsError),
}

/// Inputs to [`recover`].
#[derive(Debug, Clone)]
pub struct RecoverRequest<'a> {
    /// The stack.
    pub stack: StackKind,
    /// Resources `ContinueUpdateRollback` may skip.
    pub skip_resources: &'a [String],
    /// The execution role to act as.
    pub execution_role: &'a RoleArn,
    /// Confirmation for destructive steps.
    pub confirmed: bool,
    /// Idempotency token for the recovery call.
    pub token: &'a str,
    /// How to wait.
    pub wait: WaitPolicy,
}

/// Looks at the stack and does the one thing its status calls for.
pub async fn recover(
    cfn: &dyn CloudFormation,
    request: &RecoverRequest<'_>,
) -> Result<Recovery, RecoverError> {
    let name = request.stack.stack_name();
    let Some(current) = cfn.describe_stack(name).await? else {
        return Ok(Recovery {
            before: None,
            action: "none",
            after: None,
            recovered: true,
            message: format!("{name} does not exist; `coordinator deploy` creates it"),
        });
    };
    let before = Some(current.status.clone());
    use StackStatus::*;
    match &current.status {
        status if status.sentiment() == Sentiment::InProgress => {
            let after = settle(cfn, name, request.wait).await;
            let (after, message) = match after {
                Ok(s) => (
                    s.clone(),
                    format!(
                        "{name} was being changed by another operation ({status}); waited without touching it, now {}",
                        s.map_or("deleted".to_owned(), |s| s.to_string())
                    ),
                ),
                Err(e) => (
                    Some(status.clone()),
                    format!(
                        "{name} is being changed by another operation ({status}) and did not settle: {e}"
                    ),
                ),
            };
            let recovered = after
                .as_ref()
                .is_none_or(|s| s.sentiment() != Sentiment::NeedsRecovery && s.is_settled());
            Ok(Recovery {
                before,
                action: "waited",
                after,
                recovered,
                message,
            })
        }
        UpdateRollbackFailed => {
            cfn.continue_update_rollback(
                name,
                request.skip_resources,
                Some(request.execution_role),
                request.token,
            )
            .await?;
            let after = settle(cfn, name, request.wait).await;
            let recovered = matches!(&after, Ok(Some(UpdateRollbackComplete)));
            let message = match &after {
                Ok(Some(UpdateRollbackComplete)) => format!(
                    "{name} finished rolling back{}; it works as before the failed update. Plan again to retry the update",
                    if request.skip_resources.is_empty() {
                        String::new()
                    } else {
                        format!(" (skipped: {})", request.skip_resources.join(", "))
                    }
                ),
                Ok(Some(s)) => format!(
                    "the rollback of {name} ended in {s}; if it failed again, name the failing resources with --skip-resource (see the runbook)"
                ),
                Ok(None) => format!("{name} disappeared during the rollback"),
                Err(e) => format!("the rollback of {name} did not settle: {e}"),
            };
            Ok(Recovery {
                before,
                action: "continue_update_rollback",
                after: after.unwrap_or(Some(UpdateRollbackFailed)),
                recovered,
                message,
            })
        }
        CreateFailed | RollbackComplete | RollbackFailed | DeleteFailed | ReviewInProgress => {
            if !request.confirmed {
                return Err(RecoverError::NeedsConfirmation(format!(
                    "{name} is {}: recovering means deleting it{}; rerun with --yes to delete it{}",
                    current.status,
                    if current.status == DeleteFailed {
                        " again"
                    } else {
                        " (a failed create left nothing worth keeping)"
                    },
                    if current.status == DeleteFailed {
                        ""
                    } else {
                        ", then `coordinator deploy` recreates it"
                    }
                )));
            }
            cfn.delete_stack(name, Some(request.execution_role), request.token)
                .await?;
            let after = settle(cfn, name, request.wait).await;
            let gone = matches!(&after, Ok(None) | Ok(Some(DeleteComplete)));
            let message = if gone {
                format!("{name} was deleted")
            } else {
                format!(
                    "deleting {name} did not complete ({}); see the stack's events and the runbook",
                    match &after {
                        Ok(Some(s)) => s.to_string(),
                        Ok(None) => "gone".into(),
                        Err(e) => e.to_string(),
                    }
                )
            };
            Ok(Recovery {
                before,
                action: "delete",
                after: after.ok().flatten(),
                recovered: gone,
                message,
            })
        }
        other => Ok(Recovery {
            before,
            action: "none",
            after: Some(other.clone()),
            recovered: true,
            message: format!("{name} is {other}: nothing to recover"),
        }),
    }
}

/// Waits until the stack stops moving; `None` when it no longer exists.
async fn settle(
    cfn: &dyn CloudFormation,
    name: &str,
    policy: WaitPolicy,
) -> Result<Option<StackStatus>, WaitError> {
    poll_until(policy, || async move {
        Ok(match cfn.describe_stack(name).await? {
            None => Poll::Ready(None),
            Some(d) if d.status.is_settled() => Poll::Ready(Some(d.status)),
            Some(_) => Poll::Pending,
        })
    })
    .await
}
