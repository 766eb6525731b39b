//! A tenant's privacy configuration: where its documents are stored and
//! which LLM keys process them. Typed, validated as a whole, and checked
//! against the tenant's capabilities.
//!
//! Only references live here (a bucket name, a secret *name*), never a
//! value: credentials and keys are in the tenant's secret store.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use stacks::aws_names::BucketName;
use stacks::ids::{Capability, Region};

use crate::manifest::Tenant;
use crate::secrets::SecretName;

/// The whole configuration, as set with `coordinator privacy set` or
/// `PUT /api/v1/tenants/{id}/privacy`. Hosted fallback is not part of it:
/// enabling it is a separate, explicit act.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Where documents are stored.
    #[serde(default)]
    pub storage: StorageMode,
    /// Which LLM keys process them.
    #[serde(default)]
    pub llm: LlmMode,
}

/// Where a tenant's documents are stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum StorageMode {
    /// The vendor's hosted bucket (the default).
    #[default]
    Hosted,
    /// A bucket the customer owns: AWS S3 or an S3-compatible service.
    CustomerS3(CustomerS3),
    /// The bucket of the storage stack deployed into the customer's account.
    Deployed,
}

/// A customer-owned bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerS3 {
    /// Bucket name.
    pub bucket: BucketName,
    /// The bucket's region.
    pub region: Region,
    /// An S3-compatible endpoint (e.g. MinIO); absent for AWS S3. Must be
    /// `https://`, except on loopback for development.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most
    /// S3-compatible services need.
    #[serde(default)]
    pub path_style: bool,
    /// The secret holding `{"access_key_id": .., "secret_access_key": ..}`;
    /// absent: the tenant's role (AWS S3 in a `dedicated_aws` account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<SecretName>,
    /// The KMS key for SSE-KMS, when the bucket requires one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
}

/// Which LLM keys process a tenant's documents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum LlmMode {
    /// The vendor's keys (the default).
    #[default]
    Hosted,
    /// The customer's own key for a supported provider.
    Byok(Byok),
}

/// LLM providers a tenant can bring a key for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// OpenAI's API or any service speaking it (`base_url`).
    OpenaiCompatible,
    /// Anthropic's Messages API.
    Anthropic,
    /// AWS Bedrock in the tenant's account, through its role (no key).
    Bedrock,
}

impl Provider {
    /// The name as written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenaiCompatible => "openai_compatible",
            Provider::Anthropic => "anthropic",
            Provider::Bedrock => "bedrock",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A customer's own LLM key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Byok {
    /// The provider.
    pub provider: Provider,
    /// The model documents are processed with, e.g. `gpt-4o`.
    pub model: String,
    /// The API's base URL (`openai_compatible` only; default
    /// `https://api.openai.com/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The secret holding the API key (every provider but `bedrock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<SecretName>,
    /// Whether documents are sent as images, so the model must read them.
    #[serde(default = "yes")]
    pub vision: bool,
}

fn yes() -> bool {
    true
}

/// Who runs a dependency: the line admins must never misread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ManagedBy {
    /// The vendor's hosted default.
    Vendor,
    /// The customer's own infrastructure or keys.
    Customer,
}

impl StorageMode {
    /// The mode's name.
    pub fn name(&self) -> &'static str {
        match self {
            StorageMode::Hosted => "hosted",
            StorageMode::CustomerS3(_) => "customer_s3",
            StorageMode::Deployed => "deployed",
        }
    }

    /// Who runs it.
    pub fn managed_by(&self) -> ManagedBy {
        match self {
            StorageMode::Hosted => ManagedBy::Vendor,
            _ => ManagedBy::Customer,
        }
    }

    /// The capabilities a tenant needs for this mode.
    pub fn requires(&self) -> &'static [Capability] {
        match self {
            StorageMode::Hosted => &[],
            StorageMode::CustomerS3(_) => &[Capability::CustomerStorage],
            StorageMode::Deployed => &[Capability::CustomerStorage, Capability::DedicatedAws],
        }
    }
}

