//! `coordinator tenant onboard` and `coordinator tenant verify`.
//!
//! Onboarding is offline: it generates the tenant's ExternalId, renders the
//! bootstrap stack the customer deploys, and prints the lines to add to
//! `deploy.toml` (reviewed in git) and how the customer deploys the stack.
//! Verification proves the trust is right both ways: assuming the role with
//! the ExternalId lands in the tenant's account, and assuming it without (or
//! with a wrong one) is refused. A role that lets us in without the
//! ExternalId is the confused-deputy hole, and the tenant is refused.
//!
//! Both are about stacks in the customer's AWS account, so both need the
//! `dedicated_aws` capability.

use std::path::PathBuf;

use anyhow::Context as _;
use rand::Rng;
use serde_json::json;
use stacks::Release;
use stacks::builtin::bootstrap::DEPLOY_ROLE_NAME;
use stacks::builtin::storage::RetentionDays;
use stacks::ids::{AccountId, Capability, ExternalId, Region, RoleArn, TenantId, WaveName};

use super::context::{ConnectorOverride, context_requiring, require};
use super::render::select_tenants;
use super::{Cli, CmdResult, Failure, OutputFormat, load_manifest};
use crate::access::{self, role_request};
use crate::aws::ErrorKind;
use crate::desired;
use crate::manifest::Tenant;
use crate::store::NewAuditEntry;
use crate::store::audit::digest;

/// `tenant` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TenantCommand {
    /// Prepare a new tenant: generate its ExternalId and render the
    /// bootstrap stack the customer deploys. Changes nothing; prints the
    /// lines to add to deploy.toml.
    Onboard(OnboardArgs),
    /// Check a tenant's trust: with the ExternalId the role must work and
    /// land in the tenant's account; without it, it must be refused.
    Verify(VerifyArgs),
}

/// Flags of `tenant onboard`.
#[derive(Debug, clap::Args)]
pub struct OnboardArgs {
    /// The new tenant's id.
    pub id: TenantId,
    /// The customer's AWS account id.
    #[arg(long, value_name = "ACCOUNT")]
    pub account_id: AccountId,
    /// The region for the tenant's stacks.
    #[arg(long, value_name = "REGION")]
    pub region: Region,
    /// Rollout wave (default: the last wave).
    #[arg(long, value_name = "WAVE")]
    pub wave: Option<WaveName>,
    /// Capabilities, comma-separated (default: dedicated_aws).
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "dedicated_aws"
    )]
    pub capabilities: Vec<String>,
    /// Where to write the bootstrap template and parameters.
    #[arg(long, value_name = "DIR", default_value = "onboarding")]
    pub out: PathBuf,
    /// Where the vendor hosts this release's bootstrap template (an S3 HTTPS
    /// URL), for the quick-create link.
    #[arg(long, value_name = "URL")]
    pub template_url: Option<String>,
}

/// Flags of `tenant verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The tenant to verify.
    pub id: TenantId,
}

pub async fn run(cli: &Cli, command: &TenantCommand, connector: ConnectorOverride) -> CmdResult {
    match command {
        TenantCommand::Onboard(args) => onboard(cli, args),
        TenantCommand::Verify(args) => verify(cli, args, connector).await,
    }
}

/// A new random ExternalId: 48 characters from A-Z a-z 0-9 (285 bits).
pub fn generate_external_id() -> ExternalId {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let id: String = (0..48)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    id.parse().expect("generated ExternalIds are valid")
}

