//! The fake's Secrets Manager, SSM Parameter Store and KMS, per account and
//! region, for the secret stores' unit tests.
//!
//! - Secrets Manager: string secrets with versions, `AWSCURRENT` and
//!   `AWSPREVIOUS`, `ResourceExistsException` on a second create,
//!   `ResourceNotFoundException` for anything missing, force-delete only.
//! - SSM: `SecureString` parameters with numbered versions (at most 100
//!   kept), `name:version` reads, one-level `GetParametersByPath`.
//! - KMS: symmetric keys made with [`FakeCloud::create_kms_key`] (by id,
//!   ARN or alias); `Encrypt` really encrypts (AES-256-GCM under the key's
//!   own random material, the encryption context as associated data), so a
//!   wrong key or context fails to decrypt as in KMS, and nothing the fake
//!   returns holds a plaintext.
//!
//! Clients act in the operator's account or, through the tenant's
//! credentials, in the account the session lands in, like every other fake
//! client; calls are recorded and take part in `fail_all`, injected errors
//! and latency.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretBox, SecretSlice, SecretString};
use stacks::ids::{AccountId, Region};
use tokio::time::Instant;

use super::outputs::uuid_like;
use super::{Call, FakeCloud};
use crate::aws::AwsError;
use crate::aws::secrets::{
    ClientScope, EncryptionContext, Kms, ParameterInfo, ParameterStore, SecretListing, SecretValue,
    SecretsManager,
};

const SECRETS_MANAGER: &str = "secretsmanager";
const SSM: &str = "ssm";
const KMS: &str = "kms";
/// SSM keeps this many versions of a parameter.
const SSM_MAX_VERSIONS: usize = 100;
/// What every fake KMS ciphertext starts with.
const CIPHERTEXT_MAGIC: &[u8] = b"fake-kms:";

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

struct Key {
    arn: String,
    material: SecretBox<[u8; 32]>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("arn", &self.arn)
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

