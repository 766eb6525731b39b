//! `coordinator secret rewrap`: after `master_key` changed in deploy.toml,
//! re-wraps the hosted store's data keys from the old master key to the one
//! deploy.toml names now (`crate::secrets::rewrap`). Without `--yes` it only
//! shows what it would do.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;
use stacks::ids::TenantId;

use super::super::context::{ConnectorOverride, context};
use super::super::{Cli, CmdResult, Failure, OutputFormat};
use crate::aws::Connector;
use crate::manifest::Manifest;
use crate::manifest::secrets::{MasterKey, SecretsBackend};
use crate::secrets::key_wrapper::KeyWrapper;
use crate::secrets::master_key_wrapper;
use crate::secrets::rewrap::{self, KeyState, TenantKey};

/// Flags of `secret rewrap`.
#[derive(Debug, clap::Args)]
pub struct RewrapArgs {
    /// The master key file the data keys are wrapped by now (the old one).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "from_kms_key_id",
        required_unless_present = "from_kms_key_id"
    )]
    pub from_file: Option<PathBuf>,
    /// The KMS key the data keys are wrapped by now (id, ARN or alias; the
    /// vendor account, the coordinator's region).
    #[arg(long, value_name = "KEY")]
    pub from_kms_key_id: Option<String>,
    /// Re-wrap. Without it, only show what would be re-wrapped.
    #[arg(long)]
    pub yes: bool,
}

/// The wrapper of `key`; `which` names it in the error.
fn wrapper(
    key: &MasterKey,
    manifest: &Manifest,
    connector: &dyn Connector,
    which: &str,
) -> Result<Arc<dyn KeyWrapper>, Failure> {
    master_key_wrapper(key, manifest, connector)
        .map_err(|e| Failure::BadInput(anyhow::Error::new(e).context(which.to_owned())))
}

pub async fn run(cli: &Cli, args: &RewrapArgs, connector: ConnectorOverride) -> CmdResult {
    let ctx = context(cli, None, connector).await?;
    let old_key = match (&args.from_file, &args.from_kms_key_id) {
        (Some(path), None) => MasterKey::File { path: path.clone() },
        (None, Some(key_id)) => MasterKey::Kms {
            key_id: key_id.clone(),
        },
        _ => {
            return Err(Failure::bad_input(
                "give the old master key with exactly one of --from-file and --from-kms-key-id",
            ));
        }
    };
    let old = wrapper(
        &old_key,
        &ctx.manifest,
        ctx.connector.as_ref(),
        "the old master key",
    )?;
    // The hosted tenants, by the master key deploy.toml names for them now.
    let mut by_key: Vec<(MasterKey, Vec<TenantId>)> = Vec::new();
    for t in &ctx.manifest.tenants {
        if let SecretsBackend::Hosted { master_key } = ctx.manifest.secrets.for_tenant(&t.id) {
            match by_key.iter_mut().find(|(k, _)| k == master_key) {
                Some((_, tenants)) => tenants.push(t.id.clone()),
                None => by_key.push((master_key.clone(), vec![t.id.clone()])),
            }
        }
    }
    if by_key.is_empty() {
        return Err(Failure::bad_input(
            "no tenant uses the hosted secret store in deploy.toml: there is nothing to re-wrap",
        ));
    }
    let mut planned: Vec<(Arc<dyn KeyWrapper>, Vec<TenantKey>)> = Vec::new();
    for (key, tenants) in by_key {
        let new = wrapper(
            &key,
            &ctx.manifest,
            ctx.connector.as_ref(),
            "the new master key",
        )?;
        if new.id() == old.id() {
            return Err(Failure::bad_input(format!(
                "deploy.toml already names {} as the master key of {}: change `master_key` first, then re-wrap from the old key",
                new.describe(),
                tenants
                    .iter()
                    .map(TenantId::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let keys = rewrap::plan(ctx.store.as_ref(), &tenants, old.as_ref(), new.as_ref())
            .await
            .map_err(|e| Failure::Failed(e.into()))?;
        planned.push((new, keys));
    }
    // A key under neither master key is refused before anything is written.
    let unknown: Vec<&TenantKey> = planned
        .iter()
        .flat_map(|(_, keys)| keys)
        .filter(|k| matches!(k.state, KeyState::Unknown { .. }))
        .collect();
    if !unknown.is_empty() {
        report(cli, &old, &planned, &[], false);
        return Err(Failure::bad_input(format!(
            "{} tenant(s) have a data key under neither the old nor the new master key: {}; nothing was re-wrapped. Re-wrap from the key that wrapped them (--from-file or --from-kms-key-id), or remove those tenants' hosted secrets",
            unknown.len(),
            unknown
                .iter()
                .map(|k| k.tenant.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut rewrapped = Vec::new();
    if args.yes {
        for (new, keys) in &planned {
            let done = rewrap::apply(
                ctx.store.as_ref(),
                keys,
                old.as_ref(),
                new.as_ref(),
                ctx.operator.actor(),
            )
            .await
            .map_err(|e| Failure::Failed(e.into()))?;
            rewrapped.extend(done);
        }
    }
    report(cli, &old, &planned, &rewrapped, args.yes);
    Ok(())
}

fn report(
    cli: &Cli,
    old: &Arc<dyn KeyWrapper>,
    planned: &[(Arc<dyn KeyWrapper>, Vec<TenantKey>)],
    rewrapped: &[TenantId],
    applied: bool,
) {
    match cli.output {
        OutputFormat::Json => {
            let groups: Vec<_> = planned
                .iter()
                .map(|(new, keys)| json!({"to": new.id(), "tenants": keys}))
                .collect();
            println!(
                "{}",
                json!({"from": old.id(), "applied": applied, "rewrapped": rewrapped, "groups": groups})
            );
        }
        OutputFormat::Human => {
            for (new, keys) in planned {
                println!("from {} to {}:", old.describe(), new.describe());
                for k in keys {
                    let what = match &k.state {
                        KeyState::NoKey => "no hosted secrets: nothing to re-wrap".to_owned(),
                        KeyState::Current => "already under the new key".to_owned(),
                        KeyState::ToRewrap if rewrapped.contains(&k.tenant) => {
                            "re-wrapped".to_owned()
                        }
                        KeyState::ToRewrap => "to re-wrap".to_owned(),
                        KeyState::Unknown { wrapper } => {
                            format!("under another key ({wrapper}): left alone")
                        }
                    };
                    println!("  {:<24} {what}", k.tenant);
                }
            }
            if !applied {
                let pending = planned
                    .iter()
                    .flat_map(|(_, keys)| keys)
                    .filter(|k| k.state == KeyState::ToRewrap)
                    .count();
                println!("{pending} data key(s) to re-wrap; nothing written: run again with --yes");
            } else {
                println!(
                    "{} data key(s) re-wrapped, each audited (secret.data_key_rewrapped); keep the old key until you have checked the secrets open (`coordinator check`)",
                    rewrapped.len()
                );
            }
        }
    }
}
