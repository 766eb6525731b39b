//! [`Sqs`] over the SDK's SQS client, and [`SqsClients`]: one SQS client
//! per region that every tenant's calls share.
//!
//! An SDK client is about 18 KiB (its configuration and runtime plugins,
//! measured with `bench-heartbeat --sdk-clients`), so one per tenant is
//! 180 MiB at 10,000 tenants, most of the heartbeat monitor's memory. A
//! tenant's [`SdkSqs`] is instead the region's shared client and the
//! tenant's credentials provider, handed to the SDK on every call as an
//! operation-level override, with no identity cache of the SDK's
//! ([`TenantCredentials`](crate::aws::TenantCredentials) keeps and refreshes
//! the session itself).
//!
//! Fail closed: the shared clients' own credentials provider refuses, so a
//! call that somehow went out without the tenant's override could never be
//! signed with the operator's credentials and land in the vendor's account.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self, ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, QueueAttributeName};
use stacks::aws_names::QueueUrl;
use stacks::ids::Region;

use super::{MAX_LONG_POLL, MAX_SQS_BATCH, SQS, long_poll_timeouts, required, sdk_error};
use crate::aws::{AwsError, ErrorKind, ReceivedMessage, Sqs};

/// One SQS client per region, built on first use from the connector's base
/// configuration with [`long_poll_timeouts`]; they carry no usable
/// credentials of their own.
#[derive(Debug, Default)]
pub struct SqsClients(Mutex<HashMap<Region, aws_sdk_sqs::Client>>);

impl SqsClients {
    /// The shared client of `region`.
    pub fn client(&self, base: &SdkConfig, region: Region) -> aws_sdk_sqs::Client {
        let mut clients = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        clients
            .entry(region)
            .or_insert_with(|| {
                let config = aws_sdk_sqs::config::Builder::from(base)
                    .region(aws_config::Region::new(region.as_str()))
                    .credentials_provider(NoCredentials)
                    .timeout_config(long_poll_timeouts(base.timeout_config()))
                    .build();
                aws_sdk_sqs::Client::from_conf(config)
            })
            .clone()
    }
}

/// The shared clients' own credentials: none. Every call carries the
/// tenant's; one that does not fails here instead of being signed as the
/// operator.
#[derive(Debug)]
struct NoCredentials;

impl ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::ready(Err(CredentialsError::not_loaded(
            "a shared SQS client has no credentials of its own; every call must carry the tenant's",
        )))
    }
}

/// [`Sqs`] over the SDK's SQS client. Build the client with
/// [`long_poll_timeouts`] (as [`SdkConnector`](super::SdkConnector) does) so
/// long polls are not cut short.
#[derive(Clone)]
pub struct SdkSqs {
    client: aws_sdk_sqs::Client,
    /// The tenant's, given on every call; `None`: the client's own.
    credentials: Option<SharedCredentialsProvider>,
}

impl fmt::Debug for SdkSqs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdkSqs")
            .field("region", &self.client.config().region().map(|r| r.as_ref()))
            .finish_non_exhaustive()
    }
}

impl SdkSqs {
    /// Wraps a client, calling with its own credentials.
    pub fn new(client: aws_sdk_sqs::Client) -> Self {
        Self {
            client,
            credentials: None,
        }
    }

    /// A shared client ([`SqsClients`]) calling with `credentials`.
    pub fn with_credentials(
        client: aws_sdk_sqs::Client,
        credentials: SharedCredentialsProvider,
    ) -> Self {
        Self {
            client,
            credentials: Some(credentials),
        }
    }

    /// The operation-level configuration of every call: the tenant's
    /// credentials, uncached by the SDK, when there are any.
    fn per_call(&self) -> aws_sdk_sqs::config::Builder {
        let builder = aws_sdk_sqs::config::Builder::default();
        match &self.credentials {
            Some(credentials) => builder
                .credentials_provider(credentials.clone())
                .identity_cache(aws_sdk_sqs::config::IdentityCache::no_cache()),
            None => builder,
        }
    }
}

/// The bounds of [`Sqs::receive_messages`]: 1 to [`MAX_SQS_BATCH`]
/// messages, a wait of at most [`MAX_LONG_POLL`] (shared with the fake).
pub(crate) fn check_receive(max: u8, wait: Duration) -> Result<(), AwsError> {
    const OP: &str = "ReceiveMessage";
    if !(1..=MAX_SQS_BATCH).contains(&usize::from(max)) {
        return Err(AwsError::new(
            ErrorKind::Validation,
            SQS,
            OP,
            format!("MaxNumberOfMessages must be between 1 and {MAX_SQS_BATCH}, got {max}"),
        ));
    }
    if wait > MAX_LONG_POLL {
        return Err(AwsError::new(
            ErrorKind::Validation,
            SQS,
            OP,
            format!("the wait must be at most {MAX_LONG_POLL:?}, got {wait:?}"),
        ));
    }
    Ok(())
}

/// The bounds of [`Sqs::delete_messages`]: at most [`MAX_SQS_BATCH`]
/// receipt handles (shared with the fake).
pub(crate) fn check_delete(receipt_handles: &[String]) -> Result<(), AwsError> {
    if receipt_handles.len() > MAX_SQS_BATCH {
        return Err(AwsError::new(
            ErrorKind::Validation,
            SQS,
            "DeleteMessageBatch",
            format!(
                "at most {MAX_SQS_BATCH} receipt handles per batch, got {}",
                receipt_handles.len()
            ),
        ));
    }
    Ok(())
}

