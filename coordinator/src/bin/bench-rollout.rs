//! `bench-rollout`: a fleet rollout at scale, in process, against the fake
//! AWS with CloudFormation operations that take real time (not moto, no
//! network).
//!
//! ```sh
//! cargo run --release -p coordinator --bin bench-rollout                      # a first deployment: no history
//! cargo run --release -p coordinator --bin bench-rollout -- --history-noise 20 # an onboarded fleet
//! cargo run --release -p coordinator --bin bench-rollout -- --trials 200       # order-blind schedules, no rollout
//! ```
//!
//! Setup (not measured): a manifest of `--tenants` dedicated tenants in two
//! waves (`canary`: the first `--canary`, `general`: the rest), with
//! `max_concurrent = --concurrency` for both waves, `health_gate = false`
//! and `bake_time = "0s"` (so the rollout is pure deployment time); a
//! [`FakeCloud`] with every tenant's deploy role, and every stack's
//! operation duration drawn uniformly in `[--min-op-ms, --max-op-ms]` with
//! `--seed` ([`FakeCloud::set_stack_operation_duration`]).
//!
//! Without `--history-noise` nothing is deployed beforehand: every tenant
//! creates its storage stack, then its worker stack, so a tenant takes the
//! sum of its two durations, and there is no history to order by or poll
//! around (a fleet's very first deployment). With `--history-noise P` a
//! previous release is rolled out first, for real and not measured, with
//! each operation taking its drawn time ± P% (uniform): the deployment
//! records it leaves are what an onboarded fleet has. The measured rollout
//! then updates both stacks of every tenant, each taking its drawn time.
//!
//! Measured: [`Runner::start`] in real time (planning included), its CPU
//! (user + system, `/proc/self/stat`), the peak RSS over it (`VmHWM`, reset
//! through `/proc/self/clear_refs` first), and the fake's
//! `max_concurrent_operations`. Each wave's deployment window is taken from
//! the rollout's events (`wave_started` to the wave's last tenant outcome).
//!
//! Compared with three ideals, per wave then summed:
//! * `bound`: max(Σ tenant time ÷ concurrency, longest tenant): no schedule
//!   with that concurrency can be shorter;
//! * `schedule`: the makespan of the rollout's own schedule (tenants started
//!   in manifest order whenever one of the `concurrency` slots frees up)
//!   with zero overhead;
//! * `formula`: tenants ÷ concurrency × mean operation time × 2 stacks.
//!
//! The stack wait policy (`--poll-min-ms`, `--poll-max-ms`) is the
//! `Fleet::stack_wait` the rollout polls each operation with; the `rollout`
//! command uses `rollout::STACK_WAIT`. Real operations take minutes; to
//! model them without waiting, scale operation times and poll delays down
//! by the same factor: the polling's lateness scales with them, so the
//! ratios to the ideals hold (the coordinator's own per-poll cost does not
//! scale, which makes a scaled run slightly pessimistic). Linux only.
//!
//! ```sh
//! # 30 s..2 min operations and 2 s..15 s polls, at 1/50 speed:
//! cargo run --release -p coordinator --bin bench-rollout -- \
//!     --min-op-ms 600 --max-op-ms 2400 --poll-min-ms 40 --poll-max-ms 300
//! ```

#[path = "common/procfs.rs"]
mod procfs;
use procfs::{cpu_time, mib, status_kib};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use clap::Parser;
use coordinator::access;
use coordinator::aws::fake::{FakeCloud, Trust};
use coordinator::deploy::Fleet;
use coordinator::heartbeat::detector::Health;
use coordinator::manifest;
use coordinator::rollout::{HealthSource, Runner, order};
use coordinator::store::RolloutEvent;
use coordinator::store::sqlite::SqliteStore;
use coordinator::wait::WaitPolicy;
use rand::{Rng, SeedableRng};
use stacks::StackKind;
use stacks::ids::TenantId;