    /// The key id `key` names (an id, a key ARN, an alias or an alias ARN).
    fn resolve_key(&self, account: &AccountId, region: Region, key: &str) -> Option<String> {
        let name = key.rsplit_once(':').map_or(key, |(_, tail)| tail);
        if let Some(alias) = name.strip_prefix("alias/") {
            return self
                .aliases
                .get(&place(account, region, &format!("alias/{alias}")))
                .cloned();
        }
        let id = name.strip_prefix("key/").unwrap_or(name);
        self.keys
            .contains_key(&place(account, region, id))
            .then(|| id.to_owned())
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

    /// Creates a symmetric KMS key in `account` and `region`, with `alias`
    /// (e.g. `alias/docproc-secrets`) when given; returns the key's ARN.
    pub fn create_kms_key(
        &self,
        account: &AccountId,
        region: Region,
        alias: Option<&str>,
    ) -> String {
        let mut state = self.lock();
        let seq = state.secrets.next_seq();
        let id = uuid_like(&format!("kms-key/{account}/{region}/{seq}"));
        let arn = format!("arn:aws:kms:{region}:{account}:key/{id}");
        let mut material = [0u8; 32];
        rand::rng().fill_bytes(&mut material);
        state.secrets.keys.insert(
            place(account, region, &id),
            Key {
                arn: arn.clone(),
                material: SecretBox::new(Box::new(material)),
            },
        );
        if let Some(alias) = alias {
            state
                .secrets
                .aliases
                .insert(place(account, region, alias), id);
        }
        arn
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
        let mut state = self.cloud.lock();
        state
            .secrets
            .secrets
            .remove(&place(&account, region, name))
            .map(|_| ())
            .ok_or_else(|| missing_secret(OP))
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

/// The fake's [`Kms`].
#[derive(Debug)]
pub struct FakeKms {
    cloud: FakeCloud,
    scope: ClientScope,
}

impl FakeKms {
    /// A client acting in `scope`.
    pub fn new(cloud: FakeCloud, scope: ClientScope) -> Self {
        Self { cloud, scope }
    }
}

/// The associated data of a fake ciphertext: the context, canonically.
fn context_aad(context: &EncryptionContext) -> Vec<u8> {
    serde_json::to_vec(context).expect("a string map serializes")
}

fn cipher(key: &Key) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(key.material.expose_secret()).expect("32-byte key")
}

fn invalid_ciphertext(operation: &'static str) -> AwsError {
    error(KMS, operation, "InvalidCiphertextException", "")
}

#[async_trait]
impl Kms for FakeKms {
    async fn encrypt(
        &self,
        key_id: &str,
        plaintext: &SecretSlice<u8>,
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, AwsError> {
        const OP: &str = "Encrypt";
        let (account, region) = self.cloud.scoped_call(&self.scope, KMS, OP).await?;
        let state = self.cloud.lock();
        let not_found = || {
            error(
                KMS,
                OP,
                "NotFoundException",
                &format!("Key '{key_id}' does not exist"),
            )
        };
        let id = state
            .secrets
            .resolve_key(&account, region, key_id)
            .ok_or_else(not_found)?;
        let key = state
            .secrets
            .keys
            .get(&place(&account, region, &id))
            .ok_or_else(not_found)?;
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = cipher(key)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.expose_secret(),
                    aad: &context_aad(context),
                },
            )
            .expect("AES-GCM encrypts");
        let mut blob = CIPHERTEXT_MAGIC.to_vec();
        blob.extend_from_slice(id.as_bytes());
        blob.push(b':');
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }

    async fn decrypt(
        &self,
        key_id: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<SecretSlice<u8>, AwsError> {
        const OP: &str = "Decrypt";
        let (account, region) = self.cloud.scoped_call(&self.scope, KMS, OP).await?;
        let state = self.cloud.lock();
        let rest = ciphertext
            .strip_prefix(CIPHERTEXT_MAGIC)
            .ok_or_else(|| invalid_ciphertext(OP))?;
        let colon = rest
            .iter()
            .position(|b| *b == b':')
            .ok_or_else(|| invalid_ciphertext(OP))?;
        let (id, rest) = rest.split_at(colon);
        let id = std::str::from_utf8(id).map_err(|_| invalid_ciphertext(OP))?;
        let rest = &rest[1..];
        if rest.len() < 12 {
            return Err(invalid_ciphertext(OP));
        }
        let key = state
            .secrets
            .keys
            .get(&place(&account, region, id))
            .ok_or_else(|| invalid_ciphertext(OP))?;
        if state
            .secrets
            .resolve_key(&account, region, key_id)
            .as_deref()
            != Some(id)
        {
            return Err(error(
                KMS,
                OP,
                "IncorrectKeyException",
                "The key ID in the request does not identify a CMK that can perform this operation.",
            ));
        }
        let (nonce, sealed) = rest.split_at(12);
        let plaintext = cipher(key)
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &context_aad(context),
                },
            )
            .map_err(|_| invalid_ciphertext(OP))?;
        Ok(SecretSlice::from(plaintext))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::aws::{Connector as _, ErrorKind};

    fn operator(cloud: &FakeCloud) -> (ClientScope, AccountId) {
        (
            ClientScope::Operator {
                region: Region::UsEast1,
            },
            cloud.operator_identity().account,
        )
    }

    fn value(text: &str) -> SecretString {
        SecretString::from(text)
    }

    #[tokio::test]
    async fn secrets_manager_versions_and_errors() {
        let cloud = FakeCloud::new();
        let (scope, account) = operator(&cloud);
        let sm = cloud.secrets_manager(&scope);
        let v1 = sm
            .create_secret("p/acme/k", &value("one"), None)
            .await
            .unwrap();
        let e = sm
            .create_secret("p/acme/k", &value("x"), None)
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::AlreadyExists, "{e}");
        let v2 = sm
            .put_secret_value("p/acme/k", &value("two"))
            .await
            .unwrap();
        assert_ne!(v1, v2);
        let got = sm.get_secret_value("p/acme/k", None).await.unwrap();
        assert_eq!(
            (got.value.expose_secret(), got.version_id.as_str()),
            ("two", v2.as_str())
        );
        let old = sm.get_secret_value("p/acme/k", Some(&v1)).await.unwrap();
        assert_eq!(old.value.expose_secret(), "one");
        sm.create_secret("p/acme-2/k", &value("other"), None)
            .await
            .unwrap();
        let listed = sm.list_secrets("p/acme/").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].current_version.as_deref(), Some(v2.as_str()));
        assert_eq!(listed[0].versions, 2);
        sm.delete_secret("p/acme/k").await.unwrap();
        let e = sm.get_secret_value("p/acme/k", None).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
        assert_eq!(
            cloud.secret_names(&account, Region::UsEast1),
            ["p/acme-2/k"]
        );
        // The Debug of a read value hides it.
        let got = sm.get_secret_value("p/acme-2/k", None).await.unwrap();
        assert!(!format!("{got:?}").contains("other"));
    }

    #[tokio::test]
    async fn parameter_versions_and_paths() {
        let cloud = FakeCloud::new();
        let (scope, _) = operator(&cloud);
        let ssm = cloud.parameter_store(&scope);
        assert_eq!(
            ssm.put_secure_string("/p/acme/k", &value("one"), None)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            ssm.put_secure_string("/p/acme/k", &value("two"), None)
                .await
                .unwrap(),
            2
        );
        ssm.put_secure_string("/p/acme/deeper/k", &value("x"), None)
            .await
            .unwrap();
        let (v, info) = ssm.get_decrypted("/p/acme/k", None).await.unwrap();
        assert_eq!((v.expose_secret(), info.version), ("two", 2));
        let (v, _) = ssm.get_decrypted("/p/acme/k", Some(1)).await.unwrap();
        assert_eq!(v.expose_secret(), "one");
        let e = ssm.get_decrypted("/p/acme/k", Some(9)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
        let listed = ssm.parameters_by_path("/p/acme").await.unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        ssm.delete_parameter("/p/acme/k").await.unwrap();
        let e = ssm.delete_parameter("/p/acme/k").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    }

    #[tokio::test]
    async fn kms_binds_key_and_context() {
        let cloud = FakeCloud::new();
        let (scope, account) = operator(&cloud);
        let arn = cloud.create_kms_key(&account, Region::UsEast1, Some("alias/secrets"));
        let other = cloud.create_kms_key(&account, Region::UsEast1, None);
        let kms: Arc<dyn Kms> = cloud.kms(&scope);
        let context: EncryptionContext = [("tenant".to_owned(), "acme".to_owned())].into();
        let plaintext = SecretSlice::from(b"data-key-bytes".to_vec());
        let blob = kms
            .encrypt("alias/secrets", &plaintext, &context)
            .await
            .unwrap();
        assert!(!blob.windows(14).any(|w| w == b"data-key-bytes"));
        let back = kms.decrypt(&arn, &blob, &context).await.unwrap();
        assert_eq!(back.expose_secret(), b"data-key-bytes");
        let wrong: EncryptionContext = [("tenant".to_owned(), "globex".to_owned())].into();
        let e = kms.decrypt(&arn, &blob, &wrong).await.unwrap_err();
        assert_eq!(e.code.as_deref(), Some("InvalidCiphertextException"));
        let e = kms.decrypt(&other, &blob, &context).await.unwrap_err();
        assert_eq!(e.code.as_deref(), Some("IncorrectKeyException"));
        let e = kms
            .encrypt("alias/nope", &plaintext, &context)
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
    }
}
