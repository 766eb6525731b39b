//! `coordinator check`: runs the probes now, for one tenant or every
//! tenant, records the outcomes (they feed the admin surface and the
//! fail-closed resolution) and prints them. Exits 1 when any probe fails.

use std::sync::Arc;

use serde_json::json;
use stacks::ids::TenantId;

use super::context::{ConnectorOverride, context};
use super::render::select_tenants;
use super::{Cli, CmdResult, Failure, OutputFormat};
use crate::probes::runner::Checker;
use crate::probes::{ProbeName, ProbeStatus};

/// Flags of `check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this tenant (default: every tenant).
    #[arg(long, value_name = "ID")]
    pub tenant: Option<TenantId>,
    /// Only this probe: storage, llm, heartbeat or queues.
    #[arg(long, value_name = "NAME")]
    pub probe: Option<ProbeName>,
    /// Tenants checked at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
}

pub async fn run(cli: &Cli, args: &Args, connector: ConnectorOverride) -> CmdResult {
    let ctx = context(cli, args.tenant.as_ref(), connector).await?;
    let heartbeats = ctx
        .store
        .heartbeats()
        .await
        .map_err(|e| Failure::Failed(e.into()))?;
    let manifest = Arc::new(ctx.manifest.clone());
    let checker = Checker::standard(
        manifest.clone(),
        ctx.store.clone(),
        ctx.connector.clone(),
        ctx.operator.clone(),
        heartbeats,
    )
    .map_err(|e| Failure::Failed(anyhow::anyhow!("{e}")))?;
    let tenants = select_tenants(&manifest, args.tenant.as_ref())?;
    // In manifest order (check_many keeps its input's order).
    let results = checker
        .check_many(&tenants, args.probe, args.concurrency)
        .await;
    let mut failing = 0;
    let mut rows = Vec::new();
    for (tenant, result) in results {
        let stored = result.map_err(|e| Failure::Failed(e.into()))?;
        for s in stored {
            if s.outcome.status == ProbeStatus::Failing {
                failing += 1;
            }
            rows.push((tenant.clone(), s));
        }
    }
    match cli.output {
        OutputFormat::Json => println!(
            "{}",
            json!({
                "failing": failing,
                "outcomes": rows.iter().map(|(_, s)| json!({
                    "tenant": s.outcome.tenant,
                    "probe": s.outcome.probe,
                    "status": s.outcome.status,
                    "at": s.outcome.at,
                    "latency_ms": s.outcome.latency_ms,
                    "error": s.outcome.error,
                    "detail": s.outcome.detail,
                    "last_passed_at": s.last_passed_at,
                })).collect::<Vec<_>>(),
            })
        ),
        OutputFormat::Human => {
            for (tenant, s) in &rows {
                let o = &s.outcome;
                let status = match o.status {
                    ProbeStatus::Passing => "ok  ",
                    ProbeStatus::Failing => "FAIL",
                    ProbeStatus::NotApplicable => "n/a ",
                };
                println!(
                    "{status} {tenant:<16} {:<9} {:>6} ms  {}",
                    o.probe.as_str(),
                    o.latency_ms,
                    o.detail.as_deref().unwrap_or_default()
                );
                if let Some(e) = &o.error {
                    println!("     {}: {}", e.code, e.message);
                    println!("     what to do: {}", e.remedy);
                }
            }
        }
    }
    if failing > 0 {
        return Err(Failure::Failed(anyhow::anyhow!(
            "{failing} probe(s) failing; each says what to do above"
        )));
    }
    Ok(())
}
