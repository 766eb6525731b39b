//! `coordinator secret put|rotate|list|delete`: a tenant's secrets in the
//! store deploy.toml chooses for it (`[secrets]`). Values come from stdin or
//! a file, never from the command line (argv is visible to every user of
//! the machine and kept in shell history), and are never printed. Every
//! write is recorded with its version and a digest, never the value, in one
//! transaction with its audit entry.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::{Digest, Sha256};
use stacks::ids::{Capability, TenantId};

mod rewrap;

use super::context::{ConnectorOverride, Context, context};
use super::render::select_tenant;
use super::{Cli, CmdResult, Failure, OutputFormat};
use crate::manifest::Tenant;
use crate::privacy::change;
use crate::secrets::{SecretError, SecretName, SecretStore};
use crate::store::NewAuditEntry;
use crate::store::privacy::{SecretAction, SecretWrite};

/// `secret` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SecretCommand {
    /// Store a new secret for a tenant. The value is read from stdin (or
    /// --file); one trailing newline is dropped. Refuses a name that exists
    /// (use `rotate`).
    Put(WriteArgs),
    /// Write a new value for an existing secret. The previous version stays
    /// readable where the backend keeps versions.
    Rotate(WriteArgs),
    /// A tenant's secrets: names, versions, when and by whom, never values.
    List(ListArgs),
    /// Delete a secret and all its versions. Refused while the tenant's
    /// privacy configuration uses it.
    Delete(DeleteArgs),
    /// Create the master key file(s) the hosted secret store uses (mode
    /// 0600, 32 random bytes). Existing files are kept: they protect the
    /// secrets already stored. Back the file up; without it the hosted
    /// secrets cannot be read.
    InitMasterKey,
    /// Re-wrap the hosted store's data keys under the master key deploy.toml
    /// names now, after changing `master_key` (rotation of the
    /// key-encryption key). Give the key they are wrapped by now with
    /// --from-file or --from-kms-key-id. The secrets' ciphertexts do not
    /// change. Without --yes, shows what it would do and writes nothing.
    /// Each re-wrap is audited; running it again finishes an interrupted run.
    Rewrap(rewrap::RewrapArgs),
}

/// Flags of `secret put` and `secret rotate`.
#[derive(Debug, clap::Args)]
pub struct WriteArgs {
    /// The tenant.
    #[arg(long, value_name = "ID")]
    pub tenant: TenantId,
    /// The secret's name, e.g. llm-api-key.
    pub name: SecretName,
    /// Read the value from this file instead of stdin.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// Flags of `secret list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The tenant.
    #[arg(long, value_name = "ID")]
    pub tenant: TenantId,
}

/// Flags of `secret delete`.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// The tenant.
    #[arg(long, value_name = "ID")]
    pub tenant: TenantId,
    /// The secret's name.
    pub name: SecretName,
    /// Confirm: deletion cannot be undone.
    #[arg(long)]
    pub yes: bool,
}

pub async fn run(cli: &Cli, command: &SecretCommand, connector: ConnectorOverride) -> CmdResult {
    match command {
        SecretCommand::Put(args) => write(cli, args, SecretAction::Put, connector).await,
        SecretCommand::Rotate(args) => write(cli, args, SecretAction::Rotate, connector).await,
        SecretCommand::List(args) => list(cli, args, connector).await,
        SecretCommand::Delete(args) => delete(cli, args, connector).await,
        SecretCommand::InitMasterKey => init_master_key(cli),
        SecretCommand::Rewrap(args) => rewrap::run(cli, args, connector).await,
    }
}

