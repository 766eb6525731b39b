//! Getting into a tenant's account, and refusing to act when anything about
//! it is off.
//!
//! The operator's own identity (`GetCallerIdentity`) is the actor of every
//! audit entry and travels into the customer's CloudTrail as the session's
//! `SourceIdentity` and name. [`connect`] assumes the tenant's deploy role
//! with its ExternalId and then checks where the credentials landed: if it
//! is not the tenant's account, it fails closed. There is no fallback of any
//! kind: an error here means nothing is done for that tenant.

use std::sync::Arc;
use std::time::Duration;

use stacks::ids::{AccountId, ExternalId, RoleArn, TenantId};

use crate::aws::{
    AwsError, CallerIdentity, CloudFormation, Connector, ErrorKind, RoleRequest, SessionName,
    TenantCredentials,
};
use crate::manifest::Tenant;

/// Length of tenant sessions. Short: credentials are refreshed anyway.
pub const SESSION_DURATION: Duration = Duration::from_secs(3600);

/// The person or system running the coordinator.
#[derive(Debug, Clone)]
pub struct Operator {
    /// `GetCallerIdentity` of the operator's credentials.
    pub identity: CallerIdentity,
    /// Carried as `SourceIdentity` into tenants' CloudTrail.
    pub source_identity: SessionName,
    /// Role session name used in tenants' accounts.
    pub session_name: SessionName,
}

impl Operator {
    /// The operator of `identity` (its `GetCallerIdentity`): the last path
    /// element of the ARN (`.../assumed-role/Role/alice`, `.../user/alice`)
    /// names the person or session.
    pub fn from_identity(identity: CallerIdentity) -> Self {
        let who = identity
            .arn
            .rsplit(['/', ':'])
            .next()
            .unwrap_or("coordinator")
            .to_owned();
        Operator {
            source_identity: SessionName::sanitize(&who),
            session_name: SessionName::sanitize(&format!("docproc-{who}")),
            identity,
        }
    }

    /// The actor recorded in audit entries: the operator's ARN.
    pub fn actor(&self) -> &str {
        &self.identity.arn
    }
}

/// Why a tenant's account could not be reached safely.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The operator's own credentials do not work.
    #[error(
        "cannot tell who is running the coordinator (GetCallerIdentity failed): check the AWS credentials in this environment (AWS_PROFILE, AWS_ACCESS_KEY_ID, ...)"
    )]
    Operator(#[source] AwsError),
    /// AssumeRole was refused.
    #[error(
        "tenant {tenant}: AssumeRole into {role} was denied. The customer may have deleted or changed the docproc-bootstrap stack, or the tenant's external_id in deploy.toml is wrong. Nothing was done for this tenant (fail closed); ask the customer to check the bootstrap stack (docs/runbooks/onboarding.md)"
    )]
    Denied {
        /// Tenant.
        tenant: TenantId,
        /// The role.
        role: RoleArn,
        /// The refusal.
        #[source]
        source: AwsError,
    },
    /// AssumeRole or the identity check failed for another reason.
    #[error("tenant {tenant}: cannot reach the account through {role}")]
    Unreachable {
        /// Tenant.
        tenant: TenantId,
        /// The role.
        role: RoleArn,
        /// The cause.
        #[source]
        source: AwsError,
    },
    /// The credentials act in an account other than the tenant's.
    #[error(
        "tenant {tenant}: the credentials from {role} act in account {actual}, not the tenant's account {expected}; refusing to act (fail closed). Check role_arn and account_id in deploy.toml"
    )]
    WrongAccount {
        /// Tenant.
        tenant: TenantId,
        /// The role.
        role: RoleArn,
        /// The tenant's account.
        expected: AccountId,
        /// Where the credentials landed.
        actual: AccountId,
    },
}

impl AccessError {
    /// Whether the customer side refused us (as opposed to a fault).
    pub fn is_denied(&self) -> bool {
        matches!(
            self,
            AccessError::Denied { .. } | AccessError::WrongAccount { .. }
        )
    }
}

