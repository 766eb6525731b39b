//! `coordinator rollout start|status|halt|resume`: a release wave by wave
//! under the `[rollout]` policy (see [`crate::rollout`] for the semantics).

mod live;

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use stacks::Release;

use super::context::{ConnectorOverride, context, open_store};
use super::{Cli, CmdResult, Failure, OutputFormat, load_manifest};
use crate::heartbeat::monitor::Monitor;
use crate::rollout::display::{Board, WavePlan, event_line};
use crate::rollout::report::{RolloutReport, report};
use crate::rollout::run::{RolloutError, Runner, holder_name};
use crate::store::RolloutEvent;
use live::Live;

/// `rollout` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RolloutCommand {
    /// Plan, show the waves and their policy, confirm, and roll the release
    /// out wave by wave: each wave's tenants at most max_concurrent at once,
    /// halting when a wave fails more tenants than failure_tolerance or a
    /// tenant is not Healthy during the bake time. Exits 1 when halted.
    Start(StartArgs),
    /// Show the latest rollout from the state file (no AWS calls).
    Status,
    /// Halt the running rollout: no new tenant is started; stack operations
    /// in flight finish and are recorded.
    Halt(HaltArgs),
    /// Continue a halted or crashed rollout; tenants that succeeded are not
    /// deployed again, and stack operations a stopped coordinator left in
    /// flight are waited for and recorded first. A killed coordinator's
    /// lease must have expired (its --lease-ttl); a coordinator that exited
    /// released it.
    Resume(ResumeArgs),
}

/// Flags of `rollout start`.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// The release to roll out; must be the manifest's (and this build's).
    #[arg(long, value_name = "VERSION")]
    pub release: Option<String>,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Flags of `rollout start` and `rollout resume`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Seconds between health polls during a bake.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub poll_interval: u64,
    /// Seconds the rollout lease lasts without renewal (it is renewed every
    /// third of that, and released when the run ends or on Ctrl-C). If this
    /// coordinator is killed, `rollout resume` can take over only once the
    /// lease has expired; a coordinator stalled for longer than this loses
    /// the rollout to whoever resumes it. From 10 to 3600.
    #[arg(long, value_name = "SECONDS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(MIN_LEASE_TTL_SECS..=MAX_LEASE_TTL_SECS))]
    pub lease_ttl: u64,
}

/// The shortest `--lease-ttl`: renewals every few seconds leave room for a
/// slow store, and a takeover is still quick.
pub const MIN_LEASE_TTL_SECS: u64 = 10;
/// The longest `--lease-ttl`: a killed coordinator blocks resumes this long.
pub const MAX_LEASE_TTL_SECS: u64 = 3600;

/// Flags of `rollout halt`.
#[derive(Debug, clap::Args)]
pub struct HaltArgs {
    /// Why (recorded in the audit log).
    #[arg(long, default_value = "halted by an operator")]
    pub reason: String,
}

/// Flags of `rollout resume`.
#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub run: RunArgs,
}

pub async fn run(cli: &Cli, command: &RolloutCommand, connector: ConnectorOverride) -> CmdResult {
    match command {
        RolloutCommand::Status => status(cli).await,
        RolloutCommand::Halt(args) => halt(cli, args, connector).await,
        RolloutCommand::Start(args) => drive(cli, Some(args), &args.run, connector).await,
        RolloutCommand::Resume(args) => drive(cli, None, &args.run, connector).await,
    }
}

fn failed(e: RolloutError) -> Failure {
    match e {
        RolloutError::AlreadyRunning(_) | RolloutError::Leased(_) | RolloutError::Nothing(_) => {
            Failure::BadInput(e.into())
        }
        e => Failure::Failed(e.into()),
    }
}

