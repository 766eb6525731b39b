//! Tenant secrets in one `age`-encrypted file, for Docker and on-prem
//! installs without a cloud key service.
//!
//! The file holds every tenant's secrets as JSON,
//! `{"format": "docproc-secrets/v1", "tenants": {tenant: {name: [versions]}}}`,
//! encrypted to the configured x25519 recipients (`age1...`) and decrypted
//! with an identity file (`AGE-SECRET-KEY-1...`, mode 0600). Rotation adds
//! a version; old versions are kept until the secret is deleted.
//!
//! Writes are read-modify-write of the whole file: serialised within the
//! process by a mutex and across processes by an exclusive lock on
//! `<file>.lock`, and atomic (a 0600 temporary file in the same directory,
//! synced, then renamed over the old one). Reads take no lock: a rename is
//! atomic, so a reader sees the old file or the new one.
//!
//! What this module must never do: write a value anywhere but inside the
//! encrypted file, or put one (or a parser message that could quote one)
//! into an error.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::{Arc, Mutex, PoisonError};

use age::x25519;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::zeroize::Zeroize as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use stacks::ids::TenantId;

use super::{BackendKind, SecretError, SecretMeta, SecretName, SecretStore, SecretVersion};

/// The document format written into the file.
pub const FORMAT: &str = "docproc-secrets/v1";

/// A value inside the decrypted document: zeroed when dropped, redacted in
/// `Debug`.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
struct Plain(String);

impl Drop for Plain {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Plain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    version: u32,
    created_at: DateTime<Utc>,
    value: Plain,
}

#[derive(Debug, Serialize, Deserialize)]
struct Document {
    format: String,
    /// Tenant -> secret name -> versions, oldest first.
    tenants: BTreeMap<String, BTreeMap<String, Vec<Entry>>>,
}

impl Default for Document {
    fn default() -> Self {
        Self {
            format: FORMAT.to_owned(),
            tenants: BTreeMap::new(),
        }
    }
}

struct Inner {
    file: PathBuf,
    recipients: Vec<x25519::Recipient>,
    identities: Vec<x25519::Identity>,
    identity_path: PathBuf,
    /// Serialises writers in this process (the lock file, across processes).
    writing: Mutex<()>,
}

/// The `age` file as a [`SecretStore`].
#[derive(Clone)]
pub struct AgeFileStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for AgeFileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgeFileStore")
            .field("file", &self.inner.file)
            .field("identity", &self.inner.identity_path)
            .field("recipients", &self.inner.recipients.len())
            .finish_non_exhaustive()
    }
}

fn config(location: &Path, message: impl Into<String>) -> SecretError {
    SecretError::Config {
        location: format!("age file {}", location.display()),
        message: message.into(),
    }
}

/// Reads the x25519 identities of an identity file (one per line; blank
/// lines and `#` comments skipped). The file must be its owner's only.
fn read_identities(file: &Path, identity: &Path) -> Result<Vec<x25519::Identity>, SecretError> {
    let fail = |message: String| config(file, message);
    let meta = std::fs::metadata(identity).map_err(|e| {
        fail(format!(
            "cannot read the identity file {}: {e}",
            identity.display()
        ))
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(fail(format!(
            "the identity file {} is readable by other users; run `chmod 600 {}`",
            identity.display(),
            identity.display()
        )));
    }
    let text = SecretString::from(std::fs::read_to_string(identity).map_err(|e| {
        fail(format!(
            "cannot read the identity file {}: {e}",
            identity.display()
        ))
    })?);
    let mut identities = Vec::new();
    for (i, line) in text.expose_secret().lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The parser's message never quotes the key.
        let parsed = x25519::Identity::from_str(line).map_err(|why| {
            fail(format!(
                "line {} of the identity file {} is not an age x25519 identity (AGE-SECRET-KEY-1...): {why}",
                i + 1,
                identity.display()
            ))
        })?;
        identities.push(parsed);
    }
    if identities.is_empty() {
        return Err(fail(format!(
            "the identity file {} holds no identity; make one with `age-keygen -o {}`",
            identity.display(),
            identity.display()
        )));
    }
    Ok(identities)
}

