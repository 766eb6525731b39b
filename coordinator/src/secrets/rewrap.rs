//! Re-wrapping the hosted store's data keys under a new master key (KMS key
//! or master key file): the rotation of the key-encryption key.
//!
//! Each tenant's data key is unwrapped with the old wrapper and wrapped
//! with the new one; the secrets' ciphertexts do not change, since the
//! data key does not. Each replacement is written with its audit entry in
//! one transaction, and only if the stored key is still the one that was
//! read (compare and swap), so two runs, or a run racing a first write,
//! never lose a key. A key already under the new wrapper is left alone, so
//! a run that stopped half way is finished by running it again. A key
//! under neither wrapper is reported, never touched.
//!
//! [`plan`] only reads; [`apply`] writes what a plan found.

use serde::Serialize;
use stacks::ids::TenantId;

use super::key_wrapper::{KeyWrapper, WrapError};
use crate::store::sealed::{SealedSecrets, WrappedDataKey};
use crate::store::{NewAuditEntry, StoreError};

/// What happens to one tenant's data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum KeyState {
    /// The tenant has no hosted secrets yet: nothing to re-wrap.
    NoKey,
    /// Under the new wrapper already.
    Current,
    /// Under the old wrapper: to re-wrap.
    ToRewrap,
    /// Under a wrapper that is neither (`wrapper` is its stored id): left
    /// alone; its secrets do not open with either key.
    Unknown {
        /// The stored wrapper id.
        wrapper: String,
    },
}

/// One tenant in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantKey {
    /// The tenant.
    pub tenant: TenantId,
    /// Its key's state.
    #[serde(flatten)]
    pub state: KeyState,
}

/// Why a re-wrap stopped.
#[derive(Debug, thiserror::Error)]
pub enum RewrapError {
    /// The store failed.
    #[error("could not read or write the hosted data keys")]
    Store(#[from] StoreError),
    /// The old key did not open a key stored as its own, or the new key
    /// could not wrap.
    #[error("tenant {tenant}: {doing} failed: {source}")]
    Key {
        /// The tenant.
        tenant: TenantId,
        /// `unwrapping with the old key` or `wrapping with the new key`.
        doing: &'static str,
        /// Why.
        #[source]
        source: WrapError,
    },
    /// The stored key changed between reading and writing.
    #[error(
        "tenant {0}: its data key changed while being re-wrapped (another coordinator?); run the command again"
    )]
    Raced(TenantId),
}

/// The state of each of `tenants`' data keys, between `old` and `new`.
pub async fn plan(
    records: &dyn SealedSecrets,
    tenants: &[TenantId],
    old: &dyn KeyWrapper,
    new: &dyn KeyWrapper,
) -> Result<Vec<TenantKey>, StoreError> {
    let mut out = Vec::with_capacity(tenants.len());
    for tenant in tenants {
        let state = match records.data_key(tenant).await? {
            None => KeyState::NoKey,
            Some(k) if k.wrapper == new.id() => KeyState::Current,
            Some(k) if k.wrapper == old.id() => KeyState::ToRewrap,
            Some(k) => KeyState::Unknown { wrapper: k.wrapper },
        };
        out.push(TenantKey {
            tenant: tenant.clone(),
            state,
        });
    }
    Ok(out)
}

/// Re-wraps the keys `plan` marked [`KeyState::ToRewrap`], each with an
/// audit entry by `actor`; returns the tenants re-wrapped. Stops at the
/// first failure: what was re-wrapped before it stays re-wrapped (and
/// audited), and running again finishes the rest.
pub async fn apply(
    records: &dyn SealedSecrets,
    plan: &[TenantKey],
    old: &dyn KeyWrapper,
    new: &dyn KeyWrapper,
    actor: &str,
) -> Result<Vec<TenantId>, RewrapError> {
    let mut done = Vec::new();
    for entry in plan.iter().filter(|e| e.state == KeyState::ToRewrap) {
        let tenant = &entry.tenant;
        let Some(stored) = records.data_key(tenant).await? else {
            return Err(RewrapError::Raced(tenant.clone()));
        };
        if stored.wrapper != old.id() {
            return Err(RewrapError::Raced(tenant.clone()));
        }
        let key = old
            .unwrap(tenant, &stored.wrapper, &stored.blob)
            .await
            .map_err(|source| RewrapError::Key {
                tenant: tenant.clone(),
                doing: "unwrapping with the old key",
                source,
            })?;
        let blob = new
            .wrap(tenant, &key)
            .await
            .map_err(|source| RewrapError::Key {
                tenant: tenant.clone(),
                doing: "wrapping with the new key",
                source,
            })?;
        let replacement = WrappedDataKey {
            tenant: tenant.clone(),
            wrapper: new.id(),
            blob,
            created_at: chrono::Utc::now(),
        };
        let audit = NewAuditEntry {
            actor: actor.to_owned(),
            tenant: Some(tenant.clone()),
            action: "secret.data_key_rewrapped".into(),
            details: serde_json::json!({
                "from": old.id(),
                "to": new.id(),
            }),
        };
        if !records
            .replace_data_key(&stored, &replacement, audit)
            .await?
        {
            return Err(RewrapError::Raced(tenant.clone()));
        }
        done.push(tenant.clone());
    }
    Ok(done)
}

#[cfg(test)]
mod tests;
