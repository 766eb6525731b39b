//! The fake's Secrets Manager, SSM Parameter Store and KMS, per account and
//! region, for the secret stores' unit tests.
//!
//! - Secrets Manager: string secrets with versions, `AWSCURRENT` and
//!   `AWSPREVIOUS`, `ResourceExistsException` on a second create,
//!   `ResourceNotFoundException` for anything missing; force-delete only,
//!   which succeeds for a missing secret too (as in AWS).
//! - SSM: `SecureString` parameters with numbered versions (at most 100
//!   kept), `name:version` reads, one-level `GetParametersByPath`.
//! - KMS ([`kms`]): symmetric keys made with [`FakeCloud::create_kms_key`],
//!   really encrypting, so a wrong key or context fails as in KMS.
//!
//! Clients act in the operator's account or, through the tenant's
//! credentials, in the account the session lands in, like every other fake
//! client; calls are recorded and take part in `fail_all`, injected errors
//! and latency.

mod kms;

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use stacks::ids::{AccountId, Region};
use tokio::time::Instant;

use super::outputs::uuid_like;
use super::{Call, FakeCloud};
use crate::aws::AwsError;
use crate::aws::secrets::{
    ClientScope, ParameterInfo, ParameterStore, SecretListing, SecretValue, SecretsManager,
};
pub use kms::FakeKms;
use kms::Key;

const SECRETS_MANAGER: &str = "secretsmanager";
const SSM: &str = "ssm";
const KMS: &str = "kms";
/// SSM keeps this many versions of a parameter.
const SSM_MAX_VERSIONS: usize = 100;

type Place = (AccountId, Region, String);

/// The secrets part of the fake's state.
#[derive(Debug, Default)]
pub(super) struct SecretsState {
    secrets: BTreeMap<Place, Secret>,
    parameters: BTreeMap<Place, Vec<ParameterVersion>>,
    /// By key id.
    keys: BTreeMap<Place, Key>,
    /// Alias name (`alias/...`) to key id.
    aliases: BTreeMap<Place, String>,
    seq: u64,
}

#[derive(Debug)]
struct Secret {
    versions: Vec<SecretVersion>,
}

struct SecretVersion {
    id: String,
    value: SecretString,
    created_at: DateTime<Utc>,
}

impl fmt::Debug for SecretVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretVersion")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

struct ParameterVersion {
    version: u64,
    value: SecretString,
    modified_at: DateTime<Utc>,
}

impl fmt::Debug for ParameterVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParameterVersion")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

fn error(service: &'static str, operation: &'static str, code: &str, message: &str) -> AwsError {
    AwsError::new(
        AwsError::classify(Some(code), message),
        service,
        operation,
        message,
    )
    .with_code(code)
}

fn place(account: &AccountId, region: Region, name: &str) -> Place {
    (account.clone(), region, name.to_owned())
}

impl SecretsState {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

impl FakeCloud {
    /// Records a call of `scope`'s client, applying latency, `fail_all` and
    /// injected errors; returns the account and region it acts in.
    async fn scoped_call(
        &self,
        scope: &ClientScope,
        service: &'static str,
        operation: &'static str,
    ) -> Result<(AccountId, Region), AwsError> {
        match scope {
            ClientScope::Tenant {
                credentials,
                region,
            } => {
                let session = self
                    .tenant_call(credentials, service, operation, *region, None)
                    .await?;
                Ok((session.account, *region))
            }
            ClientScope::Operator { region } => {
                self.latency().await;
                let mut state = self.lock();
                let account = state.operator.account.clone();
                state.admit(Call {
                    service,
                    operation,
                    account: Some(account.clone()),
                    region: Some(*region),
                    stack: None,
                    role_arn: None,
                    queue: None,
                })?;
                Ok((account, *region))
            }
        }
    }

    fn now_utc(&self) -> DateTime<Utc> {
        self.lock().clock.utc(Instant::now())
    }

    /// The names of the Secrets Manager secrets in `account` and `region`.
    pub fn secret_names(&self, account: &AccountId, region: Region) -> Vec<String> {
        let state = self.lock();
        state
            .secrets
            .secrets
            .keys()
            .filter(|(a, r, _)| a == account && *r == region)
            .map(|(_, _, name)| name.clone())
            .collect()
    }

