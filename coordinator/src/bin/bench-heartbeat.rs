//! `bench-heartbeat`: the heartbeat monitor at fleet scale, against the
//! in-process fake AWS with a fixed SQS latency (not moto, no network).
//!
//! ```sh
//! cargo run --release -p coordinator --bin bench-heartbeat                # 10,000 tenants, 8 × 30 s
//! cargo run --release -p coordinator --bin bench-heartbeat -- --setup direct
//! cargo run --release -p coordinator --bin bench-heartbeat -- --setup direct --interval-secs 10 --rounds 12
//! cargo run --release -p coordinator --bin bench-heartbeat -- --sdk-clients 10000
//! ```
//!
//! Results and their discussion: `docs/benchmarks.md`.
//!
//! Setup (not measured, but its duration is printed): a manifest of
//! `--tenants` dedicated tenants (`t00001` …, distinct accounts and
//! ExternalIds, `[heartbeat] interval` from `--interval-secs`) is deployed on
//! a [`FakeCloud`] through [`Fleet`] (observe, plan, record, apply), with a
//! SQLite state file in a temporary directory (`--memory-store` for an
//! in-memory one). `--setup direct` skips the deployment: it creates each
//! tenant's worker queues on the fake and stores the worker stack's outputs,
//! so that the process holds little besides the monitor (the fake keeps
//! every deployed stack, and the heap keeps what deploying used: gigabytes
//! at 10,000 tenants). Then every tenant's agent is switched on
//! ([`FakeCloud::respond_to_pings`]), every SQS call and every STS call is
//! delayed by `--sqs-latency-ms`, and a [`Monitor`] is built from the
//! manifest's heartbeat settings with `max_concurrent` set to
//! `--max-concurrent`.
//!
//! The measured window is `Monitor::run` for `--rounds` rounds of real time
//! (rounds at 0, I, 2I, …; it stops half an interval after the last one
//! started). During it, `--dead` tenants picked at random have their agent
//! switched off at random instants, uniformly in `[2I, (R-3)I)` (after every
//! tenant was seen healthy, early enough that three more rounds follow).
//!
//! A bench thread (a plain OS thread, so its own CPU time can be read and
//! subtracted) does the bookkeeping: the kills; `Monitor::snapshot` every
//! 100 ms, recording when each killed tenant is first Late and Unreachable
//! (the detector's `since`, and the instant the snapshot saw it) and any
//! tenant shown Late, Unreachable or otherwise unhealthy while its agent was
//! alive (a false positive); the counters every 10 ms (when each round
//! finished); and, half-way between rounds while the monitor is idle, the
//! fake's call log (`calls()` then `clear_calls()`, so no call is lost and
//! the log stays one round long), with the process CPU time at that point.
//!
//! Reported: process CPU (user + system, `/proc/self/stat`) over the window
//! divided by its wall time, with and without the bench thread; peak RSS in
//! the window (`VmHWM`, reset through `/proc/self/clear_refs` when the window
//! starts), RSS when it starts and the difference (the fake's stacks, queues
//! and call log live in the same process); SQS and STS requests per tenant
//! per minute; detection times in intervals (p50, p99, max); false
//! positives, also checked afterwards against the stored state history.
//!
//! What the fake cannot show is what the real SDK costs, so `--sdk-clients N`
//! replaces the benchmark with a probe of the production client path: N
//! tenant SQS clients built by `SdkConnector::tenant_sqs` (credentials from
//! the fake's STS), the RSS they take built and after one `SendMessage`
//! each (plain HTTP to a local stub that closes every connection), and the
//! SDK's CPU time per call over kept-alive connections (64 clients × 100
//! calls; the stub's own CPU time subtracted).
//!
//! Linux only.

#[path = "common/procfs.rs"]
mod procfs;
use procfs::{cpu_time, mib, status_kib};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use chrono::{DateTime, Utc};
use clap::Parser;
use coordinator::access;
use coordinator::aws::fake::{FakeCloud, Trust};
use coordinator::deploy::Fleet;
use coordinator::heartbeat::detector::Health;
use coordinator::heartbeat::monitor::Monitor;
use coordinator::manifest::{self, Manifest};
use coordinator::plan::PlanOptions;
use coordinator::store::sqlite::SqliteStore;
use coordinator::store::{Store, StoredOutputs};
use coordinator::wait::WaitPolicy;
use futures::StreamExt as _;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use stacks::StackKind;
use stacks::ids::{AccountId, Region, RoleArn};

/// The deploy role's name in every tenant account.
const DEPLOY_ROLE: &str = "docproc-coordinator-deploy";
/// The worker stack's name (its queues are named after it).
const WORKER_STACK: &str = "docproc-worker";
/// Regions the tenants are spread over.
const REGIONS: [&str; 3] = ["eu-west-1", "us-east-1", "eu-central-1"];
/// How often the bench thread reads the counters.
const TICK: Duration = Duration::from_millis(10);
/// How often it takes a snapshot.
const SNAPSHOT_EVERY: Duration = Duration::from_millis(100);

