//! The fake's S3: buckets by global name, each with its region and objects,
//! and the failures the storage probe must tell apart, answered the way S3
//! answers them (code, kind and message):
//!
//! - a missing bucket: `NoSuchBucket`;
//! - a bucket in another region than the client's, reached without an
//!   endpoint of its own: `PermanentRedirect` naming the bucket's region;
//! - a static access key the fake does not know: `InvalidAccessKeyId`; a
//!   known one with the wrong secret: `SignatureDoesNotMatch` (keys are
//!   registered with [`FakeCloud::add_s3_key`]); the tenant's role goes
//!   through the fake's STS like every tenant call, so a refused AssumeRole
//!   surfaces as that;
//! - [`S3Fault`]s set per bucket with [`FakeCloud::s3_fault`]: an operation
//!   denied (`AccessDenied`, as a bucket policy's Deny), a KMS key the
//!   principal may not use, TLS required (plain-HTTP endpoints denied),
//!   reads that return other bytes, deletes that leave the object, and any
//!   error once for one operation.
//!
//! As in S3, a missing object is `NoSuchKey` on `GetObject` and 404 on
//! `HeadObject`, and `DeleteObject` of a missing key succeeds.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use secrecy::ExposeSecret as _;
use stacks::aws_names::BucketName;
use stacks::ids::Region;

use super::FakeCloud;
use crate::aws::s3::{ObjectHead, S3, S3_SERVICE, S3Access, S3Credentials};
use crate::aws::{AwsError, ErrorKind};

/// An S3 operation of the seam.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum S3Operation {
    /// `PutObject`.
    Put,
    /// `GetObject`.
    Get,
    /// `DeleteObject`.
    Delete,
    /// `HeadObject`.
    Head,
}

impl S3Operation {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            S3Operation::Put => "PutObject",
            S3Operation::Get => "GetObject",
            S3Operation::Delete => "DeleteObject",
            S3Operation::Head => "HeadObject",
        }
    }
}

/// Something wrong with one bucket.
#[derive(Debug, Clone, PartialEq)]
pub enum S3Fault {
    /// The operation is denied to every principal (a Deny statement).
    Deny(S3Operation),
    /// The principal may not use this KMS key: `PutObject` under it is
    /// denied for `kms:GenerateDataKey`, `GetObject` of an object under it
    /// for `kms:Decrypt`.
    DenyKmsKey(String),
    /// Every request over plain HTTP is denied (`aws:SecureTransport`).
    RequireTls,
    /// `GetObject` returns other bytes than were written.
    CorruptReads,
    /// `DeleteObject` succeeds but the object stays.
    IgnoreDeletes,
    /// The next call of the operation fails with this error.
    FailOnce(S3Operation, AwsError),
}

/// The S3 part of the fake's state.
#[derive(Debug, Default)]
pub(super) struct S3State {
    buckets: BTreeMap<BucketName, Bucket>,
    /// Static access keys: id → secret.
    keys: BTreeMap<String, String>,
}

#[derive(Debug)]
struct Bucket {
    region: Region,
    objects: BTreeMap<String, Object>,
    faults: Vec<S3Fault>,
}

#[derive(Debug, Clone)]
struct Object {
    body: Vec<u8>,
    kms_key_id: Option<String>,
}

impl FakeCloud {
    /// Creates an empty bucket in `region` (names are global, as in S3).
    pub fn add_bucket(&self, bucket: &BucketName, region: Region) {
        self.lock().s3.buckets.insert(
            bucket.clone(),
            Bucket {
                region,
                objects: BTreeMap::new(),
                faults: Vec::new(),
            },
        );
    }

    /// Makes a static access key valid.
    pub fn add_s3_key(&self, access_key_id: &str, secret_access_key: &str) {
        self.lock()
            .s3
            .keys
            .insert(access_key_id.to_owned(), secret_access_key.to_owned());
    }

    /// Adds a fault to `bucket`.
    ///
    /// # Panics
    ///
    /// If the bucket does not exist.
    pub fn s3_fault(&self, bucket: &BucketName, fault: S3Fault) {
        self.lock()
            .s3
            .buckets
            .get_mut(bucket)
            .expect("s3_fault on a bucket added with add_bucket")
            .faults
            .push(fault);
    }

