//! `coordinator plan`: observe, preview and plan without changing anything
//! (preview change sets are deleted again). The plan is recorded with a
//! generation so a later deploy can be compared with it.

use stacks::Release;
use stacks::ids::{Capability, TenantId};

use super::context::{ConnectorOverride, context_requiring, note_skipped, plan_recorded};
use super::{Cli, CmdResult, OutputFormat};
use crate::plan::{PlanOptions, render};

/// Flags of `plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this tenant.
    #[arg(long, value_name = "ID")]
    pub tenant: Option<TenantId>,
    /// Accept updates that replace or remove buckets, keys, queues or secrets.
    #[arg(long)]
    pub allow_replace: bool,
    /// Tenants handled at once.
    #[arg(long, value_name = "N", default_value_t = crate::deploy::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
}

pub async fn run(cli: &Cli, args: &Args, connector: ConnectorOverride) -> CmdResult {
    let needs = (Capability::DedicatedAws, "plan");
    let ctx = context_requiring(cli, args.tenant.as_ref(), Some(needs), connector).await?;
    note_skipped(&ctx.manifest, args.tenant.as_ref(), needs.0, needs.1);
    let release = Release::builtin();
    let fleet = ctx.fleet(release, Some(args.concurrency));
    let options = PlanOptions {
        allow_replace: args.allow_replace,
    };
    let (planned, plan) = plan_recorded(&fleet, args.tenant.as_ref(), options).await?;
    match cli.output {
        OutputFormat::Json => println!("{}", serde_json::to_string(&plan).unwrap_or_default()),
        OutputFormat::Human => {
            let header = format!(
                "Plan generation {}{} for release {} (by {})",
                plan.generation,
                plan.parent
                    .map(|p| format!(" (parent {p})"))
                    .unwrap_or_default(),
                plan.release,
                ctx.operator.actor()
            );
            print!("{}", render::human(&planned.draft, &ctx.manifest, &header));
        }
    }
    Ok(())
}
