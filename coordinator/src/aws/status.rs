//! CloudFormation stack and change-set statuses as enums, with the questions
//! the coordinator asks of them: has the stack settled, did it fail, does an
//! operator need to act. Unknown strings are kept, never guessed at.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A stack's status (`DescribeStacks` `StackStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
#[allow(missing_docs)]
pub enum StackStatus {
    CreateInProgress,
    CreateFailed,
    CreateComplete,
    RollbackInProgress,
    RollbackFailed,
    RollbackComplete,
    DeleteInProgress,
    DeleteFailed,
    DeleteComplete,
    UpdateInProgress,
    UpdateCompleteCleanupInProgress,
    UpdateComplete,
    UpdateFailed,
    UpdateRollbackInProgress,
    UpdateRollbackFailed,
    UpdateRollbackCompleteCleanupInProgress,
    UpdateRollbackComplete,
    ReviewInProgress,
    ImportInProgress,
    ImportComplete,
    ImportRollbackInProgress,
    ImportRollbackFailed,
    ImportRollbackComplete,
    /// A status this build does not know.
    Unknown(String),
}

/// How a settled status should be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sentiment {
    /// The last operation did what was asked.
    Success,
    /// The last operation failed and CloudFormation undid it; the stack works
    /// as before (update rolled back).
    RolledBack,
    /// The stack is unusable until an operator acts (failed create rolled
    /// back, rollback failed, delete failed).
    NeedsRecovery,
    /// Still moving.
    InProgress,
}

const TABLE: &[(&str, StackStatus)] = &[
    ("CREATE_IN_PROGRESS", StackStatus::CreateInProgress),
    ("CREATE_FAILED", StackStatus::CreateFailed),
    ("CREATE_COMPLETE", StackStatus::CreateComplete),
    ("ROLLBACK_IN_PROGRESS", StackStatus::RollbackInProgress),
    ("ROLLBACK_FAILED", StackStatus::RollbackFailed),
    ("ROLLBACK_COMPLETE", StackStatus::RollbackComplete),
    ("DELETE_IN_PROGRESS", StackStatus::DeleteInProgress),
    ("DELETE_FAILED", StackStatus::DeleteFailed),
    ("DELETE_COMPLETE", StackStatus::DeleteComplete),
    ("UPDATE_IN_PROGRESS", StackStatus::UpdateInProgress),
    (
        "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
        StackStatus::UpdateCompleteCleanupInProgress,
    ),
    ("UPDATE_COMPLETE", StackStatus::UpdateComplete),
    ("UPDATE_FAILED", StackStatus::UpdateFailed),
    (
        "UPDATE_ROLLBACK_IN_PROGRESS",
        StackStatus::UpdateRollbackInProgress,
    ),
    ("UPDATE_ROLLBACK_FAILED", StackStatus::UpdateRollbackFailed),
    (
        "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
        StackStatus::UpdateRollbackCompleteCleanupInProgress,
    ),
    (
        "UPDATE_ROLLBACK_COMPLETE",
        StackStatus::UpdateRollbackComplete,
    ),
    ("REVIEW_IN_PROGRESS", StackStatus::ReviewInProgress),
    ("IMPORT_IN_PROGRESS", StackStatus::ImportInProgress),
    ("IMPORT_COMPLETE", StackStatus::ImportComplete),
    (
        "IMPORT_ROLLBACK_IN_PROGRESS",
        StackStatus::ImportRollbackInProgress,
    ),
    ("IMPORT_ROLLBACK_FAILED", StackStatus::ImportRollbackFailed),
    (
        "IMPORT_ROLLBACK_COMPLETE",
        StackStatus::ImportRollbackComplete,
    ),
];

impl StackStatus {
    /// The AWS spelling.
    pub fn as_str(&self) -> &str {
        match self {
            StackStatus::Unknown(s) => s,
            known => TABLE
                .iter()
                .find(|(_, s)| s == known)
                .map(|(t, _)| *t)
                .unwrap_or("UNKNOWN"),
        }
    }

