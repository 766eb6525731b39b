//! [`SecretsManager`], [`ParameterStore`] and [`Kms`] over the SDK's
//! clients, built by [`SdkConnector`](super::SdkConnector) from the same
//! base configuration as every other client (shared HTTPS client, retries
//! and timeouts of the parent module).
//!
//! What this module must never do: let a value reach an error or a log.
//! Values go into requests with `expose_secret` at the last moment and come
//! back wrapped at once; errors go through the parent's one mapping, which
//! keeps only service codes and messages (Secrets Manager and SSM never
//! echo values in them).

use std::fmt;

use async_trait::async_trait;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use aws_sdk_ssm::types::ParameterType;
use aws_smithy_types::Blob;
use secrecy::{ExposeSecret as _, SecretSlice, SecretString};

use super::{required, sdk_error, to_chrono};
use crate::aws::secrets::{
    EncryptionContext, Kms, ParameterInfo, ParameterStore, SecretListing, SecretValue,
    SecretsManager,
};
use crate::aws::{AwsError, ErrorKind};

const SECRETS_MANAGER: &str = "secretsmanager";
const SSM: &str = "ssm";
const KMS: &str = "kms";

/// The staging label of a secret's current version.
const AWSCURRENT: &str = "AWSCURRENT";

/// [`SecretsManager`] over the SDK's client.
#[derive(Clone)]
pub struct SdkSecretsManager {
    client: aws_sdk_secretsmanager::Client,
}

impl fmt::Debug for SdkSecretsManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdkSecretsManager")
            .field("region", &self.client.config().region().map(|r| r.as_ref()))
            .finish_non_exhaustive()
    }
}

impl SdkSecretsManager {
    /// Wraps a client.
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl SecretsManager for SdkSecretsManager {
    async fn create_secret(
        &self,
        name: &str,
        value: &SecretString,
        kms_key_id: Option<&str>,
    ) -> Result<String, AwsError> {
        const OP: &str = "CreateSecret";
        let out = self
            .client
            .create_secret()
            .name(name)
            .secret_string(value.expose_secret())
            .set_kms_key_id(kms_key_id.map(str::to_owned))
            .send()
            .await
            .map_err(|e| sdk_error(SECRETS_MANAGER, OP, e))?;
        Ok(required(SECRETS_MANAGER, OP, "VersionId", out.version_id())?.to_owned())
    }

    async fn put_secret_value(&self, name: &str, value: &SecretString) -> Result<String, AwsError> {
        const OP: &str = "PutSecretValue";
        let out = self
            .client
            .put_secret_value()
            .secret_id(name)
            .secret_string(value.expose_secret())
            .send()
            .await
            .map_err(|e| sdk_error(SECRETS_MANAGER, OP, e))?;
        Ok(required(SECRETS_MANAGER, OP, "VersionId", out.version_id())?.to_owned())
    }

    async fn get_secret_value(
        &self,
        name: &str,
        version_id: Option<&str>,
    ) -> Result<SecretValue, AwsError> {
        const OP: &str = "GetSecretValue";
        let out = self
            .client
            .get_secret_value()
            .secret_id(name)
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await
            .map_err(|e| sdk_error(SECRETS_MANAGER, OP, e))?;
        let value = out.secret_string().ok_or_else(|| {
            AwsError::new(
                ErrorKind::Other,
                SECRETS_MANAGER,
                OP,
                "the secret holds binary data, not a string",
            )
        })?;
        Ok(SecretValue {
            value: SecretString::from(value),
            version_id: required(SECRETS_MANAGER, OP, "VersionId", out.version_id())?.to_owned(),
            created_at: out.created_date().and_then(to_chrono),
        })
    }

    async fn delete_secret(&self, name: &str) -> Result<(), AwsError> {
        const OP: &str = "DeleteSecret";
        self.client
            .delete_secret()
            .secret_id(name)
            .force_delete_without_recovery(true)
            .send()
            .await
            .map_err(|e| sdk_error(SECRETS_MANAGER, OP, e))?;
        Ok(())
    }

    async fn list_secrets(&self, prefix: &str) -> Result<Vec<SecretListing>, AwsError> {
        const OP: &str = "ListSecrets";
        let mut listings = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_secrets()
                .filters(
                    Filter::builder()
                        .key(FilterNameStringType::Name)
                        .values(prefix)
                        .build(),
                )
                .include_planned_deletion(false)
                .max_results(100)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error(SECRETS_MANAGER, OP, e))?;
            for entry in out.secret_list() {
                // The service's name filter matches words, not exactly a
                // prefix: keep only what really starts with it.
                let Some(name) = entry.name().filter(|n| n.starts_with(prefix)) else {
                    continue;
                };
                let stages = entry.secret_versions_to_stages();
                let current_version = stages.and_then(|s| {
                    s.iter()
                        .find(|(_, labels)| labels.iter().any(|l| l == AWSCURRENT))
                        .map(|(id, _)| id.clone())
                });
                listings.push(SecretListing {
                    name: name.to_owned(),
                    current_version,
                    versions: stages.map_or(0, |s| u32::try_from(s.len()).unwrap_or(u32::MAX)),
                    changed_at: entry
                        .last_changed_date()
                        .or(entry.created_date())
                        .and_then(to_chrono),
                });
            }
            match out.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => break,
            }
        }
        listings.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(listings)
    }
}