impl AgeFileStore {
    /// The store in `file`, encrypted to `recipients` and read with the
    /// identities in `identity`. `file` need not exist yet; the first write
    /// creates it. One of the identities must be among the recipients, or
    /// the coordinator could not read back what it writes.
    pub fn open(file: &Path, identity: &Path, recipients: &[String]) -> Result<Self, SecretError> {
        if recipients.is_empty() {
            return Err(config(file, "no recipients are configured"));
        }
        let recipients = recipients
            .iter()
            .map(|r| {
                x25519::Recipient::from_str(r).map_err(|why| {
                    config(
                        file,
                        format!("recipient {r:?} is not an age x25519 recipient (age1...): {why}"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let identities = read_identities(file, identity)?;
        let publics: Vec<String> = identities
            .iter()
            .map(|i| i.to_public().to_string())
            .collect();
        let configured: Vec<String> = recipients.iter().map(ToString::to_string).collect();
        if !publics.iter().any(|p| configured.contains(p)) {
            return Err(config(
                file,
                format!(
                    "the identity in {} is not one of the recipients, so the coordinator could not read back what it writes; add its recipient {} to `recipients`",
                    identity.display(),
                    publics[0]
                ),
            ));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                file: file.to_owned(),
                recipients,
                identities,
                identity_path: identity.to_owned(),
                writing: Mutex::new(()),
            }),
        })
    }

    /// Runs `f` on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, SecretError> + Send + 'static,
    ) -> Result<T, SecretError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| SecretError::Backend {
                location: self.location(),
                message: format!("the file task failed: {e}"),
            })?
    }
}

impl Inner {
    fn location(&self) -> String {
        format!("age file {}", self.file.display())
    }

    fn backend(&self, message: impl Into<String>) -> SecretError {
        SecretError::Backend {
            location: self.location(),
            message: message.into(),
        }
    }

    /// The decrypted document; an empty one when the file does not exist.
    fn read(&self) -> Result<Document, SecretError> {
        let bytes = match std::fs::read(&self.file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Document::default()),
            Err(e) => return Err(self.backend(format!("cannot read it: {e}"))),
        };
        let decryptor = age::Decryptor::new_buffered(&bytes[..])
            .map_err(|e| self.backend(format!("it is not a readable age file: {e}")))?;
        let mut reader = decryptor
            .decrypt(self.identities.iter().map(|i| i as &dyn age::Identity))
            .map_err(|e| match e {
                age::DecryptError::NoMatchingKeys => config(
                    &self.file,
                    format!(
                        "the identity in {} cannot decrypt it: the file was encrypted to other recipients; configure the identity of one of them",
                        self.identity_path.display()
                    ),
                ),
                other => self.backend(format!("cannot decrypt it: {other}")),
            })?;
        let mut plaintext = Vec::new();
        let read = reader.read_to_end(&mut plaintext);
        let parsed = read
            .map_err(|e| self.backend(format!("cannot decrypt it (damaged?): {e}")))
            .and_then(|_| {
                // Only the position: serde's message may quote a value.
                serde_json::from_slice::<Document>(&plaintext).map_err(|e| {
                    self.backend(format!(
                        "the decrypted content is not a secrets document (line {}, column {})",
                        e.line(),
                        e.column()
                    ))
                })
            });
        plaintext.zeroize();
        let document = parsed?;
        if document.format != FORMAT {
            return Err(self.backend(format!(
                "it holds format {:?}, not {FORMAT:?}",
                document.format
            )));
        }
        Ok(document)
    }

    /// Encrypts `document` to the recipients and replaces the file with it
    /// atomically.
    fn write(&self, document: &Document) -> Result<(), SecretError> {
        let dir = self
            .file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let file_name = self
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "secrets.age".into());
        let temp = dir.join(format!(
            ".{file_name}.tmp-{}-{}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        let result = self.write_to(&temp, document).and_then(|()| {
            std::fs::rename(&temp, &self.file)
                .map_err(|e| self.backend(format!("cannot replace it: {e}")))?;
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| self.backend(format!("cannot sync its directory: {e}")))
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }

    fn write_to(&self, temp: &Path, document: &Document) -> Result<(), SecretError> {
        let out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(temp)
            .map_err(|e| {
                self.backend(format!(
                    "cannot create the temporary file {}: {e}",
                    temp.display()
                ))
            })?;
        let encryptor = age::Encryptor::with_recipients(
            self.recipients.iter().map(|r| r as &dyn age::Recipient),
        )
        .map_err(|e| self.backend(format!("cannot encrypt to the recipients: {e}")))?;
        let mut plaintext = serde_json::to_vec(document)
            .map_err(|_| self.backend("cannot serialize the secrets document"))?;
        let written = encryptor
            .wrap_output(out)
            .and_then(|mut w| {
                w.write_all(&plaintext)?;
                w.finish()
            })
            .and_then(|f| f.sync_all());
        plaintext.zeroize();
        written.map_err(|e| self.backend(format!("cannot write the temporary file: {e}")))
    }

    /// Read, change and write the document, holding both locks.
    fn modify<T>(
        &self,
        change: impl FnOnce(&mut Document) -> Result<T, SecretError>,
    ) -> Result<T, SecretError> {
        let _in_process = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let lock_path = PathBuf::from(format!("{}.lock", self.file.display()));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| {
                self.backend(format!(
                    "cannot open the lock file {}: {e}",
                    lock_path.display()
                ))
            })?;
        lock.lock()
            .map_err(|e| self.backend(format!("cannot lock {}: {e}", lock_path.display())))?;
        let mut document = self.read()?;
        let result = change(&mut document)?;
        self.write(&document)?;
        Ok(result)
    }
}

