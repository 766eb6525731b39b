//! The storage probe: proves that a tenant's own bucket works for what the
//! workers do with documents, by writing a canary object, reading it back,
//! deleting it and confirming it is gone.
//!
//! Where and as whom, from the tenant's privacy configuration:
//!
//! | storage mode | bucket | principal | region, endpoint |
//! |---|---|---|---|
//! | `hosted` | — (not applicable) | | |
//! | `customer_s3`, no `credentials` | `bucket` | the tenant's role (AssumeRole with its ExternalId) | `region`; AWS S3 |
//! | `customer_s3` with `credentials` | `bucket` | the access key in that secret (JSON `{"access_key_id", "secret_access_key"}`) | `region`; `endpoint` and `path_style` when set |
//! | `deployed` | the storage stack's `BucketName` output | the tenant's role | the tenant's region |
//!
//! The canary is `docproc-probe/<tenant>/<random>`, written with SSE-KMS
//! under `kms_key_arn` (the stack's `KmsKeyArn` for `deployed`) when there
//! is one. Every failure becomes a [`ProbeError`] with a stable `storage.*`
//! code ([`code`]), a message and a remedy naming the missing permission
//! and the principal (`diagnosis`); docs/runbooks/storage-probe-failures.md
//! has one section per code.
//!
//! What this module must never do: fall back to another bucket or another
//! principal than configured, retry beyond the SDK's policy, or put a
//! secret (the access key's secret, a session token, the secret's raw
//! value) into a finding, a log line or a `Debug` output.

mod diagnosis;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use rand::Rng as _;
use secrecy::{ExposeSecret as _, SecretString};
use stacks::Stack as _;
use stacks::aws_names::BucketName;
use stacks::builtin::storage::Storage;
use stacks::ids::{RoleArn, TenantId};

use super::{Finding, Probe, ProbeError, ProbeName, ProbeTarget};
use crate::aws::s3::StaticKey;
use crate::aws::{S3Access, S3Credentials, TenantCredentials};
use crate::privacy::StorageMode;
use crate::secrets::{SecretError, SecretName};
use diagnosis::{Step, diagnose};

/// The stable codes of the storage probe's failures.
pub mod code {
    /// The bucket does not exist (`NoSuchBucket`).
    pub const BUCKET_MISSING: &str = "storage.bucket_missing";
    /// The bucket is in another region than configured.
    pub const WRONG_REGION: &str = "storage.wrong_region";
    /// `s3:PutObject` denied.
    pub const ACCESS_DENIED_PUT: &str = "storage.access_denied_put";
    /// `s3:GetObject` denied.
    pub const ACCESS_DENIED_GET: &str = "storage.access_denied_get";
    /// `s3:DeleteObject` denied.
    pub const ACCESS_DENIED_DELETE: &str = "storage.access_denied_delete";
    /// The deletion cannot be confirmed: `HeadObject` of the deleted canary
    /// is denied (S3 answers 403, not 404, without `s3:ListBucket`).
    pub const ACCESS_DENIED_LIST: &str = "storage.access_denied_list";
    /// The KMS key may not be used (`kms:GenerateDataKey`, `kms:Decrypt`),
    /// or is disabled or missing.
    pub const KMS_DENIED: &str = "storage.kms_denied";
    /// The bucket refuses requests over plain HTTP.
    pub const TLS_REQUIRED: &str = "storage.tls_required";
    /// The access key or the tenant's role is not accepted.
    pub const INVALID_CREDENTIALS: &str = "storage.invalid_credentials";
    /// The configured credentials secret does not exist.
    pub const CREDENTIALS_SECRET_MISSING: &str = "storage.credentials_secret_missing";
    /// The credentials secret is not the expected JSON.
    pub const CREDENTIALS_MALFORMED: &str = "storage.credentials_malformed";
    /// The credentials secret cannot be read (denied, undecryptable, store
    /// down).
    pub const CREDENTIALS_UNREADABLE: &str = "storage.credentials_unreadable";
    /// `deployed` storage, but no storage stack outputs.
    pub const STACK_NOT_DEPLOYED: &str = "storage.stack_not_deployed";
    /// The canary read back differs from what was written.
    pub const READBACK_MISMATCH: &str = "storage.readback_mismatch";
    /// The canary is still there after a successful delete.
    pub const DELETE_NOT_EFFECTIVE: &str = "storage.delete_not_effective";
    /// Network, timeout, throttling or a 5xx, after the SDK's retries.
    pub const UNREACHABLE: &str = "storage.unreachable";
    /// Any other answer; the message has the service's code.
    pub const UNEXPECTED: &str = "storage.unexpected";