impl StorageMode {
    /// One line for people, e.g. `customer S3 bucket acme-docs (eu-west-1)`.
    pub fn summary(&self) -> String {
        match self {
            StorageMode::Hosted => "the vendor's hosted bucket".into(),
            StorageMode::Deployed => {
                "the bucket of the storage stack deployed in the customer's account".into()
            }
            StorageMode::CustomerS3(s) => {
                let mut text = format!("customer bucket {} ({})", s.bucket, s.region);
                if let Some(endpoint) = &s.endpoint {
                    text.push_str(&format!(" at {endpoint}"));
                    if s.path_style {
                        text.push_str(", path-style");
                    }
                }
                match &s.credentials {
                    Some(secret) => text.push_str(&format!(", credentials in secret `{secret}`")),
                    None => text.push_str(", through the tenant's role"),
                }
                if s.kms_key_arn.is_some() {
                    text.push_str(", SSE-KMS");
                }
                text
            }
        }
    }
}

impl LlmMode {
    /// One line for people, e.g. `anthropic claude-sonnet-4-5, key in secret `k``.
    pub fn summary(&self) -> String {
        match self {
            LlmMode::Hosted => "the vendor's hosted LLM keys".into(),
            LlmMode::Byok(b) => {
                let mut text = format!("customer key: {} model {}", b.provider, b.model);
                if let Some(url) = &b.base_url {
                    text.push_str(&format!(" at {url}"));
                }
                match &b.key {
                    Some(secret) => text.push_str(&format!(", key in secret `{secret}`")),
                    None => text.push_str(", through the tenant's role"),
                }
                if b.vision {
                    text.push_str(", reads document images");
                }
                text
            }
        }
    }

    /// The mode's name.
    pub fn name(&self) -> &'static str {
        match self {
            LlmMode::Hosted => "hosted",
            LlmMode::Byok(_) => "byok",
        }
    }

    /// Who runs it.
    pub fn managed_by(&self) -> ManagedBy {
        match self {
            LlmMode::Hosted => ManagedBy::Vendor,
            LlmMode::Byok(_) => ManagedBy::Customer,
        }
    }

    /// The capabilities a tenant needs for this mode.
    pub fn requires(&self) -> &'static [Capability] {
        match self {
            LlmMode::Hosted => &[],
            LlmMode::Byok(b) if b.provider == Provider::Bedrock => {
                &[Capability::ByoAiKeys, Capability::DedicatedAws]
            }
            LlmMode::Byok(_) => &[Capability::ByoAiKeys],
        }
    }
}

