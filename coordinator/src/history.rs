//! How long each tenant's stack operations took lately, from the store's
//! deployment records: the expectation a rollout orders a wave's tenants by
//! ([`crate::rollout::order`]) and an applier polls an operation around
//! ([`crate::wait::Expectation`]).
//!
//! Every deployment path (`deploy`, `tenant onboard`, rollouts) records its
//! stack operations with their start and end, so even a fleet's first
//! rollout has the durations of its onboarding. A duration is that of the
//! newest *succeeded* operation of the stack (a failure or a rollback says
//! little about the next success; a stack without changes is not an
//! operation; one settled after a restart spans the restart), measured by
//! the coordinator: change-set creation and polling included. Pure but for the two readers.

use std::collections::BTreeMap;
use std::time::Duration;

use stacks::StackKind;
use stacks::ids::TenantId;

use crate::rollout::reattach::SETTLED_ON_RESUME;
use crate::store::{DeploymentRecord, Store, StoreError};

/// Deployment records looked at per tenant and stack: about this many
/// operations back.
pub const LOOKBACK: usize = 5;

/// Stacks a tenant can have (bootstrap, storage, worker).
const STACKS_PER_TENANT: usize = 3;

/// The duration of the newest succeeded operation of each (tenant, stack)
/// among `rows` (newest first, as the store returns them).
pub fn latest_succeeded(rows: &[DeploymentRecord]) -> BTreeMap<(TenantId, StackKind), Duration> {
    let mut out = BTreeMap::new();
    for row in rows {
        if row.outcome.as_deref() != Some("succeeded")
            || row.reason.as_deref() == Some(SETTLED_ON_RESUME)
        {
            continue;
        }
        let Some(finished) = row.finished_at else {
            continue;
        };
        let Ok(took) = (finished - row.started_at).to_std() else {
            continue;
        };
        out.entry((row.tenant.clone(), row.stack)).or_insert(took);
    }
    out
}

/// Each tenant's expected deployment time: the sum over its stacks.
pub fn per_tenant(
    durations: &BTreeMap<(TenantId, StackKind), Duration>,
) -> BTreeMap<TenantId, Duration> {
    let mut out: BTreeMap<TenantId, Duration> = BTreeMap::new();
    for ((tenant, _), took) in durations {
        *out.entry(tenant.clone()).or_default() += *took;
    }
    out
}

/// Expected deployment times of a fleet of `tenants` tenants, from the
/// newest records (one query, bounded by the fleet's size).
pub async fn fleet(
    store: &dyn Store,
    tenants: usize,
) -> Result<BTreeMap<TenantId, Duration>, StoreError> {
    let rows = store
        .deployments(None, tenants.max(1) * STACKS_PER_TENANT * LOOKBACK)
        .await?;
    Ok(per_tenant(&latest_succeeded(&rows)))
}

/// How long `stack`'s last succeeded operation in `tenant` took, if any of
/// the tenant's recent records has one.
pub async fn stack(
    store: &dyn Store,
    tenant: &TenantId,
    stack: StackKind,
) -> Result<Option<Duration>, StoreError> {
    let rows = store
        .deployments(Some(tenant), STACKS_PER_TENANT * LOOKBACK)
        .await?;
    Ok(latest_succeeded(&rows).remove(&(tenant.clone(), stack)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{DeploymentResult, NewDeployment, NewPlan};

    async fn operation(store: &SqliteStore, tenant: &str, stack: StackKind, outcome: &str) {
        let id = store
            .start_deployment(NewDeployment {
                generation: 1,
                tenant: tenant.parse().unwrap(),
                stack,
                action: "update".into(),
                token: "t".into(),
            })
            .await
            .unwrap();
        store
            .finish_deployment(
                id,
                DeploymentResult {
                    outcome: outcome.into(),
                    status: None,
                    reason: None,
                },
            )
            .await
            .unwrap();
    }

    fn row(tenant: &str, stack: StackKind, outcome: Option<&str>, ms: i64) -> DeploymentRecord {
        let started = chrono::Utc::now();
        DeploymentRecord {
            id: 0,
            generation: 1,
            tenant: tenant.parse().unwrap(),
            stack,
            action: "update".into(),
            token: "t".into(),
            started_at: started,
            finished_at: outcome.map(|_| started + chrono::Duration::milliseconds(ms)),
            outcome: outcome.map(str::to_owned),
            status: None,
            reason: None,
        }
    }

    #[test]
    fn the_newest_success_per_stack_counts_and_tenants_sum_their_stacks() {
        let ms = Duration::from_millis;
        let rows = [
            // Newest first.
            row("a", StackKind::Worker, Some("rolled_back"), 9000),
            row("a", StackKind::Worker, Some("succeeded"), 3000),
            row("a", StackKind::Storage, Some("succeeded"), 1000),
            row("a", StackKind::Worker, Some("succeeded"), 7000),
            row("b", StackKind::Storage, None, 0),
            DeploymentRecord {
                reason: Some(SETTLED_ON_RESUME.into()),
                ..row("b", StackKind::Worker, Some("succeeded"), 600_000)
            },
            row("b", StackKind::Storage, Some("failed"), 4000),
        ];
        let latest = latest_succeeded(&rows);
        let a: TenantId = "a".parse().unwrap();
        assert_eq!(
            latest,
            BTreeMap::from([
                ((a.clone(), StackKind::Storage), ms(1000)),
                ((a.clone(), StackKind::Worker), ms(3000)),
            ])
        );
        assert_eq!(per_tenant(&latest), BTreeMap::from([(a, ms(4000))]));
    }

    #[tokio::test]
    async fn read_from_the_store_for_a_fleet_and_for_one_stack() {
        let store = SqliteStore::in_memory().unwrap();
        store
            .record_plan(NewPlan {
                actor: "test".into(),
                release: "1".into(),
                manifest_digest: "d".into(),
                summary: serde_json::json!({}),
            })
            .await
            .unwrap();
        operation(&store, "a", StackKind::Storage, "succeeded").await;
        operation(&store, "a", StackKind::Worker, "failed").await;
        operation(&store, "b", StackKind::Worker, "succeeded").await;
        let fleet = fleet(&store, 2).await.unwrap();
        let names: Vec<&str> = fleet.keys().map(TenantId::as_str).collect();
        assert_eq!(names, ["a", "b"]);
        let a: TenantId = "a".parse().unwrap();
        assert!(
            stack(&store, &a, StackKind::Storage)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(stack(&store, &a, StackKind::Worker).await.unwrap(), None);
    }
}