/// [`ParameterStore`] over the SDK's SSM client.
#[derive(Clone)]
pub struct SdkParameterStore {
    client: aws_sdk_ssm::Client,
}

impl fmt::Debug for SdkParameterStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdkParameterStore")
            .field("region", &self.client.config().region().map(|r| r.as_ref()))
            .finish_non_exhaustive()
    }
}

impl SdkParameterStore {
    /// Wraps a client.
    pub fn new(client: aws_sdk_ssm::Client) -> Self {
        Self { client }
    }
}

/// SSM's version number (an `i64` on the wire, never negative).
fn version_of(version: i64) -> u64 {
    u64::try_from(version).unwrap_or_default()
}

#[async_trait]
impl ParameterStore for SdkParameterStore {
    async fn put_secure_string(
        &self,
        name: &str,
        value: &SecretString,
        kms_key_id: Option<&str>,
    ) -> Result<u64, AwsError> {
        const OP: &str = "PutParameter";
        let out = self
            .client
            .put_parameter()
            .name(name)
            .value(value.expose_secret())
            .r#type(ParameterType::SecureString)
            .set_key_id(kms_key_id.map(str::to_owned))
            .overwrite(true)
            .send()
            .await
            .map_err(|e| sdk_error(SSM, OP, e))?;
        Ok(version_of(out.version()))
    }

    async fn get_decrypted(
        &self,
        name: &str,
        version: Option<u64>,
    ) -> Result<(SecretString, ParameterInfo), AwsError> {
        const OP: &str = "GetParameter";
        let selector = match version {
            Some(v) => format!("{name}:{v}"),
            None => name.to_owned(),
        };
        let out = self
            .client
            .get_parameter()
            .name(selector)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| sdk_error(SSM, OP, e))?;
        let parameter = required(SSM, OP, "Parameter", out.parameter())?;
        let value = required(SSM, OP, "Parameter.Value", parameter.value())?;
        Ok((
            SecretString::from(value),
            ParameterInfo {
                name: required(SSM, OP, "Parameter.Name", parameter.name())?.to_owned(),
                version: version_of(parameter.version()),
                modified_at: parameter.last_modified_date().and_then(to_chrono),
            },
        ))
    }

    async fn delete_parameter(&self, name: &str) -> Result<(), AwsError> {
        const OP: &str = "DeleteParameter";
        self.client
            .delete_parameter()
            .name(name)
            .send()
            .await
            .map_err(|e| sdk_error(SSM, OP, e))?;
        Ok(())
    }

    async fn parameters_by_path(&self, path: &str) -> Result<Vec<ParameterInfo>, AwsError> {
        const OP: &str = "GetParametersByPath";
        let mut infos = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .get_parameters_by_path()
                .path(path)
                .recursive(false)
                .with_decryption(false)
                .max_results(10)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error(SSM, OP, e))?;
            for parameter in out.parameters() {
                let Some(name) = parameter.name() else {
                    continue;
                };
                infos.push(ParameterInfo {
                    name: name.to_owned(),
                    version: version_of(parameter.version()),
                    modified_at: parameter.last_modified_date().and_then(to_chrono),
                });
            }
            match out.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => break,
            }
        }
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(infos)
    }
}

/// [`Kms`] over the SDK's KMS client.
#[derive(Clone)]
pub struct SdkKms {
    client: aws_sdk_kms::Client,
}

impl fmt::Debug for SdkKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdkKms")
            .field("region", &self.client.config().region().map(|r| r.as_ref()))
            .finish_non_exhaustive()
    }
}

impl SdkKms {
    /// Wraps a client.
    pub fn new(client: aws_sdk_kms::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Kms for SdkKms {
    async fn encrypt(
        &self,
        key_id: &str,
        plaintext: &SecretSlice<u8>,
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, AwsError> {
        const OP: &str = "Encrypt";
        let out = self
            .client
            .encrypt()
            .key_id(key_id)
            .plaintext(Blob::new(plaintext.expose_secret()))
            .set_encryption_context(Some(context.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|e| sdk_error(KMS, OP, e))?;
        Ok(required(KMS, OP, "CiphertextBlob", out.ciphertext_blob())?
            .as_ref()
            .to_vec())
    }

    async fn decrypt(
        &self,
        key_id: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<SecretSlice<u8>, AwsError> {
        const OP: &str = "Decrypt";
        let out = self
            .client
            .decrypt()
            .key_id(key_id)
            .ciphertext_blob(Blob::new(ciphertext))
            .set_encryption_context(Some(context.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|e| sdk_error(KMS, OP, e))?;
        let plaintext = required(KMS, OP, "Plaintext", out.plaintext())?;
        Ok(SecretSlice::from(plaintext.as_ref().to_vec()))
    }
}
