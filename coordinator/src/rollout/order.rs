//! The order a wave's tenants start in: longest expected first, expecting
//! each tenant to take about as long as it took in recent rollouts.
//!
//! A wave ends when its last tenant does, and waves are barriers, so a long
//! tenant started last leaves the other slots idle while it finishes.
//! Starting the longest first (LPT scheduling) shortens that tail. A
//! tenant's deployment time is fairly stable from one release to the next
//! (it depends on its account and its resources), so the time its last
//! operations took ([`crate::history`]: any deployment, the onboarding
//! included) is the estimate. Tenants without one are expected to take the
//! mean of the others; with no history at all, the order is the manifest's.
//! Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use stacks::ids::TenantId;

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
}
