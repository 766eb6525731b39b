//! The seam over the S3 calls the storage probe makes: `PutObject` (with an
//! optional SSE-KMS key), `GetObject`, `DeleteObject` and `HeadObject`, on
//! one bucket at a time, against AWS S3 or an S3-compatible service
//! (an endpoint URL, path-style addressing).
//!
//! A client acts as one of two principals ([`S3Credentials`]): the tenant's
//! role (AssumeRole through [`TenantCredentials`]), or a static access key
//! the customer stored in the tenant's secret store. [`S3Access`] says
//! which, and in which region and at which endpoint; the
//! [`Connector`](super::Connector) builds the client. The SDK implementation
//! lives in `sdk/s3.rs`, the in-memory fake in `fake/s3.rs`.
//!
//! Errors are [`AwsError`]s with the S3 error code kept (`NoSuchBucket`,
//! `AccessDenied`, `PermanentRedirect`, `AuthorizationHeaderMalformed`,
//! `InvalidAccessKeyId`, `SignatureDoesNotMatch`, `KMS.*`, ...): the probe
//! tells its failures apart by code first and by kind second.
//!
//! What this module must never do: show a secret access key or session
//! token in a `Debug` output, an error or a log line. The access key id is
//! shown only by its last four characters ([`StaticKey::hint`]).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;
use stacks::aws_names::BucketName;
use stacks::ids::Region;

use super::{AwsError, TenantCredentials};

/// The service name in [`AwsError::service`].
pub const S3_SERVICE: &str = "s3";

/// An access key read from a tenant's secret. `Debug` shows only a hint of
/// the key id.
#[derive(Clone)]
pub struct StaticKey {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: SecretString,
}

impl StaticKey {
    /// `…WXYZ`: the last four characters of the key id, enough to tell
    /// keys apart in an IAM console, too few to be the key.
    pub fn hint(&self) -> String {
        let chars: Vec<char> = self.access_key_id.chars().collect();
        let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
        format!("…{tail}")
    }
}

impl fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKey")
            .field("access_key_id", &self.hint())
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Whose credentials an S3 client signs with.
#[derive(Clone)]
pub enum S3Credentials {
    /// The tenant's role (AssumeRole with its ExternalId, self-refreshing).
    Tenant(Arc<TenantCredentials>),
    /// A static access key from the tenant's secret store.
    Static(StaticKey),
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            S3Credentials::Tenant(credentials) => f
                .debug_tuple("Tenant")
                .field(&credentials.request().role_arn)
                .finish(),
            S3Credentials::Static(key) => f.debug_tuple("Static").field(key).finish(),
        }
    }
}

/// Where and as whom an S3 client acts.
#[derive(Debug, Clone)]
pub struct S3Access {
    /// The principal.
    pub credentials: S3Credentials,
    /// The bucket's region (signing region; the endpoint's for AWS S3).
    pub region: Region,
    /// An S3-compatible endpoint, e.g. `https://minio.example.com`; `None`
    /// for AWS S3 (or whatever the connector's base configuration points
    /// at, such as an emulator).
    pub endpoint: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`) instead of
    /// virtual-hosted (`bucket.endpoint/key`).
    pub path_style: bool,
}

impl S3Access {
    /// Whether requests go over plain HTTP (only allowed on loopback, for
    /// development: see `privacy::config`).
    pub fn is_plain_http(&self) -> bool {
        self.endpoint.as_deref().is_some_and(|e| {
            e.get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
        })
    }
}

/// What `HeadObject` says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    /// Size in bytes.
    pub size: u64,
    /// `AES256`, `aws:kms`, ... when the service reports it.
    pub server_side_encryption: Option<String>,
    /// The KMS key that encrypts it, for SSE-KMS.
    pub kms_key_id: Option<String>,
}

/// The S3 calls the storage probe makes, through one client (one principal,
/// region and endpoint).
#[async_trait]
pub trait S3: Send + Sync + fmt::Debug {
    /// `PutObject` of `body` at `key`, with SSE-KMS under `kms_key_id` when
    /// given (the bucket's default encryption otherwise).
    async fn put_object(
        &self,
        bucket: &BucketName,
        key: &str,
        body: Vec<u8>,
        kms_key_id: Option<&str>,
    ) -> Result<(), AwsError>;

    /// `GetObject`: the whole body.
    async fn get_object(&self, bucket: &BucketName, key: &str) -> Result<Vec<u8>, AwsError>;

    /// `DeleteObject` (of the current version; idempotent).
    async fn delete_object(&self, bucket: &BucketName, key: &str) -> Result<(), AwsError>;

    /// `HeadObject`; `None` when the object does not exist (HTTP 404).
    async fn head_object(
        &self,
        bucket: &BucketName,
        key: &str,
    ) -> Result<Option<ObjectHead>, AwsError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_never_shown() {
        let key = StaticKey {
            access_key_id: "AKIAEXAMPLEKEYID1234".into(),
            secret_access_key: SecretString::from("very-secret-value"),
        };
        assert_eq!(key.hint(), "…1234");
        let debug = format!("{:?}", S3Credentials::Static(key));
        assert!(!debug.contains("AKIAEXAMPLE"), "{debug}");
        assert!(!debug.contains("very-secret"), "{debug}");
        let short = StaticKey {
            access_key_id: "ab".into(),
            secret_access_key: SecretString::from("x"),
        };
        assert_eq!(short.hint(), "…ab");
    }

    #[test]
    fn plain_http_is_told_apart() {
        let key = StaticKey {
            access_key_id: "k".into(),
            secret_access_key: SecretString::from("s"),
        };
        let access = |endpoint: Option<&str>| S3Access {
            credentials: S3Credentials::Static(key.clone()),
            region: Region::EuWest1,
            endpoint: endpoint.map(str::to_owned),
            path_style: true,
        };
        assert!(access(Some("http://127.0.0.1:9000")).is_plain_http());
        assert!(access(Some("HTTP://localhost")).is_plain_http());
        assert!(!access(Some("https://minio.example.com")).is_plain_http());
        assert!(!access(None).is_plain_http());
    }
}
