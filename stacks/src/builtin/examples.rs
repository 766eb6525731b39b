//! Example inputs for every stack and every shape variant, for tests,
//! benchmarks and documentation. Values are realistic but fictitious.

use crate::builtin::bootstrap::{Bootstrap, BootstrapParameters, BootstrapShape};
use crate::builtin::storage::{KeyChoice, RetentionDays, Storage, StorageParameters, StorageShape};
use crate::builtin::worker::{Worker, WorkerParameters, WorkerShape};
use crate::ids::{AccountId, TenantId};
use crate::{Release, RenderedStack, StackError};

/// Renders every stack in every shape variant for `tenant` in `account`.
/// Returns (label, rendered stack), the label naming the stack and shape.
pub fn render_all(
    release: &Release,
    tenant: &TenantId,
    account: &AccountId,
) -> Result<Vec<(String, RenderedStack)>, StackError> {
    let arn = |service: &str, resource: &str| {
        format!("arn:aws:{service}:eu-west-1:{account}:{resource}")
            .parse()
            .expect("example ARNs are valid")
    };
    let bootstrap_params = BootstrapParameters {
        coordinator_principal_arn: "arn:aws:iam::111111111111:role/docproc-coordinator"
            .parse()
            .expect("valid"),
        external_id: "exampleExternalId-0123456789abcdef0123456789"
            .parse()
            .expect("valid"),
    };
    let storage_params = StorageParameters {
        tenant_id: tenant.clone(),
        retention_days: RetentionDays::new(30).expect("in range"),
    };
    let worker_params = WorkerParameters {
        tenant_id: tenant.clone(),
        kms_key_arn: arn("kms", "key/0b7e3c1a-5d2f-4f5e-9c11-2f0d8e6a7b90"),
        bucket_arn: "arn:aws:s3:::docproc-storage-documentsbucket-1x2y3z"
            .parse()
            .expect("valid"),
        permissions_boundary_arn: format!(
            "arn:aws:iam::{account}:policy/docproc-workload-boundary"
        )
        .parse()
        .expect("valid"),
        job_visibility_timeout_seconds: 300,
        max_receive_count: 5,
    };
    let customer_boundary = format!("arn:aws:iam::{account}:policy/CustomerVendorBoundary");
    Ok(vec![
        (
            "bootstrap".into(),
            release.render::<Bootstrap>(&BootstrapShape::default(), &bootstrap_params)?,
        ),
        (
            "bootstrap-with-boundary".into(),
            release.render::<Bootstrap>(
                &BootstrapShape {
                    permissions_boundary_arn: Some(customer_boundary.parse().expect("valid")),
                },
                &bootstrap_params,
            )?,
        ),
        (
            "storage".into(),
            release.render::<Storage>(&StorageShape::default(), &storage_params)?,
        ),
        (
            "storage-existing-key".into(),
            release.render::<Storage>(
                &StorageShape {
                    key: KeyChoice::Existing {
                        key_arn: arn("kms", "key/customer-owned-key"),
                    },
                },
                &storage_params,
            )?,
        ),
        (
            "worker".into(),
            release.render::<Worker>(&WorkerShape::default(), &worker_params)?,
        ),
        (
            "worker-llm-key-secret".into(),
            release.render::<Worker>(
                &WorkerShape {
                    llm_key_secret: true,
                },
                &worker_params,
            )?,
        ),
    ])
}
