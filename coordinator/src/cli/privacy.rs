//! `coordinator privacy show|set|fallback|history`: a tenant's storage and
//! LLM configuration. `show` and `history` read the state file only; `set`
//! and `fallback` record the caller's AWS identity as the actor of the
//! change (an audit entry in the same transaction).

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context as _;
use serde_json::json;
use stacks::ids::TenantId;

mod gitops;

use super::context::{ConnectorOverride, context, open_store};
use super::render::select_tenant;
use super::{Cli, CmdResult, Failure, OutputFormat, load_manifest};
use crate::manifest::Tenant;
use crate::privacy::change::{self, ChangeError, Changed};
use crate::privacy::view::PrivacyView;
use crate::privacy::{ManagedBy, PrivacyConfig};
use crate::store::privacy::PrivacyRecord;
use crate::store::probes::StoredProbe;

/// `privacy` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PrivacyCommand {
    /// Show a tenant's storage and LLM configuration, who manages each
    /// (vendor-hosted or customer), and whether hosted fallback is allowed.
    Show(TenantArg),
    /// Replace a tenant's configuration with the one in a TOML or JSON file
    /// (`-` reads stdin). A section left out means the hosted default.
    ///
    /// Example file:
    ///
    ///   [storage]
    ///   mode = "customer_s3"      # hosted | customer_s3 | deployed
    ///   bucket = "acme-docs"
    ///   region = "eu-west-1"
    ///   credentials = "s3-credentials"   # a secret name, never the key
    ///
    ///   [llm]
    ///   mode = "byok"             # hosted | byok
    ///   provider = "anthropic"    # openai_compatible | anthropic | bedrock
    ///   model = "claude-sonnet-4-5"
    ///   key = "llm-api-key"       # a secret name, never the key
    ///
    /// The whole configuration is checked first (the tenant's capabilities,
    /// that named secrets exist); nothing changes unless all of it is valid.
    Set(SetArgs),
    /// Allow or forbid falling back to the vendor's hosted storage and keys
    /// when the tenant's own fail. Disabled by default: customer-managed
    /// dependencies fail closed. Enabling needs --reason.
    Fallback(FallbackArgs),
    /// The tenant's configuration versions, newest first.
    History(HistoryArgs),
    /// Write each tenant's configuration to DIR/<tenant>.toml, in the
    /// format `privacy set --file` reads: for git, review and `apply`.
    Export(gitops::ExportArgs),
    /// Set every tenant's configuration from DIR/<tenant>.toml. Every file
    /// is checked first and nothing is written unless all are valid; a
    /// configuration equal to the current one changes nothing. Tenants
    /// without a file are left as they are.
    Apply(gitops::ApplyArgs),
}

/// Selects a tenant.
#[derive(Debug, clap::Args)]
pub struct TenantArg {
    /// The tenant.
    #[arg(long, value_name = "ID")]
    pub tenant: TenantId,
}

/// Flags of `privacy set`.
#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// The tenant.
    #[arg(long, value_name = "ID")]
    pub tenant: TenantId,
    /// The configuration file (.toml or .json; `-` for TOML on stdin).
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// Refuse if the current version is not this one (what you last saw).
    #[arg(long, value_name = "VERSION")]
    pub expect_version: Option<u64>,
    /// Check the configuration and show it, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// Allow hosted fallback.
    Enable,
    /// Forbid it (fail closed).
    Disable,
}

/// Flags of `privacy fallback`.
#[derive(Debug, clap::Args)]
pub struct FallbackArgs {
    /// enable or disable.
    #[arg(value_enum)]
    pub switch: Switch,
    /// The tenant.
    #[arg(long, value_name = "ID")]
    pub tenant: TenantId,
    /// Why (required to enable): a ticket, an approval.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Refuse if the current version is not this one.
    #[arg(long, value_name = "VERSION")]
    pub expect_version: Option<u64>,
}

/// Flags of `privacy history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// The tenant.
    #[arg(long, value_name = "ID")]
    pub tenant: TenantId,
    /// How many versions.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