async fn status(cli: &Cli) -> CmdResult {
    let manifest = load_manifest(cli)?.manifest;
    let store = open_store(&manifest)?;
    let Some(latest) = store
        .latest_rollout()
        .await
        .map_err(|e| Failure::Failed(e.into()))?
    else {
        return Err(Failure::bad_input("no rollout has been started"));
    };
    let r = report(store.as_ref(), &manifest, latest.id, None)
        .await
        .map_err(failed)?;
    match cli.output {
        OutputFormat::Json => println!("{}", serde_json::json!({ "rollout": latest, "report": r })),
        OutputFormat::Human => {
            println!(
                "Rollout {} of release {} by {}: {}",
                latest.id, latest.release, latest.actor, latest.state
            );
            print!("{}", summary(&r));
        }
    }
    Ok(())
}

async fn halt(cli: &Cli, args: &HaltArgs, connector: ConnectorOverride) -> CmdResult {
    let ctx = context(cli, None, connector).await?;
    let r = crate::rollout::halt_rollout(ctx.store.as_ref(), ctx.operator.actor(), &args.reason)
        .await
        .map_err(failed)?;
    match cli.output {
        OutputFormat::Json => println!("{}", serde_json::json!({ "rollout": r })),
        OutputFormat::Human => println!(
            "Rollout {} halted: no new tenant will be started; operations in flight finish and are recorded.\nResume with `coordinator rollout resume`.",
            r.id
        ),
    }
    Ok(())
}

fn confirm(what: &str) -> Result<bool, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::bad_input(format!(
            "refusing to {what} without confirmation: stdin is not a terminal; pass --yes"
        )));
    }
    eprint!("{what}? Type 'yes' to continue: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::Failed(e.into()))?;
    Ok(answer.trim() == "yes")
}

async fn drive(
    cli: &Cli,
    start: Option<&StartArgs>,
    run: &RunArgs,
    connector: ConnectorOverride,
) -> CmdResult {
    let ctx = context(cli, None, connector).await?;
    let rolled_out = crate::rollout::engine::ROLLED_OUT;
    super::context::note_skipped(&ctx.manifest, None, rolled_out, "the rollout");
    let human = cli.output == OutputFormat::Human;
    if let Some(args) = start {
        if let Some(v) = &args.release
            && v != &ctx.manifest.release.to_string()
        {
            return Err(Failure::bad_input(format!(
                "--release {v} is not the manifest's release {}; set [release] version and use that release's coordinator",
                ctx.manifest.release
            )));
        }
        if human {
            eprint!("{}", waves_text(&ctx.manifest));
        }
        if !args.yes && !confirm(&format!("Roll out release {}", ctx.manifest.release))? {
            return Err(Failure::bad_input("rollout cancelled; nothing was changed"));
        }
        ctx.record_applied(None).await?;
    }
    let monitor = Monitor::new(
        ctx.connector.clone(),
        ctx.store.clone(),
        Arc::new(ctx.manifest.clone()),
        ctx.operator.clone(),
    )
    .await
    .map_err(|e| Failure::Failed(e.into()))?;
    let release = Release::builtin();
    let output = cli.output;
    let live = (human && live_terminal()).then(|| {
        let waves = WavePlan::of(&ctx.manifest);
        Live::new(Board::new(
            ctx.manifest.release.to_string(),
            waves,
            Utc::now(),
        ))
    });
    if let (Some(live), None) = (&live, start) {
        // Resuming: the display starts from the log so far.
        if let Ok(Some(r)) = ctx.store.latest_rollout().await {
            for e in ctx.store.rollout_events(r.id).await.unwrap_or_default() {
                live.event(&e);
            }
            live.seeded(r.id);
        }
    }
    let on_event = |e: &RolloutEvent| match (output, &live) {
        (OutputFormat::Json, _) => println!("{}", serde_json::json!({ "event": e })),
        (OutputFormat::Human, Some(live)) => live.event(e),
        (OutputFormat::Human, None) => eprintln!("{}", event_line(e)),
    };
    let progress = crate::deploy::print_progress();
    let quiet = |_: crate::apply::Progress<'_>| {};
    let to_live = |p: crate::apply::Progress<'_>| {
        if let Some(live) = &live {
            live.progress(p);
        }
    };
    let holder = holder_name(ctx.operator.actor());
    let mut fleet = ctx.fleet(release, None);
    fleet.stack_wait = crate::rollout::STACK_WAIT;
    let runner = Runner {
        fleet,
        health: &monitor,
        poll_interval: Duration::from_secs(run.poll_interval.max(1)),
        lease_ttl: Duration::from_secs(run.lease_ttl),
        holder: holder.clone(),
        on_event: &on_event,
        progress: match (human, &live) {
            (true, Some(_)) => &to_live,
            (true, None) => progress.as_ref(),
            (false, _) => &quiet,
        },
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let heartbeats = monitor.run(async {
        let _ = rx.await;
    });
    let finished = tokio::sync::Notify::new();
    let work = async {
        let r = if start.is_some() {
            runner.start().await
        } else {
            runner.resume().await
        };
        let _ = tx.send(());
        finished.notify_one();
        r
    };
    let display = async {
        if let Some(live) = &live {
            live.run(finished.notified()).await;
        }
    };
    let run = async { tokio::join!(work, heartbeats, display).0 };
    let result = tokio::select! {
        result = run => result,
        _ = tokio::signal::ctrl_c() => return interrupted(&ctx.store, &holder).await,
    };
    let r = result.map_err(failed)?;
    match cli.output {
        OutputFormat::Json => println!("{}", serde_json::json!({ "report": r })),
        OutputFormat::Human => print!("{}", summary(&r)),
    }
    match &r.halt {
        None => Ok(()),
        Some(h) => Err(Failure::Failed(anyhow::anyhow!(
            "rollout {} halted{}: {} (details above)",
            r.rollout,
            h.wave
                .as_deref()
                .map(|w| format!(" in wave `{w}`"))
                .unwrap_or_default(),
            h.reason
        ))),
    }
}