/// The heartbeat monitor with N tenants on the fake AWS.
#[derive(Debug, Parser)]
#[command(name = "bench-heartbeat")]
struct Args {
    /// Tenants with a deployed worker stack.
    #[arg(long, default_value_t = 10_000)]
    tenants: usize,
    /// Heartbeat interval, seconds.
    #[arg(long, default_value_t = 30)]
    interval_secs: u64,
    /// Rounds to run (real time: rounds × interval).
    #[arg(long, default_value_t = 8)]
    rounds: u32,
    /// Latency of every SQS (and STS) call and of the fake agent's answer.
    #[arg(long, default_value_t = 15)]
    sqs_latency_ms: u64,
    /// Agents switched off at random times during the run.
    #[arg(long, default_value_t = 200)]
    dead: usize,
    /// The monitor's `max_concurrent`.
    #[arg(long, default_value_t = 512)]
    max_concurrent: usize,
    /// Tenants deployed at once during setup.
    #[arg(long, default_value_t = 64)]
    deploy_concurrency: usize,
    /// Seed for picking the dead tenants and their times.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// An in-memory SQLite store instead of a file in a temporary directory.
    #[arg(long)]
    memory_store: bool,
    /// How the fleet is set up: `fleet` deploys it through `Fleet` (the fake
    /// then holds every stack, and the heap keeps what deploying used);
    /// `direct` only creates each tenant's queues on the fake and stores its
    /// worker stack's outputs, so the process holds little besides the
    /// monitor and its peak RSS bounds the monitor's memory.
    #[arg(long, value_enum, default_value_t = Setup::Fleet)]
    setup: Setup,
    /// Instead of the benchmark: build this many tenant SQS clients the way
    /// the production connector does (`SdkConnector::tenant_sqs`, real
    /// `aws-sdk-sqs` clients), hold them, make one call with each against a
    /// local stub, and print how much RSS they take; the fake's clients are
    /// far smaller.
    #[arg(long, value_name = "N")]
    sdk_clients: Option<usize>,
}

/// How the fleet is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Setup {
    /// Observe, plan, record and apply with `Fleet`.
    Fleet,
    /// Queues and stored outputs only.
    Direct,
}

// ----- /proc -----

/// Resets `VmHWM` to the current RSS.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

// ----- setup -----

struct TenantInfo {
    account: AccountId,
    region: Region,
}

fn manifest_text(args: &Args, state: &Path) -> String {
    let mut text = format!(
        "[coordinator]\naccount_id = \"111111111111\"\nregion = \"us-east-1\"\nstate = \"{}\"\n\n\
         [release]\nversion = \"{}\"\n\n[rollout]\nwaves = [\"all\"]\n\n\
         [heartbeat]\ninterval = \"{}s\"\n",
        state.display(),
        stacks::RELEASE_VERSION,
        args.interval_secs
    );
    for i in 1..=args.tenants {
        text.push_str(&format!(
            "\n[[tenants]]\nid = \"t{i:05}\"\naccount_id = \"{:012}\"\nregion = \"{}\"\n\
             external_id = \"bench-external-id-{i:05}-0123456789abcdef\"\nwave = \"all\"\n\
             capabilities = [\"dedicated_aws\"]\n",
            300_000_000_000u64 + i as u64,
            REGIONS[i % REGIONS.len()],
        ));
    }
    text
}

/// Deploys the fleet on the fake; returns how long it took.
async fn deploy(
    fake: &FakeCloud,
    store: &dyn Store,
    manifest: &Manifest,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let operator = access::operator(fake).await?;
    let fast = WaitPolicy {
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        deadline: Duration::from_secs(60),
    };
    let fleet = Fleet {
        connector: fake,
        store,
        manifest,
        release: stacks::Release::builtin(),
        operator: &operator,
        concurrency,
        stack_wait: fast,
        change_set_wait: fast,
    };
    let planned = fleet
        .observe_and_plan(None, PlanOptions::default())
        .await
        .context("planning")?;
    let plan = fleet.record(planned.draft.clone()).await?;
    let report = fleet.apply(&plan, &planned, &|_| {}).await;
    let failed = report.failed();
    ensure!(
        failed.is_empty(),
        "{} tenants failed to deploy, e.g. {:?}",
        failed.len(),
        failed.first()
    );
    ensure!(
        report.tenants.len() == manifest.tenants.len(),
        "deployed {} of {} tenants",
        report.tenants.len(),
        manifest.tenants.len()
    );
    Ok(started.elapsed())
}

