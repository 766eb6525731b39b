//! `coordinator serve`: the heartbeat loop and the status service, until
//! SIGTERM or Ctrl-C, then a graceful shutdown (in-flight requests finish,
//! the heartbeat loop stops between rounds).

use std::net::SocketAddr;
use std::sync::Arc;

use stacks::ids::Capability;

use super::context::{ConnectorOverride, context, note_skipped};
use super::{Cli, CmdResult, Failure};
use crate::api::{self, AppState, auth::Tokens};
use crate::heartbeat::monitor::Monitor;
use crate::manifest::duration::HumanDuration;
use crate::probes::runner::Checker;

/// Flags of `serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (default: `[api] listen`, else 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// How often the probes check every tenant's own bucket, LLM key,
    /// heartbeat and queues. A customer-managed dependency whose last pass
    /// is older than 15 minutes is refused, so keep this well below that.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub probe_interval: HumanDuration,
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
}

pub async fn run(cli: &Cli, args: &Args, connector: ConnectorOverride) -> CmdResult {
    let ctx = context(cli, None, connector).await?;
    note_skipped(
        &ctx.manifest,
        None,
        Capability::DedicatedAws,
        "the heartbeat loop",
    );
    if ctx.manifest.api.tokens.is_empty() {
        return Err(Failure::bad_input(
            "no [[api.tokens]] in the manifest, so nobody could read the status: create one with `coordinator token new --subject NAME --role viewer` and add the lines it prints",
        ));
    }
    let listen: SocketAddr = match args.listen {
        Some(a) => a,
        None => ctx.manifest.api.listen.parse().map_err(|e| {
            Failure::bad_input(format!(
                "[api] listen = {:?} is not an address: {e}",
                ctx.manifest.api.listen
            ))
        })?,
    };
    ctx.record_applied(None).await?;
    let manifest = Arc::new(ctx.manifest.clone());
    let monitor = Arc::new(
        Monitor::new(
            ctx.connector.clone(),
            ctx.store.clone(),
            manifest.clone(),
            ctx.operator.clone(),
        )
        .await
        .map_err(|e| Failure::Failed(e.into()))?,
    );
    let state = AppState {
        manifest: manifest.clone(),
        store: ctx.store.clone(),
        monitor: monitor.clone(),
        tokens: Tokens::new(manifest.api.tokens.clone()),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let heartbeat = {
        let monitor = monitor.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            monitor
                .run(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        })
    };
    let checker = Checker::standard(
        manifest.clone(),
        ctx.store.clone(),
        ctx.connector.clone(),
        ctx.operator.clone(),
        [],
    )
    .map_err(|e| Failure::Failed(anyhow::anyhow!("{e}")))?;
    let probes = tokio::spawn(probe_loop(
        checker,
        monitor.clone(),
        args.probe_interval.get(),
        stop_rx.clone(),
    ));
    let mut stop_server = stop_rx.clone();
    let interval = manifest.heartbeat.interval;
    let server = tokio::spawn(api::serve(
        state,
        listen,
        move |addr| {
            println!("coordinator serving on http://{addr} (heartbeat every {interval})");
            println!(
                "dashboard: http://{addr}/login?token=<viewer token>   API: http://{addr}/api/v1/fleet"
            );
        },
        async move {
            let _ = stop_server.wait_for(|s| *s).await;
        },
    ));
    tokio::select! {
        _ = shutdown_signal() => {
            eprintln!("shutting down");
        }
        result = server => {
            let _ = stop_tx.send(true);
            let _ = heartbeat.await;
            let _ = probes.await;
            return match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(Failure::Failed(anyhow::Error::new(e).context(format!("cannot serve on {listen}")))),
                Err(e) => Err(Failure::Failed(e.into())),
            };
        }
    }
    let _ = stop_tx.send(true);
    let _ = heartbeat.await;
    let _ = probes.await;
    Ok(())
}

/// Runs every tenant's probes each `interval` (the first round right away,
/// after the first heartbeat round has had a chance to run), with the
/// monitor's current heartbeat states, until `stop`.
async fn probe_loop(
    checker: Checker,
    monitor: Arc<Monitor>,
    interval: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let first = monitor.interval().min(interval);
    let mut wait = first;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        wait = interval;
        let heartbeats = monitor.snapshot().into_iter().map(|s| (s.tenant, s.health));
        let checker = checker.clone().with_heartbeats(heartbeats);
        let tenants: Vec<_> = checker.manifest.tenants.iter().collect();
        for (tenant, result) in checker.check_many(&tenants, None, 8).await {
            if let Err(e) = result {
                tracing::error!(%tenant, error = %e, "probes could not run");
            }
        }
    }
}
