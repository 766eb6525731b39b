//! Tenant secrets: one [`SecretStore`] trait over every place a secret value
//! can live (AWS Secrets Manager, SSM Parameter Store `SecureString`, the
//! hosted envelope-encrypted records in the coordinator's database, an
//! `age`-encrypted file for Docker and on-prem installs).
//!
//! Values only ever travel as [`SecretString`]: never in `Debug`, logs,
//! errors or API replies. Everything else in the coordinator (privacy
//! configuration, audit entries, `secret list`) holds a [`SecretName`], a
//! version id and a digest, never the value.
//!
//! Which store holds a tenant's secrets is configured in `deploy.toml`
//! (`[secrets]`, `[tenants.secrets]`; see `crate::manifest::secrets`) and
//! built by [`open_for`]. The backends: [`hosted`] (with [`key_wrapper`]),
//! [`aws_secrets_manager`], [`ssm`] and [`age_file`]; `docs/admin/secrets.md`
//! says which to use where.

pub mod age_file;
pub mod aws_secrets_manager;
pub mod hosted;
pub mod key_wrapper;
pub mod memory;
mod open;
pub mod rewrap;
pub mod ssm;

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use stacks::ids::TenantId;

pub use open::{master_key_wrapper, open_for, open_with};

/// The name of a tenant's secret, e.g. `llm-api-key`: 1 to 64 characters
/// from `a-z0-9-_.`, starting with a letter or digit. Scoped by tenant: two
/// tenants' `llm-api-key` are different secrets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct SecretName(String);

impl SecretName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SecretName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid_chars = s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
        let starts_well = s
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if (1..=64).contains(&s.len()) && valid_chars && starts_well {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "invalid secret name {s:?}: use 1 to 64 characters from a-z, 0-9, '-', '_' and '.', starting with a letter or digit"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for SecretName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// Which kind of store holds a tenant's secrets.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// AWS Secrets Manager.
    SecretsManager,
    /// AWS Systems Manager Parameter Store, `SecureString` parameters.
    Ssm,
    /// Envelope-encrypted records in the coordinator's database.
    Hosted,
    /// An `age`-encrypted file (Docker and on-prem installs).
    AgeFile,
}

impl BackendKind {
    /// The name as written in `deploy.toml` and shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::SecretsManager => "secrets_manager",
            BackendKind::Ssm => "ssm",
            BackendKind::Hosted => "hosted",
            BackendKind::AgeFile => "age_file",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A version of a secret, as the backend identifies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretVersion {
    /// The backend's version id (Secrets Manager's VersionId, the SSM
    /// parameter version, the hosted record's number).
    pub id: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// What a backend can say about a secret without revealing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretMeta {
    /// The name.
    pub name: SecretName,
    /// The current version.
    pub current: SecretVersion,
    /// How many versions the backend keeps, when it says.
    pub versions: Option<u32>,
}

/// Why a secret operation failed. Never carries the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// No such secret for this tenant.
    #[error("tenant `{tenant}` has no secret `{name}` in {location}")]
    NotFound {
        /// Tenant.
        tenant: TenantId,
        /// Secret.
        name: SecretName,
        /// Where we looked, e.g. `Secrets Manager in 222222222222/eu-west-1`.
        location: String,
    },
    /// The backend refused the caller.
    #[error("access to {location} was denied: {message}")]
    Denied {
        /// Where.
        location: String,
        /// What the backend said (no values).
        message: String,
    },
    /// A stored record does not decrypt or authenticate: tampered with,
    /// or encrypted under another key or identity.
    #[error("the stored secret `{name}` of tenant `{tenant}` cannot be decrypted: {reason}")]
    Undecryptable {
        /// Tenant.
        tenant: TenantId,
        /// Secret.
        name: SecretName,
        /// Why (wrong key, failed authentication, ...).
        reason: String,
    },
    /// The backend is misconfigured (missing key file, bad recipient, ...).
    #[error("secret store {location} is misconfigured: {message}")]
    Config {
        /// Where.
        location: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// Any other backend failure.
    #[error("secret store {location} failed: {message}")]
    Backend {
        /// Where.
        location: String,
        /// What happened (no values).
        message: String,
    },
}

impl SecretError {
    /// Classifies a failed AWS call of a backend at `location`; `secret`
    /// names the tenant and secret the call was about, if one.
    pub(crate) fn from_aws(
        error: crate::aws::AwsError,
        location: &str,
        secret: Option<(&TenantId, &SecretName)>,
    ) -> Self {
        use crate::aws::ErrorKind;
        match (error.kind, secret) {
            (ErrorKind::NotFound, Some((tenant, name))) => SecretError::NotFound {
                tenant: tenant.clone(),
                name: name.clone(),
                location: location.to_owned(),
            },
            (ErrorKind::AccessDenied, _) => SecretError::Denied {
                location: location.to_owned(),
                message: error.to_string(),
            },
            _ => SecretError::Backend {
                location: location.to_owned(),
                message: error.to_string(),
            },
        }
    }
}

/// A place secret values live. One instance serves one scope (a tenant's
/// account, the vendor's account, the hosted database, one file); every
/// call names the tenant, and a backend never returns another tenant's
/// secret.
#[async_trait]
pub trait SecretStore: Send + Sync + fmt::Debug {
    /// Which kind of backend this is.
    fn kind(&self) -> BackendKind;

    /// Where, for messages: e.g. `Secrets Manager in 222222222222/eu-west-1`.
    fn location(&self) -> String;

    /// Creates the secret, or writes a new current version of it (rotation).
    /// The previous version stays readable where the backend keeps versions.
    async fn put(
        &self,
        tenant: &TenantId,
        name: &SecretName,
        value: &SecretString,
    ) -> Result<SecretVersion, SecretError>;

    /// The current value.
    async fn get(&self, tenant: &TenantId, name: &SecretName) -> Result<SecretString, SecretError>;

    /// The value of one version, by the id [`SecretStore::put`] returned
    /// (or [`SecretMeta::current`] showed), while the backend keeps it.
    /// Every backend here keeps versions; the default is for stores that
    /// do not (test doubles).
    async fn get_version(
        &self,
        tenant: &TenantId,
        name: &SecretName,
        version: &str,
    ) -> Result<SecretString, SecretError> {
        let _ = (tenant, name);
        Err(SecretError::Backend {
            location: self.location(),
            message: format!("this store keeps no versions, so version {version} cannot be read"),
        })
    }

    /// Deletes the secret and all its versions (Secrets Manager: without a
    /// recovery window, so the name can be reused at once).
    async fn delete(&self, tenant: &TenantId, name: &SecretName) -> Result<(), SecretError>;

    /// The tenant's secrets, by name.
    async fn list(&self, tenant: &TenantId) -> Result<Vec<SecretMeta>, SecretError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_checked() {
        for good in ["llm-api-key", "a", "s3.access_key", "0k"] {
            assert!(good.parse::<SecretName>().is_ok(), "{good}");
        }
        for bad in ["", "-x", "UPPER", "a/b", "sp ace", &"x".repeat(65)] {
            let err = bad.parse::<SecretName>().unwrap_err();
            assert!(err.contains("invalid secret name"), "{err}");
        }
    }
}
