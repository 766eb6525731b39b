//! The seam implemented with the AWS SDK for Rust: [`SdkConnector`] builds
//! [`SdkSts`] (here), [`SdkCloudFormation`] (`cloudformation`), [`SdkSqs`]
//! (`sqs`, over one shared client per region), [`SdkS3`], [`SdkBedrock`]
//! and, in `secrets`, [`SdkSecretsManager`], [`SdkParameterStore`] and
//! [`SdkKms`], for the operator and for tenants; every SDK error becomes one
//! classified [`AwsError`] (`sdk_error`, here).
//!
//! # Configuration
//!
//! The base configuration is the SDK's standard one
//! (`aws_config::defaults(BehaviorVersion::latest())`): the default
//! credential chain, profiles, `AWS_REGION` and `AWS_ENDPOINT_URL` (which is
//! how the tests and `./dev demo` point it at moto). On top of it, in this
//! file only ([`retry_config`], [`timeout_config`]):
//!
//! - **Retries**: the SDK's standard mode, at most [`MAX_ATTEMPTS`] (5)
//!   attempts per call, exponential backoff with jitter from
//!   [`INITIAL_BACKOFF`] (200 ms) up to [`MAX_BACKOFF`] (10 s). The SDK
//!   retries throttling, 5xx and I/O errors itself; what reaches the caller
//!   has used up those attempts.
//! - **Timeouts**: connect [`CONNECT_TIMEOUT`] (5 s), each attempt
//!   [`ATTEMPT_TIMEOUT`] (30 s), the whole call with its retries
//!   [`OPERATION_TIMEOUT`] (120 s). SQS clients raise the attempt,
//!   operation and read timeouts to at least [`MAX_LONG_POLL`] +
//!   [`LONG_POLL_MARGIN`] (30 s) so that a 20-second long poll is never cut
//!   short ([`long_poll_timeouts`]).
//!
//! Tenant clients use the same base configuration with the tenant's region
//! and a credentials provider over [`TenantCredentials`] (AssumeRole, cached
//! and refreshed there; the SDK's identity cache sits in front and asks again
//! when the reported expiry comes near).
//!
//! # What this module must never do
//!
//! - Log, format or put into an error any credential: secret keys and session
//!   tokens stay in [`SecretString`]s until handed to the SDK, and error
//!   messages are built from service error codes and messages, never from
//!   raw response bodies (an `AssumeRole` body holds credentials).
//! - Retry on its own: one SDK call per trait call. Waiting for stacks to
//!   settle belongs to the caller.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self, ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_cloudformation::config::http::HttpResponse;
use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use stacks::ids::{AccountId, Region};

use super::{
    AwsError, CallerIdentity, ClientScope, CloudFormation, Connector, ErrorKind, Kms,
    ParameterStore, RoleRequest, SecretsManager, Session, Sqs, Sts, TenantCredentials,
};

mod bedrock;
mod secrets;
pub use bedrock::SdkBedrock;
pub use secrets::{SdkKms, SdkParameterStore, SdkSecretsManager};

mod s3;
pub use s3::SdkS3;
mod cloudformation;
pub use cloudformation::SdkCloudFormation;
mod sqs;
pub use sqs::{SdkSqs, SqsClients};
pub(crate) use sqs::{check_delete, check_receive, delete_batch_error};

/// Most attempts the SDK makes for one call (the first one included).
pub const MAX_ATTEMPTS: u32 = 5;
/// Backoff before the first retry; it doubles (with jitter) per retry.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// Longest backoff between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Longest wait for a TCP/TLS connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest one call may take, retries and backoff included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest long poll SQS allows (`WaitTimeSeconds` 20).
pub const MAX_LONG_POLL: Duration = Duration::from_secs(20);
/// What an SQS client's timeouts allow beyond [`MAX_LONG_POLL`].
pub const LONG_POLL_MARGIN: Duration = Duration::from_secs(10);
/// Most entries of a `ReceiveMessage` or `DeleteMessageBatch`.
pub const MAX_SQS_BATCH: usize = 10;

/// Name the SDK shows for credentials that come from a tenant's AssumeRole.
const TENANT_PROVIDER_NAME: &str = "docproc-tenant-assume-role";