pub async fn run(cli: &Cli, command: &PrivacyCommand, connector: ConnectorOverride) -> CmdResult {
    match command {
        PrivacyCommand::Show(args) => show(cli, args).await,
        PrivacyCommand::Set(args) => set(cli, args, connector).await,
        PrivacyCommand::Fallback(args) => fallback(cli, args, connector).await,
        PrivacyCommand::History(args) => history(cli, args).await,
        PrivacyCommand::Export(args) => gitops::export(cli, args).await,
        PrivacyCommand::Apply(args) => gitops::apply(cli, args, connector).await,
    }
}

fn failed(e: impl Into<anyhow::Error>) -> Failure {
    Failure::Failed(e.into())
}

async fn show(cli: &Cli, args: &TenantArg) -> CmdResult {
    let manifest = load_manifest(cli)?.manifest;
    let tenant = select_tenant(&manifest, &args.tenant)?;
    let store = open_store(&manifest)?;
    let record = change::current(store.as_ref(), tenant)
        .await
        .map_err(failed)?;
    let probes = store.probes(Some(&tenant.id)).await.map_err(failed)?;
    match cli.output {
        OutputFormat::Json => println!("{}", view(tenant, &record, &probes)),
        OutputFormat::Human => {
            print!("{}", human(tenant, &record));
            let v = PrivacyView::new(tenant, &record, &probes);
            for (name, check) in [("storage", &v.storage.check), ("llm", &v.llm.check)] {
                if check.state == "not_applicable" {
                    continue;
                }
                let validated = check
                    .last_validated
                    .map(|t| format!(", last validated {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
                    .unwrap_or_else(|| ", never validated".into());
                println!("  check {name:<7} {}{validated}", check.state);
                if let (Some(code), Some(error)) = (&check.last_error_code, &check.last_error) {
                    println!("    {code}: {error}");
                }
                if let Some(remedy) = &check.remedy {
                    println!("    what to do: {remedy}");
                }
            }
        }
    }
    Ok(())
}

/// The JSON shape `show` prints: the API's view.
fn view(tenant: &Tenant, r: &PrivacyRecord, probes: &[StoredProbe]) -> serde_json::Value {
    json!(PrivacyView::new(tenant, r, probes))
}

fn managed(m: ManagedBy) -> &'static str {
    match m {
        ManagedBy::Vendor => "HOSTED (vendor)",
        ManagedBy::Customer => "CUSTOMER-MANAGED",
    }
}

fn human(tenant: &Tenant, r: &PrivacyRecord) -> String {
    let caps: Vec<&str> = tenant.capabilities.iter().map(|c| c.as_str()).collect();
    let changed = if r.version == 0 {
        "never configured: hosted defaults".to_owned()
    } else {
        format!(
            "version {}, changed {} by {}",
            r.version,
            r.at.format("%Y-%m-%d %H:%M:%S UTC"),
            r.actor
        )
    };
    let fallback = match (r.hosted_fallback, r.config.is_customer_managed()) {
        (true, _) => format!(
            "ENABLED: falls back to the vendor's hosted storage/keys when its own fail ({})",
            r.fallback_reason.as_deref().unwrap_or("no reason recorded")
        ),
        (false, true) => {
            "disabled: a failing customer dependency stops processing (fails closed)".into()
        }
        (false, false) => "n/a (hosted defaults)".into(),
    };
    format!(
        "tenant {} ({changed})\n  capabilities  {}\n  storage       {:<17} {}\n  llm           {:<17} {}\n  fallback      {fallback}\n",
        tenant.id,
        if caps.is_empty() {
            "none".to_owned()
        } else {
            caps.join(", ")
        },
        managed(r.config.storage.managed_by()),
        r.config.storage.summary(),
        managed(r.config.llm.managed_by()),
        r.config.llm.summary(),
    )
}

/// Reads a configuration file: JSON when it ends in `.json`, TOML otherwise.
fn read_config(path: &PathBuf) -> Result<PrivacyConfig, Failure> {
    let (text, name) = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::BadInput(anyhow::Error::new(e).context("reading stdin")))?;
        (text, "stdin".to_owned())
    } else {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::BadInput(
                anyhow::Error::new(e).context(format!("cannot read {}", path.display())),
            )
        })?;
        (text, path.display().to_string())
    };
    let parsed = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        toml::from_str(&text).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| {
        Failure::bad_input(format!(
            "{name} is not a privacy configuration: {e}\n(see `coordinator privacy set --help` for the format)"
        ))
    })
}

