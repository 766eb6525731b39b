//! `[secrets]` and `[tenants.secrets]`: which secret store holds each
//! tenant's values. The raw tables are in `raw`; here are the rules that
//! span fields (keys that do not apply to the backend, `master_key` with
//! exactly one key, what `age_file` requires, `account = "tenant"` only for
//! tenants with `dedicated_aws`) and the resolved, defaulted settings.
//!
//! Merging: a tenant's table with the same backend as `[secrets]` takes
//! the fleet's values for the keys it leaves out; a tenant's table with
//! another backend stands alone (the fleet's keys belong to another kind of
//! store). Defaults: `hosted`, wrapped by the master key file
//! `<state file>.master-key`; AWS backends in the vendor's account with
//! prefix `doc-platform` and the AWS managed key; the age file
//! `secrets.age` next to the state file.
//!
//! Nothing here reads a key, a file or AWS: opening a store is
//! `crate::secrets::open_for`'s job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};
use stacks::ids::TenantId;

use super::diagnostics::Finding;
use super::raw::{RawMasterKey, RawSecrets, SecretsAccount};
use super::source::FieldPath;
use crate::secrets::BackendKind;
use crate::secrets::aws_secrets_manager::DEFAULT_PREFIX;

/// Appended to the state file's name for the default master key file.
pub const DEFAULT_MASTER_KEY_SUFFIX: &str = ".master-key";
/// The default age file, next to the state file.
pub const DEFAULT_AGE_FILE: &str = "secrets.age";

/// Where one tenant's secrets live, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "backend", rename_all = "snake_case")]
pub enum SecretsBackend {
    /// Envelope-encrypted in the coordinator's database.
    Hosted {
        /// What wraps the tenant's data key.
        master_key: MasterKey,
    },
    /// AWS Secrets Manager.
    SecretsManager(AwsSecrets),
    /// SSM Parameter Store `SecureString` parameters.
    Ssm(AwsSecrets),
    /// One `age`-encrypted file.
    AgeFile {
        /// The encrypted file.
        file: PathBuf,
        /// The identity file that decrypts it.
        identity: PathBuf,
        /// The recipients it is encrypted to.
        recipients: Vec<String>,
    },
}

impl SecretsBackend {
    /// The kind of store.
    pub fn kind(&self) -> BackendKind {
        match self {
            SecretsBackend::Hosted { .. } => BackendKind::Hosted,
            SecretsBackend::SecretsManager(_) => BackendKind::SecretsManager,
            SecretsBackend::Ssm(_) => BackendKind::Ssm,
            SecretsBackend::AgeFile { .. } => BackendKind::AgeFile,
        }
    }
}

/// Settings of the AWS backends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AwsSecrets {
    /// Whose account.
    pub account: SecretsAccount,
    /// Name prefix.
    pub prefix: String,
    /// The KMS key; `None`: the account's AWS managed key.
    pub kms_key_id: Option<String>,
}

/// What wraps the hosted store's data keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MasterKey {
    /// A KMS key in the vendor's account, in the coordinator's region.
    Kms {
        /// Key id, ARN or alias.
        key_id: String,
    },
    /// A local master key file.
    File {
        /// The file.
        path: PathBuf,
    },
}

/// `[secrets]` with every tenant's override, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretsSettings {
    /// The fleet's store.
    pub fleet: SecretsBackend,
    /// Tenants with their own `[tenants.secrets]`.
    pub overrides: BTreeMap<TenantId, SecretsBackend>,
}

impl SecretsSettings {
    /// The store of tenant `id`.
    pub fn for_tenant(&self, id: &TenantId) -> &SecretsBackend {
        self.overrides.get(id).unwrap_or(&self.fleet)
    }

    /// Resolves the raw tables; `base` is the manifest's directory,
    /// `state_path` the resolved state file. Assumes the rules passed.
    pub(super) fn from_raw<'a>(
        fleet: Option<RawSecrets>,
        tenants: impl Iterator<Item = (&'a TenantId, Option<&'a RawSecrets>)>,
        base: &Path,
        state_path: &Path,
    ) -> Self {
        let fleet = fleet.unwrap_or_default();
        let overrides = tenants
            .filter_map(|(id, raw)| {
                let merged = merge(&fleet, raw?);
                Some((id.clone(), resolve(merged, base, state_path)))
            })
            .collect();
        Self {
            fleet: resolve(fleet, base, state_path),
            overrides,
        }
    }
}

