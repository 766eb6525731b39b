//! The hosted secret store: envelope encryption in the coordinator's own
//! database ([`SealedSecrets`]).
//!
//! Each tenant has one data key (32 random bytes), made on its first write
//! and stored only wrapped by a [`KeyWrapper`] (KMS, or a local master key
//! file). Every version of a secret is sealed with the tenant's data key
//! under AES-256-GCM with a fresh random 96-bit nonce, and the associated
//! data binds tenant, name and version: a ciphertext copied to another
//! row, tenant or version fails to authenticate. Rotation writes a new
//! version; old versions stay readable with [`SecretStore::get_version`]
//! until the secret is deleted.
//!
//! Unwrapped data keys are cached in memory for the life of the store (one
//! KMS `Decrypt` per tenant, not per read).
//!
//! What this module must never do: store, log or return in an error a
//! value or an unwrapped key. The database holds only ciphertexts and
//! wrapped keys.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::rand_core::RngCore as _;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use chrono::Utc;
use secrecy::{ExposeSecret as _, SecretSlice, SecretString};
use stacks::ids::TenantId;
use tokio::sync::Mutex;

use super::key_wrapper::{KEY_LEN, KeyWrapper, NONCE_LEN, WrapError};
use super::{BackendKind, SecretError, SecretMeta, SecretName, SecretStore, SecretVersion};
use crate::store::StoreError;
use crate::store::sealed::{SealedSecrets, SealedVersion, WrappedDataKey};

/// Attempts at claiming the next version number when writers race.
const MAX_PUT_ATTEMPTS: usize = 8;

/// Envelope-encrypted secrets in the coordinator's database.
pub struct HostedStore {
    records: Arc<dyn SealedSecrets>,
    wrapper: Arc<dyn KeyWrapper>,
    /// Unwrapped data keys, as ciphers, by tenant.
    ciphers: Mutex<HashMap<TenantId, Arc<Aes256Gcm>>>,
}

impl fmt::Debug for HostedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostedStore")
            .field("records", &self.records)
            .field("wrapper", &self.wrapper)
            .finish_non_exhaustive()
    }
}

/// Associated data of a sealed version.
fn record_aad(tenant: &TenantId, name: &SecretName, version: u32) -> Vec<u8> {
    format!("docproc/hosted-secret/v1\0{tenant}\0{name}\0{version}").into_bytes()
}

/// The whole error chain of a store failure, for a message.
fn chain(error: &StoreError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl HostedStore {
    /// A store over `records`, with data keys wrapped by `wrapper`.
    pub fn new(records: Arc<dyn SealedSecrets>, wrapper: Arc<dyn KeyWrapper>) -> Self {
        Self {
            records,
            wrapper,
            ciphers: Mutex::new(HashMap::new()),
        }
    }

    fn store_error(&self, error: StoreError) -> SecretError {
        SecretError::Backend {
            location: self.location(),
            message: chain(&error),
        }
    }

    fn wrap_error(&self, tenant: &TenantId, name: &SecretName, error: WrapError) -> SecretError {
        match error {
            WrapError::Rejected(reason) => SecretError::Undecryptable {
                tenant: tenant.clone(),
                name: name.clone(),
                reason,
            },
            WrapError::Denied(message) => SecretError::Denied {
                location: self.wrapper.describe(),
                message,
            },
            WrapError::Unavailable(message) => SecretError::Backend {
                location: self.wrapper.describe(),
                message,
            },
        }
    }

    fn not_found(&self, tenant: &TenantId, name: &SecretName) -> SecretError {
        SecretError::NotFound {
            tenant: tenant.clone(),
            name: name.clone(),
            location: self.location(),
        }
    }

    /// The tenant's data key as a cipher; with `create`, made (and stored
    /// wrapped) when the tenant has none yet, else `None`. `name` is only
    /// for error messages.
    async fn cipher(
        &self,
        tenant: &TenantId,
        name: &SecretName,
        create: bool,
    ) -> Result<Option<Arc<Aes256Gcm>>, SecretError> {
        // Held across the I/O: one unwrap (or one new key) per tenant.
        let mut ciphers = self.ciphers.lock().await;
        if let Some(cipher) = ciphers.get(tenant) {
            return Ok(Some(Arc::clone(cipher)));
        }
        let stored = self
            .records
            .data_key(tenant)
            .await
            .map_err(|e| self.store_error(e))?;
        let key = match stored {
            Some(stored) => self.unwrap(tenant, name, &stored).await?,
            None if create => {
                let fresh = SecretSlice::from({
                    let mut bytes = vec![0u8; KEY_LEN];
                    OsRng.fill_bytes(&mut bytes);
                    bytes
                });
                let blob = self
                    .wrapper
                    .wrap(tenant, &fresh)
                    .await
                    .map_err(|e| self.wrap_error(tenant, name, e))?;
                let ours = WrappedDataKey {
                    tenant: tenant.clone(),
                    wrapper: self.wrapper.id(),
                    blob,
                    created_at: Utc::now(),
                };
                let stored = self
                    .records
                    .insert_data_key(&ours)
                    .await
                    .map_err(|e| self.store_error(e))?;
                if stored.blob == ours.blob {
                    fresh
                } else {
                    // Another coordinator made the tenant's key first.
                    self.unwrap(tenant, name, &stored).await?
                }
            }
            None => return Ok(None),
        };
        let cipher = Arc::new(Aes256Gcm::new_from_slice(key.expose_secret()).map_err(|_| {
            SecretError::Undecryptable {
                tenant: tenant.clone(),
                name: name.clone(),
                reason: "the data key has the wrong length".into(),
            }
        })?);
        ciphers.insert(tenant.clone(), Arc::clone(&cipher));
        Ok(Some(cipher))
    }

    async fn unwrap(
        &self,
        tenant: &TenantId,
        name: &SecretName,
        stored: &WrappedDataKey,
    ) -> Result<SecretSlice<u8>, SecretError> {
        self.wrapper
            .unwrap(tenant, &stored.wrapper, &stored.blob)
            .await
            .map_err(|e| self.wrap_error(tenant, name, e))
    }

    /// Opens a sealed version read from the database.
    async fn open(&self, sealed: &SealedVersion) -> Result<SecretString, SecretError> {
        let (tenant, name) = (&sealed.tenant, &sealed.name);
        let undecryptable = |reason: &str| SecretError::Undecryptable {
            tenant: tenant.clone(),
            name: name.clone(),
            reason: reason.to_owned(),
        };
        let cipher = self
            .cipher(tenant, name, false)
            .await?
            .ok_or_else(|| undecryptable("the tenant has no data key in the database"))?;
        if sealed.nonce.len() != NONCE_LEN {
            return Err(undecryptable("the stored nonce is not 96 bits"));
        }
        let plaintext = cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &record_aad(tenant, name, sealed.version),
                },
            )
            .map_err(|_| {
                undecryptable(
                    "the record does not authenticate: it was altered, or copied from another tenant, secret or version",
                )
            })?;
        String::from_utf8(plaintext)
            .map(SecretString::from)
            .map_err(|_| undecryptable("the decrypted value is not UTF-8"))
    }
}