/// Creates every master key file the manifest names that does not exist.
fn init_master_key(cli: &Cli) -> CmdResult {
    use crate::manifest::secrets::{MasterKey, SecretsBackend};
    let manifest = super::load_manifest(cli)?.manifest;
    let mut files = std::collections::BTreeSet::new();
    let mut kms = std::collections::BTreeSet::new();
    for t in &manifest.tenants {
        if let SecretsBackend::Hosted { master_key } = manifest.secrets.for_tenant(&t.id) {
            match master_key {
                MasterKey::File { path } => files.insert(path.clone()),
                MasterKey::Kms { key_id } => kms.insert(key_id.clone()),
            };
        }
    }
    let mut report = Vec::new();
    for path in &files {
        let line = if path.exists() {
            json!({"file": path, "result": "exists, kept"})
        } else {
            let fingerprint = crate::secrets::key_wrapper::create_master_key_file(path)
                .map_err(|e| Failure::BadInput(e.into()))?;
            json!({"file": path, "result": "created", "fingerprint": fingerprint})
        };
        report.push(line);
    }
    for key in &kms {
        report.push(json!({"kms_key_id": key, "result": "wrapped by KMS: nothing to create"}));
    }
    match cli.output {
        OutputFormat::Json => println!("{}", json!({"master_keys": report})),
        OutputFormat::Human if report.is_empty() => {
            println!("no tenant uses the hosted secret store: nothing to create")
        }
        OutputFormat::Human => {
            for r in &report {
                match (&r["file"], &r["kms_key_id"]) {
                    (serde_json::Value::String(f), _) => println!(
                        "{f}: {}{}",
                        r["result"].as_str().unwrap_or_default(),
                        r["fingerprint"]
                            .as_str()
                            .map(|f| format!(" (fingerprint {f}); back it up now"))
                            .unwrap_or_default()
                    ),
                    (_, k) => println!(
                        "{}: {}",
                        k.as_str().unwrap_or_default(),
                        r["result"].as_str().unwrap_or_default()
                    ),
                }
            }
        }
    }
    Ok(())
}

fn failed(e: impl Into<anyhow::Error>) -> Failure {
    Failure::Failed(e.into())
}

/// A tenant may keep secrets only for customer-managed dependencies.
fn entitled(tenant: &Tenant) -> Result<(), Failure> {
    if tenant.has(Capability::CustomerStorage) || tenant.has(Capability::ByoAiKeys) {
        return Ok(());
    }
    Err(Failure::bad_input(format!(
        "tenant `{}` is entitled to neither `customer_storage` nor `byo_ai_keys`, the only capabilities that use tenant secrets: add one to the tenant in deploy.toml if its contract includes it",
        tenant.id
    )))
}

/// The digest recorded for a value: SHA-256 over tenant, name and value, so
/// equal values of different tenants or secrets do not match. It proves
/// which value was set (compare with a digest you compute) without revealing
/// it; it does not protect a guessable value, which is why keys, not
/// passwords, belong here.
pub fn value_digest(tenant: &TenantId, name: &SecretName, value: &SecretString) -> String {
    let mut h = Sha256::new();
    h.update(tenant.as_str().as_bytes());
    h.update([0]);
    h.update(name.as_str().as_bytes());
    h.update([0]);
    h.update(value.expose_secret().as_bytes());
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Reads the value: a file, or stdin (with a prompt on a terminal).
fn read_value(args: &WriteArgs) -> Result<SecretString, Failure> {
    let mut text = String::new();
    match &args.file {
        Some(path) => {
            text = std::fs::read_to_string(path).map_err(|e| {
                Failure::BadInput(
                    anyhow::Error::new(e).context(format!("cannot read {}", path.display())),
                )
            })?;
        }
        None => {
            if std::io::stdin().is_terminal() {
                eprintln!(
                    "Enter the value of `{}` for tenant {}, then Ctrl-D:",
                    args.name, args.tenant
                );
            }
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Failure::BadInput(anyhow::Error::new(e).context("reading stdin")))?;
        }
    }
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(Failure::bad_input(
            "the value is empty: pipe it on stdin or give --file",
        ));
    }
    Ok(SecretString::from(text))
}

async fn open(ctx: &Context, tenant: &Tenant) -> Result<Arc<dyn SecretStore>, Failure> {
    crate::secrets::open_for(
        tenant,
        &ctx.manifest,
        ctx.connector.as_ref(),
        ctx.store.clone(),
    )
    .await
    .map_err(secret_failure)
}

