//! The responder against the in-memory fake, on tokio's paused clock: pings
//! answered with the right nonce and seq, bad and stale messages counted and
//! deleted, delete only after a successful send, several responders on one
//! queue, SQS errors retried, graceful shutdown.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use agent::fake::{Event, FakeQueues, Operation};
use agent::{Config, ErrorKind, Responder, StatsSnapshot};
use chrono::Utc;
use protocol::{Ping, Pong};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const REQUESTS: &str =
    "https://sqs.us-east-1.amazonaws.com/210987654321/docproc-worker-heartbeat-requests";
const REPLIES: &str =
    "https://sqs.us-east-1.amazonaws.com/210987654321/docproc-worker-heartbeat-replies";
const JOBS: &str = "https://sqs.us-east-1.amazonaws.com/210987654321/docproc-worker-jobs";
const DLQ: &str = "https://sqs.us-east-1.amazonaws.com/210987654321/docproc-worker-jobs-dlq";

fn fake() -> Arc<FakeQueues> {
    Arc::new(FakeQueues::with_queues([REQUESTS, REPLIES, JOBS, DLQ]))
}

fn config(worker_id: &str) -> Config {
    let mut config = Config::new(worker_id, REQUESTS, REPLIES);
    config.job_queue_url = Some(JOBS.into());
    config.dead_letter_queue_url = Some(DLQ.into());
    config
}

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<StatsSnapshot>,
}

impl Running {
    async fn stop(self) -> StatsSnapshot {
        let _ = self.stop.send(());
        self.task.await.expect("responder task")
    }
}

fn start(config: Config, fake: &Arc<FakeQueues>) -> (Responder, Running) {
    let responder = Responder::new(config, fake.clone()).expect("valid config");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn({
        let responder = responder.clone();
        async move { responder.run(stopped).await }
    });
    (responder, Running { stop, task })
}

/// Polls `condition` every 10 ms of (virtual) time, for at most 10 minutes.
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn ping(seq: u64) -> Ping {
    Ping::new("acme", seq, "coordinator-1")
}

