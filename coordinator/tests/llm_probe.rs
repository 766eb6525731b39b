//! The LLM probe against a local provider speaking the OpenAI and Anthropic
//! wire formats (`llm_probe/provider.rs`) and against the fake AWS for
//! Bedrock: a good key passes with the model in the detail; every failure
//! has its own code and remedy; the planted key never appears in an
//! outcome, an error, a `Debug` output or a log line.

#[path = "llm_probe/provider.rs"]
mod provider;
#[path = "llm_probe/support.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use coordinator::aws::bedrock::{FoundationModel, Modality};
use coordinator::probes::ProbeStatus;
use coordinator::probes::llm::failures;
use coordinator::secrets::SecretStore;
use provider::{Mode, Provider};
use serde_json::json;
use support::*;

#[tokio::test]
async fn hosted_keys_are_not_checked() {
    let w = world(None).await;
    let outcome = w.run(json!({"mode": "hosted"}), w.key()).await;
    assert_eq!(outcome.status, ProbeStatus::NotApplicable);
    assert!(w.cloud.calls().iter().all(|c| c.service != "bedrock"));
}

#[tokio::test]
async fn openai_a_good_key_passes_with_the_model_in_the_detail() {
    let p = Provider::start(KEY, OPENAI_MODELS, ANTHROPIC_MODELS).await;
    let w = world(Some(&p)).await;
    let detail = passed(&w.run(openai(&p, "gpt-4o", true), w.key()).await);
    assert!(
        detail.contains("`gpt-4o`") && detail.contains("reads images"),
        "{detail}"
    );
    // A text-only model is fine when documents are sent as text.
    passed(&w.run(openai(&p, "gpt-3.5-turbo", false), w.key()).await);
    assert_eq!(p.requests().len(), 2);
}

#[tokio::test]
async fn openai_failures_have_their_own_codes_and_remedies() {
    let p = Provider::start(KEY, OPENAI_MODELS, ANTHROPIC_MODELS).await;
    let w = world(Some(&p)).await;
    let wrong = MemoryStore::with(
        &w.tenant.id,
        "llm-api-key",
        "sk-proj-someOtherKey000000000000000WXYZ",
    );
    let (message, remedy) = failed(
        &w.run(openai(&p, "gpt-4o", true), wrong).await,
        failures::INVALID_KEY,
    );
    assert!(
        message.contains("HTTP 401") && message.contains("`llm-api-key`"),
        "{message}"
    );
    assert!(
        !message.contains("WXYZ"),
        "the provider's quote of the key is scrubbed: {message}"
    );
    assert!(
        remedy.contains("coordinator secret rotate --tenant acme llm-api-key"),
        "{remedy}"
    );

    let (message, remedy) = failed(
        &w.run(openai(&p, "gpt-5-turbo", true), w.key()).await,
        failures::UNKNOWN_MODEL,
    );
    assert!(message.contains("`gpt-5-turbo`"), "{message}");
    assert!(
        remedy.contains("`gpt-4o`") && remedy.contains("coordinator privacy set --tenant acme"),
        "{remedy}"
    );

    let (message, remedy) = failed(
        &w.run(openai(&p, "gpt-3.5-turbo", true), w.key()).await,
        failures::MODEL_WITHOUT_VISION,
    );
    assert!(message.contains("does not read images"), "{message}");
    assert!(
        remedy.contains("`gpt-4o`") && !remedy.contains("`gpt-3.5-turbo`"),
        "{remedy}"
    );

    let (message, _) = failed(
        &w.run(openai(&p, "whisper-1", true), w.key()).await,
        failures::UNSUPPORTED_MODEL,
    );
    assert!(message.contains("`whisper-1`"), "{message}");

    let switches = [
        (Mode::RateLimited, failures::RATE_LIMITED),
        (Mode::OutOfQuota, failures::QUOTA_EXCEEDED),
        (Mode::Forbidden, failures::KEY_WITHOUT_ACCESS),
        (Mode::Down, failures::PROVIDER_UNAVAILABLE),
    ];
    for (mode, code) in switches {
        p.set_mode(mode);
        failed(&w.run(openai(&p, "gpt-4o", true), w.key()).await, code);
    }
    p.set_mode(Mode::RateLimited);
    let (message, remedy) = failed(
        &w.run(openai(&p, "gpt-4o", true), w.key()).await,
        failures::RATE_LIMITED,
    );
    assert!(message.contains("retry after 20"), "{message}");
    assert!(remedy.contains("next interval"), "{remedy}");
    p.set_mode(Mode::OutOfQuota);
    let (_, remedy) = failed(
        &w.run(openai(&p, "gpt-4o", true), w.key()).await,
        failures::QUOTA_EXCEEDED,
    );
    assert!(
        remedy.contains("credit") || remedy.contains("spending limit"),
        "{remedy}"
    );
    p.set_mode(Mode::Forbidden);
    let (message, _) = failed(
        &w.run(openai(&p, "gpt-4o", true), w.key()).await,
        failures::KEY_WITHOUT_ACCESS,
    );
    assert!(
        message.contains("api.model.read"),
        "the provider's reason is shown: {message}"
    );
}

