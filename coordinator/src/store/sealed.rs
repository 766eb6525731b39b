//! Persistence of the hosted secret store: per tenant one wrapped data key,
//! and per secret its sealed versions (nonce and AES-256-GCM ciphertext).
//!
//! A separate trait from [`super::Store`], so the secret store depends only
//! on what it needs. The store keeps bytes it cannot read: sealing and
//! opening are `crate::secrets::hosted`'s job, and nothing here ever sees a
//! plaintext value or an unwrapped key.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use stacks::ids::TenantId;

use super::{NewAuditEntry, StoreError};
use crate::secrets::SecretName;

/// A tenant's data key, wrapped by a key-encryption key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedDataKey {
    /// The tenant.
    pub tenant: TenantId,
    /// Which key wrapped it, e.g. `kms:alias/docproc-secrets` or
    /// `file:3f2a...` (a master key file's fingerprint).
    pub wrapper: String,
    /// The wrapped key.
    pub blob: Vec<u8>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// One version of a secret, sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedVersion {
    /// The tenant.
    pub tenant: TenantId,
    /// The secret.
    pub name: SecretName,
    /// 1, 2, ...: bound into the ciphertext's associated data.
    pub version: u32,
    /// The 96-bit nonce, fresh for every encryption.
    pub nonce: Vec<u8>,
    /// Ciphertext with its authentication tag.
    pub ciphertext: Vec<u8>,
    /// When it was written (set by the store on insert).
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for SealedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedVersion")
            .field("tenant", &self.tenant)
            .field("name", &self.name)
            .field("version", &self.version)
            .field("ciphertext_len", &self.ciphertext.len())
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// What the store can say about a secret without opening it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSummary {
    /// The secret.
    pub name: SecretName,
    /// The newest version.
    pub latest: u32,
    /// How many versions are kept.
    pub versions: u32,
    /// When the newest version was written.
    pub created_at: DateTime<Utc>,
}

/// Where the hosted secret store keeps its records.
#[async_trait]
pub trait SealedSecrets: Send + Sync + fmt::Debug {
    /// The tenant's wrapped data key, if it has one.
    async fn data_key(&self, tenant: &TenantId) -> Result<Option<WrappedDataKey>, StoreError>;

    /// Stores `key` unless the tenant already has one (two coordinators
    /// racing to make the first key); returns the one that is stored.
    async fn insert_data_key(&self, key: &WrappedDataKey) -> Result<WrappedDataKey, StoreError>;

    /// Replaces the tenant's wrapped data key `old` by `new` (the same data
    /// key under another key-encryption key) and appends `audit`, in one
    /// transaction; `false`, with nothing written, when the stored key is
    /// no longer `old` (someone re-wrapped it meanwhile).
    async fn replace_data_key(
        &self,
        old: &WrappedDataKey,
        new: &WrappedDataKey,
        audit: NewAuditEntry,
    ) -> Result<bool, StoreError>;

    /// The newest version of a secret.
    async fn latest_version(
        &self,
        tenant: &TenantId,
        name: &SecretName,
    ) -> Result<Option<SealedVersion>, StoreError>;

    /// One version of a secret.
    async fn sealed_version(
        &self,
        tenant: &TenantId,
        name: &SecretName,
        version: u32,
    ) -> Result<Option<SealedVersion>, StoreError>;

    /// Inserts `sealed` (its `created_at` is ignored and set to now);
    /// `None` when that version number is taken already (a concurrent
    /// write won), else the stored record.
    async fn insert_version(
        &self,
        sealed: &SealedVersion,
    ) -> Result<Option<SealedVersion>, StoreError>;

    /// Deletes every version of a secret; returns how many there were.
    async fn delete_secret(&self, tenant: &TenantId, name: &SecretName) -> Result<u32, StoreError>;

    /// The tenant's secrets, by name.
    async fn sealed_summaries(&self, tenant: &TenantId) -> Result<Vec<SealedSummary>, StoreError>;
}