/// A tenant's table over the fleet's (see the module docs).
fn merge(fleet: &RawSecrets, tenant: &RawSecrets) -> RawSecrets {
    let fleet_backend = fleet.backend.unwrap_or(BackendKind::Hosted);
    let backend = tenant.backend.unwrap_or(fleet_backend);
    if backend != fleet_backend {
        return RawSecrets {
            backend: Some(backend),
            ..tenant.clone()
        };
    }
    let t = tenant.clone();
    let f = fleet.clone();
    RawSecrets {
        backend: Some(backend),
        account: t.account.or(f.account),
        prefix: t.prefix.or(f.prefix),
        kms_key_id: t.kms_key_id.or(f.kms_key_id),
        master_key: t.master_key.or(f.master_key),
        file: t.file.or(f.file),
        identity: t.identity.or(f.identity),
        recipients: t.recipients.or(f.recipients),
    }
}

fn resolve(raw: RawSecrets, base: &Path, state_path: &Path) -> SecretsBackend {
    let aws = |raw: RawSecrets| AwsSecrets {
        account: raw.account.unwrap_or(SecretsAccount::Vendor),
        prefix: raw.prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_owned()),
        kms_key_id: raw.kms_key_id,
    };
    let state_dir = state_path.parent().unwrap_or(base);
    match raw.backend.unwrap_or(BackendKind::Hosted) {
        BackendKind::Hosted => SecretsBackend::Hosted {
            master_key: match raw.master_key {
                Some(RawMasterKey {
                    kms_key_id: Some(key_id),
                    ..
                }) => MasterKey::Kms { key_id },
                Some(RawMasterKey {
                    file: Some(file), ..
                }) => MasterKey::File {
                    path: base.join(file),
                },
                _ => {
                    let mut name = state_path.as_os_str().to_owned();
                    name.push(DEFAULT_MASTER_KEY_SUFFIX);
                    MasterKey::File {
                        path: PathBuf::from(name),
                    }
                }
            },
        },
        BackendKind::SecretsManager => SecretsBackend::SecretsManager(aws(raw)),
        BackendKind::Ssm => SecretsBackend::Ssm(aws(raw)),
        BackendKind::AgeFile => SecretsBackend::AgeFile {
            file: raw
                .file
                .map_or_else(|| state_dir.join(DEFAULT_AGE_FILE), |f| base.join(f)),
            identity: base.join(raw.identity.unwrap_or_default()),
            recipients: raw.recipients.unwrap_or_default(),
        },
    }
}

// ----- rules -----

/// Keys of a `[secrets]` table and the backends they apply to.
const KEYS: &[(&str, &[&str])] = &[
    ("account", &["secrets_manager", "ssm"]),
    ("prefix", &["secrets_manager", "ssm"]),
    ("kms_key_id", &["secrets_manager", "ssm"]),
    ("master_key", &["hosted"]),
    ("file", &["age_file"]),
    ("identity", &["age_file"]),
    ("recipients", &["age_file"]),
];

fn backend_of(table: &Map<String, Value>) -> Option<&str> {
    table.get("backend").and_then(Value::as_str)
}