    /// Every code, in the order the runbook lists them.
    pub const ALL: &[&str] = &[
        BUCKET_MISSING,
        WRONG_REGION,
        ACCESS_DENIED_PUT,
        ACCESS_DENIED_GET,
        ACCESS_DENIED_DELETE,
        ACCESS_DENIED_LIST,
        KMS_DENIED,
        TLS_REQUIRED,
        INVALID_CREDENTIALS,
        CREDENTIALS_SECRET_MISSING,
        CREDENTIALS_MALFORMED,
        CREDENTIALS_UNREADABLE,
        STACK_NOT_DEPLOYED,
        READBACK_MISMATCH,
        DELETE_NOT_EFFECTIVE,
        UNREACHABLE,
        UNEXPECTED,
    ];
}

/// The prefix of every canary key.
pub const CANARY_PREFIX: &str = stacks::builtin::bootstrap::STORAGE_PROBE_PREFIX;

/// Where the probe points people for policies to copy.
const ADMIN_DOC: &str = "docs/admin/s3-customer-storage.md";

/// The storage probe. Stateless: the tenant's role session comes from the
/// target's [`SessionCache`](crate::access::SessionCache), which assumes the
/// role and checks the account on first use and keeps the session between
/// runs, so a scheduled probe does not assume the role every time.
#[derive(Debug, Default)]
pub struct StorageProbe;

impl StorageProbe {
    /// The tenant's role credentials, from the shared session cache; a role
    /// that cannot be assumed, or that lands in another account, fails here.
    async fn tenant_credentials(
        &self,
        target: &ProbeTarget,
    ) -> Result<Arc<TenantCredentials>, ProbeError> {
        let tenant = &target.tenant;
        target
            .sessions
            .credentials(target.connector.as_ref(), &target.operator, tenant)
            .await
            .map_err(|e| diagnosis::role_unusable(&tenant.id, &e))
    }