    /// The names of the SSM parameters in `account` and `region`.
    pub fn parameter_names(&self, account: &AccountId, region: Region) -> Vec<String> {
        let state = self.lock();
        state
            .secrets
            .parameters
            .keys()
            .filter(|(a, r, _)| a == account && *r == region)
            .map(|(_, _, name)| name.clone())
            .collect()
    }
}

/// The fake's [`SecretsManager`].
#[derive(Debug)]
pub struct FakeSecretsManager {
    cloud: FakeCloud,
    scope: ClientScope,
}

impl FakeSecretsManager {
    /// A client acting in `scope`.
    pub fn new(cloud: FakeCloud, scope: ClientScope) -> Self {
        Self { cloud, scope }
    }
}

fn missing_secret(operation: &'static str) -> AwsError {
    error(
        SECRETS_MANAGER,
        operation,
        "ResourceNotFoundException",
        "Secrets Manager can't find the specified secret.",
    )
}

impl FakeSecretsManager {
    /// Adds a version to `secret` and returns its id.
    fn add_version(
        &self,
        state: &mut super::State,
        key: &Place,
        value: &SecretString,
        now: DateTime<Utc>,
    ) -> String {
        let seq = state.secrets.next_seq();
        let id = uuid_like(&format!("secret-version/{}/{}/{seq}", key.0, key.2));
        if let Some(secret) = state.secrets.secrets.get_mut(key) {
            secret.versions.push(SecretVersion {
                id: id.clone(),
                value: SecretString::from(value.expose_secret()),
                created_at: now,
            });
        }
        id
    }
}

#[async_trait]
impl SecretsManager for FakeSecretsManager {
    async fn create_secret(
        &self,
        name: &str,
        value: &SecretString,
        _kms_key_id: Option<&str>,
    ) -> Result<String, AwsError> {
        const OP: &str = "CreateSecret";
        let (account, region) = self
            .cloud
            .scoped_call(&self.scope, SECRETS_MANAGER, OP)
            .await?;
        let now = self.cloud.now_utc();
        let mut state = self.cloud.lock();
        let key = place(&account, region, name);
        if state.secrets.secrets.contains_key(&key) {
            return Err(error(
                SECRETS_MANAGER,
                OP,
                "ResourceExistsException",
                &format!("The operation failed because the secret {name} already exists."),
            ));
        }
        state.secrets.secrets.insert(
            key.clone(),
            Secret {
                versions: Vec::new(),
            },
        );
        Ok(self.add_version(&mut state, &key, value, now))
    }

    async fn put_secret_value(&self, name: &str, value: &SecretString) -> Result<String, AwsError> {
        const OP: &str = "PutSecretValue";
        let (account, region) = self
            .cloud
            .scoped_call(&self.scope, SECRETS_MANAGER, OP)
            .await?;
        let now = self.cloud.now_utc();
        let mut state = self.cloud.lock();
        let key = place(&account, region, name);
        if !state.secrets.secrets.contains_key(&key) {
            return Err(missing_secret(OP));
        }
        Ok(self.add_version(&mut state, &key, value, now))
    }

    async fn get_secret_value(
        &self,
        name: &str,
        version_id: Option<&str>,
    ) -> Result<SecretValue, AwsError> {
        const OP: &str = "GetSecretValue";
        let (account, region) = self
            .cloud
            .scoped_call(&self.scope, SECRETS_MANAGER, OP)
            .await?;
        let state = self.cloud.lock();
        let secret = state
            .secrets
            .secrets
            .get(&place(&account, region, name))
            .ok_or_else(|| missing_secret(OP))?;
        let version = match version_id {
            Some(id) => secret.versions.iter().find(|v| v.id == id),
            None => secret.versions.last(),
        }
        .ok_or_else(|| missing_secret(OP))?;
        Ok(SecretValue {
            value: SecretString::from(version.value.expose_secret()),
            version_id: version.id.clone(),
            created_at: Some(version.created_at),
        })
    }

    async fn delete_secret(&self, name: &str) -> Result<(), AwsError> {
        const OP: &str = "DeleteSecret";
        let (account, region) = self
            .cloud
            .scoped_call(&self.scope, SECRETS_MANAGER, OP)
            .await?;
        // As in Secrets Manager, a forced delete of a missing secret
        // succeeds.
        self.cloud
            .lock()
            .secrets
            .secrets
            .remove(&place(&account, region, name));
        Ok(())
    }

