//! Changing a tenant's privacy configuration: the one path the CLI and the
//! API share. A change is validated as a whole against the tenant's
//! capabilities and its secrets, written as a new version together with its
//! audit entry (one transaction), and refused if someone else changed the
//! configuration since it was read.
//!
//! Hosted fallback is changed only by [`set_fallback`]: enabling it takes a
//! reason and is its own audit entry, so it can never slip in with an
//! unrelated edit.

use serde::Serialize;
use serde_json::json;

use super::config::{ConfigProblem, PrivacyConfig};
use crate::manifest::Tenant;
use crate::store::privacy::{NewPrivacyRecord, PrivacyChange, PrivacyRecord, SecretAction};
use crate::store::{NewAuditEntry, Store, StoreError};

/// Why a change was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The configuration is not valid for this tenant; nothing changed.
    #[error("the privacy configuration of tenant `{tenant}` is not valid:\n{}", list(.problems))]
    Invalid {
        /// Tenant.
        tenant: String,
        /// Every problem.
        problems: Vec<ConfigProblem>,
    },
    /// Someone else changed it meanwhile; nothing changed.
    #[error(transparent)]
    Conflict(StoreError),
    /// The store failed.
    #[error("could not record the privacy configuration")]
    Store(#[source] StoreError),
}

fn list(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl From<StoreError> for ChangeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => ChangeError::Conflict(e),
            e => ChangeError::Store(e),
        }
    }
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Changed {
    /// A new version was written.
    Written {
        /// The new version.
        record: Box<PrivacyRecord>,
        /// Its audit entry.
        audit_seq: u64,
    },
    /// The request equals the current configuration: nothing written.
    Unchanged {
        /// The current version.
        version: u64,
    },
}

/// The tenant's current configuration: the stored one, or the implicit
/// hosted default (version 0) for a tenant never configured.
pub async fn current(store: &dyn Store, tenant: &Tenant) -> Result<PrivacyRecord, StoreError> {
    Ok(match store.current_privacy(&tenant.id).await? {
        Some(record) => record,
        None => PrivacyRecord {
            tenant: tenant.id.clone(),
            version: 0,
            digest: PrivacyConfig::default().digest(),
            config: PrivacyConfig::default(),
            hosted_fallback: false,
            fallback_reason: None,
            change: PrivacyChange::Config,
            actor: "default".into(),
            at: chrono::DateTime::UNIX_EPOCH,
        },
    })
}

/// Checks `config` for `tenant` as a whole without changing anything: the
/// tenant's capabilities, the fields, and that every secret it names exists.
/// [`set_config`] runs it first; a caller applying many configurations
/// runs it on all of them before writing any.
pub async fn check_config(
    store: &dyn Store,
    tenant: &Tenant,
    config: &PrivacyConfig,
) -> Result<(), ChangeError> {
    let mut problems = config.validate(tenant).err().unwrap_or_default();
    let writes = store.secret_writes(&tenant.id).await?;
    for name in config.secret_refs() {
        let live = writes
            .iter()
            .any(|w| &w.name == name && w.action != SecretAction::Delete);
        if !live {
            let field = if config.storage_credentials().is_some_and(|n| n == name) {
                "storage.credentials"
            } else {
                "llm.key"
            };
            problems.push(ConfigProblem {
                field: field.into(),
                message: format!(
                    "tenant `{}` has no secret `{name}`: store it first with `coordinator secret put --tenant {} {name}`",
                    tenant.id, tenant.id
                ),
                missing_capability: None,
            });
        }
    }
    if !problems.is_empty() {
        return Err(ChangeError::Invalid {
            tenant: tenant.id.to_string(),
            problems,
        });
    }
    Ok(())
}