fn secret_failure(e: SecretError) -> Failure {
    match e {
        e @ SecretError::Config { .. } => Failure::BadInput(e.into()),
        e => Failure::Failed(e.into()),
    }
}

async fn exists(
    store: &dyn SecretStore,
    tenant: &Tenant,
    name: &SecretName,
) -> Result<bool, Failure> {
    let listed = store.list(&tenant.id).await.map_err(secret_failure)?;
    Ok(listed.iter().any(|m| &m.name == name))
}

async fn write(
    cli: &Cli,
    args: &WriteArgs,
    action: SecretAction,
    connector: ConnectorOverride,
) -> CmdResult {
    let ctx = context(cli, Some(&args.tenant), connector).await?;
    let tenant = select_tenant(&ctx.manifest, &args.tenant)?;
    entitled(tenant)?;
    let value = read_value(args)?;
    let secrets = open(&ctx, tenant).await?;
    let present = exists(secrets.as_ref(), tenant, &args.name).await?;
    match (action, present) {
        (SecretAction::Put, true) => {
            return Err(Failure::bad_input(format!(
                "tenant `{}` already has a secret `{}` in {}: use `coordinator secret rotate` to write a new value",
                tenant.id,
                args.name,
                secrets.location()
            )));
        }
        (SecretAction::Rotate, false) => {
            return Err(Failure::bad_input(format!(
                "tenant `{}` has no secret `{}` in {} to rotate: use `coordinator secret put` first",
                tenant.id,
                args.name,
                secrets.location()
            )));
        }
        _ => {}
    }
    let version = secrets
        .put(&tenant.id, &args.name, &value)
        .await
        .map_err(secret_failure)?;
    let digest = value_digest(&tenant.id, &args.name, &value);
    drop(value);
    let audit = NewAuditEntry {
        actor: ctx.operator.actor().to_owned(),
        tenant: Some(tenant.id.clone()),
        action: format!("secret.{}", action.as_str()),
        details: json!({
            "name": args.name,
            "backend": secrets.kind(),
            "location": secrets.location(),
            "version": version.id,
            "digest": digest,
        }),
    };
    let write = SecretWrite {
        tenant: tenant.id.clone(),
        name: args.name.clone(),
        backend: secrets.kind(),
        version: Some(version.id.clone()),
        digest: Some(digest.clone()),
        action,
        actor: ctx.operator.actor().to_owned(),
        at: version.created_at,
    };
    let entry = ctx.store.record_secret_write(write, audit).await.map_err(|e| {
        failed(anyhow::Error::new(e).context(format!(
            "the value was stored in {} as version {}, but recording it in the state file failed: run the command again once the state file is writable",
            secrets.location(),
            version.id
        )))
    })?;
    match cli.output {
        OutputFormat::Json => println!(
            "{}",
            json!({"tenant": tenant.id, "name": args.name, "action": action, "backend": secrets.kind(),
                   "location": secrets.location(), "version": version.id, "digest": digest, "audit_seq": entry.seq})
        ),
        OutputFormat::Human => println!(
            "{} `{}` of tenant {} in {}: version {} ({digest}), audit entry {}",
            if action == SecretAction::Put {
                "stored"
            } else {
                "rotated"
            },
            args.name,
            tenant.id,
            secrets.location(),
            version.id,
            entry.seq
        ),
    }
    Ok(())
}