#[async_trait]
impl SecretStore for HostedStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Hosted
    }

    fn location(&self) -> String {
        format!(
            "the hosted store (coordinator database, data keys wrapped by {})",
            self.wrapper.describe()
        )
    }

    async fn put(
        &self,
        tenant: &TenantId,
        name: &SecretName,
        value: &SecretString,
    ) -> Result<SecretVersion, SecretError> {
        let cipher = self
            .cipher(tenant, name, true)
            .await?
            .expect("created when missing");
        for _ in 0..MAX_PUT_ATTEMPTS {
            let latest = self
                .records
                .latest_version(tenant, name)
                .await
                .map_err(|e| self.store_error(e))?;
            let version = latest.map_or(1, |v| v.version + 1);
            let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
            let ciphertext = cipher
                .encrypt(
                    &nonce,
                    Payload {
                        msg: value.expose_secret().as_bytes(),
                        aad: &record_aad(tenant, name, version),
                    },
                )
                .map_err(|_| SecretError::Backend {
                    location: self.location(),
                    message: "AES-GCM encryption failed".into(),
                })?;
            let sealed = SealedVersion {
                tenant: tenant.clone(),
                name: name.clone(),
                version,
                nonce: nonce.to_vec(),
                ciphertext,
                created_at: Utc::now(),
            };
            if let Some(stored) = self
                .records
                .insert_version(&sealed)
                .await
                .map_err(|e| self.store_error(e))?
            {
                return Ok(SecretVersion {
                    id: stored.version.to_string(),
                    created_at: stored.created_at,
                });
            }
        }
        Err(SecretError::Backend {
            location: self.location(),
            message: format!(
                "could not claim a version of `{name}` for tenant `{tenant}`: too many concurrent writes; try again"
            ),
        })
    }

    async fn get(&self, tenant: &TenantId, name: &SecretName) -> Result<SecretString, SecretError> {
        let sealed = self
            .records
            .latest_version(tenant, name)
            .await
            .map_err(|e| self.store_error(e))?
            .ok_or_else(|| self.not_found(tenant, name))?;
        self.open(&sealed).await
    }

    async fn get_version(
        &self,
        tenant: &TenantId,
        name: &SecretName,
        version: &str,
    ) -> Result<SecretString, SecretError> {
        let Ok(number) = version.parse::<u32>() else {
            return Err(self.not_found(tenant, name));
        };
        let sealed = self
            .records
            .sealed_version(tenant, name, number)
            .await
            .map_err(|e| self.store_error(e))?
            .ok_or_else(|| self.not_found(tenant, name))?;
        self.open(&sealed).await
    }

    async fn delete(&self, tenant: &TenantId, name: &SecretName) -> Result<(), SecretError> {
        let deleted = self
            .records
            .delete_secret(tenant, name)
            .await
            .map_err(|e| self.store_error(e))?;
        if deleted == 0 {
            return Err(self.not_found(tenant, name));
        }
        Ok(())
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<SecretMeta>, SecretError> {
        let summaries = self
            .records
            .sealed_summaries(tenant)
            .await
            .map_err(|e| self.store_error(e))?;
        Ok(summaries
            .into_iter()
            .map(|s| SecretMeta {
                name: s.name,
                current: SecretVersion {
                    id: s.latest.to_string(),
                    created_at: s.created_at,
                },
                versions: Some(s.versions),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests;
