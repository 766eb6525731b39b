//! The seam between the coordinator and AWS: small traits over exactly the
//! STS, CloudFormation and SQS calls the coordinator makes (and, in
//! [`secrets`], the Secrets Manager, SSM and KMS calls of the secret
//! stores), with typed requests
//! and replies, one classified error type, an SDK implementation
//! ([`sdk`]) and an in-memory fake ([`fake`]) for tests and benchmarks.
//!
//! Nothing above this module sees an SDK type. Retries of single calls are
//! the SDK's job (configured once in [`sdk`]); waiting for stack operations to
//! settle is the caller's, with `backon`.
//!
//! Credentials for a tenant are obtained by [`credentials::TenantCredentials`]
//! (AssumeRole with the tenant's ExternalId, cached, refreshed before expiry)
//! and handed to a [`Connector`], which builds the tenant's clients.

pub mod bedrock;
pub mod credentials;
pub mod error;
pub mod fake;
pub mod s3;
pub mod sdk;
pub mod secrets;
pub mod status;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Serialize;
use stacks::Parameter;
use stacks::aws_names::QueueUrl;
use stacks::ids::{AccountId, ExternalId, Region, RoleArn};

pub use bedrock::Bedrock;
pub use credentials::TenantCredentials;
pub use error::{AwsError, ErrorKind};
pub use s3::{S3, S3Access, S3Credentials};
pub use secrets::{ClientScope, Kms, ParameterStore, SecretsManager};
pub use status::{ChangeSetStatus, Sentiment, StackStatus};

/// Who a set of credentials belongs to (`GetCallerIdentity`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallerIdentity {
    /// The account.
    pub account: AccountId,
    /// The principal's ARN, e.g. `arn:aws:sts::1:assumed-role/R/session`.
    pub arn: String,
    /// The unique id of the principal.
    pub user_id: String,
}

/// A value allowed as `RoleSessionName` or `SourceIdentity`: 2 to 64
/// characters from `A-Za-z0-9+=,.@-_`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionName(String);

impl SessionName {
    /// Builds a valid session name from any text: disallowed characters
    /// become `-`, the result is cut to 64 characters and padded to 2.
    pub fn sanitize(text: &str) -> Self {
        let mut name: String = text
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .take(64)
            .collect();
        while name.len() < 2 {
            name.push('-');
        }
        Self(name)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// An `AssumeRole` request.
#[derive(Debug, Clone)]
pub struct RoleRequest {
    /// The role to assume.
    pub role_arn: RoleArn,
    /// The ExternalId to present; `None` only when verifying that the role
    /// refuses a request without one.
    pub external_id: Option<ExternalId>,
    /// Session name; shows in the customer's CloudTrail.
    pub session_name: SessionName,
    /// The operator's identity, carried into the customer's CloudTrail.
    pub source_identity: Option<SessionName>,
    /// Requested session length.
    pub duration: Duration,
}

/// Temporary credentials from `AssumeRole`. `Debug` shows only the key id.
#[derive(Clone)]
pub struct Session {
    /// Access key id (not secret).
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: SecretString,
    /// Session token.
    pub session_token: SecretString,
    /// When they stop working.
    pub expiration: DateTime<Utc>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &"<redacted>")
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// The STS calls the coordinator makes.
#[async_trait]
pub trait Sts: Send + Sync + fmt::Debug {
    /// `GetCallerIdentity` with this client's credentials.
    async fn caller_identity(&self) -> Result<CallerIdentity, AwsError>;
    /// `AssumeRole` with this client's credentials.
    async fn assume_role(&self, request: &RoleRequest) -> Result<Session, AwsError>;
}

/// A stack as `DescribeStacks` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackDescription {
    /// The stack's ARN.
    pub stack_id: String,
    /// Its name.
    pub name: String,
    /// Status.
    pub status: StackStatus,
    /// Why it is in that status, when CloudFormation says.
    pub status_reason: Option<String>,
    /// Parameters as deployed (NoEcho values come back masked).
    pub parameters: BTreeMap<String, String>,
    /// Outputs.
    pub outputs: BTreeMap<String, String>,
    /// Stack tags.
    pub tags: BTreeMap<String, String>,
}

/// CloudFormation capabilities we acknowledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StackCapability {
    /// `CAPABILITY_IAM`: the stack creates IAM resources with generated names.
    Iam,
    /// `CAPABILITY_NAMED_IAM`: the stack creates named IAM resources.
    NamedIam,
}

