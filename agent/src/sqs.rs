//! [`Queues`] on `aws-sdk-sqs`.
//!
//! Build it from the worker's own [`SdkConfig`] (region, credentials,
//! endpoint). The SDK's retries stay as configured; its timeouts are raised
//! where needed so a 20-second long poll fits, and set where missing so a
//! wedged connection cannot hang the agent.
//!
//! Errors are classified into [`ErrorKind`]s; their messages never include
//! raw response bodies or credentials.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, QueueAttributeName};

use crate::queues::{ErrorKind, MAX_BATCH, MAX_WAIT, Message, QueueError, Queues};

/// Shortest read and attempt timeout the client gets: a long poll plus
/// margin.
pub const MIN_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Operation timeout (all SDK retries included) when the config sets none.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(90);

/// The agent's SQS client.
#[derive(Clone)]
pub struct SqsQueues {
    client: aws_sdk_sqs::Client,
}

impl fmt::Debug for SqsQueues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the client: its config holds the credentials provider.
        f.debug_struct("SqsQueues").finish_non_exhaustive()
    }
}

impl SqsQueues {
    /// A client for `config`'s account and region, with timeouts adjusted by
    /// [`timeout_config`].
    pub fn new(config: &SdkConfig) -> Self {
        let sqs_config = aws_sdk_sqs::config::Builder::from(config)
            .timeout_config(timeout_config(config.timeout_config()))
            .build();
        Self {
            client: aws_sdk_sqs::Client::from_conf(sqs_config),
        }
    }

    /// Wraps an existing client as is (its timeouts must allow a 20-second
    /// long poll).
    pub fn from_client(client: aws_sdk_sqs::Client) -> Self {
        Self { client }
    }
}

/// `given` with read and attempt timeouts of at least
/// [`MIN_ATTEMPT_TIMEOUT`] and an operation timeout of at least that (or
/// [`DEFAULT_OPERATION_TIMEOUT`] if none was set). The connect timeout is
/// kept.
pub fn timeout_config(given: Option<&TimeoutConfig>) -> TimeoutConfig {
    let at_least = |d: Option<Duration>| d.map(|d| d.max(MIN_ATTEMPT_TIMEOUT));
    let mut builder = TimeoutConfig::builder();
    if let Some(connect) = given.and_then(TimeoutConfig::connect_timeout) {
        builder = builder.connect_timeout(connect);
    }
    if let Some(read) = at_least(given.and_then(TimeoutConfig::read_timeout)) {
        builder = builder.read_timeout(read);
    }
    let attempt = at_least(given.and_then(TimeoutConfig::operation_attempt_timeout))
        .unwrap_or(MIN_ATTEMPT_TIMEOUT);
    let operation = at_least(given.and_then(TimeoutConfig::operation_timeout))
        .unwrap_or(DEFAULT_OPERATION_TIMEOUT);
    builder
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation.max(attempt))
        .build()
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

#[async_trait]
impl Queues for SqsQueues {
    async fn receive(
        &self,
        queue_url: &str,
        max: usize,
        wait: Duration,
        visibility_timeout: Duration,
    ) -> Result<Vec<Message>, QueueError> {
        const OP: &str = "ReceiveMessage";
        let max = max.clamp(1, MAX_BATCH);
        let output = self
            .client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(i32::try_from(max).unwrap_or(10))
            .wait_time_seconds(seconds(wait.min(MAX_WAIT)))
            .visibility_timeout(seconds(visibility_timeout))
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        let mut messages = Vec::new();
        for m in output.messages.unwrap_or_default() {
            let Some(receipt_handle) = m.receipt_handle else {
                // Cannot be deleted; it comes back after its timeout.
                tracing::warn!(message_id = ?m.message_id, "received a message without a receipt handle");
                continue;
            };
            messages.push(Message {
                message_id: m.message_id.unwrap_or_default(),
                receipt_handle,
                body: m.body.unwrap_or_default(),
            });
        }
        Ok(messages)
    }

