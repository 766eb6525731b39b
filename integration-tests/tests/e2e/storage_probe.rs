//! The storage probe against moto, through the SDK connector, in a fresh
//! tenant account per test: a good bucket passes through the tenant's role
//! and with an access key from the tenant's Secrets Manager; a missing
//! bucket and a bucket policy that denies the probe fail with their codes;
//! and, on a moto server of the test's own with IAM auth enforced (reached
//! as an S3-compatible endpoint, path-style), a real IAM user's key passes
//! while an unknown key and a wrong secret are `storage.invalid_credentials`.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use aws_config::SdkConfig;
use coordinator::access::{self, Operator};
use coordinator::aws::sdk::SdkConnector;
use coordinator::aws::{ClientScope, Connector, RoleRequest, SessionName, TenantCredentials};
use coordinator::manifest::Tenant;
use coordinator::privacy::config::CustomerS3;
use coordinator::privacy::{PrivacyConfig, StorageMode};
use coordinator::probes::storage::code;
use coordinator::probes::{Finding, Probe, ProbeTarget, StorageProbe};
use coordinator::secrets::aws_secrets_manager::SecretsManagerStore;
use coordinator::secrets::{SecretName, SecretStore};
use integration_tests::auth_moto::{AuthMoto, post};
use integration_tests::{
    TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, assume_role, random_account_id, random_external_id,
};
use rand::Rng as _;
use secrecy::SecretString;
use stacks::aws_names::BucketName;
use stacks::builtin::storage::RetentionDays;
use stacks::ids::{AccountId, Capability, Region, RoleArn};

use crate::base_config;

const ROLE: &str = "docproc-coordinator-deploy";
const SECRET: &str = "s3-credentials";

/// A tenant in its own account, the operator's connector, and the tenant's
/// Secrets Manager (reached through its role) as its secret store.
struct World {
    tenant: Tenant,
    connector: Arc<SdkConnector>,
    operator: Operator,
    secrets: Arc<SecretsManagerStore>,
    /// SDK configuration acting in the tenant's account, for set-up.
    config: SdkConfig,
}

async fn world() -> World {
    let base = base_config().await;
    let account: AccountId = random_account_id().parse().expect("account id");
    let external_id = random_external_id();
    let tenant = Tenant {
        id: format!("t{}", &account.as_str()[..8])
            .parse()
            .expect("tenant id"),
        account_id: account.clone(),
        region: Region::UsEast1,
        external_id: external_id.parse().expect("ExternalId"),
        wave: "canary".parse().expect("wave"),
        capabilities: BTreeSet::from([Capability::CustomerStorage, Capability::DedicatedAws]),
        role_arn: RoleArn::for_role(&account, ROLE).expect("role ARN"),
        retention_days: RetentionDays::new(30).expect("retention"),
    };
    let config = assume_role(&base, account.as_str(), ROLE, &external_id)
        .await
        .expect("assume the tenant's role");
    let connector = Arc::new(SdkConnector::from_config(base));
    let credentials = Arc::new(TenantCredentials::new(
        connector.operator_sts(),
        RoleRequest {
            role_arn: tenant.role_arn.clone(),
            external_id: Some(tenant.external_id.clone()),
            session_name: SessionName::sanitize("e2e-secrets"),
            source_identity: None,
            duration: std::time::Duration::from_secs(3600),
        },
    ));
    let secrets = Arc::new(SecretsManagerStore::new(
        connector.secrets_manager(&ClientScope::Tenant {
            credentials,
            region: tenant.region,
        }),
        "doc-platform",
        None,
        format!("Secrets Manager in {account}/us-east-1"),
    ));
    let operator = access::operator(connector.as_ref())
        .await
        .expect("the operator's identity");
    World {
        tenant,
        connector,
        operator,
        secrets,
        config,
    }
}

/// A bucket name no other test uses (names are global in moto too).
fn bucket_name() -> BucketName {
    let n: u64 = rand::rng().random();
    format!("docproc-e2e-{n:016x}")
        .parse()
        .expect("bucket name")
}

