//! `open_for` builds the configured store for each tenant, on the fake AWS.

use std::path::Path;

use secrecy::{ExposeSecret as _, SecretString};
use stacks::builtin::bootstrap::DEPLOY_ROLE_NAME;
use stacks::ids::{Region, TenantId};

use super::*;
use crate::aws::fake::{FakeCloud, Trust};
use crate::manifest::from_text;
use crate::secrets::key_wrapper::create_master_key_file;
use crate::secrets::{BackendKind, SecretName};
use crate::store::sqlite::SqliteStore;

const ACME_EXTERNAL_ID: &str = "acme-external-id-0123456789abcdef0123";

fn manifest(dir: &Path, secrets: &str, acme_secrets: &str) -> Manifest {
    let text = format!(
        r#"
[coordinator]
account_id = "111111111111"
region = "us-east-1"
state = "coordinator.db"

[release]
version = "{release}"

[rollout]
waves = ["general"]

{secrets}

[[tenants]]
id = "acme"
account_id = "222222222222"
region = "eu-west-1"
external_id = "{ACME_EXTERNAL_ID}"
wave = "general"
capabilities = ["dedicated_aws"]
{acme_secrets}

[[tenants]]
id = "hooli"
account_id = "333333333333"
region = "us-west-2"
external_id = "hooli-external-id-0123456789abcdef012"
wave = "general"
"#,
        release = stacks::RELEASE_VERSION,
    );
    match from_text(&dir.join("deploy.toml"), text) {
        Ok(v) => v.manifest,
        Err(e) => panic!("{}", e.report.render()),
    }
}

fn records() -> Arc<dyn SealedSecrets> {
    Arc::new(SqliteStore::in_memory().unwrap())
}

fn acme_role(cloud: &FakeCloud) {
    cloud.add_role(
        &"222222222222".parse().unwrap(),
        DEPLOY_ROLE_NAME,
        Trust::requiring(&ACME_EXTERNAL_ID.parse().unwrap()),
    );
}

async fn round_trip(store: &dyn SecretStore, tenant: &TenantId) {
    let name: SecretName = "llm-api-key".parse().unwrap();
    store
        .put(tenant, &name, &SecretString::from("v1"))
        .await
        .unwrap();
    let got = store.get(tenant, &name).await.unwrap();
    assert_eq!(got.expose_secret(), "v1");
}

#[tokio::test]
async fn hosted_by_default_and_the_key_file_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), "", "");
    let cloud = FakeCloud::new();
    let acme = &m.tenants[0];
    let e = open_for(acme, &m, &cloud, records()).await.unwrap_err();
    assert!(matches!(e, SecretError::Config { .. }), "{e}");
    assert!(e.to_string().contains("coordinator.db.master-key"), "{e}");
    assert!(!dir.path().join("coordinator.db.master-key").exists());

    create_master_key_file(&dir.path().join("coordinator.db.master-key")).unwrap();
    let store = open_for(acme, &m, &cloud, records()).await.unwrap();
    assert_eq!(store.kind(), BackendKind::Hosted);
    round_trip(store.as_ref(), &acme.id).await;
    assert!(cloud.calls().is_empty(), "the file key needs no AWS call");
}

#[tokio::test]
async fn hosted_with_kms_uses_the_vendor_account() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(
        dir.path(),
        "[secrets]\nmaster_key = { kms_key_id = \"alias/docproc-hosted\" }\n",
        "",
    );
    let cloud = FakeCloud::new();
    cloud.create_kms_key(
        &"111111111111".parse().unwrap(),
        Region::UsEast1,
        Some("alias/docproc-hosted"),
    );
    let store = open_for(&m.tenants[1], &m, &cloud, records())
        .await
        .unwrap();
    round_trip(store.as_ref(), &m.tenants[1].id).await;
    assert!(
        cloud
            .calls()
            .iter()
            .any(|c| c.operation == "Encrypt" && c.region == Some(Region::UsEast1))
    );
}

#[tokio::test]
async fn aws_backends_in_the_vendor_or_the_tenant_account() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(
        dir.path(),
        "[secrets]\nbackend = \"secrets_manager\"\n",
        "[tenants.secrets]\nbackend = \"ssm\"\naccount = \"tenant\"\n",
    );
    let cloud = FakeCloud::new();
    acme_role(&cloud);
    let (acme, hooli) = (&m.tenants[0], &m.tenants[1]);

    let store = open_for(hooli, &m, &cloud, records()).await.unwrap();
    assert_eq!(store.kind(), BackendKind::SecretsManager);
    assert!(store.location().contains("vendor account 111111111111"));
    round_trip(store.as_ref(), &hooli.id).await;
    assert_eq!(
        cloud.secret_names(&"111111111111".parse().unwrap(), Region::UsEast1),
        ["doc-platform/hooli/llm-api-key"]
    );

    let store = open_for(acme, &m, &cloud, records()).await.unwrap();
    assert_eq!(store.kind(), BackendKind::Ssm);
    round_trip(store.as_ref(), &acme.id).await;
    assert_eq!(
        cloud.parameter_names(&"222222222222".parse().unwrap(), Region::EuWest1),
        ["/doc-platform/acme/llm-api-key"]
    );
}

#[tokio::test]
async fn a_refused_tenant_role_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(
        dir.path(),
        "",
        "[tenants.secrets]\nbackend = \"secrets_manager\"\naccount = \"tenant\"\n",
    );
    let cloud = FakeCloud::new();
    acme_role(&cloud);
    let role = m.tenants[0].role_arn.clone();
    cloud.deny_assume(&role);
    let e = open_for(&m.tenants[0], &m, &cloud, records())
        .await
        .unwrap_err();
    assert!(matches!(e, SecretError::Denied { .. }), "{e}");
    assert!(e.to_string().contains("AssumeRole"), "{e}");
}

#[tokio::test]
async fn age_file_from_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let identity = age::x25519::Identity::generate();
    let identity_path = dir.path().join("identity.txt");
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&identity_path)
            .unwrap();
        writeln!(f, "{}", identity.to_string().expose_secret()).unwrap();
    }
    let m = manifest(
        dir.path(),
        &format!(
            "[secrets]\nbackend = \"age_file\"\nidentity = \"identity.txt\"\nrecipients = [\"{}\"]\n",
            identity.to_public()
        ),
        "",
    );
    let store = open_for(&m.tenants[0], &m, &FakeCloud::new(), records())
        .await
        .unwrap();
    assert_eq!(store.kind(), BackendKind::AgeFile);
    round_trip(store.as_ref(), &m.tenants[0].id).await;
    assert!(dir.path().join("secrets.age").exists());
}
