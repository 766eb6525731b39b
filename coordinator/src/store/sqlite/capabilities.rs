//! [`AppliedCapabilities`]: each tenant's capabilities as of the last
//! manifest applied to it, kept to audit capability changes
//! ([`crate::capability_changes`]).
//!
//! A trait of its own beside the [`Store`](crate::store::Store) trait: only
//! the commands that apply a manifest need it. Recording compares, appends
//! the audit entries and stores the new sets in one transaction: a change is
//! never stored without its audit entry, nor logged twice.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::params;
use stacks::ids::{Capability, TenantId};

use super::{SqliteStore, append_audit_in, now, parse};
use crate::capability_changes::{self, Capabilities};
use crate::store::{AuditEntry, StoreError, audit};

/// The last applied capabilities of each tenant.
#[async_trait]
pub trait AppliedCapabilities: Send + Sync + std::fmt::Debug {
    /// Every tenant's last applied capabilities.
    async fn applied_capabilities(&self) -> Result<BTreeMap<TenantId, Capabilities>, StoreError>;

    /// Applies `applied` (tenant and capabilities) from the manifest with
    /// `manifest_digest`: for each tenant whose set differs from the stored
    /// one, appends its audit entry by `actor` and stores the new set, all in
    /// one transaction. Returns the entries appended (none when nothing
    /// changed). Tenants not in `applied` keep their stored sets.
    async fn apply_capabilities(
        &self,
        applied: &[(TenantId, Capabilities)],
        actor: &str,
        manifest_digest: &str,
    ) -> Result<Vec<AuditEntry>, StoreError>;
}

fn read_all(conn: &rusqlite::Connection) -> Result<BTreeMap<TenantId, Capabilities>, StoreError> {
    let mut stmt = conn.prepare("SELECT tenant, capabilities FROM applied_capabilities")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (tenant, caps) = row?;
        let names: Vec<String> = serde_json::from_str(&caps)
            .map_err(|e| StoreError::Corrupt(format!("applied capabilities of {tenant}: {e}")))?;
        let caps = names
            .iter()
            .map(|n| {
                Capability::ALL
                    .iter()
                    .copied()
                    .find(|c| c.as_str() == n)
                    .ok_or_else(|| StoreError::Corrupt(format!("capability {n:?} of {tenant}")))
            })
            .collect::<Result<Capabilities, _>>()?;
        out.insert(parse("tenant", &tenant)?, caps);
    }
    Ok(out)
}

#[async_trait]
impl AppliedCapabilities for SqliteStore {
    async fn applied_capabilities(&self) -> Result<BTreeMap<TenantId, Capabilities>, StoreError> {
        read_all(&self.conn())
    }

    async fn apply_capabilities(
        &self,
        applied: &[(TenantId, Capabilities)],
        actor: &str,
        manifest_digest: &str,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let stored = read_all(&tx)?;
        let mut entries = Vec::new();
        for change in capability_changes::changes(&stored, applied) {
            entries.push(append_audit_in(
                &tx,
                change.audit_entry(actor, manifest_digest),
            )?);
            let names: Vec<&str> = change.current.iter().map(|c| c.as_str()).collect();
            tx.execute(
                "INSERT INTO applied_capabilities (tenant, capabilities, manifest_digest, applied_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant) DO UPDATE SET capabilities = ?2, manifest_digest = ?3, applied_at = ?4",
                params![
                    change.tenant.as_str(),
                    serde_json::json!(names).to_string(),
                    manifest_digest,
                    audit::timestamp(&now()),
                ],
            )?;
        }
        tx.commit()?;
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn caps(list: &[Capability]) -> Capabilities {
        list.iter().copied().collect()
    }

    fn id(s: &str) -> TenantId {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn records_first_sets_then_only_changes_in_the_audit_chain() {
        use Capability::*;
        let store = SqliteStore::in_memory().unwrap();
        let v1 = vec![
            (id("acme"), caps(&[DedicatedAws, ByoAiKeys])),
            (id("hooli"), caps(&[])),
        ];
        let first = store
            .apply_capabilities(&v1, "alice", "sha256:1")
            .await
            .unwrap();
        let actions: Vec<&str> = first.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, [capability_changes::SET, capability_changes::SET]);
        assert_eq!(store.applied_capabilities().await.unwrap().len(), 2);

        // The same manifest again: nothing to record.
        let again = store
            .apply_capabilities(&v1, "bob", "sha256:1")
            .await
            .unwrap();
        assert!(again.is_empty());

        let v2 = vec![(id("acme"), caps(&[DedicatedAws]))];
        let changed = store
            .apply_capabilities(&v2, "bob", "sha256:2")
            .await
            .unwrap();
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].action, capability_changes::CHANGED);
        assert_eq!(changed[0].actor, "bob");
        assert_eq!(
            changed[0].details["removed"],
            serde_json::json!(["byo_ai_keys"])
        );
        assert_eq!(changed[0].details["manifest_digest"], "sha256:2");
        let stored = store.applied_capabilities().await.unwrap();
        assert_eq!(stored[&id("acme")], caps(&[DedicatedAws]));
        assert_eq!(
            stored[&id("hooli")],
            caps(&[]),
            "tenants not applied keep their sets"
        );

        let chain = store.audit_entries(0, 100).await.unwrap();
        assert_eq!(audit::verify(&chain), Ok(3));
    }
}