    /// Where to write and as whom; `None` when storage is hosted.
    async fn canary(&self, target: &ProbeTarget) -> Result<Option<Canary>, ProbeError> {
        let tenant = &target.tenant;
        match &target.config.storage {
            StorageMode::Hosted => Ok(None),
            StorageMode::CustomerS3(s) => {
                let (credentials, principal) = match &s.credentials {
                    Some(secret) => {
                        let key = read_key(target, secret).await?;
                        let principal = Principal::Key {
                            secret: secret.clone(),
                            hint: key.hint(),
                        };
                        (S3Credentials::Static(key), principal)
                    }
                    None => (
                        S3Credentials::Tenant(self.tenant_credentials(target).await?),
                        Principal::Role(tenant.role_arn.clone()),
                    ),
                };
                Ok(Some(Canary {
                    bucket: s.bucket.clone(),
                    access: S3Access {
                        credentials,
                        region: s.region,
                        endpoint: s.endpoint.clone(),
                        path_style: s.path_style,
                    },
                    kms_key: s.kms_key_arn.clone(),
                    principal,
                }))
            }
            StorageMode::Deployed => {
                let outputs = target.storage_outputs.as_ref().map(|o| {
                    Storage::parse_outputs(o.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                });
                let outputs = match outputs {
                    Some(Ok(outputs)) => outputs,
                    found => {
                        let why = match found {
                            None => "the storage stack has not been deployed".to_owned(),
                            Some(Err(e)) => {
                                format!("the storage stack's outputs are unusable: {e}")
                            }
                            Some(Ok(_)) => unreachable!("matched above"),
                        };
                        return Err(ProbeError::new(
                            code::STACK_NOT_DEPLOYED,
                            format!(
                                "tenant `{}` uses the bucket of its storage stack, but {why}",
                                tenant.id
                            ),
                            "deploy the tenant's stacks (`coordinator deploy --tenant ...`) and run the check again; until then documents cannot be stored",
                        ));
                    }
                };
                Ok(Some(Canary {
                    bucket: outputs.bucket_name,
                    access: S3Access {
                        credentials: S3Credentials::Tenant(self.tenant_credentials(target).await?),
                        region: tenant.region,
                        endpoint: None,
                        path_style: false,
                    },
                    kms_key: Some(outputs.kms_key_arn.as_str().to_owned()),
                    principal: Principal::Role(tenant.role_arn.clone()),
                }))
            }
        }
    }

    /// Write, read back, delete, confirm.
    async fn exercise(&self, target: &ProbeTarget, canary: &Canary) -> Finding {
        let s3 = target.connector.s3(&canary.access);
        let nonce: u128 = rand::rng().random();
        let key = format!("{CANARY_PREFIX}/{}/{nonce:032x}", target.tenant.id);
        let body = format!(
            "docproc storage probe\ntenant: {}\nwritten: {}\nnonce: {nonce:032x}\n",
            target.tenant.id,
            chrono::Utc::now().to_rfc3339()
        )
        .into_bytes();
        let context = canary.context(&target.tenant.id, &key);
        let fail = |step, e| Finding::Fail(diagnose(step, &e, &context));
        let bucket = &canary.bucket;

        if let Err(e) = s3
            .put_object(bucket, &key, body.clone(), canary.kms_key.as_deref())
            .await
        {
            return fail(Step::Put, e);
        }
        let problem = match s3.get_object(bucket, &key).await {
            Err(e) => Some(diagnose(Step::Get, &e, &context)),
            Ok(read) if read != body => Some(diagnosis::readback_mismatch(
                &context,
                body.len(),
                read.len(),
            )),
            Ok(_) => None,
        };
        if let Err(e) = s3.delete_object(bucket, &key).await {
            // A read problem is the first thing to fix; the canary stays.
            return Finding::Fail(problem.unwrap_or_else(|| diagnose(Step::Delete, &e, &context)));
        }
        if let Some(problem) = problem {
            return Finding::Fail(problem);
        }
        match s3.head_object(bucket, &key).await {
            Ok(None) => Finding::Pass(Some(canary.summary(body.len()))),
            Ok(Some(_)) => Finding::Fail(diagnosis::delete_not_effective(&context)),
            Err(e) => fail(Step::Confirm, e),
        }
    }
}

#[async_trait]
impl Probe for StorageProbe {
    fn name(&self) -> ProbeName {
        ProbeName::Storage
    }

    async fn check(&self, target: &ProbeTarget) -> Finding {
        match self.canary(target).await {
            Ok(None) => Finding::NotApplicable(
                "documents are stored in the vendor's hosted bucket".to_owned(),
            ),
            Ok(Some(canary)) => self.exercise(target, &canary).await,
            Err(e) => Finding::Fail(e),
        }
    }
}

/// Who the probe acts as, in words for a bucket or key policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    /// The tenant's role.
    Role(RoleArn),
    /// The access key stored in a tenant secret.
    Key {
        /// The secret's name.
        secret: SecretName,
        /// [`StaticKey::hint`].
        hint: String,
    },
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Role(role) => write!(f, "the tenant's role {role}"),
            Principal::Key { secret, hint } => write!(
                f,
                "the IAM user (or service account) of access key {hint} stored in secret `{secret}`"
            ),
        }
    }
}