impl World {
    fn target(&self, storage: CustomerS3) -> ProbeTarget {
        ProbeTarget {
            tenant: self.tenant.clone(),
            config: PrivacyConfig {
                storage: StorageMode::CustomerS3(storage),
                ..PrivacyConfig::default()
            },
            secrets: self.secrets.clone(),
            connector: self.connector.clone(),
            operator: self.operator.clone(),
            sessions: Arc::default(),
            storage_outputs: None,
            worker_outputs: None,
        }
    }

    async fn check(&self, storage: CustomerS3) -> Finding {
        let probe: Arc<dyn Probe> = Arc::new(StorageProbe);
        probe.check(&self.target(storage)).await
    }

    /// A bucket in the tenant's account.
    async fn create_bucket(&self) -> BucketName {
        let bucket = bucket_name();
        s3_client(&self.config)
            .create_bucket()
            .bucket(bucket.as_str())
            .send()
            .await
            .expect("create the bucket");
        bucket
    }

    async fn store_key(&self, access_key_id: &str, secret_access_key: &str) -> SecretName {
        let name: SecretName = SECRET.parse().expect("secret name");
        let value = format!(
            r#"{{"access_key_id": "{access_key_id}", "secret_access_key": "{secret_access_key}"}}"#
        );
        // A second put in one test is a rotation.
        self.secrets
            .put(&self.tenant.id, &name, &SecretString::from(value))
            .await
            .expect("store the key");
        name
    }
}

/// Through the tenant's role, in us-east-1, on the shared moto.
fn through_role(bucket: &BucketName) -> CustomerS3 {
    CustomerS3 {
        bucket: bucket.clone(),
        region: Region::UsEast1,
        endpoint: None,
        path_style: false,
        credentials: None,
        kms_key_arn: None,
    }
}

/// An S3 client for set-up (path-style: moto has no bucket host names).
fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    )
}

async fn object_keys(config: &SdkConfig, bucket: &BucketName) -> Vec<String> {
    s3_client(config)
        .list_objects_v2()
        .bucket(bucket.as_str())
        .send()
        .await
        .expect("list objects")
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

fn expect_code(finding: Finding, code: &str) -> String {
    match finding {
        Finding::Fail(e) => {
            assert_eq!(e.code, code, "{e:#?}");
            format!("{} {}", e.message, e.remedy)
        }
        other => panic!("expected {code}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_good_bucket_passes_through_the_tenant_role() {
    let w = world().await;
    let bucket = w.create_bucket().await;
    let storage = CustomerS3 {
        // moto accepts any key id for SSE-KMS: this proves the request, not the key.
        kms_key_arn: Some(format!(
            "arn:aws:kms:us-east-1:{}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            w.tenant.account_id
        )),
        ..through_role(&bucket)
    };
    let finding = w.check(storage).await;
    let Finding::Pass(Some(detail)) = finding else {
        panic!("expected a pass, got {finding:?}");
    };
    assert!(detail.contains(w.tenant.role_arn.as_str()), "{detail}");
    assert!(detail.contains("SSE-KMS"), "{detail}");
    assert!(object_keys(&w.config, &bucket).await.is_empty());
}

#[tokio::test]
async fn a_good_bucket_passes_with_a_key_from_the_tenants_secret() {
    let w = world().await;
    let bucket = w.create_bucket().await;
    // An IAM user of the tenant's account, so the key acts there.
    let (key_id, key_secret) = iam_user_with_key(
        crate::moto().port(),
        w.tenant.account_id.as_str(),
        "docproc-storage",
    );
    let credentials = w.store_key(&key_id, &key_secret).await;
    let storage = CustomerS3 {
        endpoint: Some(crate::moto().endpoint().to_owned()),
        path_style: true,
        credentials: Some(credentials),
        ..through_role(&bucket)
    };
    let finding = w.check(storage).await;
    let Finding::Pass(Some(detail)) = finding else {
        panic!("expected a pass, got {finding:?}");
    };
    assert!(detail.contains("secret `s3-credentials`"), "{detail}");
    assert!(
        !detail.contains(&key_id) && !detail.contains(&key_secret),
        "{detail}"
    );
    assert!(object_keys(&w.config, &bucket).await.is_empty());
}

#[tokio::test]
async fn a_missing_bucket_is_bucket_missing() {
    let w = world().await;
    let text = expect_code(
        w.check(through_role(&bucket_name())).await,
        code::BUCKET_MISSING,
    );
    assert!(text.contains("does not exist"), "{text}");
}

#[tokio::test]
async fn a_bucket_policy_that_denies_the_probe_is_access_denied_put() {
    let w = world().await;
    let bucket = w.create_bucket().await;
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyTheCoordinator",
            "Effect": "Deny",
            "Principal": {"AWS": w.tenant.role_arn.as_str()},
            "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
            "Resource": format!("arn:aws:s3:::{bucket}/*"),
        }]
    });
    s3_client(&w.config)
        .put_bucket_policy()
        .bucket(bucket.as_str())
        .policy(policy.to_string())
        .send()
        .await
        .expect("put the bucket policy");
    let text = expect_code(
        w.check(through_role(&bucket)).await,
        code::ACCESS_DENIED_PUT,
    );
    assert!(text.contains("s3:PutObject"), "{text}");
    assert!(text.contains(w.tenant.role_arn.as_str()), "{text}");
}