const STS: &str = "sts";
const CLOUDFORMATION: &str = "cloudformation";
const SQS: &str = "sqs";

/// The retry policy of every client: standard mode, [`MAX_ATTEMPTS`],
/// backoff from [`INITIAL_BACKOFF`] to [`MAX_BACKOFF`].
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(INITIAL_BACKOFF)
        .with_max_backoff(MAX_BACKOFF)
}

/// The timeouts of every client: [`CONNECT_TIMEOUT`], [`ATTEMPT_TIMEOUT`],
/// [`OPERATION_TIMEOUT`].
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// The timeouts of an SQS client: `base` (the connector's; [`timeout_config`]
/// if none) with the attempt, operation and read timeouts, where set, raised
/// to at least [`MAX_LONG_POLL`] + [`LONG_POLL_MARGIN`].
pub fn long_poll_timeouts(base: Option<&TimeoutConfig>) -> TimeoutConfig {
    let floor = MAX_LONG_POLL + LONG_POLL_MARGIN;
    let base = base.cloned().unwrap_or_else(timeout_config);
    let raise = |timeout: Option<Duration>| timeout.map(|t| t.max(floor));
    let mut builder = base.to_builder();
    builder
        .set_operation_attempt_timeout(raise(base.operation_attempt_timeout()))
        .set_operation_timeout(raise(base.operation_timeout()))
        .set_read_timeout(raise(base.read_timeout()));
    builder.build()
}

/// Builds SDK clients for the operator and for tenants from one base
/// configuration. Building a client is cheap; none are cached but the
/// per-region SQS clients every tenant's SQS calls share ([`SqsClients`]).
#[derive(Clone)]
pub struct SdkConnector {
    config: SdkConfig,
    sqs: Arc<SqsClients>,
}

impl fmt::Debug for SdkConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the SdkConfig: it holds the credentials provider.
        f.debug_struct("SdkConnector")
            .field("region", &self.config.region().map(|r| r.as_ref()))
            .field("endpoint_url", &self.config.endpoint_url())
            .finish_non_exhaustive()
    }
}

/// One HTTPS client for every tenant's clients. Without it each tenant's
/// client would build its own (its own copy of the root certificates and its
/// own connection pool): about 120 KiB per tenant, 1.2 GiB at 10,000
/// tenants (measured with `bench-heartbeat --sdk-clients`).
fn shared_http_client() -> aws_sdk_sqs::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .build_https()
}

impl SdkConnector {
    /// The standard configuration (credential chain, profiles,
    /// `AWS_ENDPOINT_URL`, ...) with this module's retries and timeouts;
    /// `region` overrides the configured region.
    pub async fn from_env(region: Option<Region>) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(shared_http_client())
            .retry_config(retry_config())
            .timeout_config(timeout_config());
        if let Some(region) = region {
            loader = loader.region(aws_config::Region::new(region.as_str()));
        }
        Self::from_config(loader.load().await)
    }

    /// A connector over a ready configuration (tests point it at moto this
    /// way). The retry policy is always this module's; timeouts the
    /// configuration sets are kept and the others filled in from
    /// [`timeout_config`].
    pub fn from_config(config: SdkConfig) -> Self {
        let timeouts = config
            .timeout_config()
            .map(TimeoutConfig::to_builder)
            .unwrap_or_default()
            .take_unset_from(timeout_config().into_builder())
            .build();
        let http_client = config.http_client().unwrap_or_else(shared_http_client);
        let config = config
            .into_builder()
            .http_client(http_client)
            .retry_config(retry_config())
            .timeout_config(timeouts)
            .build();
        Self {
            config,
            sqs: Arc::default(),
        }
    }

    /// The base configuration with a tenant's credentials and region.
    fn tenant_config(&self, credentials: Arc<TenantCredentials>, region: Region) -> SdkConfig {
        self.config
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(TenantCredentialsProvider(
                credentials,
            )))
            .region(aws_config::Region::new(region.as_str()))
            .build()
    }

    /// The base configuration for `scope`: the operator's credentials or a
    /// tenant's, in the scope's region.
    fn scoped_config(&self, scope: &ClientScope) -> SdkConfig {
        match scope {
            ClientScope::Operator { region } => self
                .config
                .to_builder()
                .region(aws_config::Region::new(region.as_str()))
                .build(),
            ClientScope::Tenant {
                credentials,
                region,
            } => self.tenant_config(Arc::clone(credentials), *region),
        }
    }

    /// CloudFormation with the operator's own credentials in `region` (not
    /// part of [`Connector`]: the coordinator deploys only into tenant
    /// accounts; tests use it to look at the operator's account).
    pub fn operator_cloudformation(&self, region: Region) -> Arc<dyn CloudFormation> {
        let config = self
            .config
            .to_builder()
            .region(aws_config::Region::new(region.as_str()))
            .build();
        Arc::new(SdkCloudFormation::new(aws_sdk_cloudformation::Client::new(
            &config,
        )))
    }
}

