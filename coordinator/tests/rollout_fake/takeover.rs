//! A rollout taken over: the lease released at the end of a run, fencing
//! of a runner whose lease was taken over, and a resumed rollout
//! reattaching to the stack operations a stopped coordinator left running.
//!
//! The lease expires in real (wall-clock) time while the fake's operations
//! take paused tokio time, so a coordinator "stalls" here by blocking the
//! test's single runtime thread past its lease: nothing of it runs, as with
//! a paused process.

use std::time::Duration;

use coordinator::rollout::RolloutError;
use coordinator::store::{FencedRollouts as _, LeaseFence, RolloutEvent, Store as _};
use stacks::StackKind;

use super::*;

const SHORT_TTL: Duration = Duration::from_millis(200);

/// Blocks the runtime past `SHORT_TTL`, then takes the lease as `holder`.
fn stall_and_take_over(h: &Harness, holder: &str) -> LeaseFence {
    std::thread::sleep(SHORT_TTL + Duration::from_millis(100));
    // The SQLite store's futures complete without yielding.
    futures::executor::block_on(
        h.store
            .take_rollout_lease(holder, 1, Duration::from_secs(60)),
    )
    .expect("store")
    .expect("the stalled holder's lease has expired")
}

fn kinds_of(events: &[RolloutEvent], tenant: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| {
            e.event
                .tenant
                .as_ref()
                .is_some_and(|t| t.as_str() == tenant)
        })
        .map(|e| e.event.kind.clone())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_halted_or_finished_run_releases_the_lease() {
    let h = harness(
        &[("canary", &["acme", "globex"]), ("general", &["initech"])],
        "bake_time = \"0s\"",
    )
    .await;
    fail_storage(&h, "globex");
    let health = ScriptedHealth::healthy(&h);
    let report = runner(&h, &health).start().await.expect("rollout");
    assert_eq!(report.verdict, "halted");
    // Another coordinator may resume at once: the lease was released.
    let taken = h
        .store
        .take_rollout_lease("other", report.rollout, Duration::from_secs(60))
        .await
        .unwrap();
    let fence = taken.expect("the halted run released the lease");
    h.store.release_rollout_lease_fenced(&fence).await.unwrap();

    let h = harness(&[("canary", &["acme"])], "bake_time = \"0s\"").await;
    let health = ScriptedHealth::healthy(&h);
    let report = runner(&h, &health).start().await.expect("rollout");
    assert_eq!(report.verdict, "succeeded", "{report:#?}");
    assert!(
        h.store
            .take_rollout_lease("other", report.rollout, Duration::from_secs(60))
            .await
            .unwrap()
            .is_ok(),
        "the finished run released the lease"
    );
}

/// The first runner stalls right after recording `wave_started`, a second
/// takes the lease over: the first one's next write (starting a tenant) is
/// refused, and it stops with a message saying so, having started nothing.
#[tokio::test(start_paused = true)]
async fn a_runner_whose_lease_was_taken_over_writes_nothing_more() {
    let h = harness(
        &[("canary", &["t01", "t02"]), ("general", &["t03"])],
        "bake_time = \"0s\"",
    )
    .await;
    let health = ScriptedHealth::healthy(&h);
    let stalled = |e: &RolloutEvent| {
        if e.event.kind == "wave_started" {
            stall_and_take_over(&h, "second");
        }
    };
    let first = Runner {
        lease_ttl: SHORT_TTL,
        holder: "first".into(),
        on_event: &stalled,
        ..runner(&h, &health)
    };
    let err = first
        .start()
        .await
        .expect_err("the first runner lost its lease");
    assert!(matches!(err, RolloutError::LeaseLost(_)), "{err:?}");
    let message = err.to_string();
    for part in [
        "this coordinator (first) lost the rollout lease (epoch 1)",
        "second took it over (epoch 2)",
        "stopped without recording anything more",
    ] {
        assert!(message.contains(part), "{message}");
    }
    let id = h.store.latest_rollout().await.unwrap().unwrap().id;
    let log = h.store.rollout_events(id).await.unwrap();
    let kinds: Vec<&str> = log.iter().map(|e| e.event.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["wave_started"],
        "the first runner wrote after losing"
    );
    assert_eq!(h.fake.operations_in_progress(), 0);
    assert_eq!(changes(&h, "t01"), 0);

    // The second coordinator (its lease is held by the test) finishes.
    let second = Runner {
        holder: "second".into(),
        ..runner(&h, &health)
    };
    let report = second.resume().await.expect("resume");
    assert_eq!(report.verdict, "succeeded", "{report:#?}");
    for t in ["t01", "t02", "t03"] {
        assert_eq!(changes(&h, t), 2, "{t}: storage and worker, once each");
    }
}

