//! The planner: a pure function from the manifest, the observed inventory
//! and the release to a plan of one action per tenant and stack.
//!
//! No I/O happens here. Planning runs in two steps because an update's
//! effect is only known from a CloudFormation change set:
//! 1. [`update_candidates`] lists the stacks whose template or parameters
//!    differ from what is deployed;
//! 2. the caller previews those with change sets (`observe::preview`);
//! 3. [`plan`] decides every item, given the previews.
//!
//! A plan is recorded in the store, which gives it a generation and a parent
//! ([`Plan`]); apply then realizes it without making decisions of its own.

pub mod render;

use std::collections::BTreeMap;

use serde::Serialize;
use stacks::builtin::bootstrap::EXECUTION_ROLE_NAME;
use stacks::builtin::storage::Storage;
use stacks::ids::{ReleaseVersion, RoleArn, TenantId};
use stacks::{Parameter, Release, Stack, StackError, StackKind, Template};

use crate::aws::{ResourceChange, Sentiment, StackDescription};
use crate::desired::{self, DesiredParameter, DesiredStack, ParameterValue, Upstream};
use crate::manifest::{Manifest, Tenant};
use crate::observe::{Inventory, Preview, TAG_TEMPLATE_HASH, TenantObservation};

/// Resource types that hold data: replacing or removing one loses it.
pub const STATEFUL_TYPES: &[&str] = &[
    "AWS::S3::Bucket",
    "AWS::KMS::Key",
    "AWS::SQS::Queue",
    "AWS::SecretsManager::Secret",
];

/// Planner switches.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// Accept updates that replace or remove stateful resources.
    pub allow_replace: bool,
}

/// What to do with one stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// The stack does not exist: create it.
    Create,
    /// The stack differs: update it through a change set.
    Update {
        /// What the change set said it would do.
        changes: Vec<ResourceChange>,
    },
    /// Deployed as desired.
    NoChange,
    /// Not touched, and why.
    Blocked {
        /// Why, and what to do.
        reason: String,
    },
}

impl Action {
    /// Short name for summaries.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update { .. } => "update",
            Action::NoChange => "no_change",
            Action::Blocked { .. } => "blocked",
        }
    }
}

/// One tenant and stack.
#[derive(Debug, Clone, Serialize)]
pub struct PlanItem {
    /// Tenant.
    pub tenant: TenantId,
    /// Stack.
    pub stack: StackKind,
    /// The decision.
    #[serde(flatten)]
    pub action: Action,
    /// Hash of the template to deploy.
    pub template_hash: String,
    /// Parameters to deploy; some may come from an earlier stack's outputs.
    pub parameters: Vec<DesiredParameter>,
    /// The template to deploy.
    #[serde(skip)]
    pub template: Template,
    /// The role CloudFormation runs as in the tenant's account.
    pub execution_role: RoleArn,
}

impl PlanItem {
    /// Whether applying it changes anything.
    pub fn is_change(&self) -> bool {
        matches!(self.action, Action::Create | Action::Update { .. })
    }
}

/// Everything planned for one tenant.
#[derive(Debug, Clone, Serialize)]
pub struct TenantPlan {
    /// Tenant.
    pub tenant: TenantId,
    /// Stacks, in dependency order.
    pub items: Vec<PlanItem>,
    /// Why nothing can be planned, when the account is unreachable.
    pub unreachable: Option<String>,
    /// The tenant is on the hosted default (no `dedicated_aws`).
    pub hosted: bool,
}

/// A plan before the store gives it a generation.
#[derive(Debug, Clone, Serialize)]
pub struct PlanDraft {
    /// The release it deploys.
    pub release: ReleaseVersion,
    /// Per tenant, in manifest order.
    pub tenants: Vec<TenantPlan>,
}

/// A recorded plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Monotonic generation from the store.
    pub generation: u64,
    /// The generation it follows.
    pub parent: Option<u64>,
    /// The release it deploys.
    pub release: ReleaseVersion,
    /// Per tenant.
    pub tenants: Vec<TenantPlan>,
}

impl PlanDraft {
    /// Counts of items per action name.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for item in self.tenants.iter().flat_map(|t| &t.items) {
            *counts.entry(item.action.name()).or_default() += 1;
        }
        counts
    }
}

