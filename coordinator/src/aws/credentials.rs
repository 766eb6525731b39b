//! Credentials for acting in one tenant's account: `AssumeRole` into the
//! tenant's deploy role with its ExternalId, cached, and refreshed a margin
//! before they expire. Concurrent callers share one refresh.
//!
//! The session is never logged; `Debug` shows the role and expiry only.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Mutex;

use super::{AwsError, RoleRequest, Session, Sts};

/// Refresh credentials this long before they expire.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Cached, self-refreshing credentials for one tenant role.
pub struct TenantCredentials {
    sts: Arc<dyn Sts>,
    request: RoleRequest,
    margin: Duration,
    current: Mutex<Option<Session>>,
}

impl fmt::Debug for TenantCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantCredentials")
            .field("role_arn", &self.request.role_arn)
            .field("session_name", &self.request.session_name)
            .finish_non_exhaustive()
    }
}

impl TenantCredentials {
    /// Credentials that `sts` (the operator's) obtains with `request`.
    pub fn new(sts: Arc<dyn Sts>, request: RoleRequest) -> Self {
        Self {
            sts,
            request,
            margin: REFRESH_MARGIN,
            current: Mutex::new(None),
        }
    }

    /// With a different refresh margin (tests).
    pub fn with_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// The request these credentials come from.
    pub fn request(&self) -> &RoleRequest {
        &self.request
    }

    /// A session valid for at least the margin, assuming the role again when
    /// the cached one is missing or about to expire.
    pub async fn session(&self) -> Result<Session, AwsError> {
        let mut current = self.current.lock().await;
        let margin = chrono::Duration::from_std(self.margin).unwrap_or_default();
        if let Some(session) = current.as_ref()
            && session.expiration - margin > Utc::now()
        {
            return Ok(session.clone());
        }
        let fresh = self.sts.assume_role(&self.request).await?;
        tracing::debug!(role = %self.request.role_arn, expires = %fresh.expiration, "assumed tenant role");
        *current = Some(fresh.clone());
        Ok(fresh)
    }
}