/// The deploy role's name in every tenant account.
const DEPLOY_ROLE: &str = "docproc-coordinator-deploy";
/// Regions the tenants are spread over.
const REGIONS: [&str; 3] = ["eu-west-1", "us-east-1", "eu-central-1"];

/// A rollout of N tenants on the fake AWS with slow CloudFormation.
#[derive(Debug, Parser)]
#[command(name = "bench-rollout")]
struct Args {
    /// Tenants.
    #[arg(long, default_value_t = 500)]
    tenants: usize,
    /// Tenants in the first wave (`canary`); the rest are `general`.
    #[arg(long, default_value_t = 50)]
    canary: usize,
    /// `max_concurrent` of both waves.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Shortest stack operation, ms.
    #[arg(long, default_value_t = 200)]
    min_op_ms: u64,
    /// Longest stack operation, ms.
    #[arg(long, default_value_t = 2000)]
    max_op_ms: u64,
    /// Seed for the operation durations.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// First delay between polls of a stack operation, ms.
    #[arg(long, default_value_t = 10)]
    poll_min_ms: u64,
    /// Largest delay between polls of a stack operation, ms.
    #[arg(long, default_value_t = 50)]
    poll_max_ms: u64,
    /// Roll out a previous release to the fleet first (not measured), in
    /// which each stack operation took its drawn time ± this percentage
    /// (uniform): the deployment history (`coordinator::history`) the
    /// measured rollout orders each wave by and polls each operation
    /// around, as the onboarding or the last release leaves it. The
    /// measured rollout then updates every stack. Without it nothing is
    /// deployed before and there is no history: a fleet's very first
    /// deployment, creating every stack, in manifest order.
    #[arg(long, value_name = "PERCENT")]
    history_noise: Option<u32>,
    /// Run no rollout: print the zero-overhead schedules of this many
    /// draws of operation times (seeds 1..=N), in manifest order (what any
    /// scheduler that does not know the times can expect) and longest
    /// first, against the bound and the formula.
    #[arg(long, value_name = "N")]
    trials: Option<u64>,
}

// ----- /proc -----

// ----- setup -----

fn manifest_text(args: &Args) -> String {
    let mut text = format!(
        "[coordinator]\naccount_id = \"111111111111\"\nregion = \"us-east-1\"\nstate = \"coordinator.db\"\n\n\
         [release]\nversion = \"{}\"\n\n[rollout]\nwaves = [\"canary\", \"general\"]\n\
         max_concurrent = {}\nbake_time = \"0s\"\nhealth_gate = false\n",
        stacks::RELEASE_VERSION,
        args.concurrency,
    );
    for i in 1..=args.tenants {
        let wave = if i <= args.canary {
            "canary"
        } else {
            "general"
        };
        text.push_str(&format!(
            "\n[[tenants]]\nid = \"t{i:05}\"\naccount_id = \"{:012}\"\nregion = \"{}\"\n\
             external_id = \"bench-external-id-{i:05}-0123456789abcdef\"\nwave = \"{wave}\"\n\
             capabilities = [\"dedicated_aws\"]\n",
            300_000_000_000u64 + i as u64,
            REGIONS[i % REGIONS.len()],
        ));
    }
    text
}

/// No heartbeat states: the gate is off.
struct NoHealth;

impl HealthSource for NoHealth {
    fn states(&self) -> Vec<(TenantId, Health)> {
        Vec::new()
    }
}

// ----- ideals -----

/// Per wave: the lower bound, the zero-overhead makespan of the rollout's
/// schedule, and the issue's formula.
struct Ideal {
    bound: f64,
    /// In the order the rollout starts tenants.
    schedule: f64,
    /// In manifest order.
    manifest: f64,
    /// The same greedy schedule with the longest tenants first: what an
    /// oracle of operation times could reach by ordering.
    longest_first: f64,
    formula: f64,
}

