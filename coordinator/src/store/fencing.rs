//! Fenced rollout writes: the rollout lease with an epoch, and the writes a
//! rollout runner makes only while it still holds that lease.
//!
//! A lease alone does not stop a runner that stalled past its expiry (a
//! paused process, a slow disk) from writing after another coordinator took
//! the rollout over. So every grant of the lease to a new holder gets a new
//! epoch, the runner keeps the [`LeaseFence`] (holder and epoch) it was
//! granted, and each of its writes checks, in the same transaction, that
//! the lease still has that holder and epoch. A refused write is a
//! [`LeaseLost`]; nothing was written. Operator commands (`rollout halt`)
//! hold no lease and use the unfenced writes of [`super::Store`].

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use super::{LeaseHeld, NewRolloutEvent, RolloutEvent, StoreError};

/// Proof of holding the rollout lease: who, and the epoch of the grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseFence {
    /// The holder's name (unique per process).
    pub holder: String,
    /// The grant's epoch: a new one each time the lease changes holder.
    pub epoch: i64,
}

/// A fenced write or renewal was refused: the lease is no longer the one
/// the runner was granted. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LeaseLost {
    /// What the runner held.
    pub fence: LeaseFence,
    /// Who holds the lease now, if anyone.
    pub now: Option<LeaseFence>,
}

impl std::fmt::Display for LeaseLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this coordinator ({}) lost the rollout lease (epoch {}): ",
            self.fence.holder, self.fence.epoch
        )?;
        match &self.now {
            Some(now) => write!(
                f,
                "{} took it over (epoch {}) after it expired",
                now.holder, now.epoch
            ),
            None => write!(f, "it expired and was released"),
        }
    }
}

/// The lease with epochs, and the transitions written under it.
#[async_trait]
pub trait FencedRollouts: Send + Sync {
    /// Takes the rollout lease for `holder` until now + `ttl`, in one
    /// transaction. A holder that has it already keeps its epoch (and the
    /// expiry is extended); otherwise a free or expired lease is granted
    /// with a new epoch. Fails with [`LeaseHeld`] (inside `Ok(Err)`) while
    /// another holder's lease has not expired.
    async fn take_rollout_lease(
        &self,
        holder: &str,
        rollout: i64,
        ttl: Duration,
    ) -> Result<Result<LeaseFence, LeaseHeld>, StoreError>;

    /// Extends the lease to now + `ttl` (and names `rollout` in it) if it
    /// still has `fence`'s holder and epoch. A lease that expired but was
    /// not taken over is still `fence`'s: nobody wrote in between.
    async fn renew_rollout_lease(
        &self,
        fence: &LeaseFence,
        rollout: i64,
        ttl: Duration,
    ) -> Result<Result<(), LeaseLost>, StoreError>;

    /// Appends a transition to a rollout's log, in the same transaction as
    /// the check that `fence` still holds the lease.
    async fn append_rollout_event_fenced(
        &self,
        fence: &LeaseFence,
        rollout: i64,
        event: NewRolloutEvent,
    ) -> Result<Result<RolloutEvent, LeaseLost>, StoreError>;

    /// Sets a rollout's state (and why), in the same transaction as the
    /// check that `fence` still holds the lease.
    async fn set_rollout_state_fenced(
        &self,
        fence: &LeaseFence,
        rollout: i64,
        state: &str,
        reason: Option<&str>,
    ) -> Result<Result<(), LeaseLost>, StoreError>;

    /// Gives the lease up if `fence` still holds it.
    async fn release_rollout_lease_fenced(&self, fence: &LeaseFence) -> Result<(), StoreError>;
}
