//! Snapshots of the live display at fixed times: what a person sees is
//! reviewed as text.

use chrono::TimeZone;

use super::*;
use crate::aws::StackEvent;
use crate::store::NewRolloutEvent;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

fn ids(prefix: &str, n: usize) -> Vec<TenantId> {
    (1..=n)
        .map(|i| format!("{prefix}{i:02}").parse().unwrap())
        .collect()
}

fn board(canaries: usize, general: usize, bake_secs: u64) -> Board {
    let wave = |name: &str, tenants, max_concurrent, allowed_failures| WavePlan {
        name: name.parse().unwrap(),
        tenants,
        max_concurrent,
        allowed_failures,
        bake: Duration::from_secs(bake_secs),
        health_gate: true,
    };
    let mut b = Board::new(
        "2026.11.0",
        vec![
            wave("canary", ids("canary", canaries), 1, 0),
            wave("general", ids("general", general), 4, 1),
        ],
        at(0),
    );
    b.set_rollout(7);
    b
}

fn ev(b: &mut Board, secs: i64, kind: &str, wave: &str, tenant: Option<&str>, reason: &str) {
    let details = if reason.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::json!({ "reason": reason })
    };
    b.apply_event(&RolloutEvent {
        id: 0,
        at: at(secs),
        event: NewRolloutEvent {
            kind: kind.into(),
            wave: (!wave.is_empty()).then(|| wave.to_owned()),
            tenant: tenant.map(|t| t.parse().unwrap()),
            details,
        },
    });
}

fn started(b: &mut Board, tenant: &str, stack: StackKind, action: &'static str) {
    let tenant: TenantId = tenant.parse().unwrap();
    b.apply_progress(&Progress::Started {
        tenant: &tenant,
        stack,
        action,
    });
}

fn status(b: &mut Board, tenant: &str, stack: StackKind, status: &str) {
    let tenant: TenantId = tenant.parse().unwrap();
    let event = StackEvent {
        event_id: "e".into(),
        timestamp: at(0),
        logical_id: stack.stack_name().into(),
        resource_type: "AWS::CloudFormation::Stack".into(),
        status: status.into(),
        reason: None,
    };
    b.apply_progress(&Progress::Event {
        tenant: &tenant,
        stack,
        event: &event,
    });
}

/// The canary wave done and baking; the general wave waiting.
fn canary_baking() -> Board {
    let mut b = board(2, 6, 600);
    ev(&mut b, 0, "wave_started", "canary", None, "");
    ev(&mut b, 1, "tenant_started", "canary", Some("canary01"), "");
    ev(
        &mut b,
        95,
        "tenant_succeeded",
        "canary",
        Some("canary01"),
        "",
    );
    ev(&mut b, 95, "tenant_started", "canary", Some("canary02"), "");
    ev(
        &mut b,
        190,
        "tenant_succeeded",
        "canary",
        Some("canary02"),
        "",
    );
    b
}

