//! Every way the LLM probe fails, as a stable code with a message and a
//! remedy in words a tenant's admin understands. One constructor per code;
//! `docs/runbooks/llm-probe-failures.md` has one section per code in
//! [`CODES`] (a test checks).
//!
//! What this module must never do: take a key. Messages are built from the
//! provider, the secret's *name*, HTTP statuses and the provider's own
//! error text after `super::http` scrubbed it.

use stacks::ids::TenantId;

use crate::access::AccessError;
use crate::privacy::Provider;
use crate::probes::ProbeError;
use crate::secrets::{SecretError, SecretName};

/// The key's secret does not exist (or the configuration names none).
pub const KEY_MISSING: &str = "llm.key_missing";
/// The secret store could not be read.
pub const KEY_UNREADABLE: &str = "llm.key_unreadable";
/// The provider rejected the key (HTTP 401), or it is malformed.
pub const INVALID_KEY: &str = "llm.invalid_key";
/// The key is valid but may not list models (HTTP 403).
pub const KEY_WITHOUT_ACCESS: &str = "llm.key_without_access";
/// Too many requests (HTTP 429, or Bedrock throttling).
pub const RATE_LIMITED: &str = "llm.rate_limited";
/// The account behind the key has no credit or quota left.
pub const QUOTA_EXCEEDED: &str = "llm.quota_exceeded";
/// 5xx, timeouts, connection errors.
pub const PROVIDER_UNAVAILABLE: &str = "llm.provider_unavailable";
/// An answer that is not the provider's API (wrong base URL, a proxy page).
pub const UNEXPECTED_RESPONSE: &str = "llm.unexpected_response";
/// The configured model is not among those the key can see.
pub const UNKNOWN_MODEL: &str = "llm.unknown_model";
/// Documents are sent as images, and the model does not read images.
pub const MODEL_WITHOUT_VISION: &str = "llm.model_without_vision";
/// Documents are sent as images, and the model is not in the table of
/// supported models, so nobody has confirmed it reads them.
pub const UNSUPPORTED_MODEL: &str = "llm.unsupported_model";
/// The tenant's role may not call `bedrock:ListFoundationModels`.
pub const BEDROCK_ACCESS_DENIED: &str = "llm.bedrock_access_denied";
/// The tenant's role could not be assumed (Bedrock only).
pub const TENANT_ROLE_UNREACHABLE: &str = "llm.tenant_role_unreachable";
/// The probe's deadline passed (reported by [`crate::probes::run`]).
pub const TIMEOUT: &str = "llm.timeout";

/// Every code the LLM probe can report.
pub const CODES: &[&str] = &[
    KEY_MISSING,
    KEY_UNREADABLE,
    INVALID_KEY,
    KEY_WITHOUT_ACCESS,
    RATE_LIMITED,
    QUOTA_EXCEEDED,
    PROVIDER_UNAVAILABLE,
    UNEXPECTED_RESPONSE,
    UNKNOWN_MODEL,
    MODEL_WITHOUT_VISION,
    UNSUPPORTED_MODEL,
    BEDROCK_ACCESS_DENIED,
    TENANT_ROLE_UNREACHABLE,
    TIMEOUT,
];

/// How a provider is named to people.
pub(super) fn provider_name(provider: Provider) -> &'static str {
    match provider {
        Provider::OpenaiCompatible => "the OpenAI-compatible API",
        Provider::Anthropic => "Anthropic",
        Provider::Bedrock => "AWS Bedrock",
    }
}

/// Where the customer manages keys for `provider`.
fn key_console(provider: Provider) -> &'static str {
    match provider {
        Provider::OpenaiCompatible => {
            "the provider's console (for OpenAI: https://platform.openai.com/api-keys)"
        }
        Provider::Anthropic => {
            "the Anthropic Console (https://console.anthropic.com/settings/keys)"
        }
        Provider::Bedrock => "the AWS console",
    }
}

/// What to run once the cause is fixed.
fn recheck(tenant: &TenantId) -> String {
    format!("then run `coordinator check --tenant {tenant} --probe llm`")
}

/// A short list for a remedy: the first few, and how many more.
fn few(ids: &[String]) -> String {
    const SHOWN: usize = 8;
    if ids.is_empty() {
        return "none".into();
    }
    let mut text = ids
        .iter()
        .take(SHOWN)
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > SHOWN {
        text.push_str(&format!(" and {} more", ids.len() - SHOWN));
    }
    text
}

