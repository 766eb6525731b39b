//! `coordinator heartbeat --once`: one ping per tenant (or only the one
//! named with `--tenant`, which must have `dedicated_aws`), wait for the
//! pongs, record and print each tenant's state.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use stacks::ids::{Capability, TenantId};

use super::context::{ConnectorOverride, context_requiring, note_skipped};
use super::{Cli, CmdResult, Failure, OutputFormat};
use crate::heartbeat::monitor::Monitor;
use crate::manifest::duration::HumanDuration;

/// Flags of `heartbeat`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run one round and exit (the loop runs inside `coordinator serve`).
    #[arg(long, required = true)]
    pub once: bool,
    /// How long to wait for pongs (default: the heartbeat interval).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<HumanDuration>,
    /// Only this tenant (it must have the dedicated_aws capability).
    #[arg(long, value_name = "ID")]
    pub tenant: Option<TenantId>,
}

pub async fn run(cli: &Cli, args: &Args, connector: ConnectorOverride) -> CmdResult {
    let needs = (Capability::DedicatedAws, "heartbeat");
    let ctx = context_requiring(cli, args.tenant.as_ref(), Some(needs), connector).await?;
    note_skipped(&ctx.manifest, args.tenant.as_ref(), needs.0, needs.1);
    let timeout = args
        .timeout
        .map_or(ctx.manifest.heartbeat.interval.get(), HumanDuration::get);
    if timeout < Duration::from_millis(100) {
        return Err(Failure::bad_input("--timeout must be at least 100ms"));
    }
    let mut manifest = ctx.manifest.clone();
    if let Some(only) = &args.tenant {
        manifest.tenants.retain(|t| &t.id == only);
    }
    let monitor = Monitor::new(
        ctx.connector.clone(),
        ctx.store.clone(),
        Arc::new(manifest),
        ctx.operator.clone(),
    )
    .await
    .map_err(|e| Failure::Failed(e.into()))?;
    monitor.once(timeout).await;
    let statuses = monitor.snapshot();
    match cli.output {
        OutputFormat::Json => println!(
            "{}",
            json!({ "tenants": statuses, "counters": monitor.counters.values() })
        ),
        OutputFormat::Human => {
            for s in &statuses {
                println!(
                    "{:<12} {:<13} {}",
                    s.tenant,
                    s.health.state.as_str(),
                    s.health.reason
                );
            }
            let c = monitor.counters.values();
            println!(
                "{} ping(s) sent, {} pong(s) received, {} unmatched, {} malformed, {} error(s)",
                c.pings_sent, c.pongs_received, c.pongs_unmatched, c.malformed, c.errors
            );
        }
    }
    let alive = statuses
        .iter()
        .filter(|s| s.health.state.is_alive())
        .count();
    if alive == statuses.len() {
        Ok(())
    } else {
        let down: Vec<String> = statuses
            .iter()
            .filter(|s| !s.health.state.is_alive())
            .map(|s| format!("{} ({})", s.tenant, s.health.state.as_str()))
            .collect();
        Err(Failure::Failed(anyhow::anyhow!(
            "{} tenant(s) not healthy: {}",
            down.len(),
            down.join(", ")
        )))
    }
}
