//! The secret stores against moto through the coordinator's own path:
//! `secrets::open_for` reads the manifest, identifies the operator, assumes
//! the tenant's deploy role with its ExternalId and checks the account
//! (`access::connect`), then talks to Secrets Manager, SSM or KMS with the
//! SDK connector. Each test works in a fresh random tenant account.
//!
//! Every round trip is put, get, rotate (put again; the previous version
//! still readable), list, delete, and a put after the delete; and the
//! planted value never shows in an error or a `Debug` output. moto accepts
//! a KMS key id that does not exist for Secrets Manager and SSM (see
//! `shared/moto-notes.md`), so only the hosted store's KMS key is real; it is
//! made by a CloudFormation stack (KeyPolicy as a string, which moto needs).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use coordinator::access;
use coordinator::aws::sdk::SdkConnector;
use coordinator::aws::{ClientScope, Connector as _, CreateStack, TenantCredentials};
use coordinator::manifest::{self, Manifest};
use coordinator::secrets::hosted::HostedStore;
use coordinator::secrets::key_wrapper::KmsKeyWrapper;
use coordinator::secrets::{BackendKind, SecretError, SecretName, SecretStore, open_for};
use coordinator::store::SealedSecrets;
use coordinator::store::sealed::WrappedDataKey;
use coordinator::store::sqlite::SqliteStore;
use integration_tests::{MOTO_DEFAULT_ACCOUNT_ID, random_account_id, random_external_id};
use secrecy::{ExposeSecret as _, SecretString};
use stacks::ids::{AccountId, Region, TenantId};

use crate::base_config;

const PLANTED: &str = "planted-e2e-secret-5e1f7a";
const TENANT_REGION: Region = Region::EuWest1;

/// A manifest with one dedicated_aws tenant in a fresh account, the
/// operator in moto's default account, and `secrets` as `[secrets]`.
fn manifest(dir: &Path, account: &AccountId, secrets: &str) -> Manifest {
    let text = format!(
        r#"
[coordinator]
account_id = "{MOTO_DEFAULT_ACCOUNT_ID}"
region = "us-east-1"
state = "coordinator.db"

[release]
version = "{release}"

[rollout]
waves = ["general"]

{secrets}

[[tenants]]
id = "acme"
account_id = "{account}"
region = "{TENANT_REGION}"
external_id = "{external_id}"
wave = "general"
capabilities = ["dedicated_aws"]
"#,
        release = stacks::RELEASE_VERSION,
        external_id = random_external_id(),
    );
    match manifest::from_text(&dir.join("deploy.toml"), text) {
        Ok(v) => v.manifest,
        Err(e) => panic!("{}", e.report.render()),
    }
}

async fn connector() -> SdkConnector {
    SdkConnector::from_config(base_config().await)
}

fn fresh_account() -> AccountId {
    random_account_id().parse().expect("12 digits")
}

fn value(v: &str) -> SecretString {
    SecretString::from(v)
}

/// The whole life of one secret; returns everything the store printed.
async fn round_trip(store: &dyn SecretStore, tenant: &TenantId) -> Vec<String> {
    let name: SecretName = "llm-api-key".parse().expect("name");
    let mut printed = vec![format!("{store:?}"), store.location()];

    let first = store
        .put(tenant, &name, &value("first"))
        .await
        .expect("put");
    let second = store
        .put(tenant, &name, &value(PLANTED))
        .await
        .expect("rotate");
    assert_ne!(first.id, second.id);
    let current = store.get(tenant, &name).await.expect("get");
    assert_eq!(current.expose_secret(), PLANTED);
    printed.push(format!("{current:?}"));
    let previous = store
        .get_version(tenant, &name, &first.id)
        .await
        .expect("the previous version stays readable");
    assert_eq!(previous.expose_secret(), "first");

    let other: SecretName = "s3.secret_key".parse().expect("name");
    store
        .put(tenant, &other, &value("other"))
        .await
        .expect("put");
    let listed = store.list(tenant).await.expect("list");
    printed.push(format!("{listed:?}"));
    let names: Vec<&str> = listed.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["llm-api-key", "s3.secret_key"], "{listed:?}");
    assert_eq!(listed[0].current.id, second.id, "{listed:?}");

    store.delete(tenant, &name).await.expect("delete");
    let e = store.get(tenant, &name).await.expect_err("deleted");
    assert!(matches!(e, SecretError::NotFound { .. }), "{e}");
    printed.push(format!("{e} {e:?}"));
    let e = store
        .delete(tenant, &name)
        .await
        .expect_err("deleted twice");
    assert!(matches!(e, SecretError::NotFound { .. }), "{e}");
    printed.push(format!("{e} {e:?}"));
    let names: Vec<String> = store
        .list(tenant)
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.name.to_string())
        .collect();
    assert_eq!(names, ["s3.secret_key"]);

    // The name can be used again at once.
    store
        .put(tenant, &name, &value("again"))
        .await
        .expect("put again");
    assert_eq!(
        store.get(tenant, &name).await.expect("get").expose_secret(),
        "again"
    );
    printed
}

