//! `coordinator privacy export|apply`: the tenants' privacy configurations
//! as a directory of files, one `<tenant>.toml` each in the format
//! `privacy set --file` reads, so they can live in git and be reviewed and
//! applied like deploy.toml.
//!
//! `apply` checks every file first (each tenant known, each configuration
//! valid for the tenant's capabilities, every secret it names stored) and
//! writes nothing unless all pass; then it sets each, which is a no-op for
//! a configuration equal to the current one. Tenants without a file are
//! left as they are: removing a file does not reset a tenant.

use std::path::{Path, PathBuf};

use serde_json::json;
use stacks::ids::TenantId;

use super::super::context::{ConnectorOverride, context, open_store};
use super::super::render::select_tenant;
use super::super::{Cli, CmdResult, Failure, OutputFormat, load_manifest};
use super::{change_failure, failed, read_config};
use crate::manifest::{Manifest, Tenant};
use crate::privacy::PrivacyConfig;
use crate::privacy::change::{self, ChangeError, Changed};

/// Flags of `privacy export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The directory to write `<tenant>.toml` files into (created if
    /// missing; files of other tenants are left alone).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Only this tenant (default: every tenant in deploy.toml).
    #[arg(long, value_name = "ID")]
    pub tenant: Option<TenantId>,
}

/// Flags of `privacy apply`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The directory of `<tenant>.toml` files.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Check every file and say what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// The file of `tenant` in `dir`.
fn file_of(dir: &Path, tenant: &TenantId) -> PathBuf {
    dir.join(format!("{tenant}.toml"))
}

/// `config` as the TOML `privacy set --file` reads, with a header.
pub fn to_file_text(tenant: &TenantId, version: u64, config: &PrivacyConfig) -> String {
    let body = toml::to_string(config).expect("a privacy configuration serializes to TOML");
    format!(
        "# Privacy configuration of tenant `{tenant}` (version {version} when exported).\n\
         # Apply with `coordinator privacy apply --dir <this directory>`; secret\n\
         # fields name secrets (`coordinator secret put`), never values.\n\n{body}"
    )
}

/// Writes `text` to `path` atomically (a temporary file, then a rename).
fn write_atomically(path: &Path, text: &str) -> Result<(), Failure> {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            Failure::Failed(
                anyhow::Error::new(e).context(format!("cannot write {}", path.display())),
            )
        })
}