fn not_found(location: String, tenant: &TenantId, name: &SecretName) -> SecretError {
    SecretError::NotFound {
        tenant: tenant.clone(),
        name: name.clone(),
        location,
    }
}

#[async_trait]
impl SecretStore for AgeFileStore {
    fn kind(&self) -> BackendKind {
        BackendKind::AgeFile
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    async fn put(
        &self,
        tenant: &TenantId,
        name: &SecretName,
        value: &SecretString,
    ) -> Result<SecretVersion, SecretError> {
        let (tenant, name) = (tenant.to_string(), name.to_string());
        let value = Plain(value.expose_secret().to_owned());
        self.blocking(move |inner| {
            inner.modify(move |document| {
                let versions = document
                    .tenants
                    .entry(tenant)
                    .or_default()
                    .entry(name)
                    .or_default();
                let version = versions.last().map_or(1, |v| v.version + 1);
                let created_at = Utc::now();
                versions.push(Entry {
                    version,
                    created_at,
                    value,
                });
                Ok(SecretVersion {
                    id: version.to_string(),
                    created_at,
                })
            })
        })
        .await
    }

    async fn get(&self, tenant: &TenantId, name: &SecretName) -> Result<SecretString, SecretError> {
        self.get_version_inner(tenant, name, None).await
    }

    async fn get_version(
        &self,
        tenant: &TenantId,
        name: &SecretName,
        version: &str,
    ) -> Result<SecretString, SecretError> {
        let Ok(number) = version.parse::<u32>() else {
            return Err(not_found(self.location(), tenant, name));
        };
        self.get_version_inner(tenant, name, Some(number)).await
    }

    async fn delete(&self, tenant: &TenantId, name: &SecretName) -> Result<(), SecretError> {
        let (t, n) = (tenant.clone(), name.clone());
        self.blocking(move |inner| {
            inner.modify(|document| {
                let missing = || not_found(inner.location(), &t, &n);
                let secrets = document.tenants.get_mut(t.as_str()).ok_or_else(missing)?;
                secrets.remove(n.as_str()).ok_or_else(missing)?;
                if secrets.is_empty() {
                    document.tenants.remove(t.as_str());
                }
                Ok(())
            })
        })
        .await
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<SecretMeta>, SecretError> {
        let t = tenant.to_string();
        self.blocking(move |inner| {
            let document = inner.read()?;
            let Some(secrets) = document.tenants.get(&t) else {
                return Ok(Vec::new());
            };
            Ok(secrets
                .iter()
                .filter_map(|(name, versions)| {
                    let latest = versions.last()?;
                    Some(SecretMeta {
                        name: name.parse().ok()?,
                        current: SecretVersion {
                            id: latest.version.to_string(),
                            created_at: latest.created_at,
                        },
                        versions: u32::try_from(versions.len()).ok(),
                    })
                })
                .collect())
        })
        .await
    }
}

impl AgeFileStore {
    async fn get_version_inner(
        &self,
        tenant: &TenantId,
        name: &SecretName,
        version: Option<u32>,
    ) -> Result<SecretString, SecretError> {
        let (t, n) = (tenant.clone(), name.clone());
        self.blocking(move |inner| {
            let document = inner.read()?;
            let versions = document
                .tenants
                .get(t.as_str())
                .and_then(|s| s.get(n.as_str()));
            let entry = versions.and_then(|v| match version {
                Some(number) => v.iter().find(|e| e.version == number),
                None => v.last(),
            });
            entry
                .map(|e| SecretString::from(e.value.0.as_str()))
                .ok_or_else(|| not_found(inner.location(), &t, &n))
        })
        .await
    }
}

#[cfg(test)]
mod tests;
