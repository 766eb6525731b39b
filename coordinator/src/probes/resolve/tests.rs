use chrono::Duration as Age;
use serde_json::json;

use super::*;
use crate::privacy::PrivacyConfig;
use crate::probes::ProbeOutcome;
use crate::store::privacy::PrivacyChange;

const MAX_AGE: Duration = Duration::from_secs(600);

fn record(config: serde_json::Value, fallback: bool) -> PrivacyRecord {
    let config: PrivacyConfig = serde_json::from_value(config).unwrap();
    PrivacyRecord {
        tenant: "acme".parse().unwrap(),
        version: 3,
        digest: config.digest(),
        config,
        hosted_fallback: fallback,
        fallback_reason: fallback.then(|| "INC-1".to_owned()),
        change: PrivacyChange::Config,
        actor: "alice".into(),
        at: Utc::now(),
    }
}

fn customer() -> serde_json::Value {
    json!({
        "storage": {"mode": "customer_s3", "bucket": "acme-docs", "region": "eu-west-1",
                    "credentials": "s3"},
        "llm": {"mode": "byok", "provider": "anthropic", "model": "m", "key": "k"}
    })
}

fn probe(r: &PrivacyRecord, name: ProbeName, pass: bool, minutes_ago: i64) -> StoredProbe {
    StoredProbe {
        outcome: ProbeOutcome {
            tenant: r.tenant.clone(),
            probe: name,
            status: if pass {
                ProbeStatus::Passing
            } else {
                ProbeStatus::Failing
            },
            at: Utc::now() - Age::minutes(minutes_ago),
            latency_ms: 5,
            error: (!pass).then(|| {
                ProbeError::new(
                    &format!("{name}.access_denied_put"),
                    "AccessDenied",
                    "grant s3:PutObject",
                )
            }),
            detail: None,
        },
        last_passed_at: None,
        config_digest: r.digest.clone(),
    }
}

#[test]
fn a_hosted_tenant_resolves_to_hosted_without_any_probe() {
    let r = record(json!({}), false);
    let e = resolve(&r, &[], MAX_AGE, Utc::now());
    assert_eq!(
        (e.storage.clone(), e.llm.clone()),
        (Decision::Hosted, Decision::Hosted)
    );
    assert!(e.refusals().is_empty());
}

#[test]
fn a_customer_dependency_is_used_only_after_a_recent_pass_of_this_configuration() {
    let r = record(customer(), false);
    let probes = [
        probe(&r, ProbeName::Storage, true, 1),
        probe(&r, ProbeName::Llm, true, 2),
    ];
    let e = resolve(&r, &probes, MAX_AGE, Utc::now());
    assert!(matches!(e.storage, Decision::Customer { .. }), "{e:?}");
    assert!(matches!(e.llm, Decision::Customer { .. }), "{e:?}");
}

#[test]
fn a_failing_customer_dependency_never_resolves_to_hosted() {
    let r = record(customer(), false);
    let probes = [
        probe(&r, ProbeName::Storage, false, 1),
        probe(&r, ProbeName::Llm, true, 1),
    ];
    let e = resolve(&r, &probes, MAX_AGE, Utc::now());
    let Decision::Refused { error } = &e.storage else {
        panic!("{e:?}")
    };
    assert_eq!(error.code, "storage.access_denied_put");
    assert_eq!(error.remedy, "grant s3:PutObject");
    assert!(matches!(e.llm, Decision::Customer { .. }));
    assert_eq!(e.refusals().len(), 1);
}

#[test]
fn never_checked_stale_or_other_configuration_is_refused() {
    let r = record(customer(), false);
    // Never checked.
    let e = resolve(&r, &[], MAX_AGE, Utc::now());
    let codes: Vec<&str> = e
        .refusals()
        .iter()
        .map(|(_, err)| err.code.as_str())
        .collect();
    assert_eq!(codes, ["storage.not_validated", "llm.not_validated"]);
    // A pass for an older configuration.
    let mut old = probe(&r, ProbeName::Storage, true, 1);
    old.config_digest = "sha256:older".into();
    let e = resolve(&r, &[old], MAX_AGE, Utc::now());
    let Decision::Refused { error } = &e.storage else {
        panic!()
    };
    assert_eq!(error.code, "storage.not_validated");
    assert!(error.message.contains("changed"), "{error:?}");
    // A pass too long ago.
    let e = resolve(
        &r,
        &[probe(&r, ProbeName::Storage, true, 60)],
        MAX_AGE,
        Utc::now(),
    );
    let Decision::Refused { error } = &e.storage else {
        panic!()
    };
    assert_eq!(error.code, "storage.stale");
}

#[test]
fn with_fallback_enabled_a_failure_resolves_to_hosted_and_says_so() {
    let r = record(customer(), true);
    let probes = [probe(&r, ProbeName::Storage, false, 1)];
    let e = resolve(&r, &probes, MAX_AGE, Utc::now());
    let Decision::HostedFallback { reason, cause } = &e.storage else {
        panic!("{e:?}")
    };
    assert_eq!(reason.as_deref(), Some("INC-1"));
    assert_eq!(cause.code, "storage.access_denied_put");
    assert!(e.storage.usable());
    let Decision::HostedFallback { cause, .. } = &e.llm else {
        panic!("{e:?}")
    };
    assert_eq!(cause.code, "llm.not_validated");
}