/// The error of a `DeleteMessageBatch` in which `failed` of `total` entries
/// failed, classified by the first failure's code (shared with the fake).
pub(crate) fn delete_batch_error(
    failed: usize,
    total: usize,
    first_id: &str,
    first_code: &str,
    first_message: Option<&str>,
) -> AwsError {
    let message = first_message.unwrap_or_default();
    let detail = if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    };
    AwsError::new(
        AwsError::classify(Some(first_code), message),
        SQS,
        "DeleteMessageBatch",
        format!(
            "{failed} of {total} messages were not deleted; the first, entry {first_id}, failed with {first_code}{detail}"
        ),
    )
    .with_code(first_code)
}

#[async_trait]
impl Sqs for SdkSqs {
    async fn send_message(&self, queue: &QueueUrl, body: &str) -> Result<(), AwsError> {
        self.client
            .send_message()
            .queue_url(queue.as_str())
            .message_body(body)
            .customize()
            .config_override(self.per_call())
            .send()
            .await
            .map_err(|e| sdk_error(SQS, "SendMessage", e))?;
        Ok(())
    }

    /// A wait that is not a whole number of seconds is rounded up.
    async fn receive_messages(
        &self,
        queue: &QueueUrl,
        max: u8,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, AwsError> {
        const OP: &str = "ReceiveMessage";
        check_receive(max, wait)?;
        let wait_seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let out = self
            .client
            .receive_message()
            .queue_url(queue.as_str())
            .max_number_of_messages(i32::from(max))
            .wait_time_seconds(i32::try_from(wait_seconds).unwrap_or(i32::MAX))
            .customize()
            .config_override(self.per_call())
            .send()
            .await
            .map_err(|e| sdk_error(SQS, OP, e))?;
        out.messages()
            .iter()
            .map(|m| {
                Ok(ReceivedMessage {
                    message_id: required(SQS, OP, "MessageId", m.message_id())?.to_owned(),
                    receipt_handle: required(SQS, OP, "ReceiptHandle", m.receipt_handle())?
                        .to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                })
            })
            .collect()
    }

    async fn delete_messages(
        &self,
        queue: &QueueUrl,
        receipt_handles: &[String],
    ) -> Result<(), AwsError> {
        const OP: &str = "DeleteMessageBatch";
        check_delete(receipt_handles)?;
        if receipt_handles.is_empty() {
            return Ok(());
        }
        let entries = receipt_handles
            .iter()
            .enumerate()
            .map(|(i, handle)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .build()
                    .map_err(|e| {
                        AwsError::new(
                            ErrorKind::Validation,
                            SQS,
                            OP,
                            format!("could not build the request: {e}"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .delete_message_batch()
            .queue_url(queue.as_str())
            .set_entries(Some(entries))
            .customize()
            .config_override(self.per_call())
            .send()
            .await
            .map_err(|e| sdk_error(SQS, OP, e))?;
        match out.failed().first() {
            None => Ok(()),
            Some(first) => Err(delete_batch_error(
                out.failed().len(),
                receipt_handles.len(),
                first.id(),
                first.code(),
                first.message(),
            )),
        }
    }

    async fn queue_depth(&self, queue: &QueueUrl) -> Result<u64, AwsError> {
        const OP: &str = "GetQueueAttributes";
        let attribute = QueueAttributeName::ApproximateNumberOfMessages;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(queue.as_str())
            .attribute_names(attribute.clone())
            .customize()
            .config_override(self.per_call())
            .send()
            .await
            .map_err(|e| sdk_error(SQS, OP, e))?;
        let value = out.attributes().and_then(|a| a.get(&attribute));
        let value = required(SQS, OP, "ApproximateNumberOfMessages", value)?;
        value.parse().map_err(|_| {
            AwsError::new(
                ErrorKind::Other,
                SQS,
                OP,
                format!("ApproximateNumberOfMessages {value:?} is not a number"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::BehaviorVersion;

    #[tokio::test]
    async fn one_client_per_region_and_it_never_signs_with_its_own_credentials() {
        // The base configuration has (operator) credentials; the shared
        // clients must not use them.
        let base = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .credentials_provider(aws_credential_types::Credentials::new(
                "AKIDOPERATOR",
                "operator-secret",
                None,
                None,
                "operator",
            ))
            .load()
            .await;
        let clients = SqsClients::default();
        let first = clients.client(&base, Region::EuWest1);
        clients.client(&base, Region::EuWest1);
        clients.client(&base, Region::UsEast1);
        assert_eq!(clients.0.lock().unwrap().len(), 2);
        assert_eq!(
            first.config().region().map(|r| r.as_ref()),
            Some("eu-west-1")
        );
        let queue: QueueUrl = "https://sqs.eu-west-1.amazonaws.com/222222222222/q"
            .parse()
            .unwrap();
        // Signed with the operator's key, the call would have gone out and
        // failed to connect; it fails for want of credentials instead.
        let e = SdkSqs::new(first).queue_depth(&queue).await.unwrap_err();
        assert!(
            e.message.contains("no credentials"),
            "not refused for want of credentials: {e}"
        );
    }
}