/// Sets the storage and LLM configuration. `expected` is the version the
/// caller read (`None`: whatever is current). Referenced secrets must
/// exist. Hosted fallback is kept while a dependency stays
/// customer-managed, and cleared when everything goes back to hosted.
pub async fn set_config(
    store: &dyn Store,
    tenant: &Tenant,
    config: PrivacyConfig,
    expected: Option<u64>,
    actor: &str,
) -> Result<Changed, ChangeError> {
    check_config(store, tenant, &config).await?;
    let now = current(store, tenant).await?;
    let expected = expected.unwrap_or(now.version);
    if now.config == config && expected == now.version {
        return Ok(Changed::Unchanged {
            version: now.version,
        });
    }
    let hosted_fallback = now.hosted_fallback && config.is_customer_managed();
    let audit = NewAuditEntry {
        actor: actor.to_owned(),
        tenant: Some(tenant.id.clone()),
        action: "tenant.privacy_changed".into(),
        details: json!({
            "version": expected + 1,
            "previous_digest": now.digest,
            "digest": config.digest(),
            "storage": {"from": now.config.storage.name(), "to": config.storage.name()},
            "llm": {"from": now.config.llm.name(), "to": config.llm.name()},
            "config": config,
            "hosted_fallback": hosted_fallback,
        }),
    };
    let record = NewPrivacyRecord {
        tenant: tenant.id.clone(),
        config,
        hosted_fallback,
        fallback_reason: now.fallback_reason.filter(|_| hosted_fallback),
        change: PrivacyChange::Config,
        actor: actor.to_owned(),
    };
    let (record, entry) = store.append_privacy(record, expected, audit).await?;
    Ok(Changed::Written {
        record: Box::new(record),
        audit_seq: entry.seq,
    })
}

/// Enables or disables hosted fallback. Enabling needs a reason and a
/// customer-managed configuration (a hosted tenant has nothing to fall back
/// from).
pub async fn set_fallback(
    store: &dyn Store,
    tenant: &Tenant,
    enabled: bool,
    reason: Option<&str>,
    expected: Option<u64>,
    actor: &str,
) -> Result<Changed, ChangeError> {
    let now = current(store, tenant).await?;
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    let mut problems = Vec::new();
    if enabled && reason.is_none() {
        problems.push(ConfigProblem {
            field: "hosted_fallback.reason".into(),
            message: "enabling hosted fallback sends this tenant's documents to the vendor's hosted storage or keys when its own fail: give the reason (a ticket, an approval) so the audit log says why".into(),
            missing_capability: None,
        });
    }
    if enabled && !now.config.is_customer_managed() {
        problems.push(ConfigProblem {
            field: "hosted_fallback".into(),
            message: format!(
                "tenant `{}` uses the hosted defaults already: fallback applies only to customer-managed storage or keys",
                tenant.id
            ),
            missing_capability: None,
        });
    }
    if !problems.is_empty() {
        return Err(ChangeError::Invalid {
            tenant: tenant.id.to_string(),
            problems,
        });
    }
    let expected = expected.unwrap_or(now.version);
    if now.hosted_fallback == enabled && expected == now.version {
        return Ok(Changed::Unchanged {
            version: now.version,
        });
    }
    let action = if enabled {
        "tenant.hosted_fallback_enabled"
    } else {
        "tenant.hosted_fallback_disabled"
    };
    let audit = NewAuditEntry {
        actor: actor.to_owned(),
        tenant: Some(tenant.id.clone()),
        action: action.into(),
        details: json!({
            "version": expected + 1,
            "reason": reason,
            "digest": now.digest,
            "storage": now.config.storage.name(),
            "llm": now.config.llm.name(),
        }),
    };
    let record = NewPrivacyRecord {
        tenant: tenant.id.clone(),
        config: now.config,
        hosted_fallback: enabled,
        fallback_reason: reason.filter(|_| enabled).map(str::to_owned),
        change: PrivacyChange::Fallback,
        actor: actor.to_owned(),
    };
    let (record, entry) = store.append_privacy(record, expected, audit).await?;
    Ok(Changed::Written {
        record: Box::new(record),
        audit_seq: entry.seq,
    })
}

#[cfg(test)]
mod tests;