fn change_failure(e: ChangeError) -> Failure {
    match e {
        e @ ChangeError::Invalid { .. } => Failure::BadInput(e.into()),
        e => Failure::Failed(e.into()),
    }
}

fn report(cli: &Cli, tenant: &Tenant, outcome: &Changed) {
    match (cli.output, outcome) {
        (OutputFormat::Json, _) => println!("{}", json!(outcome)),
        (OutputFormat::Human, Changed::Unchanged { version }) => {
            println!("tenant {}: unchanged (version {version})", tenant.id)
        }
        (OutputFormat::Human, Changed::Written { record, audit_seq }) => {
            print!("{}", human(tenant, record));
            println!(
                "recorded as version {} (audit entry {audit_seq})",
                record.version
            );
        }
    }
}

async fn set(cli: &Cli, args: &SetArgs, connector: ConnectorOverride) -> CmdResult {
    let config = read_config(&args.file)?;
    if args.dry_run {
        let manifest = load_manifest(cli)?.manifest;
        let tenant = select_tenant(&manifest, &args.tenant)?;
        config.validate(tenant).map_err(|problems| {
            change_failure(ChangeError::Invalid {
                tenant: tenant.id.to_string(),
                problems,
            })
        })?;
        println!(
            "valid for tenant {} (secrets are checked on the real run):\n  storage  {}\n  llm      {}",
            tenant.id,
            config.storage.summary(),
            config.llm.summary()
        );
        return Ok(());
    }
    let ctx = context(cli, Some(&args.tenant), connector).await?;
    let tenant = select_tenant(&ctx.manifest, &args.tenant)?;
    let outcome = change::set_config(
        ctx.store.as_ref(),
        tenant,
        config,
        args.expect_version,
        ctx.operator.actor(),
    )
    .await
    .map_err(change_failure)?;
    report(cli, tenant, &outcome);
    Ok(())
}

async fn fallback(cli: &Cli, args: &FallbackArgs, connector: ConnectorOverride) -> CmdResult {
    let ctx = context(cli, Some(&args.tenant), connector).await?;
    let tenant = select_tenant(&ctx.manifest, &args.tenant)?;
    let outcome = change::set_fallback(
        ctx.store.as_ref(),
        tenant,
        args.switch == Switch::Enable,
        args.reason.as_deref(),
        args.expect_version,
        ctx.operator.actor(),
    )
    .await
    .map_err(change_failure)?;
    report(cli, tenant, &outcome);
    Ok(())
}

async fn history(cli: &Cli, args: &HistoryArgs) -> CmdResult {
    let manifest = load_manifest(cli)?.manifest;
    let tenant = select_tenant(&manifest, &args.tenant)?;
    let store = open_store(&manifest)?;
    let records = store
        .privacy_history(&tenant.id, args.limit.max(1))
        .await
        .context("reading the privacy history")
        .map_err(Failure::Failed)?;
    match cli.output {
        OutputFormat::Json => println!("{}", json!(records)),
        OutputFormat::Human if records.is_empty() => {
            println!("tenant {}: never configured (hosted defaults)", tenant.id)
        }
        OutputFormat::Human => {
            for r in &records {
                println!(
                    "v{:<4} {}  {:<8} storage={} llm={} fallback={}  by {}",
                    r.version,
                    r.at.format("%Y-%m-%d %H:%M:%S"),
                    r.change.as_str(),
                    r.config.storage.name(),
                    r.config.llm.name(),
                    if r.hosted_fallback {
                        "enabled"
                    } else {
                        "disabled"
                    },
                    r.actor
                );
            }
        }
    }
    Ok(())
}
