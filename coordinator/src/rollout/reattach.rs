//! Reattaching to stack operations a stopped coordinator left behind.
//!
//! A coordinator killed mid-deployment leaves a `deployments` row with no
//! outcome, and possibly a CloudFormation operation still running. Before a
//! resumed rollout plans again, each such row of the tenants it is about to
//! deploy is settled here: the stack is watched until the operation ends,
//! and the row gets the outcome observed. The stack's generation tag (set
//! by the operation whose `ClientRequestToken` the row holds) says whether
//! the operation was the row's: if it was not, CloudFormation never started
//! it, and the row is `not_started`. Never starts, retries or cancels an
//! operation: it only watches and records.

use chrono::Utc;
use futures::StreamExt;
use serde::Serialize;
use stacks::StackKind;
use stacks::ids::TenantId;

use crate::apply::validate_outputs;
use crate::aws::{Sentiment, StackDescription};
use crate::deploy::{Fleet, previous_state, refresh_stack_state};
use crate::observe::TAG_GENERATION;
use crate::store::{DeploymentRecord, DeploymentResult, NewAuditEntry, StackState, StoreError};
use crate::wait::{Poll, poll_until};

/// The outcome recorded for an operation CloudFormation never started.
pub const NOT_STARTED: &str = "not_started";

/// One deployment row settled from what was observed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reattached {
    /// Tenant.
    pub tenant: TenantId,
    /// Stack.
    pub stack: StackKind,
    /// The row's plan generation.
    pub generation: u64,
    /// The row's action (`create`, `update`).
    pub action: String,
    /// The outcome recorded: `succeeded`, `rolled_back`, `needs_recovery`
    /// or `not_started`.
    pub outcome: String,
    /// The stack's status, if it exists.
    pub status: Option<String>,
    /// Why; for a success, [`SETTLED_ON_RESUME`].
    pub reason: Option<String>,
}

/// The reason recorded with an operation that succeeded while no
/// coordinator watched it (settled when a rollout resumed): its row's
/// duration spans the restart, so it is not a measurement of the operation
/// (`crate::history` skips it).
pub const SETTLED_ON_RESUME: &str =
    "settled when the rollout resumed: the operation finished while no coordinator watched it";

/// What was observed of an open row's stack once it settled.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// The stack does not exist.
    Absent,
    /// The stack, settled.
    Settled(StackDescription),
}

/// The outcome of an open row, from its stack once settled. Pure.
pub fn outcome_of(row: &DeploymentRecord, observed: &Observed) -> DeploymentResult {
    let d = match observed {
        Observed::Absent => {
            return DeploymentResult {
                outcome: NOT_STARTED.into(),
                status: None,
                reason: Some(format!(
                    "the coordinator stopped before CloudFormation started this {}; {} does not exist",
                    row.action,
                    row.stack.stack_name()
                )),
            };
        }
        Observed::Settled(d) => d,
    };
    let status = Some(d.status.to_string());
    let generation = d.tags.get(TAG_GENERATION);
    if generation != Some(&row.generation.to_string()) {
        return DeploymentResult {
            outcome: NOT_STARTED.into(),
            status,
            reason: Some(format!(
                "the coordinator stopped before CloudFormation started this {}; the stack is still at generation {}",
                row.action,
                generation.map_or("unknown", String::as_str)
            )),
        };
    }
    let why = || d.status_reason.clone().or_else(|| status.clone());
    let (outcome, reason) = match d.status.sentiment() {
        Sentiment::Success => match validate_outputs(row.stack, &d.outputs) {
            Ok(()) => ("succeeded", Some(SETTLED_ON_RESUME.to_owned())),
            Err(e) => ("failed", Some(e.to_string())),
        },
        Sentiment::RolledBack => ("rolled_back", why()),
        Sentiment::NeedsRecovery | Sentiment::InProgress => ("needs_recovery", why()),
    };
    DeploymentResult {
        outcome: outcome.into(),
        status,
        reason,
    }
}

/// Settles the open deployment rows of `tenants`, at most `concurrency` at
/// once, waiting for operations still in progress with the fleet's stack
/// wait policy. Rows whose tenant is unreachable or whose operation is
/// still running at the deadline stay open (the planner then reports the
/// stack as busy). Returns the rows settled.
pub async fn reattach(
    fleet: &Fleet<'_>,
    tenants: &[TenantId],
    concurrency: usize,
) -> Result<Vec<Reattached>, StoreError> {
    let mut open: Vec<DeploymentRecord> = Vec::new();
    for t in tenants {
        let rows = fleet.store.deployments(Some(t), 100).await?;
        open.extend(rows.into_iter().filter(|d| d.outcome.is_none()));
    }
    let settled: Vec<Result<Option<Reattached>, StoreError>> = futures::stream::iter(open)
        .map(|row| async move { settle(fleet, row).await })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut out: Vec<Reattached> = settled
        .into_iter()
        .filter_map(Result::transpose)
        .collect::<Result<_, _>>()?;
    out.sort_by(|a, b| (&a.tenant, a.stack).cmp(&(&b.tenant, b.stack)));
    Ok(out)
}

