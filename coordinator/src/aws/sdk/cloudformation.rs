//! [`CloudFormation`] over the SDK's CloudFormation client: stacks, change
//! sets and stack events in one account and region, each trait call one SDK
//! call, every error classified by the parent's `sdk_error`.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use aws_sdk_cloudformation::types as cfn;
use stacks::Parameter;
use stacks::ids::RoleArn;

use super::{CLOUDFORMATION, missing, required, sdk_error, to_chrono};
use crate::aws::{
    AwsError, ChangeSetDescription, ChangeSetStatus, CloudFormation, CreateChangeSet, CreateStack,
    ErrorKind, ResourceChange, StackCapability, StackDescription, StackEvent, StackStatus,
};

/// [`CloudFormation`] over the SDK's CloudFormation client.
#[derive(Clone)]
pub struct SdkCloudFormation {
    client: aws_sdk_cloudformation::Client,
}

impl fmt::Debug for SdkCloudFormation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdkCloudFormation")
            .field("region", &self.client.config().region().map(|r| r.as_ref()))
            .finish_non_exhaustive()
    }
}

impl SdkCloudFormation {
    /// Wraps a client.
    pub fn new(client: aws_sdk_cloudformation::Client) -> Self {
        Self { client }
    }
}

fn parameters(parameters: &[Parameter]) -> Vec<cfn::Parameter> {
    parameters
        .iter()
        .map(|p| {
            cfn::Parameter::builder()
                .parameter_key(&p.parameter_key)
                .parameter_value(&p.parameter_value)
                .build()
        })
        .collect()
}

fn tags(tags: &BTreeMap<String, String>) -> Vec<cfn::Tag> {
    tags.iter()
        .map(|(k, v)| cfn::Tag::builder().key(k).value(v).build())
        .collect()
}

fn capabilities(capabilities: &[StackCapability]) -> Vec<cfn::Capability> {
    capabilities
        .iter()
        .map(|c| cfn::Capability::from(c.as_str()))
        .collect()
}

#[async_trait]
impl CloudFormation for SdkCloudFormation {
    async fn describe_stack(&self, name: &str) -> Result<Option<StackDescription>, AwsError> {
        const OP: &str = "DescribeStacks";
        let out = match self.client.describe_stacks().stack_name(name).send().await {
            Ok(out) => out,
            Err(e) => {
                // "Stack with id X does not exist" (ValidationError).
                let error = sdk_error(CLOUDFORMATION, OP, e);
                return match error.kind {
                    ErrorKind::NotFound => Ok(None),
                    _ => Err(error),
                };
            }
        };
        let Some(stack) = out.stacks().first() else {
            return Ok(None);
        };
        let status = required(
            CLOUDFORMATION,
            OP,
            "StackStatus",
            stack.stack_status().map(|s| s.as_str()),
        )?;
        Ok(Some(StackDescription {
            stack_id: required(CLOUDFORMATION, OP, "StackId", stack.stack_id())?.to_owned(),
            name: required(CLOUDFORMATION, OP, "StackName", stack.stack_name())?.to_owned(),
            status: StackStatus::parse(status),
            status_reason: stack.stack_status_reason().map(str::to_owned),
            parameters: stack
                .parameters()
                .iter()
                .filter_map(|p| {
                    Some((
                        p.parameter_key()?.to_owned(),
                        p.parameter_value()?.to_owned(),
                    ))
                })
                .collect(),
            outputs: stack
                .outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
                .collect(),
            tags: stack
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                .collect(),
        }))
    }

    async fn create_stack(&self, request: &CreateStack) -> Result<String, AwsError> {
        const OP: &str = "CreateStack";
        let out = self
            .client
            .create_stack()
            .stack_name(&request.name)
            .template_body(&request.template_body)
            .set_parameters(Some(parameters(&request.parameters)))
            .set_tags(Some(tags(&request.tags)))
            .set_role_arn(request.role_arn.as_ref().map(|r| r.as_str().to_owned()))
            .set_capabilities(Some(capabilities(&request.capabilities)))
            .client_request_token(&request.client_request_token)
            .send()
            .await
            .map_err(|e| sdk_error(CLOUDFORMATION, OP, e))?;
        Ok(required(CLOUDFORMATION, OP, "StackId", out.stack_id())?.to_owned())
    }

    async fn create_change_set(&self, request: &CreateChangeSet) -> Result<String, AwsError> {
        const OP: &str = "CreateChangeSet";
        let out = self
            .client
            .create_change_set()
            .stack_name(&request.stack_name)
            .change_set_name(&request.change_set_name)
            .change_set_type(cfn::ChangeSetType::Update)
            .template_body(&request.template_body)
            .set_parameters(Some(parameters(&request.parameters)))
            .set_tags(Some(tags(&request.tags)))
            .set_role_arn(request.role_arn.as_ref().map(|r| r.as_str().to_owned()))
            .set_capabilities(Some(capabilities(&request.capabilities)))
            .client_token(&request.client_token)
            .send()
            .await
            .map_err(|e| sdk_error(CLOUDFORMATION, OP, e))?;
        Ok(required(CLOUDFORMATION, OP, "Id", out.id())?.to_owned())
    }