pub(super) fn key_not_configured(tenant: &TenantId, provider: Provider) -> ProbeError {
    ProbeError::new(
        KEY_MISSING,
        format!(
            "the LLM configuration names no secret holding the {} key",
            provider_name(provider)
        ),
        format!(
            "store the key with `coordinator secret put --tenant {tenant} llm-api-key` (the value is read from stdin), set `key = \"llm-api-key\"` in the [llm] section and apply it with `coordinator privacy set --tenant {tenant} --file privacy.toml`; {}",
            recheck(tenant)
        ),
    )
}

pub(super) fn key_missing(tenant: &TenantId, name: &SecretName, location: &str) -> ProbeError {
    ProbeError::new(
        KEY_MISSING,
        format!("the secret `{name}` that should hold the LLM key does not exist in {location}"),
        format!(
            "store the key with `coordinator secret put --tenant {tenant} {name}` (the value is read from stdin, never from the command line); {}",
            recheck(tenant)
        ),
    )
}

pub(super) fn key_unreadable(
    tenant: &TenantId,
    name: &SecretName,
    error: &SecretError,
) -> ProbeError {
    // SecretError never carries a value.
    ProbeError::new(
        KEY_UNREADABLE,
        format!("the secret `{name}` holding the LLM key cannot be read: {error}"),
        format!(
            "this is the secret store, not the LLM provider: check that the coordinator may read the tenant's secret store (for Secrets Manager or SSM in the tenant's account: the deploy role's permissions and the KMS key policy); `coordinator secret list --tenant {tenant}` shows whether it is reachable; {}",
            recheck(tenant)
        ),
    )
}

pub(super) fn key_malformed(tenant: &TenantId, name: &SecretName) -> ProbeError {
    ProbeError::new(
        INVALID_KEY,
        format!(
            "the secret `{name}` is empty or holds whitespace or control characters (often a pasted line break), which no API key has"
        ),
        format!(
            "store the key again without surrounding spaces or line breaks: `coordinator secret rotate --tenant {tenant} {name} --file key.txt`; {}",
            recheck(tenant)
        ),
    )
}

pub(super) fn invalid_key(
    tenant: &TenantId,
    provider: Provider,
    name: &SecretName,
    said: &str,
) -> ProbeError {
    ProbeError::new(
        INVALID_KEY,
        format!(
            "{} rejected the key in secret `{name}` (HTTP 401){said}",
            provider_name(provider)
        ),
        format!(
            "the key is wrong, revoked or expired, or belongs to another provider or base URL: create a new key in {}, store it with `coordinator secret rotate --tenant {tenant} {name}`; {}",
            key_console(provider),
            recheck(tenant)
        ),
    )
}

pub(super) fn key_without_access(
    tenant: &TenantId,
    provider: Provider,
    name: &SecretName,
    said: &str,
) -> ProbeError {
    let hint = match provider {
        Provider::OpenaiCompatible => {
            "for OpenAI: a restricted key needs Read permission on Models and Write on Model capabilities, and the project must allow the model"
        }
        Provider::Anthropic => {
            "for Anthropic: the key's workspace must not be archived or restricted, and the organization must have API access"
        }
        Provider::Bedrock => "",
    };
    ProbeError::new(
        KEY_WITHOUT_ACCESS,
        format!(
            "{} accepted the key in secret `{name}` but refused it access (HTTP 403){said}",
            provider_name(provider)
        ),
        format!(
            "give the key access to the models in {} ({hint}), or create a key that has it and store it with `coordinator secret rotate --tenant {tenant} {name}`; {}",
            key_console(provider),
            recheck(tenant)
        ),
    )
}

pub(super) fn rate_limited(tenant: &TenantId, provider: Provider, said: &str) -> ProbeError {
    ProbeError::new(
        RATE_LIMITED,
        format!("{} is rate limiting the key{said}", provider_name(provider)),
        format!(
            "usually temporary: the probe runs again at its next interval. If it persists, the key's requests-per-minute limit is too low for the tenant's volume (or shared with other applications): raise the limit or the usage tier with {}, or give the tenant a key of its own; {}",
            provider_name(provider),
            recheck(tenant)
        ),
    )
}

pub(super) fn quota_exceeded(tenant: &TenantId, provider: Provider, said: &str) -> ProbeError {
    ProbeError::new(
        QUOTA_EXCEEDED,
        format!(
            "the account behind the key has no quota or credit left at {}{said}",
            provider_name(provider)
        ),
        format!(
            "the customer must add credit or raise the spending limit in {} (billing settings); no new key is needed; {}",
            key_console(provider),
            recheck(tenant)
        ),
    )
}