    /// The keys of the objects in `bucket` (empty when it does not exist).
    pub fn s3_keys(&self, bucket: &BucketName) -> Vec<String> {
        self.lock()
            .s3
            .buckets
            .get(bucket)
            .map(|b| b.objects.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// [`S3`] on the fake cloud, as one principal in one region.
#[derive(Clone)]
pub struct FakeS3 {
    cloud: FakeCloud,
    access: S3Access,
}

impl fmt::Debug for FakeS3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeS3")
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

fn error(kind: ErrorKind, op: S3Operation, code: &str, message: impl Into<String>) -> AwsError {
    AwsError::new(kind, S3_SERVICE, op.as_str(), message).with_code(code)
}

impl FakeS3 {
    /// A client of `cloud` acting as `access` says.
    pub fn new(cloud: FakeCloud, access: S3Access) -> Self {
        Self { cloud, access }
    }

    /// Authenticates, finds the bucket, applies its faults, then runs `f`
    /// on it.
    async fn call<T>(
        &self,
        op: S3Operation,
        bucket: &BucketName,
        f: impl FnOnce(&mut Bucket) -> Result<T, AwsError>,
    ) -> Result<T, AwsError> {
        match &self.access.credentials {
            S3Credentials::Tenant(credentials) => {
                self.cloud
                    .tenant_call(
                        credentials,
                        S3_SERVICE,
                        op.as_str(),
                        self.access.region,
                        None,
                    )
                    .await?;
            }
            S3Credentials::Static(key) => {
                self.cloud.latency().await;
                let state = self.cloud.lock();
                match state.s3.keys.get(&key.access_key_id) {
                    None => {
                        return Err(error(
                            ErrorKind::AccessDenied,
                            op,
                            "InvalidAccessKeyId",
                            "The AWS Access Key Id you provided does not exist in our records.",
                        ));
                    }
                    Some(secret) if secret != key.secret_access_key.expose_secret() => {
                        return Err(error(
                            ErrorKind::AccessDenied,
                            op,
                            "SignatureDoesNotMatch",
                            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        let mut state = self.cloud.lock();
        let Some(b) = state.s3.buckets.get_mut(bucket) else {
            return Err(error(
                ErrorKind::NotFound,
                op,
                "NoSuchBucket",
                "The specified bucket does not exist",
            ));
        };
        if self.access.endpoint.is_none() && b.region != self.access.region {
            return Err(error(
                ErrorKind::Validation,
                op,
                "PermanentRedirect",
                format!(
                    "The bucket you are attempting to access must be addressed using the specified endpoint. (bucket region: {})",
                    b.region
                ),
            ));
        }
        if let Some(i) = b
            .faults
            .iter()
            .position(|f| matches!(f, S3Fault::FailOnce(o, _) if *o == op))
        {
            let S3Fault::FailOnce(_, mut e) = b.faults.remove(i) else {
                unreachable!("the position matched FailOnce");
            };
            e.service = S3_SERVICE;
            e.operation = op.as_str();
            return Err(e);
        }
        let denied = b.faults.iter().any(|f| match f {
            S3Fault::Deny(o) => *o == op,
            S3Fault::RequireTls => self.access.is_plain_http(),
            _ => false,
        });
        if denied {
            return Err(error(
                ErrorKind::AccessDenied,
                op,
                "AccessDenied",
                "Access Denied",
            ));
        }
        f(b)
    }
}

impl Bucket {
    fn kms_denied(&self, key: Option<&str>) -> bool {
        key.is_some_and(|key| {
            self.faults
                .iter()
                .any(|f| matches!(f, S3Fault::DenyKmsKey(k) if k == key))
        })
    }

    fn has(&self, fault: &S3Fault) -> bool {
        self.faults.contains(fault)
    }
}

#[async_trait]
impl S3 for FakeS3 {
    async fn put_object(
        &self,
        bucket: &BucketName,
        key: &str,
        body: Vec<u8>,
        kms_key_id: Option<&str>,
    ) -> Result<(), AwsError> {
        let op = S3Operation::Put;
        self.call(op, bucket, |b| {
            if b.kms_denied(kms_key_id) {
                return Err(error(
                    ErrorKind::AccessDenied,
                    op,
                    "AccessDenied",
                    format!(
                        "User is not authorized to perform: kms:GenerateDataKey on resource: {}",
                        kms_key_id.unwrap_or_default()
                    ),
                ));
            }
            let object = Object {
                body,
                kms_key_id: kms_key_id.map(str::to_owned),
            };
            b.objects.insert(key.to_owned(), object);
            Ok(())
        })
        .await
    }

    async fn get_object(&self, bucket: &BucketName, key: &str) -> Result<Vec<u8>, AwsError> {
        let op = S3Operation::Get;
        self.call(op, bucket, |b| {
            let Some(object) = b.objects.get(key) else {
                return Err(error(
                    ErrorKind::NotFound,
                    op,
                    "NoSuchKey",
                    "The specified key does not exist.",
                ));
            };
            if b.kms_denied(object.kms_key_id.as_deref()) {
                return Err(error(
                    ErrorKind::AccessDenied,
                    op,
                    "AccessDenied",
                    format!(
                        "User is not authorized to perform: kms:Decrypt on resource: {}",
                        object.kms_key_id.as_deref().unwrap_or_default()
                    ),
                ));
            }
            let mut body = object.body.clone();
            if b.has(&S3Fault::CorruptReads) {
                body.reverse();
                body.push(b'!');
            }
            Ok(body)
        })
        .await
    }

    async fn delete_object(&self, bucket: &BucketName, key: &str) -> Result<(), AwsError> {
        self.call(S3Operation::Delete, bucket, |b| {
            if !b.has(&S3Fault::IgnoreDeletes) {
                b.objects.remove(key);
            }
            Ok(())
        })
        .await
    }

    async fn head_object(
        &self,
        bucket: &BucketName,
        key: &str,
    ) -> Result<Option<ObjectHead>, AwsError> {
        self.call(S3Operation::Head, bucket, |b| {
            Ok(b.objects.get(key).map(|o| ObjectHead {
                size: o.body.len() as u64,
                server_side_encryption: o.kms_key_id.as_ref().map(|_| "aws:kms".to_owned()),
                kms_key_id: o.kms_key_id.clone(),
            }))
        })
        .await
    }
}