/// Makespan of starting `times` in order, each on the slot that frees
/// first.
fn greedy(times: impl IntoIterator<Item = f64>, concurrency: usize) -> f64 {
    let mut slots = vec![0.0f64; concurrency.max(1)];
    for t in times {
        let (i, _) = slots
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .expect("a slot");
        slots[i] += t;
    }
    slots.iter().copied().fold(0.0, f64::max)
}

/// `tenant_times` in manifest order, `ordered` in the rollout's order.
fn ideal(tenant_times: &[f64], ordered: &[f64], ops: &[f64], concurrency: usize) -> Ideal {
    let sum: f64 = tenant_times.iter().sum();
    let longest = tenant_times.iter().copied().fold(0.0, f64::max);
    let mut sorted = tenant_times.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let mean_op = ops.iter().sum::<f64>() / ops.len().max(1) as f64;
    Ideal {
        bound: (sum / concurrency as f64).max(longest),
        schedule: greedy(ordered.iter().copied(), concurrency),
        manifest: greedy(tenant_times.iter().copied(), concurrency),
        longest_first: greedy(sorted, concurrency),
        formula: tenant_times.len() as f64 / concurrency as f64 * mean_op * 2.0,
    }
}

/// The built-in release with the storage and worker templates' descriptions
/// changed, as version `2026.10.0`: rolling the built-in release out over
/// it updates both stacks of every tenant.
fn previous_release() -> anyhow::Result<stacks::Release> {
    let sources: Vec<(&'static str, &'static str)> = stacks::Release::builtin_sources()
        .iter()
        .map(|&(name, text)| {
            if name != "storage.json" && name != "worker.json" {
                return (name, text);
            }
            let changed = text.replacen("\"Description\": \"", "\"Description\": \"(previous) ", 1);
            let leaked: &'static str = Box::leak(changed.into_boxed_str());
            (name, leaked)
        })
        .collect();
    stacks::Release::from_sources("2026.10.0".parse()?, &sources)
        .map_err(|e| anyhow::anyhow!("previous release: {e}"))
}

/// Sets every stack's operation duration in the fake: `drawn` times
/// `factor(…)` (one call per stack, in manifest order).
fn set_durations(
    fake: &FakeCloud,
    manifest: &manifest::Manifest,
    drawn: &[(TenantId, String, f64, f64)],
    mut factor: impl FnMut() -> f64,
) {
    for (t, d) in manifest.tenants.iter().zip(drawn) {
        for (kind, secs) in [(StackKind::Storage, d.2), (StackKind::Worker, d.3)] {
            fake.set_stack_operation_duration(
                &t.account_id,
                t.region,
                kind.stack_name(),
                Duration::from_secs_f64(secs * factor()),
            );
        }
    }
}

