//! Tenant privacy configuration: where a tenant's documents are stored and
//! whose LLM keys process them, and whether it may ever fall back to the
//! vendor's hosted defaults.
//!
//! The configuration is kept in the coordinator's store, versioned, and
//! every change is an audit entry with the actor ([`change`]). The manifest
//! says what a tenant is *entitled* to (capabilities); this says what it
//! *uses*, and a mode the tenant is not entitled to is refused.

pub mod change;
pub mod config;
pub mod view;

pub use config::{ConfigProblem, LlmMode, ManagedBy, PrivacyConfig, Provider, StorageMode};

/// A tenant with these capabilities, for this module's tests.
#[cfg(test)]
pub(crate) fn test_tenant(id: &str, caps: &[stacks::ids::Capability]) -> crate::manifest::Tenant {
    crate::manifest::Tenant {
        id: id.parse().unwrap(),
        account_id: "222222222222".parse().unwrap(),
        region: stacks::ids::Region::EuWest1,
        external_id: "x".repeat(40).parse().unwrap(),
        wave: "canary".parse().unwrap(),
        capabilities: caps.iter().copied().collect(),
        role_arn: "arn:aws:iam::222222222222:role/docproc-coordinator-deploy"
            .parse()
            .unwrap(),
        retention_days: stacks::builtin::storage::RetentionDays::new(7).unwrap(),
    }
}
