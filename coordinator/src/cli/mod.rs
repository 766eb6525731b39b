//! The `coordinator` command line: argument parsing, the error policy and
//! exit codes. Each subcommand lives in its own module.
//!
//! Exit codes: 0 success; 1 the operation failed; 2 bad input or usage
//! (invalid manifest, unknown tenant, wrong flags). Errors print as
//! `error: ` plus the whole cause chain. Output is for people unless
//! `--output json` is given where the output is data.

mod audit;
mod check;
pub mod context;
mod deploy;
mod heartbeat;
mod plan;
mod privacy;
mod recover;
mod render;
mod rollout;
mod schema;
mod secret;
mod serve;
mod status;
mod tenant;
mod token;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Deploys the vendor's stacks into customer AWS accounts and watches them.
#[derive(Debug, Parser)]
#[command(name = "coordinator", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// The fleet manifest.
    #[arg(
        long,
        global = true,
        default_value = "deploy.toml",
        value_name = "PATH"
    )]
    pub manifest: PathBuf,

    /// Output for people (`human`) or machines (`json`).
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,

    /// Log format on stderr (levels from RUST_LOG, default `warn`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Text for a terminal.
    Human,
    /// One JSON document on stdout.
    Json,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Text lines.
    Human,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the manifest offline and report every problem at once.
    ///
    /// Exits 0 when the manifest is valid (warnings are printed), 2 when it
    /// is not. Each problem names the file, line, column and field, with a
    /// hint. Nothing touches AWS.
    Validate(validate::Args),
    /// Render tenants' stack templates and parameters into a directory.
    ///
    /// Writes DIR/<tenant>/<stack>.template.json and
    /// DIR/<tenant>/<stack>.parameters.json for the bootstrap stack (which the
    /// customer deploys) and every stack the vendor deploys for the tenant.
    /// A parameter that is another stack's output (the worker's KmsKeyArn and
    /// BucketArn come from the storage stack) is written as
    /// {"ParameterKey": ..., "FromStackOutput": {"Stack": ..., "Output": ...}}.
    /// Everything is rendered and checked before the first file is written.
    Render(render::Args),
    /// Write the JSON Schemas of the manifest and of every stack's shape,
    /// parameters and outputs.
    Schema(schema::Args),
    /// Observe every tenant's stacks and show what a deploy would do.
    ///
    /// Assumes each tenant's role, reads its stacks, previews updates with
    /// change sets (deleted again), and prints one action per tenant and
    /// stack: create, update (with the resource changes), no change, or
    /// blocked (with the reason). Updates that replace or remove a bucket,
    /// key, queue or secret are blocked unless --allow-replace. The plan is
    /// recorded in the state file with a generation.
    Plan(plan::Args),
    /// Plan, confirm, and apply: create or update each tenant's stacks.
    ///
    /// Each plan item is applied once; tenants are deployed in parallel
    /// (--concurrency) and one tenant's failure never affects another. Exits
    /// 1 if any tenant is not as planned, naming each with its reason.
    Deploy(deploy::Args),
    /// Show what the coordinator last recorded for each tenant (no AWS calls).
    Status(status::Args),
    /// Onboard or verify a tenant.
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
    /// Run the heartbeat loop and the status service (JSON API, metrics,
    /// dashboard) until SIGTERM or Ctrl-C.
    Serve(serve::Args),
    /// Make bearer tokens for the status service.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Ping every tenant's workers once over SQS and report their states.
    ///
    /// Sends one ping per tenant with a deployed worker stack through the
    /// tenant's role, waits up to --timeout (default: the heartbeat interval)
    /// for the pongs, records the states (healthy, degraded, late,
    /// unreachable, access_denied, not_deployed) and prints them. Exits 1
    /// when any tenant is not healthy.
    Heartbeat(heartbeat::Args),
    /// Recover a stack that needs an operator: UPDATE_ROLLBACK_FAILED
    /// (continue the rollback), ROLLBACK_COMPLETE after a failed create
    /// (delete and recreate, with --yes), DELETE_FAILED (delete again, with
    /// --yes). A stack another operation is changing is only waited for.
    Recover(recover::Args),
    /// Roll a release out wave by wave under the [rollout] policy; show,
    /// halt or resume the rollout.
    #[command(subcommand)]
    Rollout(rollout::RolloutCommand),
    /// Verify the audit log's hash chain, or export it as JSON lines
    /// (no AWS calls).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Show or change a tenant's privacy configuration: where its documents
    /// are stored, whose LLM keys process them, and whether it may fall back
    /// to the vendor's hosted defaults.
    #[command(subcommand)]
    Privacy(privacy::PrivacyCommand),
    /// Store, rotate, list or delete a tenant's secrets (LLM keys, bucket
    /// credentials) in the secret store deploy.toml chooses for it. Values
    /// are read from stdin or a file and never printed.
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Run the probes now: the tenant's own bucket (write, read back and
    /// delete a canary object), its own LLM key (authenticate, find the
    /// model, check it reads images), its workers' heartbeat and queues.
    ///
    /// Records each outcome (the admin surface and the fail-closed
    /// resolution use them) and prints it with its error code and what to
    /// do. Exits 1 when any probe fails.
    Check(check::Args),
}

