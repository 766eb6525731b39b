//! Deploying the fleet: reach every tenant, observe, preview, plan, record
//! the plan, then apply it tenant by tenant with bounded concurrency.
//!
//! Tenants are independent: one tenant's failure, refusal or slowness never
//! stops or corrupts another's. Within a tenant, stacks go in dependency
//! order and the storage stack's outputs feed the worker's parameters. Every
//! deployment is written to the store before and after it runs, and audited
//! with the operator as the actor.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use futures::StreamExt;
use serde::Serialize;
use stacks::ids::TenantId;
use stacks::{Parameter, Release, StackKind};

use crate::access::{self, AccessError, Operator, TenantAccess};
use crate::apply::{Applier, ApplyRequest, Outcome, ProgressFn};
use crate::aws::Connector;
use crate::desired::ParameterValue;
use crate::manifest::{Manifest, Tenant};
use crate::observe::{
    self, ChangeRequest, Inventory, TAG_RELEASE, TAG_TEMPLATE_HASH, TenantObservation,
};
use crate::plan::{self, Action, Plan, PlanDraft, PlanItem, PlanOptions, Previews};
use crate::store::{
    DeploymentResult, NewAuditEntry, NewDeployment, NewPlan, StackState, Store, StoreError,
    StoredOutputs,
};
use crate::wait::{Expectation, WaitPolicy};

/// Tenants handled at once, unless told otherwise.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Everything a fleet operation needs.
#[derive(Clone)]
pub struct Fleet<'a> {
    /// Builds AWS clients.
    pub connector: &'a dyn Connector,
    /// The coordinator's state.
    pub store: &'a dyn Store,
    /// Desired state.
    pub manifest: &'a Manifest,
    /// Templates.
    pub release: &'a Release,
    /// Who is acting.
    pub operator: &'a Operator,
    /// Tenants handled at once.
    pub concurrency: usize,
    /// Waiting for stacks.
    pub stack_wait: WaitPolicy,
    /// Waiting for change sets.
    pub change_set_wait: WaitPolicy,
}

impl std::fmt::Debug for Fleet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// The observation and plan of one run, with the accesses made for it.
#[derive(Debug)]
pub struct Planned {
    /// What was seen.
    pub inventory: Inventory,
    /// What to do.
    pub draft: PlanDraft,
    /// Verified access to each reachable tenant.
    pub accesses: BTreeMap<TenantId, TenantAccess>,
}

fn selected<'m>(manifest: &'m Manifest, only: Option<&TenantId>) -> Vec<&'m Tenant> {
    manifest
        .tenants
        .iter()
        .filter(|t| only.is_none_or(|id| &t.id == id))
        .collect()
}

