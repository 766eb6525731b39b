//! The `bootstrap` stack: what the customer deploys once so that the vendor's
//! coordinator can deploy the other stacks.
//!
//! It creates `CoordinatorDeployRole`, which only the vendor's coordinator
//! principal can assume and only with the tenant's `sts:ExternalId`; the role
//! may drive CloudFormation on `docproc-*` stacks, and only by passing
//! `CloudFormationExecutionRole`, which holds the resource permissions. Roles
//! that stacks create must carry the `WorkloadBoundary` permissions boundary,
//! so nothing deployed through this path can exceed it.
//!
//! The deploy role also has the data-plane grants the coordinator's own
//! features need in the account (decision 0007): the tenant's secrets under
//! [`TENANT_SECRETS_PREFIX`] in Secrets Manager and Parameter Store (and a
//! customer-managed key only through those services, for those names), and
//! `bedrock:ListFoundationModels` for the LLM probe. The storage probe's
//! access to the storage stack's bucket and key is granted by that stack's
//! bucket and key policies, limited to [`STORAGE_PROBE_PREFIX`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::aws_names::Arn;
use crate::ids::{ExternalId, RoleArn};
use crate::outputs::{OutputReader, OutputsError};
use crate::stack::{Stack, StackKind};

/// Name of the role the coordinator assumes in a tenant's account. Fixed, so
/// the coordinator can derive its ARN from the account id.
pub const DEPLOY_ROLE_NAME: &str = "docproc-coordinator-deploy";
/// Name of the role CloudFormation uses to create the tenant's resources.
pub const EXECUTION_ROLE_NAME: &str = "docproc-cloudformation-execution";
/// Name of the managed policy every stack-created role must use as boundary.
pub const WORKLOAD_BOUNDARY_NAME: &str = "docproc-workload-boundary";
/// The name prefix under which the deploy role may keep the tenant's
/// secrets (Secrets Manager `doc-platform/*`, SSM `/doc-platform/*`): the
/// coordinator's default secrets prefix. A tenant configured with another
/// `prefix` and `account = "tenant"` is not covered by the template.
pub const TENANT_SECRETS_PREFIX: &str = "doc-platform";
/// The key prefix the storage probe writes its canary under; the only part
/// of the storage stack's bucket the deploy role may touch.
pub const STORAGE_PROBE_PREFIX: &str = "docproc-probe";

/// Marker type for the bootstrap stack.
#[derive(Debug, Clone, Copy)]
pub struct Bootstrap;

/// Render-time choices for the bootstrap stack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BootstrapShape {
    /// A permissions boundary of the customer's own to attach to both roles
    /// this stack creates (many security teams require one on every role).
    pub permissions_boundary_arn: Option<Arn>,
}

/// Deploy-time parameters of the bootstrap stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct BootstrapParameters {
    /// The vendor principal (the coordinator's role) allowed to assume the
    /// deploy role.
    pub coordinator_principal_arn: RoleArn,
    /// The ExternalId the trust policy requires.
    pub external_id: ExternalId,
}

/// What the bootstrap stack returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct BootstrapOutputs {
    /// The role the coordinator assumes.
    pub deploy_role_arn: RoleArn,
    /// The role CloudFormation runs as.
    pub execution_role_arn: RoleArn,
    /// The boundary policy stack-created roles must carry.
    pub workload_boundary_arn: Arn,
}

impl Stack for Bootstrap {
    const KIND: StackKind = StackKind::Bootstrap;
    type Shape = BootstrapShape;
    type Parameters = BootstrapParameters;
    type Outputs = BootstrapOutputs;

    fn parse_outputs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<BootstrapOutputs, OutputsError> {
        let mut r = OutputReader::new("bootstrap", pairs);
        let deploy_role_arn = r.required("DeployRoleArn");
        let execution_role_arn = r.required("ExecutionRoleArn");
        let workload_boundary_arn = r.required("WorkloadBoundaryArn");
        r.finish(|| {
            Some(BootstrapOutputs {
                deploy_role_arn: deploy_role_arn?,
                execution_role_arn: execution_role_arn?,
                workload_boundary_arn: workload_boundary_arn?,
            })
        })
    }
}
