//! One error type for every AWS call, classified so callers can decide
//! without parsing strings: access denied fails closed, throttling and
//! transient faults may be waited out, "no updates" is not an error at all.

use std::fmt;

/// What kind of failure an AWS call had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The principal may not do this (AccessDenied, UnauthorizedOperation,
    /// InvalidClientTokenId, ExpiredToken...). Never retried, never worked around.
    AccessDenied,
    /// The named thing does not exist.
    NotFound,
    /// Rate limited, after the SDK's own retries.
    Throttled,
    /// The request was rejected as invalid.
    Validation,
    /// CloudFormation: the template and parameters are what is deployed.
    NoUpdates,
    /// The thing already exists (or a request token was reused).
    AlreadyExists,
    /// Network, timeout or 5xx, after the SDK's own retries.
    Transient,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Whether waiting and asking again may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Throttled | ErrorKind::Transient)
    }
}

/// A failed AWS call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    /// Classification.
    pub kind: ErrorKind,
    /// `sts`, `cloudformation`, ...
    pub service: &'static str,
    /// The API operation, e.g. `AssumeRole`.
    pub operation: &'static str,
    /// The service's error code, when it sent one.
    pub code: Option<String>,
    /// The service's message (never contains credentials).
    pub message: String,
}

impl AwsError {
    /// An error of `kind` from `service`'s `operation`.
    pub fn new(
        kind: ErrorKind,
        service: &'static str,
        operation: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            service,
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

    /// Classifies a service error code and message the way AWS services
    /// report them; shared by the SDK implementation and the fakes.
    pub fn classify(code: Option<&str>, message: &str) -> ErrorKind {
        let code = code.unwrap_or_default();
        match code {
            "AccessDenied"
            | "AccessDeniedException"
            | "UnauthorizedOperation"
            | "InvalidClientTokenId"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "SignatureDoesNotMatch"
            | "UnrecognizedClientException"
            | "AuthFailure"
            | "InsufficientCapabilitiesException"
            | "403" => ErrorKind::AccessDenied,
            "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "ThrottledException" => ErrorKind::Throttled,
            "AlreadyExistsException"
            | "TokenAlreadyExistsException"
            | "ResourceExistsException"
            | "ParameterAlreadyExists" => ErrorKind::AlreadyExists,
            "ChangeSetNotFound"
            | "ChangeSetNotFoundException"
            | "StackNotFoundException"
            | "NotFound"
            | "ResourceNotFoundException"
            | "AWS.SimpleQueueService.NonExistentQueue"
            | "QueueDoesNotExist"
            | "ParameterNotFound"
            | "ParameterVersionNotFound"
            | "NotFoundException" => ErrorKind::NotFound,
            "ValidationError" if message.contains("No updates are to be performed") => {
                ErrorKind::NoUpdates
            }
            "ValidationError" if message.contains("does not exist") => ErrorKind::NotFound,
            "ValidationError"
            | "ValidationException"
            | "InvalidParameterValue"
            | "InvalidParameterCombination"
            | "MalformedPolicyDocument"
            | "InvalidParameterException"
            | "InvalidRequestException"
            | "InvalidCiphertextException"
            | "IncorrectKeyException" => ErrorKind::Validation,
            // S3 (and S3's view of KMS).
            "NoSuchBucket" | "NoSuchKey" => ErrorKind::NotFound,
            "InvalidAccessKeyId" | "InvalidToken" | "AllAccessDisabled" => ErrorKind::AccessDenied,
            "SlowDown" => ErrorKind::Throttled,
            "PermanentRedirect"
            | "TemporaryRedirect"
            | "AuthorizationHeaderMalformed"
            | "IllegalLocationConstraintException" => ErrorKind::Validation,
            kms if kms.starts_with("KMS.") => ErrorKind::AccessDenied,
            "InternalFailure" | "ServiceUnavailable" | "InternalError" | "RequestTimeout"
            | "500" | "502" | "503" | "504" => ErrorKind::Transient,
            _ => ErrorKind::Other,
        }
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} failed", self.service, self.operation)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for AwsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(
            AwsError::classify(Some("AccessDenied"), ""),
            ErrorKind::AccessDenied
        );
        assert_eq!(
            AwsError::classify(Some("ValidationError"), "No updates are to be performed."),
            ErrorKind::NoUpdates
        );
        assert_eq!(
            AwsError::classify(Some("ValidationError"), "Stack with id x does not exist"),
            ErrorKind::NotFound
        );
        assert_eq!(
            AwsError::classify(Some("ValidationError"), "bad template"),
            ErrorKind::Validation
        );
        assert_eq!(
            AwsError::classify(Some("Throttling"), "Rate exceeded"),
            ErrorKind::Throttled
        );
        assert!(ErrorKind::Throttled.is_retryable() && !ErrorKind::AccessDenied.is_retryable());
        // Secrets Manager, SSM and KMS.
        for (code, kind) in [
            ("ResourceExistsException", ErrorKind::AlreadyExists),
            ("ParameterAlreadyExists", ErrorKind::AlreadyExists),
            ("ResourceNotFoundException", ErrorKind::NotFound),
            ("ParameterNotFound", ErrorKind::NotFound),
            ("ParameterVersionNotFound", ErrorKind::NotFound),
            ("NotFoundException", ErrorKind::NotFound),
            ("InvalidCiphertextException", ErrorKind::Validation),
            ("IncorrectKeyException", ErrorKind::Validation),
            ("InvalidRequestException", ErrorKind::Validation),
        ] {
            assert_eq!(AwsError::classify(Some(code), ""), kind, "{code}");
        }
    }

    #[test]
    fn s3_classification() {
        for (code, kind) in [
            ("NoSuchBucket", ErrorKind::NotFound),
            ("NoSuchKey", ErrorKind::NotFound),
            ("InvalidAccessKeyId", ErrorKind::AccessDenied),
            ("SignatureDoesNotMatch", ErrorKind::AccessDenied),
            ("AuthorizationHeaderMalformed", ErrorKind::Validation),
            ("PermanentRedirect", ErrorKind::Validation),
            ("KMS.DisabledException", ErrorKind::AccessDenied),
            ("KMS.NotFoundException", ErrorKind::AccessDenied),
            ("SlowDown", ErrorKind::Throttled),
        ] {
            assert_eq!(AwsError::classify(Some(code), ""), kind, "{code}");
        }
    }
}
