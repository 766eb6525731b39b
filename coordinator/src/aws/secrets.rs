//! The seam over the AWS calls the secret stores make: Secrets Manager,
//! SSM Parameter Store (`SecureString` parameters only) and KMS
//! (`Encrypt`/`Decrypt` of data keys). One small trait per service, typed
//! requests and replies, errors classified as [`AwsError`]; the SDK
//! implementation lives in `sdk/secrets.rs`, the in-memory fake in
//! `fake/secrets.rs`.
//!
//! Which account a client acts in is a [`ClientScope`]: the vendor's own
//! (the operator's credentials) or a tenant's (its deploy role, through
//! [`TenantCredentials`]).
//!
//! What this module must never do: put a secret value, plaintext data key
//! or decrypted parameter into a `Debug` output, an error or a log line.
//! Values cross this seam only as [`SecretString`] or [`SecretSlice`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{SecretSlice, SecretString};
use stacks::ids::Region;

use super::{AwsError, TenantCredentials};

/// Whose credentials a client acts with, and in which region.
#[derive(Debug, Clone)]
pub enum ClientScope {
    /// The vendor's own account, with the operator's credentials.
    Operator {
        /// Region.
        region: Region,
    },
    /// A tenant's account, through its deploy role.
    Tenant {
        /// The tenant's self-refreshing AssumeRole credentials.
        credentials: Arc<TenantCredentials>,
        /// Region.
        region: Region,
    },
}

impl ClientScope {
    /// The region the client acts in.
    pub fn region(&self) -> Region {
        match self {
            ClientScope::Operator { region } | ClientScope::Tenant { region, .. } => *region,
        }
    }
}

/// A secret value read back, with the version it came from.
pub struct SecretValue {
    /// The value.
    pub value: SecretString,
    /// Secrets Manager's `VersionId`.
    pub version_id: String,
    /// When that version was created, when the service says.
    pub created_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretValue")
            .field("value", &"<redacted>")
            .field("version_id", &self.version_id)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// One secret as `ListSecrets` shows it (never a value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretListing {
    /// The secret's full name.
    pub name: String,
    /// The version labelled `AWSCURRENT`.
    pub current_version: Option<String>,
    /// Versions that carry a staging label.
    pub versions: u32,
    /// When it last changed (or was created).
    pub changed_at: Option<DateTime<Utc>>,
}

/// The Secrets Manager calls the secret store makes, on one account and
/// region.
#[async_trait]
pub trait SecretsManager: Send + Sync + fmt::Debug {
    /// `CreateSecret` with a string value, encrypted under `kms_key_id`
    /// (the account's `aws/secretsmanager` key when `None`); returns the
    /// first version's id. An existing name is [`super::ErrorKind::AlreadyExists`].
    async fn create_secret(
        &self,
        name: &str,
        value: &SecretString,
        kms_key_id: Option<&str>,
    ) -> Result<String, AwsError>;
    /// `PutSecretValue`: a new `AWSCURRENT` version (the old one becomes
    /// `AWSPREVIOUS`); returns its id.
    async fn put_secret_value(&self, name: &str, value: &SecretString) -> Result<String, AwsError>;
    /// `GetSecretValue` of the current version, or of `version_id`.
    async fn get_secret_value(
        &self,
        name: &str,
        version_id: Option<&str>,
    ) -> Result<SecretValue, AwsError>;
    /// `DeleteSecret` with `ForceDeleteWithoutRecovery`: gone at once, with
    /// every version, and the name free again. Succeeds for a secret that
    /// does not exist (as the service does).
    async fn delete_secret(&self, name: &str) -> Result<(), AwsError>;
    /// `ListSecrets` of the names starting with `prefix`, every page.
    async fn list_secrets(&self, prefix: &str) -> Result<Vec<SecretListing>, AwsError>;
}

/// A parameter as SSM describes it (never a value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterInfo {
    /// The full name, e.g. `/doc-platform/acme/llm-api-key`.
    pub name: String,
    /// Its version (SSM counts from 1).
    pub version: u64,
    /// When that version was written.
    pub modified_at: Option<DateTime<Utc>>,
}

/// The SSM Parameter Store calls the secret store makes, on one account and
/// region. Only `SecureString` parameters are written.
#[async_trait]
pub trait ParameterStore: Send + Sync + fmt::Debug {
    /// `PutParameter` of a `SecureString` with `Overwrite` (so a second put
    /// is a new version), encrypted under `kms_key_id` (the account's
    /// `aws/ssm` key when `None`); returns the new version.
    async fn put_secure_string(
        &self,
        name: &str,
        value: &SecretString,
        kms_key_id: Option<&str>,
    ) -> Result<u64, AwsError>;
    /// `GetParameter` `WithDecryption` of the current version, or of
    /// `version` (the `name:version` selector).
    async fn get_decrypted(
        &self,
        name: &str,
        version: Option<u64>,
    ) -> Result<(SecretString, ParameterInfo), AwsError>;
    /// `DeleteParameter`: the parameter and all its versions.
    async fn delete_parameter(&self, name: &str) -> Result<(), AwsError>;
    /// `GetParametersByPath` (one level, not decrypted), every page; the
    /// values are dropped.
    async fn parameters_by_path(&self, path: &str) -> Result<Vec<ParameterInfo>, AwsError>;
}

/// An encryption context: bound into the ciphertext, required again to
/// decrypt it, and logged by CloudTrail (so never secret).
pub type EncryptionContext = BTreeMap<String, String>;

/// The KMS calls the hosted secret store makes, on one account and region.
#[async_trait]
pub trait Kms: Send + Sync + fmt::Debug {
    /// `Encrypt` of a small plaintext (a data key) under `key_id`.
    async fn encrypt(
        &self,
        key_id: &str,
        plaintext: &SecretSlice<u8>,
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, AwsError>;
    /// `Decrypt`, insisting on `key_id` and the same `context`. A
    /// ciphertext of another key or context is an error (KMS says
    /// `InvalidCiphertextException` or `IncorrectKeyException`).
    async fn decrypt(
        &self,
        key_id: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<SecretSlice<u8>, AwsError>;
}
