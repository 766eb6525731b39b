//! `deploy.toml` as written: the serde types whose JSON Schema *is* the
//! manifest's schema (`schemas/deploy.schema.json`).
//!
//! These types already use the validated identifiers, so anything that
//! deserializes is well-formed field by field; rules that span fields live
//! in `rules`, and the defaults and derived values in `model`. Doc comments
//! here become the schema's descriptions, which the validator shows as hints.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use stacks::builtin::storage::RetentionDays;

use std::collections::BTreeMap;

use super::duration::HumanDuration;
use super::tolerance::FailureTolerance;
use crate::secrets::BackendKind;
use stacks::ids::{
    AccountId, Capability, ExternalId, Region, ReleaseVersion, RoleArn, TenantId, WaveName,
};

/// The fleet manifest: desired state of every tenant, reviewed in git.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Fleet manifest (deploy.toml)")]
pub struct RawManifest {
    /// Where the coordinator runs and keeps its state.
    pub coordinator: RawCoordinator,
    /// The release to deploy.
    pub release: RawRelease,
    /// How a release rolls out across tenants.
    pub rollout: RawRollout,
    /// How the coordinator watches the tenants' workers.
    #[serde(default)]
    pub heartbeat: RawHeartbeat,
    /// The status service (`coordinator serve`).
    #[serde(default)]
    pub api: RawApi,
    /// Where tenants' secret values live: the fleet's defaults, which a
    /// tenant may override with its own `[tenants.secrets]`. Default: the
    /// hosted store, data keys wrapped by a master key file next to the
    /// state file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<RawSecrets>,
    /// The tenants (customers) and their AWS accounts.
    #[serde(default)]
    pub tenants: Vec<RawTenant>,
}

/// `[heartbeat]`: pinging each tenant's workers over SQS.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHeartbeat {
    /// Time between pings to each tenant (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<HumanDuration>,
    /// Missed intervals before a tenant is Unreachable (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 100))]
    pub unreachable_after: Option<u32>,
    /// Jobs waiting in a tenant's job queue above which it is Degraded
    /// (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded_job_backlog: Option<u64>,
    /// Dead-lettered jobs above which a tenant is Degraded (default 0: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded_dead_letters: Option<u64>,
    /// Tenants pinged at once (default 256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_concurrent: Option<usize>,
}

/// `[api]`: the status service.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// Address to listen on (default 127.0.0.1:8080); `--listen` overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9A-Za-z.:\[\]-]+:[0-9]{1,5}$"))]
    pub listen: Option<String>,
    /// Bearer tokens, stored only as SHA-256 hashes
    /// (`coordinator token new` makes one).
    #[serde(default)]
    pub tokens: Vec<RawToken>,
}

/// `[[api.tokens]]`: one bearer token, by hash.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    /// Who uses it; the actor of its audit entries.
    #[schemars(regex(pattern = r"^[A-Za-z0-9._@-]{1,64}$"))]
    pub subject: String,
    /// What it may do.
    pub role: TokenRole,
    /// SHA-256 of the token, 64 lowercase hex digits; never the token itself.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub sha256: String,
}

/// What a token may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TokenRole {
    /// Read everything the API shows.
    Viewer,
    /// Read, and trigger operations.
    Operator,
    /// The document workers: resolve a tenant's effective storage and LLM
    /// configuration (fail closed), and nothing else.
    Service,
}

/// `[coordinator]`: the vendor side.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCoordinator {
    /// The vendor account the coordinator runs in; no tenant may use it.
    pub account_id: AccountId,
    /// The coordinator's home region.
    pub region: Region,
    /// The SQLite state file, relative to this manifest.
    #[schemars(length(min = 1, max = 4096))]
    pub state: String,
    /// The coordinator's IAM role, which tenants' deploy roles trust.
    /// Default: `arn:aws:iam::<account_id>:role/docproc-coordinator`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_arn: Option<RoleArn>,
}

/// `[release]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRelease {
    /// The release version; must be the one this coordinator ships.
    pub version: ReleaseVersion,
}

/// `[rollout]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRollout {
    /// Rollout waves, in order; every tenant names one.
    #[schemars(length(min = 1, max = 64), extend("uniqueItems" = true))]
    pub waves: Vec<WaveName>,
    /// Tenants deployed at once within a wave (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_concurrent: Option<usize>,
    /// Failed tenants a wave tolerates before the rollout halts: a count or
    /// a percentage of the wave, rounded down (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_tolerance: Option<FailureTolerance>,
    /// How long every tenant of a wave must stay healthy after it is
    /// deployed before the next wave starts (default 10m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake_time: Option<HumanDuration>,
    /// Whether a tenant that is not Healthy during the bake time halts the
    /// rollout (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_gate: Option<bool>,
    /// Per-wave overrides of the keys above, by wave name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, RawWaveOverride>,
}

