//! [`S3`] over the SDK's S3 client, built by
//! [`SdkConnector`](super::SdkConnector) from the same base configuration as
//! every other client (shared HTTPS client, the parent module's retries and
//! timeouts), for either principal of [`S3Credentials`]:
//!
//! - the tenant's role: the credentials provider over
//!   [`TenantCredentials`](crate::aws::TenantCredentials), as for SQS;
//! - a static access key from the tenant's secret, handed to the SDK as
//!   fixed credentials (no session token).
//!
//! The client signs for the bucket's region. With an S3-compatible endpoint
//! it goes there, path-style when configured. Without one it goes to AWS
//! S3, or wherever the base configuration points (`AWS_ENDPOINT_URL`, an
//! emulator in tests), and then always path-style, since an emulator on a
//! loopback address has no per-bucket host names. Checksums are computed
//! and validated only where an operation requires them, which S3-compatible
//! services that predate the SDK's default CRC checksums also accept.
//!
//! Errors go through the parent's one mapping, then S3's quirks: `HEAD`
//! answers have no body, so a 301 becomes `PermanentRedirect` and a 404
//! `NotFound`; the `x-amz-bucket-region` header, when S3 sends it, is added
//! to the message so that a wrong region can be named.
//!
//! What this module must never do: let a secret access key or a session
//! token reach an error, a log line or a `Debug` output.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_cloudformation::config::http::HttpResponse;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use secrecy::ExposeSecret as _;
use stacks::aws_names::BucketName;

use super::{SdkConnector, sdk_error};
use crate::aws::s3::{ObjectHead, S3, S3_SERVICE, S3Access, S3Credentials};
use crate::aws::{AwsError, ErrorKind};

/// Name the SDK shows for credentials that come from a tenant's secret.
const STATIC_PROVIDER_NAME: &str = "docproc-tenant-static-key";

impl SdkConnector {
    /// The S3 client configuration for `access`.
    pub(super) fn s3_config(&self, access: &S3Access) -> aws_sdk_s3::Config {
        let region = access.region;
        let base = match &access.credentials {
            S3Credentials::Tenant(credentials) => {
                self.tenant_config(Arc::clone(credentials), region)
            }
            S3Credentials::Static(key) => self
                .config
                .to_builder()
                .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                    key.access_key_id.clone(),
                    key.secret_access_key.expose_secret(),
                    None,
                    None,
                    STATIC_PROVIDER_NAME,
                )))
                .region(aws_config::Region::new(region.as_str()))
                .build(),
        };
        let path_style = path_style(access, base.endpoint_url());
        let mut builder = aws_sdk_s3::config::Builder::from(&base)
            .force_path_style(path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &access.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        builder.build()
    }

    /// An S3 client for `access`.
    pub(super) fn s3_client(&self, access: &S3Access) -> Arc<dyn S3> {
        Arc::new(SdkS3::new(aws_sdk_s3::Client::from_conf(
            self.s3_config(access),
        )))
    }
}

/// Whether a client for `access` addresses buckets path-style: when asked
/// to, and always when there is no endpoint of its own but the base
/// configuration points elsewhere than AWS (`base_endpoint`, an emulator).
fn path_style(access: &S3Access, base_endpoint: Option<&str>) -> bool {
    access.path_style || (access.endpoint.is_none() && base_endpoint.is_some())
}

/// [`S3`] over the SDK's client.
#[derive(Clone)]
pub struct SdkS3 {
    client: aws_sdk_s3::Client,
}

impl fmt::Debug for SdkS3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdkS3")
            .field("region", &self.client.config().region().map(|r| r.as_ref()))
            .finish_non_exhaustive()
    }
}

impl SdkS3 {
    /// Wraps a client.
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl S3 for SdkS3 {
    async fn put_object(
        &self,
        bucket: &BucketName,
        key: &str,
        body: Vec<u8>,
        kms_key_id: Option<&str>,
    ) -> Result<(), AwsError> {
        const OP: &str = "PutObject";
        let mut request = self
            .client
            .put_object()
            .bucket(bucket.as_str())
            .key(key)
            .content_type("text/plain")
            .body(ByteStream::from(body));
        if let Some(kms_key_id) = kms_key_id {
            request = request
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(kms_key_id);
        }
        request.send().await.map_err(|e| s3_error(OP, e))?;
        Ok(())
    }

    async fn get_object(&self, bucket: &BucketName, key: &str) -> Result<Vec<u8>, AwsError> {
        const OP: &str = "GetObject";
        let out = self
            .client
            .get_object()
            .bucket(bucket.as_str())
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error(OP, e))?;
        let body = out.body.collect().await.map_err(|e| {
            AwsError::new(
                ErrorKind::Transient,
                S3_SERVICE,
                OP,
                format!("reading the object's body failed: {e}"),
            )
        })?;
        Ok(body.into_bytes().to_vec())
    }

    async fn delete_object(&self, bucket: &BucketName, key: &str) -> Result<(), AwsError> {
        const OP: &str = "DeleteObject";
        self.client
            .delete_object()
            .bucket(bucket.as_str())
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error(OP, e))?;
        Ok(())
    }

    async fn head_object(
        &self,
        bucket: &BucketName,
        key: &str,
    ) -> Result<Option<ObjectHead>, AwsError> {
        const OP: &str = "HeadObject";
        match self
            .client
            .head_object()
            .bucket(bucket.as_str())
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectHead {
                size: out.content_length().unwrap_or_default().max(0) as u64,
                server_side_encryption: out.server_side_encryption().map(|s| s.as_str().to_owned()),
                kms_key_id: out.ssekms_key_id().map(str::to_owned),
            })),
            Err(e) => {
                let error = s3_error(OP, e);
                if error.kind == ErrorKind::NotFound
                    && error.code.as_deref() != Some("NoSuchBucket")
                {
                    Ok(None)
                } else {
                    Err(error)
                }
            }
        }
    }
}

