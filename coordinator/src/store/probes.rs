//! What the store keeps of probe outcomes: the latest per tenant and probe,
//! the configuration it checked, and when the dependency last passed.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use stacks::ids::TenantId;

use super::StoreError;
use crate::probes::ProbeOutcome;

/// A stored outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredProbe {
    /// The latest outcome.
    pub outcome: ProbeOutcome,
    /// When the probe last passed (kept across failures).
    pub last_passed_at: Option<DateTime<Utc>>,
    /// Digest of the privacy configuration it checked.
    pub config_digest: String,
}

/// Probe outcomes.
#[async_trait]
pub trait ProbeStore: Send + Sync {
    /// Records an outcome as the latest for its tenant and probe.
    async fn put_probe(
        &self,
        outcome: &ProbeOutcome,
        config_digest: &str,
    ) -> Result<StoredProbe, StoreError>;

    /// The latest outcomes for one tenant, or every tenant.
    async fn probes(&self, tenant: Option<&TenantId>) -> Result<Vec<StoredProbe>, StoreError>;
}
