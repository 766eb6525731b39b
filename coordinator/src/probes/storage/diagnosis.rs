//! From a failed S3 call of the storage probe to a [`ProbeError`]: which
//! `storage.*` code, what happened in words, and what to do, naming the
//! permission that is missing and the principal that lacks it.
//!
//! Decided by the S3 error code first (`NoSuchBucket`, `PermanentRedirect`,
//! `InvalidAccessKeyId`, `KMS.*`, ...), then by what the message says (KMS
//! actions, TLS), then by the error's kind and the step that failed. A bare
//! 403 without a code (what moto sends for a Deny statement, and S3 for a
//! `HEAD`) is access denied for that step.
//!
//! What this module must never do: quote anything but the service's error
//! code and message (which never hold credentials) and the configuration's
//! names.

use stacks::aws_names::BucketName;
use stacks::ids::{Region, TenantId};

use super::{ADMIN_DOC, Principal, code};
use crate::access::AccessError;
use crate::aws::{AwsError, ErrorKind};
use crate::probes::ProbeError;

/// Which call of the probe failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Writing the canary.
    Put,
    /// Reading it back.
    Get,
    /// Deleting it.
    Delete,
    /// Confirming it is gone (`HeadObject`).
    Confirm,
}

impl Step {
    fn action(self) -> &'static str {
        match self {
            Step::Put => "s3:PutObject",
            Step::Get => "s3:GetObject",
            Step::Delete => "s3:DeleteObject",
            Step::Confirm => "s3:ListBucket",
        }
    }

    fn doing(self) -> &'static str {
        match self {
            Step::Put => "writing the canary object",
            Step::Get => "reading the canary object back",
            Step::Delete => "deleting the canary object",
            Step::Confirm => "confirming the canary object is gone",
        }
    }
}

/// What the messages name.
#[derive(Debug)]
pub(super) struct Context<'a> {
    pub tenant: &'a TenantId,
    pub bucket: &'a BucketName,
    pub region: Region,
    pub endpoint: Option<&'a str>,
    pub plain_http: bool,
    pub kms_key: Option<&'a str>,
    pub principal: &'a Principal,
    pub key: &'a str,
}

impl Context<'_> {
    fn where_(&self) -> String {
        match self.endpoint {
            Some(endpoint) => format!("bucket `{}` at {endpoint}", self.bucket),
            None => format!("bucket `{}` ({})", self.bucket, self.region),
        }
    }
}

/// What to do when AWS refuses the tenant's role.
const ROLE_REFUSED_REMEDY: &str = "the customer may have deleted or changed the docproc-bootstrap stack, or the tenant's external_id in deploy.toml is wrong: ask the customer to check the bootstrap stack (docs/runbooks/onboarding.md), then run the check again";

/// The probe error when the tenant's role session cannot be had (before
/// any S3 call): refused, landing in another account, or unreachable.
pub(super) fn role_unusable(tenant: &TenantId, e: &AccessError) -> ProbeError {
    if matches!(e, AccessError::WrongAccount { .. }) {
        ProbeError::new(
            code::INVALID_CREDENTIALS,
            format!("tenant `{tenant}`'s storage was not touched ({e})"),
            "correct role_arn and account_id of the tenant in deploy.toml (`coordinator tenant verify` shows the account the role lands in), then run the check again",
        )
    } else if e.is_denied() {
        ProbeError::new(
            code::INVALID_CREDENTIALS,
            format!("tenant `{tenant}`'s role could not be used to reach its storage ({e})"),
            ROLE_REFUSED_REMEDY,
        )
    } else {
        ProbeError::new(
            code::UNREACHABLE,
            format!("tenant `{tenant}`'s account could not be reached to check its storage ({e})"),
            "run `coordinator tenant verify` for this tenant: it names what failed (STS reachable, the role's trust, the account); the next scheduled check retries",
        )
    }
}

