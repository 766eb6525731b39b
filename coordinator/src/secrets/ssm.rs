//! Tenant secrets as SSM Parameter Store `SecureString` parameters, named
//! `/{prefix}/{tenant}/{name}` (prefix `doc-platform` unless configured),
//! encrypted under the configured KMS key (the account's `aws/ssm` key by
//! default), in the tenant's own account or in the vendor's.
//!
//! Rotation is `PutParameter` with `Overwrite`: a new version number; SSM
//! keeps the last 100, readable as `name:version`. Delete removes the
//! parameter with every version.
//!
//! What this module must never do: reach outside the tenant's path, or let
//! a value into an error (`list` reads without decryption and drops what
//! SSM returns as values).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use stacks::ids::TenantId;

use super::{BackendKind, SecretError, SecretMeta, SecretName, SecretStore, SecretVersion};
use crate::aws::ParameterStore;

/// How many versions of a parameter SSM keeps.
pub const SSM_KEPT_VERSIONS: u64 = 100;

/// SSM Parameter Store as a [`SecretStore`].
#[derive(Debug)]
pub struct SsmStore {
    client: Arc<dyn ParameterStore>,
    prefix: String,
    kms_key_id: Option<String>,
    location: String,
}

impl SsmStore {
    /// Parameters under `/{prefix}` through `client`, encrypted with
    /// `kms_key_id` when given; `location` says where for messages.
    pub fn new(
        client: Arc<dyn ParameterStore>,
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

    /// The tenant's path, `/{prefix}/{tenant}`.
    fn path(&self, tenant: &TenantId) -> String {
        format!("/{}/{tenant}", self.prefix)
    }

    /// The full name of a tenant's parameter.
    pub fn parameter_name(&self, tenant: &TenantId, name: &SecretName) -> String {
        format!("{}/{name}", self.path(tenant))
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
impl SecretStore for SsmStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Ssm
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
        let version = self
            .client
            .put_secure_string(
                &self.parameter_name(tenant, name),
                value,
                self.kms_key_id.as_deref(),
            )
            .await
            .map_err(|e| self.error(e, tenant, name))?;
        Ok(SecretVersion {
            id: version.to_string(),
            created_at: Utc::now(),
        })
    }

    async fn get(&self, tenant: &TenantId, name: &SecretName) -> Result<SecretString, SecretError> {
        self.client
            .get_decrypted(&self.parameter_name(tenant, name), None)
            .await
            .map(|(value, _)| value)
            .map_err(|e| self.error(e, tenant, name))
    }

    async fn get_version(
        &self,
        tenant: &TenantId,
        name: &SecretName,
        version: &str,
    ) -> Result<SecretString, SecretError> {
        let Ok(number) = version.parse::<u64>() else {
            return Err(SecretError::NotFound {
                tenant: tenant.clone(),
                name: name.clone(),
                location: self.location.clone(),
            });
        };
        self.client
            .get_decrypted(&self.parameter_name(tenant, name), Some(number))
            .await
            .map(|(value, _)| value)
            .map_err(|e| self.error(e, tenant, name))
    }

    async fn delete(&self, tenant: &TenantId, name: &SecretName) -> Result<(), SecretError> {
        self.client
            .delete_parameter(&self.parameter_name(tenant, name))
            .await
            .map_err(|e| self.error(e, tenant, name))
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<SecretMeta>, SecretError> {
        let path = self.path(tenant);
        let infos = self
            .client
            .parameters_by_path(&path)
            .await
            .map_err(|e| SecretError::from_aws(e, &self.location, None))?;
        let prefix = format!("{path}/");
        Ok(infos
            .into_iter()
            .filter_map(|info| {
                let name: SecretName = info.name.strip_prefix(&prefix)?.parse().ok()?;
                Some(SecretMeta {
                    name,
                    current: SecretVersion {
                        id: info.version.to_string(),
                        created_at: info.modified_at.unwrap_or(DateTime::UNIX_EPOCH),
                    },
                    versions: u32::try_from(info.version.min(SSM_KEPT_VERSIONS)).ok(),
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

    const PLANTED: &str = "planted-ssm-value-90aa";

    #[tokio::test]
    async fn round_trip_with_rotation() {
        let cloud = FakeCloud::new();
        let scope = ClientScope::Operator {
            region: Region::UsEast1,
        };
        let ssm = SsmStore::new(
            cloud.parameter_store(&scope),
            "doc-platform",
            Some("alias/docproc".into()),
            "SSM Parameter Store in 111111111111/us-east-1",
        );
        let (acme, key): (TenantId, SecretName) =
            ("acme".parse().unwrap(), "llm-api-key".parse().unwrap());
        assert_eq!(
            ssm.parameter_name(&acme, &key),
            "/doc-platform/acme/llm-api-key"
        );
        let v1 = ssm
            .put(&acme, &key, &SecretString::from("one"))
            .await
            .unwrap();
        let v2 = ssm
            .put(&acme, &key, &SecretString::from(PLANTED))
            .await
            .unwrap();
        assert_eq!((v1.id.as_str(), v2.id.as_str()), ("1", "2"));
        assert_eq!(ssm.get(&acme, &key).await.unwrap().expose_secret(), PLANTED);
        assert_eq!(
            ssm.get_version(&acme, &key, "1")
                .await
                .unwrap()
                .expose_secret(),
            "one"
        );
        ssm.put(&"acme-2".parse().unwrap(), &key, &SecretString::from("x"))
            .await
            .unwrap();
        let listed = ssm.list(&acme).await.unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(
            (listed[0].current.id.as_str(), listed[0].versions),
            ("2", Some(2))
        );

        ssm.delete(&acme, &key).await.unwrap();
        let e = ssm.get(&acme, &key).await.unwrap_err();
        assert!(matches!(e, SecretError::NotFound { .. }), "{e}");
        let e = ssm
            .get_version(&acme, &key, "not-a-number")
            .await
            .unwrap_err();
        assert!(matches!(e, SecretError::NotFound { .. }), "{e}");
        assert!(!format!("{e} {e:?} {ssm:?}").contains(PLANTED));
    }
}
