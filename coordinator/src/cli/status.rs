//! `coordinator status`: what the coordinator last recorded for each tenant,
//! from the state file only (no AWS calls).

use std::collections::BTreeMap;

use serde_json::json;
use stacks::StackKind;

use super::context::open_store;
use super::{Cli, CmdResult, Failure, OutputFormat, load_manifest};

/// Flags of `status`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(cli: &Cli, _args: &Args) -> CmdResult {
    let manifest = load_manifest(cli)?.manifest;
    let store = open_store(&manifest)?;
    let states = store
        .stack_states()
        .await
        .map_err(|e| Failure::Failed(e.into()))?;
    let mut by_tenant: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for s in states {
        by_tenant.entry(s.tenant.to_string()).or_default().push(s);
    }
    let mut tenants = Vec::new();
    for t in &manifest.tenants {
        let states = by_tenant.remove(t.id.as_str()).unwrap_or_default();
        let mut outputs = BTreeMap::new();
        for kind in t.deployed_stacks() {
            if let Some(o) = store
                .outputs(&t.id, *kind)
                .await
                .map_err(|e| Failure::Failed(e.into()))?
            {
                outputs.insert(*kind, o.outputs);
            }
        }
        let stacks: Vec<_> = t
            .deployed_stacks()
            .iter()
            .map(|kind: &StackKind| {
                let s = states.iter().find(|s| s.stack == *kind);
                json!({
                    "outputs": outputs.get(kind),
                    "stack": kind,
                    "status": s.and_then(|s| s.status.clone()),
                    "release": s.and_then(|s| s.release.clone()),
                    "last_outcome": s.and_then(|s| s.last_outcome.clone()),
                    "last_error": s.and_then(|s| s.last_reason.clone()),
                    "updated_at": s.map(|s| s.updated_at),
                })
            })
            .collect();
        let releases: Vec<String> = states.iter().filter_map(|s| s.release.clone()).collect();
        let release = if !releases.is_empty() && releases.iter().all(|r| r == &releases[0]) {
            Some(releases[0].clone())
        } else {
            None
        };
        let last_error = states.iter().filter_map(|s| s.last_reason.clone()).next();
        tenants.push(json!({
            "tenant": t.id,
            "hosted": t.deployed_stacks().is_empty(),
            "release": release,
            "stacks": stacks,
            "last_error": last_error,
        }));
    }
    match cli.output {
        OutputFormat::Json => println!(
            "{}",
            json!({ "desired_release": manifest.release, "tenants": tenants })
        ),
        OutputFormat::Human => {
            println!("desired release {}", manifest.release);
            for t in &tenants {
                if t["hosted"] == true {
                    println!(
                        "{:<12} hosted default",
                        t["tenant"].as_str().unwrap_or_default()
                    );
                    continue;
                }
                println!(
                    "{:<12} release {}",
                    t["tenant"].as_str().unwrap_or_default(),
                    t["release"].as_str().unwrap_or("(not deployed)")
                );
                for s in t["stacks"].as_array().into_iter().flatten() {
                    println!(
                        "    {:<8} {:<26} last: {}{}",
                        s["stack"].as_str().unwrap_or_default(),
                        s["status"].as_str().unwrap_or("never deployed"),
                        s["last_outcome"].as_str().unwrap_or("-"),
                        s["last_error"]
                            .as_str()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(())
}