impl Connector for SdkConnector {
    fn operator_sts(&self) -> Arc<dyn Sts> {
        Arc::new(SdkSts::new(aws_sdk_sts::Client::new(&self.config)))
    }

    fn tenant_sts(&self, credentials: Arc<TenantCredentials>, region: Region) -> Arc<dyn Sts> {
        let config = self.tenant_config(credentials, region);
        Arc::new(SdkSts::new(aws_sdk_sts::Client::new(&config)))
    }

    fn tenant_cloudformation(
        &self,
        credentials: Arc<TenantCredentials>,
        region: Region,
    ) -> Arc<dyn CloudFormation> {
        let config = self.tenant_config(credentials, region);
        Arc::new(SdkCloudFormation::new(aws_sdk_cloudformation::Client::new(
            &config,
        )))
    }

    fn tenant_sqs(&self, credentials: Arc<TenantCredentials>, region: Region) -> Arc<dyn Sqs> {
        Arc::new(SdkSqs::with_credentials(
            self.sqs.client(&self.config, region),
            SharedCredentialsProvider::new(TenantCredentialsProvider(credentials)),
        ))
    }

    fn s3(&self, access: &super::S3Access) -> Arc<dyn super::S3> {
        self.s3_client(access)
    }

    fn tenant_bedrock(
        &self,
        credentials: Arc<TenantCredentials>,
        region: Region,
    ) -> Arc<dyn super::Bedrock> {
        let config = self.tenant_config(credentials, region);
        Arc::new(SdkBedrock::new(aws_sdk_bedrock::Client::new(&config)))
    }

    fn secrets_manager(&self, scope: &ClientScope) -> Arc<dyn SecretsManager> {
        let config = self.scoped_config(scope);
        Arc::new(SdkSecretsManager::new(aws_sdk_secretsmanager::Client::new(
            &config,
        )))
    }

    fn parameter_store(&self, scope: &ClientScope) -> Arc<dyn ParameterStore> {
        let config = self.scoped_config(scope);
        Arc::new(SdkParameterStore::new(aws_sdk_ssm::Client::new(&config)))
    }

    fn kms(&self, scope: &ClientScope) -> Arc<dyn Kms> {
        let config = self.scoped_config(scope);
        Arc::new(SdkKms::new(aws_sdk_kms::Client::new(&config)))
    }
}

/// Hands a tenant's AssumeRole session to the SDK.
#[derive(Debug)]
struct TenantCredentialsProvider(Arc<TenantCredentials>);

impl ProvideCredentials for TenantCredentialsProvider {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            let session = self
                .0
                .session()
                .await
                .map_err(CredentialsError::provider_error)?;
            Ok(Credentials::new(
                session.access_key_id,
                session.secret_access_key.expose_secret(),
                Some(session.session_token.expose_secret().to_owned()),
                Some(SystemTime::from(session.expiration)),
                TENANT_PROVIDER_NAME,
            ))
        })
    }
}

/// [`Sts`] over the SDK's STS client.
#[derive(Clone)]
pub struct SdkSts {
    client: aws_sdk_sts::Client,
}

impl fmt::Debug for SdkSts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdkSts")
            .field("region", &self.client.config().region().map(|r| r.as_ref()))
            .finish_non_exhaustive()
    }
}

