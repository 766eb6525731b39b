use serde_json::json;
use stacks::ids::Capability;

use super::*;
use crate::manifest::Tenant;

fn tenant(caps: &[Capability]) -> Tenant {
    crate::manifest::model::test_tenant("acme", caps)
}

fn config(value: serde_json::Value) -> PrivacyConfig {
    serde_json::from_value(value).unwrap()
}

const ALL: &[Capability] = Capability::ALL;

#[test]
fn the_default_is_hosted_for_everything() {
    let c = config(json!({}));
    assert_eq!(c, PrivacyConfig::default());
    assert_eq!(c.storage.managed_by(), ManagedBy::Vendor);
    assert_eq!(c.llm.managed_by(), ManagedBy::Vendor);
    assert!(!c.is_customer_managed());
    assert!(c.validate(&tenant(&[])).is_ok());
}

#[test]
fn a_full_customer_configuration_validates() {
    let c = config(json!({
        "storage": {"mode": "customer_s3", "bucket": "acme-docs", "region": "eu-west-1",
                    "endpoint": "https://s3.acme.example", "path_style": true,
                    "credentials": "s3-credentials",
                    "kms_key_arn": "arn:aws:kms:eu-west-1:222222222222:key/1234"},
        "llm": {"mode": "byok", "provider": "openai_compatible", "model": "gpt-4o",
                "base_url": "https://llm.acme.example/v1", "key": "llm-api-key"}
    }));
    c.validate(&tenant(ALL)).unwrap();
    assert!(c.is_customer_managed());
    let refs: Vec<&str> = c.secret_refs().iter().map(|n| n.as_str()).collect();
    assert_eq!(refs, ["s3-credentials", "llm-api-key"]);
    // Vision is required unless said otherwise.
    let LlmMode::Byok(b) = &c.llm else { panic!() };
    assert!(b.vision);
    // It round-trips through JSON unchanged.
    let again: PrivacyConfig = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
    assert_eq!(again, c);
}

#[test]
fn modes_need_their_capabilities_and_name_them() {
    let c = config(json!({
        "storage": {"mode": "deployed"},
        "llm": {"mode": "byok", "provider": "anthropic", "model": "claude-sonnet-4-5", "key": "k"}
    }));
    let problems = c.validate(&tenant(&[])).unwrap_err();
    let missing: Vec<_> = problems
        .iter()
        .filter_map(|p| p.missing_capability)
        .collect();
    assert_eq!(
        missing,
        [
            Capability::CustomerStorage,
            Capability::DedicatedAws,
            Capability::ByoAiKeys
        ]
    );
    assert!(
        problems[0].message.contains("`customer_storage`"),
        "{}",
        problems[0]
    );
    assert!(
        problems[0].message.contains("deploy.toml"),
        "{}",
        problems[0]
    );
    assert!(c.validate(&tenant(ALL)).is_ok());
}

#[test]
fn every_problem_is_reported_at_once() {
    let c = config(json!({
        "storage": {"mode": "customer_s3", "bucket": "acme-docs", "region": "eu-west-1",
                    "endpoint": "http://minio.internal:9000", "kms_key_arn": "not-an-arn"},
        "llm": {"mode": "byok", "provider": "bedrock", "model": " ", "key": "k",
                "base_url": "https://x"}
    }));
    let problems = c.validate(&tenant(ALL)).unwrap_err();
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "storage.endpoint",
            "storage.credentials",
            "storage.kms_key_arn",
            "llm.model",
            "llm.key",
            "llm.base_url"
        ]
    );
    assert!(problems[0].message.contains("https://"), "{}", problems[0]);
}

#[test]
fn keys_are_required_except_for_bedrock() {
    let no_key = config(
        json!({"llm": {"mode": "byok", "provider": "openai_compatible", "model": "gpt-4o"}}),
    );
    let problems = no_key.validate(&tenant(ALL)).unwrap_err();
    assert_eq!(problems[0].field, "llm.key");
    assert!(problems[0].message.contains("coordinator secret put"));
    let bedrock = config(json!({"llm": {"mode": "byok", "provider": "bedrock",
        "model": "anthropic.claude-3-5-sonnet-20240620-v1:0"}}));
    bedrock.validate(&tenant(ALL)).unwrap();
    // Bedrock goes through the tenant's role: dedicated_aws is needed too.
    let problems = bedrock
        .validate(&tenant(&[Capability::ByoAiKeys]))
        .unwrap_err();
    assert_eq!(
        problems[0].missing_capability,
        Some(Capability::DedicatedAws)
    );
}

#[test]
fn unknown_fields_and_modes_are_refused_by_the_parser() {
    for bad in [
        json!({"storage": {"mode": "customer_s3", "bucket": "b-b-b", "region": "eu-west-1", "secret_key": "x"}}),
        json!({"storage": {"mode": "ftp"}}),
        json!({"llm": {"mode": "byok", "provider": "acme-ai", "model": "m"}}),
        json!({"hosted_fallback": true}),
        json!({"storage": {"mode": "customer_s3", "bucket": "Not_A_Bucket", "region": "eu-west-1"}}),
        json!({"llm": {"mode": "byok", "provider": "anthropic", "model": "m", "key": "UPPER"}}),
    ] {
        assert!(
            serde_json::from_value::<PrivacyConfig>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn urls_must_be_https_or_loopback() {
    for good in [
        "https://s3.example.com",
        "https://h:9000/p",
        "http://127.0.0.1:5000",
        "http://localhost/x",
    ] {
        assert!(check_url(good).is_ok(), "{good}");
    }
    for bad in [
        "http://s3.example.com",
        "ftp://x",
        "https://",
        "https://user:pw@h",
        "http://127.0.0.1.evil.com",
        "https://a b",
    ] {
        assert!(check_url(bad).is_err(), "{bad}");
    }
}
