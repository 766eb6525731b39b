//! Within a wave, tenants start longest expected first, by the durations
//! an earlier rollout recorded; manifest order without any.

use std::time::Duration;

use coordinator::store::{NewRolloutEvent, Store as _};

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
    // An earlier rollout, as recorded.
    let first = h.store.create_rollout("0", "alice").await.unwrap();
    h.store
        .set_rollout_state(first.id, "succeeded", None)
        .await
        .unwrap();
    // t03 took longest, t01 least; t04 has no record and is expected to
    // take the mean (20 s), after t02 (also 20 s, earlier in the manifest).
    for (t, secs) in [("t01", 5), ("t02", 20), ("t03", 35)] {
        h.store
            .append_rollout_event(
                first.id,
                NewRolloutEvent {
                    kind: "tenant_succeeded".into(),
                    wave: Some("canary".into()),
                    tenant: Some(t.parse().unwrap()),
                    details: serde_json::json!({ "duration_ms": secs * 1000 }),
                },
            )
            .await
            .unwrap();
    }
    let report = runner(&h, &health).start().await.expect("rollout");
    assert_eq!(report.verdict, "succeeded", "{report:#?}");
    assert_eq!(
        started(&h, report.rollout).await,
        ["t03", "t02", "t04", "t01"]
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