#[tokio::test]
async fn anthropic_a_good_key_passes_across_pages() {
    let p = Provider::start(KEY, OPENAI_MODELS, ANTHROPIC_MODELS).await;
    let w = world(Some(&p)).await;
    // The last model is on the third page (pages of two).
    let detail = passed(
        &w.run(anthropic("claude-3-7-sonnet-20250219", true), w.key())
            .await,
    );
    assert!(detail.contains("`claude-3-7-sonnet-20250219`"), "{detail}");
    let seen = p.requests();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen.iter()
            .all(|s| s.api == "anthropic" && s.anthropic_version.as_deref() == Some("2023-06-01"))
    );
    assert_eq!(
        seen[1].after_id.as_deref(),
        Some("claude-3-5-haiku-20241022")
    );
    // An alias resolves to its dated snapshot.
    let detail = passed(&w.run(anthropic("claude-sonnet-4-5", true), w.key()).await);
    assert!(detail.contains("claude-sonnet-4-5-20250929"), "{detail}");
}

#[tokio::test]
async fn anthropic_failures_have_their_own_codes_and_remedies() {
    let p = Provider::start(KEY, OPENAI_MODELS, ANTHROPIC_MODELS).await;
    let w = world(Some(&p)).await;
    let wrong = MemoryStore::with(&w.tenant.id, "llm-api-key", "sk-ant-api03-wrong");
    let (_, remedy) = failed(
        &w.run(anthropic("claude-sonnet-4-5", true), wrong).await,
        failures::INVALID_KEY,
    );
    assert!(remedy.contains("console.anthropic.com"), "{remedy}");
    failed(
        &w.run(anthropic("claude-4-opus", true), w.key()).await,
        failures::UNKNOWN_MODEL,
    );
    let (_, remedy) = failed(
        &w.run(anthropic("claude-3-5-haiku-20241022", true), w.key())
            .await,
        failures::MODEL_WITHOUT_VISION,
    );
    assert!(remedy.contains("`claude-sonnet-4-5-20250929`"), "{remedy}");
    let switches = [
        (Mode::RateLimited, failures::RATE_LIMITED),
        (Mode::OutOfQuota, failures::QUOTA_EXCEEDED),
        (Mode::Forbidden, failures::KEY_WITHOUT_ACCESS),
        (Mode::Down, failures::PROVIDER_UNAVAILABLE),
    ];
    for (mode, code) in switches {
        p.set_mode(mode);
        failed(
            &w.run(anthropic("claude-sonnet-4-5", true), w.key()).await,
            code,
        );
    }
}

#[tokio::test]
async fn a_missing_or_malformed_key_is_named_with_the_command_to_store_it() {
    let p = Provider::start(KEY, OPENAI_MODELS, ANTHROPIC_MODELS).await;
    let w = world(Some(&p)).await;
    let empty: Arc<dyn SecretStore> = Arc::new(MemoryStore::default());
    let (message, remedy) = failed(
        &w.run(openai(&p, "gpt-4o", true), empty).await,
        failures::KEY_MISSING,
    );
    assert!(message.contains("`llm-api-key`"), "{message}");
    assert!(
        remedy.contains("coordinator secret put --tenant acme llm-api-key"),
        "{remedy}"
    );
    let pasted = MemoryStore::with(&w.tenant.id, "llm-api-key", &format!("{KEY}\n"));
    failed(
        &w.run(anthropic("claude-sonnet-4-5", true), pasted).await,
        failures::INVALID_KEY,
    );
    assert!(
        p.requests().is_empty(),
        "no request is made without a usable key"
    );
}

#[tokio::test]
async fn unreachable_slow_and_wrong_endpoints_are_reported() {
    let p = Provider::start(KEY, OPENAI_MODELS, ANTHROPIC_MODELS).await;
    let w = world(Some(&p)).await;
    // Nothing listens there any more.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut config = openai(&p, "gpt-4o", true);
    config["base_url"] = json!(format!("http://{closed}/v1"));
    failed(
        &w.run(config, w.key()).await,
        failures::PROVIDER_UNAVAILABLE,
    );

    let mut config = openai(&p, "gpt-4o", true);
    config["base_url"] = json!(p.nowhere());
    let (message, remedy) = failed(&w.run(config, w.key()).await, failures::UNEXPECTED_RESPONSE);
    assert!(message.contains("HTTP 404"), "{message}");
    assert!(remedy.contains("base_url"), "{remedy}");

    p.set_mode(Mode::Slow(Duration::from_secs(5)));
    let (message, _) = failed(
        &w.run(openai(&p, "gpt-4o", true), w.key()).await,
        failures::PROVIDER_UNAVAILABLE,
    );
    assert!(message.contains("timed out"), "{message}");
}