/// Creates each tenant's worker queues on the fake and stores the worker
/// stack's outputs, as a deployment would have left them; returns how long
/// it took.
async fn seed(
    fake: &FakeCloud,
    store: &dyn Store,
    manifest: &Manifest,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for t in &manifest.tenants {
        let queue = |name: &str| {
            fake.create_queue(&t.account_id, t.region, &format!("{WORKER_STACK}-{name}"))
                .to_string()
        };
        let outputs = BTreeMap::from([
            ("JobQueueUrl".to_owned(), queue("jobs")),
            ("DeadLetterQueueUrl".to_owned(), queue("jobs-dlq")),
            (
                "HeartbeatRequestQueueUrl".to_owned(),
                queue("heartbeat-requests"),
            ),
            (
                "HeartbeatReplyQueueUrl".to_owned(),
                queue("heartbeat-replies"),
            ),
            (
                "WorkerRoleArn".to_owned(),
                RoleArn::for_role(&t.account_id, "docproc-worker-role")?.to_string(),
            ),
        ]);
        store
            .put_outputs(StoredOutputs {
                tenant: t.id.clone(),
                stack: StackKind::Worker,
                release: stacks::RELEASE_VERSION.to_owned(),
                template_hash: format!("{:064x}", 0),
                outputs,
                recorded_at: Utc::now(),
            })
            .await?;
    }
    Ok(started.elapsed())
}

// ----- the bench thread -----

struct Kill {
    tenant: usize,
    at: Duration,
}

#[derive(Debug, Clone, Default)]
struct Killed {
    tenant: usize,
    at: Option<(Instant, DateTime<Utc>)>,
    late: Option<DateTime<Utc>>,
    unreachable: Option<DateTime<Utc>>,
    unreachable_seen: Option<Instant>,
}

#[derive(Debug, Default)]
struct Drain {
    /// Calls since the previous drain, by (service, operation).
    calls: BTreeMap<(&'static str, &'static str), u64>,
    /// Process CPU time at the drain.
    cpu: Duration,
    /// Pings sent so far.
    pings_sent: u64,
    /// How long `calls()` took.
    calls_cost: Duration,
}

#[derive(Debug, Default)]
struct BenchReport {
    killed: Vec<Killed>,
    /// Rounds' durations (from the round's tick until the counters show a
    /// ping sent to every tenant), to the bench thread's 10 ms resolution.
    round_durations: Vec<Duration>,
    drains: Vec<Drain>,
    /// (tenant, state, since) of every unhealthy state shown while the
    /// tenant's agent was alive.
    false_positives: Vec<(usize, Health, DateTime<Utc>)>,
    /// Tenants not yet Healthy when the third round started.
    not_healthy_by_round_2: usize,
    snapshots: u64,
    snapshot_time: Duration,
    thread_cpu: Duration,
}

struct BenchThread {
    monitor: Arc<Monitor>,
    fake: FakeCloud,
    tenants: Arc<Vec<TenantInfo>>,
    kills: Vec<Kill>,
    t0: Instant,
    interval: Duration,
    rounds: u32,
    end: Instant,
    stop: Arc<AtomicBool>,
}

impl BenchThread {
    fn run(self) -> BenchReport {
        let n = self.tenants.len() as u64;
        let mut report = BenchReport::default();
        let mut killed_of: Vec<Option<usize>> = vec![None; self.tenants.len()];
        for (k, kill) in self.kills.iter().enumerate() {
            killed_of[kill.tenant] = Some(k);
            report.killed.push(Killed {
                tenant: kill.tenant,
                ..Killed::default()
            });
        }
        let mut next_kill = 0;
        let mut next_snapshot = self.t0;
        let mut next_drain = 0u32;
        let mut checked_round_2 = false;
        loop {
            let now = Instant::now();
            let stopping = now >= self.end || self.stop.load(Ordering::Relaxed);
            // Kills that are due.
            while next_kill < self.kills.len() && self.t0 + self.kills[next_kill].at <= now {
                let t = &self.tenants[self.kills[next_kill].tenant];
                self.fake.respond_to_pings(&t.account, t.region, false);
                report.killed[next_kill].at = Some((Instant::now(), Utc::now()));
                next_kill += 1;
            }
            // Round ends.
            let sent = self.monitor.counters.values().pings_sent;
            while report.round_durations.len() < self.rounds as usize
                && sent >= n * (report.round_durations.len() as u64 + 1)
            {
                let k = report.round_durations.len() as u32;
                report
                    .round_durations
                    .push(now.saturating_duration_since(self.t0 + self.interval * k));
            }
            // Snapshots.
            if now >= next_snapshot || stopping {
                next_snapshot += SNAPSHOT_EVERY;
                let started = Instant::now();
                let snapshot = self.monitor.snapshot();
                report.snapshot_time += started.elapsed();
                report.snapshots += 1;
                let seen = Instant::now();
                let round_2_started = now >= self.t0 + self.interval * 2;
                let mut not_healthy = 0;
                for (i, s) in snapshot.iter().enumerate() {
                    let h = &s.health;
                    if !matches!(h.state, Health::Healthy) {
                        not_healthy += 1;
                    }
                    let killed = killed_of[i].map(|k| &mut report.killed[k]);
                    let killed_at = killed.as_ref().and_then(|k| k.at.map(|(_, utc)| utc));
                    let alive_then = killed_at.is_none_or(|at| h.since < at);
                    match h.state {
                        Health::Healthy | Health::Unknown => {}
                        state if alive_then => {
                            note_false_positive(&mut report.false_positives, i, state, h.since);
                        }
                        Health::Late => {
                            if let Some(k) = killed {
                                k.late.get_or_insert(h.since);
                            }
                        }
                        Health::Unreachable => {
                            if let Some(k) = killed
                                && k.unreachable.is_none()
                            {
                                k.unreachable = Some(h.since);
                                k.unreachable_seen = Some(seen);
                            }
                        }
                        _ => {}
                    }
                }
                if round_2_started && !checked_round_2 {
                    checked_round_2 = true;
                    report.not_healthy_by_round_2 = not_healthy;
                }
            }
            // Half-way between rounds, while the monitor is idle: the call
            // log of the round that just ran.
            if next_drain < self.rounds
                && (now >= self.t0 + self.interval * next_drain + self.interval / 2 || stopping)
            {
                let started = Instant::now();
                let calls = self.fake.calls();
                self.fake.clear_calls();
                let calls_cost = started.elapsed();
                let mut drain = Drain {
                    cpu: cpu_time("self"),
                    pings_sent: self.monitor.counters.values().pings_sent,
                    calls_cost,
                    ..Drain::default()
                };
                for c in &calls {
                    *drain.calls.entry((c.service, c.operation)).or_default() += 1;
                }
                report.drains.push(drain);
                next_drain += 1;
            }
            if stopping {
                break;
            }
            std::thread::sleep(TICK.saturating_sub(now.elapsed()));
        }
        report.thread_cpu = cpu_time("thread-self");
        report
    }
}

