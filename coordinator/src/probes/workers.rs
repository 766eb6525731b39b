//! The deployed workers as probes, so the admin surface shows one list per
//! tenant: the heartbeat state (from the heartbeat monitor or the store)
//! and the worker queues (reachable through the tenant's role, dead-letter
//! queue empty).

use std::collections::BTreeMap;

use async_trait::async_trait;
use stacks::aws_names::QueueUrl;
use stacks::ids::TenantId;

use super::{Finding, Probe, ProbeError, ProbeName, ProbeTarget};
use crate::aws::ErrorKind;
use crate::heartbeat::detector::{Health, TenantHealth};

/// The heartbeat state, read from a snapshot taken when the probe is built.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatProbe {
    states: BTreeMap<TenantId, TenantHealth>,
}

impl HeartbeatProbe {
    /// A probe over these states (the monitor's snapshot, or the store's).
    pub fn new(states: impl IntoIterator<Item = (TenantId, TenantHealth)>) -> Self {
        Self {
            states: states.into_iter().collect(),
        }
    }
}

fn remedy(state: Health) -> &'static str {
    match state {
        Health::Unknown => {
            "wait for the next heartbeat round (`coordinator serve` pings every interval)"
        }
        Health::Healthy => "",
        Health::Degraded => {
            "jobs are piling up or dead-lettering: check the worker's logs and scale it; see docs/runbooks"
        }
        Health::Late => {
            "one pong is missing: if it stays late, check that the worker (agent) is running in the customer's account"
        }
        Health::Unreachable => {
            "the workers do not answer: check that the worker service runs in the customer's account and can reach SQS; see docs/runbooks"
        }
        Health::AccessDenied => {
            "the customer's role or queues refuse the coordinator: ask the customer whether access was revoked; run `coordinator tenant verify`"
        }
        Health::NotDeployed => {
            "the worker stack is missing: deploy it with `coordinator deploy --tenant T`"
        }
    }
}

#[async_trait]
impl Probe for HeartbeatProbe {
    fn name(&self) -> ProbeName {
        ProbeName::Heartbeat
    }

    async fn check(&self, target: &ProbeTarget) -> Finding {
        if target.worker_outputs.is_none() {
            return Finding::NotApplicable("no worker stack is deployed for this tenant".into());
        }
        let Some(h) = self.states.get(&target.tenant.id) else {
            return Finding::Fail(ProbeError::new(
                "heartbeat.unknown",
                "the coordinator has no heartbeat state for this tenant yet",
                remedy(Health::Unknown),
            ));
        };
        if h.state == Health::Healthy {
            return Finding::Pass(Some(match h.last_rtt_ms {
                Some(ms) => format!("workers answer; last round trip {ms} ms"),
                None => "workers answer".into(),
            }));
        }
        Finding::Fail(ProbeError::new(
            &format!("heartbeat.{}", h.state.as_str()),
            h.reason.clone(),
            remedy(h.state),
        ))
    }
}

/// The worker queues through the tenant's role: both reachable, the
/// dead-letter queue empty.
/// It acts as the target's operator (carried into the customer's
/// CloudTrail), through the target's session cache.
#[derive(Debug, Default)]
pub struct QueuesProbe;

fn queue(outputs: &BTreeMap<String, String>, key: &str) -> Option<QueueUrl> {
    outputs.get(key)?.parse().ok()
}

#[async_trait]
impl Probe for QueuesProbe {
    fn name(&self) -> ProbeName {
        ProbeName::Queues
    }

    async fn check(&self, target: &ProbeTarget) -> Finding {
        let Some(outputs) = &target.worker_outputs else {
            return Finding::NotApplicable("no worker stack is deployed for this tenant".into());
        };
        let (Some(jobs), Some(dead)) = (
            queue(outputs, "JobQueueUrl"),
            queue(outputs, "DeadLetterQueueUrl"),
        ) else {
            return Finding::Fail(ProbeError::new(
                "queues.outputs_missing",
                "the worker stack's outputs name no job or dead-letter queue",
                "redeploy the worker stack (`coordinator deploy --tenant T`) so its outputs are recorded",
            ));
        };
        let tenant = &target.tenant;
        let credentials = match target
            .sessions
            .credentials(target.connector.as_ref(), &target.operator, tenant)
            .await
        {
            Ok(credentials) => credentials,
            Err(e) => {
                return Finding::Fail(ProbeError::new(
                    "queues.role_unavailable",
                    format!("cannot act in the tenant's account: {e}"),
                    "run `coordinator tenant verify` for this tenant and fix its deploy role's trust",
                ));
            }
        };
        let sqs = target.connector.tenant_sqs(credentials, tenant.region);
        let mut depths = Vec::new();
        for (what, url) in [("job", &jobs), ("dead-letter", &dead)] {
            match sqs.queue_depth(url).await {
                Ok(depth) => depths.push(depth),
                Err(e) if e.kind == ErrorKind::AccessDenied => {
                    return Finding::Fail(ProbeError::new(
                        "queues.access_denied",
                        format!(
                            "the {what} queue refused sqs:GetQueueAttributes: {}",
                            e.message
                        ),
                        "the customer's deploy role must allow sqs:GetQueueAttributes on the worker queues: redeploy the bootstrap stack the customer runs",
                    ));
                }
                Err(e) => {
                    return Finding::Fail(ProbeError::new(
                        "queues.unreachable",
                        format!("the {what} queue cannot be read: {}", e.message),
                        "check that the worker stack is deployed and its queues exist (`coordinator status`); redeploy it if they were deleted",
                    ));
                }
            }
        }
        if depths[1] > 0 {
            return Finding::Fail(ProbeError::new(
                "queues.dead_letters",
                format!("{} job(s) in the dead-letter queue", depths[1]),
                "jobs failed repeatedly: read the worker's logs for those documents, fix the cause, then redrive the dead-letter queue",
            ));
        }
        Finding::Pass(Some(format!(
            "{} job(s) waiting, dead-letter queue empty",
            depths[0]
        )))
    }
}