/// The first runner stalls with two tenants' stack creations in flight;
/// the second takes over and resumes: it waits for those operations, gives
/// their open deployment rows the outcome observed, and deploys every
/// tenant exactly once. The first one stops at its next renewal.
#[tokio::test(start_paused = true)]
async fn a_resumed_rollout_reattaches_to_operations_left_in_flight() {
    let ids = ["t01", "t02", "t03", "t04"];
    let h = harness(
        &[("canary", &ids)],
        "bake_time = \"0s\"\nmax_concurrent = 2",
    )
    .await;
    h.fake.set_operation_duration(Duration::from_secs(30));
    let health = ScriptedHealth::healthy(&h);
    let first = Runner {
        lease_ttl: SHORT_TTL,
        holder: "first".into(),
        ..runner(&h, &health)
    };
    let second = Runner {
        holder: "second".into(),
        ..runner(&h, &health)
    };
    let takeover = async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(h.fake.operations_in_progress(), 2);
        stall_and_take_over(&h, "second");
        second.resume().await
    };
    let (first, second) = tokio::join!(first.start(), takeover);
    let err = first.expect_err("the first runner lost its lease");
    assert!(matches!(err, RolloutError::LeaseLost(_)), "{err}");
    let report = second.expect("resume");
    assert_eq!(report.verdict, "succeeded", "{report:#?}");

    let log = h.store.rollout_events(report.rollout).await.unwrap();
    for t in ["t01", "t02"] {
        assert_eq!(
            kinds_of(&log, t),
            [
                "tenant_started",
                "tenant_reattached",
                "tenant_started",
                "tenant_succeeded"
            ],
            "{t}"
        );
        let rows = h
            .store
            .deployments(Some(&t.parse().unwrap()), 10)
            .await
            .unwrap();
        let storage: Vec<_> = rows
            .iter()
            .filter(|d| d.stack == StackKind::Storage)
            .collect();
        assert_eq!(storage.len(), 1, "{rows:#?}");
        assert_eq!(
            storage[0].outcome.as_deref(),
            Some("succeeded"),
            "{rows:#?}"
        );
        assert_eq!(storage[0].status.as_deref(), Some("CREATE_COMPLETE"));
    }
    for t in ids {
        assert_eq!(changes(&h, t), 2, "{t}: storage and worker, once each");
        let rows = h
            .store
            .deployments(Some(&t.parse().unwrap()), 10)
            .await
            .unwrap();
        assert!(rows.iter().all(|d| d.outcome.is_some()), "{rows:#?}");
    }
    let audit = h.store.audit_entries(0, 1000).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == "rollout.reattach")
            .count(),
        2
    );
}

/// A coordinator killed mid-create (its future dropped: no cleanup at all)
/// leaves open rows; the resume settles them before planning.
#[tokio::test(start_paused = true)]
async fn a_killed_run_leaves_no_deployment_without_an_outcome_after_resume() {
    let h = harness(
        &[("canary", &["t01", "t02", "t03"])],
        "bake_time = \"0s\"\nmax_concurrent = 3",
    )
    .await;
    h.fake.set_operation_duration(Duration::from_secs(30));
    fail_storage(&h, "t03");
    let health = ScriptedHealth::healthy(&h);
    let killed = tokio::time::timeout(Duration::from_secs(5), runner(&h, &health).start()).await;
    assert!(killed.is_err(), "still deploying when killed");
    let open = |t: &str| {
        let t = t.to_owned();
        let store = &h.store;
        async move {
            store
                .deployments(Some(&t.parse().unwrap()), 10)
                .await
                .unwrap()
                .into_iter()
                .filter(|d| d.outcome.is_none())
                .count()
        }
    };
    assert_eq!(open("t01").await, 1);

    let report = runner(&h, &health).resume().await.expect("resume");
    assert_eq!(report.verdict, "halted", "{report:#?}");
    for t in ["t01", "t02", "t03"] {
        assert_eq!(open(t).await, 0, "{t}");
    }
    let rows = h
        .store
        .deployments(Some(&"t03".parse().unwrap()), 10)
        .await
        .unwrap();
    let storage: Vec<_> = rows
        .iter()
        .filter(|d| d.stack == StackKind::Storage)
        .collect();
    assert_eq!(storage.len(), 1, "{rows:#?}");
    assert_eq!(
        storage[0].outcome.as_deref(),
        Some("needs_recovery"),
        "{rows:#?}"
    );
    assert_eq!(report.tenants[0].outcome, "succeeded");
    assert_eq!(changes(&h, "t01"), 2);
}