/// Per draw (seeds `1..=trials`): Σ over waves of the manifest-order and
/// longest-first schedules, the bound and the formula; prints their ratios.
fn order_blind(args: &Args, trials: u64) {
    let canary = args.canary;
    let mut ratios: Vec<(f64, f64, f64)> = Vec::new();
    for seed in 1..=trials {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let ops: Vec<(f64, f64)> = (0..args.tenants)
            .map(|_| {
                let mut op = || rng.random_range(args.min_op_ms..=args.max_op_ms) as f64 / 1000.0;
                (op(), op())
            })
            .collect();
        let (mut manifest, mut lpt, mut bound, mut formula) = (0.0, 0.0, 0.0, 0.0);
        for wave in [&ops[..canary], &ops[canary..]] {
            let times: Vec<f64> = wave.iter().map(|(a, b)| a + b).collect();
            let flat: Vec<f64> = wave.iter().flat_map(|(a, b)| [*a, *b]).collect();
            let i = ideal(&times, &times, &flat, args.concurrency);
            manifest += i.manifest;
            lpt += i.longest_first;
            bound += i.bound;
            formula += i.formula;
        }
        ratios.push((manifest / bound, manifest / formula, lpt / bound));
    }
    let stats = |f: fn(&(f64, f64, f64)) -> f64| {
        let mut v: Vec<f64> = ratios.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        (v[0], v[v.len() / 2], v[v.len() - 1])
    };
    println!(
        "zero-overhead schedules over {trials} draws ({} tenants: {} canary + {} general, concurrency {}, operations {}..={} ms), min / median / max:",
        args.tenants,
        canary,
        args.tenants - canary,
        args.concurrency,
        args.min_op_ms,
        args.max_op_ms
    );
    for (what, (lo, mid, hi)) in [
        ("manifest order ÷ bound  ", stats(|r| r.0)),
        ("manifest order ÷ formula", stats(|r| r.1)),
        ("longest first ÷ bound   ", stats(|r| r.2)),
    ] {
        println!("  {what}  {lo:.3} / {mid:.3} / {hi:.3}");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(trials) = args.trials {
        ensure!(
            trials > 0 && args.canary < args.tenants,
            "--trials needs N > 0 and --canary below --tenants"
        );
        order_blind(&args, trials);
        return Ok(());
    }
    ensure!(
        args.canary < args.tenants,
        "--canary must be below --tenants"
    );
    ensure!(args.min_op_ms <= args.max_op_ms, "empty duration range");
    let manifest = manifest::from_text(Path::new("deploy.toml"), manifest_text(&args))
        .map_err(|e| anyhow::anyhow!("bench manifest is invalid: {}", e.report.render()))?
        .manifest;

    let fake = FakeCloud::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    // Per tenant, in manifest order: (tenant, wave, storage s, worker s).
    let mut drawn: Vec<(TenantId, String, f64, f64)> = Vec::new();
    for t in &manifest.tenants {
        fake.add_role(&t.account_id, DEPLOY_ROLE, Trust::requiring(&t.external_id));
        let mut op = || rng.random_range(args.min_op_ms..=args.max_op_ms) as f64 / 1000.0;
        let storage = op();
        let worker = op();
        drawn.push((t.id.clone(), t.wave.to_string(), storage, worker));
    }
    let store = SqliteStore::in_memory().context("in-memory store")?;
    let operator = access::operator(&fake).await?;
    let stack_wait = WaitPolicy {
        min_delay: Duration::from_millis(args.poll_min_ms),
        max_delay: Duration::from_millis(args.poll_max_ms),
        deadline: Duration::from_secs(600),
    };
    let fleet = |release| Fleet {
        connector: &fake,
        store: &store,
        manifest: &manifest,
        release,
        operator: &operator,
        concurrency: 64,
        stack_wait,
        change_set_wait: stack_wait,
    };
    let previous = previous_release()?;
    let expected = match args.history_noise {
        Some(noise) => {
            let n = f64::from(noise) / 100.0;
            let mut noise_rng = rand::rngs::StdRng::seed_from_u64(args.seed.wrapping_add(1));
            set_durations(&fake, &manifest, &drawn, || {
                1.0 + noise_rng.random_range(-n..=n)
            });
            let started = Instant::now();
            let report = Runner {
                fleet: fleet(&previous),
                health: &NoHealth,
                poll_interval: Duration::from_secs(5),
                lease_ttl: Duration::from_secs(60),
                holder: coordinator::rollout::run::holder_name("bench"),
                on_event: &|_| {},
                progress: &|_| {},
            }
            .start()
            .await
            .context("previous rollout")?;
            ensure!(
                report.verdict == "succeeded",
                "previous rollout {}",
                report.verdict
            );
            println!(
                "previous release {} rolled out (not measured) in {:.2} s",
                previous.version(),
                started.elapsed().as_secs_f64()
            );
            fake.clear_calls();
            fake.reset_max_concurrent_operations();
            coordinator::history::fleet(&store, manifest.tenants.len()).await?
        }
        None => BTreeMap::new(),
    };
    set_durations(&fake, &manifest, &drawn, || 1.0);
    let events: Mutex<Vec<(Instant, String, Option<String>)>> = Mutex::new(Vec::new());
    // RSS and peak RSS when the first wave starts (after planning).
    let planned_rss: Mutex<Option<(u64, u64)>> = Mutex::new(None);
    let on_event = |e: &RolloutEvent| {
        if e.event.kind == "wave_started" {
            planned_rss
                .lock()
                .unwrap()
                .get_or_insert_with(|| (status_kib("VmRSS"), status_kib("VmHWM")));
        }
        events
            .lock()
            .unwrap()
            .push((Instant::now(), e.event.kind.clone(), e.event.wave.clone()));
    };
    let runner = Runner {
        fleet: fleet(stacks::Release::builtin()),
        health: &NoHealth,
        poll_interval: Duration::from_secs(5),
        lease_ttl: Duration::from_secs(60),
        holder: coordinator::rollout::run::holder_name("bench"),
        on_event: &on_event,
        progress: &|_| {},
    };

    println!(
        "bench-rollout: {} tenants ({} canary + {} general), concurrency {}, operations {}..={} ms (seed {}), stack polls {}..{} ms",
        args.tenants,
        args.canary,
        args.tenants - args.canary,
        args.concurrency,
        args.min_op_ms,
        args.max_op_ms,
        args.seed,
        args.poll_min_ms,
        args.poll_max_ms,
    );
    let peak_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let rss_before = status_kib("VmRSS");
    let cpu0 = cpu_time("self");
    let started = Instant::now();
    let report = runner.start().await.context("rollout")?;
    let wall = started.elapsed();
    let cpu = cpu_time("self") - cpu0;
    let peak = status_kib("VmHWM");
    ensure!(
        report.verdict == "succeeded",
        "rollout {}: {:?}",
        report.verdict,
        report.halt
    );
    let ok = report
        .tenants
        .iter()
        .filter(|t| t.outcome == "succeeded")
        .count();
    ensure!(
        ok == args.tenants,
        "{ok} of {} tenants succeeded",
        args.tenants
    );
    let max_ops = fake.max_concurrent_operations();
    let calls = fake.calls();
    let describes = calls
        .iter()
        .filter(|c| c.operation == "DescribeStacks")
        .count();
    let rss_end = status_kib("VmRSS");

    // Per wave: drawn times, ideals, measured window, and measured tenant
    // durations (the rollout's own `duration_ms`).
    let events = events.into_inner().unwrap();
    let mut measured_ms: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for t in &report.tenants {
        measured_ms
            .entry(t.wave.to_string())
            .or_default()
            .push(t.duration_ms.unwrap_or(0) as f64 / 1000.0);
    }
    let (mut bound, mut schedule, mut formula, mut windows) = (0.0, 0.0, 0.0, 0.0);
    let (mut longest_first, mut manifest_order) = (0.0, 0.0);
    println!();
    println!(
        "{:<8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>12} {:>12}",
        "wave", "tenants", "bound s", "sched s", "formula s", "window s", "tenant s", "overhead s"
    );
    for wave in ["canary", "general"] {
        let rows: Vec<&(TenantId, String, f64, f64)> =
            drawn.iter().filter(|d| d.1 == wave).collect();
        let times: Vec<f64> = rows.iter().map(|d| d.2 + d.3).collect();
        let ops: Vec<f64> = rows.iter().flat_map(|d| [d.2, d.3]).collect();
        let ids: Vec<TenantId> = rows.iter().map(|d| d.0.clone()).collect();
        let time_of: BTreeMap<&TenantId, f64> = rows.iter().map(|d| (&d.0, d.2 + d.3)).collect();
        let ordered: Vec<f64> = order::longest_first(&ids, &expected)
            .iter()
            .map(|t| time_of[t])
            .collect();
        let i = ideal(&times, &ordered, &ops, args.concurrency);
        let start = events
            .iter()
            .find(|e| e.1 == "wave_started" && e.2.as_deref() == Some(wave))
            .map(|e| e.0);
        let end = events
            .iter()
            .filter(|e| {
                (e.1 == "tenant_succeeded" || e.1 == "tenant_failed")
                    && e.2.as_deref() == Some(wave)
            })
            .map(|e| e.0)
            .max();
        let window = match (start, end) {
            (Some(s), Some(e)) => (e - s).as_secs_f64(),
            _ => f64::NAN,
        };
        let measured = measured_ms.get(wave).cloned().unwrap_or_default();
        let mean_measured = measured.iter().sum::<f64>() / measured.len().max(1) as f64;
        let mean_drawn = times.iter().sum::<f64>() / times.len().max(1) as f64;
        println!(
            "{wave:<8} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>12.3} {:>12.3}",
            times.len(),
            i.bound,
            i.schedule,
            i.formula,
            window,
            mean_measured,
            mean_measured - mean_drawn,
        );
        bound += i.bound;
        schedule += i.schedule;
        longest_first += i.longest_first;
        manifest_order += i.manifest;
        formula += i.formula;
        windows += window;
    }
    let all_ops: Vec<f64> = drawn.iter().flat_map(|d| [d.2, d.3]).collect();
    let mean_op = all_ops.iter().sum::<f64>() / all_ops.len() as f64;
    let w = wall.as_secs_f64();
    println!(
        "(tenant s: mean measured tenant deployment; overhead s: that minus the drawn storage + worker time)"
    );
    println!();
    println!("mean operation      {mean_op:.3} s");
    println!("ideal (bound)       {bound:.2} s");
    println!(
        "ideal (schedule)    {schedule:.2} s (the rollout's order: {})",
        if expected.is_empty() {
            "manifest, no history"
        } else {
            "longest expected first"
        }
    );
    println!("ideal (manifest)    {manifest_order:.2} s (the same schedule in manifest order)");
    println!(
        "ideal (longest 1st) {longest_first:.2} s (an oracle ordering each wave by tenant time)"
    );
    println!("ideal (formula)     {formula:.2} s");
    println!("wave windows        {windows:.2} s");
    println!("wall (start())      {w:.2} s");
    println!(
        "wall / ideal        {:.3} (bound)   {:.3} (schedule)   {:.3} (formula)",
        w / bound,
        w / schedule,
        w / formula
    );
    println!(
        "outside waves       {:.2} s (planning, store, lease)",
        w - windows
    );
    println!(
        "CPU                 {:.2} s user+sys ({:.1}% of one core)",
        cpu.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / w
    );
    println!(
        "RSS                 {} before, peak {}{}",
        mib(rss_before),
        mib(peak),
        if peak_reset {
            ""
        } else {
            " (VmHWM not reset: peak since process start)"
        }
    );
    if let Some((rss, hwm)) = *planned_rss.lock().unwrap() {
        println!(
            "RSS after planning  {} (peak so far {}); at the end {}",
            mib(rss),
            mib(hwm),
            mib(rss_end)
        );
    }
    println!(
        "fake call log       {} calls, {describes} DescribeStacks ({:.1} per tenant)",
        calls.len(),
        describes as f64 / args.tenants as f64
    );
    let mut by_operation: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &calls {
        *by_operation.entry(c.operation).or_default() += 1;
    }
    let by_operation: Vec<String> = by_operation
        .iter()
        .map(|(op, n)| format!("{op} {n}"))
        .collect();
    println!("                    {}", by_operation.join(", "));
    println!("max concurrent ops  {max_ops} (limit {})", args.concurrency);
    println!(
        "target (≤ 1.10 × bound): {}",
        if w <= 1.10 * bound { "met" } else { "NOT met" }
    );
    ensure!(
        max_ops <= args.concurrency,
        "{max_ops} concurrent operations exceed max_concurrent {}",
        args.concurrency
    );
    Ok(())
}