pub async fn export(cli: &Cli, args: &ExportArgs) -> CmdResult {
    let manifest = load_manifest(cli)?.manifest;
    let tenants: Vec<&Tenant> = match &args.tenant {
        Some(id) => vec![select_tenant(&manifest, id)?],
        None => manifest.tenants.iter().collect(),
    };
    let store = open_store(&manifest)?;
    std::fs::create_dir_all(&args.dir).map_err(|e| {
        Failure::BadInput(
            anyhow::Error::new(e).context(format!("cannot create {}", args.dir.display())),
        )
    })?;
    let mut written = Vec::new();
    for tenant in tenants {
        let record = change::current(store.as_ref(), tenant)
            .await
            .map_err(failed)?;
        let path = file_of(&args.dir, &tenant.id);
        write_atomically(
            &path,
            &to_file_text(&tenant.id, record.version, &record.config),
        )?;
        written.push(json!({"tenant": tenant.id, "version": record.version, "file": path}));
    }
    match cli.output {
        OutputFormat::Json => println!("{}", json!({"exported": written})),
        OutputFormat::Human => {
            for w in &written {
                println!(
                    "{}: version {} -> {}",
                    w["tenant"].as_str().unwrap_or_default(),
                    w["version"],
                    w["file"].as_str().unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

/// Every `*.toml` in `dir`, read and matched to its tenant.
fn read_dir(manifest: &Manifest, dir: &Path) -> Result<Vec<(Tenant, PrivacyConfig)>, Failure> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Failure::BadInput(anyhow::Error::new(e).context(format!("cannot read {}", dir.display())))
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(Failure::bad_input(format!(
            "{} has no <tenant>.toml files: export them first with `coordinator privacy export --dir {}`",
            dir.display(),
            dir.display()
        )));
    }
    let mut out = Vec::new();
    for path in paths {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let id: TenantId = stem.parse().map_err(|e| {
            Failure::bad_input(format!(
                "{}: the file name must be a tenant id (`<tenant>.toml`): {e}",
                path.display()
            ))
        })?;
        let tenant = select_tenant(manifest, &id)?.clone();
        out.push((tenant, read_config(&path)?));
    }
    Ok(out)
}

pub async fn apply(cli: &Cli, args: &ApplyArgs, connector: ConnectorOverride) -> CmdResult {
    let manifest = load_manifest(cli)?.manifest;
    let wanted = read_dir(&manifest, &args.dir)?;
    // Everything is checked before anything is written.
    let store = open_store(&manifest)?;
    let mut problems = Vec::new();
    for (tenant, config) in &wanted {
        if let Err(e) = change::check_config(store.as_ref(), tenant, config).await {
            match e {
                ChangeError::Invalid { .. } => problems.push(e.to_string()),
                e => return Err(change_failure(e)),
            }
        }
    }
    if !problems.is_empty() {
        return Err(Failure::bad_input(format!(
            "nothing was applied; {} file(s) are not valid:\n{}",
            problems.len(),
            problems.join("\n")
        )));
    }
    let mut results = Vec::new();
    if args.dry_run {
        for (tenant, config) in &wanted {
            let now = change::current(store.as_ref(), tenant)
                .await
                .map_err(failed)?;
            let what = if &now.config == config {
                "unchanged"
            } else {
                "would change"
            };
            results.push(json!({"tenant": tenant.id, "result": what, "version": now.version}));
        }
    } else {
        drop(store);
        let ctx = context(cli, None, connector).await?;
        for (tenant, config) in wanted {
            let outcome = change::set_config(
                ctx.store.as_ref(),
                &tenant,
                config,
                None,
                ctx.operator.actor(),
            )
            .await
            .map_err(change_failure)?;
            let (what, version) = match &outcome {
                Changed::Unchanged { version } => ("unchanged", *version),
                Changed::Written { record, .. } => ("changed", record.version),
            };
            results.push(json!({"tenant": tenant.id, "result": what, "version": version}));
        }
    }
    match cli.output {
        OutputFormat::Json => {
            println!("{}", json!({"dry_run": args.dry_run, "tenants": results}))
        }
        OutputFormat::Human => {
            for r in &results {
                println!(
                    "{}: {} (version {})",
                    r["tenant"].as_str().unwrap_or_default(),
                    r["result"].as_str().unwrap_or_default(),
                    r["version"]
                );
            }
            if args.dry_run {
                println!("dry run: nothing written");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::config::CustomerS3;
    use crate::privacy::{LlmMode, StorageMode};

    #[test]
    fn an_exported_file_reads_back_as_the_same_configuration() {
        let tenant: TenantId = "acme".parse().unwrap();
        for config in [
            PrivacyConfig::default(),
            PrivacyConfig {
                storage: StorageMode::CustomerS3(CustomerS3 {
                    bucket: "acme-docs".parse().unwrap(),
                    region: stacks::ids::Region::EuWest1,
                    endpoint: None,
                    path_style: false,
                    credentials: Some("s3-credentials".parse().unwrap()),
                    kms_key_arn: None,
                }),
                llm: LlmMode::Hosted,
            },
        ] {
            let text = to_file_text(&tenant, 3, &config);
            assert!(text.starts_with("# Privacy configuration of tenant `acme`"));
            let back: PrivacyConfig = toml::from_str(&text).unwrap();
            assert_eq!(back, config, "{text}");
        }
    }
}
