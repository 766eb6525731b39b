//! `coordinator validate`: the offline manifest check.

use super::{Cli, CmdResult, Failure, OutputFormat};
use crate::manifest;

/// Flags of `validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Treat warnings as errors (exit 2).
    #[arg(long)]
    pub deny_warnings: bool,
}

pub fn run(cli: &Cli, args: &Args) -> CmdResult {
    let (report, summary) = match manifest::load(&cli.manifest) {
        Ok(validated) => {
            let m = &validated.manifest;
            let deployed = m
                .tenants
                .iter()
                .filter(|t| !t.deployed_stacks().is_empty())
                .count();
            let summary = serde_json::json!({
                "tenants": m.tenants.len(),
                "waves": m.rollout.waves.len(),
                "dedicated_aws_tenants": deployed,
                "release": m.release,
            });
            (validated.report, Some(summary))
        }
        Err(invalid) => (invalid.report, None),
    };
    let rejected = summary.is_none() || (args.deny_warnings && report.warning_count() > 0);
    match cli.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::json!({ "valid": !rejected, "summary": summary, "diagnostics": report.diagnostics })
        ),
        OutputFormat::Human => {
            if !report.diagnostics.is_empty() {
                eprintln!("{}", report.render());
            }
            if let Some(s) = &summary {
                println!(
                    "{} is valid: release {}, {} tenant(s) in {} wave(s), {} with dedicated AWS stacks{}",
                    cli.manifest.display(),
                    s["release"].as_str().unwrap_or_default(),
                    s["tenants"],
                    s["waves"],
                    s["dedicated_aws_tenants"],
                    match report.warning_count() {
                        0 => String::new(),
                        n => format!(" ({n} warning(s))"),
                    }
                );
            }
        }
    }
    if rejected {
        let why = if summary.is_none() {
            format!("{} error(s)", report.error_count())
        } else {
            format!("{} warning(s) and --deny-warnings", report.warning_count())
        };
        return Err(Failure::bad_input(format!(
            "{} was rejected: {why}",
            cli.manifest.display()
        )));
    }
    Ok(())
}
