//! [`Bedrock`] over the SDK's Bedrock control-plane client, built by
//! [`SdkConnector`](super::SdkConnector) from a tenant's configuration like
//! every other tenant client (the tenant's AssumeRole credentials, the
//! shared HTTPS client, the parent module's retries and timeouts).
//!
//! What this module must never do: call anything but the listing (no
//! invocation, no change to model access), or let a credential reach an
//! error (errors go through the parent's one mapping).

use std::fmt;

use async_trait::async_trait;

use super::sdk_error;
use crate::aws::AwsError;
use crate::aws::bedrock::{Bedrock, FoundationModel, Modality};

const BEDROCK: &str = "bedrock";

/// [`Bedrock`] over the SDK's client.
#[derive(Clone)]
pub struct SdkBedrock {
    client: aws_sdk_bedrock::Client,
}

impl fmt::Debug for SdkBedrock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdkBedrock")
            .field("region", &self.client.config().region().map(|r| r.as_ref()))
            .finish_non_exhaustive()
    }
}

impl SdkBedrock {
    /// Wraps a client.
    pub fn new(client: aws_sdk_bedrock::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Bedrock for SdkBedrock {
    async fn list_foundation_models(&self) -> Result<Vec<FoundationModel>, AwsError> {
        const OP: &str = "ListFoundationModels";
        let out = self
            .client
            .list_foundation_models()
            .send()
            .await
            .map_err(|e| sdk_error(BEDROCK, OP, e))?;
        Ok(out
            .model_summaries()
            .iter()
            .map(|m| FoundationModel {
                id: m.model_id().to_owned(),
                input_modalities: m
                    .input_modalities()
                    .iter()
                    .map(|modality| Modality::parse(modality.as_str()))
                    .collect(),
            })
            .collect())
    }
}