async fn settle(
    fleet: &Fleet<'_>,
    row: DeploymentRecord,
) -> Result<Option<Reattached>, StoreError> {
    let Some(tenant) = fleet.manifest.tenant(&row.tenant) else {
        return Ok(None);
    };
    let access = match crate::access::connect(fleet.connector, fleet.operator, tenant).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(tenant = %row.tenant, error = %e, "cannot reattach: tenant unreachable");
            return Ok(None);
        }
    };
    let cfn = access.cloudformation.as_ref();
    let name = row.stack.stack_name();
    let observed = poll_until(fleet.stack_wait, || async {
        Ok(match cfn.describe_stack(name).await? {
            None => Poll::Ready(Observed::Absent),
            Some(d) if d.status.is_settled() => Poll::Ready(Observed::Settled(d)),
            Some(_) => Poll::Pending,
        })
    })
    .await;
    let observed = match observed {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(tenant = %row.tenant, stack = %row.stack, error = %e, "cannot reattach");
            return Ok(None);
        }
    };
    let result = outcome_of(&row, &observed);
    fleet
        .store
        .finish_deployment(row.id, result.clone())
        .await?;
    if let Observed::Settled(d) = &observed {
        refresh_stack_state(fleet.store, &row.tenant, row.stack, Some(d)).await?;
    }
    if result.outcome != NOT_STARTED
        && let Some(state) = previous_state(fleet.store, &row.tenant, row.stack).await?
    {
        fleet
            .store
            .put_stack_state(StackState {
                last_outcome: Some(result.outcome.clone()),
                last_reason: result.reason.clone(),
                updated_at: Utc::now(),
                ..state
            })
            .await?;
    }
    let reattached = Reattached {
        tenant: row.tenant,
        stack: row.stack,
        generation: row.generation,
        action: row.action,
        outcome: result.outcome,
        status: result.status,
        reason: result.reason,
    };
    fleet
        .store
        .append_audit(NewAuditEntry {
            actor: fleet.operator.actor().to_owned(),
            tenant: Some(reattached.tenant.clone()),
            action: "rollout.reattach".into(),
            details: serde_json::to_value(&reattached).unwrap_or_default(),
        })
        .await?;
    Ok(Some(reattached))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::aws::StackStatus;

    fn row(generation: u64) -> DeploymentRecord {
        DeploymentRecord {
            id: 1,
            generation,
            tenant: "acme".parse().unwrap(),
            stack: StackKind::Storage,
            action: "create".into(),
            token: "docproc-g3-acme-storage".into(),
            started_at: Utc::now(),
            finished_at: None,
            outcome: None,
            status: None,
            reason: None,
        }
    }

    fn stack(status: &str, generation: u64) -> Observed {
        Observed::Settled(StackDescription {
            stack_id: "arn:aws:cloudformation:eu-west-1:111111111111:stack/docproc-storage/1"
                .into(),
            name: "docproc-storage".into(),
            status: StackStatus::parse(status),
            status_reason: Some("because".into()),
            parameters: BTreeMap::new(),
            outputs: BTreeMap::new(),
            tags: BTreeMap::from([(TAG_GENERATION.to_owned(), generation.to_string())]),
        })
    }

    fn outcome(o: &Observed, generation: u64) -> (String, Option<String>) {
        let r = outcome_of(&row(generation), o);
        (r.outcome, r.status)
    }

    #[test]
    fn the_outcome_is_what_the_rows_own_operation_left() {
        let s = |o: &str, st: &str| (o.to_owned(), Some(st.to_owned()));
        assert_eq!(
            outcome(&stack("ROLLBACK_COMPLETE", 3), 3),
            s("needs_recovery", "ROLLBACK_COMPLETE")
        );
        assert_eq!(
            outcome(&stack("UPDATE_ROLLBACK_COMPLETE", 3), 3),
            s("rolled_back", "UPDATE_ROLLBACK_COMPLETE")
        );
        // Complete, but without the storage outputs: not as planned.
        assert_eq!(
            outcome(&stack("CREATE_COMPLETE", 3), 3),
            s("failed", "CREATE_COMPLETE")
        );
        // Another generation's stack: this row's operation never started.
        assert_eq!(
            outcome(&stack("CREATE_COMPLETE", 2), 3),
            s(NOT_STARTED, "CREATE_COMPLETE")
        );
        assert_eq!(
            outcome(&Observed::Absent, 3),
            (NOT_STARTED.to_owned(), None)
        );
    }
}
