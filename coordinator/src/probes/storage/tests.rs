//! The storage probe on the fake cloud: one test per failure mapping, the
//! passes for each storage mode, and that no finding ever carries a secret.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use stacks::aws_names::BucketName;
use stacks::ids::{Capability, Region};

use super::{StorageProbe, code};
use crate::access::Operator;
use crate::aws::fake::{FakeCloud, S3Fault, S3Operation, Trust};
use crate::aws::{AwsError, ErrorKind};
use crate::manifest::Tenant;
use crate::manifest::model::test_tenant;
use crate::privacy::config::CustomerS3;
use crate::privacy::{PrivacyConfig, StorageMode};
use crate::probes::{Finding, Probe, ProbeError, ProbeStatus, ProbeTarget};
use crate::secrets::memory::MemorySecrets;
use crate::secrets::{SecretName, SecretStore};

const KEY_ID: &str = "AKIAFAKEPROBEKEY7Q2Z";
const KEY_SECRET: &str = "fake/secret+value/that-must-never-show";
const KMS_KEY: &str = "arn:aws:kms:eu-west-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/// A tenant with a role the fake lets the operator assume, a bucket in its
/// region, a valid static key and secrets in memory.
struct World {
    cloud: FakeCloud,
    tenant: Tenant,
    secrets: Arc<MemorySecrets>,
    bucket: BucketName,
}

fn world() -> World {
    let cloud = FakeCloud::new();
    let tenant = test_tenant(
        "acme",
        &[Capability::CustomerStorage, Capability::DedicatedAws],
    );
    let role = cloud.add_role(
        &tenant.account_id,
        "docproc-coordinator-deploy",
        Trust::requiring(&tenant.external_id),
    );
    assert_eq!(role, tenant.role_arn);
    let bucket: BucketName = "acme-documents".parse().unwrap();
    cloud.add_bucket(&bucket, Region::EuWest1);
    cloud.add_s3_key(KEY_ID, KEY_SECRET);
    World {
        cloud,
        tenant,
        secrets: Arc::default(),
        bucket,
    }
}

impl World {
    fn customer_s3(&self) -> CustomerS3 {
        CustomerS3 {
            bucket: self.bucket.clone(),
            region: Region::EuWest1,
            endpoint: None,
            path_style: false,
            credentials: None,
            kms_key_arn: None,
        }
    }

    /// The configuration with the key in secret `s3-credentials`, stored.
    async fn with_key(&self, value: &str) -> CustomerS3 {
        let name: SecretName = "s3-credentials".parse().unwrap();
        self.secrets
            .put(
                &self.tenant.id,
                &name,
                &SecretString::from(value.to_owned()),
            )
            .await
            .unwrap();
        CustomerS3 {
            credentials: Some(name),
            ..self.customer_s3()
        }
    }

    fn target(&self, storage: StorageMode) -> ProbeTarget {
        ProbeTarget {
            tenant: self.tenant.clone(),
            config: PrivacyConfig {
                storage,
                ..PrivacyConfig::default()
            },
            secrets: self.secrets.clone(),
            connector: Arc::new(self.cloud.clone()),
            operator: Operator::from_identity(self.cloud.operator_identity()),
            sessions: Arc::default(),
            storage_outputs: None,
            worker_outputs: None,
        }
    }

    async fn check(&self, storage: CustomerS3) -> Finding {
        StorageProbe
            .check(&self.target(StorageMode::CustomerS3(storage)))
            .await
    }

    /// Checks, expects a failure with `code`, and that nothing secret shows.
    async fn fails(&self, storage: CustomerS3, code: &str) -> ProbeError {
        match self.check(storage).await {
            Finding::Fail(e) => {
                assert_eq!(e.code, code, "{e:#?}");
                assert_no_secret(&format!("{e:?}"));
                e
            }
            other => panic!("expected {code}, got {other:?}"),
        }
    }
}