    async fn list_secrets(&self, prefix: &str) -> Result<Vec<SecretListing>, AwsError> {
        const OP: &str = "ListSecrets";
        let (account, region) = self
            .cloud
            .scoped_call(&self.scope, SECRETS_MANAGER, OP)
            .await?;
        let state = self.cloud.lock();
        Ok(state
            .secrets
            .secrets
            .iter()
            .filter(|((a, r, name), _)| *a == account && *r == region && name.starts_with(prefix))
            .map(|((_, _, name), secret)| SecretListing {
                name: name.clone(),
                current_version: secret.versions.last().map(|v| v.id.clone()),
                // AWSCURRENT and AWSPREVIOUS carry labels; older versions
                // do not.
                versions: secret.versions.len().min(2) as u32,
                changed_at: secret.versions.last().map(|v| v.created_at),
            })
            .collect())
    }
}

/// The fake's [`ParameterStore`].
#[derive(Debug)]
pub struct FakeParameterStore {
    cloud: FakeCloud,
    scope: ClientScope,
}

impl FakeParameterStore {
    /// A client acting in `scope`.
    pub fn new(cloud: FakeCloud, scope: ClientScope) -> Self {
        Self { cloud, scope }
    }
}

fn missing_parameter(operation: &'static str) -> AwsError {
    error(SSM, operation, "ParameterNotFound", "")
}

fn info(name: &str, version: &ParameterVersion) -> ParameterInfo {
    ParameterInfo {
        name: name.to_owned(),
        version: version.version,
        modified_at: Some(version.modified_at),
    }
}

#[async_trait]
impl ParameterStore for FakeParameterStore {
    async fn put_secure_string(
        &self,
        name: &str,
        value: &SecretString,
        _kms_key_id: Option<&str>,
    ) -> Result<u64, AwsError> {
        const OP: &str = "PutParameter";
        let (account, region) = self.cloud.scoped_call(&self.scope, SSM, OP).await?;
        if !name.starts_with('/') {
            return Err(error(
                SSM,
                OP,
                "ValidationException",
                "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive) and must be fully qualified",
            ));
        }
        let now = self.cloud.now_utc();
        let mut state = self.cloud.lock();
        let versions = state
            .secrets
            .parameters
            .entry(place(&account, region, name))
            .or_default();
        let version = versions.last().map_or(1, |v| v.version + 1);
        versions.push(ParameterVersion {
            version,
            value: SecretString::from(value.expose_secret()),
            modified_at: now,
        });
        if versions.len() > SSM_MAX_VERSIONS {
            versions.remove(0);
        }
        Ok(version)
    }

    async fn get_decrypted(
        &self,
        name: &str,
        version: Option<u64>,
    ) -> Result<(SecretString, ParameterInfo), AwsError> {
        const OP: &str = "GetParameter";
        let (account, region) = self.cloud.scoped_call(&self.scope, SSM, OP).await?;
        let state = self.cloud.lock();
        let versions = state
            .secrets
            .parameters
            .get(&place(&account, region, name))
            .ok_or_else(|| missing_parameter(OP))?;
        let found = match version {
            Some(n) => versions
                .iter()
                .find(|v| v.version == n)
                .ok_or_else(|| error(SSM, OP, "ParameterVersionNotFound", ""))?,
            None => versions.last().ok_or_else(|| missing_parameter(OP))?,
        };
        Ok((
            SecretString::from(found.value.expose_secret()),
            info(name, found),
        ))
    }

    async fn delete_parameter(&self, name: &str) -> Result<(), AwsError> {
        const OP: &str = "DeleteParameter";
        let (account, region) = self.cloud.scoped_call(&self.scope, SSM, OP).await?;
        let mut state = self.cloud.lock();
        state
            .secrets
            .parameters
            .remove(&place(&account, region, name))
            .map(|_| ())
            .ok_or_else(|| missing_parameter(OP))
    }

    async fn parameters_by_path(&self, path: &str) -> Result<Vec<ParameterInfo>, AwsError> {
        const OP: &str = "GetParametersByPath";
        let (account, region) = self.cloud.scoped_call(&self.scope, SSM, OP).await?;
        let state = self.cloud.lock();
        let parent = format!("{}/", path.trim_end_matches('/'));
        Ok(state
            .secrets
            .parameters
            .iter()
            .filter(|((a, r, name), _)| {
                *a == account
                    && *r == region
                    && name
                        .strip_prefix(&parent)
                        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
            })
            .filter_map(|((_, _, name), versions)| versions.last().map(|v| info(name, v)))
            .collect())
    }
}

#[cfg(test)]
mod tests;
