//! Fleet rollouts: a release goes out wave by wave, under a policy, with
//! every transition persisted before it is acted on.
//!
//! # Semantics (modelled on CloudFormation StackSets)
//!
//! * **Waves** run strictly in `[rollout] waves` order. A wave starts only
//!   after the previous one finished deploying *and* passed its health gate.
//! * **`max_concurrent`** (default 8) bounds the tenants of one wave being
//!   deployed at once. Waves never overlap, so it bounds the whole rollout.
//!   Within a wave, tenants start longest expected first, by how long each
//!   one's last stack operations took ([`order`], [`crate::history`]);
//!   manifest order without history.
//! * **`failure_tolerance`** (default 0) is the number of failed tenants a
//!   wave tolerates: a count, or a percentage of the wave's tenants rounded
//!   **down** (StackSets' `FailureTolerancePercentage`): 10% of 9 tenants
//!   tolerates 0 failures, 10% of 10 tolerates 1. A tenant fails when any of
//!   its planned stacks is not as planned (failed, rolled back, timed out,
//!   blocked, unreachable).
//! * **Crossing the tolerance** (failures > tolerance): no further tenant of
//!   the wave is started; tenants already in flight **finish** (a
//!   CloudFormation operation cannot be safely abandoned) and their outcomes
//!   are recorded; then the rollout **halts**. The remaining waves are not
//!   started. Failures within the tolerance let the wave finish and the
//!   rollout continue.
//! * **`bake_time`** (default 10m) and **`health_gate`** (default true):
//!   after a wave's deployments, the coordinator watches the heartbeat
//!   states of the wave's successfully deployed tenants with dedicated
//!   stacks for `bake_time`, polling every few seconds. Any such tenant
//!   seen in a state other than Healthy (Unknown, meaning not pinged yet,
//!   and NotDeployed, meaning the monitor has not yet seen the stack this
//!   wave just deployed, are tolerated until the end of the bake) fails the
//!   gate, and the
//!   rollout halts. At the end of the bake every one must be Healthy. With
//!   `health_gate = false` the bake is only a pause; `bake_time = "0s"`
//!   means no bake and no gate.
//! * **Halt** (`coordinator rollout halt`, a crossed tolerance, a failed
//!   gate): new tenants are not started; in-flight ones finish and are
//!   recorded. The halt names the wave, the failed tenants and why, and how
//!   to resume or roll back.
//! * **Resume** (`coordinator rollout resume`) continues a halted or crashed
//!   rollout from its log: tenants that succeeded are never deployed again;
//!   failed tenants and tenants that were started but never recorded an
//!   outcome (a crash) are planned and deployed again (deployments are
//!   idempotent per plan generation); a wave whose gate failed is baked
//!   again. Before planning, stack operations the stopped coordinator left
//!   running are waited for and their deployment rows get the outcome
//!   observed ([`reattach`]).
//! * **One rollout at a time**: a lease in the store (holder, expiry and
//!   epoch, taken in one transaction, renewed every third of its TTL while
//!   the rollout runs, released when the run ends, halted or not) keeps a
//!   second coordinator from driving a rollout; `rollout start` refuses
//!   while a rollout is running (resume it instead). Starting a new rollout
//!   while one is halted supersedes the halted one (that is how a rollback
//!   to the previous release is started).
//! * **Fencing**: a coordinator that stalls past its lease's expiry may find
//!   the rollout taken over. Each transition is written in the same
//!   transaction as a check of the lease's holder and epoch, so its next
//!   write is refused, and it stops at once without writing more.
//! * `[rollout.overrides.<wave>]` replaces any of the four values for one
//!   wave; unset keys take the `[rollout]` value.

pub mod display;
pub mod engine;
pub mod gate;
pub mod lease;
pub mod order;
pub mod reattach;
pub mod report;
pub mod run;

use stacks::ids::TenantId;

use crate::heartbeat::detector::Health;
use crate::heartbeat::monitor::Monitor;
use crate::wait::WaitPolicy;

pub use engine::{Next, RolloutState, TenantProgress};
pub use report::{HaltSummary, RolloutReport, TenantOutcome};
pub use run::{RolloutError, Runner, halt as halt_rollout};

/// How `coordinator rollout` waits for stack operations. A tenant holds
/// one of the wave's `max_concurrent` slots until its operation is *seen*
/// complete, so the delay between polls is idle slot time: with
/// [`WaitPolicy::STACK`] (2 s up to 15 s, plus up to 100% jitter) an
/// operation of a minute or two is seen about 12 s late, and a rollout
/// spends 15% over its schedule polling (`docs/benchmarks.md`). Each
/// tenant account has one operation of ours at a time, so polling every
/// 5–10 s costs nothing against CloudFormation's per-account API limits.
/// When a stack's last operation is on record, the wait polls every 1 s
/// from 3/4 to 5/4 of its duration ([`crate::wait::Expectation`]), so the
/// operation is seen settled about a second after it is.
pub const STACK_WAIT: WaitPolicy = WaitPolicy {
    min_delay: std::time::Duration::from_secs(1),
    max_delay: std::time::Duration::from_secs(5),
    deadline: WaitPolicy::STACK.deadline,
};

/// Where the health gate reads tenants' heartbeat states.
pub trait HealthSource: Send + Sync {
    /// The current state of every monitored tenant.
    fn states(&self) -> Vec<(TenantId, Health)>;
}

impl HealthSource for Monitor {
    fn states(&self) -> Vec<(TenantId, Health)> {
        self.snapshot()
            .into_iter()
            .map(|s| (s.tenant, s.health.state))
            .collect()
    }
}