/// One thing wrong with a configuration: the field and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigProblem {
    /// The field, e.g. `storage.endpoint`.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
    /// The capability the tenant lacks, when that is the problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_capability: Option<Capability>,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl PrivacyConfig {
    /// SHA-256 of the canonical JSON: identifies a configuration in audit
    /// entries.
    pub fn digest(&self) -> String {
        let value = serde_json::to_value(self).expect("configurations serialize");
        crate::store::audit::digest(stacks::template::canonical_json(&value).as_bytes())
    }

    /// The secret holding the bucket's credentials, if any.
    pub fn storage_credentials(&self) -> Option<&SecretName> {
        match &self.storage {
            StorageMode::CustomerS3(s) => s.credentials.as_ref(),
            _ => None,
        }
    }

    /// Every customer-managed dependency's secret references.
    pub fn secret_refs(&self) -> Vec<&SecretName> {
        let mut refs = Vec::new();
        if let StorageMode::CustomerS3(s) = &self.storage {
            refs.extend(s.credentials.as_ref());
        }
        if let LlmMode::Byok(b) = &self.llm {
            refs.extend(b.key.as_ref());
        }
        refs
    }

    /// Whether any dependency is customer-managed (hosted fallback only
    /// means something then).
    pub fn is_customer_managed(&self) -> bool {
        self.storage.managed_by() == ManagedBy::Customer
            || self.llm.managed_by() == ManagedBy::Customer
    }

    /// Checks the whole configuration for `tenant`; every problem at once.
    pub fn validate(&self, tenant: &Tenant) -> Result<(), Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut problem = |field: &str, message: String, missing: Option<Capability>| {
            problems.push(ConfigProblem {
                field: field.to_owned(),
                message,
                missing_capability: missing,
            })
        };
        for (field, required) in [
            ("storage.mode", self.storage.requires()),
            ("llm.mode", self.llm.requires()),
        ] {
            let mode = if field == "storage.mode" {
                self.storage.name()
            } else {
                self.llm.name()
            };
            for &capability in required {
                if !tenant.has(capability) {
                    problem(
                        field,
                        format!(
                            "tenant `{}` is not entitled to `{}`, which {field} = \"{mode}\" needs: add it to the tenant's capabilities in deploy.toml if its contract includes it",
                            tenant.id,
                            capability.as_str()
                        ),
                        Some(capability),
                    );
                }
            }
        }
        if let StorageMode::CustomerS3(s) = &self.storage {
            if let Some(endpoint) = &s.endpoint
                && let Err(why) = check_url(endpoint)
            {
                problem("storage.endpoint", why, None);
            }
            if s.endpoint.is_none()
                && s.credentials.is_none()
                && !tenant.has(Capability::DedicatedAws)
            {
                problem(
                    "storage.credentials",
                    "name the secret holding the bucket's access key: without `dedicated_aws` there is no tenant role to reach the bucket with".into(),
                    None,
                );
            }
            if s.endpoint.is_some() && s.credentials.is_none() {
                problem(
                    "storage.credentials",
                    "an S3-compatible endpoint needs the secret holding its access key".into(),
                    None,
                );
            }
            if let Some(arn) = &s.kms_key_arn
                && !(arn.starts_with("arn:aws") && arn.contains(":kms:") && arn.contains(":key/"))
            {
                problem(
                    "storage.kms_key_arn",
                    format!("{arn:?} is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)"),
                    None,
                );
            }
        }
        if let LlmMode::Byok(b) = &self.llm {
            let model = b.model.trim();
            if model.is_empty() || model.len() > 200 || model != b.model {
                problem(
                    "llm.model",
                    "give the provider's model id, e.g. `gpt-4o` (1 to 200 characters, no surrounding spaces)".into(),
                    None,
                );
            }
            match (b.provider, &b.key) {
                (Provider::Bedrock, Some(_)) => problem(
                    "llm.key",
                    "Bedrock is called through the tenant's role and takes no key: remove `key`"
                        .into(),
                    None,
                ),
                (Provider::OpenaiCompatible | Provider::Anthropic, None) => problem(
                    "llm.key",
                    format!(
                        "name the secret holding the {} API key (store it first with `coordinator secret put`)",
                        b.provider
                    ),
                    None,
                ),
                _ => {}
            }
            match (&b.base_url, b.provider) {
                (Some(url), Provider::OpenaiCompatible) => {
                    if let Err(why) = check_url(url) {
                        problem("llm.base_url", why, None);
                    }
                }
                (Some(_), provider) => problem(
                    "llm.base_url",
                    format!("`base_url` is for openai_compatible only, not {provider}: remove it"),
                    None,
                ),
                (None, _) => {}
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// Endpoints must be HTTPS; plain HTTP only on loopback (development).
fn check_url(url: &str) -> Result<(), String> {
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"];
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(prefix) = loopback.iter().find(|p| url.starts_with(**p)) {
        let rest = &url[prefix.len()..];
        if !(rest.is_empty() || rest.starts_with(':') || rest.starts_with('/')) {
            return Err(format!("{url:?} is not a loopback URL"));
        }
        &url["http://".len()..]
    } else {
        return Err(format!(
            "{url:?} must start with https:// (plain http is accepted only on loopback, for development)"
        ));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains('@') || url.chars().any(char::is_whitespace) {
        return Err(format!(
            "{url:?} is not a URL of the form https://host[:port][/path] (no credentials in the URL)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