/// Records a false positive once per (tenant, state, since).
fn note_false_positive(
    seen: &mut Vec<(usize, Health, DateTime<Utc>)>,
    tenant: usize,
    state: Health,
    since: DateTime<Utc>,
) {
    if !seen.contains(&(tenant, state, since)) {
        seen.push((tenant, state, since));
    }
}

// ----- figures -----

/// CPU time of the calling thread, nanoseconds (`/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Reads one HTTP request (headers, then `content-length` bytes of body)
/// from `stream`; `false` at the end of the connection.
fn read_request(stream: &mut std::net::TcpStream) -> bool {
    use std::io::Read as _;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(k) = stream.read(&mut chunk) else {
            return false;
        };
        if k == 0 {
            return false;
        }
        buf.extend_from_slice(&chunk[..k]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return true;
            }
        }
    }
}

/// Answers every HTTP request on `listener` with a `SendMessage` reply.
/// With `keep_alive` each connection gets its own thread, which adds its
/// CPU time to `cpu_ns` as it goes; otherwise one thread answers and closes
/// every connection (so clients keep no idle connection).
fn serve_sqs_stub(
    listener: std::net::TcpListener,
    keep_alive: bool,
    cpu_ns: Arc<std::sync::atomic::AtomicU64>,
) {
    use std::io::Write as _;
    let body = r#"{"MessageId":"00000000-0000-0000-0000-000000000000","MD5OfMessageBody":"d41d8cd98f00b204e9800998ecf8427e"}"#;
    let reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n{}\r\n{body}",
        body.len(),
        if keep_alive {
            ""
        } else {
            "connection: close\r\n"
        }
    );
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        if !keep_alive {
            if read_request(&mut stream) {
                let _ = stream.write_all(reply.as_bytes());
            }
            continue;
        }
        let reply = reply.clone();
        let cpu_ns = cpu_ns.clone();
        std::thread::spawn(move || {
            let mut counted = thread_cpu_ns();
            while read_request(&mut stream) {
                if stream.write_all(reply.as_bytes()).is_err() {
                    break;
                }
                let now = thread_cpu_ns();
                cpu_ns.fetch_add(now - counted, Ordering::Relaxed);
                counted = now;
            }
        });
    }
}

/// A local SQS stub and a production connector pointed at it.
fn stub_connector(
    keep_alive: bool,
) -> anyhow::Result<(
    coordinator::aws::sdk::SdkConnector,
    Arc<std::sync::atomic::AtomicU64>,
)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let cpu_ns = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stub_cpu = cpu_ns.clone();
    std::thread::Builder::new()
        .name("sqs-stub".into())
        .spawn(move || serve_sqs_stub(listener, keep_alive, stub_cpu))?;
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .build();
    Ok((
        coordinator::aws::sdk::SdkConnector::from_config(config),
        cpu_ns,
    ))
}