pub(super) fn provider_unavailable(
    tenant: &TenantId,
    provider: Provider,
    what: &str,
) -> ProbeError {
    ProbeError::new(
        PROVIDER_UNAVAILABLE,
        format!("{} could not be reached: {what}", provider_name(provider)),
        format!(
            "usually an outage at the provider (check its status page) or a network problem between the coordinator and the provider (firewall, proxy, DNS; for a self-hosted OpenAI-compatible service: is it running and is `base_url` right?); the probe runs again at its next interval; {}",
            recheck(tenant)
        ),
    )
}

pub(super) fn unexpected_response(tenant: &TenantId, provider: Provider, what: &str) -> ProbeError {
    ProbeError::new(
        UNEXPECTED_RESPONSE,
        format!(
            "the answer did not come from {}'s API: {what}",
            provider_name(provider)
        ),
        match provider {
            Provider::OpenaiCompatible => format!(
                "`base_url` must be the API root that serves `GET /models` (for OpenAI `https://api.openai.com/v1`, usually ending in `/v1`), not a web page or a proxy's login page; fix it with `coordinator privacy set --tenant {tenant} --file privacy.toml`; {}",
                recheck(tenant)
            ),
            Provider::Anthropic => format!(
                "a proxy or firewall between the coordinator and api.anthropic.com may be answering instead of Anthropic: check the coordinator's network path; {}",
                recheck(tenant)
            ),
            Provider::Bedrock => format!(
                "check that Bedrock is offered in the tenant's region (the probe lists models there); if the message names a validation error, report it to the vendor's support; {}",
                recheck(tenant)
            ),
        },
    )
}

pub(super) fn unknown_model(
    tenant: &TenantId,
    provider: Provider,
    model: &str,
    available: &[String],
) -> ProbeError {
    ProbeError::new(
        UNKNOWN_MODEL,
        format!(
            "{} does not offer the model `{model}` to this key ({} models listed)",
            provider_name(provider),
            available.len()
        ),
        format!(
            "check the spelling of `model` (ids are case-sensitive); models this key can use include {}. Set one with `coordinator privacy set --tenant {tenant} --file privacy.toml`, or give the key access to `{model}`; {}",
            few(available),
            recheck(tenant)
        ),
    )
}

pub(super) fn model_without_vision(
    tenant: &TenantId,
    provider: Provider,
    model: &str,
    vision_models: &[String],
) -> ProbeError {
    ProbeError::new(
        MODEL_WITHOUT_VISION,
        format!(
            "the model `{model}` at {} does not read images, and this tenant's documents are sent as images (`vision = true`)",
            provider_name(provider)
        ),
        format!(
            "choose a model that reads images; this key can use {} (see the supported-models table in docs/admin/llm-bring-your-own-keys.md). Set it with `coordinator privacy set --tenant {tenant} --file privacy.toml`; {}",
            few(vision_models),
            recheck(tenant)
        ),
    )
}

pub(super) fn unsupported_model(
    tenant: &TenantId,
    provider: Provider,
    model: &str,
    vision_models: &[String],
) -> ProbeError {
    ProbeError::new(
        UNSUPPORTED_MODEL,
        format!(
            "the model `{model}` exists at {}, but it is not in the table of supported models, so it is not known to read images (`vision = true`)",
            provider_name(provider)
        ),
        format!(
            "choose a supported model that reads images; this key can use {}. Set it with `coordinator privacy set --tenant {tenant} --file privacy.toml`. To have `{model}` added to the table, ask the vendor's support; {}",
            few(vision_models),
            recheck(tenant)
        ),
    )
}

pub(super) fn bedrock_access_denied(tenant: &TenantId, said: &str) -> ProbeError {
    ProbeError::new(
        BEDROCK_ACCESS_DENIED,
        format!(
            "the tenant's role may not list Bedrock models (bedrock:ListFoundationModels was denied): {said}"
        ),
        format!(
            "the customer must allow `bedrock:ListFoundationModels` (Resource `*`) to the role docproc-coordinator-deploy in their account, and check that no SCP or permissions boundary denies it (docs/admin/llm-bring-your-own-keys.md has the policy); {}",
            recheck(tenant)
        ),
    )
}

pub(super) fn tenant_role_unreachable(tenant: &TenantId, error: &AccessError) -> ProbeError {
    // AccessError names the role and says what to check; it has no secrets.
    ProbeError::new(
        TENANT_ROLE_UNREACHABLE,
        format!("Bedrock is reached through the tenant's role, which failed: {error}"),
        format!(
            "this is the tenant's role, not Bedrock: `coordinator tenant verify {tenant}` shows what is wrong (see docs/runbooks/onboarding.md); {}",
            recheck(tenant)
        ),
    )
}
