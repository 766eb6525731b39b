//! The seam between the agent and SQS: the [`Queues`] trait covers exactly
//! the calls the agent makes (receive pings, send pongs, delete pings, read
//! two queue depths), with one classified error type, [`QueueError`].
//!
//! [`crate::sqs::SqsQueues`] implements it on `aws-sdk-sqs`;
//! [`crate::fake::FakeQueues`] in memory, for tests.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

/// Most messages one `ReceiveMessage` (and one `DeleteMessageBatch`) takes.
pub const MAX_BATCH: usize = 10;

/// Longest long poll SQS allows.
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// Longest visibility timeout SQS allows (12 hours).
pub const MAX_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(12 * 3600);

/// A message taken from a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// SQS message id (for logs).
    pub message_id: String,
    /// Handle to delete it with; valid until its visibility timeout ends.
    pub receipt_handle: String,
    /// The body (empty if SQS sent none).
    pub body: String,
}

/// The SQS calls the agent makes. Queues are named by URL; every call is on
/// the account and region of the implementation's credentials.
#[async_trait]
pub trait Queues: Send + Sync + fmt::Debug {
    /// `ReceiveMessage`: up to `max` (1 to [`MAX_BATCH`]) messages,
    /// long-polling up to `wait` (at most [`MAX_WAIT`]); the messages stay
    /// hidden from other receivers for `visibility_timeout`.
    async fn receive(
        &self,
        queue_url: &str,
        max: usize,
        wait: Duration,
        visibility_timeout: Duration,
    ) -> Result<Vec<Message>, QueueError>;

    /// `SendMessage`.
    async fn send(&self, queue_url: &str, body: &str) -> Result<(), QueueError>;

    /// `DeleteMessageBatch` of up to [`MAX_BATCH`] receipt handles. If some
    /// entries fail the whole call is an error (deleting again with a handle
    /// that already worked is harmless, so the caller may simply retry).
    async fn delete_batch(
        &self,
        queue_url: &str,
        receipt_handles: &[String],
    ) -> Result<(), QueueError>;

    /// `GetQueueAttributes` `ApproximateNumberOfMessages`: messages waiting.
    async fn approximate_depth(&self, queue_url: &str) -> Result<u64, QueueError>;
}

/// What kind of failure an SQS call had; decides how loudly it is logged.
/// The agent retries every kind: a denied policy may be fixed, a deleted
/// queue recreated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The principal may not do this (AccessDenied, KMS access denied,
    /// InvalidClientTokenId, ExpiredToken, a bare HTTP 403...).
    AccessDenied,
    /// No usable credentials (none found, or the role could not be assumed).
    Credentials,
    /// The queue does not exist (or is in another account or region).
    NotFound,
    /// Rate limited, after the SDK's own retries.
    Throttled,
    /// Network failure, timeout or 5xx, after the SDK's own retries.
    Transient,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Whether this needs a human (a policy, a role, a queue URL) rather
    /// than time.
    pub fn needs_attention(self) -> bool {
        matches!(
            self,
            ErrorKind::AccessDenied | ErrorKind::Credentials | ErrorKind::NotFound
        )
    }

    /// Classifies an SQS (or STS, or KMS) error code.
    pub fn from_code(code: &str) -> Self {
        match code {
            "AccessDenied"
            | "AccessDeniedException"
            | "KMS.AccessDeniedException"
            | "KmsAccessDenied"
            | "UnauthorizedOperation"
            | "InvalidClientTokenId"
            | "InvalidSecurity"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "SignatureDoesNotMatch"
            | "UnrecognizedClientException"
            | "MissingAuthenticationToken"
            | "IncompleteSignature"
            | "403" => ErrorKind::AccessDenied,
            "AWS.SimpleQueueService.NonExistentQueue"
            | "QueueDoesNotExist"
            | "NonExistentQueue" => ErrorKind::NotFound,
            "Throttling"
            | "ThrottlingException"
            | "RequestThrottled"
            | "OverLimit"
            | "KMS.ThrottlingException"
            | "KmsThrottled"
            | "429" => ErrorKind::Throttled,
            "InternalFailure" | "InternalError" | "ServiceUnavailable" | "RequestTimeout"
            | "500" | "502" | "503" | "504" => ErrorKind::Transient,
            _ => ErrorKind::Other,
        }
    }

    /// Classifies a response by its HTTP status alone.
    pub fn from_status(status: u16) -> Self {
        match status {
            401 | 403 => ErrorKind::AccessDenied,
            429 => ErrorKind::Throttled,
            500..=599 => ErrorKind::Transient,
            _ => ErrorKind::Other,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            ErrorKind::AccessDenied => "access denied",
            ErrorKind::Credentials => "no credentials",
            ErrorKind::NotFound => "not found",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Transient => "transient",
            ErrorKind::Other => "other",
        })
    }
}

/// A failed SQS call. Never carries credentials or raw response bodies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SQS {operation} failed ({kind}{}): {message}", code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
pub struct QueueError {
    /// Classification.
    pub kind: ErrorKind,
    /// The API operation, e.g. `ReceiveMessage`.
    pub operation: &'static str,
    /// The service's error code, when it sent one.
    pub code: Option<String>,
    /// What went wrong.
    pub message: String,
}

impl QueueError {
    /// An error of `kind` from `operation`.
    pub fn new(kind: ErrorKind, operation: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            operation,
            code: None,
            message: message.into(),
        }
    }

    /// With the service's error code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        assert_eq!(
            ErrorKind::from_code("AccessDenied"),
            ErrorKind::AccessDenied
        );
        assert_eq!(
            ErrorKind::from_code("KMS.AccessDeniedException"),
            ErrorKind::AccessDenied
        );
        assert_eq!(
            ErrorKind::from_code("AWS.SimpleQueueService.NonExistentQueue"),
            ErrorKind::NotFound
        );
        assert_eq!(
            ErrorKind::from_code("QueueDoesNotExist"),
            ErrorKind::NotFound
        );
        assert_eq!(
            ErrorKind::from_code("RequestThrottled"),
            ErrorKind::Throttled
        );
        assert_eq!(ErrorKind::from_code("InternalError"), ErrorKind::Transient);
        assert_eq!(
            ErrorKind::from_code("InvalidParameterValue"),
            ErrorKind::Other
        );
        assert_eq!(ErrorKind::from_status(403), ErrorKind::AccessDenied);
        assert_eq!(ErrorKind::from_status(503), ErrorKind::Transient);
        assert_eq!(ErrorKind::from_status(429), ErrorKind::Throttled);
        assert_eq!(ErrorKind::from_status(400), ErrorKind::Other);
        assert!(ErrorKind::AccessDenied.needs_attention());
        assert!(!ErrorKind::Transient.needs_attention());
    }

    #[test]
    fn errors_display_operation_kind_and_code() {
        let e = QueueError::new(ErrorKind::AccessDenied, "SendMessage", "not allowed")
            .with_code("AccessDenied");
        assert_eq!(
            e.to_string(),
            "SQS SendMessage failed (access denied, AccessDenied): not allowed"
        );
        let e = QueueError::new(ErrorKind::Transient, "ReceiveMessage", "timed out");
        assert_eq!(
            e.to_string(),
            "SQS ReceiveMessage failed (transient): timed out"
        );
    }
}