/// One probe run's plan: bucket, client settings, key, principal.
#[derive(Debug)]
struct Canary {
    bucket: BucketName,
    access: S3Access,
    kms_key: Option<String>,
    principal: Principal,
}

impl Canary {
    fn context<'a>(&'a self, tenant: &'a TenantId, key: &'a str) -> diagnosis::Context<'a> {
        diagnosis::Context {
            tenant,
            bucket: &self.bucket,
            region: self.access.region,
            endpoint: self.access.endpoint.as_deref(),
            plain_http: self.access.is_plain_http(),
            kms_key: self.kms_key.as_deref(),
            principal: &self.principal,
            key,
        }
    }

    /// What a pass proved, for people.
    fn summary(&self, size: usize) -> String {
        let mut text = format!(
            "wrote, read back and deleted a {size}-byte canary in bucket `{}` ({}",
            self.bucket, self.access.region
        );
        if let Some(endpoint) = &self.access.endpoint {
            text.push_str(&format!(" at {endpoint}"));
        }
        text.push_str(&format!(") as {}", self.principal));
        if let Some(key) = &self.kms_key {
            text.push_str(&format!(", SSE-KMS with {key}"));
        }
        text
    }
}

/// Reads and parses the access key in `secret`.
async fn read_key(target: &ProbeTarget, secret: &SecretName) -> Result<StaticKey, ProbeError> {
    let tenant = &target.tenant.id;
    let value = match target.secrets.get(tenant, secret).await {
        Ok(value) => value,
        Err(SecretError::NotFound { location, .. }) => {
            return Err(ProbeError::new(
                code::CREDENTIALS_SECRET_MISSING,
                format!(
                    "the storage configuration names secret `{secret}`, but tenant `{tenant}` has no such secret in {location}"
                ),
                format!(
                    "store the bucket's access key with `coordinator secret put --tenant {tenant} {secret}` (JSON {{\"access_key_id\": ..., \"secret_access_key\": ...}}), or name the right secret in the storage configuration"
                ),
            ));
        }
        Err(e) => {
            return Err(ProbeError::new(
                code::CREDENTIALS_UNREADABLE,
                format!("the bucket's access key in secret `{secret}` cannot be read: {e}"),
                "check that the coordinator may read the tenant's secret store (its role's secretsmanager:GetSecretValue / ssm:GetParameter and kms:Decrypt on the secret's key), then run the check again",
            ));
        }
    };
    parse_key(&value).map_err(|why| {
        ProbeError::new(
            code::CREDENTIALS_MALFORMED,
            format!("secret `{secret}` does not hold an access key: {why}"),
            format!(
                "write it again with `coordinator secret rotate --tenant {tenant} {secret}` as JSON {{\"access_key_id\": \"AKIA...\", \"secret_access_key\": \"...\"}}"
            ),
        )
    })
}

/// Parses `{"access_key_id": .., "secret_access_key": ..}`. The reason for a
/// refusal never quotes the value.
pub(crate) fn parse_key(value: &SecretString) -> Result<StaticKey, &'static str> {
    let json: serde_json::Value =
        serde_json::from_str(value.expose_secret()).map_err(|_| "the value is not JSON")?;
    let object = json.as_object().ok_or("the value is not a JSON object")?;
    let field = |name| {
        object
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let access_key_id =
        field("access_key_id").ok_or("`access_key_id` is missing, empty or not a string")?;
    let secret_access_key = field("secret_access_key")
        .ok_or("`secret_access_key` is missing, empty or not a string")?;
    Ok(StaticKey {
        access_key_id: access_key_id.to_owned(),
        secret_access_key: SecretString::from(secret_access_key.to_owned()),
    })
}
