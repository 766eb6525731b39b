//! What the manifest wants in each tenant's account: which stacks, rendered
//! from which shape, with which parameters.
//!
//! Some parameters are outputs of an earlier stack (the worker needs the
//! storage stack's key and bucket). Until those outputs are known, such a
//! parameter is [`ParameterValue::FromOutput`]; once they are, the desired
//! stack becomes a complete [`RenderedStack`]. This module is pure: it reads
//! the manifest and outputs it is given, never AWS.

use serde::Serialize;
use stacks::aws_names::Arn;
use stacks::builtin::bootstrap::{
    Bootstrap, BootstrapParameters, BootstrapShape, WORKLOAD_BOUNDARY_NAME,
};
use stacks::builtin::storage::{Storage, StorageOutputs, StorageParameters, StorageShape};
use stacks::builtin::worker::{Worker, WorkerParameters, WorkerShape};
use stacks::ids::Capability;
use stacks::{Release, RenderedStack, StackError, StackKind, Template};

use crate::manifest::{Manifest, Tenant};

/// Seconds a job stays invisible after a worker receives it.
pub const JOB_VISIBILITY_TIMEOUT_SECONDS: u32 = 300;
/// Receives before a job is dead-lettered.
pub const MAX_RECEIVE_COUNT: u16 = 5;

/// Where a parameter's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ParameterValue {
    /// Known now.
    Known {
        /// The value.
        #[serde(rename = "ParameterValue")]
        value: String,
    },
    /// An output of an earlier stack, known once that stack is deployed.
    FromOutput {
        /// Which stack and output.
        #[serde(rename = "FromStackOutput")]
        source: OutputRef,
    },
}

/// A reference to another stack's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OutputRef {
    /// The stack's name.
    pub stack: &'static str,
    /// The output key.
    pub output: &'static str,
}

/// One desired parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredParameter {
    /// The template's parameter name.
    #[serde(rename = "ParameterKey")]
    pub key: String,
    /// Its value or where it will come from.
    #[serde(flatten)]
    pub value: ParameterValue,
}

/// A stack as the manifest wants it.
#[derive(Debug, Clone)]
pub struct DesiredStack {
    /// Which stack.
    pub kind: StackKind,
    /// The rendered, checked template.
    pub template: Template,
    /// Its parameters.
    pub parameters: Vec<DesiredParameter>,
    /// The complete stack, when every parameter is known.
    pub rendered: Option<RenderedStack>,
}

/// Outputs of a tenant's already-deployed stacks that later stacks consume.
#[derive(Debug, Clone, Default)]
pub struct Upstream {
    /// The storage stack's outputs, if deployed.
    pub storage: Option<StorageOutputs>,
}

fn known(stack: RenderedStack) -> DesiredStack {
    let parameters = stack
        .parameters
        .iter()
        .map(|p| DesiredParameter {
            key: p.parameter_key.clone(),
            value: ParameterValue::Known {
                value: p.parameter_value.clone(),
            },
        })
        .collect();
    DesiredStack {
        kind: stack.kind,
        template: stack.template.clone(),
        parameters,
        rendered: Some(stack),
    }
}

/// The bootstrap stack the customer deploys for `tenant`.
pub fn bootstrap(
    release: &Release,
    manifest: &Manifest,
    tenant: &Tenant,
) -> Result<DesiredStack, StackError> {
    let params = BootstrapParameters {
        coordinator_principal_arn: manifest.coordinator.principal_arn.clone(),
        external_id: tenant.external_id.clone(),
    };
    release
        .render::<Bootstrap>(&BootstrapShape::default(), &params)
        .map(known)
}

/// The stacks the vendor deploys for `tenant`, in dependency order (none for
/// a tenant on the hosted default).
pub fn deployed(
    release: &Release,
    tenant: &Tenant,
    upstream: &Upstream,
) -> Result<Vec<DesiredStack>, StackError> {
    let mut out = Vec::new();
    for kind in tenant.deployed_stacks() {
        out.push(match kind {
            StackKind::Storage => storage(release, tenant)?,
            StackKind::Worker => worker(release, tenant, upstream)?,
            StackKind::Bootstrap => unreachable!("the bootstrap stack is the customer's"),
        });
    }
    Ok(out)
}

fn storage(release: &Release, tenant: &Tenant) -> Result<DesiredStack, StackError> {
    let params = StorageParameters {
        tenant_id: tenant.id.clone(),
        retention_days: tenant.retention_days,
    };
    release
        .render::<Storage>(&StorageShape::default(), &params)
        .map(known)
}