fn onboard(cli: &Cli, args: &OnboardArgs) -> CmdResult {
    let manifest = load_manifest(cli)?.manifest;
    if manifest.tenant(&args.id).is_some() {
        return Err(Failure::bad_input(format!(
            "tenant `{}` is already in {}",
            args.id,
            manifest.path.display()
        )));
    }
    if args.account_id == manifest.coordinator.account_id {
        return Err(Failure::bad_input(
            "that is the vendor's own account: tenants must use their own account",
        ));
    }
    if let Some(other) = manifest
        .tenants
        .iter()
        .find(|t| t.account_id == args.account_id)
    {
        return Err(Failure::bad_input(format!(
            "account {} already belongs to tenant `{}`",
            args.account_id, other.id
        )));
    }
    let wave = match &args.wave {
        Some(w) if manifest.rollout.waves.contains(w) => w.clone(),
        Some(w) => {
            let known: Vec<String> = manifest
                .rollout
                .waves
                .iter()
                .map(ToString::to_string)
                .collect();
            return Err(Failure::bad_input(format!(
                "unknown wave `{w}`: waves are {}",
                known.join(", ")
            )));
        }
        None => manifest
            .rollout
            .waves
            .last()
            .cloned()
            .expect("a valid manifest has waves"),
    };
    let mut capabilities = std::collections::BTreeSet::new();
    for c in &args.capabilities {
        let cap = Capability::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == c)
            .ok_or_else(|| {
                let known: Vec<&str> = Capability::ALL.iter().map(|k| k.as_str()).collect();
                Failure::bad_input(format!(
                    "unknown capability `{c}`: known are {}",
                    known.join(", ")
                ))
            })?;
        capabilities.insert(cap);
    }
    let external_id = generate_external_id();
    if manifest
        .tenants
        .iter()
        .any(|t| t.external_id == external_id)
    {
        return Err(Failure::Failed(anyhow::anyhow!(
            "generated an ExternalId already in use; run again"
        )));
    }
    let tenant = Tenant {
        id: args.id.clone(),
        account_id: args.account_id.clone(),
        region: args.region,
        external_id: external_id.clone(),
        wave: wave.clone(),
        capabilities: capabilities.clone(),
        role_arn: RoleArn::for_role(&args.account_id, DEPLOY_ROLE_NAME).expect("valid account"),
        retention_days: RetentionDays::new(crate::manifest::model::DEFAULT_RETENTION_DAYS)
            .expect("in range"),
    };
    require(&tenant, Capability::DedicatedAws, "tenant onboard").map_err(|f| match f {
        Failure::BadInput(e) => Failure::BadInput(e.context(
            "the bootstrap stack goes into the customer's AWS account: pass --capabilities with dedicated_aws",
        )),
        other => other,
    })?;
    let bootstrap = desired::bootstrap(Release::builtin(), &manifest, &tenant).map_err(|e| {
        Failure::Failed(anyhow::Error::new(e).context("rendering the bootstrap stack"))
    })?;
    let dir = args.out.join(args.id.as_str());
    let template_path = dir.join("bootstrap.template.json");
    let parameters_path = dir.join("bootstrap.parameters.json");
    let write = || -> anyhow::Result<()> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(&template_path, bootstrap.template.pretty_json())
            .with_context(|| format!("cannot write {}", template_path.display()))?;
        let mut params = serde_json::to_string_pretty(&bootstrap.parameters)?;
        params.push('\n');
        std::fs::write(&parameters_path, params)
            .with_context(|| format!("cannot write {}", parameters_path.display()))
    };
    write().map_err(Failure::Failed)?;

    let caps: Vec<String> = capabilities.iter().map(|c| format!("\"{c}\"")).collect();
    let toml = format!(
        "[[tenants]]\nid = \"{}\"\naccount_id = \"{}\"\nregion = \"{}\"\nexternal_id = \"{}\"\nwave = \"{}\"\ncapabilities = [{}]\n",
        args.id,
        args.account_id,
        args.region,
        external_id,
        wave,
        caps.join(", ")
    );
    let principal = &manifest.coordinator.principal_arn;
    let stack = stacks::StackKind::Bootstrap.stack_name();
    let template_url = args.template_url.clone().unwrap_or_else(|| {
        format!(
            "<HTTPS URL where bootstrap.template.json of release {} is hosted>",
            manifest.release
        )
    });
    let quick_create = format!(
        "https://{region}.console.aws.amazon.com/cloudformation/home?region={region}#/stacks/quickcreate?templateURL={url}&stackName={stack}&param_CoordinatorPrincipalArn={principal}&param_ExternalId={external_id}",
        region = args.region,
        url = template_url,
    );
    let cli_command = format!(
        "aws cloudformation deploy --region {} --stack-name {stack} --template-file bootstrap.template.json --capabilities CAPABILITY_NAMED_IAM --parameter-overrides CoordinatorPrincipalArn={principal} ExternalId={external_id}",
        args.region
    );
    match cli.output {
        OutputFormat::Json => println!(
            "{}",
            json!({
                "tenant": args.id,
                "external_id": external_id.as_str(),
                "manifest_lines": toml,
                "template": template_path,
                "parameters": parameters_path,
                "quick_create_url": quick_create,
                "cli_command": cli_command,
            })
        ),
        OutputFormat::Human => println!(
            "1. Add the tenant to {manifest} (and commit it):\n\n{toml}\n\
             2. Send the customer {template} and ask them to deploy it in account {account}, either\n   \
             with the console quick-create link:\n     {quick_create}\n   \
             or with the AWS CLI, from {dir}:\n     {cli_command}\n\n\
             3. When the stack is CREATE_COMPLETE, run: coordinator tenant verify {id}",
            manifest = manifest.path.display(),
            template = template_path.display(),
            account = args.account_id,
            dir = dir.display(),
            id = args.id,
        ),
    }
    Ok(())
}