impl SdkSts {
    /// Wraps a client.
    pub fn new(client: aws_sdk_sts::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Sts for SdkSts {
    async fn caller_identity(&self) -> Result<CallerIdentity, AwsError> {
        const OP: &str = "GetCallerIdentity";
        let out = self
            .client
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| sdk_error(STS, OP, e))?;
        let account = required(STS, OP, "Account", out.account())?;
        let account: AccountId = account.parse().map_err(|_| {
            AwsError::new(
                ErrorKind::Other,
                STS,
                OP,
                format!("the response's account {account:?} is not a 12-digit account id"),
            )
        })?;
        Ok(CallerIdentity {
            account,
            arn: required(STS, OP, "Arn", out.arn())?.to_owned(),
            user_id: required(STS, OP, "UserId", out.user_id())?.to_owned(),
        })
    }

    async fn assume_role(&self, request: &RoleRequest) -> Result<Session, AwsError> {
        const OP: &str = "AssumeRole";
        let duration = i32::try_from(request.duration.as_secs()).map_err(|_| {
            AwsError::new(
                ErrorKind::Validation,
                STS,
                OP,
                format!("session duration {:?} is too long", request.duration),
            )
        })?;
        let out = self
            .client
            .assume_role()
            .role_arn(request.role_arn.as_str())
            .set_external_id(
                request
                    .external_id
                    .as_ref()
                    .map(|id| id.as_str().to_owned()),
            )
            .role_session_name(request.session_name.as_str())
            .set_source_identity(
                request
                    .source_identity
                    .as_ref()
                    .map(|s| s.as_str().to_owned()),
            )
            .duration_seconds(duration)
            .send()
            .await
            .map_err(|e| sdk_error(STS, OP, e))?;
        let credentials = required(STS, OP, "Credentials", out.credentials())?;
        let expiration = to_chrono(credentials.expiration())
            .ok_or_else(|| missing(STS, OP, "a valid Credentials.Expiration"))?;
        Ok(Session {
            access_key_id: credentials.access_key_id().to_owned(),
            secret_access_key: SecretString::from(credentials.secret_access_key()),
            session_token: SecretString::from(credentials.session_token()),
            expiration,
        })
    }
}

pub(super) fn to_chrono(time: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}

/// A field the service should always send but did not.
pub(super) fn missing(service: &'static str, operation: &'static str, field: &str) -> AwsError {
    AwsError::new(
        ErrorKind::Other,
        service,
        operation,
        format!("the response has no {field}"),
    )
}

fn required<T>(
    service: &'static str,
    operation: &'static str,
    field: &str,
    value: Option<T>,
) -> Result<T, AwsError> {
    value.ok_or_else(|| missing(service, operation, field))
}

/// The one mapping from an SDK error to an [`AwsError`].
///
/// - A failure to obtain a tenant's credentials surfaces as the [`AwsError`]
///   of the `AssumeRole` that failed (so an access-denied AssumeRole stays
///   access denied), its message saying which call needed them.
/// - Other credential-loading failures are [`ErrorKind::AccessDenied`]
///   (there is nothing to act with), except a provider timeout (transient).
/// - Timeouts and dispatch failures (connection refused, reset, ...) are
///   [`ErrorKind::Transient`].
/// - Service errors are classified by [`AwsError::classify`] on their code
///   and message; without a code the HTTP status decides (moto sends some
///   auth errors in a body the SDK cannot parse: a bare 403 is access denied,
///   5xx transient).
///
/// Messages never include raw response bodies or credentials.
fn sdk_error<E>(
    service: &'static str,
    operation: &'static str,
    error: SdkError<E, HttpResponse>,
) -> AwsError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    if let Some(cause) = find_in_chain::<AwsError>(&error) {
        let mut cause = cause.clone();
        cause.message = format!("credentials for {service} {operation}: {}", cause.message);
        return cause;
    }
    if let Some(cause) = find_in_chain::<CredentialsError>(&error) {
        let kind = match cause {
            CredentialsError::ProviderTimedOut(_) => ErrorKind::Transient,
            _ => ErrorKind::AccessDenied,
        };
        // Only the top-level text: the sources of a provider's error may
        // quote configuration files.
        return AwsError::new(kind, service, operation, format!("no credentials: {cause}"));
    }
    let status = error.raw_response().map(|r| r.status().as_u16());
    match &error {
        SdkError::TimeoutError(_) => {
            AwsError::new(ErrorKind::Transient, service, operation, "timed out")
        }
        SdkError::DispatchFailure(failure) => {
            let message = match failure.as_connector_error() {
                Some(connector) => format!("request failed: {}", DisplayErrorContext(connector)),
                None => "request failed".to_owned(),
            };
            AwsError::new(ErrorKind::Transient, service, operation, message)
        }
        SdkError::ConstructionFailure(_) => AwsError::new(
            ErrorKind::Validation,
            service,
            operation,
            format!(
                "could not build the request: {}",
                DisplayErrorContext(&error)
            ),
        ),
        SdkError::ServiceError(_) => {
            let code = error.code();
            let message = error.message().unwrap_or_default();
            let kind = match (code, status) {
                (Some(code), _) => AwsError::classify(Some(code), message),
                (None, Some(status)) => classify_status(status),
                (None, None) => ErrorKind::Other,
            };
            let message = match (message, status) {
                ("", Some(status)) => format!("HTTP {status} without an error message"),
                (message, _) => message.to_owned(),
            };
            let error = AwsError::new(kind, service, operation, message);
            match code {
                Some(code) => error.with_code(code),
                None => error,
            }
        }
        // A response the SDK could not parse (the body is not shown: it may
        // be anything, even credentials).
        _ => {
            let kind = status.map(classify_status).unwrap_or(ErrorKind::Other);
            let message = match status {
                Some(status) => format!("unparseable response with HTTP status {status}"),
                None => "unparseable response".to_owned(),
            };
            AwsError::new(kind, service, operation, message)
        }
    }
}