/// Ctrl-C: the run was dropped between two awaits (every transition is
/// whole); its lease is released so a resume need not wait for it.
async fn interrupted(store: &Arc<dyn crate::store::Store>, holder: &str) -> CmdResult {
    let released = store.release_rollout_lease(holder).await;
    eprintln!();
    Err(Failure::Failed(anyhow::anyhow!(
        "interrupted: the rollout is still running, and stack operations in flight continue in CloudFormation; {}; `coordinator rollout resume` reattaches to them",
        match released {
            Ok(()) => "the lease was released".to_owned(),
            Err(e) =>
                format!("the lease could not be released ({e}) and expires after --lease-ttl"),
        }
    )))
}

/// Whether to draw the live display: stdout is a terminal that is not
/// `TERM=dumb`.
fn live_terminal() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

fn waves_text(manifest: &crate::manifest::Manifest) -> String {
    use std::fmt::Write as _;
    let mut out = format!("Rollout plan for release {}:\n", manifest.release);
    for (wave, tenants) in crate::rollout::engine::waves(manifest) {
        let p = manifest.rollout.for_wave(&wave);
        let _ = writeln!(
            out,
            "  wave {wave}: {} tenant(s), max_concurrent {}, failure_tolerance {} ({} failure(s) tolerated), bake_time {}, health_gate {}",
            tenants.len(),
            p.max_concurrent,
            p.failure_tolerance,
            p.failure_tolerance.allowed(tenants.len()),
            p.bake_time,
            p.health_gate
        );
        let names: Vec<&str> = tenants.iter().map(|t| t.as_str()).collect();
        let _ = writeln!(out, "    {}", names.join(", "));
    }
    out
}

/// The end-of-rollout report for people.
pub fn summary(r: &RolloutReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "Rollout {} (release {}):", r.rollout, r.release);
    for t in &r.tenants {
        let took = t
            .duration_ms
            .map(|ms| format!(" ({:.1}s)", ms as f64 / 1000.0))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<12} {:<14} {:<12}{took} {}",
            t.wave.as_str(),
            t.tenant.as_str(),
            t.outcome,
            t.reason.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(out, "Verdict: {}", r.verdict);
    if let Some(h) = &r.halt {
        let _ = writeln!(out, "{h}");
    }
    out
}
