//! What the LLM probe's tests share: the planted key, the model lists of the
//! local provider, an in-memory secret store, the fake AWS with the tenant's
//! deploy role, configurations per provider, and assertions on outcomes
//! (among them that the key is nowhere in one).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coordinator::access;
use coordinator::aws::fake::{FakeCloud, Trust};
use coordinator::manifest::Tenant;
use coordinator::privacy::PrivacyConfig;
use coordinator::probes::llm::failures;
use coordinator::probes::{
    self, LlmProbe, Probe, ProbeName, ProbeOutcome, ProbeStatus, ProbeTarget,
};
use coordinator::secrets::SecretStore;
use serde_json::json;
use stacks::ids::{Capability, Region};

use super::provider::Provider;

/// The planted key: must never show up anywhere.
pub const KEY: &str = "sk-proj-PLANTEDllmKEY0123456789abcdefXYZ9";
pub const DEADLINE: Duration = Duration::from_secs(10);

pub const OPENAI_MODELS: &[&str] = &[
    "gpt-4o",
    "gpt-4o-2024-08-06",
    "gpt-4o-mini",
    "gpt-3.5-turbo",
    "whisper-1",
];
pub const ANTHROPIC_MODELS: &[&str] = &[
    "claude-sonnet-4-5-20250929",
    "claude-3-5-haiku-20241022",
    "claude-3-haiku-20240307",
    "claude-3-opus-20240229",
    "claude-3-7-sonnet-20250219",
];

pub use coordinator::secrets::memory::MemorySecrets as MemoryStore;

/// The fake AWS with the tenant's deploy role, the probe, and the tenant.
pub struct World {
    pub cloud: FakeCloud,
    pub probe: Arc<dyn Probe>,
    pub tenant: Tenant,
}

pub async fn world(provider: Option<&Provider>) -> World {
    let cloud = FakeCloud::new();
    let account = "222222222222".parse().unwrap();
    let external_id = "planted-external-id-CCCCCCCCCCCCCCCCCCCCCCCC"
        .parse()
        .unwrap();
    let role_arn = cloud.add_role(
        &account,
        "docproc-coordinator-deploy",
        Trust::requiring(&external_id),
    );
    let tenant = Tenant {
        id: "acme".parse().unwrap(),
        account_id: account,
        region: Region::EuWest1,
        external_id,
        wave: "canary".parse().unwrap(),
        capabilities: [Capability::DedicatedAws, Capability::ByoAiKeys]
            .into_iter()
            .collect(),
        role_arn,
        retention_days: stacks::builtin::storage::RetentionDays::new(7).unwrap(),
    };
    let operator = access::operator(&cloud).await.unwrap();
    let mut probe = LlmProbe::new(operator)
        .unwrap()
        .with_timeouts(Duration::from_secs(2), Duration::from_secs(2))
        .unwrap();
    if let Some(provider) = provider {
        probe = probe.with_anthropic_base_url(provider.anthropic_base_url());
    }
    World {
        cloud,
        probe: Arc::new(probe),
        tenant,
    }
}

impl World {
    pub fn target(&self, llm: serde_json::Value, secrets: Arc<dyn SecretStore>) -> ProbeTarget {
        let config: PrivacyConfig = serde_json::from_value(json!({ "llm": llm })).unwrap();
        config
            .validate(&self.tenant)
            .expect("a valid configuration");
        ProbeTarget {
            tenant: self.tenant.clone(),
            config,
            secrets,
            connector: Arc::new(self.cloud.clone()),
            operator: access::Operator::from_identity(self.cloud.operator_identity()),
            sessions: Arc::default(),
            storage_outputs: None,
            worker_outputs: None,
        }
    }

    pub async fn run(&self, llm: serde_json::Value, secrets: Arc<dyn SecretStore>) -> ProbeOutcome {
        let target = self.target(llm, secrets);
        let outcome = probes::run(self.probe.as_ref(), &target, DEADLINE).await;
        assert_eq!(outcome.probe, ProbeName::Llm);
        assert_no_key(&outcome);
        outcome
    }

    pub fn key(&self) -> Arc<dyn SecretStore> {
        MemoryStore::with(&self.tenant.id, "llm-api-key", KEY)
    }
}

pub fn openai(provider: &Provider, model: &str, vision: bool) -> serde_json::Value {
    json!({"mode": "byok", "provider": "openai_compatible", "model": model,
           "base_url": provider.openai_base_url(), "key": "llm-api-key", "vision": vision})
}

pub fn anthropic(model: &str, vision: bool) -> serde_json::Value {
    json!({"mode": "byok", "provider": "anthropic", "model": model, "key": "llm-api-key", "vision": vision})
}

pub fn bedrock(model: &str) -> serde_json::Value {
    json!({"mode": "byok", "provider": "bedrock", "model": model})
}

/// Neither the key nor a piece of it is in the outcome, its JSON or Debug.
pub fn assert_no_key(outcome: &ProbeOutcome) {
    let json = serde_json::to_string(outcome).unwrap();
    let debug = format!("{outcome:?}");
    for text in [&json, &debug] {
        assert!(!text.contains(KEY), "the key leaked: {text}");
        assert!(!text.contains("PLANTED"), "part of the key leaked: {text}");
        assert!(!text.contains("XYZ9"), "the key's tail leaked: {text}");
    }
}

/// The outcome failed with `code`; returns (message, remedy).
pub fn failed(outcome: &ProbeOutcome, code: &str) -> (String, String) {
    assert_eq!(outcome.status, ProbeStatus::Failing, "{outcome:#?}");
    let error = outcome.error.as_ref().unwrap();
    assert_eq!(error.code, code, "{error:#?}");
    assert!(failures::CODES.contains(&code));
    assert!(!error.remedy.is_empty());
    (error.message.clone(), error.remedy.clone())
}

pub fn passed(outcome: &ProbeOutcome) -> String {
    assert_eq!(outcome.status, ProbeStatus::Passing, "{outcome:#?}");
    outcome.detail.clone().unwrap()
}

/// A log writer into memory.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