/// The probe error for `error` at `step`.
pub(super) fn diagnose(step: Step, error: &AwsError, cx: &Context<'_>) -> ProbeError {
    let s3_code = error.code.as_deref().unwrap_or_default();
    let message = error.message.to_ascii_lowercase();
    let said = format!("({error})");
    let bucket = cx.bucket;

    if error.operation == "AssumeRole" {
        return if error.kind == ErrorKind::AccessDenied {
            ProbeError::new(
                code::INVALID_CREDENTIALS,
                format!(
                    "the tenant's role could not be assumed to reach {} {said}",
                    cx.where_()
                ),
                ROLE_REFUSED_REMEDY,
            )
        } else {
            unreachable_error(step, cx, &said)
        };
    }
    match s3_code {
        "NoSuchBucket" => {
            return ProbeError::new(
                code::BUCKET_MISSING,
                format!("{} does not exist {said}", cx.where_()),
                format!(
                    "create bucket `{bucket}` in {} (or correct the bucket name, region and endpoint in the storage configuration with `coordinator privacy set`); see {ADMIN_DOC}",
                    cx.region
                ),
            );
        }
        "PermanentRedirect"
        | "TemporaryRedirect"
        | "AuthorizationHeaderMalformed"
        | "IllegalLocationConstraintException" => {
            let actual = bucket_region(&error.message);
            let is = match &actual {
                Some(region) => format!("is in {region}"),
                None => "is in another region".to_owned(),
            };
            return ProbeError::new(
                code::WRONG_REGION,
                format!(
                    "bucket `{bucket}` {is}, not in the configured {} {said}",
                    cx.region
                ),
                format!(
                    "set `storage.region` to {} in the tenant's privacy configuration (`coordinator privacy set`); the bucket's region is shown in the S3 console",
                    actual.as_deref().unwrap_or("the bucket's region")
                ),
            );
        }
        "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "InvalidClientTokenId"
        | "InvalidToken"
        | "ExpiredToken"
        | "TokenRefreshRequired" => {
            return invalid_credentials(cx, &said);
        }
        _ => {}
    }
    let kms_action = if message.contains("kms:decrypt") {
        Some("kms:Decrypt")
    } else if message.contains("kms:generatedatakey") || message.contains("kms:encrypt") {
        Some("kms:GenerateDataKey")
    } else {
        None
    };
    if s3_code.starts_with("KMS.")
        || (error.kind == ErrorKind::AccessDenied && kms_action.is_some())
    {
        let key = cx.kms_key.unwrap_or("the bucket's default encryption key");
        let action = kms_action.unwrap_or(match step {
            Step::Put => "kms:GenerateDataKey",
            _ => "kms:Decrypt",
        });
        return ProbeError::new(
            code::KMS_DENIED,
            format!("{} failed on the KMS key {key} {said}", step.doing()),
            format!(
                "allow kms:GenerateDataKey and kms:Decrypt on {key} for {} in the key policy (and in its IAM policy when it belongs to another account); check that the key is enabled and in the bucket's region. {action} was refused. The key policy to copy is in {ADMIN_DOC}",
                cx.principal
            ),
        );
    }
    let tls_words = [
        "securetransport",
        "insecuretransport",
        "insecure transport",
        "tls required",
        "requires tls",
        "https required",
        "https is required",
        "plain http",
    ];
    let says_tls = !error.kind.is_retryable() && tls_words.iter().any(|w| message.contains(w));
    if says_tls || (error.kind == ErrorKind::AccessDenied && cx.plain_http) {
        return ProbeError::new(
            code::TLS_REQUIRED,
            format!(
                "{} was refused over plain HTTP ({}); the bucket requires TLS {said}",
                step.doing(),
                cx.endpoint.unwrap_or("no endpoint")
            ),
            "use the service's https:// endpoint in `storage.endpoint` (plain http is for local development only); if the request was already over TLS, the refusal is a permission problem: check the bucket policy",
        );
    }
    match error.kind {
        ErrorKind::AccessDenied => access_denied(step, cx, &said),
        ErrorKind::NotFound if step == Step::Get => readback_missing(cx, &said),
        ErrorKind::Transient | ErrorKind::Throttled => unreachable_error(step, cx, &said),
        _ => ProbeError::new(
            code::UNEXPECTED,
            format!("{} in {} failed {said}", step.doing(), cx.where_()),
            "this answer is not one the probe knows: give the message to support (docs/runbooks/storage-probe-failures.md, storage.unexpected)",
        ),
    }
}