impl StackCapability {
    /// The AWS spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StackCapability::Iam => "CAPABILITY_IAM",
            StackCapability::NamedIam => "CAPABILITY_NAMED_IAM",
        }
    }
}

/// A `CreateStack` request.
#[derive(Debug, Clone)]
pub struct CreateStack {
    /// Stack name.
    pub name: String,
    /// Template text (the canonical form, so the hash matches).
    pub template_body: String,
    /// Parameters.
    pub parameters: Vec<Parameter>,
    /// Stack tags.
    pub tags: BTreeMap<String, String>,
    /// The execution role CloudFormation assumes.
    pub role_arn: Option<RoleArn>,
    /// Acknowledged capabilities.
    pub capabilities: Vec<StackCapability>,
    /// Idempotency token: retries with the same token are the same request.
    pub client_request_token: String,
}

/// A `CreateChangeSet` request for an existing stack (type `UPDATE`).
#[derive(Debug, Clone)]
pub struct CreateChangeSet {
    /// The stack.
    pub stack_name: String,
    /// The change set's name.
    pub change_set_name: String,
    /// New template text.
    pub template_body: String,
    /// New parameters.
    pub parameters: Vec<Parameter>,
    /// New stack tags.
    pub tags: BTreeMap<String, String>,
    /// The execution role.
    pub role_arn: Option<RoleArn>,
    /// Acknowledged capabilities.
    pub capabilities: Vec<StackCapability>,
    /// Idempotency token.
    pub client_token: String,
}

/// What a change set would do to one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceChange {
    /// `Add`, `Modify`, `Remove`, `Import`, `Dynamic`.
    pub action: String,
    /// Logical id in the template.
    pub logical_id: String,
    /// Resource type, e.g. `AWS::S3::Bucket`.
    pub resource_type: String,
    /// `True`, `False`, `Conditional`, or `None` when not reported.
    pub replacement: Option<String>,
}

/// A change set as `DescribeChangeSet` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeSetDescription {
    /// Creation status.
    pub status: ChangeSetStatus,
    /// `AVAILABLE`, `UNAVAILABLE`, `EXECUTE_COMPLETE`, ...
    pub execution_status: Option<String>,
    /// Why it is in that status.
    pub status_reason: Option<String>,
    /// The changes.
    pub changes: Vec<ResourceChange>,
}

impl ChangeSetDescription {
    /// CloudFormation's way of saying the change set changes nothing.
    pub fn is_empty_change(&self) -> bool {
        self.status == ChangeSetStatus::Failed
            && self.status_reason.as_deref().is_some_and(|r| {
                r.contains("didn't contain changes") || r.contains("No updates are to be performed")
            })
    }
}

/// One stack event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackEvent {
    /// Unique id; events are deduplicated on it.
    pub event_id: String,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// Logical id of the resource (the stack name for stack events).
    pub logical_id: String,
    /// Resource type.
    pub resource_type: String,
    /// Resource status, e.g. `CREATE_FAILED`.
    pub status: String,
    /// Why.
    pub reason: Option<String>,
}