impl Fleet<'_> {
    /// Reaches and observes every selected tenant with dedicated stacks,
    /// previews the candidate updates, and plans.
    pub async fn observe_and_plan(
        &self,
        only: Option<&TenantId>,
        options: PlanOptions,
    ) -> Result<Planned, stacks::StackError> {
        let tenants: Vec<&Tenant> = selected(self.manifest, only)
            .into_iter()
            .filter(|t| !t.deployed_stacks().is_empty())
            .collect();
        let observations: Vec<(TenantId, Observed)> = futures::stream::iter(tenants)
            .map(|tenant| async move {
                let result = async {
                    let access = access::connect(self.connector, self.operator, tenant).await?;
                    let stacks = observe::observe_tenant(&access, tenant.deployed_stacks()).await?;
                    let observation = TenantObservation::Observed {
                        identity: access.identity.clone(),
                        stacks,
                    };
                    Ok((access, observation))
                }
                .await;
                (tenant.id.clone(), result)
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let mut inventory = Inventory::default();
        let mut accesses = BTreeMap::new();
        for (tenant, result) in observations {
            match result {
                Ok((access, observation)) => {
                    if let TenantObservation::Observed { stacks, .. } = &observation {
                        for (kind, description) in stacks {
                            if let Err(e) = refresh_stack_state(
                                self.store,
                                &tenant,
                                *kind,
                                description.as_ref(),
                            )
                            .await
                            {
                                tracing::warn!(%tenant, stack = %kind, error = %e, "could not record an observed stack state");
                            }
                        }
                    }
                    accesses.insert(tenant.clone(), access);
                    inventory.tenants.insert(tenant, observation);
                }
                Err(e) => {
                    tracing::warn!(%tenant, error = %e, "tenant unreachable");
                    let denied = matches!(&e, AccessOrAws::Access(a) if a.is_denied());
                    inventory.tenants.insert(
                        tenant,
                        TenantObservation::Unreachable {
                            reason: e.to_string(),
                            denied,
                        },
                    );
                }
            }
        }
        inventory.observed_at = Some(Utc::now());

        let candidates = plan::update_candidates(self.manifest, &inventory, self.release, only)?;
        let previews: Previews = futures::stream::iter(candidates)
            .map(|c| {
                let access = accesses.get(&c.tenant).cloned();
                async move {
                    let preview = match access {
                        Some(access) => {
                            let request = ChangeRequest {
                                kind: c.stack,
                                template: &c.template,
                                parameters: c.parameters.clone(),
                                tags: BTreeMap::new(),
                                role_arn: c.execution_role.clone(),
                            };
                            let name = format!("docproc-preview-{:016x}", rand::random::<u64>());
                            observe::preview(
                                access.cloudformation.as_ref(),
                                &request,
                                &name,
                                self.change_set_wait,
                            )
                            .await
                        }
                        None => observe::Preview::Failed {
                            reason: "no access to the account".into(),
                        },
                    };
                    ((c.tenant, c.stack), preview)
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let draft = plan::plan(
            self.manifest,
            &inventory,
            self.release,
            &previews,
            only,
            options,
        )?;
        Ok(Planned {
            inventory,
            draft,
            accesses,
        })
    }

    /// Records the plan: the store gives it a generation and a parent.
    pub async fn record(&self, draft: PlanDraft) -> Result<Plan, StoreError> {
        let summary = serde_json::to_value(&draft).unwrap_or_default();
        let counts = draft.counts();
        let record = self
            .store
            .record_plan(NewPlan {
                actor: self.operator.actor().to_owned(),
                release: draft.release.to_string(),
                manifest_digest: manifest_digest(self.manifest),
                summary,
            })
            .await?;
        self.store
            .append_audit(NewAuditEntry {
                actor: self.operator.actor().to_owned(),
                tenant: None,
                action: "plan.record".into(),
                details: serde_json::json!({
                    "generation": record.generation,
                    "parent": record.parent,
                    "release": record.release,
                    "counts": counts,
                }),
            })
            .await?;
        Ok(Plan {
            generation: record.generation,
            parent: record.parent,
            release: draft.release,
            tenants: draft.tenants,
        })
    }

    /// Applies a recorded plan: each tenant's changes once, tenants in
    /// parallel up to the concurrency bound.
    pub async fn apply(
        &self,
        plan: &Plan,
        planned: &Planned,
        progress: ProgressFn<'_>,
    ) -> DeployReport {
        let work: Vec<_> = plan
            .tenants
            .iter()
            .filter(|t| t.items.iter().any(PlanItem::is_change))
            .collect();
        let mut tenants: Vec<TenantReport> = futures::stream::iter(work)
            .map(|tp| async move {
                let access = planned.accesses.get(&tp.tenant);
                let observed = planned.inventory.tenants.get(&tp.tenant);
                self.apply_tenant(plan, &tp.tenant, &tp.items, access, observed, progress)
                    .await
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        // Tenants with nothing to change are reported too.
        for tp in plan
            .tenants
            .iter()
            .filter(|t| !t.items.iter().any(PlanItem::is_change))
        {
            tenants.push(TenantReport {
                tenant: tp.tenant.clone(),
                items: tp.items.iter().map(ItemReport::skipped).collect(),
            });
        }
        let order: BTreeMap<&TenantId, usize> = self
            .manifest
            .tenants
            .iter()
            .enumerate()
            .map(|(i, t)| (&t.id, i))
            .collect();
        tenants.sort_by_key(|t| order.get(&t.tenant).copied().unwrap_or(usize::MAX));
        DeployReport {
            generation: plan.generation,
            release: plan.release.to_string(),
            tenants,
        }
    }

    async fn apply_tenant(
        &self,
        plan: &Plan,
        tenant: &TenantId,
        items: &[PlanItem],
        access: Option<&TenantAccess>,
        observed: Option<&TenantObservation>,
        progress: ProgressFn<'_>,
    ) -> TenantReport {
        let mut reports = Vec::new();
        let Some(access) = access else {
            let reports = items
                .iter()
                .map(|i| ItemReport::not_applied(i, "the account is unreachable"))
                .collect();
            return TenantReport {
                tenant: tenant.clone(),
                items: reports,
            };
        };
        // A stale coordinator must never move a tenant backwards.
        match self.store.tenant_generation(tenant).await {
            Ok(Some(newer)) if newer > plan.generation => {
                let why = format!(
                    "plan generation {newer} was already applied to this tenant; plan again"
                );
                let reports = items
                    .iter()
                    .map(|i| ItemReport::not_applied(i, &why))
                    .collect();
                return TenantReport {
                    tenant: tenant.clone(),
                    items: reports,
                };
            }
            Ok(_) => {}
            Err(e) => {
                let why = format!("cannot read the state: {e}");
                let reports = items
                    .iter()
                    .map(|i| ItemReport::not_applied(i, &why))
                    .collect();
                return TenantReport {
                    tenant: tenant.clone(),
                    items: reports,
                };
            }
        }
        // Outputs of this tenant's stacks, as observed and as produced now.
        let mut outputs: BTreeMap<StackKind, BTreeMap<String, String>> = match observed {
            Some(TenantObservation::Observed { stacks, .. }) => stacks
                .iter()
                .filter_map(|(k, d)| d.as_ref().map(|d| (*k, d.outputs.clone())))
                .collect(),
            _ => BTreeMap::new(),
        };
        let applier = Applier {
            cloudformation: access.cloudformation.as_ref(),
            stack_wait: self.stack_wait,
            change_set_wait: self.change_set_wait,
            progress,
        };
        let mut upstream_failed = false;
        for item in items {
            if !item.is_change() {
                reports.push(ItemReport::skipped(item));
                continue;
            }
            if upstream_failed {
                reports.push(ItemReport::not_applied(
                    item,
                    "an earlier stack of this tenant failed",
                ));
                continue;
            }
            let parameters = match resolve(item, &outputs) {
                Ok(p) => p,
                Err(why) => {
                    reports.push(ItemReport::not_applied(item, &why));
                    upstream_failed = true;
                    continue;
                }
            };
            let report = self.apply_item(plan, &applier, item, parameters).await;
            if let Some(Outcome::Succeeded { outputs: o, .. }) = &report.outcome {
                outputs.insert(item.stack, o.clone());
            }
            upstream_failed |= !report.outcome.as_ref().is_some_and(Outcome::is_success);
            reports.push(report);
        }
        TenantReport {
            tenant: tenant.clone(),
            items: reports,
        }
    }

    async fn apply_item(
        &self,
        plan: &Plan,
        applier: &Applier<'_>,
        item: &PlanItem,
        parameters: Vec<Parameter>,
    ) -> ItemReport {
        let started = Instant::now();
        // Read before this operation is recorded, so it is the last one.
        // Only the polling depends on it: without it the wait backs off as usual.
        let expected = match crate::history::stack(self.store, &item.tenant, item.stack).await {
            Ok(took) => took.map(|took| Expectation {
                started: tokio::time::Instant::now(),
                took,
            }),
            Err(e) => {
                tracing::debug!(error = %e, "no expected duration: cannot read the history");
                None
            }
        };
        let token = crate::apply::request_token(plan.generation, &item.tenant, item.stack);
        let deployment = self
            .store
            .start_deployment(NewDeployment {
                generation: plan.generation,
                tenant: item.tenant.clone(),
                stack: item.stack,
                action: item.action.name().to_owned(),
                token,
            })
            .await;
        let deployment = match deployment {
            Ok(id) => id,
            // Never act without a record of it.
            Err(e) => {
                return ItemReport::not_applied(
                    item,
                    &format!("cannot record the deployment: {e}"),
                );
            }
        };
        let request = ApplyRequest {
            item,
            generation: plan.generation,
            release: &plan.release,
            parameters,
            expected,
        };
        let outcome = applier.apply(&request).await;
        let duration = started.elapsed();
        self.record_outcome(plan, item, deployment, &outcome).await;
        ItemReport {
            stack: item.stack,
            action: item.action.name(),
            outcome: Some(outcome),
            note: None,
            duration_ms: Some(duration.as_millis() as u64),
        }
    }

    async fn record_outcome(
        &self,
        plan: &Plan,
        item: &PlanItem,
        deployment: i64,
        outcome: &Outcome,
    ) {
        let status = outcome.status().map(ToString::to_string);
        let reason = outcome.reason();
        let write = async {
            self.store
                .finish_deployment(
                    deployment,
                    DeploymentResult {
                        outcome: outcome.name().to_owned(),
                        status: status.clone(),
                        reason: reason.clone(),
                    },
                )
                .await?;
            if let Outcome::Succeeded { outputs, .. } = outcome {
                self.store
                    .put_outputs(StoredOutputs {
                        tenant: item.tenant.clone(),
                        stack: item.stack,
                        release: plan.release.to_string(),
                        template_hash: item.template_hash.clone(),
                        outputs: outputs.clone(),
                        recorded_at: Utc::now(),
                    })
                    .await?;
            }
            // A stack that did not take the new template still runs the one
            // recorded before.
            let previous = previous_state(self.store, &item.tenant, item.stack).await?;
            let (release, template_hash) = if outcome.is_success() {
                (
                    Some(plan.release.to_string()),
                    Some(item.template_hash.clone()),
                )
            } else {
                (
                    previous.as_ref().and_then(|p| p.release.clone()),
                    previous.as_ref().and_then(|p| p.template_hash.clone()),
                )
            };
            self.store
                .put_stack_state(StackState {
                    tenant: item.tenant.clone(),
                    stack: item.stack,
                    status: status.clone().or_else(|| previous.and_then(|p| p.status)),
                    release,
                    template_hash,
                    last_outcome: Some(outcome.name().to_owned()),
                    last_reason: reason.clone(),
                    updated_at: Utc::now(),
                })
                .await?;
            self.store
                .append_audit(NewAuditEntry {
                    actor: self.operator.actor().to_owned(),
                    tenant: Some(item.tenant.clone()),
                    action: "deploy.stack".into(),
                    details: serde_json::json!({
                        "generation": plan.generation,
                        "stack": item.stack,
                        "action": item.action.name(),
                        "outcome": outcome.name(),
                        "status": status,
                        "release": plan.release,
                        "template_hash": item.template_hash,
                        "reason": reason,
                    }),
                })
                .await?;
            Ok::<(), StoreError>(())
        };
        if let Err(e) = write.await {
            tracing::error!(tenant = %item.tenant, stack = %item.stack, error = %e, "could not record a deployment outcome");
        }
    }
}

/// What the store last recorded of a stack.
pub async fn previous_state(
    store: &dyn Store,
    tenant: &TenantId,
    stack: StackKind,
) -> Result<Option<StackState>, StoreError> {
    store.stack_state(tenant, stack).await
}

/// Records what was observed of a stack: its status, and the release and
/// template hash its tags name; keeps the last deployment's outcome. A
/// settled, successful stack's outputs are stored too (a deploy that timed
/// out and finished later is caught up here).
pub async fn refresh_stack_state(
    store: &dyn Store,
    tenant: &TenantId,
    stack: StackKind,
    observed: Option<&crate::aws::StackDescription>,
) -> Result<(), StoreError> {
    let previous = previous_state(store, tenant, stack).await?;
    let Some(d) = observed else {
        if previous.is_some() {
            store
                .put_stack_state(StackState {
                    tenant: tenant.clone(),
                    stack,
                    status: None,
                    release: None,
                    template_hash: None,
                    last_outcome: previous.as_ref().and_then(|p| p.last_outcome.clone()),
                    last_reason: previous.and_then(|p| p.last_reason),
                    updated_at: Utc::now(),
                })
                .await?;
        }
        return Ok(());
    };
    let release = d.tags.get(TAG_RELEASE).cloned();
    let template_hash = d.tags.get(TAG_TEMPLATE_HASH).cloned();
    store
        .put_stack_state(StackState {
            tenant: tenant.clone(),
            stack,
            status: Some(d.status.to_string()),
            release: release.clone(),
            template_hash: template_hash.clone(),
            last_outcome: previous.as_ref().and_then(|p| p.last_outcome.clone()),
            last_reason: previous.as_ref().and_then(|p| p.last_reason.clone()),
            updated_at: Utc::now(),
        })
        .await?;
    let healthy = d.status.sentiment() == crate::aws::Sentiment::Success;
    if healthy && crate::apply::validate_outputs(stack, &d.outputs).is_ok() {
        let stored = store.outputs(tenant, stack).await?;
        if stored.as_ref().is_none_or(|s| s.outputs != d.outputs) {
            store
                .put_outputs(StoredOutputs {
                    tenant: tenant.clone(),
                    stack,
                    release: release.unwrap_or_default(),
                    template_hash: template_hash.unwrap_or_default(),
                    outputs: d.outputs.clone(),
                    recorded_at: Utc::now(),
                })
                .await?;
        }
    }
    Ok(())
}

/// Substitutes earlier stacks' outputs into an item's parameters.
fn resolve(
    item: &PlanItem,
    outputs: &BTreeMap<StackKind, BTreeMap<String, String>>,
) -> Result<Vec<Parameter>, String> {
    item.parameters
        .iter()
        .map(|p| {
            let value = match &p.value {
                ParameterValue::Known { value } => value.clone(),
                ParameterValue::FromOutput { source } => {
                    let stack: StackKind = source
                        .stack
                        .trim_start_matches("docproc-")
                        .parse()
                        .map_err(|e: String| e)?;
                    outputs
                        .get(&stack)
                        .and_then(|o| o.get(source.output))
                        .cloned()
                        .ok_or_else(|| {
                            format!(
                                "needs output {} of {}, which is not available",
                                source.output, source.stack
                            )
                        })?
                }
            };
            Ok(Parameter {
                parameter_key: p.key.clone(),
                parameter_value: value,
            })
        })
        .collect()
}

/// SHA-256 of the manifest file's text (which plan it was made from).
pub fn manifest_digest(manifest: &Manifest) -> String {
    std::fs::read(&manifest.path)
        .map(|b| crate::store::audit::digest(&b))
        .unwrap_or_else(|_| "unknown".into())
}

/// One tenant reached and observed, or why not.
type Observed = Result<(TenantAccess, TenantObservation), AccessOrAws>;

/// Either way of failing to observe a tenant.
#[derive(Debug, thiserror::Error)]
enum AccessOrAws {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsError),
}

/// What happened to one plan item.
#[derive(Debug, Clone, Serialize)]
pub struct ItemReport {
    /// Stack.
    pub stack: StackKind,
    /// The planned action.
    pub action: &'static str,
    /// The outcome, when it was applied.
    pub outcome: Option<Outcome>,
    /// Why it was not applied, or the plan's reason.
    pub note: Option<String>,
    /// How long applying took.
    pub duration_ms: Option<u64>,
}

impl ItemReport {
    fn skipped(item: &PlanItem) -> Self {
        let note = match &item.action {
            Action::Blocked { reason } => Some(reason.clone()),
            _ => None,
        };
        Self {
            stack: item.stack,
            action: item.action.name(),
            outcome: None,
            note,
            duration_ms: None,
        }
    }

    fn not_applied(item: &PlanItem, why: &str) -> Self {
        Self {
            stack: item.stack,
            action: item.action.name(),
            outcome: None,
            note: Some(why.to_owned()),
            duration_ms: None,
        }
    }

    /// Whether this item leaves the tenant as planned (or was planned as no
    /// change).
    pub fn ok(&self) -> bool {
        match &self.outcome {
            Some(o) => o.is_success(),
            None => self.action == "no_change",
        }
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match (&self.outcome, &self.note) {
            (Some(o), _) => match o.reason() {
                Some(r) => format!("{}: {r}", o.name()),
                None => o.name().to_owned(),
            },
            (None, Some(note)) => format!("{} (not applied): {note}", self.action),
            (None, None) => self.action.to_owned(),
        }
    }
}

/// What happened to one tenant.
#[derive(Debug, Clone, Serialize)]
pub struct TenantReport {
    /// Tenant.
    pub tenant: TenantId,
    /// Per stack.
    pub items: Vec<ItemReport>,
}

impl TenantReport {
    /// Whether every stack is as planned.
    pub fn ok(&self) -> bool {
        self.items.iter().all(ItemReport::ok)
    }
}

/// The result of applying a plan.
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    /// The plan's generation.
    pub generation: u64,
    /// The release.
    pub release: String,
    /// Per tenant, in manifest order.
    pub tenants: Vec<TenantReport>,
}

impl DeployReport {
    /// Tenants with at least one item not as planned.
    pub fn failed(&self) -> Vec<&TenantReport> {
        self.tenants.iter().filter(|t| !t.ok()).collect()
    }
}

/// A shared progress printer for terminals: one line per event.
pub fn print_progress() -> Arc<dyn Fn(crate::apply::Progress<'_>) + Send + Sync> {
    Arc::new(|p| match p {
        crate::apply::Progress::Started {
            tenant,
            stack,
            action,
        } => eprintln!("{tenant:<12} {stack:<8} {action} started"),
        crate::apply::Progress::Event {
            tenant,
            stack,
            event,
        } => eprintln!(
            "{tenant:<12} {stack:<8} {:<24} {:<28} {}",
            event.logical_id,
            event.status,
            event.reason.as_deref().unwrap_or("")
        ),
    })
}
