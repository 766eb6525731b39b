//! `coordinator render`: writes tenants' templates and parameters to disk
//! for review or for the customer to deploy.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::json;
use stacks::ids::TenantId;
use stacks::{Release, StackKind};

use super::{Cli, CmdResult, Failure, OutputFormat, load_manifest};
use crate::desired::{self, DesiredStack, ParameterValue, Upstream};
use crate::manifest::Manifest;
use crate::manifest::schema_check::closest;

/// Flags of `render`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this tenant (default: every tenant).
    #[arg(long, value_name = "ID")]
    pub tenant: Option<TenantId>,
    /// Only this stack: bootstrap, storage or worker (default: all the
    /// tenant's stacks).
    #[arg(long, value_name = "NAME")]
    pub stack: Option<StackKind>,
    /// Directory to write into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Resolves `--tenant` against the manifest: unknown ids are bad input.
pub(crate) fn select_tenants<'m>(
    manifest: &'m Manifest,
    tenant: Option<&TenantId>,
) -> Result<Vec<&'m crate::manifest::Tenant>, Failure> {
    match tenant {
        None => Ok(manifest.tenants.iter().collect()),
        Some(id) => manifest.tenant(id).map(|t| vec![t]).ok_or_else(|| {
            let ids: Vec<String> = manifest.tenants.iter().map(|t| t.id.to_string()).collect();
            let hint = match closest(id.as_str(), &ids) {
                Some(c) => format!("did you mean `{c}`?"),
                None => format!("tenants in {}: {}", manifest.path.display(), ids.join(", ")),
            };
            Failure::bad_input(format!("unknown tenant `{id}`: {hint}"))
        }),
    }
}

/// The one tenant `id`, or the same error as [`select_tenants`].
pub(crate) fn select_tenant<'m>(
    manifest: &'m Manifest,
    id: &TenantId,
) -> Result<&'m crate::manifest::Tenant, Failure> {
    Ok(select_tenants(manifest, Some(id))?[0])
}

pub fn run(cli: &Cli, args: &Args) -> CmdResult {
    let manifest = load_manifest(cli)?.manifest;
    let release = Release::builtin();
    let tenants = select_tenants(&manifest, args.tenant.as_ref())?;

    // Render and check everything before writing anything.
    let mut rendered: Vec<(TenantId, DesiredStack)> = Vec::new();
    for tenant in &tenants {
        let render_error = |e: stacks::StackError| {
            Failure::Failed(
                anyhow::Error::new(e).context(format!("rendering tenant {}", tenant.id)),
            )
        };
        let mut stacks =
            vec![desired::bootstrap(release, &manifest, tenant).map_err(render_error)?];
        stacks.extend(
            desired::deployed(release, tenant, &Upstream::default()).map_err(render_error)?,
        );
        if let Some(only) = args.stack {
            stacks.retain(|s| s.kind == only);
            if stacks.is_empty() && args.tenant.is_some() {
                return Err(Failure::bad_input(format!(
                    "tenant `{}` does not get the {only} stack: the vendor deploys storage and worker only for tenants with the dedicated_aws capability",
                    tenant.id
                )));
            }
        }
        rendered.extend(stacks.into_iter().map(|s| (tenant.id.clone(), s)));
    }

    let mut written = Vec::new();
    for (tenant, stack) in &rendered {
        let dir = args.out.join(tenant.as_str());
        let template_path = dir.join(format!("{}.template.json", stack.kind));
        let parameters_path = dir.join(format!("{}.parameters.json", stack.kind));
        write_stack(&dir, &template_path, &parameters_path, stack).map_err(Failure::Failed)?;
        let pending: Vec<&str> = stack
            .parameters
            .iter()
            .filter(|p| matches!(p.value, ParameterValue::FromOutput { .. }))
            .map(|p| p.key.as_str())
            .collect();
        written.push(json!({
            "tenant": tenant,
            "stack": stack.kind,
            "template": template_path,
            "parameters": parameters_path,
            "template_hash": stack.template.hash(),
            "parameters_from_outputs": pending,
        }));
    }

    match cli.output {
        OutputFormat::Json => println!("{}", json!({ "rendered": written })),
        OutputFormat::Human => {
            for w in &written {
                let pending = w["parameters_from_outputs"].as_array().map_or(0, Vec::len);
                println!(
                    "{:<12} {:<10} {}{}",
                    w["tenant"].as_str().unwrap_or_default(),
                    w["stack"].as_str().unwrap_or_default(),
                    w["template"].as_str().unwrap_or_default(),
                    if pending > 0 {
                        format!("  ({pending} parameter(s) from earlier stacks' outputs)")
                    } else {
                        String::new()
                    }
                );
            }
            println!(
                "rendered {} stack(s) for {} tenant(s) into {}",
                written.len(),
                tenants.len(),
                args.out.display()
            );
        }
    }
    Ok(())
}

fn write_stack(
    dir: &Path,
    template: &Path,
    parameters: &Path,
    stack: &DesiredStack,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(template, stack.template.pretty_json())
        .with_context(|| format!("cannot write {}", template.display()))?;
    let mut text = serde_json::to_string_pretty(&stack.parameters)?;
    text.push('\n');
    std::fs::write(parameters, text)
        .with_context(|| format!("cannot write {}", parameters.display()))?;
    Ok(())
}