/// A failed command: bad input (exit 2) or a failed operation (exit 1).
#[derive(Debug)]
pub enum Failure {
    /// The input was wrong; nothing was changed.
    BadInput(anyhow::Error),
    /// The operation itself failed.
    Failed(anyhow::Error),
}

impl Failure {
    /// Bad input with a message.
    pub fn bad_input(message: impl std::fmt::Display) -> Self {
        Failure::BadInput(anyhow::anyhow!("{message}"))
    }
}

/// Result of a subcommand.
pub type CmdResult = Result<(), Failure>;

/// Runs the CLI with the process's arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    run_with(cli, None)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs a parsed command, with AWS clients from `connector` when given (tests
/// inject a fake) or from the SDK's standard configuration.
pub fn run_with(cli: Cli, connector: context::ConnectorOverride) -> ExitCode {
    init_logging(cli.log_format);
    let result = match &cli.command {
        Command::Validate(args) => validate::run(&cli, args),
        Command::Render(args) => render::run(&cli, args),
        Command::Schema(args) => schema::run(&cli, args),
        Command::Token(command) => token::run(&cli, command),
        command => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(async {
                match command {
                    Command::Plan(args) => plan::run(&cli, args, connector).await,
                    Command::Deploy(args) => deploy::run(&cli, args, connector).await,
                    Command::Status(args) => status::run(&cli, args).await,
                    Command::Tenant(command) => tenant::run(&cli, command, connector).await,
                    Command::Recover(args) => recover::run(&cli, args, connector).await,
                    Command::Heartbeat(args) => heartbeat::run(&cli, args, connector).await,
                    Command::Serve(args) => serve::run(&cli, args, connector).await,
                    Command::Rollout(command) => rollout::run(&cli, command, connector).await,
                    Command::Audit(command) => audit::run(&cli, command).await,
                    Command::Privacy(command) => privacy::run(&cli, command, connector).await,
                    Command::Secret(command) => secret::run(&cli, command, connector).await,
                    Command::Check(args) => check::run(&cli, args, connector).await,
                    Command::Validate(_)
                    | Command::Render(_)
                    | Command::Schema(_)
                    | Command::Token(_) => {
                        unreachable!("handled above")
                    }
                }
            }),
            Err(e) => Err(Failure::Failed(
                anyhow::Error::new(e).context("cannot start the async runtime"),
            )),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::BadInput(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Loads the manifest; an invalid one is bad input and its report is printed.
pub(crate) fn load_manifest(cli: &Cli) -> Result<crate::manifest::Validated, Failure> {
    match crate::manifest::load(&cli.manifest) {
        Ok(validated) => {
            if cli.output == OutputFormat::Human && validated.report.warning_count() > 0 {
                eprint!("{}", validated.report.render());
            }
            Ok(validated)
        }
        Err(invalid) => {
            match cli.output {
                OutputFormat::Human => eprintln!("{}", invalid.report.render()),
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::json!({ "valid": false, "diagnostics": invalid.report.diagnostics })
                ),
            }
            Err(Failure::BadInput(anyhow::Error::new(invalid)))
        }
    }
}