/// Identifies the operator.
pub async fn operator(connector: &dyn Connector) -> Result<Operator, AccessError> {
    let identity = connector
        .operator_sts()
        .caller_identity()
        .await
        .map_err(AccessError::Operator)?;
    Ok(Operator::from_identity(identity))
}

/// A tenant's account, reached and verified.
#[derive(Debug, Clone)]
pub struct TenantAccess {
    /// Tenant.
    pub tenant: TenantId,
    /// Who we are in the tenant's account.
    pub identity: CallerIdentity,
    /// The credentials (shared, self-refreshing).
    pub credentials: Arc<TenantCredentials>,
    /// CloudFormation in the tenant's account and region.
    pub cloudformation: Arc<dyn CloudFormation>,
}

/// The `AssumeRole` request for a tenant, with or without its ExternalId.
pub fn role_request(
    operator: &Operator,
    role: &RoleArn,
    external_id: Option<&ExternalId>,
) -> RoleRequest {
    RoleRequest {
        role_arn: role.clone(),
        external_id: external_id.cloned(),
        session_name: operator.session_name.clone(),
        source_identity: Some(operator.source_identity.clone()),
        duration: SESSION_DURATION,
    }
}

/// Assumes the tenant's role with its ExternalId and checks the account.
pub async fn connect(
    connector: &dyn Connector,
    operator: &Operator,
    tenant: &Tenant,
) -> Result<TenantAccess, AccessError> {
    let request = role_request(operator, &tenant.role_arn, Some(&tenant.external_id));
    let credentials = Arc::new(TenantCredentials::new(connector.operator_sts(), request));
    let fail = |source: AwsError| {
        if source.kind == ErrorKind::AccessDenied {
            AccessError::Denied {
                tenant: tenant.id.clone(),
                role: tenant.role_arn.clone(),
                source,
            }
        } else {
            AccessError::Unreachable {
                tenant: tenant.id.clone(),
                role: tenant.role_arn.clone(),
                source,
            }
        }
    };
    credentials.session().await.map_err(fail)?;
    let identity = connector
        .tenant_sts(credentials.clone(), tenant.region)
        .caller_identity()
        .await
        .map_err(fail)?;
    if identity.account != tenant.account_id {
        return Err(AccessError::WrongAccount {
            tenant: tenant.id.clone(),
            role: tenant.role_arn.clone(),
            expected: tenant.account_id.clone(),
            actual: identity.account,
        });
    }
    Ok(TenantAccess {
        tenant: tenant.id.clone(),
        identity,
        cloudformation: connector.tenant_cloudformation(credentials.clone(), tenant.region),
        credentials,
    })
}

/// Tenants' sessions kept between calls: the first [`connect`] for a tenant
/// assumes its role and checks the account; later calls reuse the
/// self-refreshing credentials, so a probe that runs every few minutes does
/// not call `AssumeRole` and `GetCallerIdentity` each time. A changed role
/// or ExternalId in the manifest makes a new session. As on AWS, a session
/// outlives a later change of the role's trust until it expires; callers
/// whose point is to prove the role can still be assumed (the LLM probe's
/// Bedrock path) call [`connect`] instead.
#[derive(Debug, Default)]
pub struct SessionCache(
    std::sync::Mutex<std::collections::HashMap<TenantId, Arc<TenantCredentials>>>,
);

impl SessionCache {
    /// The tenant's credentials, connecting (and checking) on first use.
    pub async fn credentials(
        &self,
        connector: &dyn Connector,
        operator: &Operator,
        tenant: &Tenant,
    ) -> Result<Arc<TenantCredentials>, AccessError> {
        if let Some(cached) = self.cached(tenant) {
            return Ok(cached);
        }
        let access = connect(connector, operator, tenant).await?;
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.id.clone(), access.credentials.clone());
        Ok(access.credentials)
    }

    fn cached(&self, tenant: &Tenant) -> Option<Arc<TenantCredentials>> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&tenant.id)
            .filter(|c| {
                let request = c.request();
                request.role_arn == tenant.role_arn
                    && request.external_id.as_ref() == Some(&tenant.external_id)
            })
            .cloned()
    }
}
