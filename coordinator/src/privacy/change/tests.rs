use serde_json::json;
use stacks::ids::Capability;

use super::*;
use crate::manifest::model::test_tenant;
use crate::secrets::BackendKind;
use crate::store::privacy::{SecretAction, SecretWrite};
use crate::store::sqlite::SqliteStore;
use crate::store::{PrivacyStore, Store};

const ACTOR: &str = "arn:aws:sts::111111111111:assumed-role/sre/alice";

fn s3_and_byok() -> PrivacyConfig {
    serde_json::from_value(json!({
        "storage": {"mode": "customer_s3", "bucket": "acme-docs", "region": "eu-west-1",
                    "credentials": "s3-credentials"},
        "llm": {"mode": "byok", "provider": "anthropic", "model": "claude-sonnet-4-5",
                "key": "llm-api-key"}
    }))
    .unwrap()
}

async fn with_secrets(store: &SqliteStore, tenant: &str, names: &[&str]) {
    for name in names {
        let write = SecretWrite {
            tenant: tenant.parse().unwrap(),
            name: name.parse().unwrap(),
            backend: BackendKind::Hosted,
            version: Some("1".into()),
            digest: Some("hmac-sha256:00".into()),
            action: SecretAction::Put,
            actor: ACTOR.into(),
            at: chrono::Utc::now(),
        };
        let audit = NewAuditEntry {
            actor: ACTOR.into(),
            tenant: Some(tenant.parse().unwrap()),
            action: "secret.put".into(),
            details: json!({}),
        };
        store.record_secret_write(write, audit).await.unwrap();
    }
}

#[tokio::test]
async fn a_tenant_never_configured_is_hosted_at_version_0() {
    let store = SqliteStore::in_memory().unwrap();
    let now = current(&store, &test_tenant("acme", &[])).await.unwrap();
    assert_eq!(now.version, 0);
    assert_eq!(now.config, PrivacyConfig::default());
    assert!(!now.hosted_fallback);
}

#[tokio::test]
async fn a_valid_change_is_written_and_audited_with_references_only() {
    let store = SqliteStore::in_memory().unwrap();
    let acme = test_tenant("acme", Capability::ALL);
    with_secrets(&store, "acme", &["s3-credentials", "llm-api-key"]).await;
    let Changed::Written { record, audit_seq } =
        set_config(&store, &acme, s3_and_byok(), Some(0), ACTOR)
            .await
            .unwrap()
    else {
        panic!("not written")
    };
    assert_eq!(record.version, 1);
    assert_eq!(record.actor, ACTOR);
    let entry = &store.audit_entries(audit_seq - 1, 1).await.unwrap()[0];
    assert_eq!(entry.action, "tenant.privacy_changed");
    assert_eq!(entry.actor, ACTOR);
    assert_eq!(entry.tenant.as_ref(), Some(&acme.id));
    assert_eq!(
        entry.details["storage"],
        json!({"from": "hosted", "to": "customer_s3"})
    );
    assert_eq!(entry.details["config"]["llm"]["key"], "llm-api-key");
    // The same request again changes nothing.
    let again = set_config(&store, &acme, s3_and_byok(), None, ACTOR)
        .await
        .unwrap();
    assert_eq!(again, Changed::Unchanged { version: 1 });
}

#[tokio::test]
async fn a_mode_the_tenant_is_not_entitled_to_changes_nothing() {
    let store = SqliteStore::in_memory().unwrap();
    let acme = test_tenant("acme", &[Capability::DedicatedAws]);
    with_secrets(&store, "acme", &["s3-credentials", "llm-api-key"]).await;
    let before = store.audit_entries(0, 100).await.unwrap().len();
    let err = set_config(&store, &acme, s3_and_byok(), None, ACTOR)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("`customer_storage`") && text.contains("`byo_ai_keys`"),
        "{text}"
    );
    assert_eq!(store.current_privacy(&acme.id).await.unwrap(), None);
    assert_eq!(store.audit_entries(0, 100).await.unwrap().len(), before);
}

#[tokio::test]
async fn referenced_secrets_must_exist() {
    let store = SqliteStore::in_memory().unwrap();
    let acme = test_tenant("acme", Capability::ALL);
    with_secrets(&store, "acme", &["s3-credentials"]).await;
    // Another tenant's secret of the same name does not count.
    with_secrets(&store, "other", &["llm-api-key"]).await;
    let ChangeError::Invalid { problems, .. } =
        set_config(&store, &acme, s3_and_byok(), None, ACTOR)
            .await
            .unwrap_err()
    else {
        panic!()
    };
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].field, "llm.key");
    assert!(
        problems[0]
            .message
            .contains("coordinator secret put --tenant acme llm-api-key")
    );
}

#[tokio::test]
async fn fallback_needs_a_reason_and_a_customer_managed_configuration() {
    let store = SqliteStore::in_memory().unwrap();
    let acme = test_tenant("acme", Capability::ALL);
    let ChangeError::Invalid { problems, .. } =
        set_fallback(&store, &acme, true, Some("  "), None, ACTOR)
            .await
            .unwrap_err()
    else {
        panic!()
    };
    let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["hosted_fallback.reason", "hosted_fallback"]);

    with_secrets(&store, "acme", &["s3-credentials", "llm-api-key"]).await;
    set_config(&store, &acme, s3_and_byok(), None, ACTOR)
        .await
        .unwrap();
    let Changed::Written { record, audit_seq } = set_fallback(
        &store,
        &acme,
        true,
        Some("INC-42: bucket migration"),
        Some(1),
        ACTOR,
    )
    .await
    .unwrap() else {
        panic!()
    };
    assert!(record.hosted_fallback);
    assert_eq!(record.config, s3_and_byok());
    let entry = &store.audit_entries(audit_seq - 1, 1).await.unwrap()[0];
    assert_eq!(entry.action, "tenant.hosted_fallback_enabled");
    assert_eq!(entry.details["reason"], "INC-42: bucket migration");

    // Going back to hosted everywhere clears fallback.
    let Changed::Written { record, .. } =
        set_config(&store, &acme, PrivacyConfig::default(), None, ACTOR)
            .await
            .unwrap()
    else {
        panic!()
    };
    assert!(!record.hosted_fallback);
    assert_eq!(record.fallback_reason, None);
}

#[tokio::test]
async fn a_stale_expected_version_is_a_conflict() {
    let store = SqliteStore::in_memory().unwrap();
    let acme = test_tenant("acme", Capability::ALL);
    with_secrets(&store, "acme", &["s3-credentials", "llm-api-key"]).await;
    set_config(&store, &acme, s3_and_byok(), Some(0), ACTOR)
        .await
        .unwrap();
    let err = set_config(&store, &acme, PrivacyConfig::default(), Some(0), ACTOR)
        .await
        .unwrap_err();
    assert!(matches!(err, ChangeError::Conflict(_)), "{err}");
    assert_eq!(current(&store, &acme).await.unwrap().config, s3_and_byok());
}
