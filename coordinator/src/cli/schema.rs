//! `coordinator schema`: writes the published JSON Schemas.

use std::path::PathBuf;

use anyhow::Context as _;

use super::{Cli, CmdResult, Failure, OutputFormat};
use crate::schemas;

/// Flags of `schema`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write into (created if missing), usually `schemas`.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

pub fn run(cli: &Cli, args: &Args) -> CmdResult {
    let files = schemas::all();
    for file in &files {
        let path = args.out.join(&file.path);
        let write = || -> anyhow::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            std::fs::write(&path, &file.text)
                .with_context(|| format!("cannot write {}", path.display()))
        };
        write().map_err(Failure::Failed)?;
    }
    match cli.output {
        OutputFormat::Json => {
            let paths: Vec<String> = files
                .iter()
                .map(|f| args.out.join(&f.path).display().to_string())
                .collect();
            println!("{}", serde_json::json!({ "written": paths }));
        }
        OutputFormat::Human => {
            for f in &files {
                println!("wrote {}", args.out.join(&f.path).display());
            }
        }
    }
    Ok(())
}
