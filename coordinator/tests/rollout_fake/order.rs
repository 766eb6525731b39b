//! Within a wave, tenants start longest expected first, by the durations
//! of their stacks' last operations (any deployment on record); manifest
//! order without any.

use std::time::Duration;

use coordinator::store::Store as _;
use stacks::StackKind;

use super::*;

/// The tenants in the order the rollout started them.
async fn started(h: &Harness, rollout: i64) -> Vec<String> {
    h.store
        .rollout_events(rollout)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event.kind == "tenant_started")
        .filter_map(|e| e.event.tenant.map(|t| t.to_string()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn tenants_start_longest_expected_first() {
    let ids = ["t01", "t02", "t03", "t04"];
    let h = harness(
        &[("canary", &ids)],
        "bake_time = \"0s\"\nmax_concurrent = 1",
    )
    .await;
    let health = ScriptedHealth::healthy(&h);
    // Earlier deployments (say, the onboarding), as recorded: t03 took
    // longest, t01 least; t04 has no record and is expected to take the
    // mean (90 ms), before t02 (60 ms). Wide gaps: the sleeps may overshoot
    // on a loaded machine.
    for (t, ms) in [("t01", 10), ("t02", 60), ("t03", 200)] {
        record_earlier_operation(&h.store, t, StackKind::Storage, Duration::from_millis(ms)).await;
    }
    let report = runner(&h, &health).start().await.expect("rollout");
    assert_eq!(report.verdict, "succeeded", "{report:#?}");
    assert_eq!(
        started(&h, report.rollout).await,
        ["t03", "t04", "t02", "t01"]
    );
    // The report stays in manifest order.
    let names: Vec<String> = report
        .tenants
        .iter()
        .map(|t| t.tenant.to_string())
        .collect();
    assert_eq!(names, ids);
}

#[tokio::test(start_paused = true)]
async fn without_history_the_manifest_order_holds() {
    let ids = ["t01", "t02", "t03"];
    let h = harness(
        &[("canary", &ids)],
        "bake_time = \"0s\"\nmax_concurrent = 1",
    )
    .await;
    h.fake.set_operation_duration(Duration::from_secs(30));
    let health = ScriptedHealth::healthy(&h);
    let report = runner(&h, &health).start().await.expect("rollout");
    assert_eq!(started(&h, report.rollout).await, ids);
}