/// The result of one trust check.
#[derive(Debug, serde::Serialize)]
struct Check {
    name: &'static str,
    passed: bool,
    detail: String,
}

async fn verify(cli: &Cli, args: &VerifyArgs, connector: ConnectorOverride) -> CmdResult {
    let needs = (Capability::DedicatedAws, "tenant verify");
    let ctx = context_requiring(cli, Some(&args.id), Some(needs), connector).await?;
    let manifest = &ctx.manifest;
    let tenant = select_tenants(manifest, Some(&args.id))?[0].clone();
    let mut checks = Vec::new();

    match access::connect(ctx.connector.as_ref(), &ctx.operator, &tenant).await {
        Ok(access) => checks.push(Check {
            name: "assume_with_external_id",
            passed: true,
            detail: format!(
                "assumed {} and landed in account {} as {}",
                tenant.role_arn, access.identity.account, access.identity.arn
            ),
        }),
        Err(e) => checks.push(Check {
            name: "assume_with_external_id",
            passed: false,
            detail: format!("{e}"),
        }),
    }
    let sts = ctx.connector.operator_sts();
    let wrong = generate_external_id();
    for (name, external_id) in [
        ("refused_without_external_id", None),
        ("refused_with_wrong_external_id", Some(&wrong)),
    ] {
        let request = role_request(&ctx.operator, &tenant.role_arn, external_id);
        let check = match sts.assume_role(&request).await {
            Ok(_) => Check {
                name,
                passed: false,
                detail: format!(
                    "{} can be assumed {}: its trust policy does not require sts:ExternalId, so anyone who knows the vendor's principal could make us act in this account (the confused-deputy problem). Ask the customer to redeploy the docproc-bootstrap stack unchanged, or to add Condition StringEquals sts:ExternalId to the role's trust policy",
                    tenant.role_arn,
                    if external_id.is_none() {
                        "without an ExternalId"
                    } else {
                        "with a wrong ExternalId"
                    }
                ),
            },
            Err(e) if e.kind == ErrorKind::AccessDenied => Check {
                name,
                passed: true,
                detail: "AssumeRole was denied, as it must be".into(),
            },
            Err(e) => Check {
                name,
                passed: false,
                detail: format!("inconclusive: {e}"),
            },
        };
        checks.push(check);
    }
    let passed = checks.iter().all(|c| c.passed);
    let _ = ctx
        .store
        .append_audit(NewAuditEntry {
            actor: ctx.operator.actor().to_owned(),
            tenant: Some(tenant.id.clone()),
            action: "tenant.verify".into(),
            details: json!({
                "passed": passed,
                "role_arn": tenant.role_arn,
                "external_id_digest": digest(tenant.external_id.as_str().as_bytes()),
                "checks": checks.iter().map(|c| json!({"check": c.name, "passed": c.passed})).collect::<Vec<_>>(),
            }),
        })
        .await;
    match cli.output {
        OutputFormat::Json => println!(
            "{}",
            json!({ "tenant": tenant.id, "passed": passed, "checks": checks })
        ),
        OutputFormat::Human => {
            for c in &checks {
                println!(
                    "{} {:<32} {}",
                    if c.passed { "ok  " } else { "FAIL" },
                    c.name,
                    c.detail
                );
            }
        }
    }
    if passed {
        Ok(())
    } else {
        Err(Failure::Failed(anyhow::anyhow!(
            "tenant `{}` failed verification: it is refused until fixed",
            tenant.id
        )))
    }
}
