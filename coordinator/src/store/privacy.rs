//! What the store keeps of tenants' privacy configuration and secret
//! writes: versioned configuration records (the history is who changed
//! what, and when) and the metadata of every secret write. Each write goes
//! in one transaction with its audit entry, so no change is ever recorded
//! without being audited, or audited without being recorded.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use stacks::ids::TenantId;

use super::{AuditEntry, NewAuditEntry, StoreError};
use crate::privacy::PrivacyConfig;
use crate::secrets::{BackendKind, SecretName};

/// What a configuration version changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrivacyChange {
    /// The storage or LLM configuration.
    Config,
    /// Hosted fallback enabled or disabled.
    Fallback,
}

impl PrivacyChange {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PrivacyChange::Config => "config",
            PrivacyChange::Fallback => "fallback",
        }
    }
}

/// One version of a tenant's privacy configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrivacyRecord {
    /// Tenant.
    pub tenant: TenantId,
    /// From 1; 0 is the implicit hosted default, never stored.
    pub version: u64,
    /// The configuration.
    pub config: PrivacyConfig,
    /// SHA-256 of the configuration's canonical JSON.
    pub digest: String,
    /// Whether the tenant may fall back to the hosted defaults when a
    /// customer-managed dependency fails.
    pub hosted_fallback: bool,
    /// Why fallback was enabled (required to enable it).
    pub fallback_reason: Option<String>,
    /// What this version changed.
    pub change: PrivacyChange,
    /// Who.
    pub actor: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A new version about to be written.
#[derive(Debug, Clone)]
pub struct NewPrivacyRecord {
    /// Tenant.
    pub tenant: TenantId,
    /// The configuration.
    pub config: PrivacyConfig,
    /// Hosted fallback.
    pub hosted_fallback: bool,
    /// Why fallback is enabled.
    pub fallback_reason: Option<String>,
    /// What it changes.
    pub change: PrivacyChange,
    /// Who.
    pub actor: String,
}

/// What a secret write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretAction {
    /// First value.
    Put,
    /// A new value for an existing secret.
    Rotate,
    /// Deleted.
    Delete,
}

impl SecretAction {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretAction::Put => "put",
            SecretAction::Rotate => "rotate",
            SecretAction::Delete => "delete",
        }
    }
}

/// One write of a secret, without its value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecretWrite {
    /// Tenant.
    pub tenant: TenantId,
    /// Secret.
    pub name: SecretName,
    /// Where the value went.
    pub backend: BackendKind,
    /// The backend's version id (none for a delete).
    pub version: Option<String>,
    /// Keyed digest of the value (none for a delete).
    pub digest: Option<String>,
    /// What happened.
    pub action: SecretAction,
    /// Who.
    pub actor: String,
    /// When (set by the store on write).
    pub at: DateTime<Utc>,
}

/// Privacy configuration and secret-write records.
#[async_trait]
pub trait PrivacyStore: Send + Sync {
    /// The tenant's current configuration; `None` means never configured
    /// (the hosted default).
    async fn current_privacy(&self, tenant: &TenantId)
    -> Result<Option<PrivacyRecord>, StoreError>;

    /// The tenant's versions, newest first.
    async fn privacy_history(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> Result<Vec<PrivacyRecord>, StoreError>;

    /// Writes the next version and its audit entry in one transaction,
    /// provided the current version is still `expected` (0: none yet);
    /// otherwise [`StoreError::Conflict`] and nothing is written.
    async fn append_privacy(
        &self,
        record: NewPrivacyRecord,
        expected: u64,
        audit: NewAuditEntry,
    ) -> Result<(PrivacyRecord, AuditEntry), StoreError>;

    /// Records a secret write and its audit entry in one transaction.
    async fn record_secret_write(
        &self,
        write: SecretWrite,
        audit: NewAuditEntry,
    ) -> Result<AuditEntry, StoreError>;

    /// The last write of each of the tenant's secrets, by name (deleted
    /// ones included, with action `delete`).
    async fn secret_writes(&self, tenant: &TenantId) -> Result<Vec<SecretWrite>, StoreError>;
}