fn assert_not_printed(printed: &[String]) {
    for text in printed {
        assert!(!text.contains(PLANTED), "the value leaked: {text}");
    }
}

#[tokio::test]
async fn secrets_manager_in_the_tenant_account() {
    let dir = tempfile::tempdir().expect("tempdir");
    let account = fresh_account();
    let m = manifest(
        dir.path(),
        &account,
        "[secrets]\nbackend = \"secrets_manager\"\naccount = \"tenant\"\n",
    );
    let connector = connector().await;
    let records: Arc<dyn SealedSecrets> = Arc::new(SqliteStore::in_memory().expect("store"));
    let tenant = &m.tenants[0];
    let store = open_for(tenant, &m, &connector, records)
        .await
        .expect("open_for");
    assert_eq!(store.kind(), BackendKind::SecretsManager);
    assert!(
        store.location().contains(account.as_str()),
        "{}",
        store.location()
    );
    let printed = round_trip(store.as_ref(), &tenant.id).await;
    assert_not_printed(&printed);

    // The secrets are in the tenant's account, under its prefix, and not in
    // the vendor's.
    let vendor = connector.secrets_manager(&ClientScope::Operator {
        region: TENANT_REGION,
    });
    let in_vendor = vendor
        .list_secrets("doc-platform/acme/")
        .await
        .expect("list");
    assert!(in_vendor.is_empty(), "{in_vendor:?}");
}

#[tokio::test]
async fn ssm_secure_strings_in_the_tenant_account() {
    let dir = tempfile::tempdir().expect("tempdir");
    let account = fresh_account();
    let m = manifest(
        dir.path(),
        &account,
        "[secrets]\nbackend = \"ssm\"\naccount = \"tenant\"\nprefix = \"docs/e2e\"\nkms_key_id = \"alias/docproc-secrets\"\n",
    );
    let connector = connector().await;
    let records: Arc<dyn SealedSecrets> = Arc::new(SqliteStore::in_memory().expect("store"));
    let tenant = &m.tenants[0];
    let store = open_for(tenant, &m, &connector, records)
        .await
        .expect("open_for");
    assert_eq!(store.kind(), BackendKind::Ssm);
    let printed = round_trip(store.as_ref(), &tenant.id).await;
    assert_not_printed(&printed);
    // A version SSM never had.
    let e = store
        .get_version(&tenant.id, &"s3.secret_key".parse().expect("name"), "7")
        .await
        .expect_err("no version 7");
    assert!(matches!(e, SecretError::NotFound { .. }), "{e}");
}

/// A KMS key made by a CloudFormation stack through `cloudformation`;
/// returns its ARN.
async fn kms_key(cloudformation: &dyn coordinator::aws::CloudFormation, stack: &str) -> String {
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:*","Resource":"*"}]}"#;
    let template = serde_json::json!({
        "Resources": {"Key": {"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": policy}}},
        "Outputs": {"KeyArn": {"Value": {"Fn::GetAtt": ["Key", "Arn"]}}},
    });
    cloudformation
        .create_stack(&CreateStack {
            name: stack.to_owned(),
            template_body: template.to_string(),
            parameters: Vec::new(),
            tags: BTreeMap::new(),
            role_arn: None,
            capabilities: Vec::new(),
            client_request_token: format!("{stack}-create"),
        })
        .await
        .expect("CreateStack");
    let described = cloudformation
        .describe_stack(stack)
        .await
        .expect("DescribeStacks")
        .expect("the stack exists");
    described
        .outputs
        .get("KeyArn")
        .cloned()
        .expect("the KeyArn output")
}