/// A stack whose deployed template or parameters differ from the desired
/// ones: the caller previews it with a change set.
#[derive(Debug, Clone)]
pub struct UpdateCandidate {
    /// Tenant.
    pub tenant: TenantId,
    /// Stack.
    pub stack: StackKind,
    /// The desired template.
    pub template: Template,
    /// The desired parameters, all known.
    pub parameters: Vec<Parameter>,
    /// The execution role.
    pub execution_role: RoleArn,
}

/// Previews by tenant and stack.
pub type Previews = BTreeMap<(TenantId, StackKind), Preview>;

/// The execution role in a tenant's account.
pub fn execution_role(tenant: &Tenant) -> RoleArn {
    RoleArn::for_role(&tenant.account_id, EXECUTION_ROLE_NAME)
        .expect("a valid account makes a valid ARN")
}

/// How a stack compares with what is wanted, before any preview.
enum Comparison {
    Absent,
    Blocked(String),
    Same,
    Differs(Vec<Parameter>),
}

fn known_parameters(parameters: &[DesiredParameter]) -> Option<Vec<Parameter>> {
    parameters
        .iter()
        .map(|p| match &p.value {
            ParameterValue::Known { value } => Some(Parameter {
                parameter_key: p.key.clone(),
                parameter_value: value.clone(),
            }),
            ParameterValue::FromOutput { .. } => None,
        })
        .collect()
}

fn compare(
    tenant: &Tenant,
    desired: &DesiredStack,
    observed: Option<&StackDescription>,
) -> Comparison {
    let Some(observed) = observed else {
        return Comparison::Absent;
    };
    let stack = desired.kind;
    match observed.status.sentiment() {
        Sentiment::InProgress => {
            return Comparison::Blocked(format!(
                "{} is being changed by another operation ({}); wait for it to finish and plan again",
                stack.stack_name(),
                observed.status
            ));
        }
        Sentiment::NeedsRecovery => {
            let why = observed
                .status_reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            return Comparison::Blocked(format!(
                "{} needs recovery ({}{why}); run `coordinator recover --tenant {} --stack {}`",
                stack.stack_name(),
                observed.status,
                tenant.id,
                stack
            ));
        }
        Sentiment::Success | Sentiment::RolledBack => {}
    }
    let Some(parameters) = known_parameters(&desired.parameters) else {
        return Comparison::Blocked(format!(
            "{} exists but its inputs from earlier stacks are unknown (is the storage stack missing or failed?)",
            stack.stack_name()
        ));
    };
    let same_template = observed.tags.get(TAG_TEMPLATE_HASH).map(String::as_str)
        == Some(desired.template.hash().as_str());
    let same_parameters = parameters
        .iter()
        .all(|p| observed.parameters.get(&p.parameter_key) == Some(&p.parameter_value))
        && observed.parameters.len() == parameters.len();
    if same_template && same_parameters {
        Comparison::Same
    } else {
        Comparison::Differs(parameters)
    }
}

/// The desired stacks of a reachable tenant, fed by the observed outputs of
/// its storage stack when that stack is deployed and healthy.
fn desired_for(
    release: &Release,
    tenant: &Tenant,
    stacks: &BTreeMap<StackKind, Option<StackDescription>>,
) -> Result<Vec<DesiredStack>, StackError> {
    let storage = stacks
        .get(&StackKind::Storage)
        .and_then(Option::as_ref)
        .filter(|s| {
            matches!(
                s.status.sentiment(),
                Sentiment::Success | Sentiment::RolledBack
            )
        })
        .and_then(|s| {
            Storage::parse_outputs(s.outputs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).ok()
        });
    desired::deployed(release, tenant, &Upstream { storage })
}

fn selected<'m>(
    manifest: &'m Manifest,
    only: Option<&TenantId>,
) -> impl Iterator<Item = &'m Tenant> {
    manifest
        .tenants
        .iter()
        .filter(move |t| only.is_none_or(|id| &t.id == id))
}

/// Step 1: stacks that differ and need a change-set preview.
pub fn update_candidates(
    manifest: &Manifest,
    inventory: &Inventory,
    release: &Release,
    only: Option<&TenantId>,
) -> Result<Vec<UpdateCandidate>, StackError> {
    let mut out = Vec::new();
    for tenant in selected(manifest, only) {
        let Some(TenantObservation::Observed { stacks, .. }) = inventory.tenants.get(&tenant.id)
        else {
            continue;
        };
        for desired in desired_for(release, tenant, stacks)? {
            let observed = stacks.get(&desired.kind).and_then(Option::as_ref);
            if let Comparison::Differs(parameters) = compare(tenant, &desired, observed) {
                out.push(UpdateCandidate {
                    tenant: tenant.id.clone(),
                    stack: desired.kind,
                    template: desired.template,
                    parameters,
                    execution_role: execution_role(tenant),
                });
            }
        }
    }
    Ok(out)
}

