//! The rollout lease as a run holds it: a holder name unique to the
//! process, and the loop that renews the lease until it is lost. Taking,
//! renewing and checking the lease are the store's
//! ([`crate::store::FencedRollouts`]).

use std::time::Duration;

use crate::store::{LeaseFence, LeaseLost, Store};

/// A unique lease holder name for this process.
pub fn holder_name(actor: &str) -> String {
    format!(
        "{actor} pid {} {:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Renews `fence`'s lease every third of `ttl`; returns only when it was
/// lost. Store errors are retried: a lease that lapses meanwhile is still
/// the holder's unless taken over, and the fenced writes tell.
pub async fn keep(store: &dyn Store, fence: &LeaseFence, rollout: i64, ttl: Duration) -> LeaseLost {
    loop {
        tokio::time::sleep(ttl / 3).await;
        match store.renew_rollout_lease(fence, rollout, ttl).await {
            Ok(Ok(())) => {}
            Ok(Err(lost)) => {
                tracing::error!(error = %lost, "stopping the rollout");
                return lost;
            }
            Err(e) => tracing::warn!(error = %e, "cannot renew the rollout lease"),
        }
    }
}
