//! The `coordinator` command line: argument parsing, the error policy and
//! exit codes. Each subcommand lives in its own module.
//!
//! Exit codes: 0 success; 1 the operation failed; 2 bad input or usage
//! (invalid manifest, unknown tenant, wrong flags). Errors print as
//! `error: ` plus the whole cause chain. Output is for people unless
//! `--output json` is given where the output is data.

mod render;
mod schema;
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
    run(cli)
}

/// Runs a parsed command and maps the outcome to an exit code.
pub fn run(cli: Cli) -> ExitCode {
    let result = match &cli.command {
        Command::Validate(args) => validate::run(&cli, args),
        Command::Render(args) => render::run(&cli, args),
        Command::Schema(args) => schema::run(&cli, args),
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
