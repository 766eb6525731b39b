//! Entitlements: the one place that decides whether a tenant may use an
//! operation that needs a capability (`customer_storage`, `byo_ai_keys`,
//! `dedicated_aws`, `self_hosted`).
//!
//! Every operation that needs a capability calls [`require`] before it does
//! anything else, and refuses with [`NotEntitled`] when the tenant lacks it:
//! nothing is written, no AWS call is made. Fleet-wide operations use
//! [`partition`] to skip the tenants that are not entitled and say so.
//!
//! This module must never read the store, call AWS or look anywhere but the
//! validated manifest: capabilities come from `deploy.toml` and nowhere else.

use stacks::ids::{Capability, TenantId};

use crate::manifest::Tenant;

/// A tenant asked for an operation its capabilities do not include.
///
/// The message names the tenant, the capability and the operation, and says
/// how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "tenant `{tenant}` is not entitled to {operation}: it lacks the `{capability}` capability; \
     if the tenant's contract includes it, add \"{capability}\" to the tenant's `capabilities` \
     in deploy.toml"
)]
pub struct NotEntitled {
    /// The tenant.
    pub tenant: TenantId,
    /// The capability it lacks.
    pub capability: Capability,
    /// What was refused, e.g. `deploy` or `secret put`.
    pub operation: String,
}

/// Succeeds when `tenant` has `capability`; otherwise the error names the
/// tenant, the capability and `operation` (a short phrase such as `deploy`
/// or `secret put`).
pub fn require(
    tenant: &Tenant,
    capability: Capability,
    operation: &str,
) -> Result<(), NotEntitled> {
    if tenant.has(capability) {
        Ok(())
    } else {
        Err(NotEntitled {
            tenant: tenant.id.clone(),
            capability,
            operation: operation.to_owned(),
        })
    }
}

/// Tenants split by one capability, in their original order.
#[derive(Debug, Clone)]
pub struct Partition<'m> {
    /// Tenants that have the capability.
    pub entitled: Vec<&'m Tenant>,
    /// Tenants that lack it: a fleet-wide operation skips them and says so.
    pub skipped: Vec<&'m Tenant>,
}

impl Partition<'_> {
    /// The skipped tenants' ids.
    pub fn skipped_ids(&self) -> Vec<TenantId> {
        self.skipped.iter().map(|t| t.id.clone()).collect()
    }
}

/// Splits `tenants` into those with `capability` and those without.
pub fn partition<'m>(
    tenants: impl IntoIterator<Item = &'m Tenant>,
    capability: Capability,
) -> Partition<'m> {
    let (entitled, skipped) = tenants.into_iter().partition(|t| t.has(capability));
    Partition { entitled, skipped }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn manifest() -> crate::manifest::Manifest {
        let text = r#"
[coordinator]
account_id = "111111111111"
region = "us-east-1"
state = "coordinator.db"

[release]
version = "2024.06.1"

[rollout]
waves = ["general"]

[[tenants]]
id = "acme"
account_id = "222222222222"
region = "eu-west-1"
external_id = "jETE7Z9YTepNk2z3Op8cy9w2LY1mmupALzi08IBD"
wave = "general"
capabilities = ["dedicated_aws"]

[[tenants]]
id = "hooli"
account_id = "555555555555"
region = "us-west-2"
external_id = "V0eL6mgAns6JIgMuUAUVfFmStNjkrKHkRKFzoQtB"
wave = "general"
capabilities = ["byo_ai_keys"]
"#
        .replace("2024.06.1", stacks::RELEASE_VERSION);
        crate::manifest::from_text(Path::new("deploy.toml"), text)
            .unwrap_or_else(|e| panic!("{}", e.report.render()))
            .manifest
    }

    #[test]
    fn require_passes_an_entitled_tenant() {
        let m = manifest();
        let acme = m.tenant(&"acme".parse().unwrap()).unwrap();
        assert_eq!(require(acme, Capability::DedicatedAws, "deploy"), Ok(()));
    }

    #[test]
    fn the_refusal_names_tenant_capability_and_operation_and_the_fix() {
        let m = manifest();
        let hooli = m.tenant(&"hooli".parse().unwrap()).unwrap();
        let err = require(hooli, Capability::DedicatedAws, "deploy").unwrap_err();
        assert_eq!(err.capability, Capability::DedicatedAws);
        assert_eq!(err.tenant.as_str(), "hooli");
        let text = err.to_string();
        for needle in [
            "`hooli`",
            "deploy",
            "`dedicated_aws`",
            "deploy.toml",
            "contract",
        ] {
            assert!(text.contains(needle), "{needle} missing from: {text}");
        }
    }

    #[test]
    fn partition_keeps_order_and_splits_by_capability() {
        let m = manifest();
        let p = partition(&m.tenants, Capability::DedicatedAws);
        let ids = |ts: &[&Tenant]| ts.iter().map(|t| t.id.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(&p.entitled), ["acme"]);
        assert_eq!(ids(&p.skipped), ["hooli"]);
        let p = partition(&m.tenants, Capability::SelfHosted);
        assert!(p.entitled.is_empty());
        assert_eq!(p.skipped_ids().len(), 2);
    }
}
