//! `coordinator heartbeat --once`: one ping per tenant, wait for the pongs,
//! record and print each tenant's state.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::context::{ConnectorOverride, context};
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
}

pub async fn run(cli: &Cli, args: &Args, connector: ConnectorOverride) -> CmdResult {
    let ctx = context(cli, None, connector).await?;
    let timeout = args
        .timeout
        .map_or(ctx.manifest.heartbeat.interval.get(), HumanDuration::get);
    if timeout < Duration::from_millis(100) {
        return Err(Failure::bad_input("--timeout must be at least 100ms"));
    }
    let monitor = Monitor::new(
        ctx.connector.clone(),
        ctx.store.clone(),
        Arc::new(ctx.manifest.clone()),
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
