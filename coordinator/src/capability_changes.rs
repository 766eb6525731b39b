//! Capability changes between two applied manifests: which tenants gained
//! or lost which capabilities, and the audit entry that records it.
//!
//! A manifest is *applied* when `deploy`, `rollout start` or `serve` acts on
//! it. Each tenant's capabilities are then compared with the set stored the
//! last time a manifest was applied to it: a tenant seen for the first time
//! gets `tenant.capabilities_set`, a changed one
//! `tenant.capabilities_changed` (with the added and removed capabilities),
//! both with the operator and the manifest's digest. An unchanged tenant
//! gets nothing.
//!
//! The comparison is pure; the store
//! ([`crate::store::sqlite::capabilities::AppliedCapabilities`]) runs it
//! inside the transaction that appends the entries and stores the new sets,
//! so two coordinators applying at once cannot both log one change.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use stacks::ids::{Capability, TenantId};

use crate::manifest::Tenant;
use crate::store::NewAuditEntry;

/// The audit action for a tenant's first applied capabilities.
pub const SET: &str = "tenant.capabilities_set";
/// The audit action for a change of a tenant's applied capabilities.
pub const CHANGED: &str = "tenant.capabilities_changed";

/// A tenant's capabilities, as applied.
pub type Capabilities = BTreeSet<Capability>;

/// One tenant whose applied capabilities differ from the last ones stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityChange {
    /// The tenant.
    pub tenant: TenantId,
    /// The last applied set; `None` when the tenant is seen for the first time.
    pub previous: Option<Capabilities>,
    /// The set now applied.
    pub current: Capabilities,
}

impl CapabilityChange {
    /// Capabilities in `current` but not in `previous`.
    pub fn added(&self) -> Capabilities {
        match &self.previous {
            Some(p) => self.current.difference(p).copied().collect(),
            None => self.current.clone(),
        }
    }

    /// Capabilities in `previous` but not in `current`.
    pub fn removed(&self) -> Capabilities {
        match &self.previous {
            Some(p) => p.difference(&self.current).copied().collect(),
            None => Capabilities::new(),
        }
    }

    /// The audit entry recording this change by `actor`, applying the
    /// manifest with `manifest_digest`.
    pub fn audit_entry(&self, actor: &str, manifest_digest: &str) -> NewAuditEntry {
        let names = |set: &Capabilities| set.iter().map(|c| c.as_str()).collect::<Vec<_>>();
        let details = match &self.previous {
            None => json!({
                "capabilities": names(&self.current),
                "manifest_digest": manifest_digest,
            }),
            Some(previous) => json!({
                "added": names(&self.added()),
                "removed": names(&self.removed()),
                "previous": names(previous),
                "capabilities": names(&self.current),
                "manifest_digest": manifest_digest,
            }),
        };
        NewAuditEntry {
            actor: actor.to_owned(),
            tenant: Some(self.tenant.clone()),
            action: if self.previous.is_some() {
                CHANGED
            } else {
                SET
            }
            .to_owned(),
            details,
        }
    }
}

/// The tenants of `applied` whose capabilities differ from `stored` (the
/// last applied sets), in the order of `applied`.
pub fn changes(
    stored: &BTreeMap<TenantId, Capabilities>,
    applied: &[(TenantId, Capabilities)],
) -> Vec<CapabilityChange> {
    applied
        .iter()
        .filter(|(tenant, current)| stored.get(tenant) != Some(current))
        .map(|(tenant, current)| CapabilityChange {
            tenant: tenant.clone(),
            previous: stored.get(tenant).cloned(),
            current: current.clone(),
        })
        .collect()
}

/// The capabilities a manifest applies to `tenants`.
pub fn applied<'m>(tenants: impl IntoIterator<Item = &'m Tenant>) -> Vec<(TenantId, Capabilities)> {
    tenants
        .into_iter()
        .map(|t| (t.id.clone(), t.capabilities.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(list: &[Capability]) -> Capabilities {
        list.iter().copied().collect()
    }

    fn id(s: &str) -> TenantId {
        s.parse().unwrap()
    }

    #[test]
    fn new_changed_and_unchanged_tenants() {
        use Capability::*;
        let stored = BTreeMap::from([
            (id("acme"), caps(&[DedicatedAws, ByoAiKeys])),
            (id("globex"), caps(&[DedicatedAws])),
        ]);
        let applied = vec![
            (id("acme"), caps(&[DedicatedAws, CustomerStorage])),
            (id("globex"), caps(&[DedicatedAws])),
            (id("hooli"), caps(&[ByoAiKeys])),
        ];
        let found = changes(&stored, &applied);
        assert_eq!(found.len(), 2, "{found:#?}");
        let acme = &found[0];
        assert_eq!(acme.tenant, id("acme"));
        assert_eq!(acme.added(), caps(&[CustomerStorage]));
        assert_eq!(acme.removed(), caps(&[ByoAiKeys]));
        let hooli = &found[1];
        assert_eq!(hooli.previous, None);
        assert_eq!(hooli.added(), caps(&[ByoAiKeys]));
        assert!(hooli.removed().is_empty());
    }

    #[test]
    fn audit_entries_name_actor_changes_and_digest() {
        use Capability::*;
        let change = CapabilityChange {
            tenant: id("acme"),
            previous: Some(caps(&[DedicatedAws, ByoAiKeys])),
            current: caps(&[DedicatedAws, SelfHosted]),
        };
        let e = change.audit_entry("arn:aws:sts::1:assumed-role/r/alice", "sha256:ab");
        assert_eq!(e.action, CHANGED);
        assert_eq!(e.actor, "arn:aws:sts::1:assumed-role/r/alice");
        assert_eq!(e.tenant, Some(id("acme")));
        assert_eq!(
            e.details,
            json!({
                "added": ["self_hosted"],
                "removed": ["byo_ai_keys"],
                "previous": ["byo_ai_keys", "dedicated_aws"],
                "capabilities": ["dedicated_aws", "self_hosted"],
                "manifest_digest": "sha256:ab",
            })
        );
        let first = CapabilityChange {
            previous: None,
            ..change
        };
        let e = first.audit_entry("alice", "sha256:ab");
        assert_eq!(e.action, SET);
        assert_eq!(
            e.details,
            json!({"capabilities": ["dedicated_aws", "self_hosted"], "manifest_digest": "sha256:ab"})
        );
    }

    #[test]
    fn an_empty_set_is_still_recorded_the_first_time() {
        let found = changes(&BTreeMap::new(), &[(id("acme"), Capabilities::new())]);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].audit_entry("a", "d").details["capabilities"],
            json!([])
        );
    }
}