    /// Parses the AWS spelling; unknown values are kept as `Unknown`.
    pub fn parse(s: &str) -> Self {
        TABLE
            .iter()
            .find(|(t, _)| *t == s)
            .map(|(_, st)| st.clone())
            .unwrap_or_else(|| StackStatus::Unknown(s.into()))
    }

    /// No operation is running: the status will not change by itself.
    pub fn is_settled(&self) -> bool {
        self.sentiment() != Sentiment::InProgress
    }

    /// How to read this status.
    pub fn sentiment(&self) -> Sentiment {
        use StackStatus::*;
        match self {
            CreateComplete | UpdateComplete | ImportComplete | DeleteComplete => Sentiment::Success,
            UpdateRollbackComplete | ImportRollbackComplete => Sentiment::RolledBack,
            CreateFailed | RollbackFailed | RollbackComplete | DeleteFailed | UpdateFailed
            | UpdateRollbackFailed | ImportRollbackFailed => Sentiment::NeedsRecovery,
            // REVIEW_IN_PROGRESS is a stack that holds only an unexecuted
            // CREATE change set: nothing will move it but an operator.
            ReviewInProgress => Sentiment::NeedsRecovery,
            Unknown(_) => Sentiment::NeedsRecovery,
            CreateInProgress
            | RollbackInProgress
            | DeleteInProgress
            | UpdateInProgress
            | UpdateCompleteCleanupInProgress
            | UpdateRollbackInProgress
            | UpdateRollbackCompleteCleanupInProgress
            | ImportInProgress
            | ImportRollbackInProgress => Sentiment::InProgress,
        }
    }
}

impl From<StackStatus> for String {
    fn from(s: StackStatus) -> String {
        s.as_str().to_owned()
    }
}

impl From<String> for StackStatus {
    fn from(s: String) -> StackStatus {
        StackStatus::parse(&s)
    }
}

impl fmt::Display for StackStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A change set's status (`DescribeChangeSet` `Status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub enum ChangeSetStatus {
    CreatePending,
    CreateInProgress,
    CreateComplete,
    DeletePending,
    DeleteInProgress,
    DeleteComplete,
    DeleteFailed,
    Failed,
    Unknown(String),
}

impl ChangeSetStatus {
    /// Parses the AWS spelling.
    pub fn parse(s: &str) -> Self {
        match s {
            "CREATE_PENDING" => Self::CreatePending,
            "CREATE_IN_PROGRESS" => Self::CreateInProgress,
            "CREATE_COMPLETE" => Self::CreateComplete,
            "DELETE_PENDING" => Self::DeletePending,
            "DELETE_IN_PROGRESS" => Self::DeleteInProgress,
            "DELETE_COMPLETE" => Self::DeleteComplete,
            "DELETE_FAILED" => Self::DeleteFailed,
            "FAILED" => Self::Failed,
            other => Self::Unknown(other.into()),
        }
    }

    /// Creation has finished, one way or the other.
    pub fn is_settled(&self) -> bool {
        !matches!(self, Self::CreatePending | Self::CreateInProgress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_status_round_trips() {
        for (text, status) in TABLE {
            assert_eq!(&StackStatus::parse(text), status);
            assert_eq!(status.as_str(), *text);
        }
        assert_eq!(StackStatus::parse("NEW_THING").as_str(), "NEW_THING");
    }

    #[test]
    fn sentiments() {
        assert_eq!(
            StackStatus::parse("UPDATE_ROLLBACK_COMPLETE").sentiment(),
            Sentiment::RolledBack
        );
        assert_eq!(
            StackStatus::parse("ROLLBACK_COMPLETE").sentiment(),
            Sentiment::NeedsRecovery
        );
        assert_eq!(
            StackStatus::parse("UPDATE_ROLLBACK_FAILED").sentiment(),
            Sentiment::NeedsRecovery
        );
        assert!(!StackStatus::parse("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS").is_settled());
        assert!(StackStatus::parse("CREATE_COMPLETE").is_settled());
    }
}
