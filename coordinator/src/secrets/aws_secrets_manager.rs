//! Tenant secrets in AWS Secrets Manager, named `{prefix}/{tenant}/{name}`
//! (prefix `doc-platform` unless configured), in the tenant's own account
//! (through its deploy role) or in the vendor's.
//!
//! Rotation is `PutSecretValue`: the new version becomes `AWSCURRENT`, the
//! previous one `AWSPREVIOUS` and stays readable by its version id. Delete
//! is `ForceDeleteWithoutRecovery`, so the name can be used again at once.
//! Encryption at rest is Secrets Manager's, under the configured KMS key
//! (the account's `aws/secretsmanager` key by default).
//!
//! What this module must never do: read or list another tenant's names
//! (every name is built from the tenant id, and `list` keeps only names
//! under the tenant's prefix), or let a value into an error.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use stacks::ids::TenantId;

use super::{BackendKind, SecretError, SecretMeta, SecretName, SecretStore, SecretVersion};
use crate::aws::{ErrorKind, SecretsManager};

/// The name prefix when none is configured.
pub const DEFAULT_PREFIX: &str = stacks::builtin::bootstrap::TENANT_SECRETS_PREFIX;

/// Secrets Manager as a [`SecretStore`].
#[derive(Debug)]
pub struct SecretsManagerStore {
    client: Arc<dyn SecretsManager>,
    prefix: String,
    kms_key_id: Option<String>,
    location: String,
}

impl SecretsManagerStore {
    /// Secrets named under `prefix` through `client`, encrypted with
    /// `kms_key_id` when given; `location` says where for messages, e.g.
    /// `Secrets Manager in 222222222222/eu-west-1`.
    pub fn new(
        client: Arc<dyn SecretsManager>,
        prefix: impl Into<String>,
        kms_key_id: Option<String>,
        location: impl Into<String>,
    ) -> Self {
        Self {
            client,
            prefix: prefix.into(),
            kms_key_id,
            location: location.into(),
        }
    }

    /// The prefix every secret of `tenant` starts with.
    fn tenant_prefix(&self, tenant: &TenantId) -> String {
        format!("{}/{tenant}/", self.prefix)
    }

    /// The full name of a tenant's secret.
    pub fn secret_id(&self, tenant: &TenantId, name: &SecretName) -> String {
        format!("{}{name}", self.tenant_prefix(tenant))
    }

