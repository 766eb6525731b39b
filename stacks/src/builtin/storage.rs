//! The `storage` stack: the tenant's document bucket and its KMS key.
//!
//! The bucket is SSE-KMS with a bucket key, blocks all public access,
//! enforces TLS and versioning, and expires objects after `RetentionDays`
//! (the "we do not retain documents" promise, enforced by S3 itself). The key
//! is created with rotation, or an existing customer key is used (shape).
//! Bucket and key are retained if the stack is deleted or replaced.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::aws_names::{Arn, BucketName};
use crate::ids::TenantId;
use crate::outputs::{OutputReader, OutputsError};
use crate::stack::{Stack, StackKind};

/// Marker type for the storage stack.
#[derive(Debug, Clone, Copy)]
pub struct Storage;

/// Where the bucket's encryption key comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum KeyChoice {
    /// The stack creates a customer-managed key with rotation.
    #[default]
    Create,
    /// The customer's existing key; the stack creates none.
    Existing {
        /// The key's ARN.
        key_arn: Arn,
    },
}

/// Render-time choices for the storage stack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StorageShape {
    /// The bucket's KMS key.
    pub key: KeyChoice,
}

/// Days an object is kept before S3 expires it: 1 to 3650.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct RetentionDays(u16);

impl JsonSchema for RetentionDays {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RetentionDays".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "integer",
            "minimum": 1,
            "maximum": 3650,
            "description": "days before S3 expires a document: 1 to 3650",
        })
    }
}

impl RetentionDays {
    /// Validates `days`.
    pub fn new(days: u16) -> Result<Self, String> {
        if (1..=3650).contains(&days) {
            Ok(Self(days))
        } else {
            Err(format!(
                "retention of {days} days is out of range: expected 1 to 3650"
            ))
        }
    }

    /// The number of days.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<u16> for RetentionDays {
    type Error = String;
    fn try_from(days: u16) -> Result<Self, String> {
        Self::new(days)
    }
}

impl From<RetentionDays> for u16 {
    fn from(days: RetentionDays) -> u16 {
        days.0
    }
}

/// Deploy-time parameters of the storage stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct StorageParameters {
    /// The tenant, for tags.
    pub tenant_id: TenantId,
    /// Days before documents expire.
    pub retention_days: RetentionDays,
}

/// What the storage stack returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct StorageOutputs {
    /// The documents bucket.
    pub bucket_name: BucketName,
    /// The bucket's ARN.
    pub bucket_arn: Arn,
    /// The key that encrypts the bucket (and the worker's queues).
    pub kms_key_arn: Arn,
}

impl Stack for Storage {
    const KIND: StackKind = StackKind::Storage;
    type Shape = StorageShape;
    type Parameters = StorageParameters;
    type Outputs = StorageOutputs;

    fn context(shape: &StorageShape) -> Value {
        let existing = match &shape.key {
            KeyChoice::Create => None,
            KeyChoice::Existing { key_arn } => Some(key_arn),
        };
        json!({ "shape": { "create_key": existing.is_none(), "existing_key_arn": existing } })
    }

    fn parse_outputs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<StorageOutputs, OutputsError> {
        let mut r = OutputReader::new("storage", pairs);
        let bucket_name = r.required("BucketName");
        let bucket_arn = r.required("BucketArn");
        let kms_key_arn = r.required("KmsKeyArn");
        r.finish(|| {
            Some(StorageOutputs {
                bucket_name: bucket_name?,
                bucket_arn: bucket_arn?,
                kms_key_arn: kms_key_arn?,
            })
        })
    }
}
