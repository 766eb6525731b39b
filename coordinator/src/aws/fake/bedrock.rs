//! The fake's Bedrock: the foundation models each account and region
//! offers, for the LLM probe's tests (moto does not implement
//! `ListFoundationModels`).
//!
//! A region nobody configured offers no models. Calls act in the account the
//! tenant's session lands in, are recorded, and take part in `fail_all`,
//! injected errors (operation `ListFoundationModels`) and latency like
//! every other fake client. [`FakeCloud::deny_bedrock`] makes an account's
//! calls fail as a role without `bedrock:ListFoundationModels` does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use stacks::ids::{AccountId, Region};

use super::FakeCloud;
use crate::aws::bedrock::{Bedrock, FoundationModel};
use crate::aws::{AwsError, ErrorKind, TenantCredentials};

const BEDROCK: &str = "bedrock";
const LIST: &str = "ListFoundationModels";

/// The Bedrock part of the fake's state.
#[derive(Debug, Default)]
pub(super) struct BedrockState {
    models: BTreeMap<(AccountId, Region), Vec<FoundationModel>>,
    denied: BTreeSet<AccountId>,
}

impl FakeCloud {
    /// The foundation models `account` sees in `region` (replacing any set
    /// before).
    pub fn set_foundation_models(
        &self,
        account: &AccountId,
        region: Region,
        models: Vec<FoundationModel>,
    ) {
        self.lock()
            .bedrock
            .models
            .insert((account.clone(), region), models);
    }

    /// Makes `account`'s Bedrock calls fail with `AccessDeniedException`
    /// (`denied`), or succeed again.
    pub fn deny_bedrock(&self, account: &AccountId, denied: bool) {
        let mut state = self.lock();
        if denied {
            state.bedrock.denied.insert(account.clone());
        } else {
            state.bedrock.denied.remove(account);
        }
    }
}

/// Bedrock in one tenant account and region.
#[derive(Debug, Clone)]
pub struct FakeBedrock {
    cloud: FakeCloud,
    credentials: Arc<TenantCredentials>,
    region: Region,
}

impl FakeBedrock {
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
impl Bedrock for FakeBedrock {
    async fn list_foundation_models(&self) -> Result<Vec<FoundationModel>, AwsError> {
        let session = self
            .cloud
            .tenant_call(&self.credentials, BEDROCK, LIST, self.region, None)
            .await?;
        let state = self.cloud.lock();
        if state.bedrock.denied.contains(&session.account) {
            return Err(AwsError::new(
                ErrorKind::AccessDenied,
                BEDROCK,
                LIST,
                format!(
                    "User: arn:aws:sts::{}:assumed-role/... is not authorized to perform: bedrock:ListFoundationModels because no identity-based policy allows the bedrock:ListFoundationModels action",
                    session.account
                ),
            )
            .with_code("AccessDeniedException"));
        }
        Ok(state
            .bedrock
            .models
            .get(&(session.account, self.region))
            .cloned()
            .unwrap_or_default())
    }
}