fn good_key() -> String {
    format!(r#"{{"access_key_id": "{KEY_ID}", "secret_access_key": "{KEY_SECRET}"}}"#)
}

fn assert_no_secret(text: &str) {
    for secret in [KEY_ID, KEY_SECRET, "secret+value"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

#[tokio::test]
async fn hosted_storage_is_not_applicable() {
    let w = world();
    let finding = StorageProbe.check(&w.target(StorageMode::Hosted)).await;
    assert!(matches!(finding, Finding::NotApplicable(_)), "{finding:?}");
}

#[tokio::test]
async fn a_good_bucket_passes_through_the_tenant_role_and_is_left_clean() {
    let w = world();
    let probe: Arc<dyn Probe> = Arc::new(StorageProbe);
    let target = w.target(StorageMode::CustomerS3(w.customer_s3()));
    let outcome = crate::probes::run(probe.as_ref(), &target, Duration::from_secs(5)).await;
    assert_eq!(outcome.status, ProbeStatus::Passing, "{outcome:?}");
    let detail = outcome.detail.unwrap();
    assert!(detail.contains("`acme-documents`"), "{detail}");
    assert!(detail.contains(w.tenant.role_arn.as_str()), "{detail}");
    assert!(w.cloud.s3_keys(&w.bucket).is_empty());
    // The role's credentials are kept for the next run.
    probe.check(&target).await;
    assert_eq!(w.cloud.assume_count(), 1);
}

#[tokio::test]
async fn a_good_bucket_passes_with_a_static_key_and_sse_kms() {
    let w = world();
    let storage = CustomerS3 {
        kms_key_arn: Some(KMS_KEY.into()),
        ..w.with_key(&good_key()).await
    };
    let Finding::Pass(Some(detail)) = w.check(storage).await else {
        panic!("expected a pass");
    };
    assert!(detail.contains("secret `s3-credentials`"), "{detail}");
    assert!(
        detail.contains("…7Q2Z") && detail.contains(KMS_KEY),
        "{detail}"
    );
    assert_no_secret(&detail);
    assert_eq!(w.cloud.assume_count(), 0, "a static key needs no role");
}

#[tokio::test]
async fn deployed_storage_uses_the_stack_outputs() {
    let w = world();
    let mut target = w.target(StorageMode::Deployed);
    let finding = StorageProbe.check(&target).await;
    let Finding::Fail(e) = finding else {
        panic!("expected a failure, got {finding:?}");
    };
    assert_eq!(e.code, code::STACK_NOT_DEPLOYED);
    target.storage_outputs = Some(BTreeMap::from([
        ("BucketName".to_owned(), w.bucket.to_string()),
        ("BucketArn".to_owned(), format!("arn:aws:s3:::{}", w.bucket)),
        ("KmsKeyArn".to_owned(), KMS_KEY.to_owned()),
    ]));
    let finding = StorageProbe.check(&target).await;
    let Finding::Pass(Some(detail)) = finding else {
        panic!("expected a pass, got {finding:?}");
    };
    assert!(detail.contains(KMS_KEY), "{detail}");
    // The stack's key is used: a key policy without the role fails.
    w.cloud
        .s3_fault(&w.bucket, S3Fault::DenyKmsKey(KMS_KEY.into()));
    let finding = StorageProbe.check(&target).await;
    assert!(
        matches!(&finding, Finding::Fail(e) if e.code == code::KMS_DENIED),
        "{finding:?}"
    );
}

#[tokio::test]
async fn a_missing_bucket() {
    let w = world();
    let storage = CustomerS3 {
        bucket: "no-such-bucket".parse().unwrap(),
        ..w.customer_s3()
    };
    let e = w.fails(storage, code::BUCKET_MISSING).await;
    assert!(e.message.contains("`no-such-bucket`"), "{e:?}");
    assert!(
        e.remedy
            .contains("create bucket `no-such-bucket` in eu-west-1"),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_bucket_in_another_region() {
    let w = world();
    let storage = CustomerS3 {
        region: Region::UsEast1,
        ..w.customer_s3()
    };
    let e = w.fails(storage, code::WRONG_REGION).await;
    assert!(e.message.contains("is in eu-west-1"), "{e:?}");
    assert!(e.remedy.contains("`storage.region` to eu-west-1"), "{e:?}");
}

#[tokio::test]
async fn denied_writes_reads_and_deletes_name_the_permission_and_principal() {
    for (op, code, action) in [
        (S3Operation::Put, code::ACCESS_DENIED_PUT, "s3:PutObject"),
        (S3Operation::Get, code::ACCESS_DENIED_GET, "s3:GetObject"),
        (
            S3Operation::Delete,
            code::ACCESS_DENIED_DELETE,
            "s3:DeleteObject",
        ),
        (S3Operation::Head, code::ACCESS_DENIED_LIST, "s3:ListBucket"),
    ] {
        let w = world();
        w.cloud.s3_fault(&w.bucket, S3Fault::Deny(op));
        let e = w.fails(w.customer_s3(), code).await;
        assert!(e.remedy.contains(action), "{e:?}");
        assert!(e.remedy.contains(w.tenant.role_arn.as_str()), "{e:?}");
        assert!(e.remedy.contains("arn:aws:s3:::acme-documents"), "{e:?}");
        let left = w.cloud.s3_keys(&w.bucket);
        if op == S3Operation::Delete {
            assert_eq!(left.len(), 1);
            assert!(e.message.contains(&left[0]), "{e:?}");
            assert!(left[0].starts_with("docproc-probe/acme/"), "{left:?}");
        } else {
            assert!(left.is_empty(), "{op:?} left {left:?}");
        }
        // With a static key, the principal is the key's secret.
        let storage = w.with_key(&good_key()).await;
        let e = w.fails(storage, code).await;
        assert!(e.remedy.contains("secret `s3-credentials`"), "{e:?}");
    }
}

#[tokio::test]
async fn a_kms_key_the_principal_may_not_use() {
    let w = world();
    w.cloud
        .s3_fault(&w.bucket, S3Fault::DenyKmsKey(KMS_KEY.into()));
    let storage = CustomerS3 {
        kms_key_arn: Some(KMS_KEY.into()),
        ..w.customer_s3()
    };
    let e = w.fails(storage, code::KMS_DENIED).await;
    assert!(
        e.remedy.contains("kms:GenerateDataKey and kms:Decrypt"),
        "{e:?}"
    );
    assert!(e.remedy.contains(KMS_KEY), "{e:?}");
    assert!(e.remedy.contains(w.tenant.role_arn.as_str()), "{e:?}");
    // S3's own KMS error codes too.
    let w = world();
    w.cloud.s3_fault(
        &w.bucket,
        S3Fault::FailOnce(
            S3Operation::Get,
            AwsError::new(ErrorKind::AccessDenied, "s3", "GetObject", "key disabled")
                .with_code("KMS.DisabledException"),
        ),
    );
    let e = w.fails(w.customer_s3(), code::KMS_DENIED).await;
    assert!(e.remedy.contains("kms:Decrypt was refused"), "{e:?}");
}

#[tokio::test]
async fn a_bucket_that_requires_tls() {
    let w = world();
    w.cloud.s3_fault(&w.bucket, S3Fault::RequireTls);
    // Over HTTPS (AWS S3) the bucket works.
    assert!(matches!(w.check(w.customer_s3()).await, Finding::Pass(_)));
    let storage = CustomerS3 {
        endpoint: Some("http://127.0.0.1:9000".into()),
        path_style: true,
        ..w.with_key(&good_key()).await
    };
    let e = w.fails(storage, code::TLS_REQUIRED).await;
    assert!(e.remedy.contains("https://"), "{e:?}");
}

#[tokio::test]
async fn credentials_that_are_not_accepted() {
    let w = world();
    let unknown = r#"{"access_key_id": "AKIAUNKNOWNKEY000000", "secret_access_key": "x"}"#;
    let e = w
        .fails(w.with_key(unknown).await, code::INVALID_CREDENTIALS)
        .await;
    assert!(e.message.contains("InvalidAccessKeyId"), "{e:?}");
    assert!(
        e.remedy
            .contains("coordinator secret rotate --tenant acme s3-credentials"),
        "{e:?}"
    );
    let wrong = format!(r#"{{"access_key_id": "{KEY_ID}", "secret_access_key": "nope"}}"#);
    let e = w
        .fails(w.with_key(&wrong).await, code::INVALID_CREDENTIALS)
        .await;
    assert!(e.message.contains("SignatureDoesNotMatch"), "{e:?}");
    // The tenant's role refused.
    w.cloud.deny_assume(&w.tenant.role_arn);
    let e = w.fails(w.customer_s3(), code::INVALID_CREDENTIALS).await;
    assert!(e.remedy.contains("bootstrap"), "{e:?}");
}

/// A role that lands in another account is refused before any S3 call
/// (the session cache checks the account): the bucket is never touched
/// with another account's credentials.
#[tokio::test]
async fn a_role_landing_in_another_account_fails_closed_before_s3() {
    let w = world();
    let elsewhere: stacks::ids::AccountId = "999999999999".parse().unwrap();
    w.cloud.land_in(&w.tenant.role_arn, &elsewhere);
    let e = w.fails(w.customer_s3(), code::INVALID_CREDENTIALS).await;
    assert!(e.message.contains("999999999999"), "{e:?}");
    assert!(e.message.contains("not touched"), "{e:?}");
    assert!(e.remedy.contains("account_id"), "{e:?}");
}

#[tokio::test]
async fn a_missing_or_malformed_credentials_secret() {
    let w = world();
    let storage = CustomerS3 {
        credentials: Some("not-stored".parse().unwrap()),
        ..w.customer_s3()
    };
    let e = w.fails(storage, code::CREDENTIALS_SECRET_MISSING).await;
    assert!(
        e.remedy
            .contains("coordinator secret put --tenant acme not-stored"),
        "{e:?}"
    );
    for (value, why) in [
        ("AKIA... wJalr...", "not JSON"),
        (r#"["a", "b"]"#, "not a JSON object"),
        (
            &format!(r#"{{"access_key_id": "{KEY_ID}", "secret": "{KEY_SECRET}"}}"#),
            "`secret_access_key` is missing",
        ),
        (
            &format!(r#"{{"access_key_id": "", "secret_access_key": "{KEY_SECRET}"}}"#),
            "`access_key_id` is missing, empty",
        ),
    ] {
        let e = w
            .fails(w.with_key(value).await, code::CREDENTIALS_MALFORMED)
            .await;
        assert!(e.message.contains(why), "{value}: {e:?}");
    }
}

#[tokio::test]
async fn a_bucket_that_returns_other_bytes() {
    let w = world();
    w.cloud.s3_fault(&w.bucket, S3Fault::CorruptReads);
    let e = w.fails(w.customer_s3(), code::READBACK_MISMATCH).await;
    assert!(e.message.contains("bytes written"), "{e:?}");
    assert!(
        w.cloud.s3_keys(&w.bucket).is_empty(),
        "the canary is deleted"
    );
    // Gone right after it was written.
    let w = world();
    w.cloud.s3_fault(
        &w.bucket,
        S3Fault::FailOnce(
            S3Operation::Get,
            AwsError::new(ErrorKind::NotFound, "s3", "GetObject", "gone").with_code("NoSuchKey"),
        ),
    );
    w.fails(w.customer_s3(), code::READBACK_MISMATCH).await;
}

#[tokio::test]
async fn a_delete_that_leaves_the_object() {
    let w = world();
    w.cloud.s3_fault(&w.bucket, S3Fault::IgnoreDeletes);
    let e = w.fails(w.customer_s3(), code::DELETE_NOT_EFFECTIVE).await;
    assert!(e.remedy.contains("Object Lock"), "{e:?}");
}

#[tokio::test]
async fn unreachable_and_unexpected_answers() {
    for (error, code) in [
        (
            AwsError::new(
                ErrorKind::Transient,
                "s3",
                "PutObject",
                "request failed: connection refused",
            ),
            code::UNREACHABLE,
        ),
        (
            AwsError::new(
                ErrorKind::Throttled,
                "s3",
                "PutObject",
                "Please reduce your request rate.",
            )
            .with_code("SlowDown"),
            code::UNREACHABLE,
        ),
        (
            AwsError::new(ErrorKind::Validation, "s3", "PutObject", "Bad request")
                .with_code("InvalidRequest"),
            code::UNEXPECTED,
        ),
    ] {
        let w = world();
        w.cloud
            .s3_fault(&w.bucket, S3Fault::FailOnce(S3Operation::Put, error));
        w.fails(w.customer_s3(), code).await;
    }
}

/// Every code has its section in the runbook and a row in the admin guide.
#[test]
fn every_code_is_documented() {
    let runbook = include_str!("../../../../docs/runbooks/storage-probe-failures.md");
    let admin = include_str!("../../../../docs/admin/s3-customer-storage.md");
    for code in code::ALL {
        assert!(
            runbook.contains(&format!("## `{code}`")),
            "no section for {code} in docs/runbooks/storage-probe-failures.md"
        );
        assert!(
            admin.contains(&format!("`{code}`")),
            "{code} not in docs/admin/s3-customer-storage.md"
        );
    }
}
