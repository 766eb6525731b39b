//! The key-encryption keys of the hosted secret store: a [`KeyWrapper`]
//! wraps and unwraps each tenant's 32-byte data key. Two kinds:
//!
//! - [`KmsKeyWrapper`]: KMS `Encrypt`/`Decrypt` under a key id, with the
//!   encryption context `{"tenant": <id>}`, so a wrapped key copied to
//!   another tenant does not decrypt and every unwrap is in CloudTrail.
//! - [`FileKeyWrapper`]: a local master-key file (32 random bytes, mode
//!   0600, made by [`create_master_key_file`]) and AES-256-GCM with the
//!   tenant as associated data. For development and single-box installs.
//!
//! Each wrapped key is stored with its wrapper's [`KeyWrapper::id`], so a
//! wrong master key is reported as such rather than as a corrupt record.
//!
//! What this module must never do: write, log or put into an error a data
//! key or a master key. Only a master key's fingerprint (a truncated
//! SHA-256 under a domain-separation label) ever leaves it.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_gcm::aead::rand_core::RngCore as _;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use secrecy::{ExposeSecret as _, ExposeSecretMut as _, SecretBox, SecretSlice};
use sha2::{Digest as _, Sha256};
use stacks::ids::TenantId;

use super::SecretError;
use crate::aws::secrets::EncryptionContext;
use crate::aws::{AwsError, ErrorKind, Kms};

/// Length of a data key and of a master key: AES-256.
pub const KEY_LEN: usize = 32;
/// Length of an AES-GCM nonce.
pub const NONCE_LEN: usize = 12;
/// The KMS encryption context key naming the tenant.
pub const CONTEXT_TENANT: &str = "tenant";

/// Why a data key could not be wrapped or unwrapped.
#[derive(Debug, thiserror::Error)]
pub enum WrapError {
    /// The wrapped key does not open with this wrapper: another master
    /// key, another tenant, or tampered with. Retrying will not help.
    #[error("{0}")]
    Rejected(String),
    /// The key service refused the caller.
    #[error("{0}")]
    Denied(String),
    /// The key service failed.
    #[error("{0}")]
    Unavailable(String),
}

/// Wraps and unwraps tenants' data keys.
#[async_trait]
pub trait KeyWrapper: Send + Sync + fmt::Debug {
    /// Stored with every wrapped key: `kms:<key id>` or
    /// `file:<fingerprint>`.
    fn id(&self) -> String;

    /// For messages, e.g. `KMS key alias/docproc-secrets`.
    fn describe(&self) -> String;

    /// Wraps `tenant`'s data key.
    async fn wrap(&self, tenant: &TenantId, key: &SecretSlice<u8>) -> Result<Vec<u8>, WrapError>;

    /// Unwraps a key that `wrapper` (the stored [`KeyWrapper::id`])
    /// wrapped for `tenant`.
    async fn unwrap(
        &self,
        tenant: &TenantId,
        wrapper: &str,
        blob: &[u8],
    ) -> Result<SecretSlice<u8>, WrapError>;
}

/// Data keys wrapped by a KMS key.
#[derive(Debug)]
pub struct KmsKeyWrapper {
    kms: Arc<dyn Kms>,
    key_id: String,
}

impl KmsKeyWrapper {
    /// Wraps with `key_id` (key id, key ARN, alias or alias ARN) through `kms`.
    pub fn new(kms: Arc<dyn Kms>, key_id: impl Into<String>) -> Self {
        Self {
            kms,
            key_id: key_id.into(),
        }
    }

    fn context(tenant: &TenantId) -> EncryptionContext {
        [(CONTEXT_TENANT.to_owned(), tenant.as_str().to_owned())].into()
    }
}

fn kms_failure(e: AwsError) -> WrapError {
    match e.kind {
        ErrorKind::AccessDenied => WrapError::Denied(e.to_string()),
        ErrorKind::Validation | ErrorKind::NotFound => WrapError::Rejected(format!(
            "KMS refused the data key, which was wrapped under another key or for another tenant, or altered: {e}"
        )),
        _ => WrapError::Unavailable(e.to_string()),
    }
}