/// The CloudFormation calls the coordinator makes, on one account and region.
#[async_trait]
pub trait CloudFormation: Send + Sync + fmt::Debug {
    /// `DescribeStacks` for one stack; `None` if it does not exist.
    async fn describe_stack(&self, name: &str) -> Result<Option<StackDescription>, AwsError>;
    /// `CreateStack`; returns the stack id.
    async fn create_stack(&self, request: &CreateStack) -> Result<String, AwsError>;
    /// `CreateChangeSet` (type `UPDATE`); returns the change set id.
    async fn create_change_set(&self, request: &CreateChangeSet) -> Result<String, AwsError>;
    /// `DescribeChangeSet` (first page of changes).
    async fn describe_change_set(
        &self,
        stack: &str,
        change_set: &str,
    ) -> Result<ChangeSetDescription, AwsError>;
    /// `ExecuteChangeSet`.
    async fn execute_change_set(
        &self,
        stack: &str,
        change_set: &str,
        token: &str,
    ) -> Result<(), AwsError>;
    /// `DeleteChangeSet`.
    async fn delete_change_set(&self, stack: &str, change_set: &str) -> Result<(), AwsError>;
    /// `DeleteStack`.
    async fn delete_stack(
        &self,
        stack: &str,
        role_arn: Option<&RoleArn>,
        token: &str,
    ) -> Result<(), AwsError>;
    /// `ContinueUpdateRollback`, skipping the named resources.
    async fn continue_update_rollback(
        &self,
        stack: &str,
        skip_resources: &[String],
        role_arn: Option<&RoleArn>,
        token: &str,
    ) -> Result<(), AwsError>;
    /// `DescribeStackEvents`, newest first (first page).
    async fn stack_events(&self, stack: &str) -> Result<Vec<StackEvent>, AwsError>;
}

/// A message taken from a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// SQS message id.
    pub message_id: String,
    /// Handle to delete it with.
    pub receipt_handle: String,
    /// The body.
    pub body: String,
}

/// The SQS calls the coordinator makes, on one account and region (always
/// through the tenant's role: queues are never reached across accounts).
#[async_trait]
pub trait Sqs: Send + Sync + fmt::Debug {
    /// `SendMessage`.
    async fn send_message(&self, queue: &QueueUrl, body: &str) -> Result<(), AwsError>;
    /// `ReceiveMessage`: up to `max` (1 to 10) messages, long-polling up to
    /// `wait` (at most 20 s).
    async fn receive_messages(
        &self,
        queue: &QueueUrl,
        max: u8,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, AwsError>;
    /// `DeleteMessageBatch` of up to 10 receipt handles; individual failures
    /// are reported as an error naming how many failed.
    async fn delete_messages(
        &self,
        queue: &QueueUrl,
        receipt_handles: &[String],
    ) -> Result<(), AwsError>;
    /// `GetQueueAttributes` `ApproximateNumberOfMessages`.
    async fn queue_depth(&self, queue: &QueueUrl) -> Result<u64, AwsError>;
}

/// Builds clients. The SDK connector talks to AWS (or whatever
/// `AWS_ENDPOINT_URL` points at); the fake connector to in-memory accounts.
pub trait Connector: Send + Sync + fmt::Debug {
    /// STS with the operator's own credentials (the default chain).
    fn operator_sts(&self) -> Arc<dyn Sts>;
    /// STS acting as a tenant, with credentials from `credentials`.
    fn tenant_sts(&self, credentials: Arc<TenantCredentials>, region: Region) -> Arc<dyn Sts>;
    /// CloudFormation in a tenant's account and region.
    fn tenant_cloudformation(
        &self,
        credentials: Arc<TenantCredentials>,
        region: Region,
    ) -> Arc<dyn CloudFormation>;
    /// SQS in a tenant's account and region.
    fn tenant_sqs(&self, credentials: Arc<TenantCredentials>, region: Region) -> Arc<dyn Sqs>;
    /// S3 as `access` says: the tenant's role or a static key, a region,
    /// an optional S3-compatible endpoint.
    fn s3(&self, access: &S3Access) -> Arc<dyn S3>;
    /// Bedrock (control plane) in a tenant's account and region.
    fn tenant_bedrock(
        &self,
        credentials: Arc<TenantCredentials>,
        region: Region,
    ) -> Arc<dyn Bedrock>;
    /// Secrets Manager in the vendor's or a tenant's account.
    fn secrets_manager(&self, scope: &ClientScope) -> Arc<dyn SecretsManager>;
    /// SSM Parameter Store in the vendor's or a tenant's account.
    fn parameter_store(&self, scope: &ClientScope) -> Arc<dyn ParameterStore>;
    /// KMS in the vendor's or a tenant's account.
    fn kms(&self, scope: &ClientScope) -> Arc<dyn Kms>;
}