/// Classifies a response by its HTTP status alone.
fn classify_status(status: u16) -> ErrorKind {
    match status {
        429 => ErrorKind::Throttled,
        _ => AwsError::classify(Some(&status.to_string()), ""),
    }
}

/// The first error of type `T` in `error`'s source chain (itself included).
fn find_in_chain<'a, T: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::SessionName;
    use aws_sdk_cloudformation::error::ErrorMetadata;
    use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksError;
    use aws_smithy_types::body::SdkBody;

    fn service_error(
        code: Option<&str>,
        message: Option<&str>,
        status: u16,
    ) -> SdkError<DescribeStacksError, HttpResponse> {
        let mut meta = ErrorMetadata::builder();
        if let Some(code) = code {
            meta = meta.code(code);
        }
        if let Some(message) = message {
            meta = meta.message(message);
        }
        SdkError::service_error(
            DescribeStacksError::generic(meta.build()),
            HttpResponse::new(status.try_into().unwrap(), SdkBody::empty()),
        )
    }

    #[test]
    fn service_errors_are_classified_by_code_and_message() {
        let e = sdk_error(
            CLOUDFORMATION,
            "DescribeStacks",
            service_error(
                Some("ValidationError"),
                Some("Stack with id x does not exist"),
                400,
            ),
        );
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert_eq!(e.code.as_deref(), Some("ValidationError"));
        assert_eq!(e.service, "cloudformation");
        assert_eq!(e.operation, "DescribeStacks");
        assert_eq!(e.message, "Stack with id x does not exist");

        let e = sdk_error(
            CLOUDFORMATION,
            "DescribeStacks",
            service_error(Some("Throttling"), Some("Rate exceeded"), 400),
        );
        assert_eq!(e.kind, ErrorKind::Throttled);
    }

    #[test]
    fn errors_without_a_code_are_classified_by_status() {
        let e = sdk_error(STS, "GetCallerIdentity", service_error(None, None, 403));
        assert_eq!(e.kind, ErrorKind::AccessDenied);
        assert_eq!(e.code, None);
        assert!(e.message.contains("403"), "{e}");
        let e = sdk_error(STS, "GetCallerIdentity", service_error(None, None, 500));
        assert_eq!(e.kind, ErrorKind::Transient);
        let e = sdk_error(STS, "GetCallerIdentity", service_error(None, None, 429));
        assert_eq!(e.kind, ErrorKind::Throttled);

        let unparseable: SdkError<DescribeStacksError, HttpResponse> = SdkError::response_error(
            "bad xml",
            HttpResponse::new(
                403.try_into().unwrap(),
                SdkBody::from("<secret>AKIA...</secret>"),
            ),
        );
        let e = sdk_error(CLOUDFORMATION, "DescribeStacks", unparseable);
        assert_eq!(e.kind, ErrorKind::AccessDenied);
        assert!(!e.message.contains("secret"), "{e}");
    }

    #[test]
    fn timeouts_are_transient() {
        let e = sdk_error(
            CLOUDFORMATION,
            "DescribeStacks",
            SdkError::<DescribeStacksError, HttpResponse>::timeout_error("slow"),
        );
        assert_eq!(e.kind, ErrorKind::Transient);
    }

    #[derive(Debug)]
    struct RefusingSts;

    #[async_trait]
    impl Sts for RefusingSts {
        async fn caller_identity(&self) -> Result<CallerIdentity, AwsError> {
            unreachable!()
        }
        async fn assume_role(&self, _: &RoleRequest) -> Result<Session, AwsError> {
            Err(
                AwsError::new(ErrorKind::AccessDenied, STS, "AssumeRole", "not authorized")
                    .with_code("AccessDenied"),
            )
        }
    }

    /// A tenant whose role cannot be assumed: the CloudFormation call fails
    /// with the AssumeRole error, before any request is sent.
    #[tokio::test]
    async fn a_refused_assume_role_surfaces_as_access_denied() {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .credentials_provider(Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                None,
                None,
                "test",
            ))
            .load()
            .await;
        let connector = SdkConnector::from_config(config);
        let credentials = Arc::new(TenantCredentials::new(
            Arc::new(RefusingSts),
            RoleRequest {
                role_arn: "arn:aws:iam::222222222222:role/Deploy".parse().unwrap(),
                external_id: None,
                session_name: SessionName::sanitize("test"),
                source_identity: None,
                duration: Duration::from_secs(900),
            },
        ));
        let cfn = connector.tenant_cloudformation(credentials, Region::EuWest1);
        let e = cfn.describe_stack("docproc-storage").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::AccessDenied, "{e}");
        assert_eq!((e.service, e.operation), (STS, "AssumeRole"));
        assert_eq!(e.code.as_deref(), Some("AccessDenied"));
        assert!(e.message.contains("cloudformation DescribeStacks"), "{e}");
    }

    #[tokio::test]
    async fn from_config_keeps_given_timeouts_and_fills_the_rest() {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                None,
                None,
                "test",
            ))
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(7))
                    .build(),
            )
            .load()
            .await;
        let connector = SdkConnector::from_config(config);
        let timeouts = connector.config.timeout_config().expect("timeouts");
        assert_eq!(timeouts.operation_timeout(), Some(Duration::from_secs(7)));
        assert_eq!(timeouts.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
        let retry = connector.config.retry_config().expect("retry config");
        assert_eq!(retry.max_attempts(), MAX_ATTEMPTS);
        // The connector's Debug shows neither the config nor credentials.
        let debug = format!("{connector:?}");
        assert!(
            !debug.contains("secret") && !debug.contains("AKID"),
            "{debug}"
        );
    }

    #[test]
    fn the_retry_and_timeout_policy() {
        let retry = retry_config();
        assert_eq!(retry.max_attempts(), 5);
        assert_eq!(retry.initial_backoff(), Duration::from_millis(200));
        assert_eq!(retry.max_backoff(), Duration::from_secs(10));
        let timeouts = timeout_config();
        assert_eq!(timeouts.connect_timeout(), Some(CONNECT_TIMEOUT));
        assert_eq!(timeouts.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
        assert_eq!(timeouts.operation_timeout(), Some(OPERATION_TIMEOUT));
    }

    #[test]
    fn missing_queues_are_not_found() {
        use aws_sdk_sqs::operation::send_message::SendMessageError;
        for code in [
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
        ] {
            let error = SdkError::service_error(
                SendMessageError::generic(
                    ErrorMetadata::builder()
                        .code(code)
                        .message("The specified queue does not exist.")
                        .build(),
                ),
                HttpResponse::new(400.try_into().unwrap(), SdkBody::empty()),
            );
            let e = sdk_error(SQS, "SendMessage", error);
            assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
            assert_eq!(e.code.as_deref(), Some(code));
            assert_eq!((e.service, e.operation), ("sqs", "SendMessage"));
        }
    }

    #[test]
    fn long_polls_are_not_cut_short_by_timeouts() {
        let floor = MAX_LONG_POLL + LONG_POLL_MARGIN;
        // The standard policy: attempts already allow a long poll.
        let t = long_poll_timeouts(None);
        assert_eq!(t.connect_timeout(), Some(CONNECT_TIMEOUT));
        assert_eq!(
            t.operation_attempt_timeout(),
            Some(ATTEMPT_TIMEOUT.max(floor))
        );
        assert_eq!(t.operation_timeout(), Some(OPERATION_TIMEOUT));
        // Shorter configured timeouts are raised; unset ones stay unset.
        let short = TimeoutConfig::builder()
            .operation_timeout(Duration::from_secs(7))
            .operation_attempt_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(2))
            .build();
        let t = long_poll_timeouts(Some(&short));
        assert_eq!(t.operation_timeout(), Some(floor));
        assert_eq!(t.operation_attempt_timeout(), Some(floor));
        assert_eq!(t.read_timeout(), Some(floor));
        assert_eq!(t.connect_timeout(), None);
        let long = TimeoutConfig::builder()
            .operation_timeout(Duration::from_secs(300))
            .build();
        assert_eq!(
            long_poll_timeouts(Some(&long)).operation_timeout(),
            Some(Duration::from_secs(300))
        );
    }

    #[test]
    fn failed_batch_entries_are_summarised() {
        let e = delete_batch_error(
            2,
            5,
            "3",
            "ReceiptHandleIsInvalid",
            Some("The input receipt handle is invalid."),
        );
        assert_eq!(e.code.as_deref(), Some("ReceiptHandleIsInvalid"));
        assert_eq!((e.service, e.operation), ("sqs", "DeleteMessageBatch"));
        assert_eq!(
            e.message,
            "2 of 5 messages were not deleted; the first, entry 3, failed with ReceiptHandleIsInvalid: The input receipt handle is invalid."
        );
        let e = delete_batch_error(1, 1, "0", "InternalError", None);
        assert_eq!(e.kind, ErrorKind::Transient);
        assert!(e.message.ends_with("failed with InternalError"), "{e}");
    }

    /// Arguments out of SQS's bounds fail before credentials or the network
    /// are touched; the tenant's SQS client gets the long-poll timeouts.
    #[tokio::test]
    async fn sqs_arguments_are_checked_before_sending() {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .credentials_provider(Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                None,
                None,
                "test",
            ))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(7))
                    .build(),
            )
            .load()
            .await;
        let connector = SdkConnector::from_config(config);
        let credentials = Arc::new(TenantCredentials::new(
            Arc::new(RefusingSts),
            RoleRequest {
                role_arn: "arn:aws:iam::222222222222:role/Deploy".parse().unwrap(),
                external_id: None,
                session_name: SessionName::sanitize("test"),
                source_identity: None,
                duration: Duration::from_secs(900),
            },
        ));
        let region = Region::EuWest1;
        let shared = connector.sqs.client(&connector.config, region);
        let timeouts = shared.config().timeout_config().expect("timeouts");
        assert_eq!(
            timeouts.operation_timeout(),
            Some(MAX_LONG_POLL + LONG_POLL_MARGIN)
        );
        let sqs = connector.tenant_sqs(credentials, region);
        let queue: stacks::aws_names::QueueUrl =
            "https://sqs.eu-west-1.amazonaws.com/222222222222/q"
                .parse()
                .unwrap();
        for (max, wait) in [
            (0, Duration::ZERO),
            (11, Duration::ZERO),
            (10, Duration::from_secs(21)),
        ] {
            let e = sqs.receive_messages(&queue, max, wait).await.unwrap_err();
            assert_eq!(e.kind, ErrorKind::Validation, "{e}");
            assert_eq!((e.service, e.operation), ("sqs", "ReceiveMessage"));
        }
        let e = sqs
            .delete_messages(&queue, &vec!["h".to_owned(); 11])
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Validation, "{e}");
        sqs.delete_messages(&queue, &[]).await.unwrap();
        // Within bounds, the call is made: the refused AssumeRole surfaces.
        let e = sqs.queue_depth(&queue).await.unwrap_err();
        assert_eq!(
            (e.kind, e.operation),
            (ErrorKind::AccessDenied, "AssumeRole")
        );
        assert!(e.message.contains("sqs GetQueueAttributes"), "{e}");
    }
}