/// Why a change set's changes are refused, if they touch stateful resources.
fn destructive(changes: &[ResourceChange]) -> Option<String> {
    let hits: Vec<String> = changes
        .iter()
        .filter(|c| STATEFUL_TYPES.contains(&c.resource_type.as_str()))
        .filter_map(|c| {
            let replaced = matches!(c.replacement.as_deref(), Some("True" | "Conditional"));
            match (c.action.as_str(), replaced) {
                ("Remove", _) => Some(format!("removes {} ({})", c.logical_id, c.resource_type)),
                ("Modify", true) => Some(format!(
                    "replaces {} ({}, replacement: {})",
                    c.logical_id,
                    c.resource_type,
                    c.replacement.as_deref().unwrap_or_default()
                )),
                _ => None,
            }
        })
        .collect();
    (!hits.is_empty()).then(|| hits.join("; "))
}

/// Step 3: the plan, given the previews of the candidates.
pub fn plan(
    manifest: &Manifest,
    inventory: &Inventory,
    release: &Release,
    previews: &Previews,
    only: Option<&TenantId>,
    options: PlanOptions,
) -> Result<PlanDraft, StackError> {
    let mut tenants = Vec::new();
    for tenant in selected(manifest, only) {
        if tenant.deployed_stacks().is_empty() {
            tenants.push(TenantPlan {
                tenant: tenant.id.clone(),
                items: vec![],
                unreachable: None,
                hosted: true,
            });
            continue;
        }
        let (stacks, unreachable) = match inventory.tenants.get(&tenant.id) {
            Some(TenantObservation::Observed { stacks, .. }) => (stacks.clone(), None),
            Some(TenantObservation::Unreachable { reason, .. }) => {
                (BTreeMap::new(), Some(reason.clone()))
            }
            None => (BTreeMap::new(), Some("not observed".to_owned())),
        };
        let mut items: Vec<PlanItem> = Vec::new();
        for desired in desired_for(release, tenant, &stacks)? {
            let observed = stacks.get(&desired.kind).and_then(Option::as_ref);
            let mut action = match (&unreachable, compare(tenant, &desired, observed)) {
                (Some(_), _) => Action::Blocked {
                    reason: "the account is unreachable (see the tenant's error)".into(),
                },
                (None, Comparison::Absent) => Action::Create,
                (None, Comparison::Same) => Action::NoChange,
                (None, Comparison::Blocked(reason)) => Action::Blocked { reason },
                (None, Comparison::Differs(_)) => {
                    match previews.get(&(tenant.id.clone(), desired.kind)) {
                        Some(Preview::NoChanges) => Action::NoChange,
                        Some(Preview::Changes { changes }) => match destructive(changes) {
                            Some(what) if !options.allow_replace => Action::Blocked {
                                reason: format!(
                                    "the update {what}, which would lose data; rerun with --allow-replace to accept"
                                ),
                            },
                            _ => Action::Update {
                                changes: changes.clone(),
                            },
                        },
                        Some(Preview::Failed { reason }) => Action::Blocked {
                            reason: format!("preview failed: {reason}"),
                        },
                        None => Action::Blocked {
                            reason: "the update could not be previewed".into(),
                        },
                    }
                }
            };
            // A stack fed by an earlier stack's outputs waits for it.
            let pending = known_parameters(&desired.parameters).is_none();
            let upstream_blocked = items
                .iter()
                .any(|i| matches!(i.action, Action::Blocked { .. }));
            if pending
                && upstream_blocked
                && matches!(action, Action::Create | Action::Update { .. })
            {
                action = Action::Blocked {
                    reason: "waits for the storage stack, which is blocked".into(),
                };
            }
            items.push(PlanItem {
                tenant: tenant.id.clone(),
                stack: desired.kind,
                action,
                template_hash: desired.template.hash().to_string(),
                parameters: desired.parameters,
                template: desired.template,
                execution_role: execution_role(tenant),
            });
        }
        tenants.push(TenantPlan {
            tenant: tenant.id.clone(),
            items,
            unreachable,
            hosted: false,
        });
    }
    Ok(PlanDraft {
        release: release.version().clone(),
        tenants,
    })
}

#[cfg(test)]
mod tests;
