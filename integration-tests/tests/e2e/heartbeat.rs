//! Heartbeats end to end on moto: five tenants deployed by the coordinator,
//! five real `agent` processes answering in the tenants' accounts, and the
//! coordinator's monitor running with a 1 s interval. Killing one agent makes
//! its tenant Unreachable within three intervals while the others stay
//! Healthy; restarting it brings it back; deleting a tenant's request queue
//! makes it NotDeployed instead of hanging.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coordinator::access;
use coordinator::aws::sdk::SdkConnector;
use coordinator::deploy::Fleet;
use coordinator::heartbeat::detector::Health;
use coordinator::heartbeat::monitor::Monitor;
use coordinator::manifest::{self, Manifest};
use coordinator::plan::PlanOptions;
use coordinator::store::Store as _;
use coordinator::store::sqlite::SqliteStore;
use coordinator::wait::WaitPolicy;
use integration_tests::{assume_role, random_account_id, random_external_id};
use stacks::Stack as _;
use stacks::builtin::worker::Worker;

use crate::{Agents, base_config, spawn_agent};

const TENANTS: usize = 5;
const INTERVAL: Duration = Duration::from_secs(1);

const FAST: WaitPolicy = WaitPolicy {
    min_delay: Duration::from_millis(50),
    max_delay: Duration::from_millis(500),
    deadline: Duration::from_secs(120),
};

fn manifest_text(dir: &Path, accounts: &[String]) -> String {
    let mut text = format!(
        "[coordinator]\naccount_id = \"{}\"\nregion = \"us-east-1\"\nstate = \"{}\"\n[release]\nversion = \"{}\"\n[rollout]\nwaves = [\"all\"]\n[heartbeat]\ninterval = \"1s\"\nunreachable_after = 3\n",
        random_account_id(),
        dir.join("state.db").display(),
        stacks::RELEASE_VERSION
    );
    for (i, account) in accounts.iter().enumerate() {
        text.push_str(&format!(
            "[[tenants]]\nid = \"hb{i}\"\naccount_id = \"{account}\"\nregion = \"us-east-1\"\nexternal_id = \"{}\"\nwave = \"all\"\ncapabilities = [\"dedicated_aws\"]\n",
            random_external_id()
        ));
    }
    text
}

fn state(monitor: &Monitor, i: usize) -> Health {
    monitor.snapshot()[i].health.state
}

