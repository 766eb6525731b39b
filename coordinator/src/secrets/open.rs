//! [`open_for`]: the one place that turns a tenant's resolved secrets
//! settings (`[secrets]`, `[tenants.secrets]`) into a [`SecretStore`].
//!
//! - `hosted`: the coordinator's database, data keys wrapped by the KMS key
//!   (vendor account, the coordinator's region, operator credentials) or by
//!   the master key file, which must exist already.
//! - `secrets_manager`, `ssm` with `account = "vendor"`: the operator's
//!   credentials in the coordinator's region.
//! - `secrets_manager`, `ssm` with `account = "tenant"`: the tenant's
//!   deploy role in the tenant's region, reached through [`access::connect`]
//!   (AssumeRole with its ExternalId, then the account checked: fail
//!   closed), or through a [`SessionCache`] that did that once
//!   ([`open_with`], for the probe runner). Only for tenants with
//!   `dedicated_aws`.
//! - `age_file`: the file, identity and recipients.
//!
//! It makes no decision of its own and writes nothing: a missing master key
//! file is an error, never created here.

use std::sync::Arc;

use stacks::ids::Capability;

use super::age_file::AgeFileStore;
use super::aws_secrets_manager::SecretsManagerStore;
use super::hosted::HostedStore;
use super::key_wrapper::{FileKeyWrapper, KeyWrapper, KmsKeyWrapper};
use super::ssm::SsmStore;
use super::{SecretError, SecretStore};
use crate::access::{self, Operator, SessionCache};
use crate::aws::{ClientScope, Connector};
use crate::manifest::raw::SecretsAccount;
use crate::manifest::secrets::{AwsSecrets, MasterKey, SecretsBackend};
use crate::manifest::{Manifest, Tenant};
use crate::store::SealedSecrets;

/// The error and its causes on one line (no cause ever holds a value).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The secret store that holds `tenant`'s secrets under `manifest`;
/// `records` is the coordinator's database (used by the hosted store). A
/// backend in the tenant's account is reached afresh.
pub async fn open_for(
    tenant: &Tenant,
    manifest: &Manifest,
    connector: &dyn Connector,
    records: Arc<dyn SealedSecrets>,
) -> Result<Arc<dyn SecretStore>, SecretError> {
    open_with(tenant, manifest, connector, records, None).await
}

/// [`open_for`], reaching a backend in the tenant's account through
/// `sessions` as `operator` when given (a caller that opens the store every
/// few minutes keeps one session per tenant instead of assuming the role
/// each time).
pub async fn open_with(
    tenant: &Tenant,
    manifest: &Manifest,
    connector: &dyn Connector,
    records: Arc<dyn SealedSecrets>,
    sessions: Option<(&Operator, &SessionCache)>,
) -> Result<Arc<dyn SecretStore>, SecretError> {
    Ok(match manifest.secrets.for_tenant(&tenant.id) {
        SecretsBackend::Hosted { master_key } => {
            let wrapper = master_key_wrapper(master_key, manifest, connector)?;
            Arc::new(HostedStore::new(records, wrapper))
        }
        SecretsBackend::SecretsManager(settings) => {
            let (scope, location) = scope(
                tenant,
                manifest,
                connector,
                sessions,
                settings,
                "Secrets Manager",
            )
            .await?;
            Arc::new(SecretsManagerStore::new(
                connector.secrets_manager(&scope),
                settings.prefix.clone(),
                settings.kms_key_id.clone(),
                location,
            ))
        }
        SecretsBackend::Ssm(settings) => {
            let (scope, location) = scope(
                tenant,
                manifest,
                connector,
                sessions,
                settings,
                "SSM Parameter Store",
            )
            .await?;
            Arc::new(SsmStore::new(
                connector.parameter_store(&scope),
                settings.prefix.clone(),
                settings.kms_key_id.clone(),
                location,
            ))
        }
        SecretsBackend::AgeFile {
            file,
            identity,
            recipients,
        } => Arc::new(AgeFileStore::open(file, identity, recipients)?),
    })
}

/// What wraps the hosted store's data keys under `key`: the KMS key (vendor
/// account, the coordinator's region, operator credentials) or the master
/// key file, which must exist already.
pub fn master_key_wrapper(
    key: &MasterKey,
    manifest: &Manifest,
    connector: &dyn Connector,
) -> Result<Arc<dyn KeyWrapper>, SecretError> {
    Ok(match key {
        MasterKey::Kms { key_id } => Arc::new(KmsKeyWrapper::new(
            connector.kms(&ClientScope::Operator {
                region: manifest.coordinator.region,
            }),
            key_id.clone(),
        )),
        MasterKey::File { path } => Arc::new(FileKeyWrapper::open(path)?),
    })
}

/// The account an AWS backend acts in, and how to name it in messages.
async fn scope(
    tenant: &Tenant,
    manifest: &Manifest,
    connector: &dyn Connector,
    sessions: Option<(&Operator, &SessionCache)>,
    settings: &AwsSecrets,
    service: &str,
) -> Result<(ClientScope, String), SecretError> {
    match settings.account {
        SecretsAccount::Vendor => {
            let region = manifest.coordinator.region;
            Ok((
                ClientScope::Operator { region },
                format!(
                    "{service} in the vendor account {}/{region}",
                    manifest.coordinator.account_id
                ),
            ))
        }
        SecretsAccount::Tenant => {
            let location = format!(
                "{service} in tenant `{}`'s account {}/{}",
                tenant.id, tenant.account_id, tenant.region
            );
            crate::entitlement::require(
                tenant,
                Capability::DedicatedAws,
                "keeping secrets in its own AWS account",
            )
            .map_err(|e| SecretError::Config {
                location: location.clone(),
                message: e.to_string(),
            })?;
            let reached = match sessions {
                Some((operator, sessions)) => {
                    sessions.credentials(connector, operator, tenant).await
                }
                None => match access::operator(connector).await {
                    Ok(operator) => access::connect(connector, &operator, tenant)
                        .await
                        .map(|reached| reached.credentials),
                    Err(e) => Err(e),
                },
            };
            let credentials = reached.map_err(|e| {
                let message = chain(&e);
                if e.is_denied() {
                    SecretError::Denied {
                        location: location.clone(),
                        message,
                    }
                } else {
                    SecretError::Backend {
                        location: location.clone(),
                        message,
                    }
                }
            })?;
            Ok((
                ClientScope::Tenant {
                    credentials,
                    region: tenant.region,
                },
                location,
            ))
        }
    }
}

#[cfg(test)]
mod tests;
