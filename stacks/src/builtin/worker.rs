//! The `worker` stack: the job queue with its dead-letter queue, the
//! heartbeat request and reply queues, the secret for the tenant's LLM key
//! (when the tenant brings its own), and the worker's least-privilege role.
//!
//! Job queues are encrypted with the tenant's KMS key from the storage stack;
//! heartbeat queues carry no document data and use SQS-managed encryption, so
//! the coordinator needs no KMS permission to ping. All queues refuse non-TLS
//! access. The worker role is bounded by the bootstrap stack's boundary.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::aws_names::{Arn, QueueUrl, SecretName};
use crate::ids::{RoleArn, TenantId};
use crate::outputs::{OutputReader, OutputsError};
use crate::stack::{Stack, StackKind};

/// Marker type for the worker stack.
#[derive(Debug, Clone, Copy)]
pub struct Worker;

/// Render-time choices for the worker stack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerShape {
    /// Create a Secrets Manager secret for the tenant's own LLM key and let
    /// the worker read it (tenants with `byo_ai_keys`).
    pub llm_key_secret: bool,
}

/// Deploy-time parameters of the worker stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct WorkerParameters {
    /// The tenant, for tags.
    pub tenant_id: TenantId,
    /// The storage stack's key (encrypts job queues and the secret).
    pub kms_key_arn: Arn,
    /// The storage stack's bucket, which the worker reads and writes.
    pub bucket_arn: Arn,
    /// The bootstrap stack's workload boundary.
    pub permissions_boundary_arn: Arn,
    /// Seconds a received job stays invisible to other workers.
    #[schemars(range(min = 30, max = 43200))]
    pub job_visibility_timeout_seconds: u32,
    /// Receives before a job moves to the dead-letter queue.
    #[schemars(range(min = 1, max = 1000))]
    pub max_receive_count: u16,
}

/// What the worker stack returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct WorkerOutputs {
    /// Documents to process.
    pub job_queue_url: QueueUrl,
    /// Jobs that failed `MaxReceiveCount` times.
    pub dead_letter_queue_url: QueueUrl,
    /// The coordinator's pings.
    pub heartbeat_request_queue_url: QueueUrl,
    /// The agents' pongs.
    pub heartbeat_reply_queue_url: QueueUrl,
    /// The role the tenant's workers run as.
    pub worker_role_arn: RoleArn,
    /// The secret holding the tenant's LLM key, when the shape creates one.
    pub llm_key_secret_name: Option<SecretName>,
}

impl Stack for Worker {
    const KIND: StackKind = StackKind::Worker;
    type Shape = WorkerShape;
    type Parameters = WorkerParameters;
    type Outputs = WorkerOutputs;

    fn parse_outputs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<WorkerOutputs, OutputsError> {
        let mut r = OutputReader::new("worker", pairs);
        let job_queue_url = r.required("JobQueueUrl");
        let dead_letter_queue_url = r.required("DeadLetterQueueUrl");
        let heartbeat_request_queue_url = r.required("HeartbeatRequestQueueUrl");
        let heartbeat_reply_queue_url = r.required("HeartbeatReplyQueueUrl");
        let worker_role_arn = r.required("WorkerRoleArn");
        let llm_key_secret_name = r.optional("LlmKeySecretName");
        r.finish(|| {
            Some(WorkerOutputs {
                job_queue_url: job_queue_url?,
                dead_letter_queue_url: dead_letter_queue_url?,
                heartbeat_request_queue_url: heartbeat_request_queue_url?,
                heartbeat_reply_queue_url: heartbeat_reply_queue_url?,
                worker_role_arn: worker_role_arn?,
                llm_key_secret_name,
            })
        })
    }
}