/// Builds `n` SDK SQS clients as the monitor does in production (one per
/// tenant, each with its own credentials, through
/// `SdkConnector::tenant_sqs`) and prints the RSS they take; then makes one
/// `SendMessage` with each (plain HTTP to a local stub that closes every
/// connection, credentials from the fake's STS) and prints the RSS again.
/// Last, 64 of them make 100 calls each over kept-alive connections to a
/// second stub, for the SDK's CPU time per call.
async fn sdk_clients(n: usize) -> anyhow::Result<()> {
    use coordinator::aws::{Connector, RoleRequest, SessionName, TenantCredentials};
    let rss_start = status_kib("VmRSS");
    let (connector, _) = stub_connector(false)?;
    // Sessions come from the fake's STS: no network for credentials.
    let fake = FakeCloud::new();
    let operator_sts = fake.operator_sts();
    let mut tenants = Vec::with_capacity(n);
    for i in 1..=n {
        let account: AccountId = format!("{:012}", 300_000_000_000u64 + i as u64).parse()?;
        let external_id: stacks::ids::ExternalId =
            format!("bench-external-id-{i:05}-0123456789abcdef").parse()?;
        let role_arn = fake.add_role(&account, DEPLOY_ROLE, Trust::requiring(&external_id));
        let region: Region = REGIONS[i % REGIONS.len()].parse()?;
        let queue = FakeCloud::queue_url(&account, region, "docproc-worker-heartbeat-requests");
        tenants.push((role_arn, external_id, region, queue));
    }
    let client = |connector: &coordinator::aws::sdk::SdkConnector, i: usize| {
        let (role_arn, external_id, region, _) = &tenants[i];
        let request = RoleRequest {
            role_arn: role_arn.clone(),
            external_id: Some(external_id.clone()),
            session_name: SessionName::sanitize("bench-heartbeat"),
            source_identity: Some(SessionName::sanitize("bench-heartbeat")),
            duration: Duration::from_secs(3600),
        };
        let credentials = Arc::new(TenantCredentials::new(operator_sts.clone(), request));
        connector.tenant_sqs(credentials, *region)
    };
    let rss_before = status_kib("VmRSS");
    let started = Instant::now();
    let clients: Vec<Arc<dyn coordinator::aws::Sqs>> =
        (0..n).map(|i| client(&connector, i)).collect();
    let built = started.elapsed();
    let rss_built = status_kib("VmRSS");
    let per = |from: u64, to: u64| to.saturating_sub(from) as f64 / n.max(1) as f64;
    println!(
        "sdk clients: {n} tenant SQS clients built in {:.2} s; RSS {} at start, {} before building, {} built: {:.1} KiB per client",
        built.as_secs_f64(),
        mib(rss_start),
        mib(rss_before),
        mib(rss_built),
        per(rss_before, rss_built)
    );
    let started = Instant::now();
    let failures: Vec<String> = futures::stream::iter(clients.iter().zip(&tenants))
        .map(|(sqs, (_, _, _, queue))| async move { sqs.send_message(queue, "ping").await })
        .buffer_unordered(64)
        .filter_map(|r| async move { r.err().map(|e| e.to_string()) })
        .collect()
        .await;
    let rss_used = status_kib("VmRSS");
    println!(
        "             one SendMessage each in {:.2} s ({} failed{}); RSS {}: {:.1} KiB per client after one call (no idle connection kept)",
        started.elapsed().as_secs_f64(),
        failures.len(),
        failures
            .first()
            .map_or(String::new(), |e| format!(", e.g. {e}")),
        mib(rss_used),
        per(rss_before, rss_used)
    );
    drop(clients);

    // CPU per call, connections kept alive.
    const CLIENTS: usize = 64;
    const CALLS: usize = 100;
    let (connector, stub_ns) = stub_connector(true)?;
    let few: Vec<(Arc<dyn coordinator::aws::Sqs>, &QueueUrlOf)> = (0..CLIENTS.min(n))
        .map(|i| (client(&connector, i), &tenants[i].3))
        .collect();
    let calls = |rounds: usize| {
        futures::stream::iter(few.iter())
            .map(move |(sqs, queue)| async move {
                let mut failed = 0usize;
                for _ in 0..rounds {
                    failed += usize::from(sqs.send_message(queue, "ping").await.is_err());
                }
                failed
            })
            .buffer_unordered(CLIENTS)
            .fold(0usize, |a, b| async move { a + b })
    };
    calls(1).await; // connectors and connections
    let stub_before = stub_ns.load(Ordering::Relaxed);
    let cpu_before = cpu_time("self");
    let started = Instant::now();
    let failed = calls(CALLS).await;
    let wall = started.elapsed();
    let cpu = cpu_time("self").saturating_sub(cpu_before).as_secs_f64();
    let stub = (stub_ns.load(Ordering::Relaxed) - stub_before) as f64 / 1e9;
    let total = (few.len() * CALLS) as f64;
    println!(
        "             {} SendMessage calls by {} clients over kept-alive connections in {:.2} s ({failed} failed): {:.0} µs of process CPU per call, of which the stub {:.0} µs: the SDK side {:.0} µs per call (plain HTTP: no TLS, no DNS)",
        total,
        few.len(),
        wall.as_secs_f64(),
        cpu * 1e6 / total,
        stub * 1e6 / total,
        (cpu - stub) * 1e6 / total
    );
    Ok(())
}

