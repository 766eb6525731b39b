//! An in-memory [`SecretStore`] for tests and benchmarks (the secrets
//! counterpart of [`crate::aws::fake`]), and the empty store the probe
//! runner hands to probes that never read secrets. Never configured from
//! deploy.toml: values live only as long as the process.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use stacks::ids::TenantId;

use super::{BackendKind, SecretError, SecretMeta, SecretName, SecretStore, SecretVersion};

/// Secrets in memory, per tenant; one version each (a put replaces).
#[derive(Debug, Default)]
pub struct MemorySecrets(Mutex<BTreeMap<(TenantId, SecretName), (SecretString, SecretVersion)>>);

impl MemorySecrets {
    /// A store holding one secret.
    pub fn with(tenant: &TenantId, name: &str, value: &str) -> Arc<Self> {
        let store = Self::default();
        store.insert(tenant, &name.parse().expect("a valid secret name"), value);
        Arc::new(store)
    }

    fn insert(&self, tenant: &TenantId, name: &SecretName, value: &str) -> SecretVersion {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let key = (tenant.clone(), name.clone());
        let next = map
            .get(&key)
            .and_then(|(_, v)| v.id.parse::<u64>().ok())
            .map_or(1, |n| n + 1);
        let version = SecretVersion {
            id: next.to_string(),
            created_at: Utc::now(),
        };
        map.insert(key, (SecretString::from(value), version.clone()));
        version
    }

    fn not_found(&self, tenant: &TenantId, name: &SecretName) -> SecretError {
        SecretError::NotFound {
            tenant: tenant.clone(),
            name: name.clone(),
            location: self.location(),
        }
    }
}

#[async_trait]
impl SecretStore for MemorySecrets {
    fn kind(&self) -> BackendKind {
        BackendKind::Hosted
    }

    fn location(&self) -> String {
        "the process's memory".into()
    }

    async fn put(
        &self,
        tenant: &TenantId,
        name: &SecretName,
        value: &SecretString,
    ) -> Result<SecretVersion, SecretError> {
        Ok(self.insert(tenant, name, value.expose_secret()))
    }

    async fn get(&self, tenant: &TenantId, name: &SecretName) -> Result<SecretString, SecretError> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(tenant.clone(), name.clone()))
            .map(|(value, _)| value.clone())
            .ok_or_else(|| self.not_found(tenant, name))
    }

    async fn get_version(
        &self,
        tenant: &TenantId,
        name: &SecretName,
        version: &str,
    ) -> Result<SecretString, SecretError> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(tenant.clone(), name.clone()))
            .filter(|(_, v)| v.id == version)
            .map(|(value, _)| value.clone())
            .ok_or_else(|| self.not_found(tenant, name))
    }

    async fn delete(&self, tenant: &TenantId, name: &SecretName) -> Result<(), SecretError> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&(tenant.clone(), name.clone()))
            .map(|_| ())
            .ok_or_else(|| self.not_found(tenant, name))
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<SecretMeta>, SecretError> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        Ok(map
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|((_, name), (_, version))| SecretMeta {
                name: name.clone(),
                current: version.clone(),
                versions: Some(1),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn secrets_are_per_tenant_and_versions_count_up() {
        let acme: TenantId = "acme".parse().unwrap();
        let other: TenantId = "other".parse().unwrap();
        let name: SecretName = "k".parse().unwrap();
        let store = MemorySecrets::with(&acme, "k", "one");
        let second = store
            .put(&acme, &name, &SecretString::from("two"))
            .await
            .unwrap();
        assert_eq!(second.id, "2");
        assert_eq!(
            store.get(&acme, &name).await.unwrap().expose_secret(),
            "two"
        );
        assert!(store.get_version(&acme, &name, "1").await.is_err());
        assert!(matches!(
            store.get(&other, &name).await,
            Err(SecretError::NotFound { .. })
        ));
        assert_eq!(store.list(&acme).await.unwrap().len(), 1);
        assert!(store.list(&other).await.unwrap().is_empty());
        store.delete(&acme, &name).await.unwrap();
        assert!(store.delete(&acme, &name).await.is_err());
    }
}
