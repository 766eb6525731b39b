//! The crash test: the real `coordinator rollout start` binary is killed
//! with SIGKILL at three points (after the first tenant outcome, during the
//! canary bake, and with general tenants in flight) and `coordinator
//! rollout resume` takes over once the dead holder's lease (`--lease-ttl
//! 15`) has expired; no tenant is deployed twice, no deployment is left
//! without an outcome, and the store agrees with moto. Interrupted with
//! SIGINT instead, it releases its lease and a resume takes over at once.

use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;

use super::*;
use crate::moto;

/// The lease TTL the crash test passes to `coordinator rollout`
/// (`--lease-ttl`); a killed holder's lease expires at most this long
/// after the kill (it is renewed every third of it), and at least two
/// thirds of it after.
const CLI_LEASE_TTL: Duration = Duration::from_secs(15);
const LEASE_TTL_ARG: &str = "15";

/// The `coordinator` binary, checked fresh against its sources once per
/// test process: the crash test runs it for minutes, and a source edited
/// meanwhile must not fail a run that started with a fresh binary.
fn coordinator_binary() -> PathBuf {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY
        .get_or_init(|| {
            workspace_binary(
                "coordinator",
                &[
                    "coordinator/src",
                    "stacks/src",
                    "stacks/templates",
                    "protocol/src",
                ],
            )
        })
        .clone()
}

fn coordinator_command(fixture: &Fixture, args: &[&str]) -> tokio::process::Command {
    let no_file = fixture.dir.path().join("no-such-aws-file");
    let mut c = tokio::process::Command::new(coordinator_binary());
    c.arg("--manifest")
        .arg(fixture.manifest_path())
        .args(args)
        .current_dir(fixture.dir.path())
        .stdin(Stdio::null())
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("RUST_LOG")
        .env("AWS_ENDPOINT_URL", moto().endpoint())
        .env("AWS_ACCESS_KEY_ID", integration_tests::TEST_ACCESS_KEY_ID)
        .env(
            "AWS_SECRET_ACCESS_KEY",
            integration_tests::TEST_SECRET_ACCESS_KEY,
        )
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", &no_file)
        .env("AWS_SHARED_CREDENTIALS_FILE", &no_file)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .kill_on_drop(true);
    c
}

