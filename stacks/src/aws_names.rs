//! Validated names of AWS resources that stacks take as parameters or return
//! as outputs: ARNs, queue URLs, bucket and secret names.
//!
//! Like [`crate::ids`], each is a newtype built only through validation, with
//! a JSON Schema pattern that says the same thing.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::ids::InvalidId;

fn is_digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

string_id!(
    /// Any ARN: `arn:<partition>:<service>:<region>:<account>:<resource>`.
    Arn,
    kind = "ARN",
    pattern = "^arn:aws(-cn|-us-gov)?:[a-z0-9-]+:[a-z0-9-]*:([0-9]{12})?:.+$",
    expected = "an ARN like arn:aws:kms:eu-west-1:222222222222:key/1234abcd-...",
    max_len = 2048,
    check = |s| {
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        parts.len() == 6
            && parts[0] == "arn"
            && matches!(parts[1], "aws" | "aws-cn" | "aws-us-gov")
            && !parts[2].is_empty()
            && parts[2].chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && parts[3].chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && (parts[4].is_empty() || is_digits(parts[4], 12))
            && !parts[5].is_empty()
    }
);

impl Arn {
    /// The service part, e.g. `kms`.
    pub fn service(&self) -> &str {
        self.as_str().split(':').nth(2).unwrap_or_default()
    }

    /// The account part, if the ARN has one (S3 bucket ARNs do not).
    pub fn account(&self) -> Option<&str> {
        self.as_str().split(':').nth(4).filter(|a| !a.is_empty())
    }
}

string_id!(
    /// An SQS queue URL: `https://<host>/<account>/<queue name>`.
    QueueUrl,
    kind = "SQS queue URL",
    pattern = "^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/[0-9]{12}/[A-Za-z0-9_-]{1,80}(\\.fifo)?$",
    expected = "a queue URL like https://sqs.eu-west-1.amazonaws.com/222222222222/docproc-worker-jobs",
    max_len = 400,
    check = |s| {
        let Some(rest) = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")) else {
            return false;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let name = parts.get(2).map(|n| n.strip_suffix(".fifo").unwrap_or(n));
        parts.len() == 3
            && !parts[0].is_empty()
            && parts[0].chars().all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c))
            && is_digits(parts[1], 12)
            && name.is_some_and(|n| {
                !n.is_empty() && n.len() <= 80 && n.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
            })
    }
);

impl QueueUrl {
    /// The queue's name, the last path segment.
    pub fn queue_name(&self) -> &str {
        self.as_str().rsplit('/').next().unwrap_or_default()
    }

    /// The account id in the URL.
    pub fn account(&self) -> &str {
        self.as_str().rsplit('/').nth(1).unwrap_or_default()
    }
}

string_id!(
    /// An S3 bucket name (DNS-compatible: lowercase, digits, dots, dashes).
    BucketName,
    kind = "S3 bucket name",
    pattern = "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
    expected = "3 to 63 lowercase letters, digits, dots or dashes, starting and ending with a letter or digit",
    max_len = 63,
    check = |s| {
        let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        s.len() >= 3
            && s.starts_with(edge)
            && s.ends_with(edge)
            && s.chars().all(|c| edge(c) || c == '.' || c == '-')
    }
);

string_id!(
    /// A Secrets Manager secret name.
    SecretName,
    kind = "secret name",
    pattern = "^[A-Za-z0-9/_+=.@-]{1,512}$",
    expected = "1 to 512 characters from A-Z a-z 0-9 / _ + = . @ -",
    max_len = 512,
    check = |s| s.chars().all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c))
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns() {
        let arn: Arn = "arn:aws:kms:eu-west-1:222222222222:key/abc"
            .parse()
            .unwrap();
        assert_eq!(arn.service(), "kms");
        assert_eq!(arn.account(), Some("222222222222"));
        let bucket: Arn = "arn:aws:s3:::docproc-storage-bucket".parse().unwrap();
        assert_eq!(bucket.account(), None);
        for bad in [
            "arn:aws:kms",
            "arn:aws::eu-west-1:222222222222:x",
            "arn:aws:kms:eu-west-1:12:key/x",
            "x",
        ] {
            assert!(bad.parse::<Arn>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn queue_urls() {
        let url: QueueUrl = "https://sqs.eu-west-1.amazonaws.com/222222222222/docproc-worker-jobs"
            .parse()
            .unwrap();
        assert_eq!(url.queue_name(), "docproc-worker-jobs");
        assert_eq!(url.account(), "222222222222");
        assert!(
            "http://127.0.0.1:5000/222222222222/q.fifo"
                .parse::<QueueUrl>()
                .is_ok()
        );
        for bad in [
            "https://sqs/2222/q",
            "ftp://h/222222222222/q",
            "https://h/222222222222/q/x",
            "https://h/222222222222/",
        ] {
            assert!(bad.parse::<QueueUrl>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn bucket_names() {
        assert!(
            "docproc-storage-documentsbucket-1a2b"
                .parse::<BucketName>()
                .is_ok()
        );
        for bad in ["ab", "Upper", "-dash", "dash-", "under_score"] {
            assert!(bad.parse::<BucketName>().is_err(), "{bad} accepted");
        }
    }
}