#[async_trait]
impl KeyWrapper for KmsKeyWrapper {
    fn id(&self) -> String {
        format!("kms:{}", self.key_id)
    }

    fn describe(&self) -> String {
        format!("KMS key {}", self.key_id)
    }

    async fn wrap(&self, tenant: &TenantId, key: &SecretSlice<u8>) -> Result<Vec<u8>, WrapError> {
        self.kms
            .encrypt(&self.key_id, key, &Self::context(tenant))
            .await
            .map_err(|e| match e.kind {
                ErrorKind::AccessDenied => WrapError::Denied(e.to_string()),
                _ => WrapError::Unavailable(e.to_string()),
            })
    }

    async fn unwrap(
        &self,
        tenant: &TenantId,
        wrapper: &str,
        blob: &[u8],
    ) -> Result<SecretSlice<u8>, WrapError> {
        if !wrapper.starts_with("kms:") {
            return Err(WrapError::Rejected(format!(
                "the data key is wrapped by `{wrapper}`, but the configured master key is {}",
                self.describe()
            )));
        }
        let key = self
            .kms
            .decrypt(&self.key_id, blob, &Self::context(tenant))
            .await
            .map_err(kms_failure)?;
        if key.expose_secret().len() != KEY_LEN {
            return Err(WrapError::Rejected(
                "KMS returned a data key of the wrong length".into(),
            ));
        }
        Ok(key)
    }
}

/// Data keys wrapped by a local master key.
pub struct FileKeyWrapper {
    path: PathBuf,
    key: SecretBox<[u8; KEY_LEN]>,
    fingerprint: String,
}

impl fmt::Debug for FileKeyWrapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileKeyWrapper")
            .field("path", &self.path)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// A master key's fingerprint: enough to tell two keys apart, nothing
/// about the key.
fn fingerprint(key: &[u8; KEY_LEN]) -> String {
    let digest = Sha256::new()
        .chain_update(b"docproc/master-key-fingerprint/v1\0")
        .chain_update(key)
        .finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn config_error(path: &Path, message: impl Into<String>) -> SecretError {
    SecretError::Config {
        location: format!("master key file {}", path.display()),
        message: message.into(),
    }
}

/// Creates a new master key file at `path`: 32 random bytes, mode 0600.
/// Refuses to replace an existing file (it may protect existing secrets).
/// Returns the key's fingerprint.
pub fn create_master_key_file(path: &Path) -> Result<String, SecretError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            let message = if e.kind() == std::io::ErrorKind::AlreadyExists {
                "it already exists; refusing to replace it, since it may protect existing secrets"
                    .to_owned()
            } else {
                format!("cannot create it: {e}")
            };
            config_error(path, message)
        })?;
    let key: SecretBox<[u8; KEY_LEN]> =
        SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| OsRng.fill_bytes(k));
    file.write_all(key.expose_secret())
        .and_then(|()| file.sync_all())
        .map_err(|e| config_error(path, format!("cannot write it: {e}")))?;
    Ok(fingerprint(key.expose_secret()))
}

/// Associated data of a wrapped data key: the tenant it belongs to.
fn wrap_aad(tenant: &TenantId) -> Vec<u8> {
    format!("docproc/hosted-data-key/v1\0{tenant}").into_bytes()
}

impl FileKeyWrapper {
    /// Reads the master key at `path`. It must exist, hold exactly 32
    /// bytes, and be readable by its owner only.
    pub fn open(path: &Path) -> Result<Self, SecretError> {
        let mut file = std::fs::File::open(path).map_err(|e| {
            let message = if e.kind() == std::io::ErrorKind::NotFound {
                "it does not exist; create it once with `coordinator secret init-master-key` \
                 (docs/admin/secrets.md) and back it up: without it the hosted secrets cannot be read"
                    .to_owned()
            } else {
                format!("cannot open it: {e}")
            };
            config_error(path, message)
        })?;
        let meta = file
            .metadata()
            .map_err(|e| config_error(path, format!("cannot read it: {e}")))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(config_error(
                path,
                format!(
                    "it is readable by other users (mode {:o}); run `chmod 600 {}`",
                    meta.permissions().mode() & 0o777,
                    path.display()
                ),
            ));
        }
        if meta.len() != KEY_LEN as u64 {
            return Err(config_error(
                path,
                format!("it holds {} bytes, not {KEY_LEN}", meta.len()),
            ));
        }
        let mut key: SecretBox<[u8; KEY_LEN]> = SecretBox::default();
        file.read_exact(key.expose_secret_mut())
            .map_err(|e| config_error(path, format!("cannot read it: {e}")))?;
        Ok(Self {
            path: path.to_owned(),
            fingerprint: fingerprint(key.expose_secret()),
            key,
        })
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(self.key.expose_secret()).expect("a 32-byte key")
    }
}