#[tokio::test]
async fn bedrock_through_the_tenants_role() {
    let w = world(None).await;
    let account = w.tenant.account_id.clone();
    w.cloud.set_foundation_models(
        &account,
        w.tenant.region,
        vec![
            FoundationModel::new(
                "anthropic.claude-3-5-sonnet-20240620-v1:0",
                &[Modality::Text, Modality::Image],
            ),
            FoundationModel::new("amazon.nova-micro-v1:0", &[Modality::Text]),
            FoundationModel::new("amazon.titan-embed-text-v2:0", &[Modality::Text]),
        ],
    );
    let none: Arc<dyn SecretStore> = Arc::new(MemoryStore::default());
    let detail = passed(
        &w.run(
            bedrock("anthropic.claude-3-5-sonnet-20240620-v1:0"),
            none.clone(),
        )
        .await,
    );
    assert!(
        detail.contains("anthropic.claude-3-5-sonnet-20240620-v1:0")
            && detail.contains("reads images"),
        "{detail}"
    );
    passed(
        &w.run(
            bedrock("eu.anthropic.claude-3-5-sonnet-20240620-v1:0"),
            none.clone(),
        )
        .await,
    );
    let calls = w.cloud.calls();
    let list = calls
        .iter()
        .find(|c| c.operation == "ListFoundationModels")
        .unwrap();
    assert_eq!(
        (list.account.as_ref(), list.region),
        (Some(&account), Some(w.tenant.region))
    );

    let (_, remedy) = failed(
        &w.run(bedrock("anthropic.claude-opus-9-v1:0"), none.clone())
            .await,
        failures::UNKNOWN_MODEL,
    );
    assert!(
        remedy.contains("anthropic.claude-3-5-sonnet-20240620-v1:0"),
        "{remedy}"
    );
    let (message, remedy) = failed(
        &w.run(bedrock("amazon.nova-micro-v1:0"), none.clone()).await,
        failures::MODEL_WITHOUT_VISION,
    );
    assert!(message.contains("amazon.nova-micro-v1:0"), "{message}");
    assert!(
        remedy.contains("anthropic.claude-3-5-sonnet-20240620-v1:0"),
        "{remedy}"
    );

    w.cloud.deny_bedrock(&account, true);
    let (message, remedy) = failed(
        &w.run(bedrock("amazon.nova-micro-v1:0"), none.clone()).await,
        failures::BEDROCK_ACCESS_DENIED,
    );
    assert!(
        message.contains("bedrock:ListFoundationModels"),
        "{message}"
    );
    assert!(
        remedy.contains("bedrock:ListFoundationModels")
            && remedy.contains("docproc-coordinator-deploy"),
        "{remedy}"
    );
    w.cloud.deny_bedrock(&account, false);

    w.cloud.deny_assume(&w.tenant.role_arn);
    let (_, remedy) = failed(
        &w.run(bedrock("amazon.nova-micro-v1:0"), none).await,
        failures::TENANT_ROLE_UNREACHABLE,
    );
    assert!(
        remedy.contains("coordinator tenant verify acme"),
        "{remedy}"
    );
}

/// Every path, with every log line captured at TRACE: the key is in none
/// of them, nor in the probe's or the target's `Debug`.
#[tokio::test]
async fn the_key_never_leaks() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let p = Provider::start(KEY, OPENAI_MODELS, ANTHROPIC_MODELS).await;
    let w = world(Some(&p)).await;
    passed(&w.run(openai(&p, "gpt-4o", true), w.key()).await);
    passed(&w.run(anthropic("claude-sonnet-4-5", true), w.key()).await);
    for mode in [
        Mode::EchoKey,
        Mode::RateLimited,
        Mode::OutOfQuota,
        Mode::Forbidden,
        Mode::Down,
    ] {
        p.set_mode(mode);
        w.run(openai(&p, "gpt-4o", true), w.key()).await;
        w.run(anthropic("claude-sonnet-4-5", true), w.key()).await;
    }
    p.set_mode(Mode::EchoKey);
    let (message, _) = failed(
        &w.run(openai(&p, "gpt-4o", true), w.key()).await,
        failures::INVALID_KEY,
    );
    assert!(message.contains("<redacted>"), "{message}");

    // Bedrock goes through the role: its session must not leak either.
    w.cloud.set_foundation_models(
        &w.tenant.account_id,
        w.tenant.region,
        vec![FoundationModel::new(
            "amazon.nova-pro-v1:0",
            &[Modality::Image],
        )],
    );
    passed(&w.run(bedrock("amazon.nova-pro-v1:0"), w.key()).await);

    let target = w.target(openai(&p, "gpt-4o", true), w.key());
    let debug = format!("{:?} {:?}", w.probe, target);
    assert!(!debug.contains("PLANTED"), "{debug}");
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("assumed tenant role"), "logs were captured");
    assert!(
        !logs.contains("PLANTED") && !logs.contains(KEY),
        "the key is in the logs"
    );
}
