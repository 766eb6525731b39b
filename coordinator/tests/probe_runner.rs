//! The probe runner on the fake cloud: outcomes are recorded with the
//! configuration they checked, and a secret store that cannot be opened
//! fails only the probes that would read a secret.

mod support;

use std::sync::Arc;

use coordinator::access;
use coordinator::privacy::change;
use coordinator::probes::runner::Checker;
use coordinator::probes::{ProbeName, ProbeStatus};
use coordinator::store::sqlite::SqliteStore;
use coordinator::store::{PrivacyStore, ProbeStore};
use support::{TenantSpec, fake_for, manifest};

#[tokio::test]
async fn an_unopenable_secret_store_fails_only_the_probes_that_read_a_secret() {
    let tenants = vec![TenantSpec::numbered(
        "acme",
        1,
        "eu-west-1",
        &["dedicated_aws", "byo_ai_keys", "customer_storage"],
    )];
    // The default hosted store's master key file does not exist.
    let m = Arc::new(manifest(&tenants));
    let fake = fake_for(&tenants);
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let acme = &m.tenants[0];
    // Storage through the tenant's role (no secret); the LLM key in a secret.
    support::record_secret_put(store.as_ref(), &acme.id, "llm-api-key", "test").await;
    let config = serde_json::from_value(serde_json::json!({
        "storage": {"mode": "customer_s3", "bucket": "acme-docs", "region": "eu-west-1"},
        "llm": {"mode": "byok", "provider": "anthropic", "model": "claude-sonnet-4-5", "key": "llm-api-key"}
    }))
    .unwrap();
    change::set_config(store.as_ref(), acme, config, Some(0), "test")
        .await
        .unwrap();
    let operator = access::operator(&fake).await.unwrap();
    let checker =
        Checker::standard(m.clone(), store.clone(), Arc::new(fake), operator, []).unwrap();

    let stored = checker.check(acme, None).await.unwrap();
    let outcome = |p| stored.iter().find(|s| s.outcome.probe == p).unwrap();
    let llm = &outcome(ProbeName::Llm).outcome;
    assert_eq!(llm.status, ProbeStatus::Failing);
    let error = llm.error.as_ref().unwrap();
    assert_eq!(error.code, "llm.secret_store_unavailable");
    assert!(error.message.contains("master key"), "{error:?}");
    // The storage probe reads no secret: it ran (the fake has no such
    // bucket, so it fails with its own code, not the store's).
    let storage = &outcome(ProbeName::Storage).outcome;
    assert_eq!(
        storage.error.as_ref().unwrap().code,
        "storage.bucket_missing"
    );
    // The workers' probes ran too: no worker stack, nothing to check.
    assert_eq!(
        outcome(ProbeName::Queues).outcome.status,
        ProbeStatus::NotApplicable
    );

    // Recorded, with the configuration they checked.
    let digest = store
        .current_privacy(&acme.id)
        .await
        .unwrap()
        .unwrap()
        .digest;
    let recorded = store.probes(Some(&acme.id)).await.unwrap();
    assert_eq!(recorded.len(), 4);
    assert!(recorded.iter().all(|p| p.config_digest == digest));
}

/// The storage probe (bucket through the role), the queue probe and the
/// secret store in the tenant's account (opened on every check) share one
/// role session per tenant: three rounds, one AssumeRole.
#[tokio::test]
async fn probe_rounds_reuse_each_tenants_role_session() {
    let tenants = vec![TenantSpec::numbered(
        "acme",
        1,
        "eu-west-1",
        &["dedicated_aws", "byo_ai_keys", "customer_storage"],
    )];
    let text = support::manifest_text(&tenants, "coordinator.db")
        + "\n[secrets]\nbackend = \"secrets_manager\"\naccount = \"tenant\"\n";
    let m = coordinator::manifest::from_text(std::path::Path::new("deploy.toml"), text)
        .unwrap_or_else(|e| panic!("test manifest is invalid: {}", e.report.render()))
        .manifest;
    let m = Arc::new(m);
    let fake = support::fake_with_agents(&m);
    let bucket: stacks::aws_names::BucketName = "acme-docs".parse().unwrap();
    fake.add_bucket(&bucket, stacks::ids::Region::EuWest1);
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    support::deploy_on(&fake, &m, store.as_ref()).await;
    let acme = &m.tenants[0];
    let config = serde_json::from_value(serde_json::json!({
        "storage": {"mode": "customer_s3", "bucket": "acme-docs", "region": "eu-west-1"}
    }))
    .unwrap();
    change::set_config(store.as_ref(), acme, config, Some(0), "test")
        .await
        .unwrap();
    let operator = access::operator(&fake).await.unwrap();
    let checker = Checker::standard(
        m.clone(),
        store.clone(),
        Arc::new(fake.clone()),
        operator,
        [],
    )
    .unwrap();
    let before = fake.assume_count();
    for _ in 0..3 {
        let stored = checker.check(acme, None).await.unwrap();
        for probe in [ProbeName::Storage, ProbeName::Queues] {
            let outcome = &stored
                .iter()
                .find(|s| s.outcome.probe == probe)
                .unwrap()
                .outcome;
            assert_eq!(outcome.status, ProbeStatus::Passing, "{outcome:?}");
        }
    }
    assert_eq!(
        fake.assume_count() - before,
        1,
        "one AssumeRole for three rounds of the storage and queue probes and the secret store"
    );
}