#[async_trait]
impl KeyWrapper for FileKeyWrapper {
    fn id(&self) -> String {
        format!("file:{}", self.fingerprint)
    }

    fn describe(&self) -> String {
        format!(
            "master key file {} (fingerprint {})",
            self.path.display(),
            self.fingerprint
        )
    }

    async fn wrap(&self, tenant: &TenantId, key: &SecretSlice<u8>) -> Result<Vec<u8>, WrapError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: key.expose_secret(),
                    aad: &wrap_aad(tenant),
                },
            )
            .map_err(|_| WrapError::Unavailable("AES-GCM encryption failed".into()))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }

    async fn unwrap(
        &self,
        tenant: &TenantId,
        wrapper: &str,
        blob: &[u8],
    ) -> Result<SecretSlice<u8>, WrapError> {
        if wrapper != self.id() {
            return Err(WrapError::Rejected(format!(
                "wrong master key: the data key is wrapped by `{wrapper}`, but the configured key is {}",
                self.describe()
            )));
        }
        if blob.len() < NONCE_LEN {
            return Err(WrapError::Rejected(
                "the wrapped data key is truncated".into(),
            ));
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let key = self
            .cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &wrap_aad(tenant),
                },
            )
            .map_err(|_| {
                WrapError::Rejected(
                    "the wrapped data key does not authenticate: altered, or copied from another tenant"
                        .into(),
                )
            })?;
        Ok(SecretSlice::from(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str) -> TenantId {
        id.parse().unwrap()
    }

    #[tokio::test]
    async fn master_key_files_are_private_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let fp = create_master_key_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 32);
        let e = create_master_key_file(&path).unwrap_err();
        assert!(e.to_string().contains("refusing to replace"), "{e}");

        let wrapper = FileKeyWrapper::open(&path).unwrap();
        assert_eq!(wrapper.id(), format!("file:{fp}"));
        // Debug shows the path and fingerprint, not the key.
        let debug = format!("{wrapper:?}");
        assert!(debug.contains(&fp) && !debug.contains("key:"), "{debug}");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = FileKeyWrapper::open(&path).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        let e = FileKeyWrapper::open(&dir.path().join("missing.key")).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }

    #[tokio::test]
    async fn a_wrapped_key_opens_only_with_its_master_key_and_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.key"), dir.path().join("b.key"));
        create_master_key_file(&a).unwrap();
        create_master_key_file(&b).unwrap();
        let (wa, wb) = (
            FileKeyWrapper::open(&a).unwrap(),
            FileKeyWrapper::open(&b).unwrap(),
        );
        let key = SecretSlice::from(vec![7u8; KEY_LEN]);
        let blob = wa.wrap(&tenant("acme"), &key).await.unwrap();
        let back = wa.unwrap(&tenant("acme"), &wa.id(), &blob).await.unwrap();
        assert_eq!(back.expose_secret(), key.expose_secret());

        let e = wb
            .unwrap(&tenant("acme"), &wa.id(), &blob)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("wrong master key"), "{e}");
        let e = wa
            .unwrap(&tenant("globex"), &wa.id(), &blob)
            .await
            .unwrap_err();
        assert!(matches!(e, WrapError::Rejected(_)), "{e}");
        let mut tampered = blob.clone();
        *tampered.last_mut().unwrap() ^= 1;
        let e = wa
            .unwrap(&tenant("acme"), &wa.id(), &tampered)
            .await
            .unwrap_err();
        assert!(matches!(e, WrapError::Rejected(_)), "{e}");
    }
}
