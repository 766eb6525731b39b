//! Rollouts on the in-memory fake AWS under paused tokio time: waves in
//! order, failure tolerance, the health gate, halt mid-wave, resume, the
//! concurrency bound and the lease.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use clap::Parser;
use coordinator::aws::Connector;
use coordinator::aws::fake::Outcome as Script;
use coordinator::cli::{self, Cli};
use coordinator::heartbeat::detector::Health;
use coordinator::rollout::{HealthSource, RolloutReport, Runner};
use coordinator::store::Store;
use stacks::Release;
use stacks::ids::TenantId;

use support::*;

#[path = "rollout_fake/order.rs"]
mod order;
#[path = "rollout_fake/takeover.rs"]
mod takeover;

/// Heartbeat states set by the test; tenants not set are Unknown.
#[derive(Default)]
struct ScriptedHealth(Mutex<BTreeMap<TenantId, Health>>);

impl ScriptedHealth {
    /// Every tenant of `h` Healthy.
    fn healthy(h: &Harness) -> Self {
        let s = Self::default();
        for t in &h.tenants {
            s.set(&t.id, Health::Healthy);
        }
        s
    }

    fn set(&self, tenant: &str, health: Health) {
        self.0
            .lock()
            .unwrap()
            .insert(tenant.parse().unwrap(), health);
    }
}

impl HealthSource for ScriptedHealth {
    fn states(&self) -> Vec<(TenantId, Health)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(t, h)| (t.clone(), *h))
            .collect()
    }
}

/// `waves`: (wave, tenant ids); `rollout`: extra `[rollout]` lines.
async fn harness(waves: &[(&str, &[&str])], rollout: &str) -> Harness {
    let (specs, text) = rollout_manifest(waves, rollout);
    let manifest = coordinator::manifest::from_text(Path::new("deploy.toml"), text)
        .unwrap_or_else(|e| panic!("test manifest is invalid: {}", e.report.render()))
        .manifest;
    let mut h = Harness::new(specs).await;
    h.manifest = manifest;
    h
}