    async fn describe_change_set(
        &self,
        stack: &str,
        change_set: &str,
    ) -> Result<ChangeSetDescription, AwsError> {
        const OP: &str = "DescribeChangeSet";
        let out = self
            .client
            .describe_change_set()
            .stack_name(stack)
            .change_set_name(change_set)
            .send()
            .await
            .map_err(|e| sdk_error(CLOUDFORMATION, OP, e))?;
        let status = required(
            CLOUDFORMATION,
            OP,
            "Status",
            out.status().map(|s| s.as_str()),
        )?;
        Ok(ChangeSetDescription {
            status: ChangeSetStatus::parse(status),
            execution_status: out.execution_status().map(|s| s.as_str().to_owned()),
            status_reason: out.status_reason().map(str::to_owned),
            changes: out
                .changes()
                .iter()
                .filter_map(|c| c.resource_change())
                .map(|rc| ResourceChange {
                    action: rc
                        .action()
                        .map(|a| a.as_str())
                        .unwrap_or_default()
                        .to_owned(),
                    logical_id: rc.logical_resource_id().unwrap_or_default().to_owned(),
                    resource_type: rc.resource_type().unwrap_or_default().to_owned(),
                    replacement: rc.replacement().map(|r| r.as_str().to_owned()),
                })
                .collect(),
        })
    }

    async fn execute_change_set(
        &self,
        stack: &str,
        change_set: &str,
        token: &str,
    ) -> Result<(), AwsError> {
        self.client
            .execute_change_set()
            .stack_name(stack)
            .change_set_name(change_set)
            .client_request_token(token)
            .send()
            .await
            .map_err(|e| sdk_error(CLOUDFORMATION, "ExecuteChangeSet", e))?;
        Ok(())
    }

    async fn delete_change_set(&self, stack: &str, change_set: &str) -> Result<(), AwsError> {
        self.client
            .delete_change_set()
            .stack_name(stack)
            .change_set_name(change_set)
            .send()
            .await
            .map_err(|e| sdk_error(CLOUDFORMATION, "DeleteChangeSet", e))?;
        Ok(())
    }

    async fn delete_stack(
        &self,
        stack: &str,
        role_arn: Option<&RoleArn>,
        token: &str,
    ) -> Result<(), AwsError> {
        self.client
            .delete_stack()
            .stack_name(stack)
            .set_role_arn(role_arn.map(|r| r.as_str().to_owned()))
            .client_request_token(token)
            .send()
            .await
            .map_err(|e| sdk_error(CLOUDFORMATION, "DeleteStack", e))?;
        Ok(())
    }

    async fn continue_update_rollback(
        &self,
        stack: &str,
        skip_resources: &[String],
        role_arn: Option<&RoleArn>,
        token: &str,
    ) -> Result<(), AwsError> {
        self.client
            .continue_update_rollback()
            .stack_name(stack)
            .set_resources_to_skip((!skip_resources.is_empty()).then(|| skip_resources.to_vec()))
            .set_role_arn(role_arn.map(|r| r.as_str().to_owned()))
            .client_request_token(token)
            .send()
            .await
            .map_err(|e| sdk_error(CLOUDFORMATION, "ContinueUpdateRollback", e))?;
        Ok(())
    }

    async fn stack_events(&self, stack: &str) -> Result<Vec<StackEvent>, AwsError> {
        const OP: &str = "DescribeStackEvents";
        let out = self
            .client
            .describe_stack_events()
            .stack_name(stack)
            .send()
            .await
            .map_err(|e| sdk_error(CLOUDFORMATION, OP, e))?;
        // CloudFormation returns the newest event first; the order is kept.
        out.stack_events()
            .iter()
            .map(|e| {
                let timestamp = required(CLOUDFORMATION, OP, "Timestamp", e.timestamp())?;
                Ok(StackEvent {
                    event_id: required(CLOUDFORMATION, OP, "EventId", e.event_id())?.to_owned(),
                    timestamp: to_chrono(timestamp)
                        .ok_or_else(|| missing(CLOUDFORMATION, OP, "a valid Timestamp"))?,
                    logical_id: e.logical_resource_id().unwrap_or_default().to_owned(),
                    resource_type: e.resource_type().unwrap_or_default().to_owned(),
                    status: e
                        .resource_status()
                        .map(|s| s.as_str())
                        .unwrap_or_default()
                        .to_owned(),
                    reason: e.resource_status_reason().map(str::to_owned),
                })
            })
            .collect()
    }
}