/// Every problem with `[secrets]` and the tenants' `[tenants.secrets]`.
pub(super) fn check(manifest: &Value) -> Vec<Finding> {
    let mut findings = Vec::new();
    let root = FieldPath::root();
    let empty = Map::new();
    let fleet = manifest
        .get("secrets")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let fleet_backend = backend_of(fleet).unwrap_or("hosted");
    check_table(
        &root.key("secrets"),
        fleet,
        fleet,
        fleet_backend,
        &mut findings,
    );

    let tenants = manifest
        .get("tenants")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, tenant) in tenants.iter().enumerate() {
        let at = root.key("tenants").index(i);
        let name = tenant
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| format!("tenants[{i}]"), str::to_owned);
        let own = tenant.get("secrets").and_then(Value::as_object);
        let backend = own.and_then(backend_of).unwrap_or(fleet_backend);
        // The keys the tenant's store is built from.
        let mut merged = if backend == fleet_backend {
            fleet.clone()
        } else {
            Map::new()
        };
        if let Some(own) = own {
            merged.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
            check_table(&at.key("secrets"), own, &merged, backend, &mut findings);
        }
        let in_tenant_account = matches!(backend, "secrets_manager" | "ssm")
            && merged.get("account").and_then(Value::as_str) == Some("tenant");
        let dedicated = tenant
            .get("capabilities")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|c| c.as_str() == Some("dedicated_aws")));
        if in_tenant_account && !dedicated {
            let own_account = own.is_some_and(|o| o.contains_key("account"));
            let path = if own_account {
                at.key("secrets").key("account")
            } else {
                root.key("secrets").key("account")
            };
            findings.push(
                Finding::error(
                    path,
                    format!(
                        "tenant `{name}` keeps its secrets in its own account (account = \"tenant\") but lacks the dedicated_aws capability"
                    ),
                )
                .hint(format!(
                    "the coordinator reaches a tenant's account only through the deploy role of a dedicated_aws tenant: give `{name}` that capability, or set account = \"vendor\" in its [tenants.secrets]"
                )),
            );
        }
    }
    findings
}

/// The checks of one table at `at`: `own` are the keys written there,
/// `merged` the keys its store is built from, `backend` its backend.
fn check_table(
    at: &FieldPath,
    own: &Map<String, Value>,
    merged: &Map<String, Value>,
    backend: &str,
    findings: &mut Vec<Finding>,
) {
    for (key, applies) in KEYS {
        if own.contains_key(*key) && !applies.contains(&backend) {
            findings.push(
                Finding::error(
                    at.key(key),
                    format!("`{key}` does not apply to backend = \"{backend}\""),
                )
                .hint(format!(
                    "`{key}` is a setting of backend {}; remove it, or change `backend`",
                    applies.join(" or ")
                )),
            );
        }
    }
    if backend == "hosted"
        && let Some(master_key) = own.get("master_key").and_then(Value::as_object)
    {
        let set = ["kms_key_id", "file"]
            .iter()
            .filter(|k| master_key.contains_key(**k))
            .count();
        if set != 1 {
            findings.push(
                Finding::error(
                    at.key("master_key"),
                    "master_key needs exactly one of `kms_key_id` and `file`",
                )
                .hint(
                    "use master_key = { kms_key_id = \"alias/...\" } in production, or { file = \"master.key\" } for development and single-box installs",
                ),
            );
        }
    }
    if backend == "ssm"
        && let Some(prefix) = own.get("prefix").and_then(Value::as_str)
        && ["aws", "ssm"]
            .iter()
            .any(|reserved| prefix.to_ascii_lowercase().starts_with(reserved))
    {
        findings.push(
            Finding::error(
                at.key("prefix"),
                format!(
                    "SSM reserves parameter names starting with \"aws\" or \"ssm\": {prefix:?}"
                ),
            )
            .hint("choose another prefix, e.g. the default doc-platform"),
        );
    }
    if backend == "age_file" {
        for key in ["identity", "recipients"] {
            if !merged.contains_key(key) {
                findings.push(
                    Finding::error(
                        at.clone(),
                        format!("backend = \"age_file\" needs `{key}`"),
                    )
                    .hint(
                        "set identity = \"<age-keygen output, mode 0600>\" and recipients = [\"age1...\"] (the identity's recipient among them)",
                    ),
                );
            }
        }
        if let Some(recipients) = own.get("recipients").and_then(Value::as_array) {
            for (j, recipient) in recipients.iter().enumerate() {
                if let Some(text) = recipient.as_str()
                    && text.parse::<age::x25519::Recipient>().is_err()
                {
                    findings.push(
                        Finding::error(
                            at.key("recipients").index(j),
                            format!("{text:?} is not an age x25519 recipient"),
                        )
                        .hint("a recipient is the `age1...` public key that `age-keygen` prints"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