/// Runs the coordinator with JSON output and SIGKILLs it as soon as
/// `kill_when` holds for the events seen so far (on its stdout). Returns
/// the event kinds it printed.
async fn run_and_kill(
    fixture: &Fixture,
    args: &[&str],
    mut kill_when: impl AsyncFnMut(&[Value]) -> bool,
) -> Vec<Value> {
    let mut child = coordinator_command(fixture, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the coordinator");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while let Some(line) = tokio::time::timeout_at(deadline.into(), lines.next_line())
        .await
        .expect("the coordinator printed nothing in time")
        .expect("read stdout")
    {
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if let Some(e) = v.get("event") {
            events.push(e.clone());
            if kill_when(&events).await {
                child.start_kill().expect("SIGKILL");
                let status = child.wait().await.expect("reap");
                assert_eq!(
                    std::os::unix::process::ExitStatusExt::signal(&status),
                    Some(libc::SIGKILL),
                    "{status:?}"
                );
                return events;
            }
        } else {
            panic!("the coordinator ended before the kill point: {v}\nevents: {events:#?}");
        }
    }
    panic!("the coordinator ended before the kill point; events: {events:#?}");
}

fn kind(e: &Value) -> &str {
    e["kind"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_rollout_is_resumed_and_deploys_every_tenant_once() {
    coordinator_binary();
    let fixture = Fixture::new(
        "max_concurrent = 2\nbake_time = \"1s\"\nhealth_gate = false\n\
         [rollout.overrides.canary]\nmax_concurrent = 1\nbake_time = \"15s\"\n",
    );
    let store = SqliteStore::open(&fixture.manifest().coordinator.state_path).expect("state");
    let started = Instant::now();

    // 1. Killed right after the first tenant outcome.
    let first = run_and_kill(
        &fixture,
        &[
            "rollout",
            "start",
            "--yes",
            "--lease-ttl",
            LEASE_TTL_ARG,
            "--output",
            "json",
        ],
        async |events: &[Value]| {
            events
                .last()
                .is_some_and(|e| kind(e) == "tenant_succeeded" || kind(e) == "tenant_failed")
        },
    )
    .await;
    let killed = Instant::now();
    eprintln!(
        "kill 1 after {:.1}s: {:?}",
        started.elapsed().as_secs_f32(),
        first.iter().map(kind).collect::<Vec<_>>()
    );
    let latest = store
        .latest_rollout()
        .await
        .expect("read")
        .expect("rollout");
    assert_eq!(latest.state, "running", "a crashed rollout stays running");

    // The dead holder's lease is still valid: resume is refused (exit 2),
    // and so is a new start (run together: the lease is valid for at least
    // two thirds of its TTL after the kill).
    let fx = &fixture;
    let refusals = [
        &["rollout", "resume", "--output", "json"][..],
        &["rollout", "start", "--yes", "--output", "json"][..],
    ]
    .map(|args| async move {
        let out = coordinator_command(fx, args).output().await.expect("run");
        (args, out)
    });
    let [a, b] = refusals;
    let (a, b) = tokio::join!(a, b);
    assert!(killed.elapsed() < CLI_LEASE_TTL * 2 / 3, "too slow to test");
    for (args, refused) in [a, b] {
        assert_eq!(
            refused.status.code(),
            Some(2),
            "{args:?}: {}\n{}",
            String::from_utf8_lossy(&refused.stdout),
            String::from_utf8_lossy(&refused.stderr)
        );
    }

    // 2. After the lease expired, resume takes over; killed during the
    //    canary wave's bake (15 s).
    tokio::time::sleep((killed + CLI_LEASE_TTL + Duration::from_secs(2)) - Instant::now()).await;
    let canaries = ids(&fixture, "canary");
    let store_ref = &store;
    let canaries_ref = &canaries;
    let id = latest.id;
    let second = run_and_kill(
        &fixture,
        &[
            "rollout",
            "resume",
            "--lease-ttl",
            LEASE_TTL_ARG,
            "--output",
            "json",
        ],
        async move |events: &[Value]| {
            if !events.iter().any(|e| kind(e) == "resumed") {
                return false;
            }
            // Wait (in the store) until both canaries succeeded, then kill
            // a moment into the bake.
            loop {
                let log = store_ref.rollout_events(id).await.expect("events");
                let done = canaries_ref.iter().all(|c| {
                    log.iter().any(|e| {
                        e.event.kind == "tenant_succeeded"
                            && e.event.tenant.as_ref().is_some_and(|t| t.as_str() == c)
                    })
                });
                if done {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            true
        },
    )
    .await;
    let killed = Instant::now();
    let log = store.rollout_events(id).await.expect("events");
    let kinds: Vec<&str> = log.iter().map(|e| e.event.kind.as_str()).collect();
    eprintln!(
        "kill 2 after {:.1}s: printed {:?}; log {kinds:?}",
        started.elapsed().as_secs_f32(),
        second.iter().map(kind).collect::<Vec<_>>()
    );
    assert!(
        !kinds.contains(&"gate_passed"),
        "killed during the bake: {kinds:?}"
    );
    assert_untouched(&fixture, &ids(&fixture, "general")).await;

    // 3. Resumed again: the canary wave is baked again, and the run is
    //    killed 300 ms after the first general tenant started (in flight).
    tokio::time::sleep((killed + CLI_LEASE_TTL + Duration::from_secs(2)) - Instant::now()).await;
    let third = run_and_kill(
        &fixture,
        &[
            "rollout",
            "resume",
            "--lease-ttl",
            LEASE_TTL_ARG,
            "--output",
            "json",
        ],
        async |events: &[Value]| {
            let e = events.last().expect("an event");
            if kind(e) == "tenant_started" && e["wave"] == "general" {
                tokio::time::sleep(Duration::from_millis(300)).await;
                true
            } else {
                false
            }
        },
    )
    .await;
    let killed = Instant::now();
    let log = store.rollout_events(id).await.expect("events");
    let in_flight: Vec<String> = ids(&fixture, "general")
        .into_iter()
        .filter(|t| {
            let of_t: Vec<&str> = log
                .iter()
                .filter(|e| e.event.tenant.as_ref().is_some_and(|x| x.as_str() == t))
                .map(|e| e.event.kind.as_str())
                .collect();
            of_t == ["tenant_started"]
        })
        .collect();
    eprintln!(
        "kill 3 after {:.1}s: printed {:?}; in flight at the kill: {in_flight:?}",
        started.elapsed().as_secs_f32(),
        third.iter().map(kind).collect::<Vec<_>>()
    );
    let gates: Vec<&str> = log
        .iter()
        .filter(|e| e.event.kind == "gate_passed")
        .filter_map(|e| e.event.wave.as_deref())
        .collect();
    assert_eq!(gates, ["canary"], "the canary wave was baked again");

    // 4. Resumed again after the lease expired: runs to the end.
    tokio::time::sleep((killed + CLI_LEASE_TTL + Duration::from_secs(2)) - Instant::now()).await;
    let last = coordinator_command(
        &fixture,
        &[
            "rollout",
            "resume",
            "--lease-ttl",
            LEASE_TTL_ARG,
            "--output",
            "json",
        ],
    )
    .output()
    .await
    .expect("run");
    let stdout = String::from_utf8_lossy(&last.stdout);
    assert_eq!(
        last.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&last.stderr)
    );
    let report: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v.get("report").cloned())
        .unwrap_or_else(|| panic!("no report: {stdout}"));
    assert_eq!(report["verdict"], "succeeded", "{report:#}");
    eprintln!(
        "crash-test rollout completed after {:.1}s",
        started.elapsed().as_secs_f32()
    );

    let record = store.rollout(id).await.expect("read").expect("rollout");
    assert_eq!(record.state, "succeeded");
    let log = store.rollout_events(id).await.expect("events");
    let gates: Vec<&str> = log
        .iter()
        .filter(|e| e.event.kind == "gate_passed")
        .filter_map(|e| e.event.wave.as_deref())
        .collect();
    assert_eq!(gates, ["canary", "general"], "the canary bake ran again");
    // Each tenant succeeded exactly once in the log.
    let all: Vec<String> = fixture.tenants.iter().map(|(t, _)| t.clone()).collect();
    for t in &all {
        let successes = log
            .iter()
            .filter(|e| {
                e.event.kind == "tenant_succeeded"
                    && e.event.tenant.as_ref().is_some_and(|x| x.as_str() == t)
            })
            .count();
        assert_eq!(successes, 1, "{t}: {log:#?}");
        // The store's deployments: one `create` per stack succeeded. A
        // create cut short by the kill was reattached on resume and has the
        // outcome observed: `succeeded` if CloudFormation had it (resuming
        // never creates the stack again), `not_started` if the kill came
        // between recording it and calling CreateStack (then the resume
        // created it, once: moto's events are checked below).
        let deployments = store
            .deployments(Some(&t.parse::<TenantId>().expect("id")), 100)
            .await
            .expect("deployments");
        for k in DEPLOYED {
            let creates: Vec<Option<&str>> = deployments
                .iter()
                .filter(|d| d.stack == k && d.action == "create")
                .map(|d| d.outcome.as_deref())
                .collect();
            let succeeded = creates.iter().filter(|o| **o == Some("succeeded")).count();
            assert_eq!(succeeded, 1, "{t}/{k:?}: {deployments:#?}");
            assert!(
                creates
                    .iter()
                    .all(|o| matches!(o, Some("succeeded" | "not_started"))),
                "{t}/{k:?}: {deployments:#?}"
            );
            if creates.len() > 1 {
                eprintln!(
                    "{t}/{k:?}: a create recorded but not started before a kill: {creates:?}"
                );
            }
            assert!(
                deployments
                    .iter()
                    .filter(|d| d.stack == k)
                    .all(|d| d.outcome.is_some() && d.outcome.as_deref() != Some("failed")),
                "{t}/{k:?}: {deployments:#?}"
            );
        }
    }
    // moto: every stack created exactly once, CREATE_COMPLETE, outputs as
    // stored.
    assert_deployed(&fixture, &store, &all).await;
}

/// Ctrl-C (SIGINT) with tenants in flight: the coordinator exits 1 saying
/// so and releases its lease, so `rollout resume` takes over at once, with
/// no wait for the (here 10-minute) lease, and finishes the rollout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rollout_releases_its_lease_for_an_immediate_resume() {
    coordinator_binary();
    let fixture = Fixture::new("max_concurrent = 2\nbake_time = \"0s\"\nhealth_gate = false\n");
    let store = SqliteStore::open(&fixture.manifest().coordinator.state_path).expect("state");
    let mut child = coordinator_command(
        &fixture,
        &[
            "rollout",
            "start",
            "--yes",
            "--lease-ttl",
            "600",
            "--output",
            "json",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start the coordinator");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
            .await
            .expect("no tenant started in time")
            .expect("read stdout")
            .expect("the coordinator ended before a tenant started");
        let v: Value = serde_json::from_str(&line).expect("JSON");
        if v["event"]["kind"] == "tenant_started" {
            break;
        }
    }
    let pid = child.id().expect("running").to_string();
    let kill = tokio::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .expect("kill -INT");
    assert!(kill.success());
    let status = child.wait().await.expect("reap");
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .await
        .expect("read stderr");
    assert_eq!(status.code(), Some(1), "{status:?}\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(stderr.contains("the lease was released"), "{stderr}");

    let resumed = coordinator_command(&fixture, &["rollout", "resume", "--output", "json"])
        .output()
        .await
        .expect("run");
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let all: Vec<String> = fixture.tenants.iter().map(|(t, _)| t.clone()).collect();
    assert_deployed(&fixture, &store, &all).await;
}
