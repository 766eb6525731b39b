//! The order a wave's tenants start in: longest expected first, expecting
//! each tenant to take about as long as it took in recent rollouts.
//!
//! A wave ends when its last tenant does, and waves are barriers, so a long
//! tenant started last leaves the other slots idle while it finishes.
//! Starting the longest first (LPT scheduling) shortens that tail. A
//! tenant's deployment time is fairly stable from one release to the next
//! (it depends on its account and its resources), so the durations the
//! rollout log recorded for it are the estimate. Tenants without one are
//! expected to take the mean of the others; with no history at all, the
//! order is the manifest's. Pure but for [`recent_durations`], which reads
//! the log.

use std::collections::BTreeMap;
use std::time::Duration;

use stacks::ids::TenantId;

use crate::store::{Store, StoreError};

/// Rollouts looked back at for durations (the current one included).
pub const LOOKBACK: i64 = 5;

/// `tenants` (in manifest order) ordered longest expected first; ties and
/// unknowns keep their manifest order relative to each other.
pub fn longest_first(
    tenants: &[TenantId],
    expected: &BTreeMap<TenantId, Duration>,
) -> Vec<TenantId> {
    let known: Vec<Duration> = tenants
        .iter()
        .filter_map(|t| expected.get(t).copied())
        .collect();
    if known.is_empty() {
        return tenants.to_vec();
    }
    let mean = known.iter().sum::<Duration>() / known.len() as u32;
    let mut ordered = tenants.to_vec();
    // Stable: equal estimates stay in manifest order.
    ordered.sort_by_key(|t| std::cmp::Reverse(expected.get(t).copied().unwrap_or(mean)));
    ordered
}

/// Each tenant's duration in its most recent successful deployment within
/// the last [`LOOKBACK`] rollouts up to `current` (the `duration_ms` of
/// `tenant_succeeded`).
pub async fn recent_durations(
    store: &dyn Store,
    current: i64,
) -> Result<BTreeMap<TenantId, Duration>, StoreError> {
    let mut out = BTreeMap::new();
    for id in (current - LOOKBACK + 1..=current)
        .rev()
        .filter(|id| *id > 0)
    {
        for e in store.rollout_events(id).await?.iter().rev() {
            if e.event.kind != "tenant_succeeded" {
                continue;
            }
            if let (Some(t), Some(ms)) = (&e.event.tenant, e.event.details["duration_ms"].as_u64())
            {
                out.entry(t.clone()).or_insert(Duration::from_millis(ms));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<TenantId> {
        names.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn secs(pairs: &[(&str, u64)]) -> BTreeMap<TenantId, Duration> {
        pairs
            .iter()
            .map(|(t, s)| (t.parse().unwrap(), Duration::from_secs(*s)))
            .collect()
    }

    #[test]
    fn longest_first_with_unknowns_at_the_mean_and_ties_in_manifest_order() {
        let tenants = ids(&["a", "b", "c", "d", "e"]);
        assert_eq!(longest_first(&tenants, &BTreeMap::new()), tenants);
        // Mean of the known ones is 60 s: c and e (unknown) go there, in
        // manifest order, after b (90) and before a (30).
        let ordered = longest_first(&tenants, &secs(&[("a", 30), ("b", 90), ("d", 60)]));
        assert_eq!(ordered, ids(&["b", "c", "d", "e", "a"]));
    }

    #[tokio::test]
    async fn the_latest_success_within_the_lookback_counts() {
        use crate::store::NewRolloutEvent;
        use crate::store::sqlite::SqliteStore;
        let store = SqliteStore::in_memory().unwrap();
        let succeeded = |t: &str, ms: u64| NewRolloutEvent {
            kind: "tenant_succeeded".into(),
            wave: Some("w".into()),
            tenant: Some(t.parse().unwrap()),
            details: serde_json::json!({ "duration_ms": ms }),
        };
        let mut last = 0;
        for (i, ms) in [1000, 2000, 3000, 4000, 5000, 6000, 7000]
            .into_iter()
            .enumerate()
        {
            let r = store.create_rollout("1", "a").await.unwrap();
            store
                .append_rollout_event(r.id, succeeded("a", ms))
                .await
                .unwrap();
            if i == 0 {
                store
                    .append_rollout_event(r.id, succeeded("old", 1))
                    .await
                    .unwrap();
            }
            last = r.id;
        }
        let r = store.create_rollout("1", "a").await.unwrap();
        store
            .append_rollout_event(r.id, succeeded("b", 10))
            .await
            .unwrap();
        store
            .append_rollout_event(r.id, succeeded("b", 20))
            .await
            .unwrap();
        assert_eq!(last + 1, r.id);
        // "old" is 7 rollouts back; b's latest success counts.
        let d = recent_durations(&store, r.id).await.unwrap();
        let ms = |t: &str, ms| (t.parse().unwrap(), Duration::from_millis(ms));
        assert_eq!(d, BTreeMap::from([ms("a", 7000), ms("b", 20)]));
    }
}