fn access_denied(step: Step, cx: &Context<'_>, said: &str) -> ProbeError {
    let bucket = cx.bucket;
    let (code, resource) = match step {
        Step::Put => (code::ACCESS_DENIED_PUT, format!("arn:aws:s3:::{bucket}/*")),
        Step::Get => (code::ACCESS_DENIED_GET, format!("arn:aws:s3:::{bucket}/*")),
        Step::Delete => (
            code::ACCESS_DENIED_DELETE,
            format!("arn:aws:s3:::{bucket}/*"),
        ),
        Step::Confirm => (code::ACCESS_DENIED_LIST, format!("arn:aws:s3:::{bucket}")),
    };
    let action = step.action();
    let mut message = format!(
        "{} in {} was denied to {} {said}",
        step.doing(),
        cx.where_(),
        cx.principal
    );
    let mut remedy = format!(
        "allow {action} on {resource} for {} in the bucket policy, and in its IAM policy; check that no Deny statement (a condition on encryption, TLS, VPC endpoint or source IP) excludes it",
        cx.principal
    );
    match step {
        Step::Put if cx.kms_key.is_none() => remedy.push_str(
            "; if the bucket policy requires SSE-KMS, set `storage.kms_key_arn` to the bucket's key",
        ),
        Step::Delete => message.push_str(&format!(
            "; the canary object `{}` was left in the bucket",
            cx.key
        )),
        Step::Confirm => message.push_str(
            ": S3 answers 403 instead of 404 for a missing object unless the principal may list the bucket",
        ),
        _ => {}
    }
    remedy.push_str(&format!(". The bucket policy to copy is in {ADMIN_DOC}"));
    ProbeError::new(code, message, remedy)
}

fn invalid_credentials(cx: &Context<'_>, said: &str) -> ProbeError {
    let remedy = match cx.principal {
        Principal::Key { secret, .. } => format!(
            "the access key in secret `{secret}` is unknown, deactivated or its secret is wrong: create a new access key for the bucket's user and store it with `coordinator secret rotate --tenant {} {secret}`",
            cx.tenant
        ),
        Principal::Role(_) => "the tenant's role credentials were refused: check the docproc-bootstrap stack in the customer's account (docs/runbooks/onboarding.md), then run the check again".to_owned(),
    };
    ProbeError::new(
        code::INVALID_CREDENTIALS,
        format!(
            "{} does not accept the credentials of {} {said}",
            cx.where_(),
            cx.principal
        ),
        remedy,
    )
}

fn unreachable_error(step: Step, cx: &Context<'_>, said: &str) -> ProbeError {
    ProbeError::new(
        code::UNREACHABLE,
        format!(
            "{} in {} failed: the service did not answer in time, throttled, or failed {said}",
            step.doing(),
            cx.where_()
        ),
        "check that the endpoint is reachable from the coordinator (DNS, firewall, proxy, VPC endpoint) and that the service is up; the next scheduled check retries",
    )
}

fn readback_missing(cx: &Context<'_>, said: &str) -> ProbeError {
    ProbeError::new(
        code::READBACK_MISMATCH,
        format!(
            "the canary object `{}` written to {} could not be found right after it was written {said}",
            cx.key,
            cx.where_()
        ),
        readback_remedy(),
    )
}

/// The object read back is not what was written.
pub(super) fn readback_mismatch(cx: &Context<'_>, written: usize, read: usize) -> ProbeError {
    ProbeError::new(
        code::READBACK_MISMATCH,
        format!(
            "the canary object read back from {} differs from what was written ({written} bytes written, {read} read)",
            cx.where_()
        ),
        readback_remedy(),
    )
}

fn readback_remedy() -> String {
    "the bucket does not return what was stored: check for a proxy or gateway that rewrites objects, a lifecycle or replication rule on the `docproc-probe/` prefix, or an S3-compatible service without read-after-write consistency (not supported)".to_owned()
}

/// The canary is still there after its delete succeeded.
pub(super) fn delete_not_effective(cx: &Context<'_>) -> ProbeError {
    ProbeError::new(
        code::DELETE_NOT_EFFECTIVE,
        format!(
            "the canary object `{}` is still in {} after a successful delete",
            cx.key,
            cx.where_()
        ),
        "documents deleted on request must really go: check the bucket for Object Lock or a legal hold, and the S3-compatible service's delete semantics (a delete must remove the current version); then delete the leftover `docproc-probe/` objects",
    )
}

/// The region S3 names in a redirect (`bucket region: X`, added by the
/// seam from `x-amz-bucket-region`) or a malformed authorization header
/// (`expecting 'X'`).
fn bucket_region(message: &str) -> Option<String> {
    let after = |marker: &str| {
        message.find(marker).map(|i| {
            message[i + marker.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect::<String>()
        })
    };
    after("bucket region: ")
        .or_else(|| after("expecting '"))
        .filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::bucket_region;

    #[test]
    fn regions_are_read_from_messages() {
        assert_eq!(
            bucket_region(
                "must be addressed using the specified endpoint. (bucket region: eu-central-1)"
            ),
            Some("eu-central-1".into())
        );
        assert_eq!(
            bucket_region(
                "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'"
            ),
            Some("eu-west-1".into())
        );
        assert_eq!(bucket_region("Moved Permanently"), None);
    }
}