/// `[rollout.overrides.<wave>]`: one wave's own policy; unset keys take
/// the `[rollout]` value.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWaveOverride {
    /// Tenants deployed at once within this wave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_concurrent: Option<usize>,
    /// Failed tenants this wave tolerates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_tolerance: Option<FailureTolerance>,
    /// How long this wave must stay healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake_time: Option<HumanDuration>,
    /// Whether an unhealthy tenant halts the rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_gate: Option<bool>,
}

/// `[[tenants]]`: one customer.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTenant {
    /// The tenant's id, unique in the fleet.
    pub id: TenantId,
    /// The customer's AWS account.
    pub account_id: AccountId,
    /// The region the tenant's stacks live in.
    pub region: Region,
    /// The ExternalId the tenant's deploy role requires; vendor-generated,
    /// unique per tenant (`coordinator tenant onboard` makes one).
    pub external_id: ExternalId,
    /// The rollout wave this tenant belongs to; one of `[rollout] waves`.
    pub wave: WaveName,
    /// What the tenant is entitled to.
    #[serde(default)]
    #[schemars(extend("uniqueItems" = true))]
    pub capabilities: Vec<Capability>,
    /// The role the coordinator assumes in the tenant's account. Default:
    /// the bootstrap stack's deploy role in `account_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<RoleArn>,
    /// Days documents are kept in the tenant's bucket (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<RetentionDays>,
    /// This tenant's own secret store, overriding `[secrets]`. With the
    /// same backend as `[secrets]`, unset keys take the fleet's values;
    /// with another backend, this table stands alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<RawSecrets>,
}

/// `[secrets]` and `[tenants.secrets]`: where secret values live. Which
/// keys apply depends on `backend`; see docs/admin/secrets.md.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSecrets {
    /// `hosted` (default: envelope-encrypted in the coordinator's
    /// database), `secrets_manager`, `ssm` (SecureString parameters) or
    /// `age_file` (Docker and on-prem installs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendKind>,
    /// `secrets_manager` and `ssm`: whose AWS account holds the secrets,
    /// `vendor` (default) or `tenant` (needs the `dedicated_aws`
    /// capability: the deploy role exists only there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<SecretsAccount>,
    /// `secrets_manager` and `ssm`: the name prefix (default
    /// `doc-platform`); names are `{prefix}/{tenant}/{name}`, SSM paths
    /// `/{prefix}/{tenant}/{name}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
    )]
    pub prefix: Option<String>,
    /// `secrets_manager` and `ssm`: the KMS key that encrypts the values
    /// (key id, key ARN, `alias/...` or alias ARN); default: the account's
    /// AWS managed key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/[A-Za-z0-9/_+=.@-]+|alias/[A-Za-z0-9/_+=.@-]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$"
    ))]
    pub kms_key_id: Option<String>,
    /// `hosted`: what wraps each tenant's data key, `{ kms_key_id = "..." }`
    /// (a KMS key in the vendor's account, the coordinator's region) or
    /// `{ file = "path" }` (a local master key file, relative to this
    /// manifest). Default: the file `<state file>.master-key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key: Option<RawMasterKey>,
    /// `age_file`: the encrypted file, relative to this manifest (default
    /// `secrets.age` next to the state file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub file: Option<String>,
    /// `age_file`: the identity file that decrypts it (`age-keygen`
    /// output, mode 0600), relative to this manifest. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub identity: Option<String>,
    /// `age_file`: the x25519 recipients (`age1...`) it is encrypted to;
    /// must include the identity's. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub recipients: Option<Vec<String>>,
}

/// `master_key` of the hosted store: exactly one of the two keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMasterKey {
    /// A KMS key in the vendor's account (key id, ARN or alias).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/[A-Za-z0-9/_+=.@-]+|alias/[A-Za-z0-9/_+=.@-]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$"
    ))]
    pub kms_key_id: Option<String>,
    /// A local master key file (32 random bytes, mode 0600), relative to
    /// this manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub file: Option<String>,
}

/// Whose AWS account holds a tenant's secrets.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SecretsAccount {
    /// The vendor's own account (the coordinator's credentials).
    Vendor,
    /// The tenant's account, through its deploy role.
    Tenant,
}
