//! `coordinator deploy`: plan, show the plan, confirm, apply each item once,
//! report per tenant.

use std::io::{BufRead, IsTerminal, Write};

use stacks::Release;
use stacks::ids::{Capability, TenantId};

use super::context::{ConnectorOverride, context_requiring, note_skipped, plan_recorded};
use super::{Cli, CmdResult, Failure, OutputFormat};
use crate::deploy::{DeployReport, print_progress};
use crate::plan::{PlanOptions, render};

/// Flags of `deploy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this tenant.
    #[arg(long, value_name = "ID")]
    pub tenant: Option<TenantId>,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Accept updates that replace or remove buckets, keys, queues or secrets.
    #[arg(long)]
    pub allow_replace: bool,
    /// Tenants deployed at once.
    #[arg(long, value_name = "N", default_value_t = crate::deploy::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
}

fn confirm(changes: usize) -> Result<bool, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::bad_input(
            "refusing to deploy without confirmation: stdin is not a terminal; review `coordinator plan` and pass --yes",
        ));
    }
    eprint!("Apply {changes} change(s)? Type 'yes' to continue: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::Failed(e.into()))?;
    Ok(answer.trim() == "yes")
}

pub async fn run(cli: &Cli, args: &Args, connector: ConnectorOverride) -> CmdResult {
    let needs = (Capability::DedicatedAws, "deploy");
    let ctx = context_requiring(cli, args.tenant.as_ref(), Some(needs), connector).await?;
    note_skipped(&ctx.manifest, args.tenant.as_ref(), needs.0, needs.1);
    let release = Release::builtin();
    let fleet = ctx.fleet(release, Some(args.concurrency));
    let options = PlanOptions {
        allow_replace: args.allow_replace,
    };
    let (planned, plan) = plan_recorded(&fleet, args.tenant.as_ref(), options).await?;
    let changes = plan
        .tenants
        .iter()
        .flat_map(|t| &t.items)
        .filter(|i| i.is_change())
        .count();
    let human = cli.output == OutputFormat::Human;
    if human {
        let header = format!(
            "Plan generation {} for release {}",
            plan.generation, plan.release
        );
        eprint!("{}", render::human(&planned.draft, &ctx.manifest, &header));
    }
    if changes > 0 && !args.yes && !confirm(changes)? {
        return Err(Failure::bad_input("deploy cancelled; nothing was changed"));
    }
    ctx.record_applied(args.tenant.as_ref()).await?;
    let progress = print_progress();
    let quiet = |_: crate::apply::Progress<'_>| {};
    let report = if human {
        fleet.apply(&plan, &planned, progress.as_ref()).await
    } else {
        fleet.apply(&plan, &planned, &quiet).await
    };
    match cli.output {
        OutputFormat::Json => println!("{}", serde_json::json!({ "plan": plan, "report": report })),
        OutputFormat::Human => print!("{}", summary(&report)),
    }
    let failed = report.failed();
    if failed.is_empty() {
        Ok(())
    } else {
        let names: Vec<String> = failed.iter().map(|t| t.tenant.to_string()).collect();
        Err(Failure::Failed(anyhow::anyhow!(
            "{} tenant(s) not as planned: {}",
            failed.len(),
            names.join(", ")
        )))
    }
}

/// The end-of-deploy summary for people.
pub fn summary(report: &DeployReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Deploy of generation {} (release {}):",
        report.generation, report.release
    );
    for t in &report.tenants {
        let mark = if t.ok() { "ok    " } else { "FAILED" };
        let _ = writeln!(out, "  {mark} {}", t.tenant);
        for item in &t.items {
            let took = item
                .duration_ms
                .map(|ms| format!(" ({:.1}s)", ms as f64 / 1000.0))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "           {:<8} {}{took}",
                item.stack.as_str(),
                item.describe()
            );
        }
    }
    let failed = report.failed();
    let _ = writeln!(
        out,
        "{} tenant(s) ok, {} failed.",
        report.tenants.len() - failed.len(),
        failed.len()
    );
    out
}
