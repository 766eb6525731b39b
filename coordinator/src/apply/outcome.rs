//! How applying one plan item ended, as a type: callers match on it rather
//! than on strings, and every non-success carries a reason in words.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::aws::StackStatus;

/// A resource CloudFormation reported as failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedResource {
    /// Logical id.
    pub logical_id: String,
    /// Type.
    pub resource_type: String,
    /// E.g. `CREATE_FAILED`.
    pub status: String,
    /// CloudFormation's reason.
    pub reason: String,
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The stack is as planned; its outputs validated.
    Succeeded {
        /// Final status.
        status: StackStatus,
        /// Outputs.
        outputs: BTreeMap<String, String>,
    },
    /// There was nothing to do.
    NoChange,
    /// A call was refused, or the result was unusable; the stack is as it was
    /// (or as `status` says).
    Failed {
        /// Status afterwards, if the stack exists.
        status: Option<StackStatus>,
        /// Why.
        reason: String,
        /// Failed resources, if any.
        failed_resources: Vec<FailedResource>,
    },
    /// The update failed and CloudFormation rolled it back; the stack works
    /// as before.
    RolledBack {
        /// Final status.
        status: StackStatus,
        /// Why.
        reason: String,
        /// Failed resources.
        failed_resources: Vec<FailedResource>,
    },
    /// The stack is unusable until an operator acts (`coordinator recover`).
    NeedsRecovery {
        /// Final status.
        status: StackStatus,
        /// Why.
        reason: String,
        /// Failed resources.
        failed_resources: Vec<FailedResource>,
    },
    /// The deadline passed; the operation may still be running.
    TimedOut {
        /// Last status seen.
        status: Option<StackStatus>,
        /// How long we waited.
        #[serde(with = "secs")]
        waited: Duration,
    },
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

impl Outcome {
    /// Short name: `succeeded`, `no_change`, `failed`, `rolled_back`,
    /// `needs_recovery`, `timed_out`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Succeeded { .. } => "succeeded",
            Outcome::NoChange => "no_change",
            Outcome::Failed { .. } => "failed",
            Outcome::RolledBack { .. } => "rolled_back",
            Outcome::NeedsRecovery { .. } => "needs_recovery",
            Outcome::TimedOut { .. } => "timed_out",
        }
    }

    /// Whether the stack is as planned.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Succeeded { .. } | Outcome::NoChange)
    }

    /// The status afterwards, when known.
    pub fn status(&self) -> Option<&StackStatus> {
        match self {
            Outcome::Succeeded { status, .. }
            | Outcome::RolledBack { status, .. }
            | Outcome::NeedsRecovery { status, .. } => Some(status),
            Outcome::Failed { status, .. } | Outcome::TimedOut { status, .. } => status.as_ref(),
            Outcome::NoChange => None,
        }
    }

    /// One line for people, for anything but success.
    pub fn reason(&self) -> Option<String> {
        match self {
            Outcome::Succeeded { .. } | Outcome::NoChange => None,
            Outcome::Failed { reason, .. } => Some(reason.clone()),
            Outcome::RolledBack { reason, .. } => Some(format!("update rolled back: {reason}")),
            Outcome::NeedsRecovery { status, reason, .. } => Some(format!(
                "{status}: {reason}; run `coordinator recover` for this stack"
            )),
            Outcome::TimedOut { status, waited } => Some(format!(
                "still {} after {}s; the operation may still finish: run `coordinator status` later",
                status
                    .as_ref()
                    .map_or("in progress".to_owned(), ToString::to_string),
                waited.as_secs()
            )),
        }
    }
}