async fn list(cli: &Cli, args: &ListArgs, connector: ConnectorOverride) -> CmdResult {
    let ctx = context(cli, Some(&args.tenant), connector).await?;
    let tenant = select_tenant(&ctx.manifest, &args.tenant)?;
    let secrets = open(&ctx, tenant).await?;
    let listed = secrets.list(&tenant.id).await.map_err(secret_failure)?;
    let writes = ctx.store.secret_writes(&tenant.id).await.map_err(failed)?;
    let config = change::current(ctx.store.as_ref(), tenant)
        .await
        .map_err(failed)?
        .config;
    let used: Vec<&SecretName> = config.secret_refs();
    let rows: Vec<serde_json::Value> = listed
        .iter()
        .map(|m| {
            let w = writes.iter().find(|w| w.name == m.name);
            json!({
                "name": m.name,
                "version": m.current.id,
                "versions": m.versions,
                "updated_at": m.current.created_at,
                "updated_by": w.map(|w| w.actor.clone()),
                "digest": w.and_then(|w| w.digest.clone()),
                "in_use": used.contains(&&m.name),
            })
        })
        .collect();
    match cli.output {
        OutputFormat::Json => println!(
            "{}",
            json!({"tenant": tenant.id, "backend": secrets.kind(), "location": secrets.location(), "secrets": rows})
        ),
        OutputFormat::Human => {
            println!("tenant {} — secrets in {}", tenant.id, secrets.location());
            if rows.is_empty() {
                println!("  none");
            }
            for r in &rows {
                println!(
                    "  {:<24} version {:<38} updated {} by {}{}",
                    r["name"].as_str().unwrap_or_default(),
                    r["version"].as_str().unwrap_or_default(),
                    r["updated_at"].as_str().unwrap_or("?"),
                    r["updated_by"].as_str().unwrap_or("(not recorded here)"),
                    if r["in_use"] == true {
                        "  [in use]"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    Ok(())
}

async fn delete(cli: &Cli, args: &DeleteArgs, connector: ConnectorOverride) -> CmdResult {
    if !args.yes {
        return Err(Failure::bad_input(format!(
            "deleting `{}` of tenant {} cannot be undone: add --yes",
            args.name, args.tenant
        )));
    }
    let ctx = context(cli, Some(&args.tenant), connector).await?;
    let tenant = select_tenant(&ctx.manifest, &args.tenant)?;
    let config = change::current(ctx.store.as_ref(), tenant)
        .await
        .map_err(failed)?
        .config;
    if config.secret_refs().contains(&&args.name) {
        return Err(Failure::bad_input(format!(
            "tenant {}'s privacy configuration uses `{}`: change it first (`coordinator privacy set`), then delete the secret",
            tenant.id, args.name
        )));
    }
    let secrets = open(&ctx, tenant).await?;
    if !exists(secrets.as_ref(), tenant, &args.name).await? {
        return Err(Failure::bad_input(format!(
            "tenant `{}` has no secret `{}` in {}",
            tenant.id,
            args.name,
            secrets.location()
        )));
    }
    secrets
        .delete(&tenant.id, &args.name)
        .await
        .map_err(secret_failure)?;
    let audit = NewAuditEntry {
        actor: ctx.operator.actor().to_owned(),
        tenant: Some(tenant.id.clone()),
        action: "secret.delete".into(),
        details: json!({"name": args.name, "backend": secrets.kind(), "location": secrets.location()}),
    };
    let write = SecretWrite {
        tenant: tenant.id.clone(),
        name: args.name.clone(),
        backend: secrets.kind(),
        version: None,
        digest: None,
        action: SecretAction::Delete,
        actor: ctx.operator.actor().to_owned(),
        at: chrono::Utc::now(),
    };
    let entry = ctx
        .store
        .record_secret_write(write, audit)
        .await
        .map_err(failed)?;
    match cli.output {
        OutputFormat::Json => println!(
            "{}",
            json!({"tenant": tenant.id, "name": args.name, "action": "delete", "audit_seq": entry.seq})
        ),
        OutputFormat::Human => println!(
            "deleted `{}` of tenant {} from {} (audit entry {})",
            args.name,
            tenant.id,
            secrets.location(),
            entry.seq
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_depend_on_tenant_name_and_value_and_hide_the_value() {
        let value = SecretString::from("sk-live-PLANTED-1234567890");
        let a = value_digest(&"acme".parse().unwrap(), &"k".parse().unwrap(), &value);
        let b = value_digest(&"globex".parse().unwrap(), &"k".parse().unwrap(), &value);
        let c = value_digest(&"acme".parse().unwrap(), &"j".parse().unwrap(), &value);
        assert!(a.starts_with("sha256:") && a.len() == 7 + 64, "{a}");
        assert!(a != b && a != c && b != c);
        assert!(!a.contains("PLANTED"));
    }
}