/// The hosted store with its data keys wrapped by a KMS key in the tenant's
/// account, reached through the tenant's role: round trips, a wrapped key
/// moved to another tenant refused (moto enforces the encryption context),
/// and the database file free of the value.
#[tokio::test]
async fn hosted_with_kms_in_the_tenant_account() {
    let dir = tempfile::tempdir().expect("tempdir");
    let account = fresh_account();
    let m = manifest(dir.path(), &account, "");
    let connector = connector().await;
    let operator = access::operator(&connector).await.expect("operator");
    let reached = access::connect(&connector, &operator, &m.tenants[0])
        .await
        .expect("the tenant's role");
    assert_eq!(reached.identity.account, account);
    let credentials: Arc<TenantCredentials> = reached.credentials.clone();
    let key_arn = kms_key(reached.cloudformation.as_ref(), "docproc-e2e-hosted-key").await;
    assert!(key_arn.contains(account.as_str()), "{key_arn}");

    let db = dir.path().join("coordinator.db");
    let sqlite = Arc::new(SqliteStore::open(&db).expect("state file"));
    let wrapper = Arc::new(KmsKeyWrapper::new(
        connector.kms(&ClientScope::Tenant {
            credentials,
            region: TENANT_REGION,
        }),
        key_arn,
    ));
    let store = HostedStore::new(sqlite.clone(), wrapper.clone());
    let tenant = &m.tenants[0].id;
    let printed = round_trip(&store, tenant).await;
    assert_not_printed(&printed);

    // acme's wrapped data key given to another tenant: KMS refuses it (the
    // encryption context names the tenant).
    let acme_key = sqlite
        .data_key(tenant)
        .await
        .expect("read")
        .expect("acme has a data key");
    let globex: TenantId = "globex".parse().expect("tenant id");
    sqlite
        .insert_data_key(&WrappedDataKey {
            tenant: globex.clone(),
            ..acme_key
        })
        .await
        .expect("insert");
    let e = HostedStore::new(sqlite.clone(), wrapper)
        .put(&globex, &"k".parse().expect("name"), &value("g"))
        .await
        .expect_err("another tenant's data key");
    assert!(matches!(e, SecretError::Undecryptable { .. }), "{e}");
    assert_not_printed(&[format!("{e} {e:?}")]);

    drop(store);
    drop(sqlite);
    for entry in std::fs::read_dir(dir.path()).expect("dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        assert!(
            !bytes
                .windows(PLANTED.len())
                .any(|w| w == PLANTED.as_bytes()),
            "{} holds the value in clear",
            path.display()
        );
    }
}

/// The hosted store as `open_for` builds it from `master_key = {
/// kms_key_id }`: the KMS key in the vendor's account, the operator's
/// credentials.
#[tokio::test]
async fn hosted_with_kms_in_the_vendor_account_through_open_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let connector = connector().await;
    let stack = format!("docproc-e2e-vendor-key-{}", &random_external_id()[..8]);
    let key_arn = kms_key(
        connector.operator_cloudformation(Region::UsEast1).as_ref(),
        &stack,
    )
    .await;
    let m = manifest(
        dir.path(),
        &fresh_account(),
        &format!("[secrets]\nmaster_key = {{ kms_key_id = \"{key_arn}\" }}\n"),
    );
    let records: Arc<dyn SealedSecrets> =
        Arc::new(SqliteStore::open(&dir.path().join("coordinator.db")).expect("state"));
    let store = open_for(&m.tenants[0], &m, &connector, records)
        .await
        .expect("open_for");
    assert_eq!(store.kind(), BackendKind::Hosted);
    let printed = round_trip(store.as_ref(), &m.tenants[0].id).await;
    assert_not_printed(&printed);
}