fn pongs(fake: &FakeQueues) -> Vec<Pong> {
    fake.bodies(REPLIES)
        .iter()
        .map(|b| protocol::decode_pong(b).expect("a pong"))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn answers_pings_with_their_nonce_and_seq() {
    let fake = fake();
    fake.push(JOBS, "job 1");
    fake.push(JOBS, "job 2");
    fake.push(DLQ, "dead job");
    let (responder, running) = start(config("worker-a"), &fake);
    let pings: Vec<Ping> = (1..=3).map(ping).collect();
    for p in &pings {
        fake.push(REQUESTS, protocol::encode_ping(p));
    }
    wait_until("3 pongs", || fake.len(REPLIES) == 3).await;
    wait_until("the pings are deleted", || fake.is_empty(REQUESTS)).await;

    let mut pongs = pongs(&fake);
    pongs.sort_by_key(|p| p.seq);
    for (pong, ping) in pongs.iter().zip(&pings) {
        assert_eq!(pong.nonce, ping.nonce);
        assert_eq!(pong.seq, ping.seq);
        assert_eq!(pong.tenant, "acme");
        assert_eq!(pong.v, protocol::VERSION);
        assert_eq!(pong.worker_id, "worker-a");
        assert_eq!(pong.agent_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(pong.job_queue_depth, Some(2));
        assert_eq!(pong.dead_letter_depth, Some(1));
        assert!(pong.received_at <= pong.replied_at);
    }
    assert_eq!(responder.stats().snapshot().pings_answered, 3);
    let stats = running.stop().await;
    assert_eq!(
        stats,
        StatsSnapshot {
            received: 3,
            pings_answered: 3,
            ..StatsSnapshot::default()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn malformed_and_unsupported_messages_are_counted_and_deleted() {
    let fake = fake();
    let good = ping(1);
    let mut v2: serde_json::Value = serde_json::from_str(&protocol::encode_ping(&good)).unwrap();
    v2["v"] = 2.into();
    let mut bad_nonce: serde_json::Value =
        serde_json::from_str(&protocol::encode_ping(&good)).unwrap();
    bad_nonce["nonce"] = "not-hex".into();
    let pong = good.answer("w", "0", Utc::now(), None, None);
    for body in [
        "not json".to_owned(),
        "{}".to_owned(),
        String::new(),
        protocol::encode_pong(&pong),
        bad_nonce.to_string(),
        "x".repeat(protocol::MAX_MESSAGE_BYTES + 1),
        v2.to_string(),
    ] {
        fake.push(REQUESTS, body);
    }
    let (_, running) = start(config("w"), &fake);
    wait_until("the bad messages are deleted", || fake.is_empty(REQUESTS)).await;
    let stats = running.stop().await;
    assert_eq!(stats.malformed, 6, "{stats:?}");
    assert_eq!(stats.unsupported_version, 1, "{stats:?}");
    assert_eq!(stats.pings_answered, 0);
    assert!(fake.is_empty(REPLIES));
    assert_eq!(fake.calls(Operation::Send), 0);
}

#[tokio::test(start_paused = true)]
async fn stale_pings_are_deleted_unanswered() {
    let fake = fake();
    let mut stale = ping(1);
    stale.sent_at = Utc::now() - chrono::Duration::minutes(10);
    let mut from_the_future = ping(2); // a coordinator with a fast clock
    from_the_future.sent_at = Utc::now() + chrono::Duration::minutes(2);
    let fresh = ping(3);
    for p in [&stale, &from_the_future, &fresh] {
        fake.push(REQUESTS, protocol::encode_ping(p));
    }
    let (_, running) = start(config("w"), &fake);
    wait_until("all pings are deleted", || fake.is_empty(REQUESTS)).await;
    let stats = running.stop().await;
    assert_eq!(stats.stale, 1);
    assert_eq!(stats.pings_answered, 2);
    let answered: BTreeSet<u64> = pongs(&fake).iter().map(|p| p.seq).collect();
    assert_eq!(answered, BTreeSet::from([2, 3]));
}

/// Message ids of deleted pings, each after a `Sent` of a pong that carries
/// its nonce.
fn assert_deleted_only_after_answered(fake: &FakeQueues, pings: &[(String, Ping)]) {
    let events = fake.events();
    for (message_id, ping) in pings {
        let deleted = events
            .iter()
            .position(|e| matches!(e, Event::Deleted { message_id: m, .. } if m == message_id))
            .unwrap_or_else(|| panic!("ping {message_id} was not deleted: {events:?}"));
        let sent = events.iter().position(|e| {
            matches!(e, Event::Sent { queue, body } if queue == REPLIES && body.contains(ping.nonce.as_str()))
        });
        assert!(
            sent.is_some_and(|s| s < deleted),
            "ping {message_id} deleted before its pong was sent: {events:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_send_is_retried_and_the_ping_deleted_only_after_it_succeeds() {
    let fake = fake();
    fake.fail_next(Operation::Send, 2, ErrorKind::Transient);
    let p = ping(1);
    let id = fake.push(REQUESTS, protocol::encode_ping(&p));
    let (_, running) = start(config("w"), &fake);
    wait_until("the ping is deleted", || fake.is_empty(REQUESTS)).await;
    let stats = running.stop().await;
    assert_eq!(stats.send_errors, 2);
    assert_eq!(stats.pings_answered, 1);
    assert_eq!(stats.received, 1, "retried in place, not redelivered");
    assert_eq!(pongs(&fake).len(), 1);
    assert_deleted_only_after_answered(&fake, &[(id, p)]);
}

#[tokio::test(start_paused = true)]
async fn a_ping_whose_pong_cannot_be_sent_stays_and_is_answered_after_redelivery() {
    let fake = fake();
    fake.fail_always(Operation::Send, Some(ErrorKind::AccessDenied));
    let p = ping(1);
    let id = fake.push(REQUESTS, protocol::encode_ping(&p));
    let started = Instant::now();
    let (responder, running) = start(config("w"), &fake);
    let stats = responder.stats();
    // The send is retried until the reply deadline (20 s), then given up.
    wait_until("the send is given up", || {
        started.elapsed() > Duration::from_secs(21)
    })
    .await;
    assert!(stats.snapshot().send_errors >= 3, "{:?}", stats.snapshot());
    assert_eq!(fake.len(REQUESTS), 1, "the ping must stay until answered");
    assert!(
        !fake
            .events()
            .iter()
            .any(|e| matches!(e, Event::Deleted { .. }))
    );
    // The customer fixes the policy; the ping comes back after its
    // visibility timeout (30 s) and is answered then.
    fake.fail_always(Operation::Send, None);
    wait_until("the ping is answered", || fake.is_empty(REQUESTS)).await;
    assert!(started.elapsed() >= Duration::from_secs(30));
    let stats = running.stop().await;
    assert_eq!(stats.received, 2, "{stats:?}");
    assert_eq!(stats.pings_answered, 1);
    assert_eq!(pongs(&fake).len(), 1);
    assert_deleted_only_after_answered(&fake, &[(id, p)]);
}

#[tokio::test(start_paused = true)]
async fn two_responders_on_one_queue_answer_each_ping_once() {
    let fake = fake();
    let mut a = config("worker-a");
    a.concurrency = 2;
    let mut b = config("worker-b");
    b.concurrency = 3;
    let (_, running_a) = start(a, &fake);
    let (_, running_b) = start(b, &fake);
    let mut sent = Vec::new();
    for seq in 1..=40 {
        let p = ping(seq);
        sent.push((fake.push(REQUESTS, protocol::encode_ping(&p)), p));
        if seq % 4 == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    wait_until("40 pongs", || fake.len(REPLIES) >= 40).await;
    // Past any visibility timeout: nothing is answered twice.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (stats_a, stats_b) = (running_a.stop().await, running_b.stop().await);
    let pongs = pongs(&fake);
    assert_eq!(pongs.len(), 40);
    let nonces: BTreeSet<_> = pongs.iter().map(|p| p.nonce.clone()).collect();
    let expected: BTreeSet<_> = sent.iter().map(|(_, p)| p.nonce.clone()).collect();
    assert_eq!(nonces, expected);
    assert_eq!(stats_a.pings_answered + stats_b.pings_answered, 40);
    assert_eq!(stats_a.received + stats_b.received, 40);
    assert!(fake.is_empty(REQUESTS));
    assert_deleted_only_after_answered(&fake, &sent);
}

#[tokio::test(start_paused = true)]
async fn shutdown_finishes_replies_in_flight_and_stops_receiving() {
    let fake = fake();
    fake.set_send_delay(Duration::from_secs(3));
    let (_, running) = start(config("w"), &fake);
    let p = ping(1);
    let id = fake.push(REQUESTS, protocol::encode_ping(&p));
    wait_until("the pong is being sent", || {
        fake.calls(Operation::Send) == 1
    })
    .await;
    let receives = fake.calls(Operation::Receive);
    let stopping = Instant::now();
    let stats = running.stop().await;
    assert!(
        stopping.elapsed() >= Duration::from_secs(2),
        "returned before the send finished"
    );
    assert!(stopping.elapsed() < Duration::from_secs(5));
    assert_eq!(stats.pings_answered, 1);
    assert_eq!(pongs(&fake).len(), 1);
    assert!(
        fake.is_empty(REQUESTS),
        "the answered ping is deleted before returning"
    );
    assert_deleted_only_after_answered(&fake, &[(id, p)]);
    assert_eq!(
        fake.calls(Operation::Receive),
        receives,
        "no receive after shutdown"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_while_idle_is_immediate() {
    let fake = fake();
    let (_, running) = start(config("w"), &fake);
    wait_until("a long poll is outstanding", || {
        fake.calls(Operation::Receive) >= 1
    })
    .await;
    let stopping = Instant::now();
    let stats = running.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_millis(100),
        "{:?}",
        stopping.elapsed()
    );
    assert_eq!(stats, StatsSnapshot::default());
}

#[tokio::test(start_paused = true)]
async fn receive_errors_are_retried_with_backoff_even_when_access_is_denied() {
    let fake = fake();
    fake.fail_next(Operation::Receive, 5, ErrorKind::AccessDenied);
    fake.push(REQUESTS, protocol::encode_ping(&ping(1)));
    let started = Instant::now();
    let (_, running) = start(config("w"), &fake);
    wait_until("the ping is answered", || fake.len(REPLIES) == 1).await;
    // 5 delays, from 200 ms doubling, each at most 5 s.
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(200 + 400 + 800 + 1600 + 2500),
        "{elapsed:?}"
    );
    assert!(elapsed <= Duration::from_secs(25), "{elapsed:?}");
    let stats = running.stop().await;
    assert_eq!(stats.receive_errors, 5);
    assert_eq!(stats.pings_answered, 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_delete_is_retried() {
    let fake = fake();
    fake.fail_next(Operation::DeleteBatch, 1, ErrorKind::Throttled);
    fake.push(REQUESTS, protocol::encode_ping(&ping(1)));
    let (_, running) = start(config("w"), &fake);
    wait_until("the ping is deleted", || fake.is_empty(REQUESTS)).await;
    let stats = running.stop().await;
    assert_eq!(stats.delete_errors, 1);
    assert_eq!(pongs(&fake).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn queue_depths_are_cached_and_optional() {
    let fake = fake();
    fake.push(JOBS, "job");
    let (_, running) = start(config("w"), &fake);
    for seq in 1..=5 {
        fake.push(REQUESTS, protocol::encode_ping(&ping(seq)));
        wait_until("the pong", || fake.len(REPLIES) == seq as usize).await;
    }
    assert_eq!(
        fake.calls(Operation::Depth),
        2,
        "one read of each queue within the refresh period"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    fake.push(JOBS, "another job");
    fake.push(REQUESTS, protocol::encode_ping(&ping(6)));
    wait_until("the pong", || fake.len(REPLIES) == 6).await;
    assert_eq!(fake.calls(Operation::Depth), 4);
    let depths: Vec<_> = {
        let mut pongs = pongs(&fake);
        pongs.sort_by_key(|p| p.seq);
        pongs.iter().map(|p| p.job_queue_depth).collect()
    };
    assert_eq!(
        depths,
        [Some(1), Some(1), Some(1), Some(1), Some(1), Some(2)]
    );
    running.stop().await;

    // Unreadable depths: the pong goes without them.
    let fake_denied = self::fake();
    fake_denied.fail_always(Operation::Depth, Some(ErrorKind::AccessDenied));
    let (_, running) = start(config("w"), &fake_denied);
    fake_denied.push(REQUESTS, protocol::encode_ping(&ping(1)));
    wait_until("the pong", || fake_denied.len(REPLIES) == 1).await;
    let stats = running.stop().await;
    assert_eq!(stats.depth_errors, 2);
    let pong = &pongs(&fake_denied)[0];
    assert_eq!((pong.job_queue_depth, pong.dead_letter_depth), (None, None));

    // No job queues configured: no reads at all.
    let fake_plain = self::fake();
    let (_, running) = start(Config::new("w", REQUESTS, REPLIES), &fake_plain);
    fake_plain.push(REQUESTS, protocol::encode_ping(&ping(1)));
    wait_until("the pong", || fake_plain.len(REPLIES) == 1).await;
    running.stop().await;
    assert_eq!(fake_plain.calls(Operation::Depth), 0);
    assert_eq!(pongs(&fake_plain)[0].job_queue_depth, None);
}

#[tokio::test(start_paused = true)]
async fn a_missing_queue_is_retried_not_fatal() {
    let fake = Arc::new(FakeQueues::with_queues([REPLIES]));
    let (_, running) = start(config("w"), &fake);
    wait_until("a few failed receives", || {
        fake.calls(Operation::Receive) >= 3
    })
    .await;
    fake.create_queue(REQUESTS);
    fake.push(REQUESTS, protocol::encode_ping(&ping(1)));
    wait_until("the pong", || fake.len(REPLIES) == 1).await;
    let stats = running.stop().await;
    assert!(stats.receive_errors >= 3);
    assert_eq!(stats.pings_answered, 1);
}