    fn error(
        &self,
        error: crate::aws::AwsError,
        tenant: &TenantId,
        name: &SecretName,
    ) -> SecretError {
        SecretError::from_aws(error, &self.location, Some((tenant, name)))
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    fn kind(&self) -> BackendKind {
        BackendKind::SecretsManager
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    async fn put(
        &self,
        tenant: &TenantId,
        name: &SecretName,
        value: &SecretString,
    ) -> Result<SecretVersion, SecretError> {
        let id = self.secret_id(tenant, name);
        let written = match self.client.put_secret_value(&id, value).await {
            Err(e) if e.kind == ErrorKind::NotFound => {
                match self
                    .client
                    .create_secret(&id, value, self.kms_key_id.as_deref())
                    .await
                {
                    // Created by someone else since: write a version.
                    Err(e) if e.kind == ErrorKind::AlreadyExists => {
                        self.client.put_secret_value(&id, value).await
                    }
                    created => created,
                }
            }
            other => other,
        };
        let version = written.map_err(|e| self.error(e, tenant, name))?;
        Ok(SecretVersion {
            id: version,
            created_at: Utc::now(),
        })
    }

    async fn get(&self, tenant: &TenantId, name: &SecretName) -> Result<SecretString, SecretError> {
        self.client
            .get_secret_value(&self.secret_id(tenant, name), None)
            .await
            .map(|v| v.value)
            .map_err(|e| self.error(e, tenant, name))
    }

    async fn get_version(
        &self,
        tenant: &TenantId,
        name: &SecretName,
        version: &str,
    ) -> Result<SecretString, SecretError> {
        self.client
            .get_secret_value(&self.secret_id(tenant, name), Some(version))
            .await
            .map(|v| v.value)
            .map_err(|e| self.error(e, tenant, name))
    }

    async fn delete(&self, tenant: &TenantId, name: &SecretName) -> Result<(), SecretError> {
        // A forced delete of a missing secret succeeds in Secrets Manager;
        // look first, so a missing secret is NotFound as in every store.
        let id = self.secret_id(tenant, name);
        let listed = self
            .client
            .list_secrets(&id)
            .await
            .map_err(|e| self.error(e, tenant, name))?;
        if !listed.iter().any(|l| l.name == id) {
            return Err(SecretError::NotFound {
                tenant: tenant.clone(),
                name: name.clone(),
                location: self.location.clone(),
            });
        }
        self.client
            .delete_secret(&id)
            .await
            .map_err(|e| self.error(e, tenant, name))
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<SecretMeta>, SecretError> {
        let prefix = self.tenant_prefix(tenant);
        let listings = self
            .client
            .list_secrets(&prefix)
            .await
            .map_err(|e| SecretError::from_aws(e, &self.location, None))?;
        Ok(listings
            .into_iter()
            .filter_map(|l| {
                // Names deeper under the prefix, or not ours, are skipped.
                let name: SecretName = l.name.strip_prefix(&prefix)?.parse().ok()?;
                Some(SecretMeta {
                    name,
                    current: SecretVersion {
                        id: l.current_version.unwrap_or_default(),
                        created_at: l.changed_at.unwrap_or(DateTime::UNIX_EPOCH),
                    },
                    versions: Some(l.versions),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;
    use stacks::ids::Region;

    use super::*;
    use crate::aws::fake::FakeCloud;
    use crate::aws::{ClientScope, Connector as _};

    const PLANTED: &str = "planted-sm-value-4b1d";

    fn store(cloud: &FakeCloud) -> SecretsManagerStore {
        let scope = ClientScope::Operator {
            region: Region::UsEast1,
        };
        SecretsManagerStore::new(
            cloud.secrets_manager(&scope),
            DEFAULT_PREFIX,
            None,
            "Secrets Manager in 111111111111/us-east-1",
        )
    }

    #[tokio::test]
    async fn round_trip_with_rotation() {
        let cloud = FakeCloud::new();
        let sm = store(&cloud);
        let (acme, key) = ("acme".parse().unwrap(), "llm-api-key".parse().unwrap());
        let v1 = sm
            .put(&acme, &key, &SecretString::from("one"))
            .await
            .unwrap();
        let v2 = sm
            .put(&acme, &key, &SecretString::from(PLANTED))
            .await
            .unwrap();
        assert_ne!(v1.id, v2.id);
        assert_eq!(sm.get(&acme, &key).await.unwrap().expose_secret(), PLANTED);
        let old = sm.get_version(&acme, &key, &v1.id).await.unwrap();
        assert_eq!(old.expose_secret(), "one");
        let other: TenantId = "acme-2".parse().unwrap();
        sm.put(&other, &key, &SecretString::from("x"))
            .await
            .unwrap();

        let listed = sm.list(&acme).await.unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].current.id, v2.id);
        let account = cloud.operator_identity().account;
        assert!(
            cloud
                .secret_names(&account, Region::UsEast1)
                .contains(&"doc-platform/acme/llm-api-key".to_owned())
        );

        sm.delete(&acme, &key).await.unwrap();
        let e = sm.get(&acme, &key).await.unwrap_err();
        assert!(matches!(e, SecretError::NotFound { .. }), "{e}");
        let e = sm.delete(&acme, &key).await.unwrap_err();
        assert!(matches!(e, SecretError::NotFound { .. }), "{e}");
        assert!(!format!("{e} {e:?} {sm:?}").contains(PLANTED));
        // The name is free again at once.
        sm.put(&acme, &key, &SecretString::from("again"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn access_denied_is_reported_as_such() {
        let cloud = FakeCloud::new();
        let sm = store(&cloud);
        let account = cloud.operator_identity().account;
        cloud.inject_error(
            &account,
            Region::UsEast1,
            "GetSecretValue",
            1,
            crate::aws::AwsError::new(ErrorKind::AccessDenied, "x", "x", "not allowed")
                .with_code("AccessDeniedException"),
        );
        let e = sm
            .get(&"acme".parse().unwrap(), &"k".parse().unwrap())
            .await
            .unwrap_err();
        assert!(matches!(e, SecretError::Denied { .. }), "{e}");
    }
}
