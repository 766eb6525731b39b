//! The fake's STS: roles with a trust policy (ExternalId enforced or not),
//! revoked roles, sessions that act in an account, identities.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use stacks::ids::{AccountId, Region, RoleArn};

use super::outputs::{UPPER, derived};
use super::{Call, FakeCloud, State, Trust};
use crate::aws::{
    AwsError, CallerIdentity, ErrorKind, RoleRequest, Session, Sts, TenantCredentials,
};

/// A role in an account.
#[derive(Debug, Clone)]
pub(super) struct Role {
    pub trust: Trust,
    pub max_session: Duration,
}

/// A session the fake issued.
#[derive(Debug, Clone)]
pub(super) struct SessionInfo {
    /// The account it acts in.
    pub account: AccountId,
    role_name: String,
    role_id: String,
    session_name: String,
    token: String,
    expiration: DateTime<Utc>,
}

impl SessionInfo {
    fn identity(&self) -> CallerIdentity {
        CallerIdentity {
            account: self.account.clone(),
            arn: format!(
                "arn:aws:sts::{}:assumed-role/{}/{}",
                self.account, self.role_name, self.session_name
            ),
            user_id: format!("{}:{}", self.role_id, self.session_name),
        }
    }
}

/// (account, role name) of a role ARN; the name is the last path element.
pub(super) fn role_key(role: &RoleArn) -> (AccountId, String) {
    let name = role.as_str().rsplit('/').next().unwrap_or_default();
    (role.account_id(), name.to_owned())
}

fn error(kind: ErrorKind, operation: &'static str, code: &str, message: String) -> AwsError {
    AwsError::new(kind, "sts", operation, message).with_code(code)
}

impl State {
    /// The session behind `session`'s access key, if the fake issued it and
    /// it has not expired.
    pub(super) fn resolve_session(
        &self,
        session: &Session,
        service: &'static str,
        operation: &'static str,
    ) -> Result<SessionInfo, AwsError> {
        let info = self
            .sessions
            .get(&session.access_key_id)
            .filter(|info| info.token == session.session_token.expose_secret());
        let Some(info) = info else {
            return Err(AwsError::new(
                ErrorKind::AccessDenied,
                service,
                operation,
                "The security token included in the request is invalid.",
            )
            .with_code("InvalidClientTokenId"));
        };
        if info.expiration <= Utc::now() {
            return Err(AwsError::new(
                ErrorKind::AccessDenied,
                service,
                operation,
                "The security token included in the request is expired",
            )
            .with_code("ExpiredToken"));
        }
        Ok(info.clone())
    }

    /// AssumeRole by `caller_arn`; `chained` when the caller is itself an
    /// assumed role (sessions are then limited to one hour).
    fn assume(
        &mut self,
        caller_arn: &str,
        request: &RoleRequest,
        chained: bool,
    ) -> Result<Session, AwsError> {
        const OP: &str = "AssumeRole";
        let seconds = request.duration.as_secs();
        if !(900..=43_200).contains(&seconds) {
            return Err(error(
                ErrorKind::Validation,
                OP,
                "ValidationError",
                format!(
                    "1 validation error detected: Value '{seconds}' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200"
                ),
            ));
        }
        let denied = || {
            error(
                ErrorKind::AccessDenied,
                OP,
                "AccessDenied",
                format!(
                    "User: {caller_arn} is not authorized to perform: sts:AssumeRole on resource: {}",
                    request.role_arn
                ),
            )
        };
        if self.denied.contains(&request.role_arn) {
            return Err(denied());
        }
        let (role_account, role_name) = role_key(&request.role_arn);
        let role = self
            .roles
            .get(&(role_account.clone(), role_name.clone()))
            .ok_or_else(denied)?;
        if role.trust.enforce && request.external_id != role.trust.external_id {
            return Err(denied());
        }
        if request.duration > role.max_session {
            return Err(error(
                ErrorKind::Validation,
                OP,
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
                    .into(),
            ));
        }
        if chained && seconds > 3600 {
            return Err(error(
                ErrorKind::Validation,
                OP,
                "ValidationError",
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
                    .into(),
            ));
        }
        let account = self
            .landings
            .get(&request.role_arn)
            .cloned()
            .unwrap_or(role_account);
        let seq = self.next_seq();
        let ttl = request.duration.min(self.session_ttl);
        let expiration = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
        let access_key_id = format!("ASIA{account}{seq:08}");
        let token = format!("fake-session-token-{seq}");
        self.sessions.insert(
            access_key_id.clone(),
            SessionInfo {
                account,
                role_id: format!("AROA{}", derived(request.role_arn.as_str(), UPPER, 17)),
                role_name,
                session_name: request.session_name.as_str().to_owned(),
                token: token.clone(),
                expiration,
            },
        );
        Ok(Session {
            access_key_id,
            secret_access_key: SecretString::from(format!("fake-secret-{seq}")),
            session_token: SecretString::from(token),
            expiration,
        })
    }
}

/// STS with the operator's credentials.
#[derive(Debug, Clone)]
pub struct FakeOperatorSts {
    cloud: FakeCloud,
}

impl FakeOperatorSts {
    pub(super) fn new(cloud: FakeCloud) -> Self {
        Self { cloud }
    }
}

#[async_trait]
impl Sts for FakeOperatorSts {
    async fn caller_identity(&self) -> Result<CallerIdentity, AwsError> {
        self.cloud.latency().await;
        let mut state = self.cloud.lock();
        let me = state.operator.clone();
        state.admit(Call {
            service: "sts",
            operation: "GetCallerIdentity",
            account: Some(me.account.clone()),
            region: None,
            stack: None,
            role_arn: None,
            queue: None,
        })?;
        Ok(me)
    }

    async fn assume_role(&self, request: &RoleRequest) -> Result<Session, AwsError> {
        self.cloud.latency().await;
        let mut state = self.cloud.lock();
        state.assume_count += 1;
        let me = state.operator.clone();
        state.admit(Call {
            service: "sts",
            operation: "AssumeRole",
            account: Some(me.account.clone()),
            region: None,
            stack: None,
            role_arn: Some(request.role_arn.clone()),
            queue: None,
        })?;
        state.assume(&me.arn, request, false)
    }
}

/// STS acting as a tenant: each call gets a session from the tenant's
/// credentials first (which may assume the role again).
#[derive(Debug, Clone)]
pub struct FakeTenantSts {
    cloud: FakeCloud,
    credentials: Arc<TenantCredentials>,
    region: Region,
}

impl FakeTenantSts {
    pub(super) fn new(
        cloud: FakeCloud,
        credentials: Arc<TenantCredentials>,
        region: Region,
    ) -> Self {
        Self {
            cloud,
            credentials,
            region,
        }
    }
}

#[async_trait]
impl Sts for FakeTenantSts {
    async fn caller_identity(&self) -> Result<CallerIdentity, AwsError> {
        let session = self
            .cloud
            .tenant_call(
                &self.credentials,
                "sts",
                "GetCallerIdentity",
                self.region,
                None,
            )
            .await?;
        Ok(session.identity())
    }

    /// Role chaining: the tenant's session assumes another role.
    async fn assume_role(&self, request: &RoleRequest) -> Result<Session, AwsError> {
        self.cloud.lock().assume_count += 1;
        let session = self
            .cloud
            .tenant_call(&self.credentials, "sts", "AssumeRole", self.region, None)
            .await?;
        let mut state = self.cloud.lock();
        state.assume(&session.identity().arn, request, true)
    }
}