/// Worker parameters that are storage outputs: (parameter, output).
const WORKER_FROM_STORAGE: &[(&str, &str)] =
    &[("KmsKeyArn", "KmsKeyArn"), ("BucketArn", "BucketArn")];

fn worker(
    release: &Release,
    tenant: &Tenant,
    upstream: &Upstream,
) -> Result<DesiredStack, StackError> {
    let shape = WorkerShape {
        llm_key_secret: tenant.has(Capability::ByoAiKeys),
    };
    let boundary: Arn = format!(
        "arn:aws:iam::{}:policy/{WORKLOAD_BOUNDARY_NAME}",
        tenant.account_id
    )
    .parse()
    .expect("a valid account makes a valid policy ARN");
    let params = |kms_key_arn: Arn, bucket_arn: Arn| WorkerParameters {
        tenant_id: tenant.id.clone(),
        kms_key_arn,
        bucket_arn,
        permissions_boundary_arn: boundary.clone(),
        job_visibility_timeout_seconds: JOB_VISIBILITY_TIMEOUT_SECONDS,
        max_receive_count: MAX_RECEIVE_COUNT,
    };
    if let Some(storage) = &upstream.storage {
        let stack = release.render::<Worker>(
            &shape,
            &params(storage.kms_key_arn.clone(), storage.bucket_arn.clone()),
        )?;
        return Ok(known(stack));
    }
    // Storage is not deployed yet: render with stand-in values only to get the
    // typed parameter list, then mark the storage-fed ones as pending. The
    // stand-ins never leave this function.
    let stand_in: Arn = "arn:aws:kms:us-east-1:000000000000:key/pending"
        .parse()
        .expect("valid");
    let stack = release.render::<Worker>(&shape, &params(stand_in.clone(), stand_in))?;
    let mut desired = known(stack);
    desired.rendered = None;
    for p in &mut desired.parameters {
        if let Some((_, output)) = WORKER_FROM_STORAGE
            .iter()
            .find(|(param, _)| *param == p.key)
        {
            p.value = ParameterValue::FromOutput {
                source: OutputRef {
                    stack: StackKind::Storage.stack_name(),
                    output,
                },
            };
        }
    }
    Ok(desired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stacks::Stack;

    fn tenant(caps: &[Capability]) -> Tenant {
        crate::manifest::model::test_tenant("acme", caps)
    }

    #[test]
    fn hosted_tenants_get_no_stacks() {
        let stacks = deployed(
            Release::builtin(),
            &tenant(&[Capability::ByoAiKeys]),
            &Upstream::default(),
        )
        .unwrap();
        assert!(stacks.is_empty());
    }

    #[test]
    fn worker_waits_for_storage_outputs_then_uses_them() {
        let t = tenant(&[Capability::DedicatedAws, Capability::ByoAiKeys]);
        let pending = deployed(Release::builtin(), &t, &Upstream::default()).unwrap();
        assert_eq!(
            pending.iter().map(|s| s.kind).collect::<Vec<_>>(),
            [StackKind::Storage, StackKind::Worker]
        );
        assert!(pending[0].rendered.is_some());
        let worker = &pending[1];
        assert!(worker.rendered.is_none());
        let from: Vec<&str> = worker
            .parameters
            .iter()
            .filter(|p| matches!(p.value, ParameterValue::FromOutput { .. }))
            .map(|p| p.key.as_str())
            .collect();
        assert_eq!(from, ["BucketArn", "KmsKeyArn"]);
        assert!(worker.template.resources().contains_key("LlmKeySecret"));
        assert!(
            !serde_json::to_string(&worker.parameters)
                .unwrap()
                .contains("pending")
        );

        let outputs = Storage::parse_outputs([
            ("BucketName", "docproc-storage-documentsbucket-1"),
            (
                "BucketArn",
                "arn:aws:s3:::docproc-storage-documentsbucket-1",
            ),
            ("KmsKeyArn", "arn:aws:kms:eu-west-1:222222222222:key/k"),
        ])
        .unwrap();
        let ready = deployed(
            Release::builtin(),
            &t,
            &Upstream {
                storage: Some(outputs),
            },
        )
        .unwrap();
        let worker = ready[1].rendered.as_ref().unwrap();
        let kms = worker
            .parameters
            .iter()
            .find(|p| p.parameter_key == "KmsKeyArn")
            .unwrap();
        assert_eq!(
            kms.parameter_value,
            "arn:aws:kms:eu-west-1:222222222222:key/k"
        );
        assert_eq!(ready[1].template.hash(), pending[1].template.hash());
    }
}
