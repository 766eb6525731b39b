//! The LLM probe's Bedrock call: into the tenant's account through its
//! deploy role (AssumeRole with its ExternalId, account checked, as for
//! every tenant call), then `ListFoundationModels` in the tenant's region,
//! with each failure mapped to a probe error ([`super::failures`]).
//!
//! What this module must never do: invoke a model or change model access.

use crate::access::{self, Operator};
use crate::aws::ErrorKind;
use crate::privacy::Provider;
use crate::probes::{ProbeError, ProbeTarget};

use super::Listed;
use super::failures;

/// The foundation models of the tenant's region, with Bedrock's word on
/// whether each reads images.
pub(super) async fn list(
    target: &ProbeTarget,
    operator: &Operator,
) -> Result<Vec<Listed>, ProbeError> {
    let tenant = &target.tenant;
    let connector = target.connector.as_ref();
    let access = access::connect(connector, operator, tenant)
        .await
        .map_err(|e| failures::tenant_role_unreachable(&tenant.id, &e))?;
    let models = connector
        .tenant_bedrock(access.credentials, tenant.region)
        .list_foundation_models()
        .await
        .map_err(|e| {
            let said = e.message;
            match e.kind {
                ErrorKind::AccessDenied => failures::bedrock_access_denied(&tenant.id, &said),
                ErrorKind::Throttled => {
                    failures::rate_limited(&tenant.id, Provider::Bedrock, &format!(": \"{said}\""))
                }
                ErrorKind::Transient => failures::provider_unavailable(
                    &tenant.id,
                    Provider::Bedrock,
                    &format!("ListFoundationModels in {}: {said}", tenant.region),
                ),
                _ => failures::unexpected_response(
                    &tenant.id,
                    Provider::Bedrock,
                    &format!("ListFoundationModels in {}: {said}", tenant.region),
                ),
            }
        })?;
    Ok(models
        .into_iter()
        .map(|m| Listed {
            reads_images: (!m.input_modalities.is_empty()).then(|| m.reads_images()),
            id: m.id,
        })
        .collect())
}
