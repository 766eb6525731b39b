//! The fake's Secrets Manager, SSM and KMS behave as the services do.

use std::sync::Arc;

use secrecy::SecretSlice;

use super::*;
use crate::aws::secrets::{EncryptionContext, Kms};
use crate::aws::{Connector as _, ErrorKind};

fn operator(cloud: &FakeCloud) -> (ClientScope, AccountId) {
    (
        ClientScope::Operator {
            region: Region::UsEast1,
        },
        cloud.operator_identity().account,
    )
}

fn value(text: &str) -> SecretString {
    SecretString::from(text)
}

#[tokio::test]
async fn secrets_manager_versions_and_errors() {
    let cloud = FakeCloud::new();
    let (scope, account) = operator(&cloud);
    let sm = cloud.secrets_manager(&scope);
    let v1 = sm
        .create_secret("p/acme/k", &value("one"), None)
        .await
        .unwrap();
    let e = sm
        .create_secret("p/acme/k", &value("x"), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AlreadyExists, "{e}");
    let v2 = sm
        .put_secret_value("p/acme/k", &value("two"))
        .await
        .unwrap();
    assert_ne!(v1, v2);
    let got = sm.get_secret_value("p/acme/k", None).await.unwrap();
    assert_eq!(
        (got.value.expose_secret(), got.version_id.as_str()),
        ("two", v2.as_str())
    );
    let old = sm.get_secret_value("p/acme/k", Some(&v1)).await.unwrap();
    assert_eq!(old.value.expose_secret(), "one");
    sm.create_secret("p/acme-2/k", &value("other"), None)
        .await
        .unwrap();
    let listed = sm.list_secrets("p/acme/").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].current_version.as_deref(), Some(v2.as_str()));
    assert_eq!(listed[0].versions, 2);
    sm.delete_secret("p/acme/k").await.unwrap();
    let e = sm.get_secret_value("p/acme/k", None).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert_eq!(
        cloud.secret_names(&account, Region::UsEast1),
        ["p/acme-2/k"]
    );
    // The Debug of a read value hides it.
    let got = sm.get_secret_value("p/acme-2/k", None).await.unwrap();
    assert!(!format!("{got:?}").contains("other"));
}

#[tokio::test]
async fn parameter_versions_and_paths() {
    let cloud = FakeCloud::new();
    let (scope, _) = operator(&cloud);
    let ssm = cloud.parameter_store(&scope);
    assert_eq!(
        ssm.put_secure_string("/p/acme/k", &value("one"), None)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        ssm.put_secure_string("/p/acme/k", &value("two"), None)
            .await
            .unwrap(),
        2
    );
    ssm.put_secure_string("/p/acme/deeper/k", &value("x"), None)
        .await
        .unwrap();
    let (v, info) = ssm.get_decrypted("/p/acme/k", None).await.unwrap();
    assert_eq!((v.expose_secret(), info.version), ("two", 2));
    let (v, _) = ssm.get_decrypted("/p/acme/k", Some(1)).await.unwrap();
    assert_eq!(v.expose_secret(), "one");
    let e = ssm.get_decrypted("/p/acme/k", Some(9)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    let listed = ssm.parameters_by_path("/p/acme").await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    ssm.delete_parameter("/p/acme/k").await.unwrap();
    let e = ssm.delete_parameter("/p/acme/k").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
}

#[tokio::test]
async fn kms_binds_key_and_context() {
    let cloud = FakeCloud::new();
    let (scope, account) = operator(&cloud);
    let arn = cloud.create_kms_key(&account, Region::UsEast1, Some("alias/secrets"));
    let other = cloud.create_kms_key(&account, Region::UsEast1, None);
    let kms: Arc<dyn Kms> = cloud.kms(&scope);
    let context: EncryptionContext = [("tenant".to_owned(), "acme".to_owned())].into();
    let plaintext = SecretSlice::from(b"data-key-bytes".to_vec());
    let blob = kms
        .encrypt("alias/secrets", &plaintext, &context)
        .await
        .unwrap();
    assert!(!blob.windows(14).any(|w| w == b"data-key-bytes"));
    let back = kms.decrypt(&arn, &blob, &context).await.unwrap();
    assert_eq!(back.expose_secret(), b"data-key-bytes");
    let wrong: EncryptionContext = [("tenant".to_owned(), "globex".to_owned())].into();
    let e = kms.decrypt(&arn, &blob, &wrong).await.unwrap_err();
    assert_eq!(e.code.as_deref(), Some("InvalidCiphertextException"));
    let e = kms.decrypt(&other, &blob, &context).await.unwrap_err();
    assert_eq!(e.code.as_deref(), Some("IncorrectKeyException"));
    let e = kms
        .encrypt("alias/nope", &plaintext, &context)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
}