/// Polls until `check` holds or `limit` passes; returns the time it took.
async fn until(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_heartbeat_and_a_dead_one_is_detected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let accounts: Vec<String> = (0..TENANTS).map(|_| random_account_id()).collect();
    let m: Manifest = manifest::from_text(
        &dir.path().join("deploy.toml"),
        manifest_text(dir.path(), &accounts),
    )
    .expect("valid")
    .manifest;
    let base = base_config().await;
    let connector = Arc::new(SdkConnector::from_config(base.clone()));
    let store = Arc::new(SqliteStore::open(&m.coordinator.state_path).expect("state"));
    let operator = access::operator(connector.as_ref())
        .await
        .expect("operator");

    // Deploy the fleet with the coordinator.
    let fleet = Fleet {
        connector: connector.as_ref(),
        store: store.as_ref(),
        manifest: &m,
        release: stacks::Release::builtin(),
        operator: &operator,
        concurrency: 5,
        stack_wait: FAST,
        change_set_wait: FAST,
    };
    let planned = fleet
        .observe_and_plan(None, PlanOptions::default())
        .await
        .expect("plan");
    let plan = fleet.record(planned.draft.clone()).await.expect("record");
    let report = fleet.apply(&plan, &planned, &|_| {}).await;
    assert!(report.failed().is_empty(), "{report:#?}");

    // One agent per tenant, with the worker stack's queues.
    let mut queues = Vec::new();
    for t in &m.tenants {
        let stored = store
            .outputs(&t.id, stacks::StackKind::Worker)
            .await
            .expect("read")
            .expect("worker outputs");
        queues.push(
            Worker::parse_outputs(stored.outputs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .expect("outputs"),
        );
    }
    let mut agents = Agents(
        m.tenants
            .iter()
            .zip(&queues)
            .map(|(t, q)| spawn_agent(t, q, dir.path()))
            .collect(),
    );

    // The monitor, as `coordinator serve` runs it.
    let monitor = Arc::new(
        Monitor::new(
            connector.clone(),
            store.clone(),
            Arc::new(m.clone()),
            operator.clone(),
        )
        .await
        .expect("monitor"),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = {
        let monitor = monitor.clone();
        tokio::spawn(async move {
            monitor
                .run(async { stopped.await.ok().unwrap_or_default() })
                .await
        })
    };

    let all_healthy = until(Duration::from_secs(15), || {
        (0..TENANTS).all(|i| state(&monitor, i) == Health::Healthy)
    })
    .await;
    assert!(
        all_healthy.is_some(),
        "not all healthy: {:#?}",
        monitor.snapshot()
    );

    // Kill one agent.
    let victim = 2;
    agents.0[victim].kill().expect("kill the agent");
    agents.0[victim].wait().expect("reap the agent");
    let detected = until(Duration::from_secs(10), || {
        state(&monitor, victim) == Health::Unreachable
    })
    .await;
    let detected =
        detected.unwrap_or_else(|| panic!("never Unreachable: {:#?}", monitor.snapshot()));
    eprintln!(
        "dead agent detected after {:.2}s (interval 1s, unreachable_after 3)",
        detected.as_secs_f32()
    );
    // Unreachable within 3 intervals of the death; the quarter interval
    // covers a round's own processing on a busy 2-core machine with one
    // shared emulator.
    assert!(detected <= INTERVAL * 3 + INTERVAL / 4, "took {detected:?}");
    for i in (0..TENANTS).filter(|i| *i != victim) {
        assert_eq!(
            state(&monitor, i),
            Health::Healthy,
            "tenant {i}: {:#?}",
            monitor.snapshot()[i]
        );
    }

    // Restart it.
    agents.0[victim] = spawn_agent(&m.tenants[victim], &queues[victim], dir.path());
    let back = until(Duration::from_secs(15), || {
        state(&monitor, victim) == Health::Healthy
    })
    .await;
    assert!(
        back.is_some(),
        "never healthy again: {:#?}",
        monitor.snapshot()[victim]
    );

    // Delete a tenant's request queue: NotDeployed, not a hang.
    let gone = 4;
    let tenant_config = assume_role(
        &base,
        m.tenants[gone].account_id.as_str(),
        "e2e-queue-deleter",
        &random_external_id(),
    )
    .await
    .expect("assume");
    aws_sdk_sqs::Client::new(&tenant_config)
        .delete_queue()
        .queue_url(queues[gone].heartbeat_request_queue_url.as_str())
        .send()
        .await
        .expect("delete the request queue");
    let not_deployed = until(Duration::from_secs(10), || {
        state(&monitor, gone) == Health::NotDeployed
    })
    .await;
    assert!(not_deployed.is_some(), "{:#?}", monitor.snapshot()[gone]);
    assert!(
        monitor.snapshot()[gone]
            .health
            .reason
            .contains("does not exist"),
        "{:#?}",
        monitor.snapshot()[gone]
    );

    // The states are persisted with their history.
    let history = store
        .heartbeat_history(&m.tenants[victim].id, 20)
        .await
        .expect("history");
    let states: Vec<Health> = history.iter().rev().map(|c| c.state).collect();
    assert!(
        states.contains(&Health::Unreachable) && states.last() == Some(&Health::Healthy),
        "{states:?}"
    );

    let _ = stop.send(());
    running.await.expect("the monitor stops");
    drop(agents);
}
