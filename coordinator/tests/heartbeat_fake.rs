//! The heartbeat monitor against the fake AWS: healthy fleets, dead workers,
//! refused access, malformed, duplicate, reordered and stale pongs, missing
//! queues, and a tenant whose SQS calls hang while the others carry on.
//! Real time with a short interval: the detector measures wall-clock silence.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use coordinator::access;
use coordinator::aws::fake::FakeCloud;
use coordinator::heartbeat::detector::Health;
use coordinator::heartbeat::monitor::Monitor;
use coordinator::manifest::duration::HumanDuration;
use coordinator::manifest::{self, Manifest};
use coordinator::store::Store;
use coordinator::store::sqlite::SqliteStore;
use stacks::ids::TenantId;

const INTERVAL: Duration = Duration::from_millis(200);
const WORKER_REQUESTS: &str = "docproc-worker-heartbeat-requests";
const WORKER_REPLIES: &str = "docproc-worker-heartbeat-replies";

fn manifest(dir: &Path, n: usize) -> Manifest {
    let mut text = format!(
        "[coordinator]\naccount_id = \"111111111111\"\nregion = \"us-east-1\"\nstate = \"{}\"\n[release]\nversion = \"{}\"\n[rollout]\nwaves = [\"all\"]\n",
        dir.join("state.db").display(),
        stacks::RELEASE_VERSION
    );
    for i in 0..n {
        text.push_str(&format!(
            "[[tenants]]\nid = \"t{i}\"\naccount_id = \"3000000000{i:02}\"\nregion = \"eu-west-1\"\nexternal_id = \"external-id-for-tenant-{i:02}-0123456789abcdef\"\nwave = \"all\"\ncapabilities = [\"dedicated_aws\"]\n"
        ));
    }
    let mut m = manifest::from_text(&dir.join("deploy.toml"), text)
        .unwrap()
        .manifest;
    m.heartbeat.interval = HumanDuration::new(INTERVAL);
    m
}

struct World {
    _dir: tempfile::TempDir,
    fake: FakeCloud,
    store: Arc<SqliteStore>,
    manifest: Arc<Manifest>,
}

impl World {
    /// A fleet of `n` tenants deployed on the fake, agents answering.
    async fn deployed(n: usize) -> World {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest(dir.path(), n);
        let fake = support::fake_with_agents(&m);
        let store = Arc::new(SqliteStore::open(&m.coordinator.state_path).unwrap());
        support::deploy_on(&fake, &m, store.as_ref()).await;
        World {
            _dir: dir,
            fake,
            store,
            manifest: Arc::new(m),
        }
    }

    async fn monitor(&self) -> Monitor {
        let operator = access::operator(&self.fake).await.unwrap();
        Monitor::new(
            Arc::new(self.fake.clone()),
            self.store.clone(),
            self.manifest.clone(),
            operator,
        )
        .await
        .unwrap()
    }

    fn tenant(&self, i: usize) -> &manifest::Tenant {
        &self.manifest.tenants[i]
    }
}

fn state(m: &Monitor, tenant: &str) -> Health {
    let id: TenantId = tenant.parse().unwrap();
    m.snapshot()
        .into_iter()
        .find(|s| s.tenant == id)
        .unwrap()
        .health
        .state
}

/// Runs `n` rounds starting one interval apart, as `Monitor::run` does.
async fn rounds(m: &Monitor, n: usize) {
    let mut ticker = tokio::time::interval(INTERVAL);
    for _ in 0..n {
        ticker.tick().await;
        m.round(INTERVAL.mul_f32(0.8)).await;
    }
    ticker.tick().await;
}

#[tokio::test]
async fn a_dead_worker_becomes_unreachable_and_recovers_while_others_stay_healthy() {
    let w = World::deployed(3).await;
    let m = w.monitor().await;
    rounds(&m, 3).await;
    for t in ["t0", "t1", "t2"] {
        assert_eq!(state(&m, t), Health::Healthy, "{:?}", m.snapshot());
    }
    let c = m.counters.values();
    assert_eq!(c.pings_sent, 9);
    assert!(c.pongs_received >= 6, "{c:?}");

    // t1's agent dies.
    let t1 = w.tenant(1);
    w.fake.respond_to_pings(&t1.account_id, t1.region, false);
    let mut seen = Vec::new();
    for _ in 0..4 {
        rounds(&m, 1).await;
        seen.push(state(&m, "t1"));
        assert_eq!(state(&m, "t0"), Health::Healthy);
        assert_eq!(state(&m, "t2"), Health::Healthy);
    }
    assert!(seen.contains(&Health::Late), "{seen:?}");
    assert_eq!(seen.last(), Some(&Health::Unreachable), "{seen:?}");
    let first_unreachable = seen.iter().position(|s| *s == Health::Unreachable).unwrap();
    assert!(
        first_unreachable <= 3,
        "unreachable within 3 intervals of the death: {seen:?}"
    );

    // It comes back: the pings it missed are still queued and get answered.
    w.fake.respond_to_pings(&t1.account_id, t1.region, true);
    rounds(&m, 2).await;
    assert_eq!(state(&m, "t1"), Health::Healthy, "{:?}", m.snapshot());

    // History survives a restart of the coordinator.
    let history = w
        .store
        .heartbeat_history(&"t1".parse().unwrap(), 10)
        .await
        .unwrap();
    let states: Vec<Health> = history.iter().rev().map(|c| c.state).collect();
    assert!(
        states.ends_with(&[Health::Late, Health::Unreachable, Health::Healthy]),
        "{states:?}"
    );
    let restarted = w.monitor().await;
    assert_eq!(state(&restarted, "t1"), Health::Healthy);
}