    async fn send(&self, queue_url: &str, body: &str) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| sdk_error("SendMessage", e))?;
        Ok(())
    }

    async fn delete_batch(
        &self,
        queue_url: &str,
        receipt_handles: &[String],
    ) -> Result<(), QueueError> {
        const OP: &str = "DeleteMessageBatch";
        if receipt_handles.is_empty() {
            return Ok(());
        }
        if receipt_handles.len() > MAX_BATCH {
            return Err(QueueError::new(
                ErrorKind::Other,
                OP,
                format!(
                    "{} entries, at most {MAX_BATCH} allowed",
                    receipt_handles.len()
                ),
            ));
        }
        let entries = receipt_handles
            .iter()
            .enumerate()
            .map(|(i, handle)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .build()
                    .map_err(|e| QueueError::new(ErrorKind::Other, OP, format!("bad entry: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        let failed = output.failed();
        match failed.first() {
            None => Ok(()),
            Some(first) => {
                let kind = if first.sender_fault {
                    ErrorKind::from_code(&first.code)
                } else {
                    ErrorKind::Transient
                };
                Err(QueueError::new(
                    kind,
                    OP,
                    format!(
                        "{} of {} entries failed, e.g. {}",
                        failed.len(),
                        receipt_handles.len(),
                        first.message.as_deref().unwrap_or(&first.code)
                    ),
                )
                .with_code(first.code.clone()))
            }
        }
    }

    async fn approximate_depth(&self, queue_url: &str) -> Result<u64, QueueError> {
        const OP: &str = "GetQueueAttributes";
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|e| sdk_error(OP, e))?;
        let value = output
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
            .ok_or_else(|| {
                QueueError::new(
                    ErrorKind::Other,
                    OP,
                    "no ApproximateNumberOfMessages in the response",
                )
            })?;
        value.parse().map_err(|_| {
            QueueError::new(
                ErrorKind::Other,
                OP,
                format!("ApproximateNumberOfMessages {value:?} is not a count"),
            )
        })
    }
}

/// Classifies an SDK error:
///
/// - a credentials failure (none found, AssumeRole refused) is
///   [`ErrorKind::Credentials`], or transient if the provider timed out;
/// - timeouts and dispatch failures are transient;
/// - service errors are classified by code, or by HTTP status without one
///   (moto sends some auth errors in a body the SDK cannot parse).
fn sdk_error<E>(operation: &'static str, error: SdkError<E, HttpResponse>) -> QueueError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    if let Some(cause) = find_in_chain::<CredentialsError>(&error) {
        let kind = match cause {
            CredentialsError::ProviderTimedOut(_) => ErrorKind::Transient,
            _ => ErrorKind::Credentials,
        };
        // Only the top-level text: deeper sources may quote config files.
        return QueueError::new(kind, operation, format!("no credentials: {cause}"));
    }
    let status = error.raw_response().map(|r| r.status().as_u16());
    match &error {
        SdkError::TimeoutError(_) => QueueError::new(ErrorKind::Transient, operation, "timed out"),
        SdkError::DispatchFailure(failure) => {
            let message = match failure.as_connector_error() {
                Some(connector) => format!("request failed: {}", DisplayErrorContext(connector)),
                None => "request failed".to_owned(),
            };
            QueueError::new(ErrorKind::Transient, operation, message)
        }
        SdkError::ConstructionFailure(_) => QueueError::new(
            ErrorKind::Other,
            operation,
            format!(
                "could not build the request: {}",
                DisplayErrorContext(&error)
            ),
        ),
        SdkError::ServiceError(_) => {
            let code = error.code();
            let kind = match (code, status) {
                (Some(code), _) => ErrorKind::from_code(code),
                (None, Some(status)) => ErrorKind::from_status(status),
                (None, None) => ErrorKind::Other,
            };
            let message = match (error.message(), status) {
                (Some(m), _) if !m.is_empty() => m.to_owned(),
                (_, Some(status)) => format!("HTTP {status} without an error message"),
                _ => "no error message".to_owned(),
            };
            let e = QueueError::new(kind, operation, message);
            match code {
                Some(code) => e.with_code(code),
                None => e,
            }
        }
        // A response the SDK could not parse; its body is not shown.
        _ => {
            let kind = status
                .map(ErrorKind::from_status)
                .unwrap_or(ErrorKind::Other);
            let message = match status {
                Some(status) => format!("unparseable response with HTTP status {status}"),
                None => "unparseable response".to_owned(),
            };
            QueueError::new(kind, operation, message)
        }
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
    use aws_sdk_sqs::error::ErrorMetadata;
    use aws_sdk_sqs::operation::send_message::SendMessageError;
    use aws_smithy_types::body::SdkBody;

    fn service_error(
        code: Option<&str>,
        message: Option<&str>,
        status: u16,
    ) -> SdkError<SendMessageError, HttpResponse> {
        let mut meta = ErrorMetadata::builder();
        if let Some(code) = code {
            meta = meta.code(code);
        }
        if let Some(message) = message {
            meta = meta.message(message);
        }
        SdkError::service_error(
            SendMessageError::generic(meta.build()),
            HttpResponse::new(status.try_into().unwrap(), SdkBody::empty()),
        )
    }

    #[test]
    fn service_errors_are_classified_by_code() {
        let e = sdk_error(
            "SendMessage",
            service_error(Some("AccessDenied"), Some("no sqs:SendMessage"), 400),
        );
        assert_eq!(e.kind, ErrorKind::AccessDenied);
        assert_eq!(e.code.as_deref(), Some("AccessDenied"));
        assert_eq!(e.message, "no sqs:SendMessage");
        assert_eq!(e.operation, "SendMessage");
        let e = sdk_error(
            "SendMessage",
            service_error(Some("AWS.SimpleQueueService.NonExistentQueue"), None, 400),
        );
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(e.message.contains("400"), "{e}");
    }

    #[test]
    fn errors_without_a_code_are_classified_by_status_and_hide_the_body() {
        let e = sdk_error("SendMessage", service_error(None, None, 403));
        assert_eq!(e.kind, ErrorKind::AccessDenied);
        let unparseable: SdkError<SendMessageError, HttpResponse> = SdkError::response_error(
            "bad xml",
            HttpResponse::new(
                403.try_into().unwrap(),
                SdkBody::from("<secret>AKIA...</secret>"),
            ),
        );
        let e = sdk_error("SendMessage", unparseable);
        assert_eq!(e.kind, ErrorKind::AccessDenied);
        assert!(!e.message.contains("secret"), "{e}");
        let e = sdk_error(
            "SendMessage",
            SdkError::<SendMessageError, HttpResponse>::timeout_error("slow"),
        );
        assert_eq!(e.kind, ErrorKind::Transient);
    }

    #[test]
    fn timeouts_leave_room_for_a_long_poll() {
        let t = timeout_config(None);
        assert_eq!(t.operation_attempt_timeout(), Some(MIN_ATTEMPT_TIMEOUT));
        assert_eq!(t.operation_timeout(), Some(DEFAULT_OPERATION_TIMEOUT));
        assert_eq!(t.read_timeout(), None);

        let given = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(2))
            .read_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(10))
            .operation_timeout(Duration::from_secs(20))
            .build();
        let t = timeout_config(Some(&given));
        assert_eq!(t.connect_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(t.read_timeout(), Some(MIN_ATTEMPT_TIMEOUT));
        assert_eq!(t.operation_attempt_timeout(), Some(MIN_ATTEMPT_TIMEOUT));
        assert_eq!(t.operation_timeout(), Some(MIN_ATTEMPT_TIMEOUT));

        let generous = TimeoutConfig::builder()
            .operation_timeout(Duration::from_secs(300))
            .build();
        assert_eq!(
            timeout_config(Some(&generous)).operation_timeout(),
            Some(Duration::from_secs(300))
        );
    }
}