/// The tenants and the manifest text of a fleet in `waves`.
fn rollout_manifest(waves: &[(&str, &[&str])], rollout: &str) -> (Vec<TenantSpec>, String) {
    let mut specs = Vec::new();
    let mut wave_of = BTreeMap::new();
    let mut n = 0;
    for (wave, ids) in waves {
        for id in *ids {
            n += 1;
            specs.push(TenantSpec::numbered(id, n, "eu-west-1", &["dedicated_aws"]));
            wave_of.insert(id.to_string(), wave.to_string());
        }
    }
    let text = manifest_text(&specs, "coordinator.db");
    let names: Vec<String> = waves.iter().map(|(w, _)| format!("\"{w}\"")).collect();
    let mut text = text.replace(
        "[rollout]\nwaves = [\"general\"]\n",
        &format!("[rollout]\nwaves = [{}]\n{rollout}\n", names.join(", ")),
    );
    for (id, wave) in &wave_of {
        text = text.replace(
            &format!("id = \"{id}\"\n"),
            &format!("id = \"{id}\"\n#wave={wave}\n"),
        );
    }
    // Move each tenant's wave marker onto its `wave =` line.
    let mut out = String::new();
    let mut pending: Option<String> = None;
    for line in text.lines() {
        if let Some(w) = line.strip_prefix("#wave=") {
            pending = Some(w.to_owned());
            continue;
        }
        if line == "wave = \"general\"" {
            let w = pending.take().expect("wave marker before wave");
            out.push_str(&format!("wave = \"{w}\"\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    (specs, out)
}

fn runner<'a>(h: &'a Harness, health: &'a ScriptedHealth) -> Runner<'a> {
    Runner {
        fleet: h.fleet_with(Release::builtin(), 8, STACK_WAIT),
        health,
        poll_interval: Duration::from_secs(5),
        lease_ttl: Duration::from_secs(60),
        holder: "test".into(),
        on_event: &|_| {},
        progress: &|_| {},
    }
}

fn fail_storage(h: &Harness, id: &str) {
    let t = h.spec(id);
    h.fake.script(
        &t.account_id(),
        t.region(),
        "docproc-storage",
        Script::FailCreate {
            resource: "DocumentsBucket".into(),
            reason: "injected".into(),
        },
    );
}

/// Calls that change a tenant's stacks.
fn changes(h: &Harness, id: &str) -> usize {
    h.cfn_calls(id)
        .iter()
        .filter(|c| {
            matches!(
                c.operation,
                "CreateStack" | "UpdateStack" | "ExecuteChangeSet" | "DeleteStack"
            )
        })
        .count()
}

fn outcomes(report: &RolloutReport) -> Vec<(String, &'static str)> {
    report
        .tenants
        .iter()
        .map(|t| (t.tenant.to_string(), t.outcome))
        .collect()
}

fn o(pairs: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
    pairs.iter().map(|(t, o)| (t.to_string(), *o)).collect()
}

#[tokio::test(start_paused = true)]
async fn waves_run_in_order_and_the_rollout_succeeds() {
    let h = harness(
        &[("canary", &["acme"]), ("general", &["globex", "initech"])],
        "bake_time = \"1m\"",
    )
    .await;
    let health = ScriptedHealth::healthy(&h);
    let report = runner(&h, &health).start().await.expect("rollout");
    assert_eq!(report.verdict, "succeeded", "{report:#?}");
    assert_eq!(
        outcomes(&report),
        o(&[
            ("acme", "succeeded"),
            ("globex", "succeeded"),
            ("initech", "succeeded")
        ])
    );
    let events = h.store.rollout_events(report.rollout).await.unwrap();
    let kinds: Vec<String> = events
        .iter()
        .filter(|e| e.event.tenant.is_none())
        .map(|e| {
            format!(
                "{} {}",
                e.event.kind,
                e.event.wave.clone().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "wave_started canary",
            "gate_passed canary",
            "wave_started general",
            "gate_passed general",
            "completed "
        ]
    );
    // The canary's deployment finished before the general wave started.
    let pos = |kind: &str, who: &str| {
        events
            .iter()
            .position(|e| {
                e.event.kind == kind
                    && (e.event.tenant.as_ref().map(|t| t.as_str()) == Some(who)
                        || e.event.wave.as_deref() == Some(who))
            })
            .unwrap()
    };
    assert!(pos("tenant_succeeded", "acme") < pos("wave_started", "general"));
    let audit = h.store.audit_entries(0, 1000).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    assert!(actions.contains(&"rollout.start"));
    assert_eq!(
        actions.iter().filter(|a| **a == "rollout.tenant").count(),
        3
    );
    assert!(actions.contains(&"rollout.completed"));
}

#[tokio::test(start_paused = true)]
async fn failures_beyond_the_tolerance_stop_before_the_next_wave() {
    let h = harness(
        &[("canary", &["acme", "globex"]), ("general", &["initech"])],
        "bake_time = \"0s\"\nfailure_tolerance = 0",
    )
    .await;
    fail_storage(&h, "globex");
    let health = ScriptedHealth::healthy(&h);
    let report = runner(&h, &health).start().await.expect("rollout");
    assert_eq!(report.verdict, "halted");
    assert_eq!(
        outcomes(&report),
        o(&[
            ("acme", "succeeded"),
            ("globex", "failed"),
            ("initech", "not_started")
        ])
    );
    let halt = report.halt.as_ref().unwrap();
    assert_eq!(halt.wave.as_deref(), Some("canary"));
    assert_eq!(halt.tenants.len(), 1);
    assert_eq!(halt.tenants[0].0.as_str(), "globex");
    let message = halt.to_string();
    assert!(message.contains("wave `canary`"), "{message}");
    assert!(message.contains("globex"), "{message}");
    assert!(message.contains("coordinator rollout resume"), "{message}");
    assert!(h.stack("initech", stacks::StackKind::Storage).is_none());
    let latest = h.store.latest_rollout().await.unwrap().unwrap();
    assert_eq!(latest.state, "halted");
}

#[tokio::test(start_paused = true)]
async fn failures_within_the_tolerance_continue() {
    let h = harness(
        &[
            ("canary", &["acme", "globex", "initech", "hooli"]),
            ("general", &["umbrella"]),
        ],
        "bake_time = \"0s\"\nfailure_tolerance = \"25%\"",
    )
    .await;
    fail_storage(&h, "globex");
    let health = ScriptedHealth::healthy(&h);
    let report = runner(&h, &health).start().await.expect("rollout");
    assert_eq!(report.verdict, "succeeded", "{report:#?}");
    assert_eq!(
        outcomes(&report),
        o(&[
            ("acme", "succeeded"),
            ("globex", "failed"),
            ("initech", "succeeded"),
            ("hooli", "succeeded"),
            ("umbrella", "succeeded")
        ])
    );
    let reason = report.tenants[1].reason.clone().unwrap();
    assert!(reason.contains("injected"), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_tenant_during_the_bake_halts_the_rollout() {
    let h = harness(
        &[("canary", &["acme", "globex"]), ("general", &["initech"])],
        "bake_time = \"10m\"",
    )
    .await;
    let health = ScriptedHealth::healthy(&h);
    health.set("globex", Health::Degraded);
    let report = runner(&h, &health).start().await.expect("rollout");
    assert_eq!(report.verdict, "halted");
    let halt = report.halt.as_ref().unwrap();
    assert!(
        halt.reason.contains("health gate failed"),
        "{}",
        halt.reason
    );
    assert_eq!(halt.tenants[0].0.as_str(), "globex");
    assert!(halt.tenants[0].1.contains("degraded"), "{:?}", halt.tenants);
    assert_eq!(report.tenants[2].outcome, "not_started");
    let audit = h.store.audit_entries(0, 1000).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "rollout.gate_failed"));

    // Healthy again: resume bakes the canary again, then deploys general,
    // without deploying the canary tenants again.
    health.set("globex", Health::Healthy);
    let before = changes(&h, "acme");
    assert!(before > 0);
    let report = runner(&h, &health).resume().await.expect("resume");
    assert_eq!(report.verdict, "succeeded", "{report:#?}");
    assert_eq!(changes(&h, "acme"), before, "acme was deployed again");
    assert_eq!(report.tenants[2].outcome, "succeeded");
}

#[tokio::test(start_paused = true)]
async fn a_gate_without_health_gate_only_waits() {
    let h = harness(
        &[("canary", &["acme"])],
        "bake_time = \"10m\"\nhealth_gate = false",
    )
    .await;
    let health = ScriptedHealth::healthy(&h);
    health.set("acme", Health::Unreachable);
    let started = tokio::time::Instant::now();
    let report = runner(&h, &health).start().await.expect("rollout");
    assert_eq!(report.verdict, "succeeded");
    assert!(started.elapsed() >= Duration::from_secs(600));
}

#[tokio::test(start_paused = true)]
async fn halt_mid_wave_lets_in_flight_tenants_finish_and_starts_no_new_ones() {
    let ids = ["t01", "t02", "t03", "t04", "t05", "t06"];
    let h = harness(
        &[("canary", &ids), ("general", &["t07"])],
        "bake_time = \"0s\"\nmax_concurrent = 2",
    )
    .await;
    h.fake.set_operation_duration(Duration::from_secs(30));
    let health = ScriptedHealth::healthy(&h);
    let run = runner(&h, &health);
    let halter = async {
        // Two tenants are in flight after a few seconds.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(h.fake.operations_in_progress(), 2);
        coordinator::rollout::halt_rollout(&h.store, "bob", "looks wrong")
            .await
            .expect("halt")
    };
    let (report, halted) = tokio::join!(run.start(), halter);
    let report = report.expect("rollout");
    assert_eq!(halted.state, "halted");
    assert_eq!(report.verdict, "halted");
    let done: Vec<_> = report
        .tenants
        .iter()
        .filter(|t| t.outcome == "succeeded")
        .map(|t| t.tenant.to_string())
        .collect();
    assert_eq!(done.len(), 2, "{report:#?}");
    assert!(
        report
            .tenants
            .iter()
            .all(|t| matches!(t.outcome, "succeeded" | "not_started")),
        "{report:#?}"
    );
    assert_eq!(h.fake.operations_in_progress(), 0);
    // Their outcomes were recorded, and nothing else was started.
    for t in &report.tenants {
        let stack = h.stack(t.tenant.as_str(), stacks::StackKind::Storage);
        assert_eq!(stack.is_some(), t.outcome == "succeeded", "{}", t.tenant);
    }
    let audit = h.store.audit_entries(0, 1000).await.unwrap();
    let halt = audit.iter().find(|a| a.action == "rollout.halt").unwrap();
    assert_eq!(halt.actor, "bob");

    // Resume finishes the rest and never redeploys t01/t02.
    let first: Vec<usize> = done.iter().map(|t| changes(&h, t)).collect();
    assert!(first.iter().all(|n| *n > 0), "{first:?}");
    let report = runner(&h, &health).resume().await.expect("resume");
    assert_eq!(report.verdict, "succeeded", "{report:#?}");
    let again: Vec<usize> = done.iter().map(|t| changes(&h, t)).collect();
    assert_eq!(first, again, "a succeeded tenant was deployed again");
}

#[tokio::test(start_paused = true)]
async fn concurrency_never_exceeds_max_concurrent() {
    let ids: Vec<String> = (1..=10).map(|n| format!("t{n:02}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let h = harness(
        &[("canary", &refs[..2]), ("general", &refs[2..])],
        "bake_time = \"0s\"\nmax_concurrent = 3\n[rollout.overrides.canary]\nmax_concurrent = 1",
    )
    .await;
    h.fake.set_operation_duration(Duration::from_secs(30));
    let health = ScriptedHealth::healthy(&h);
    let report = runner(&h, &health).start().await.expect("rollout");
    assert_eq!(report.verdict, "succeeded", "{report:#?}");
    let max = h.fake.max_concurrent_operations();
    assert_eq!(max, 3, "max {max} operations at once with max_concurrent 3");
}

#[tokio::test(start_paused = true)]
async fn a_second_rollout_is_refused_while_one_is_active() {
    let h = harness(&[("canary", &["acme"])], "bake_time = \"0s\"").await;
    let health = ScriptedHealth::healthy(&h);
    // Another coordinator holds the lease.
    h.store
        .acquire_rollout_lease("other", 0, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let err = runner(&h, &health).start().await.unwrap_err();
    assert!(err.to_string().contains("other"), "{err}");
    h.store.release_rollout_lease("other").await.unwrap();

    // A crashed rollout (running, lease expired) must be resumed, not restarted.
    let r = h.store.create_rollout("x", "alice").await.unwrap();
    let err = runner(&h, &health).start().await.unwrap_err();
    assert!(err.to_string().contains("rollout resume"), "{err}");
    assert!(h.store.rollout(r.id).await.unwrap().unwrap().state == "running");
}

fn exit_code(code: ExitCode) -> u8 {
    (0..=255u8)
        .find(|c| code == ExitCode::from(*c))
        .expect("an exit code")
}

/// The CLI: a failing canary halts with exit 1 and names the tenant;
/// `status` shows it; `halt` of a halted rollout is bad input; then a
/// healthy fleet's rollout exits 0.
#[test]
fn cli_start_status_halt() {
    let (specs, text) = rollout_manifest(
        &[("canary", &["acme", "globex"]), ("general", &["initech"])],
        "bake_time = \"0s\"",
    );
    let m = TempManifest::new(&text);
    let fake = fake_for(&specs);
    let globex = specs[1].clone();
    fake.script(
        &globex.account_id(),
        globex.region(),
        "docproc-storage",
        Script::FailCreate {
            resource: "DocumentsBucket".into(),
            reason: "injected".into(),
        },
    );
    let connector: Arc<dyn Connector> = Arc::new(fake.clone());
    let run = |args: &[&str]| {
        let mut argv = vec!["coordinator", "--manifest", m.path.to_str().unwrap()];
        argv.extend_from_slice(args);
        exit_code(cli::run_with(
            Cli::try_parse_from(argv).unwrap(),
            Some(connector.clone()),
        ))
    };
    assert_eq!(run(&["rollout", "status"]), 2);
    assert_eq!(run(&["rollout", "start", "--release", "0.0.1", "--yes"]), 2);
    assert_eq!(run(&["rollout", "start", "--yes"]), 1);
    assert_eq!(run(&["rollout", "status"]), 0);
    assert_eq!(run(&["--output", "json", "rollout", "status"]), 0);
    assert_eq!(run(&["rollout", "halt"]), 2);
    assert!(
        fake.stack(&specs[2].account_id(), specs[2].region(), "docproc-storage")
            .is_none()
    );

    let (specs, text) = rollout_manifest(
        &[("canary", &["acme"]), ("general", &["initech"])],
        "bake_time = \"0s\"",
    );
    let m = TempManifest::new(&text);
    let connector: Arc<dyn Connector> = Arc::new(fake_for(&specs));
    let mut argv = vec!["coordinator", "--manifest", m.path.to_str().unwrap()];
    argv.extend_from_slice(&["rollout", "start", "--yes"]);
    let code = cli::run_with(Cli::try_parse_from(argv).unwrap(), Some(connector));
    assert_eq!(exit_code(code), 0);
}

#[test]
fn the_policy_resolves_overrides_and_rejects_bad_values() {
    let (_, text) = rollout_manifest(
        &[("canary", &["acme"]), ("general", &["globex"])],
        "max_concurrent = 4\nfailure_tolerance = \"10%\"\nbake_time = \"5m\"\n[rollout.overrides.canary]\nmax_concurrent = 1\nhealth_gate = false",
    );
    let m = coordinator::manifest::from_text(Path::new("deploy.toml"), text)
        .unwrap_or_else(|e| panic!("{}", e.report.render()))
        .manifest;
    let canary = m.rollout.for_wave(&"canary".parse().unwrap());
    let general = m.rollout.for_wave(&"general".parse().unwrap());
    assert_eq!(
        (
            canary.max_concurrent,
            canary.health_gate,
            canary.bake_time.to_string()
        ),
        (1, false, "5m".to_owned())
    );
    assert_eq!(canary.failure_tolerance.to_string(), "10%");
    assert_eq!((general.max_concurrent, general.health_gate), (4, true));

    for (extra, expect) in [
        (
            "[rollout.overrides.canry]\nmax_concurrent = 1",
            "unknown wave `canry`",
        ),
        ("failure_tolerance = \"150%\"", "failure_tolerance"),
        ("failure_tolerance = -1", "failure_tolerance"),
        ("max_concurrent = 0", "max_concurrent"),
        ("bake_time = \"2d\"", "bake_time"),
        ("bake_time = \"48h\"", "longer than a day"),
        ("health_gate = \"yes\"", "health_gate"),
        ("[rollout.overrides.canary]\nretries = 3", "retries"),
    ] {
        let (_, text) = rollout_manifest(&[("canary", &["acme"])], extra);
        let err = coordinator::manifest::from_text(Path::new("deploy.toml"), text)
            .err()
            .unwrap_or_else(|| panic!("{extra:?} accepted"));
        let report = err.report.render();
        assert!(report.contains(expect), "{extra:?}: {report}");
    }
}

#[tokio::test(start_paused = true)]
async fn crossing_the_tolerance_mid_wave_starts_no_further_tenant() {
    let h = harness(
        &[("canary", &["t01", "t02", "t03", "t04"])],
        "bake_time = \"0s\"\nmax_concurrent = 1\nfailure_tolerance = \"25%\"",
    )
    .await;
    // 25% of 4 tolerates one failure; the second one halts the wave.
    fail_storage(&h, "t01");
    fail_storage(&h, "t02");
    let health = ScriptedHealth::healthy(&h);
    let report = runner(&h, &health).start().await.expect("rollout");
    assert_eq!(report.verdict, "halted");
    assert_eq!(
        outcomes(&report),
        o(&[
            ("t01", "failed"),
            ("t02", "failed"),
            ("t03", "not_started"),
            ("t04", "not_started")
        ])
    );
    let halt = report.halt.unwrap();
    assert!(
        halt.reason
            .contains("2 of 4 tenant(s) failed, more than the 1 tolerated"),
        "{}",
        halt.reason
    );
    assert_eq!(changes(&h, "t03"), 0);
}