/// On a moto of this test's own with auth enforced, reached as an
/// S3-compatible endpoint: the real key passes, wrong ones do not.
#[tokio::test]
async fn wrong_credentials_are_invalid_credentials_where_auth_is_enforced() {
    let w = world().await;
    let server = AuthMoto::start(Path::new(env!("CARGO_TARGET_TMPDIR"))).expect("own moto");
    let (key_id, key_secret) = iam_user_with_key(
        server.port(),
        integration_tests::MOTO_DEFAULT_ACCOUNT_ID,
        "docproc-storage",
    );
    let bucket = bucket_name();
    s3_client(&integration_tests::sdk_config(server.endpoint()).await)
        .create_bucket()
        .bucket(bucket.as_str())
        .send()
        .await
        .expect("create the bucket");
    server.enforce_auth().expect("enforce auth");
    let storage = |credentials: SecretName| CustomerS3 {
        endpoint: Some(server.endpoint().to_owned()),
        path_style: true,
        credentials: Some(credentials),
        ..through_role(&bucket)
    };

    let good = w.store_key(&key_id, &key_secret).await;
    let finding = w.check(storage(good)).await;
    assert!(matches!(finding, Finding::Pass(_)), "{finding:?}");

    let unknown = w
        .store_key(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY)
        .await;
    let text = expect_code(w.check(storage(unknown)).await, code::INVALID_CREDENTIALS);
    assert!(text.contains("secret `s3-credentials`"), "{text}");
    assert!(!text.contains(TEST_SECRET_ACCESS_KEY), "{text}");

    let wrong = w.store_key(&key_id, "not-the-secret-key").await;
    let text = expect_code(w.check(storage(wrong)).await, code::INVALID_CREDENTIALS);
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    assert!(!text.contains(&key_secret), "{text}");
}

/// Creates IAM user `name` in `account` on the moto at `port`, allowed every
/// S3 action, with an access key; returns the key. Unsigned query-API calls
/// (moto routes them by the credential scope and takes the account from the
/// `x-moto-account-id` header), so only before auth is enforced.
fn iam_user_with_key(port: u16, account: &str, name: &str) -> (String, String) {
    let call = |params: &[(&str, &str)]| {
        let mut body = String::from("Version=2010-05-08");
        for (k, v) in params {
            body.push_str(&format!("&{k}={}", form_encode(v)));
        }
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={TEST_ACCESS_KEY_ID}/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0"
        );
        let (status, answer) = post(
            port,
            "/",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Authorization", &auth),
                ("x-moto-account-id", account),
            ],
            &body,
        )
        .expect("IAM call");
        assert_eq!(status, 200, "IAM {params:?}: {answer}");
        answer
    };
    call(&[("Action", "CreateUser"), ("UserName", name)]);
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    call(&[
        ("Action", "PutUserPolicy"),
        ("UserName", name),
        ("PolicyName", "s3"),
        ("PolicyDocument", policy),
    ]);
    let answer = call(&[("Action", "CreateAccessKey"), ("UserName", name)]);
    (
        xml_text(&answer, "AccessKeyId"),
        xml_text(&answer, "SecretAccessKey"),
    )
}

fn xml_text(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no {tag} in {xml}"))
        + open.len();
    let end = start + xml[start..].find('<').expect("closing tag");
    xml[start..end].to_owned()
}

fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