#[tokio::test]
async fn refused_access_is_access_denied_and_nothing_else_is_tried() {
    let w = World::deployed(2).await;
    w.fake.deny_assume(&w.tenant(0).role_arn);
    let m = w.monitor().await;
    w.fake.clear_calls();
    rounds(&m, 2).await;
    assert_eq!(state(&m, "t0"), Health::AccessDenied);
    assert_eq!(state(&m, "t1"), Health::Healthy);
    let snapshot = m.snapshot();
    assert!(
        snapshot[0].health.reason.contains("fail closed"),
        "{}",
        snapshot[0].health.reason
    );
    let sqs_calls_in_t0 = w
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.service == "sqs" && c.account.as_ref() == Some(&w.tenant(0).account_id))
        .count();
    assert_eq!(sqs_calls_in_t0, 0, "no SQS call after the refusal");
}

#[tokio::test]
async fn malformed_duplicate_reordered_and_stale_pongs() {
    let w = World::deployed(1).await;
    let t = w.tenant(0).clone();
    w.fake.respond_to_pings(&t.account_id, t.region, false);
    let m = w.monitor().await;
    rounds(&m, 1).await; // ping 1 sent, not answered yet
    m.round(INTERVAL).await; // ping 2 sent; nothing to collect
    // Answer both, in reverse order, once more as a duplicate, with garbage
    // and a pong for a ping we never sent (stale, from before a restart).
    let pings: Vec<protocol::Ping> = w
        .fake
        .queue_messages(&t.account_id, t.region, WORKER_REQUESTS)
        .iter()
        .map(|b| protocol::decode_ping(b).unwrap())
        .collect();
    assert_eq!(pings.len(), 2);
    let answer = |p: &protocol::Ping| {
        protocol::encode_pong(&p.answer("w", "test", chrono::Utc::now(), Some(0), Some(0)))
    };
    for body in [
        answer(&pings[1]),
        answer(&pings[0]),
        answer(&pings[0]),
        "not json".to_owned(),
        r#"{"type":"pong","v":2}"#.to_owned(),
        answer(&protocol::Ping::new("t0", 99, "another-coordinator")),
    ] {
        w.fake
            .push_message(&t.account_id, t.region, WORKER_REPLIES, &body);
    }
    m.round(INTERVAL).await;
    let c = m.counters.values();
    assert_eq!(c.pongs_received, 2, "{c:?}");
    assert_eq!(
        c.pongs_unmatched, 2,
        "the duplicate and the stale pong: {c:?}"
    );
    assert_eq!(c.malformed, 2, "{c:?}");
    assert_eq!(state(&m, "t0"), Health::Healthy);
    assert!(
        w.fake
            .queue_messages(&t.account_id, t.region, WORKER_REPLIES)
            .is_empty(),
        "everything was deleted"
    );
}

#[tokio::test]
async fn a_hanging_tenant_does_not_hold_up_the_others() {
    let w = World::deployed(3).await;
    let m = w.monitor().await;
    rounds(&m, 2).await;
    w.fake.hang_sqs(&w.tenant(2).account_id, true);
    let started = std::time::Instant::now();
    m.round(INTERVAL).await;
    assert!(
        started.elapsed() < INTERVAL * 3,
        "the round is bounded by the per-tenant timeout: {:?}",
        started.elapsed()
    );
    tokio::time::sleep(INTERVAL).await;
    rounds(&m, 3).await;
    assert_eq!(state(&m, "t0"), Health::Healthy);
    assert_eq!(state(&m, "t1"), Health::Healthy);
    let hung = &m.snapshot()[2].health;
    assert!(
        matches!(hung.state, Health::Late | Health::Unreachable),
        "{hung:?}"
    );
    assert!(
        hung.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("took longer"),
        "{hung:?}"
    );
}

#[tokio::test]
async fn missing_queues_and_stacks_are_not_deployed() {
    let w = World::deployed(2).await;
    let m = w.monitor().await;
    rounds(&m, 1).await;
    let t = w.tenant(0);
    assert!(
        w.fake
            .delete_queue(&t.account_id, t.region, WORKER_REQUESTS)
    );
    rounds(&m, 1).await;
    let s = &m.snapshot()[0].health;
    assert_eq!(s.state, Health::NotDeployed, "{s:?}");
    assert!(s.reason.contains("does not exist"), "{}", s.reason);
    assert_eq!(state(&m, "t1"), Health::Healthy);
}

#[tokio::test]
async fn once_waits_for_the_pong() {
    let w = World::deployed(2).await;
    let t = w.tenant(1);
    w.fake.respond_to_pings(&t.account_id, t.region, false);
    let m = w.monitor().await;
    let started = std::time::Instant::now();
    m.once(Duration::from_millis(500)).await;
    assert_eq!(state(&m, "t0"), Health::Healthy);
    assert_eq!(state(&m, "t1"), Health::Late);
    assert!(
        m.snapshot()[1]
            .health
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("no pong within")
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