type QueueUrlOf = stacks::aws_names::QueueUrl;

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn verdict(ok: bool) -> &'static str {
    if ok { "MET" } else { "MISSED" }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.tenants >= 1, "--tenants must be at least 1");
    ensure!(
        args.rounds >= 6,
        "--rounds must be at least 6 (kills fall in [2, rounds-3) intervals)"
    );
    ensure!(
        args.dead <= args.tenants,
        "--dead must not exceed --tenants"
    );
    ensure!(
        (1..=3600).contains(&args.interval_secs),
        "--interval-secs must be 1 to 3600"
    );
    if let Some(n) = args.sdk_clients {
        return sdk_clients(n).await;
    }
    let interval = Duration::from_secs(args.interval_secs);
    let latency = Duration::from_millis(args.sqs_latency_ms);
    let n = args.tenants;
    println!(
        "bench-heartbeat: {n} tenants, interval {}s, {} rounds, SQS latency {} ms, {} dead, max_concurrent {}, {} CPUs",
        args.interval_secs,
        args.rounds,
        args.sqs_latency_ms,
        args.dead,
        args.max_concurrent,
        std::thread::available_parallelism().map_or(0, |p| p.get()),
    );
    let rss_start = status_kib("VmRSS");

    // ----- setup -----
    let dir = std::env::temp_dir().join(format!("bench-heartbeat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = run(&args, &dir, interval, latency, rss_start).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(
    args: &Args,
    dir: &Path,
    interval: Duration,
    latency: Duration,
    rss_start: u64,
) -> anyhow::Result<()> {
    let n = args.tenants;
    let state_path: PathBuf = dir.join("state.db");
    let mut manifest =
        match manifest::from_text(&dir.join("deploy.toml"), manifest_text(args, &state_path)) {
            Ok(v) => v.manifest,
            Err(e) => bail!("the generated manifest is invalid: {}", e.report.render()),
        };
    ensure!(
        manifest.tenants.len() == n,
        "manifest has {} tenants",
        manifest.tenants.len()
    );
    ensure!(
        manifest.heartbeat.interval.get() == interval,
        "the manifest's interval is {:?}",
        manifest.heartbeat.interval.get()
    );

    let fake = FakeCloud::new();
    fake.set_operation_duration(Duration::ZERO);
    for t in &manifest.tenants {
        fake.add_role(&t.account_id, DEPLOY_ROLE, Trust::requiring(&t.external_id));
    }
    let store: Arc<SqliteStore> = Arc::new(if args.memory_store {
        SqliteStore::in_memory()?
    } else {
        SqliteStore::open(&manifest.coordinator.state_path)?
    });
    let (setup_time, what) = match args.setup {
        Setup::Fleet => (
            deploy(&fake, store.as_ref(), &manifest, args.deploy_concurrency).await?,
            "deployed through Fleet (storage + worker stacks)",
        ),
        Setup::Direct => (
            seed(&fake, store.as_ref(), &manifest).await?,
            "seeded directly (worker queues on the fake, worker outputs in the store)",
        ),
    };
    let rss_after_deploy = status_kib("VmRSS");
    println!(
        "setup: {n} tenants {what} in {:.1} s (not measured); RSS {}",
        setup_time.as_secs_f64(),
        mib(rss_after_deploy)
    );

    let tenants: Arc<Vec<TenantInfo>> = Arc::new(
        manifest
            .tenants
            .iter()
            .map(|t| TenantInfo {
                account: t.account_id.clone(),
                region: t.region,
            })
            .collect(),
    );
    for t in tenants.iter() {
        fake.respond_to_pings(&t.account, t.region, true);
    }
    fake.set_latency(latency);
    fake.set_sqs_latency(latency);
    manifest.heartbeat.max_concurrent = args.max_concurrent;
    let operator = access::operator(&fake).await?;
    let rss_before_monitor = status_kib("VmRSS");
    let monitor = Arc::new(
        Monitor::new(
            Arc::new(fake.clone()),
            store.clone(),
            Arc::new(manifest),
            operator,
        )
        .await?,
    );
    ensure!(
        monitor.snapshot().len() == n,
        "not every tenant is monitored"
    );

    // Who dies, and when.
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    let from = interval * 2;
    let to = interval * (args.rounds - 3);
    let mut kills: Vec<Kill> = order[..args.dead]
        .iter()
        .map(|&tenant| Kill {
            tenant,
            at: Duration::from_secs_f64(rng.random_range(from.as_secs_f64()..to.as_secs_f64())),
        })
        .collect();
    kills.sort_by_key(|k| k.at);

    // ----- the window -----
    fake.clear_calls();
    let hwm_reset = reset_peak_rss();
    let rss_window_start = status_kib("VmRSS");
    let cpu0 = cpu_time("self");
    let t0 = Instant::now();
    let end = t0 + interval * args.rounds - interval / 2;
    let stop = Arc::new(AtomicBool::new(false));
    let bench = BenchThread {
        monitor: monitor.clone(),
        fake: fake.clone(),
        tenants: tenants.clone(),
        kills,
        t0,
        interval,
        rounds: args.rounds,
        end,
        stop: stop.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("bench".into())
        .spawn(move || bench.run())?;
    monitor
        .run(tokio::time::sleep_until(tokio::time::Instant::from_std(
            end,
        )))
        .await;
    let wall = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    let report = thread
        .join()
        .map_err(|_| anyhow::anyhow!("the bench thread panicked"))?;
    let cpu = cpu_time("self").saturating_sub(cpu0);
    let peak_rss = status_kib("VmHWM");
    let rss_end = status_kib("VmRSS");
    let counters = monitor.counters.values();

    // ----- afterwards: the stored history, exactly -----
    let mut killed_at: Vec<Option<DateTime<Utc>>> = vec![None; n];
    for k in &report.killed {
        killed_at[k.tenant] = k.at.map(|(_, utc)| utc);
    }
    let mut history_false_positives = 0usize;
    let mut history_examples = Vec::new();
    for (i, t) in monitor.snapshot().iter().enumerate() {
        let history = store.heartbeat_history(&t.tenant, 50).await?;
        let bad = history.iter().any(|c| {
            !matches!(c.state, Health::Healthy | Health::Unknown)
                && killed_at[i].is_none_or(|at| c.at < at)
        });
        if bad {
            history_false_positives += 1;
            if history_examples.len() < 5 {
                history_examples.push(format!("{}: {:?}", t.tenant, history));
            }
        }
    }

    // ----- figures -----
    let secs = wall.as_secs_f64();
    let share = cpu.as_secs_f64() / secs;
    let net_cpu = cpu.saturating_sub(report.thread_cpu);
    let net_share = net_cpu.as_secs_f64() / secs;
    println!();
    println!(
        "window: {:.1} s wall, {} rounds; round durations (tick to last ping sent): {}",
        secs,
        report.round_durations.len(),
        report
            .round_durations
            .iter()
            .map(|d| format!("{:.2}s", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "counters: {} pings sent, {} pongs matched, {} unmatched, {} malformed, {} errors",
        counters.pings_sent,
        counters.pongs_received,
        counters.pongs_unmatched,
        counters.malformed,
        counters.errors
    );

    println!();
    println!(
        "CPU: {:.2} s user+sys over {:.1} s = {:.1}% of one core (whole process)",
        cpu.as_secs_f64(),
        secs,
        share * 100.0
    );
    println!(
        "     bench thread (snapshots, call log, kills): {:.2} s; {} snapshots took {:.2} s ({:.1} ms each)",
        report.thread_cpu.as_secs_f64(),
        report.snapshots,
        report.snapshot_time.as_secs_f64(),
        report.snapshot_time.as_secs_f64() * 1000.0 / report.snapshots.max(1) as f64
    );
    println!(
        "     without the bench thread: {:.2} s = {:.1}% of one core  [target < 25%: {}]",
        net_cpu.as_secs_f64(),
        net_share * 100.0,
        verdict(net_share < 0.25)
    );
    let mut prev_cpu = cpu0;
    let per_interval: Vec<String> = report
        .drains
        .iter()
        .map(|d| {
            let s = d.cpu.saturating_sub(prev_cpu).as_secs_f64();
            prev_cpu = d.cpu;
            format!("{:.1}%", s / interval.as_secs_f64() * 100.0)
        })
        .collect();
    println!(
        "     per interval (process, between call-log drains; the first is half an interval with round 0, which connects to all {n} tenants): {}",
        per_interval.join(" ")
    );

    println!();
    println!(
        "memory: RSS {} at start, {} after the setup, {} before the monitor, {} when the window started",
        mib(rss_start),
        mib(rss_after_deploy),
        mib(rss_before_monitor),
        mib(rss_window_start)
    );
    println!(
        "        peak RSS in the window (VmHWM{}): {}; delta over the window start: {}; RSS at the end {}  [target < 256 MiB: {} for the whole process]",
        if hwm_reset {
            ", reset at the window start"
        } else {
            ", NOT reset: includes setup"
        },
        mib(peak_rss),
        mib(peak_rss.saturating_sub(rss_window_start)),
        mib(rss_end),
        verdict(peak_rss < 256 * 1024)
    );

    println!();
    let minutes = args.rounds as f64 * interval.as_secs_f64() / 60.0;
    let mut totals: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for d in &report.drains {
        for (k, v) in &d.calls {
            *totals.entry(*k).or_default() += v;
        }
    }
    let sqs_total: u64 = totals
        .iter()
        .filter(|((s, _), _)| *s == "sqs")
        .map(|(_, v)| v)
        .sum();
    let all_total: u64 = totals.values().sum();
    println!(
        "requests: {} SQS, {} in all, over {} rounds = {:.2} SQS requests per tenant per minute ({:.2} with STS)",
        sqs_total,
        all_total,
        args.rounds,
        sqs_total as f64 / n as f64 / minutes,
        all_total as f64 / n as f64 / minutes
    );
    for ((service, op), v) in &totals {
        println!(
            "          {service} {op}: {v} ({:.3} per tenant per round)",
            *v as f64 / n as f64 / args.rounds as f64
        );
    }
    let per_round: Vec<String> = report
        .drains
        .iter()
        .map(|d| {
            let sqs: u64 = d
                .calls
                .iter()
                .filter(|((s, _), _)| *s == "sqs")
                .map(|(_, v)| v)
                .sum();
            format!(
                "{:.2}",
                sqs as f64 / n as f64 * 60.0 / interval.as_secs_f64()
            )
        })
        .collect();
    println!(
        "          SQS requests per tenant per minute, round by round: {}",
        per_round.join(" ")
    );
    let sends: u64 = totals.get(&("sqs", "SendMessage")).copied().unwrap_or(0);
    let idle_drains = report
        .drains
        .iter()
        .enumerate()
        .filter(|(k, d)| d.pings_sent == n as u64 * (*k as u64 + 1))
        .count();
    println!(
        "          check: {idle_drains} of {} call-log drains found the round finished (every tenant pinged)",
        report.drains.len()
    );
    println!(
        "          check: SendMessage calls {} = pings sent {}: {}; call log read in at most {:.1} ms",
        sends,
        counters.pings_sent,
        sends == counters.pings_sent,
        report
            .drains
            .iter()
            .map(|d| d.calls_cost.as_secs_f64() * 1000.0)
            .fold(0.0, f64::max)
    );

    println!();
    let i_secs = interval.as_secs_f64();
    let mut decided: Vec<f64> = Vec::new();
    let mut observed: Vec<f64> = Vec::new();
    let mut late: Vec<f64> = Vec::new();
    let mut undetected = Vec::new();
    for k in &report.killed {
        let Some((at, at_utc)) = k.at else {
            undetected.push(format!("t{:05} (never killed)", k.tenant + 1));
            continue;
        };
        match (k.unreachable, k.unreachable_seen) {
            (Some(since), Some(seen)) => {
                decided.push((since - at_utc).num_milliseconds() as f64 / 1000.0 / i_secs);
                observed.push(seen.saturating_duration_since(at).as_secs_f64() / i_secs);
            }
            _ => undetected.push(format!("t{:05}", k.tenant + 1)),
        }
        if let Some(l) = k.late {
            late.push((l - at_utc).num_milliseconds() as f64 / 1000.0 / i_secs);
        }
    }
    for v in [&mut decided, &mut observed, &mut late] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "detection: {} of {} killed tenants became Unreachable{}",
        decided.len(),
        report.killed.len(),
        if undetected.is_empty() {
            String::new()
        } else {
            format!(" (NOT: {})", undetected.join(", "))
        }
    );
    println!(
        "           kill → Unreachable (the detector's `since`), in intervals: min {:.3}, p50 {:.3}, p99 {:.3}, max {:.3}  [target p99 ≤ 3: {}]",
        decided.first().copied().unwrap_or(f64::NAN),
        percentile(&decided, 50.0),
        percentile(&decided, 99.0),
        decided.last().copied().unwrap_or(f64::NAN),
        verdict(undetected.is_empty() && !decided.is_empty() && percentile(&decided, 99.0) <= 3.0)
    );
    println!(
        "           kill → seen in a snapshot (100 ms polls), in intervals: p50 {:.3}, p99 {:.3}, max {:.3}",
        percentile(&observed, 50.0),
        percentile(&observed, 99.0),
        observed.last().copied().unwrap_or(f64::NAN),
    );
    println!(
        "           kill → Late, in intervals: p50 {:.3}, p99 {:.3}, max {:.3}",
        percentile(&late, 50.0),
        percentile(&late, 99.0),
        late.last().copied().unwrap_or(f64::NAN),
    );

    println!();
    println!(
        "false positives: {} seen in snapshots, {} tenants in the stored history (states other than healthy/unknown while the agent was alive); {} tenants not healthy when round 2 started (incl. none killed yet)",
        report.false_positives.len(),
        history_false_positives,
        report.not_healthy_by_round_2
    );
    for (i, state, since) in report.false_positives.iter().take(5) {
        println!("  t{:05}: {} since {since}", i + 1, state.as_str());
    }
    for e in &history_examples {
        println!("  {e}");
    }
    println!(
        "(the fake's call log, stacks and queues live in this process; size_of::<Call>() = {} bytes)",
        size_of::<coordinator::aws::fake::Call>()
    );
    Ok(())
}
