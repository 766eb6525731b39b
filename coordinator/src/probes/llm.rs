//! The LLM probe: does a tenant's own LLM key work for the model its
//! documents are processed with?
//!
//! For a tenant on the vendor's hosted keys there is nothing to check. For
//! a customer key (`llm.mode = "byok"`) the probe
//!
//! 1. reads the key from the tenant's secret store (Bedrock has none: it is
//!    reached through the tenant's role);
//! 2. lists the models the key can use: `GET {base_url}/models` at an
//!    OpenAI-compatible API, `GET /v1/models` at Anthropic, Bedrock's
//!    `ListFoundationModels` in the tenant's account and region;
//! 3. checks the configured model is among them and, when the tenant's
//!    documents are sent as images, that it reads images ([`models`]: the
//!    one table of supported models and their vision flag).
//!
//! Each failure has a stable code, a message and a remedy ([`failures`];
//! `docs/runbooks/llm-probe-failures.md`). The probe makes each call once:
//! no retries beyond the AWS SDK's own, so a rate limit shows as one.
//!
//! What this module must never do: log, format or return the key. It lives
//! in a [`secrecy::SecretString`] from the store to the one request header
//! that carries it, and provider error text is scrubbed before it is shown.
//! It never invokes a model either (that would cost the customer money).

mod bedrock;
pub mod failures;
mod http;
pub mod models;
mod verdict;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;

pub use http::{ANTHROPIC_BASE_URL, ANTHROPIC_VERSION, OPENAI_BASE_URL};

use super::{Finding, Probe, ProbeError, ProbeName, ProbeTarget};
use crate::access::Operator;
use crate::privacy::config::Byok;
use crate::privacy::{LlmMode, Provider};
use crate::secrets::{SecretError, SecretName};

/// A model as the provider listed it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    id: String,
    /// What the provider says about images (Bedrock's `inputModalities`);
    /// `None` when it says nothing (OpenAI, Anthropic).
    reads_images: Option<bool>,
}

impl Listed {
    fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            reads_images: None,
        }
    }
}

/// The HTTPS client could not be built (no TLS roots, ...).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTPS client for LLM providers")]
pub struct ClientBuildError(#[source] reqwest::Error);

/// Checks a tenant's own LLM key. Cheap to clone; one HTTPS connection pool
/// for every tenant.
#[derive(Clone)]
pub struct LlmProbe {
    http: reqwest::Client,
    operator: Operator,
    anthropic_base_url: String,
}

impl fmt::Debug for LlmProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmProbe")
            .field("operator", &self.operator.actor())
            .field("anthropic_base_url", &self.anthropic_base_url)
            .finish_non_exhaustive()
    }
}

impl LlmProbe {
    /// A probe whose Bedrock checks enter tenants' accounts as `operator`
    /// (the identity of every other tenant call), with
    /// `http::CONNECT_TIMEOUT` and `http::REQUEST_TIMEOUT`.
    pub fn new(operator: Operator) -> Result<Self, ClientBuildError> {
        Ok(Self {
            http: http::client(http::CONNECT_TIMEOUT, http::REQUEST_TIMEOUT)
                .map_err(ClientBuildError)?,
            operator,
            anthropic_base_url: ANTHROPIC_BASE_URL.to_owned(),
        })
    }

    /// Talks to Anthropic at `url` instead of [`ANTHROPIC_BASE_URL`] (tests,
    /// or an egress proxy).
    pub fn with_anthropic_base_url(mut self, url: impl Into<String>) -> Self {
        self.anthropic_base_url = url.into();
        self
    }

    /// With other connect and per-request timeouts.
    pub fn with_timeouts(
        mut self,
        connect: Duration,
        request: Duration,
    ) -> Result<Self, ClientBuildError> {
        self.http = http::client(connect, request).map_err(ClientBuildError)?;
        Ok(self)
    }

    /// What the provider offers the tenant's key (or role).
    async fn list(&self, target: &ProbeTarget, byok: &Byok) -> Result<Vec<Listed>, ProbeError> {
        let tenant = &target.tenant.id;
        match byok.provider {
            Provider::Bedrock => bedrock::list(target, &self.operator).await,
            Provider::OpenaiCompatible => {
                let (secret, key) = self.key(target, byok).await?;
                let base_url = byok.base_url.as_deref().unwrap_or(OPENAI_BASE_URL);
                let call = http::Call {
                    tenant,
                    provider: byok.provider,
                    secret,
                    key: &key,
                };
                http::list_openai(&self.http, base_url, &call).await
            }
            Provider::Anthropic => {
                let (secret, key) = self.key(target, byok).await?;
                let call = http::Call {
                    tenant,
                    provider: byok.provider,
                    secret,
                    key: &key,
                };
                http::list_anthropic(&self.http, &self.anthropic_base_url, &call).await
            }
        }
    }

    /// The key from the tenant's secret store, with the secret's name.
    async fn key<'a>(
        &self,
        target: &ProbeTarget,
        byok: &'a Byok,
    ) -> Result<(&'a SecretName, SecretString), ProbeError> {
        let tenant = &target.tenant.id;
        let secret = byok
            .key
            .as_ref()
            .ok_or_else(|| failures::key_not_configured(tenant, byok.provider))?;
        match target.secrets.get(tenant, secret).await {
            Ok(key) => Ok((secret, key)),
            Err(SecretError::NotFound { location, .. }) => {
                Err(failures::key_missing(tenant, secret, &location))
            }
            Err(e) => Err(failures::key_unreadable(tenant, secret, &e)),
        }
    }
}

#[async_trait]
impl Probe for LlmProbe {
    fn name(&self) -> ProbeName {
        ProbeName::Llm
    }

    async fn check(&self, target: &ProbeTarget) -> Finding {
        let LlmMode::Byok(byok) = &target.config.llm else {
            return Finding::NotApplicable("the tenant uses the vendor's hosted LLM keys".into());
        };
        match self.list(target, byok).await {
            Ok(listed) => verdict::judge(&target.tenant.id, byok, &listed),
            Err(error) => Finding::Fail(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runbook has a section for every code.
    #[test]
    fn the_runbook_covers_every_code() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/runbooks/llm-probe-failures.md"
        );
        let runbook = std::fs::read_to_string(path).expect("the runbook exists");
        for code in failures::CODES {
            assert!(
                runbook.contains(&format!("## `{code}`")),
                "docs/runbooks/llm-probe-failures.md has no section `## `{code}``"
            );
        }
        let admin = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/admin/llm-bring-your-own-keys.md"
        );
        let admin = std::fs::read_to_string(admin).expect("the admin doc exists");
        for code in failures::CODES {
            assert!(
                admin.contains(&format!("`{code}`")),
                "the admin doc does not mention {code}"
            );
        }
    }

    #[test]
    fn the_timeout_code_is_the_one_probes_run_reports() {
        assert_eq!(
            failures::TIMEOUT,
            format!("{}.timeout", ProbeName::Llm),
            "probes::run names timeouts `<probe>.timeout`"
        );
    }
}