/// The parent's mapping, plus what S3 leaves out of bodiless answers.
fn s3_error<E>(operation: &'static str, error: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let status = error.raw_response().map(|r| r.status().as_u16());
    let bucket_region = error
        .raw_response()
        .and_then(|r| r.headers().get("x-amz-bucket-region"))
        .map(str::to_owned);
    let mut error = sdk_error(S3_SERVICE, operation, error);
    refine(&mut error, status, bucket_region.as_deref());
    error
}

/// Names a bodiless 301 or 404 and adds the bucket's region, when S3 sent it.
fn refine(error: &mut AwsError, status: Option<u16>, bucket_region: Option<&str>) {
    if error.code.is_none() {
        match status {
            Some(301) => {
                error.code = Some("PermanentRedirect".into());
                error.kind = AwsError::classify(Some("PermanentRedirect"), "");
            }
            Some(404) => {
                error.code = Some("NotFound".into());
                error.kind = ErrorKind::NotFound;
            }
            _ => {}
        }
    }
    if let Some(region) = bucket_region {
        error.message = format!("{} (bucket region: {region})", error.message);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_config::BehaviorVersion;
    use aws_sdk_s3::operation::put_object::PutObjectError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;
    use secrecy::SecretString;
    use stacks::ids::Region;

    use super::*;
    use crate::aws::s3::StaticKey;

    fn service_error(code: Option<&str>, status: u16) -> AwsError {
        let mut meta = ErrorMetadata::builder();
        if let Some(code) = code {
            meta = meta.code(code).message("the service's message");
        }
        let mut response = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        if status == 301 {
            response
                .headers_mut()
                .insert("x-amz-bucket-region", "eu-central-1");
        }
        let error = SdkError::service_error(PutObjectError::generic(meta.build()), response);
        s3_error("PutObject", error)
    }

    #[test]
    fn s3_codes_are_kept_and_classified() {
        for (code, status, kind) in [
            ("NoSuchBucket", 404, ErrorKind::NotFound),
            ("AccessDenied", 403, ErrorKind::AccessDenied),
            ("InvalidAccessKeyId", 403, ErrorKind::AccessDenied),
            ("SignatureDoesNotMatch", 403, ErrorKind::AccessDenied),
            ("AuthorizationHeaderMalformed", 400, ErrorKind::Validation),
            ("KMS.DisabledException", 400, ErrorKind::AccessDenied),
            ("SlowDown", 503, ErrorKind::Throttled),
        ] {
            let e = service_error(Some(code), status);
            assert_eq!(e.code.as_deref(), Some(code));
            assert_eq!(e.kind, kind, "{code}");
            assert_eq!((e.service, e.operation), ("s3", "PutObject"));
        }
    }

    #[test]
    fn bodiless_answers_are_named() {
        let e = service_error(None, 301);
        assert_eq!(e.code.as_deref(), Some("PermanentRedirect"));
        assert_eq!(e.kind, ErrorKind::Validation);
        assert!(e.message.ends_with("(bucket region: eu-central-1)"), "{e}");
        let e = service_error(None, 404);
        assert_eq!(
            (e.code.as_deref(), e.kind),
            (Some("NotFound"), ErrorKind::NotFound)
        );
        // A bare 403 (moto's answer to a Deny statement) stays code-less.
        let e = service_error(None, 403);
        assert_eq!((e.code.as_deref(), e.kind), (None, ErrorKind::AccessDenied));
    }

    /// Path-style when asked for or behind an emulator; the region of the
    /// access; no key in the client's or the access's `Debug`.
    #[tokio::test]
    async fn clients_follow_the_access() {
        let access = |endpoint: Option<&str>, path_style| S3Access {
            credentials: S3Credentials::Static(StaticKey {
                access_key_id: "AKIDSTATIC0000001234".into(),
                secret_access_key: SecretString::from("top-secret-key"),
            }),
            region: Region::EuWest1,
            endpoint: endpoint.map(str::to_owned),
            path_style,
        };
        assert!(!path_style(&access(None, false), None));
        assert!(path_style(&access(None, false), Some("http://127.0.0.1:9")));
        assert!(path_style(
            &access(Some("https://minio.example.com"), true),
            None
        ));
        assert!(!path_style(
            &access(Some("https://s3.example.com"), false),
            Some("http://127.0.0.1:9")
        ));
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDBASE", "base", None, None, "test"))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(7))
                    .build(),
            )
            .load()
            .await;
        let connector = SdkConnector::from_config(config);
        let c = connector.s3_config(&access(None, false));
        assert_eq!(c.region().map(|r| r.as_ref()), Some("eu-west-1"));
        let client = connector.s3_client(&access(None, false));
        let debug = format!("{client:?} {:?}", access(None, false));
        assert!(
            !debug.contains("top-secret") && !debug.contains("AKIDSTATIC"),
            "{debug}"
        );
    }
}