#[test]
fn deploying_with_tenants_in_flight() {
    let mut b = canary_baking();
    ev(&mut b, 790, "gate_passed", "canary", None, "");
    ev(&mut b, 790, "wave_started", "general", None, "");
    for (i, t) in ["general01", "general02", "general03"].iter().enumerate() {
        ev(
            &mut b,
            791 + i as i64 * 20,
            "tenant_started",
            "general",
            Some(t),
            "",
        );
    }
    started(&mut b, "general01", StackKind::Storage, "create");
    status(&mut b, "general01", StackKind::Storage, "CREATE_COMPLETE");
    started(&mut b, "general01", StackKind::Worker, "create");
    status(&mut b, "general01", StackKind::Worker, "CREATE_IN_PROGRESS");
    started(&mut b, "general02", StackKind::Storage, "update");
    status(
        &mut b,
        "general02",
        StackKind::Storage,
        "UPDATE_IN_PROGRESS",
    );
    // A resource's event is not the stack's status.
    let t: TenantId = "general02".parse().unwrap();
    let event = StackEvent {
        event_id: "r".into(),
        timestamp: at(0),
        logical_id: "DocumentsBucket".into(),
        resource_type: "AWS::S3::Bucket".into(),
        status: "UPDATE_COMPLETE".into(),
        reason: None,
    };
    b.apply_progress(&Progress::Event {
        tenant: &t,
        stack: StackKind::Storage,
        event: &event,
    });
    ev(
        &mut b,
        850,
        "tenant_failed",
        "general",
        Some("general04"),
        "storage: failed",
    );
    insta::assert_snapshot!(render(&b, at(872)), @r"
    Rollout 7 of release 2026.11.0: running, 14m32s
      canary     passed      2/2 done: 2 succeeded
      general    deploying   1/6 done: 1 failed; 3 in flight, 2 pending
        general01      worker   create  CREATE_IN_PROGRESS            1m21s
        general02      storage  update  UPDATE_IN_PROGRESS            1m01s
        general03      -        -       starting                        41s
    ");
    insta::assert_snapshot!(b.take_log().join("\n"), @r"
    10:00:00 wave_started      canary
    10:13:10 gate_passed       canary
    10:13:10 wave_started      general
    10:14:10 tenant_failed     general    general04      storage: failed
    ");
    assert!(b.take_log().is_empty());
}

#[test]
fn a_wave_bakes_after_its_last_outcome() {
    let b = canary_baking();
    insta::assert_snapshot!(render(&b, at(250)), @r"
    Rollout 7 of release 2026.11.0: running, 4m10s
      canary     baking      2/2 done: 2 succeeded; bake 1m00s of 10m00s, health gate on
      general    waiting     0/6 done; max 4 at once
    ");
}

#[test]
fn failures_past_the_tolerance_then_the_halt() {
    let mut b = canary_baking();
    ev(&mut b, 790, "gate_passed", "canary", None, "");
    ev(&mut b, 790, "wave_started", "general", None, "");
    for t in ["general01", "general02", "general03"] {
        ev(&mut b, 791, "tenant_started", "general", Some(t), "");
    }
    ev(
        &mut b,
        800,
        "tenant_failed",
        "general",
        Some("general01"),
        "x",
    );
    ev(
        &mut b,
        801,
        "tenant_failed",
        "general",
        Some("general02"),
        "y",
    );
    let halting = render(&b, at(810));
    ev(
        &mut b,
        830,
        "tenant_succeeded",
        "general",
        Some("general03"),
        "",
    );
    ev(
        &mut b,
        830,
        "halted",
        "general",
        None,
        "2 of 6 tenant(s) failed, more than the 1 tolerated",
    );
    insta::assert_snapshot!(format!("{halting}---\n{}", render(&b, at(831))), @r"
    Rollout 7 of release 2026.11.0: running, 13m30s
      canary     passed      2/2 done: 2 succeeded
      general    halting     2/6 done: 2 failed; 1 in flight, 3 pending, over the tolerance of 1: no new tenant starts
        general03      -        -       starting                        19s
    ---
    Rollout 7 of release 2026.11.0: halted, 13m51s
      canary     passed      2/2 done: 2 succeeded
      general    halted      3/6 done: 1 succeeded, 2 failed; 3 pending
    ");
}

#[test]
fn many_tenants_in_flight_are_counted_past_a_screenful() {
    let mut b = board(1, 40, 0);
    ev(&mut b, 0, "wave_started", "canary", None, "");
    ev(&mut b, 1, "tenant_started", "canary", Some("canary01"), "");
    ev(
        &mut b,
        2,
        "tenant_succeeded",
        "canary",
        Some("canary01"),
        "",
    );
    ev(&mut b, 2, "gate_passed", "canary", None, "");
    ev(&mut b, 2, "wave_started", "general", None, "");
    for (i, t) in ids("general", 20).iter().enumerate() {
        ev(
            &mut b,
            3 + i as i64,
            "tenant_started",
            "general",
            Some(t.as_str()),
            "",
        );
    }
    let text = render(&b, at(3700));
    assert_eq!(text.lines().count(), 1 + 2 + MAX_TENANT_LINES + 1, "{text}");
    insta::assert_snapshot!(text.lines().last().unwrap(), @"    ... and 8 more in flight");
    assert!(
        text.starts_with("Rollout 7 of release 2026.11.0: running, 1h01m\n"),
        "{text}"
    );
}

#[test]
fn a_resume_starts_failed_and_unfinished_tenants_over() {
    // The log of a crashed rollout, replayed before resuming.
    let mut b = canary_baking();
    ev(&mut b, 790, "gate_passed", "canary", None, "");
    ev(&mut b, 790, "wave_started", "general", None, "");
    ev(
        &mut b,
        791,
        "tenant_started",
        "general",
        Some("general01"),
        "",
    );
    ev(
        &mut b,
        792,
        "tenant_failed",
        "general",
        Some("general02"),
        "boom",
    );
    ev(&mut b, 793, "halted", "general", None, "");
    b.take_log();
    ev(&mut b, 4000, "resumed", "", None, "");
    insta::assert_snapshot!(render(&b, at(4005)), @r"
    Rollout 7 of release 2026.11.0: running, 5s
      canary     passed      2/2 done: 2 succeeded
      general    deploying   0/6 done; 6 pending
    ");
}

#[test]
fn durations_read_at_a_glance() {
    let d = |s| duration(Duration::from_secs(s));
    assert_eq!(
        [d(0), d(59), d(60), d(61), d(3599), d(3600), d(7380)],
        ["0s", "59s", "1m00s", "1m01s", "59m59s", "1h00m", "2h03m"]
    );
}

#[test]
fn event_lines_have_no_trailing_blanks() {
    let e = RolloutEvent {
        id: 1,
        at: at(5),
        event: NewRolloutEvent {
            kind: "completed".into(),
            wave: None,
            tenant: None,
            details: serde_json::json!({}),
        },
    };
    assert_eq!(event_line(&e), "10:00:05 completed");
}
